"""Figures for autoencoders and VAEs, as PNG files or inline in a notebook.

Every ``plot_*`` function returns its matplotlib Figure and writes a PNG only when given
``path``. Images are flattened rows of x shown in ``image_shape`` with a grey colormap and
values clipped to [0, 1] (Bernoulli decoders give probabilities, Gaussian ones means).

    image_grid(images, image_shape, nrow)          the tiling every image figure uses
    plot_reconstructions, plot_samples, plot_interpolation, plot_traversals,
    plot_manifold, plot_latent_scatter, plot_loss_curves, plot_kl_per_dim
    make_figures(model, dataset, metrics, out_dir, rng)   every figure that applies, by name
    sample_grid(model, n, rng, path, image_shape)         prior samples straight to a PNG

Backend: if neither the user nor the environment chose one, this module selects Agg
(headless); so it does, with a warning, if MPLBACKEND names no backend matplotlib knows (which
would otherwise stop matplotlib from importing, and `minivae train` after its training). In Jupyter the inline backend shows a new figure when the cell ends; assign the
result (``fig = plot_samples(...)``) rather than leaving it last, or it is shown twice.
``make_figures`` and ``sample_grid`` close the figures they write.
"""

import io
import math
import os
import sys
import warnings
from pathlib import Path
from statistics import NormalDist

import numpy as np

_FRESH = "matplotlib" not in sys.modules
_ENV_BACKEND = os.environ.pop("MPLBACKEND", None) if _FRESH else None
# matplotlib refuses to import with a bad MPLBACKEND: import it without, then set what it says
try:
    import matplotlib
finally:
    if _ENV_BACKEND is not None:
        os.environ["MPLBACKEND"] = _ENV_BACKEND
if _ENV_BACKEND:
    try:
        matplotlib.rcParams["backend"] = _ENV_BACKEND     # what matplotlib does with it
    except ValueError:
        matplotlib.use("Agg")
        warnings.warn(f"MPLBACKEND={_ENV_BACKEND!r} is not a matplotlib backend; figures are "
                      "drawn with Agg (image files) instead", stacklevel=2)


def _backend_chosen():
    """True if the user, the environment (MPLBACKEND, a matplotlibrc, Jupyter) or an earlier
    pyplot import has fixed matplotlib's backend."""
    get = getattr(matplotlib.rcParams, "_get_backend_or_none", None)     # matplotlib >= 3.7
    return bool(os.environ.get("MPLBACKEND")) or get is None or get() is not None


if not _backend_chosen():
    matplotlib.use("Agg")                                  # nobody chose a backend: headless

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from minivae.checks import check_count
from minivae.errors import InputError
from minivae.evaluate import is_variational, kl_per_dim
from minivae.run.atomic import atomic_write

CMAP = "gray"
INCH_PER_PIXEL = 1 / 36            # a 28-pixel digit is drawn about 0.8 inch wide
MAX_INCHES = 10.0                  # larger grids are scaled down to this width or height
PAD_VALUE = 0.5                    # mid grey between tiles: visible on black and white images


# ---- the shared helpers ----

def image_grid(images, image_shape, nrow=None, *, pad=1, pad_value=PAD_VALUE):
    """Tile images into one array, ``nrow`` images per row.   (n, D) -> (rows (H+pad)+pad, ...).

    ``images`` (n, D) or (n, *image_shape); values are clipped to [0, 1]. ``nrow`` defaults
    to ceil(sqrt(n)); empty cells of the last row and the borders are ``pad_value``.
    """
    h, w = _image_shape(image_shape, "image_grid")
    images = np.asarray(images, dtype=np.float64)
    n = len(images)
    if n == 0 or images.size != n * h * w:
        raise InputError(f"image_grid: expected (n, {h * w}) images for image_shape "
                         f"{tuple(image_shape)}, got {images.shape}")
    nrow = int(nrow) if nrow else math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad), float(pad_value))
    for i, img in enumerate(np.clip(images.reshape(n, h, w), 0.0, 1.0)):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad):(r + 1) * (h + pad), pad + c * (w + pad):(c + 1) * (w + pad)] = img
    return grid


def _image_shape(image_shape, who):
    """(H, W) as two positive ints, or InputError."""
    try:
        h, w = (int(v) for v in image_shape)
        ok = h >= 1 and w >= 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"{who}: expected image_shape (H, W), two positive integers such as "
                         f"(28, 28), got {image_shape!r}")
    return h, w


