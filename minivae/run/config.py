"""The settings of a run, each default written once.

    TrainConfig     how a model is trained (saved in config.json beside the model's config)
    ModelSettings   what `minivae train` builds, in the words of its flags
    MachineSettings how this machine runs it (not saved with the run: a resumed run may change it)
    BY_DATA         the defaults that depend on the data set
    RULES           what each setting may be

`minivae train`'s flags are made from these: --batch-size from the field batch_size, its help
from the comment beside the field, its default from the field's value (and BY_DATA), its
range or choices from RULES. A comment continues on the lines below it that hold only a comment.
"""

import argparse
import inspect
import math
import re
from dataclasses import asdict, dataclass, fields

import numpy as np

from minivae import recipes
from minivae.errors import InputError
from minivae.losses import GENERATOR_LOSSES
from minivae.mmd import KERNELS
from minivae.models.base import INITS
from minivae.schedules import SCHEDULES


@dataclass
class TrainConfig:
    """How a model is trained: minivae.train.fit's arguments, and what wraps it."""

    epochs: int = 20            # passes over the training set; with --resume, the new total
    batch_size: int = 128       # examples per gradient step (an epoch's last may be smaller)
    lr: float = 1e-3            # learning rate; may change with --resume
    optimizer: str = "adam"     # adam, or sgd with momentum
    momentum: float = 0.9       # sgd's momentum
    seed: int = 0               # seeds all randomness: the model's and the data's generators
    warmup: int = 0             # raise the KL weight from 0 to 1 over the first N epochs (vae;
                                # 0: none)
    binarize: str = "none"      # dynamic: train on x ~ Bernoulli(x), redrawn each epoch
                                # (grey-level MNIST)
    d_lr: float = None          # gan: the discriminator's learning rate (--lr is the
                                # generator's); may change with --resume
    schedule: str = "constant"  # the learning rate over the epochs: constant; step (x 0.1
                                # after each third of --epochs); cosine (down to 0 at the
                                # last epoch); burda2015 (x 10^(-i/7) for 3^i epochs,
                                # i = 0..7, 3280 epochs: the IWAE paper's)
    adam_beta1: float = 0.9     # Adam's beta1, the decay of its first moment (the IWAE
                                # paper's code: 0.99; a gan's players always take 0.5)
    adam_beta2: float = 0.999   # Adam's beta2, the decay of its second moment
    adam_eps: float = 1e-8      # Adam's epsilon (the IWAE paper's 1e-4 was on the gradient of a
                                # batch's sum of 20; on minivae's batch mean that is 5e-6)
    validation: str = "off"     # on: hold out a validation split of the training data
                                # (binarized-mnist: its own; mnist: the last 10,000), train on
                                # the rest, log valid_loss each epoch and keep best.npz, the
                                # checkpoint of the best valid_loss, which evaluation then uses
    patience: int = 0           # with --validation on: stop after this many epochs without a
                                # better valid_loss (0: never stop early)
    output_bias: str = "init"   # vae: the decoder's output bias at the start: init (as --init
                                # draws it), or data-mean: each pixel's training mean (its logit
                                # for bernoulli), as the IWAE paper's code starts
    recipe: str = None          # start from a named, versioned recipe that reproduces a row of
                                # the IWAE paper's table (their names and settings are in
                                # minivae/recipes.py); flags given beside it override its values

    def check(self):
        """Raise InputError naming the first setting out of range; returns self."""
        for f in fields(self):
            RULES[f.name].check(f.name, getattr(self, f.name))
        return self

    @classmethod
    def from_dict(cls, d):
        """The TrainConfig a dict (config.json's "train") describes, checked."""
        if not isinstance(d, dict):
            raise InputError(f"the training settings must be a dict, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise InputError(f"unknown training settings {sorted(map(str, unknown))}")
        return cls(**d).check()


@dataclass
class ModelSettings:
    """What `minivae train` builds, and on which data (cli/train.py makes the model config)."""

    model: str = "vae"              # the model: vae, ae, dae (denoising), wae (Wasserstein
                                    # autoencoder), gan, linear-ae or pca
    arch: str = "mlp"               # vae, ae, dae, wae, gan: mlp (dense layers), or conv:
                                    # stride-2 convolutions of 32 and 64 channels, then the
                                    # --hidden dense layers (none unless given); the decoder
                                    # mirrors it (gan: D is the encoder, G the decoder)
    data: str = "sprites"           # the data set (`minivae data list`); sprites is generated
    hidden: tuple = (400,)          # hidden layer sizes of the encoder (the decoder mirrors
                                    # them), e.g. --hidden 512 256; gan: of the generator
    d_hidden: tuple = None          # gan: hidden layer sizes of the discriminator
    latent: int = 20                # latent dimensions (pca: components)
    likelihood: str = "bernoulli"   # p(x|z): bernoulli for x in [0, 1]; gaussian (fixed sigma;
                                    # squared error for ae/dae); gaussian-learned (vae only)
    beta: float = 1.0               # weight of the KL term (beta-VAE)
    noise: str = "gaussian"         # dae's corruption: gaussian noise, or masking pixels
    noise_level: float = 0.3        # dae: std of the gaussian noise, or probability of masking
    lam: float = 100.0              # wae: weight of the MMD between the codes and the prior
                                    # (100 suits a bernoulli loss, ~10 a gaussian one)
    kernel: str = "imq"             # wae: the MMD's kernel, inverse multiquadratic or rbf
                                    # (scale C = 2 x latent)
    generator_loss: str = "non-saturating"   # gan: the generator's objective, -log D(G(z)),
                                             # or minimax: log(1 - D(G(z)))
    objective: str = "elbo"         # vae: elbo, or iwae: the k-sample importance-weighted bound
                                    # (Burda et al. 2015; --k 1 is the elbo with a sampled KL)
    k: int = 5                      # vae with --objective iwae: importance samples per example
    activation: str = "relu"        # vae: the hidden layers' activation, relu or tanh (the IWAE
                                    # paper's)
    init: str = "uniform"           # vae: the weights' initialisation: uniform (+-1/sqrt(fan
                                    # in)), or glorot (the IWAE paper's; dense layers only)


@dataclass
class MachineSettings:
    """How this machine runs the training; not part of the run (minivae/run/threads.py)."""

    threads: str = "auto"           # BLAS threads for minivae's products: N, or auto (1 or all,
                                    # chosen before each epoch by a short probe)


# The defaults that depend on the data set, over those above (of either class). sprites' make
# `minivae train` a ~1-minute run on 2 cores.
BY_DATA = {"sprites": {"hidden": (512,), "latent": 10, "epochs": 30}}
# The defaults that depend on the model, over all of those: a GAN learns with Adam at 2e-4
# (and Adam's beta1 = 0.5, run/optimizers.py), as in Radford et al. (2016).
BY_MODEL = {"gan": {"lr": 2e-4}}
# Defaults that are another setting's value, in the words of --help.
SAME_AS = {"d_lr": "--lr", "d_hidden": "--hidden"}


def defaults(data, model="vae"):
    """{setting: default} of both classes for data set ``data`` and ``model``."""
    return {**asdict(ModelSettings()), **asdict(TrainConfig()), **BY_DATA.get(data, {}),
            **BY_MODEL.get(model, {})}


# ---- what a setting may be ----

@dataclass(frozen=True)
class Number:
    """A finite int (or float) >= lo (> lo if lo_open), and <= hi (< hi if hi_open)."""

    kind: type
    lo: float = None
    hi: float = None
    lo_open: bool = False
    hi_open: bool = False

    def words(self):
        """'an integer >= 1', 'a finite number >= 0 and < 1', ..."""
        bounds = [f"{'>' if self.lo_open else '>='} {self.lo}"] if self.lo is not None else []
        bounds += [f"{'<' if self.hi_open else '<='} {self.hi}"] if self.hi is not None else []
        what = "an integer" if self.kind is int else "a finite number"
        return " ".join([what, " and ".join(bounds)]) if bounds else what

    def ok(self, v):
        kinds = (int, np.integer) if self.kind is int else (int, float, np.integer, np.floating)
        if isinstance(v, bool) or not isinstance(v, kinds):
            return False
        if self.kind is not int:               # a number a float holds: not 10**400, not nan
            try:
                v = float(v)
            except OverflowError:
                return False
            if not math.isfinite(v):
                return False
        lo, hi = self.lo, self.hi
        return ((lo is None or (v > lo if self.lo_open else v >= lo))
                and (hi is None or (v < hi if self.hi_open else v <= hi)))

    def check(self, name, v):
        """InputError unless ``v`` fits: 'epochs must be a positive integer, got 0'."""
        if not self.ok(v):
            words = PLAIN.get(self.words(), self.words())
            raise InputError(f"{name} must be {words}, got {v!r}")

    def parse(self, text):
        """An argparse ``type``: the number ``text`` says, or ArgumentTypeError."""
        try:
            v = self.kind(text)
        except ValueError:
            what = "an integer" if self.kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not self.ok(v):
            raise argparse.ArgumentTypeError(f"expected {self.words()}, got {text}")
        return v


PLAIN = {"an integer >= 1": "a positive integer", "a finite number > 0": "a positive number"}


@dataclass(frozen=True)
class AutoOr:
    """"auto", or a number ``number`` allows."""

    number: Number

    def check(self, name, v):
        if v != "auto" and not self.number.ok(v):
            raise InputError(f"{name} must be auto or {self.number.words()}, got {v!r}")

    def parse(self, text):
        """An argparse ``type``: "auto", or the number ``text`` says."""
        if text == "auto":
            return text
        try:
            return self.number.parse(text)
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(f"expected auto or {self.number.words()}, got "
                                             f"{text!r}") from None


@dataclass(frozen=True)
class OrNone:
    """None (the default: another setting's value, SAME_AS), or what ``rule`` allows."""

    rule: Number

    def check(self, name, v):
        if v is not None:
            self.rule.check(name, v)

    def parse(self, text):
        return self.rule.parse(text)


@dataclass(frozen=True)
class RecipeName:
    """None, or a recipe's "NAME@VERSION"; the flag takes NAME (or NAME@VERSION)."""

    def check(self, name, v):
        """Any version of a known recipe: a run made from an older version still resumes; and
        the flags that changed it, if any ("NAME@VERSION changed: --k, --epochs")."""
        head, sep, flags = v.partition(recipes.CHANGED) if isinstance(v, str) else ("", "", "")
        known = head.partition("@")[0] in recipes.RECIPES and \
            head.partition("@")[2].isdigit() and int(head.partition("@")[2]) >= 1 and \
            (not sep or all(re.fullmatch(r"--[a-z0-9]+(-[a-z0-9]+)*", f) for f in flags.split(", ")))
        if v is not None and not known:
            raise InputError(f"{name} must be one of {', '.join(recipes.RECIPES)} (as "
                             f"NAME@VERSION, then perhaps \"{recipes.CHANGED.strip()} --flag, "
                             f"...\"), got {v!r}")

    def parse(self, text):
        name, _, version = text.partition("@")
        if name in recipes.RECIPES and version.isdigit() and int(version) in recipes.OLDER:
            raise argparse.ArgumentTypeError(
                f"{text} is an older version: new runs start from the current one, "
                f"{recipes.label(name)} (a run made from {text} resumes as it was made); for "
                f"version {version}'s settings add {recipes.OLDER[int(version)]}")
        if name not in recipes.RECIPES or text not in (name, recipes.label(name)):
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(recipes.RECIPES)}, "
                                             f"got {text!r}")
        return recipes.label(name)


