"""The arguments of every `minivae` command: names, types, ranges and help."""

import argparse
from dataclasses import fields

from minivae import data
from minivae.cli import datasets, train, view
from minivae.cli import export as export_cmd
from minivae.models import MODELS
from minivae.run.config import (
    BY_DATA,
    BY_MODEL,
    RULES,
    SAME_AS,
    Choice,
    MachineSettings,
    ModelSettings,
    Number,
    TrainConfig,
    comments,
)
from minivae.run.generative import QUALITY_HELP

METAVARS = {"hidden": "H", "latent": "Z", "batch_size": "B", "warmup": "N", "noise_level": "L",
            "threads": "N", "d_hidden": "H", "d_lr": "LR", "lam": "LAMBDA"}


class UsageError(Exception):
    """A bad command line: argparse's message, on one line."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _number(kind, lo=None, hi=None, lo_open=False):
    """An argparse type: int or float, within [lo, hi] (lo excluded if lo_open), finite."""
    return Number(kind, lo, hi, lo_open).parse


def build_parser():
    p = Parser(prog="minivae", description="Autoencoders and VAEs in NumPy: train a model, "
               "then evaluate it, sample from it and draw its figures.",
               epilog="`minivae COMMAND --help` explains each command.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    _add_train(sub)
    _add_view(sub)
    export_cmd.add_parser(sub, _number)
    d = sub.add_parser("data", help="list the data sets, or download one",
                       description="List the data sets minivae knows, or fetch (download and "
                                   "verify) one. Set MINIVAE_DATA_MIRROR to read files from a "
                                   "local folder instead of the network.")
    dsub = d.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    dsub.required = True
    dl = dsub.add_parser("list", help="the data sets, their sizes and whether they are here",
                         description="List the data sets, their sizes and where they are.")
    dl.set_defaults(func=datasets.cmd_data_list)
    df = dsub.add_parser("fetch", help="download and verify a data set",
                         description="Download (unless already here) and verify every file "
                                     "of a data set.")
    df.add_argument("name", choices=list(data.DATASETS), metavar="NAME",
                    help=", ".join(data.DATASETS))
    df.set_defaults(func=datasets.cmd_data_fetch)
    return p


def _add_train(sub):
    t = sub.add_parser("train", help="train a model into a run folder (or resume one)",
                       description="Train a model and save it in a run folder: config.json, "
                       "checkpoint.npz (each epoch), metrics.jsonl, then evaluation.json and "
                       "figures/. With no options: a VAE on the generated sprites data, about "
                       "half a minute on 2 cores. Ctrl-C (or SIGTERM) stops after the current batch "
                       "and saves; --resume continues, ending exactly as an uninterrupted run "
                       "would.")
    a = t.add_argument
    for cls in (ModelSettings, TrainConfig, MachineSettings):   # a flag per setting: --batch-size B
        helps = comments(cls)
        for f in fields(cls):
            a(_flag(f.name), help=f"{helps.get(f.name, '')} (default: {_default(f)})",
              **_kind(f.name))
    a("--out", metavar="DIR", help=f"run folder; must be new or empty unless --resume "
      f"(default: a fresh {train.RUNS}/<model>-<data>[-2, -3, ...])")
    a("--resume", action="store_true",
      help="continue the run in --out from its checkpoint (only --epochs, --lr and a gan's "
           "--d-lr may change)")
    a("--iwae-k", type=_number(int, 0, view.IWAE_K_MAX), metavar="K",
      help=f"importance samples for the final IWAE NLL (default: {view.IWAE_K}; 0 skips it; "
           f"at most {view.IWAE_K_MAX})")
    a("--no-figures", action="store_true",
      help="do not draw figures/ at the end (`minivae figures RUN` draws them later)")
    a("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    t.set_defaults(func=train.cmd_train)


def _flag(name):
    return "--" + name.replace("_", "-")


def _kind(name):
    """What argparse needs to read setting ``name``: its choices, or its type."""
    if name == "model":
        return {"choices": [m for m in MODELS if m in train.MODEL_FLAGS]}   # it can train
    if name == "data":
        return {"choices": list(data.DATASETS), "metavar": "NAME"}
    rule = RULES[name]
    if name == "recipe":
        return {"type": rule.parse, "metavar": "NAME"}
    if isinstance(rule, Choice):
        return {"choices": rule.choices}
    kind = {"type": rule.parse, "metavar": METAVARS.get(name, name.upper())}
    return {**kind, "nargs": "+"} if name in ("hidden", "d_hidden") else kind


def _default(f):
    """'20', or '20; sprites: 30' for a default that depends on the data set."""
    def show(v):
        return " ".join(map(str, v)) if isinstance(v, tuple) else str(v)
    if f.name in SAME_AS:
        return SAME_AS[f.name]
    by_data = [f"{name}: {show(d[f.name])}" for name, d in BY_DATA.items() if f.name in d]
    by_model = [f"{name}: {show(d[f.name])}" for name, d in BY_MODEL.items() if f.name in d]
    return "; ".join([show(f.default), *by_data, *by_model])


def _add_view(sub):
    e = sub.add_parser("evaluate", help="negative ELBO, IWAE NLL, KL per dimension, ...",
                       description="Evaluate a trained run on a data split. A VAE: negative "
                       "ELBO, IWAE NLL (nats), reconstruction error, KL per latent dimension, "
                       "active units and, per dimension, the variance law mean sigma^2 + Var "
                       "mu. An autoencoder: reconstruction loss and squared error; a WAE also "
                       "the MMD^2 of its codes to the prior. A WAE and a GAN: sample quality. "
                       f"{QUALITY_HELP}")
    e.add_argument("run", metavar="RUN", help="a run folder made by `minivae train`")
    e.add_argument("--iwae-k", type=_number(int, 0, view.IWAE_K_MAX), default=view.IWAE_K,
                   metavar="K",
                   help=f"importance samples for the IWAE NLL (default: {view.IWAE_K}; 0 "
                        f"skips it; at most {view.IWAE_K_MAX})")
    e.add_argument("--split", default="test", help="data split (default: test)")
    e.add_argument("--seed", type=_number(int, 0), default=0, help="seed (default: 0)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=view.cmd_evaluate)

    s = sub.add_parser("sample", help="decode draws from the prior into an image grid",
                       description="Decode n draws z ~ N(0, I) of a trained VAE or WAE "
                       "(or a GAN's G(z)) into a PNG grid.")
    s.add_argument("run", metavar="RUN", help="a run folder made by `minivae train`")
    s.add_argument("--n", type=_number(int, 1, 10000), default=64, help="samples (default: 64)")
    s.add_argument("--seed", type=_number(int, 0), default=0, help="seed (default: 0)")
    s.add_argument("--out", metavar="FILE.png", help="image file (default: RUN/samples.png)")
    s.set_defaults(func=view.cmd_sample)

    f = sub.add_parser("figures", help="(re)draw a run's figures into RUN/figures",
                       description="Draw every figure that applies to the run's model "
                       "(reconstructions, samples, traversals, loss curves, ...) into "
                       "RUN/figures/.")
    f.add_argument("run", metavar="RUN", help="a run folder made by `minivae train`")
    f.add_argument("--seed", type=_number(int, 0), default=0, help="seed (default: 0)")
    f.set_defaults(func=view.cmd_figures)