def _grid_figure(panels, title=None):
    """One image axes per (grid, title) in ``panels``, side by side, sized to the pixels."""
    height = max(g.shape[0] for g, _ in panels) * INCH_PER_PIXEL
    width = sum(g.shape[1] for g, _ in panels) * INCH_PER_PIXEL
    scale = min(1.0, MAX_INCHES / max(width, height))                   # big grids: smaller cells
    size = (max(width * scale + 0.3 * len(panels), 3.0), max(height * scale + 0.6, 1.5))
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False,
                             layout="constrained")
    for ax, (grid, sub) in zip(axes[0], panels):
        _show(ax, grid, sub)
    if title:
        fig.suptitle(title)
    return fig, axes[0]


def _show(ax, grid, title):
    ax.imshow(grid, cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=10)


def _label_rows(ax, labels, cell, pad=1):
    """Put ``labels`` at the centres of the grid's rows of cells ``cell`` pixels high."""
    ax.set_yticks([pad + r * (cell + pad) + cell / 2 for r in range(len(labels))], labels)
    ax.tick_params(axis="y", length=0, labelsize=9)


def _save(fig, path):
    """Draw ``fig`` into memory, then replace ``path`` by it at once: never half a picture."""
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=100)
        atomic_write(path, buf.getvalue())
    return fig


def _dtype(model, default=np.float64):
    return np.dtype(getattr(model, "dtype", default))


def _codes(model, x):
    """Encoder means (VAE) or codes (AE, PCA).   x (N, D) -> (N, Z) float64."""
    out = model.encode(np.ascontiguousarray(x, dtype=_dtype(model, x.dtype)))
    return np.array(out[0] if isinstance(out, tuple) else out, dtype=np.float64)


def _decode(model, z):
    """Decoder means for codes z (N, Z), as float64 for display."""
    return np.asarray(model.decode(np.ascontiguousarray(z, dtype=_dtype(model))), np.float64)


def _rows(x):
    x = np.asarray(x)
    return x.reshape(1, -1) if x.ndim == 1 else x


# ---- the figures ----

def plot_images(images, image_shape, nrow=None, *, title=None, path=None):
    """Any batch of flattened images as one grid."""
    fig, _ = _grid_figure([(image_grid(images, image_shape, nrow), title)])
    return _save(fig, path)


def plot_reconstructions(model, x, image_shape, *, nrow=None, path=None):
    """Inputs x (n, D) and their reconstructions, in the same places on two grids."""
    x = _rows(x)
    recon = model.reconstruct(np.ascontiguousarray(x, dtype=_dtype(model, x.dtype)))
    what = "decode(mu(x))" if is_variational(model) else "decode(encode(x))"
    fig, _ = _grid_figure([(image_grid(x, image_shape, nrow), f"inputs x ({len(x)})"),
                           (image_grid(recon, image_shape, nrow), f"reconstructions {what}")])
    return _save(fig, path)


def plot_samples(model, image_shape, *, n=64, rng=None, nrow=None, path=None):
    """Decoder means at n draws z ~ N(0, I) from the prior (a GAN: its generator's G(z))."""
    n = check_count(n, "plot_samples", "n")
    if not hasattr(model, "z_dim"):
        raise InputError(f"plot_samples: {type(model).__name__} has no latent prior to sample "
                         "from; expected a VAE, a WAE or a GAN")
    rng = np.random.default_rng(getattr(model, "rng", None) if rng is None else rng)
    z = rng.standard_normal((n, model.z_dim))
    if hasattr(model, "generate"):                                       # a GAN
        images = np.asarray(model.generate(np.ascontiguousarray(z, dtype=_dtype(model))),
                            np.float64)
        title = f"{n} samples G(z), z ~ N(0, I)"
    else:
        bernoulli = "bernoulli" in (getattr(model, "likelihood", ""), getattr(model, "output", ""))
        images = _decode(model, z)
        title = (f"{n} samples from the prior: decoder "
                 f"{'probabilities' if bernoulli else 'means'} at z ~ N(0, I)")
    fig, _ = _grid_figure([(image_grid(images, image_shape, nrow), title)])
    return _save(fig, path)


