"""`minivae train`: from flags to a new run folder, or the checks of --resume; then training,
evaluation.json and figures/. The flags and their defaults are minivae.run.config's."""

import sys
from dataclasses import fields
from pathlib import Path

import numpy as np

from minivae import data, recipes
from minivae.cli import view
from minivae.errors import MinivaeError
from minivae.run import folder
from minivae.run.atomic import write_json
from minivae.run.config import MachineSettings, ModelSettings, TrainConfig, defaults
from minivae.run.stopping import Interrupted, interruption, signal_number
from minivae.run.threads import Threads
from minivae.run.trainer import run_datasets, train

AE_OUTPUT = {"bernoulli": "bernoulli", "gaussian": "mse"}     # --likelihood -> Autoencoder output
# the settings each model takes (beyond model, data and seed)
MODEL_FLAGS = {"vae": {"arch", "hidden", "latent", "likelihood", "beta", "warmup", "objective",
                       "k", "activation", "init"},
               "ae": {"arch", "hidden", "latent", "likelihood"},
               "dae": {"arch", "hidden", "latent", "likelihood", "noise", "noise_level"},
               "wae": {"arch", "hidden", "latent", "likelihood", "lam", "kernel"},
               "gan": {"arch", "hidden", "d_hidden", "latent", "generator_loss", "d_lr"},
               "linear-ae": {"latent"}, "pca": {"latent"}}
MODEL_SETTINGS = [f.name for f in fields(ModelSettings)]
TRAIN_SETTINGS = [f.name for f in fields(TrainConfig)]
# the training settings of every model trained by gradient steps (all but pca); a GAN's
# data are not binarized (fit_gan trains on x as it is)
GRADIENT_FLAGS = {"vae": set(TRAIN_SETTINGS) - {"seed", "warmup", "d_lr"}}
GRADIENT_FLAGS["gan"] = GRADIENT_FLAGS["vae"] - {"binarize", "schedule", "validation", "patience",
                                                 "adam_beta1", "output_bias"}
RUNS = "runs"                       # where `minivae train` puts a run when --out is not given


def _say(msg):
    print(msg, file=sys.stderr)


def _flag(name):
    return "--" + name.replace("_", "-")


def _show(v):
    return " ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def _given(args):
    """{setting: value} of the settings given on the command line."""
    return {k: getattr(args, k) for k in MODEL_SETTINGS + TRAIN_SETTINGS
            if getattr(args, k) is not None}


def _new_run_settings(args):
    """(model config, data name, TrainConfig) from the flags and the defaults."""
    given = _given(args)
    recipe = recipes.settings(given["recipe"].partition("@")[0]) if "recipe" in given else {}
    model = given.get("model", recipe.get("model", ModelSettings.model))
    if recipe and model != "vae":
        raise MinivaeError(f"--recipe {given['recipe']} trains a vae, not --model {model}")
    v = {**defaults(given.get("data", recipe.get("data", ModelSettings.data)), model), **recipe,
         **given}
    allowed = MODEL_FLAGS[model] | {"model", "data", "seed"}
    allowed |= GRADIENT_FLAGS.get(model, GRADIENT_FLAGS["vae"]) if model != "pca" else set()
    for k in given:
        if k not in allowed:
            raise MinivaeError(f"{_flag(k)} does not apply to --model {model}")
    if "momentum" in given and v["optimizer"] != "sgd":
        raise MinivaeError("--momentum applies to --optimizer sgd")
    for k in ("adam_beta1", "adam_beta2", "adam_eps"):
        if k in given and v["optimizer"] != "adam":
            raise MinivaeError(f"{_flag(k)} applies to --optimizer adam")
    if "patience" in given and v["validation"] != "on":
        raise MinivaeError("--patience applies to --validation on (it counts epochs without a "
                           "better validation loss)")
    if v.get("objective") == "iwae" and "beta" in given:
        raise MinivaeError("--beta does not apply to --objective iwae (its bound has no beta)")
    if v.get("objective") == "iwae" and "warmup" in given:
        raise MinivaeError("--warmup does not apply to --objective iwae (its bound has no KL "
                           "term to warm up)")
    if "k" in given and v.get("objective") != "iwae":
        raise MinivaeError("--k applies to --objective iwae")
    if v["output_bias"] != "init" and (model != "vae" or v["arch"] != "mlp"):
        by = "" if "output_bias" in given else f" (set by --recipe {given['recipe']})"
        raise MinivaeError(f"--output-bias {v['output_bias']}{by} applies to --model vae with "
                           "--arch mlp (a bias per pixel)")
    if v.get("init") == "glorot" and v["arch"] != "mlp":
        raise MinivaeError("--init glorot is for dense layers (--arch mlp)")
    if recipe:
        v["recipe"] = recipes.label_changed(v["recipe"], _changed(given, {
            **defaults(recipe.get("data", ModelSettings.data), model), **recipe}))
    image_shape = data.get_info(v["data"]).image_shape
    x_dim = int(np.prod(image_shape))
    cfg = TrainConfig(**{k: v[k] for k in TRAIN_SETTINGS})
    if model == "pca":
        cfg.epochs = 1
    if v["arch"] == "mlp":
        return _model_config(v, x_dim), v["data"], cfg
    conv = {"arch": "conv", "image_shape": [1, *image_shape]}    # dense layers only if given
    return {**_model_config({**v, "hidden": given.get("hidden", ())}, x_dim), **conv}, \
        v["data"], cfg