@dataclass(frozen=True)
class Choice:
    """One of ``choices``."""

    choices: tuple

    def check(self, name, v):
        if v not in self.choices:
            raise InputError(f"{name} must be one of {self.choices}, got {v!r}")


COUNT, INDEX = Number(int, 1), Number(int, 0)
RULES = {
    "epochs": COUNT, "batch_size": COUNT, "lr": Number(float, 0, lo_open=True),
    "optimizer": Choice(("adam", "sgd")), "momentum": Number(float, 0, 1, hi_open=True),
    "seed": INDEX, "warmup": INDEX, "binarize": Choice(("none", "dynamic")),
    "arch": Choice(("mlp", "conv")),
    "hidden": COUNT, "latent": COUNT, "beta": Number(float, 0), "noise_level": Number(float, 0),
    "likelihood": Choice(("bernoulli", "gaussian", "gaussian-learned")),
    "noise": Choice(("gaussian", "masking")), "threads": AutoOr(COUNT),
    "d_lr": OrNone(Number(float, 0, lo_open=True)), "d_hidden": COUNT,
    "lam": Number(float, 0), "kernel": Choice(KERNELS),
    "generator_loss": Choice(tuple(GENERATOR_LOSSES)[::-1]),     # non-saturating first
    "schedule": Choice(SCHEDULES), "adam_beta2": Number(float, 0, 1, hi_open=True),
    "adam_eps": Number(float, 0, lo_open=True), "validation": Choice(("off", "on")),
    "patience": INDEX, "objective": Choice(("elbo", "iwae")), "k": Number(int, 1, 1000),
    "activation": Choice(("relu", "tanh")), "init": Choice(INITS),
    "output_bias": Choice(("init", "data-mean")), "adam_beta1": Number(float, 0, 1, hi_open=True),
    "recipe": RecipeName(),
}   # model and data: one of minivae.models.MODELS, minivae.data.DATASETS


def comments(cls):
    """{field: the comment beside it} in the source of the dataclass ``cls`` (the flags' help)."""
    try:
        lines = inspect.getsource(cls).splitlines()
    except (OSError, TypeError):                  # no source (a frozen build): no help text
        return {}
    out, name = {}, None
    for line in lines:
        field_line = re.match(r"\s+(\w+): [^#]+#\s?(.*)$", line)
        more = re.match(r"\s+#\s?(.*)$", line)
        if field_line:
            name = field_line[1]
            out[name] = field_line[2].strip()
        elif more and name:
            out[name] += " " + more[1].strip()
        else:
            name = None
    return out
