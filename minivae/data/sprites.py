"""sprites: small binary shapes on a complete grid of known factors, generated offline.

A pocket dSprites (Matthey et al. 2017) that needs no download and renders the same bytes on
every machine. Every combination of the five factors appears exactly once:

  shape        3   square, ellipse, heart (factor value = index 0, 1, 2; also the label y)
  scale        5   0.6, 0.7, 0.8, 0.9, 1.0   (scale 1: the shape fits a disc of radius 8 px)
  orientation  8   0, 11.25, ..., 78.75 degrees, counter-clockwise. Kept below 90 degrees so
                   that no shape repeats itself (a square turned 90 degrees is the same square,
                   as is an ellipse turned 180), and coarse enough that 32x32 pixels resolve it:
                   every image in the grid is distinct (any two differ in >= 4 pixels), so every
                   factor can be read back from the image.
  pos_x, pos_y 8   centre at 9, 11, ..., 23 pixels from the left / top edge
  -> 3 * 5 * 8 * 8 * 8 = 7,680 images of 32x32 pixels, values 0/1.

Rendering is pure NumPy arithmetic: 4x4 sample points per pixel are tested against the shape's
inequality; a pixel is on when at least 8 of its 16 samples are inside (coverage >= 1/2).
Each (shape, scale, orientation) is rendered once on a 16x16 patch centred on a pixel corner,
then pasted at whole-pixel offsets, so moving a shape never changes its pixels.
Split: a fixed 10% of the grid is "test", chosen by a SplitMix64 hash of the grid index (a fixed
integer formula, unlike np.random, whose streams may change between NumPy versions).
"""

import math

import numpy as np

SHAPES = ("square", "ellipse", "heart")
SCALES = (0.6, 0.7, 0.8, 0.9, 1.0)
ORIENTATIONS = tuple(11.25 * k for k in range(8))         # degrees, exact in binary
POSITIONS = tuple(9.0 + 2.0 * k for k in range(8))        # pixels from the left/top edge
FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_VALUES = (tuple(float(i) for i in range(len(SHAPES))), SCALES, ORIENTATIONS,
                 POSITIONS, POSITIONS)
GRID = tuple(len(v) for v in FACTOR_VALUES)               # (3, 5, 8, 8, 8)
SIZE = 32                # image side, pixels
RADIUS = 8.0             # pixels: radius of the disc that holds every shape at scale 1
PATCH = 16               # side of the patch a shape is rendered on, centred on its corner (8, 8)
SUB = 4                  # samples per pixel side: SUB * SUB = 16 point tests per pixel
TEST_FRACTION = 0.1
SPLIT_SEED = 20170101    # added to the grid index before hashing


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of the points (u, v) inside the unit shape (centred, fits the unit disc)."""
    if shape == "square":                                  # half side 1/sqrt(2): corners on disc
        return np.maximum(np.abs(u), np.abs(v)) <= 1.0 / math.sqrt(2.0)
    if shape == "ellipse":                                 # semi-axes 1 and 1/2
        return u * u + 4.0 * v * v <= 1.0
    # heart = a square standing on a corner (|u| + |v - c| <= h) plus two discs of radius
    # h/sqrt(2) on its upper sides; c centres the heart vertically, h makes it fit the unit disc.
    c_over_h = (0.5 - 1.0 / math.sqrt(2.0)) / 2.0
    h = 1.0 / (math.hypot(0.5, 0.5 + c_over_h) + 1.0 / math.sqrt(2.0))
    c, r = c_over_h * h, h / math.sqrt(2.0)
    diamond = np.abs(u) + np.abs(v - c) <= h
    lobes = (np.abs(u) - h / 2.0) ** 2 + (v - c - h / 2.0) ** 2 <= r * r
    return diamond | lobes


def render_patch(shape: str, scale: float, orientation: float) -> np.ndarray:
    """uint8 (16, 16) 0/1 image of one shape centred on the patch's middle corner (8, 8)."""
    s = (np.arange(PATCH * SUB) + 0.5) / SUB - PATCH / 2   # (64,) sample offsets from the centre
    x, y = s[None, :], -s[:, None]                         # (1, 64), (64, 1); y points up
    t = math.radians(orientation)
    cos_t, sin_t = math.cos(t), math.sin(t)                # 2 scalars; the rest is + - * / only
    u = (cos_t * x + sin_t * y) / (scale * RADIUS)         # (64, 64) shape frame, turned by -t
    v = (cos_t * y - sin_t * x) / (scale * RADIUS)         # (64, 64)
    hits = _inside(shape, u, v).reshape(PATCH, SUB, PATCH, SUB).sum(axis=(1, 3))  # (16, 16)
    return (hits * 2 >= SUB * SUB).astype(np.uint8)        # on when coverage >= 1/2


def generate():
    """The complete grid: images uint8 (7680, 32, 32) of 0/1, factors float64 (7680, 5).

    Order: shape slowest, then scale, orientation, pos_x, pos_y fastest (C order over GRID).
    """
    patches = np.empty((*GRID[:3], PATCH, PATCH), np.uint8)     # (3, 5, 8, 16, 16)
    for i, shape in enumerate(SHAPES):
        for j, scale in enumerate(SCALES):
            for k, orientation in enumerate(ORIENTATIONS):
                patches[i, j, k] = render_patch(shape, scale, orientation)
    images = np.zeros((*GRID, SIZE, SIZE), np.uint8)      # (3, 5, 8, 8, 8, 32, 32)
    for ix, cx in enumerate(POSITIONS):
        for iy, cy in enumerate(POSITIONS):
            top, left = int(cy) - PATCH // 2, int(cx) - PATCH // 2
            images[:, :, :, ix, iy, top:top + PATCH, left:left + PATCH] = patches
    grids = np.meshgrid(*[np.asarray(v, np.float64) for v in FACTOR_VALUES], indexing="ij")
    factors = np.stack([g.ravel() for g in grids], axis=1)  # (7680, 5)
    return images.reshape(-1, SIZE, SIZE), factors


def factor_indices(factors: np.ndarray) -> np.ndarray:
    """int64 (N, 5) grid index of each factor value in factors (N, 5): orientation 22.5 -> 2."""
    idx = [np.searchsorted(np.asarray(v), factors[:, f]) for f, v in enumerate(FACTOR_VALUES)]
    return np.stack(idx, axis=1).astype(np.int64)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 mix of uint64 x (Steele, Lea & Flood 2014): a fixed pseudo-random hash."""
    z = x + np.uint64(0x9E3779B97F4A7C15)                 # uint64 arithmetic wraps mod 2**64
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def split_indices() -> dict:
    """{"train": idx, "test": idx}: sorted grid indices, 90% / 10%, the same everywhere."""
    n = math.prod(GRID)
    keys = _splitmix64(np.arange(n, dtype=np.uint64) + np.uint64(SPLIT_SEED))
    order = np.argsort(keys, kind="stable")
    n_test = round(n * TEST_FRACTION)
    return {"train": np.sort(order[n_test:]), "test": np.sort(order[:n_test])}


def load_split(split: str):
    """(x float32 (N, 1024), y int64 (N,), factors float64 (N, 5)) of split "train" or "test"."""
    images, factors = generate()
    idx = split_indices()[split]
    x = images[idx].reshape(len(idx), SIZE * SIZE).astype(np.float32)   # (N, 1024)
    return x, factors[idx, 0].astype(np.int64), factors[idx]
