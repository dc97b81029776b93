"""minivae.data: datasets as float32 arrays, plus minibatching and dynamic binarization.

    >>> from minivae import data
    >>> train = data.load("sprites")            # generated, no download
    >>> train.x.shape, train.image_shape
    ((6912, 1024), (32, 32))
    >>> mnist = data.load("mnist", "test")      # downloaded once into data.data_dir()
    >>> fit_on, valid = data.train_valid("mnist")   # 50,000 / 10,000 of the training images

Datasets: mnist, fashion-mnist, binarized-mnist, sprites (see data/README.md at the repo root).
Environment: MINIVAE_DATA_DIR (where files are kept), MINIVAE_DATA_MIRROR (a folder to read the
files from instead of the network).
"""

from dataclasses import dataclass

import numpy as np

from . import sprites
from .amat import read_amat
from .binarize import dynamic_binarize
from .download import fetch, read_verified
from .errors import (
    CacheDirError,
    ChecksumError,
    DatasetError,
    DownloadError,
    FormatError,
    UnknownDatasetError,
)
from .idx import read_idx_images, read_idx_labels
from .paths import data_dir
from .registry import DATASETS, DatasetInfo, FileInfo, check_split, get_info, list_datasets
from .validation import train_valid as _train_valid

__all__ = [
    "DATASETS", "CacheDirError", "ChecksumError", "Dataset", "DatasetError", "DatasetInfo",
    "DownloadError", "FileInfo", "FormatError", "UnknownDatasetError", "batches", "data_dir",
    "dynamic_binarize", "fetch", "list_datasets", "load", "train_valid",
]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """One split of a dataset: images flattened to rows of x, in [0, 1]."""

    x: np.ndarray                      # (N, D) float32, C-contiguous, D = prod(image_shape)
    y: np.ndarray | None               # (N,) int64 labels; None for binarized-mnist
    image_shape: tuple                 # (H, W), e.g. (28, 28); x[i].reshape(image_shape)
    name: str                          # e.g. "mnist"
    split: str                         # e.g. "train"
    factors: np.ndarray | None = None  # (N, F) float64 generating factors (sprites only)
    factor_names: tuple | None = None  # F names, e.g. ("shape", "scale", ...)

    def __post_init__(self):
        x, n = self.x, len(self.x)
        if x.ndim != 2 or x.dtype != np.float32 or not x.flags.c_contiguous:
            raise ValueError(f"x: expected a C-contiguous float32 (N, D) array, got {x.dtype} "
                             f"{x.shape}")
        if x.shape[1] != int(np.prod(self.image_shape)):
            raise ValueError(f"x has {x.shape[1]} columns, expected prod{self.image_shape}")
        if self.y is not None and self.y.shape != (n,):
            raise ValueError(f"y: expected shape ({n},), got {self.y.shape}")
        f = len(self.factor_names or ())
        if self.factors is not None and self.factors.shape != (n, f):
            raise ValueError(f"factors: expected shape ({n}, {f}) (one column per factor name), "
                             f"got {self.factors.shape}")

    def __len__(self) -> int:
        return self.x.shape[0]

    def __repr__(self) -> str:
        y = "None" if self.y is None else f"({len(self.y)},) {self.y.dtype}"
        return (f"Dataset(name={self.name!r}, split={self.split!r}, "
                f"x={self.x.shape} {self.x.dtype}, y={y}, image_shape={self.image_shape}"
                + (f", factor_names={self.factor_names}" if self.factor_names else "") + ")")


def load(name: str, split: str = "train") -> Dataset:
    """Dataset `name`, split `split`; downloads and verifies its files the first time."""
    info = get_info(name)
    check_split(info, split)
    if name == "sprites":
        x, y, factors = sprites.load_split(split)                  # (N, 1024), (N,), (N, 5)
        return Dataset(x, y, info.image_shape, name, split, factors, sprites.FACTOR_NAMES)
    if name == "binarized-mnist":
        f = info.file(split, "images")
        pixels = read_amat(read_verified(f), what=f.relpath)        # (N, 784) uint8 0/1
        y = None
    else:                                                           # mnist, fashion-mnist
        fi, fl = info.file(split, "images"), info.file(split, "labels")
        images = read_idx_images(read_verified(fi), what=fi.relpath)   # (N, 28, 28) uint8
        labels = read_idx_labels(read_verified(fl), what=fl.relpath)   # (N,) uint8
        if images.shape[1:] != info.image_shape or len(labels) != len(images):
            raise FormatError(f"{name} {split}: images {images.shape} and labels "
                              f"{labels.shape}, expected (N, 28, 28) and (N,)")
        pixels = images.reshape(len(images), -1)                    # (N, 784) uint8 0..255
        y = labels.astype(np.int64)
    if len(pixels) != info.splits[split]:
        raise FormatError(f"{name} {split}: {len(pixels)} examples, expected "
                          f"{info.splits[split]}")
    x = pixels.astype(np.float32)                                   # (N, 784)
    if y is not None:
        x /= np.float32(255.0)                                      # grey levels -> [0, 1]
    return Dataset(x, y, info.image_shape, name, split)


def train_valid(name: str) -> tuple:
    """(train, valid): ``name``'s training data split into the part a model is fitted on and a
    held-out validation part (minivae/data/validation.py says how, per dataset)."""
    return _train_valid(name, load)


def batches(x: np.ndarray, batch_size: int, rng: np.random.Generator | None = None,
            drop_last: bool = False):
    """Yield minibatches x[idx] (B, D), B = batch_size (the last may be smaller).

    rng: a np.random.Generator to shuffle the order (call again each epoch for a new order);
    None keeps the order and yields views. drop_last: skip a final batch smaller than batch_size.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    n = len(x)
    order = None if rng is None else rng.permutation(n)           # (N,) shuffled indices
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        end = min(start + batch_size, n)
        yield x[start:end] if order is None else x[order[start:end]]