def _changed(given, implied):
    """The flags given beside --recipe that change what it sets (a seed does not: the recipe
    is the protocol, whatever the draw)."""
    def same(a, b):
        return list(a) == list(b) if isinstance(a, (list, tuple)) else a == b
    return [_flag(k) for k in sorted(given)
            if k not in ("recipe", "seed") and not same(given[k], implied.get(k))]


def _model_config(v, x_dim):
    """The model config (minivae.models.build's) that the settings ``v`` describe."""
    model, hidden, z = v["model"], list(v["hidden"]), v["latent"]
    if model == "vae":
        vae = {"model": model, "x_dim": x_dim, "hidden": hidden, "z_dim": z,
               "likelihood": v["likelihood"], "beta": v["beta"],
               "activation": v["activation"], "init": v["init"]}
        return {**vae, "model": "iwae", "k": v["k"]} if v["objective"] == "iwae" else vae
    if model == "gan":
        d_hidden = hidden if v["d_hidden"] is None else list(v["d_hidden"])
        return {"model": model, "x_dim": x_dim, "z_dim": z, "hidden": hidden,
                "d_hidden": d_hidden, "generator_loss": v["generator_loss"]}
    if model in ("ae", "dae", "wae"):
        if v["likelihood"] not in AE_OUTPUT:
            raise MinivaeError(f"--likelihood {v['likelihood']} is for --model vae; an "
                               f"autoencoder takes {' or '.join(AE_OUTPUT)}")
        mc = {"model": model, "x_dim": x_dim, "hidden": hidden, "z_dim": z,
              "output": AE_OUTPUT[v["likelihood"]]}
        if model == "wae":
            return {**mc, "lam": v["lam"], "kernel": v["kernel"]}
        return {**mc, "noise": v["noise"], "noise_level": v["noise_level"]} if model == "dae" \
            else mc
    if model == "linear-ae":
        return {"model": model, "x_dim": x_dim, "z_dim": z}
    return {"model": model, "n_components": z, "x_dim": x_dim}


def _saved_settings(run):
    """The settings a run was made with, by name (None: not one its model takes)."""
    m = run.model
    lik = m.get("likelihood") or {v: k for k, v in AE_OUTPUT.items()}.get(m.get("output"))
    arch = m.get("arch", "mlp") if m["model"] in ("vae", "iwae", "ae", "dae", "wae", "gan") \
        else None
    variational = m["model"] in ("vae", "iwae")
    saved = {"model": "vae" if variational else m["model"], "data": run.data, "arch": arch,
             "hidden": m.get("hidden"),
             "objective": ("iwae" if m["model"] == "iwae" else "elbo") if variational else None,
             "k": m.get("k"), "activation": m.get("activation", "relu") if variational else None,
             "init": m.get("init", "uniform") if variational else None,
            "latent": m.get("z_dim", m.get("n_components")), "likelihood": lik,
            "beta": m.get("beta"), "noise": m.get("noise"), "noise_level": m.get("noise_level"),
            "d_hidden": m.get("d_hidden"), "generator_loss": m.get("generator_loss"),
            "lam": m.get("lam"), "kernel": m.get("kernel"),
            **{k: getattr(run.train, k) for k in TRAIN_SETTINGS if k not in folder.CHANGEABLE}}
    if m["model"] != "gan":
        saved["d_lr"] = None                            # only a GAN has a discriminator
    return saved