def plot_interpolation(model, x_a, x_b, image_shape, *, steps=10, path=None):
    """From x_a to x_b: decode((1-t) z_a + t z_b) (top) against (1-t) x_a + t x_b (bottom)."""
    x_a, x_b = _rows(x_a), _rows(x_b)
    if x_a.shape != x_b.shape or len(x_a) != 1:
        raise InputError(f"plot_interpolation: expected two images x_a, x_b of the same size "
                         f"(D,), got shapes {np.shape(x_a)} and {np.shape(x_b)}")
    x_ab = np.concatenate([x_a, x_b])                                   # (2, D)
    steps = check_count(steps, "plot_interpolation", "steps", lo=2)
    t = np.linspace(0.0, 1.0, steps)[:, None]                           # (steps, 1)
    z_a, z_b = _codes(model, x_ab)
    latent = _decode(model, (1 - t) * z_a + t * z_b)                   # (steps, D)
    pixel = (1 - t) * x_ab[0] + t * x_ab[1]                             # (steps, D)
    grid = image_grid(np.concatenate([latent, pixel]), image_shape, len(t))
    fig, (ax,) = _grid_figure([(grid, "Interpolation from x_a (left) to x_b (right)")])
    _label_rows(ax, ["in latent space", "in pixel space"], int(image_shape[0]))
    return _save(fig, path)


def plot_traversals(model, image_shape, *, x=None, dims=None, max_dims=10, steps=9, span=3.0,
                    kl=None, path=None):
    """Each row moves one latent dimension from -span to +span, the others held fixed.

    Held at mu(x) for one input x, or at 0 (the prior's mean) without x. ``dims`` picks
    the rows (default: the first ``max_dims`` dimensions); ``kl`` (Z,), the KL per
    dimension, labels each row with its KL.
    """
    who = "plot_traversals"
    z_dim = model.z_dim
    base = np.zeros(z_dim) if x is None else _codes(model, _rows(x)[:1])[0]
    if dims is None:
        dims = list(range(min(z_dim, check_count(max_dims, who, "max_dims"))))
    else:
        dims = [check_count(d, who, "dims entry", lo=0) for d in dims]
    if not dims or max(dims) >= z_dim:
        raise InputError(f"{who}: expected dims in 0..{z_dim - 1} (the model has Z = {z_dim}), "
                         f"got {dims}")
    if kl is not None and len(kl) != z_dim:
        raise InputError(f"{who}: expected kl with one value per latent dimension ({z_dim}), "
                         f"got {len(kl)}")
    if not (isinstance(span, (int, float, np.number)) and np.isfinite(span) and span > 0):
        raise InputError(f"{who}: expected span a finite number > 0, got {span!r}")
    values = np.linspace(-span, span, check_count(steps, who, "steps"))
    z = np.repeat(base[None, :], len(dims) * len(values), axis=0)       # (rows * steps, Z)
    for r, d in enumerate(dims):
        z[r * len(values):(r + 1) * len(values), d] = values
    grid = image_grid(_decode(model, z), image_shape, len(values))
    held = "0" if x is None else "mu(x)"
    title = f"Latent traversals: z_j from {-span:g} to {span:g}, other dimensions at {held}"
    fig, (ax,) = _grid_figure([(grid, title)])
    labels = [f"z{d}" if kl is None else f"z{d}\nKL {kl[d]:.2f}" for d in dims]
    _label_rows(ax, labels, int(image_shape[0]))
    return _save(fig, path)


def plot_manifold(model, image_shape, *, n=20, path=None):
    """The decoder over a 2-D latent: z on an n x n grid of N(0, 1) quantiles 5%..95%.

    z_i = Phi^-1(p_i) spaces the grid by prior probability, so every cell covers the same
    prior mass. Only for Z = 2. z0 grows to the right, z1 upwards.
    """
    if model.z_dim != 2:
        raise InputError(f"plot_manifold: needs a 2-D latent space, the model has Z = {model.z_dim}")
    n = check_count(n, "plot_manifold", "n")
    q = [NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, n)]
    z = np.array([(a, b) for b in q[::-1] for a in q])                 # rows: z1 from high to low
    fig, (ax,) = _grid_figure([(image_grid(_decode(model, z), image_shape, len(q)),
                                "Learned manifold: decode(z), z = Phi^-1(p), p in 5%..95%")])
    ax.set_xlabel("z0 ->")
    ax.set_ylabel("z1 ->")
    return _save(fig, path)


