"""The `minivae` command line: train, evaluate, sample, figures, data.

    minivae train                                # a VAE on sprites, about a minute, runs/vae-sprites
    minivae train --data mnist --hidden 400 --latent 20      # the classic MNIST VAE
    minivae train --resume --out runs/vae-mnist --epochs 40  # go on training a run
    minivae evaluate runs/vae-sprites --iwae-k 100 --json
    minivae sample runs/vae-sprites --n 64 --out samples.png
    minivae figures runs/vae-sprites
    minivae data list;  minivae data fetch mnist

An error prints one line, `minivae: error: ...`, and exits with status 1 (2 for a bad
command line, 130 after Ctrl-C). Set MINIVAE_DEBUG=1 to see the traceback instead.
"""

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np

from minivae import checkpoint as ckpt
from minivae import data
from minivae.errors import MinivaeError
from minivae.models import MODELS
from minivae.train import (
    BINARIZE,
    OPTIMIZERS,
    TrainConfig,
    TrainingInterrupted,
    check_new_run_dir,
    create_run,
    eval_x,
    load_datasets,
    train,
)

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
IWAE_K = 100                        # importance samples for the IWAE NLL, unless --iwae-k


class UsageError(Exception):
    """A bad command line: argparse's message, on one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _number(kind, lo=None, hi=None, lo_open=False):
    """An argparse type: int or float, within [lo, hi] (lo excluded if lo_open), finite."""
    def parse(text):
        try:
            v = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (not math.isfinite(v) or (lo is not None and (v <= lo if lo_open else v < lo))
                or (hi is not None and v > hi)):
            bounds = [f"{'>' if lo_open else '>='} {lo}"] if lo is not None else []
            bounds += [f"<= {hi}"] if hi is not None else []
            what = "an integer" if kind is int else "a finite number"
            raise argparse.ArgumentTypeError(f"expected {what} {' and '.join(bounds)}, "
                                             f"got {text}")
        return v
    return parse


# ---- the parser ----

def build_parser():
    p = Parser(prog="minivae", description="Autoencoders and VAEs in NumPy: train a model, "
               "then evaluate it, sample from it and draw its figures.",
               epilog="`minivae COMMAND --help` explains each command.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    t = sub.add_parser("train", help="train a model into a run folder (or resume one)",
                       description="Train a model and save it in a run folder: config.json, "
                       "checkpoint.npz (each epoch), metrics.jsonl, then evaluation.json and "
                       "figures/. With no options: a VAE on the generated sprites data, about "
                       "a minute on 2 cores. Ctrl-C stops after the current batch and saves; "
                       "--resume continues, ending exactly as an uninterrupted run would.")
    a = t.add_argument
    a("--model", choices=list(MODELS), help=f"the model (default: {DEFAULTS['model']})")
    a("--data", choices=list(data.DATASETS), metavar="NAME",
      help=f"data set: {', '.join(data.DATASETS)} (default: sprites, generated offline)")
    a("--hidden", type=_number(int, 1), nargs="+", metavar="H",
      help="hidden layer sizes of the encoder (the decoder mirrors them), e.g. --hidden 512 "
           "256 (default: 512 for sprites, 400 otherwise)")
    a("--latent", type=_number(int, 1), metavar="Z",
      help="latent dimensions / PCA components (default: 10 for sprites, 20 otherwise)")
    a("--likelihood", choices=LIKELIHOODS,
      help="p(x|z): bernoulli for x in [0, 1]; gaussian (fixed sigma; squared error for "
           "ae/dae); gaussian-learned (vae only) (default: bernoulli)")
    a("--beta", type=_number(float, 0), help="weight of the KL term (beta-VAE; default: 1)")
    a("--epochs", type=_number(int, 1),
      help="passes over the training set; with --resume, the new total (default: 30 for "
           "sprites, 20 otherwise)")
    a("--batch-size", type=_number(int, 1), metavar="B", help="examples per step (default: 128)")
    a("--lr", type=_number(float, 0, lo_open=True),
      help="learning rate; may change with --resume (default: 1e-3)")
    a("--optimizer", choices=OPTIMIZERS, help="adam or sgd with momentum 0.9 (default: adam)")
    a("--seed", type=_number(int, 0), help="seed of all randomness (default: 0)")
    a("--warmup", type=_number(int, 0), metavar="N",
      help="raise the KL weight from 0 to 1 over the first N epochs (vae; default: 0, none)")
    a("--binarize", choices=BINARIZE,
      help="dynamic: train on x ~ Bernoulli(x), redrawn each epoch (grey-level MNIST; "
           "default: none)")
    a("--noise", choices=("gaussian", "masking"), help="dae corruption (default: gaussian)")
    a("--noise-level", type=_number(float, 0), metavar="L",
      help="dae: std of gaussian noise, or probability of masking a pixel (default: 0.3)")
    a("--out", metavar="DIR", help=f"run folder; must be new or empty unless --resume "
      f"(default: a fresh {RUNS}/<model>-<data>[-2, -3, ...])")
    a("--resume", action="store_true",
      help="continue the run in --out from its checkpoint (only --epochs and --lr may change)")
    a("--iwae-k", type=_number(int, 0), metavar="K",
      help=f"importance samples for the final IWAE NLL (default: {IWAE_K}; 0 skips it)")
    a("--no-figures", action="store_true",
      help="do not draw figures/ at the end (`minivae figures RUN` draws them later)")
    a("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="negative ELBO, IWAE NLL, KL per dimension, ...",
                       description="Evaluate a trained run on a data split: negative ELBO, "
                       "IWAE NLL (nats), reconstruction error, KL per latent dimension, active "
                       "units and, per dimension, the variance law mean sigma^2 + Var mu.")
    e.add_argument("run", metavar="RUN", help="a run folder made by `minivae train`")
    e.add_argument("--iwae-k", type=_number(int, 0), default=IWAE_K, metavar="K",
                   help=f"importance samples for the IWAE NLL (default: {IWAE_K}; 0 skips it)")
    e.add_argument("--split", default="test", help="data split (default: test)")
    e.add_argument("--seed", type=_number(int, 0), default=0, help="seed (default: 0)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("sample", help="decode draws from the prior into an image grid",
                       description="Decode n draws z ~ N(0, I) of a trained VAE into a PNG grid.")
    s.add_argument("run", metavar="RUN", help="a run folder made by `minivae train`")
    s.add_argument("--n", type=_number(int, 1, 10000), default=64, help="samples (default: 64)")
    s.add_argument("--seed", type=_number(int, 0), default=0, help="seed (default: 0)")
    s.add_argument("--out", metavar="FILE.png", help="image file (default: RUN/samples.png)")
    s.set_defaults(func=cmd_sample)

    f = sub.add_parser("figures", help="(re)draw a run's figures into RUN/figures",
                       description="Draw every figure that applies to the run's model "
                       "(reconstructions, samples, traversals, loss curves, ...) into "
                       "RUN/figures/.")
    f.add_argument("run", metavar="RUN", help="a run folder made by `minivae train`")
    f.add_argument("--seed", type=_number(int, 0), default=0, help="seed (default: 0)")
    f.set_defaults(func=cmd_figures)

    d = sub.add_parser("data", help="list the data sets, or download one",
                       description="List the data sets minivae knows, or fetch (download and "
                                   "verify) one. Set MINIVAE_DATA_MIRROR to read files from a "
                                   "local folder instead of the network.")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    dsub.required = True
    dl = dsub.add_parser("list", help="the data sets, their sizes and whether they are here",
                         description="List the data sets, their sizes and where they are.")
    dl.set_defaults(func=cmd_data_list)
    df = dsub.add_parser("fetch", help="download and verify a data set",
                         description="Download (unless already here) and verify every file "
                                     "of a data set.")
    df.add_argument("name", choices=list(data.DATASETS), metavar="NAME",
                    help=", ".join(data.DATASETS))
    df.set_defaults(func=cmd_data_fetch)
    return p


# ---- train ----

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
    cfg = TrainConfig(**{k: v[k] for k in ("epochs", "batch_size", "lr", "optimizer", "seed",
                                           "warmup", "binarize")})
    if model == "pca":
        cfg.epochs = 1
    return {"model": model, **mc}, name, cfg


def cmd_train(args):
    if args.resume:
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
    else:
        model_config, name, cfg = _new_run_settings(args)
        check_new_run_dir(args.out)                                    # refuse early
        datasets = load_datasets(name)                                  # before any folder
        run_dir = create_run(args.out, model_config, name, cfg, root=RUNS)
        before = 0
        _say(f"run folder: {run_dir}")
    history = train(run_dir, epochs=args.epochs if args.resume else None,
                    lr=args.lr if args.resume else None, verbose=not args.quiet,
                    datasets=None if args.resume else datasets)
    if args.resume and len(history) == before and (run_dir / "evaluation.json").exists():
        _say(f"{run_dir} already has {before} epochs; nothing to do (--epochs N trains on)")
        return 0
    _finish(run_dir, IWAE_K if args.iwae_k is None else args.iwae_k, quiet=args.quiet,
            figures=not args.no_figures)
    return 0


def _show(v):
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def _run_description(run_dir):
    """(the run's settings, epochs done): from its checkpoint if any, else config.json."""
    path = Path(run_dir) / ckpt.CHECKPOINT
    if not path.exists():
        return ckpt.read_config(run_dir), 0
    meta = ckpt.load(path)[2]
    return meta["run"], meta["progress"]["epoch"]


def _finish(run_dir, iwae_k, quiet=False, figures=True):
    """After training: evaluation.json and figures/ in the run folder."""
    metrics = _evaluate(run_dir, iwae_k, "test", 0)
    ckpt.write_json(Path(run_dir) / "evaluation.json", metrics)
    if not quiet:
        print(_table(metrics))
    made = f", figures/ ({len(_figures(run_dir, 0))} images)" if figures else ""
    _say(f"saved in {run_dir}: config.json, checkpoint.npz, metrics.jsonl, "
         f"evaluation.json{made}")


# ---- evaluate, sample, figures ----

def _load(run_dir, split="test"):
    model, meta = ckpt.load_model(run_dir)
    return model, meta, load_datasets(meta["run"]["data"], (split,))[0]


def _evaluate(run_dir, iwae_k, split, seed):
    from minivae.evaluate import evaluate, is_variational
    model, meta, ds = _load(run_dir, split)
    k = iwae_k if is_variational(model) else 0
    out = evaluate(model, np.ascontiguousarray(eval_x(ds, meta["run"])), iwae_k=k,
                   rng=np.random.default_rng(seed))
    return {"run": str(run_dir), "model": meta["run"]["model"]["model"],
            "data": meta["run"]["data"], "split": split, "epochs": meta["progress"]["epoch"],
            **out}


def _table(m):
    """The evaluation as aligned lines; per-dimension numbers as a small table."""
    lines = [(f"{m['model']} on {m['data']} ({m['split']}, {m['n']} examples), after "
              f"{m['epochs']} epochs; nats per example")]
    rows = [("negative ELBO", "nelbo"), (f"IWAE NLL (k={m.get('iwae_k')})", "nll"),
            ("reconstruction -log p(x|z)" if "kl" in m else "reconstruction loss", "recon"),
            ("KL(q(z|x) || p(z))", "kl"), ("squared error of the mean", "mse")]
    lines += [f"  {label:<28}{m[k]:>12.3f}" for label, k in rows if k in m]
    if "kl_per_dim" in m:
        kl, s2, vm = m["kl_per_dim"], m["mean_sigma2"], m["var_mu"]
        lines.append(f"  {'active units':<28}{m['active_units']:>12d}   of {len(kl)} "
                     f"(Var mu > {m['au_threshold']})")
        lines.append("  dim        KL   mean sigma^2     Var mu   sum (law: -> 1)")
        lines += [f"  {j:>3} {kl[j]:>9.3f} {s2[j]:>14.4f} {vm[j]:>10.4f} {s2[j] + vm[j]:>11.4f}"
                  for j in np.argsort(kl)[::-1]]
    return "\n".join(lines)


def cmd_evaluate(args):
    m = _evaluate(Path(args.run), args.iwae_k, args.split, args.seed)
    print(json.dumps(m, indent=2) if args.json else _table(m))
    return 0


def cmd_sample(args):
    from minivae.evaluate import is_variational
    from minivae.figures import sample_grid
    model, meta = ckpt.load_model(args.run)
    if not is_variational(model):
        raise MinivaeError(f"a {meta['run']['model']['model']} model has no prior to sample "
                           f"from (only vae has); try `minivae figures {args.run}`")
    out = Path(args.out) if args.out else Path(args.run) / "samples.png"
    if out.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise MinivaeError(f"--out {out}: expected an image file name ending in .png, .pdf, "
                           ".svg or .jpg")
    shape = load_datasets(meta["run"]["data"], ("test",))[0].image_shape
    print(sample_grid(model, args.n, np.random.default_rng(args.seed), out, shape))
    return 0


def _figures(run_dir, seed):
    from minivae.figures import make_figures
    model, meta, ds = _load(run_dir)
    return make_figures(model, ds, meta["history"], Path(run_dir) / "figures",
                        np.random.default_rng(seed))


def cmd_figures(args):
    for path in _figures(Path(args.run), args.seed):
        print(path)
    return 0


# ---- data ----

def cmd_data_list(args):
    from minivae.data.paths import data_dir, mirror_dir
    mirror = mirror_dir()
    print(f"{'name':<17}{'image':<7}{'splits':<43}{'download':<10}here?")
    for info in data.list_datasets():
        splits = " / ".join(f"{k} {v:,}" for k, v in info.splits.items())
        if not info.files:
            size, here = "-", "generated"
        else:
            size = f"{info.total_size / 1e6:.0f} MB"
            where = [("mirror", mirror), ("downloaded", data_dir())] if mirror else \
                [("downloaded", data_dir())]
            here = next((w for w, root in where
                         if all((root / f.relpath).is_file() for f in info.files)), "no")
        shape = "x".join(map(str, info.image_shape))
        print(f"{info.name:<17}{shape:<7}{splits:<43}{size:<10}{here}")
    print(f"data folder: {data_dir()}" + (f"; mirror: {mirror}" if mirror else ""))
    return 0


def cmd_data_fetch(args):
    paths = data.fetch(args.name)
    if not paths:
        print(f"{args.name} is generated by minivae; there is nothing to download")
    for path in paths:
        print(path)
    return 0


# ---- main ----

def _say(msg):
    print(msg, file=sys.stderr)


def _one_line(e):
    text = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, data.DownloadError):
        text = text.split(" Tried:")[0].rstrip(".") + ("; offline? set MINIVAE_DATA_MIRROR to "
                                                       "a folder that holds the files, or "
                                                       "fetch them when online")
    return text


def main(argv=None):
    """Run the command line; returns the exit status (the console script exits with it)."""
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SystemExit as e:                             # --help
        return e.code
    except UsageError as e:
        print(f"minivae: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(f"minivae: {_one_line(e)}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("minivae: interrupted", file=sys.stderr)
        return 130
    except (MinivaeError, data.DatasetError, OSError) as e:
        if os.environ.get("MINIVAE_DEBUG"):
            raise
        print(f"minivae: error: {_one_line(e)}", file=sys.stderr)
        return 1