def _resumed_run(args):
    """The Run --resume continues, read once; refuses flags that would change it."""
    if args.out is None:
        raise MinivaeError("--resume needs --out RUN, the run folder to continue")
    if not Path(args.out).is_dir():
        raise MinivaeError(f"no run folder at {args.out} to resume")
    run = folder.open_run(args.out)
    saved = _saved_settings(run)
    for k, v in _given(args).items():
        if k in saved and saved[k] is None:
            raise MinivaeError(f"{_flag(k)} does not apply to this run's "
                               f"{saved['model']} model")
        if k in saved and v != saved[k]:
            raise MinivaeError(f"{_flag(k)} {_show(v)} differs from the run's "
                               f"{_show(saved[k])}; a resumed run keeps its settings "
                               "(only --epochs, --lr and a gan's --d-lr may change)")
    return run


def cmd_train(args):
    if args.resume:
        run = _resumed_run(args)
        before, datasets = run.epochs_done, None
    else:
        model_config, name, cfg = _new_run_settings(args)
        folder.check_new_run_dir(args.out)                              # refuse early
        datasets = run_datasets(name, cfg)                               # before any folder
        run = folder.create_run(args.out, model_config, name, cfg, root=RUNS)
        before = 0
        _say(f"run folder: {run.dir}")
    threads = MachineSettings.threads if args.threads is None else args.threads
    history = train(run, epochs=args.epochs if args.resume else None,
                    lr=args.lr if args.resume else None,
                    d_lr=args.d_lr if args.resume else None, verbose=not args.quiet,
                    datasets=datasets, threads=threads)
    if args.resume and len(history) == before and _evaluated(run.dir, before):
        _say(f"{run.dir} already has {before} epochs; nothing to do (--epochs N trains on)")
        return 0
    recipe = run.train.recipe
    k = args.iwae_k if args.iwae_k is not None else (
        recipes.evaluation_k(recipe.partition("@")[0]) if recipe else view.IWAE_K)
    with Threads(threads):                                  # BLAS threads, chosen once
        _finish(run.dir, k,
                quiet=args.quiet, figures=not args.no_figures)
    return 0


def _evaluated(run_dir, epochs):
    """True if evaluation.json is of the run's checkpoint: ``epochs`` finished, no more."""
    ev = folder.read_evaluation(run_dir)
    return ev is not None and ev.get("epochs") == epochs and not ev.get("batches")


def _finish(run_dir, iwae_k, quiet=False, figures=True):
    """After training: evaluation.json and figures/ in the run folder. The run is saved by
    then: an interrupt or a failure here says so, and how to finish the job later."""
    doing, again = "evaluating it", f"`minivae evaluate {run_dir}`"
    try:
        metrics = view.evaluate_run(run_dir, iwae_k, "test", 0, verbose=not quiet)
        write_json(Path(run_dir) / folder.EVALUATION, metrics)
        if not quiet:
            print(view.table(metrics))
        doing, again = "drawing its figures", f"`minivae figures {run_dir}`"
        made = f", figures/ ({len(view.draw_figures(run_dir, 0))} images)" if figures else ""
    except (KeyboardInterrupt, SystemError) as e:       # SystemError: see stopping.interruption
        stop = interruption(e)
        if stop is None:
            raise
        raise Interrupted(f"interrupted while {doing}; the trained run is saved in {run_dir} "
                          f"({again} does the rest)", signal_number(stop)) from None
    except (MinivaeError, OSError, ImportError, RuntimeError, ValueError) as e:
        raise MinivaeError(f"the trained run is saved in {run_dir}, but {doing} failed: "
                           f"{' '.join(str(e).split()) or type(e).__name__}; {again} tries "
                           "again") from e
    _say(f"saved in {run_dir}: config.json, checkpoint.npz, metrics.jsonl, "
         f"evaluation.json{made}")
