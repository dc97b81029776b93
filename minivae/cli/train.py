"""`minivae train`: from flags to a new run folder, or the checks of --resume; then training,
evaluation.json and figures/."""

import sys
from pathlib import Path

import numpy as np

from minivae import checkpoint as ckpt
from minivae import data
from minivae import runfolder as rf
from minivae.cli import view
from minivae.errors import MinivaeError
from minivae.train import train

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned")
AE_OUTPUT = {"bernoulli": "bernoulli", "gaussian": "mse"}     # --likelihood -> Autoencoder output
# Defaults by data set; sprites' make `minivae train` a ~1-minute run on 2 cores.
SIZES = {"sprites": {"hidden": [512], "latent": 10, "epochs": 30},
         None: {"hidden": [400], "latent": 20, "epochs": 20}}
DEFAULTS = {"model": "vae", "data": "sprites", "likelihood": "bernoulli", "beta": 1.0,
            "batch_size": 128, "lr": 1e-3, "optimizer": "adam", "seed": 0, "warmup": 0,
            "binarize": "none", "noise": "gaussian", "noise_level": 0.3}
# the flags each model takes (beyond --data, --seed), and the training flags
MODEL_FLAGS = {"vae": {"hidden", "latent", "likelihood", "beta", "warmup"},
               "ae": {"hidden", "latent", "likelihood"},
               "dae": {"hidden", "latent", "likelihood", "noise", "noise_level"},
               "linear-ae": {"latent"}, "pca": {"latent"}}
GRADIENT_FLAGS = {"epochs", "batch_size", "lr", "optimizer", "binarize"}
RUNS = "runs"                       # where `minivae train` puts a run when --out is not given


def _say(msg):
    print(msg, file=sys.stderr)


def _saved_flags(run):
    """The command-line values a run was made with, by flag name."""
    m, t = run["model"], run["train"]
    lik = m.get("likelihood") or {v: k for k, v in AE_OUTPUT.items()}.get(m.get("output"))
    return {"model": m["model"], "data": run["data"], "hidden": m.get("hidden"),
            "latent": m.get("z_dim", m.get("n_components")), "likelihood": lik,
            "beta": m.get("beta"), "noise": m.get("noise"), "noise_level": m.get("noise_level"),
            **{k: t.get(k) for k in ("batch_size", "optimizer", "seed", "warmup", "binarize")}}


def _given(args):
    keys = ("model", "data", "hidden", "latent", "likelihood", "beta", "epochs", "batch_size",
            "lr", "optimizer", "seed", "warmup", "binarize", "noise", "noise_level")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def _flag(name):
    return "--" + name.replace("_", "-")


def _show(v):
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def _new_run_settings(args):
    """(model config, data name, TrainConfig) from the flags and the defaults."""
    given = _given(args)
    model, name = given.get("model", DEFAULTS["model"]), given.get("data", DEFAULTS["data"])
    allowed = MODEL_FLAGS[model] | {"model", "data", "seed"}
    allowed |= GRADIENT_FLAGS if model != "pca" else set()
    for k in given:
        if k not in allowed:
            raise MinivaeError(f"{_flag(k)} does not apply to --model {model}")
    v = {**DEFAULTS, **SIZES.get(name, SIZES[None]), **given}
    x_dim = int(np.prod(data.get_info(name).image_shape))
    if model == "vae":
        mc = {"x_dim": x_dim, "hidden": v["hidden"], "z_dim": v["latent"],
              "likelihood": v["likelihood"], "beta": v["beta"]}
    elif model in ("ae", "dae"):
        if v["likelihood"] not in AE_OUTPUT:
            raise MinivaeError(f"--likelihood {v['likelihood']} is for --model vae; an "
                               f"autoencoder takes {' or '.join(AE_OUTPUT)}")
        mc = {"x_dim": x_dim, "hidden": v["hidden"], "z_dim": v["latent"],
              "output": AE_OUTPUT[v["likelihood"]]}
        if model == "dae":
            mc.update(noise=v["noise"], noise_level=v["noise_level"])
    elif model == "linear-ae":
        mc = {"x_dim": x_dim, "z_dim": v["latent"]}
    else:
        mc = {"n_components": v["latent"], "x_dim": x_dim}
    cfg = rf.TrainConfig(**{k: v[k] for k in ("epochs", "batch_size", "lr", "optimizer", "seed",
                                              "warmup", "binarize")})
    if model == "pca":
        cfg.epochs = 1
    return {"model": model, **mc}, name, cfg


def _check_resume(args):
    """(run folder, epochs done) of the run --resume continues; refuses changed settings."""
    if args.out is None:
        raise MinivaeError("--resume needs --out RUN, the run folder to continue")
    run_dir = Path(args.out)
    if not run_dir.is_dir():
        raise MinivaeError(f"no run folder at {run_dir} to resume")
    run, before = _run_description(run_dir)
    saved = _saved_flags(run)
    for k, v in _given(args).items():
        if k in saved and saved[k] is None:
            raise MinivaeError(f"{_flag(k)} does not apply to this run's "
                               f"{saved['model']} model")
        if k in saved and v != saved[k]:
            raise MinivaeError(f"{_flag(k)} {_show(v)} differs from the run's "
                               f"{_show(saved[k])}; a resumed run keeps its settings "
                               "(only --epochs and --lr may change)")
    return run_dir, before


def _run_description(run_dir):
    """(the run's settings, epochs done): from its checkpoint if any, else config.json."""
    path = Path(run_dir) / rf.CHECKPOINT
    if not path.exists():
        return rf.read_config(run_dir), 0
    meta = ckpt.load(path)[2]
    return meta["run"], meta["progress"]["epoch"]


def cmd_train(args):
    if args.resume:
        run_dir, before = _check_resume(args)
    else:
        model_config, name, cfg = _new_run_settings(args)
        rf.check_new_run_dir(args.out)                                 # refuse early
        datasets = rf.load_datasets(name)                               # before any folder
        run_dir = rf.create_run(args.out, model_config, name, cfg, root=RUNS)
        before = 0
        _say(f"run folder: {run_dir}")
    history = train(run_dir, epochs=args.epochs if args.resume else None,
                    lr=args.lr if args.resume else None, verbose=not args.quiet,
                    datasets=None if args.resume else datasets)
    if args.resume and len(history) == before and (run_dir / rf.EVALUATION).exists():
        _say(f"{run_dir} already has {before} epochs; nothing to do (--epochs N trains on)")
        return 0
    _finish(run_dir, view.IWAE_K if args.iwae_k is None else args.iwae_k, quiet=args.quiet,
            figures=not args.no_figures)
    return 0


def _finish(run_dir, iwae_k, quiet=False, figures=True):
    """After training: evaluation.json and figures/ in the run folder."""
    metrics = view.evaluate_run(run_dir, iwae_k, "test", 0)
    ckpt.write_json(Path(run_dir) / rf.EVALUATION, metrics)
    if not quiet:
        print(view.table(metrics))
    made = f", figures/ ({len(view.draw_figures(run_dir, 0))} images)" if figures else ""
    _say(f"saved in {run_dir}: config.json, checkpoint.npz, metrics.jsonl, "
         f"evaluation.json{made}")