def plot_latent_scatter(model, x, y=None, *, path=None):
    """Codes of x coloured by label y: mu's two dimensions, or its first two principal axes."""
    mu = _codes(model, x)                                               # (N, Z)
    if y is not None and np.shape(y) != (len(mu),):
        raise InputError(f"plot_latent_scatter: expected y with one label per row of x, shape "
                         f"({len(mu)},), got {np.shape(y)}")
    name = "mu" if is_variational(model) else "code"
    if mu.shape[1] == 1:
        xy = np.column_stack([mu[:, 0], np.random.default_rng(0).uniform(-1, 1, len(mu))])
        title, labels = f"1-D {name} (vertical position is random jitter)", (f"{name}0", "")
    elif mu.shape[1] == 2:
        xy, title, labels = mu, f"{name} (the 2-D latent space)", (f"{name}0", f"{name}1")
    else:
        centred = mu - mu.mean(axis=0)
        _, s, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T                                         # (N, 2)
        share = (s[:2] ** 2).sum() / max((s ** 2).sum(), 1e-300)
        title = f"PCA projection of {name} (Z = {mu.shape[1]} -> 2, {share:.0%} of its variance)"
        labels = ("PC 1", "PC 2")
    fig, ax = plt.subplots(figsize=(6.0, 5.0), layout="constrained")
    if y is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=4, alpha=0.6, color="0.2", linewidths=0)
    else:
        y = np.asarray(y)
        classes = np.unique(y)
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "viridis")
        for i, c in enumerate(classes):
            m = y == c
            colour = cmap(i % 10) if len(classes) <= 10 else cmap(i / max(len(classes) - 1, 1))
            ax.scatter(xy[m, 0], xy[m, 1], s=4, alpha=0.6, color=colour, linewidths=0,
                       label=str(c))
        if len(classes) <= 10:
            ax.legend(title="label", markerscale=3, fontsize=8, loc="best", frameon=False)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(f"{title}, {len(xy)} examples", fontsize=10)
    return _save(fig, path)


TERMS = (("loss", "loss"), ("recon", "reconstruction -log p(x|z)"),
         ("kl", "KL(q(z|x) || p(z))"), ("mmd", "MMD^2(codes, prior) (wae)"))
SPLITS = ("train", "valid", "test")


def _series(metrics, split, term):
    """(steps, values) of one split's term; records may be flat ("train_kl", "train/kl"),
    nested ({"train": {"kl": ...}}) or tagged ({"split": "train", "kl": ...})."""
    steps, values = [], []
    for i, r in enumerate(metrics):
        if isinstance(r.get(split), dict):
            v = r[split].get(term)
        elif r.get("split") == split:
            v = r.get(term)
        else:
            v = r.get(f"{split}_{term}", r.get(f"{split}/{term}"))
        if v is not None:
            steps.append(r.get("epoch", r.get("step", i + 1)))
            values.append(float(v))
    return steps, values


def plot_loss_curves(metrics, *, path=None):
    """Training curves, one panel per term (loss, recon, kl), train solid and test dashed.

    ``metrics`` is a list of records, one per epoch (or step), with an "epoch" (or "step")
    and values named like "train_recon", "test_kl" (or nested {"train": {"recon": ...}}).
    """
    metrics = list(metrics)
    if not all(isinstance(r, dict) for r in metrics):
        raise InputError("plot_loss_curves: expected a list of dict records (one per epoch), "
                         f"got items of type {sorted({type(r).__name__ for r in metrics})}")
    try:
        found = {t: {s: _series(metrics, s, t) for s in SPLITS} for t, _ in TERMS}
    except (TypeError, ValueError) as e:
        raise InputError(f"plot_loss_curves: a value is not a number ({e})") from None
    panels = [(t, label) for t, label in TERMS if any(found[t][s][1] for s in SPLITS)]
    if not panels:
        raise InputError("plot_loss_curves: found no values; expected records with keys like "
                         "'train_loss', 'train_recon', 'train_kl', 'test_recon' and 'epoch'")
    variational = bool(any(found["kl"][s][1] for s in SPLITS))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False,
                             layout="constrained")
    for ax, (term, label) in zip(axes[0], panels):
        steps = set()
        for split, style in zip(SPLITS, ("-", ":", "--")):
            xs, values = found[term][split]
            if values:
                ax.plot(xs, values, style, marker="o", markersize=3, label=split)
                steps.update(xs)
        if term == "loss" and variational:
            label = "loss = recon + beta KL (as trained)"
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("epoch" if "epoch" in metrics[0] else "step")
        ax.set_ylabel("nats per example" if variational else "per example")
        if len(steps) <= 10:
            ax.set_xticks(sorted(steps))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def plot_kl_per_dim(kl, *, path=None):
    """Bar chart of the mean KL of each latent dimension (e.g. ``evaluate(...)["kl_per_dim"]``)."""
    kl = np.asarray(kl, dtype=np.float64)
    if kl.ndim != 1 or kl.size == 0 or not np.isfinite(kl).all():
        raise InputError(f"plot_kl_per_dim: expected kl of shape (Z,), finite, one value per "
                         f"latent dimension; got shape {kl.shape}"
                         + (" with NaN or infinity" if kl.size and not np.isfinite(kl).all()
                            else ""))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.3 * len(kl) + 1.5), 3.2), layout="constrained")
    ax.bar(np.arange(len(kl)), kl, width=0.7 if len(kl) > 4 else 0.4, color="0.35")
    ax.set_xlabel("latent dimension")
    ax.set_ylabel("KL (nats)")
    ax.set_title(f"KL per latent dimension, mean over x (total {kl.sum():.2f} nats)", fontsize=10)
    if len(kl) <= 32:
        ax.set_xticks(np.arange(len(kl)))
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# ---- a run's figures ----

