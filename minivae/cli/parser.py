"""The arguments of every `minivae` command: names, types, ranges and help."""

import argparse
import math

from minivae import data
from minivae.cli import datasets, train, view
from minivae.models import MODELS
from minivae.runfolder import BINARIZE, OPTIMIZERS


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


def build_parser():
    p = Parser(prog="minivae", description="Autoencoders and VAEs in NumPy: train a model, "
               "then evaluate it, sample from it and draw its figures.",
               epilog="`minivae COMMAND --help` explains each command.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    _add_train(sub)
    _add_view(sub)
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
                       "a minute on 2 cores. Ctrl-C (or SIGTERM) stops after the current batch "
                       "and saves; --resume continues, ending exactly as an uninterrupted run "
                       "would.")
    a = t.add_argument
    a("--model", choices=list(MODELS), help=f"the model (default: {train.DEFAULTS['model']})")
    a("--data", choices=list(data.DATASETS), metavar="NAME",
      help=f"data set: {', '.join(data.DATASETS)} (default: sprites, generated offline)")
    a("--hidden", type=_number(int, 1), nargs="+", metavar="H",
      help="hidden layer sizes of the encoder (the decoder mirrors them), e.g. --hidden 512 "
           "256 (default: 512 for sprites, 400 otherwise)")
    a("--latent", type=_number(int, 1), metavar="Z",
      help="latent dimensions / PCA components (default: 10 for sprites, 20 otherwise)")
    a("--likelihood", choices=train.LIKELIHOODS,
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
      f"(default: a fresh {train.RUNS}/<model>-<data>[-2, -3, ...])")
    a("--resume", action="store_true",
      help="continue the run in --out from its checkpoint (only --epochs and --lr may change)")
    a("--iwae-k", type=_number(int, 0), metavar="K",
      help=f"importance samples for the final IWAE NLL (default: {view.IWAE_K}; 0 skips it)")
    a("--no-figures", action="store_true",
      help="do not draw figures/ at the end (`minivae figures RUN` draws them later)")
    a("--quiet", action="store_true", help="no progress bar or per-epoch lines")
    t.set_defaults(func=train.cmd_train)


def _add_view(sub):
    e = sub.add_parser("evaluate", help="negative ELBO, IWAE NLL, KL per dimension, ...",
                       description="Evaluate a trained run on a data split: negative ELBO, "
                       "IWAE NLL (nats), reconstruction error, KL per latent dimension, active "
                       "units and, per dimension, the variance law mean sigma^2 + Var mu.")
    e.add_argument("run", metavar="RUN", help="a run folder made by `minivae train`")
    e.add_argument("--iwae-k", type=_number(int, 0), default=view.IWAE_K, metavar="K",
                   help=f"importance samples for the IWAE NLL (default: {view.IWAE_K}; 0 "
                        "skips it)")
    e.add_argument("--split", default="test", help="data split (default: test)")
    e.add_argument("--seed", type=_number(int, 0), default=0, help="seed (default: 0)")
    e.add_argument("--json", action="store_true", help="print JSON instead of a table")
    e.set_defaults(func=view.cmd_evaluate)

    s = sub.add_parser("sample", help="decode draws from the prior into an image grid",
                       description="Decode n draws z ~ N(0, I) of a trained VAE into a PNG grid.")
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