def make_figures(model, dataset, metrics, out_dir, rng, *, n_scatter=2000):
    """Write every figure that applies to ``model`` into out_dir; return their paths.

    VAE: reconstructions, samples, interpolation, traversals, manifold (Z = 2 only),
    latent_scatter (when dataset.y exists), loss_curves (when metrics), kl_per_dim.
    AE, PCA and other deterministic codes: reconstructions, interpolation, latent_scatter,
    loss_curves; a WAE also samples. A GAN: samples and its own loss curves (figures_gan.py).
    ``dataset`` needs x (N, D), y (or None) and image_shape.
    """
    if hasattr(model, "discriminator"):                                  # a GAN: no encoder
        from minivae.figures_gan import make_gan_figures
        return make_gan_figures(model, dataset, metrics, out_dir, rng)
    rng = np.random.default_rng(rng)
    out_dir = Path(out_dir)
    if not (hasattr(dataset, "x") and hasattr(dataset, "image_shape")):
        raise InputError(f"make_figures: expected a dataset with x (N, D), y and image_shape "
                         f"(a minivae.data.Dataset), got {type(dataset).__name__}")
    x, shape, y = dataset.x, dataset.image_shape, getattr(dataset, "y", None)
    if len(x) == 0:
        raise InputError("make_figures: the dataset is empty; expected at least one example")
    pick = rng.choice(len(x), size=min(len(x), 16), replace=False)
    some = rng.choice(len(x), size=min(len(x), int(n_scatter)), replace=False)
    vae = is_variational(model)
    jobs = [("reconstructions", lambda: plot_reconstructions(model, x[pick], shape))]
    if vae or hasattr(model, "sample"):                                  # a prior: VAE, WAE
        jobs.append(("samples", lambda: plot_samples(model, shape, n=64, rng=rng)))
    if len(x) >= 2:
        jobs.append(("interpolation", lambda: plot_interpolation(model, x[pick[0]], x[pick[1]],
                                                                 shape)))
    if vae:
        mu, logvar = (np.array(a) for a in model.encode(
            np.ascontiguousarray(x[some], dtype=_dtype(model))))
        kl = kl_per_dim(mu, logvar)
        order = np.argsort(-kl)[:10]                                     # most used first
        jobs.append(("traversals", lambda: plot_traversals(model, shape, x=x[pick[0]],
                                                           dims=order, kl=kl)))
        if model.z_dim == 2:
            jobs.append(("manifold", lambda: plot_manifold(model, shape)))
    if y is not None:
        jobs.append(("latent_scatter", lambda: plot_latent_scatter(model, x[some], y[some])))
    if metrics:
        jobs.append(("loss_curves", lambda: plot_loss_curves(metrics)))
    if vae:
        jobs.append(("kl_per_dim", lambda: plot_kl_per_dim(kl)))
    return save_all(jobs, out_dir)


def save_all(jobs, out_dir):
    """Draw each (name, draw) of ``jobs`` and write it to out_dir/name.png, one figure open
    at a time; the paths."""
    paths = []
    for name, draw in jobs:
        fig = draw()
        paths.append(Path(out_dir) / f"{name}.png")
        _save(fig, paths[-1])
        plt.close(fig)
    return paths


def sample_grid(model, n, rng, path, image_shape):
    """Write a grid of n prior samples to ``path`` (PNG); return the path."""
    fig = plot_samples(model, image_shape, n=n, rng=rng, path=path)
    plt.close(fig)
    return Path(path)
