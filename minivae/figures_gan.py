"""A GAN's figures: its samples, and the two players' losses and D's verdicts over training.

    plot_gan_curves(metrics)     left: D's loss -V(D, G) (train, test) and G's loss (train);
                                 right: D(real) and D(fake), D's mean probability of "real"
    make_gan_figures(gan, dataset, metrics, out_dir, rng)   samples.png, loss_curves.png

Where a GAN stands shows in both panels: at the game's equilibrium D cannot tell real from
fake, D(real) = D(fake) = 1/2 and D's loss is 2 log 2 (dotted lines). D's loss falling
towards 0 and D(fake) towards 0 means D is winning and G's gradient is fading.
"""

from pathlib import Path

import numpy as np

from minivae.errors import InputError
from minivae.figures import MaxNLocator, _save, plot_samples, plt, save_all

CURVES = (("loss", "D's loss -V(D, G)"), ("g_loss", "G's loss"))
VERDICTS = (("d_real", "D(real)"), ("d_fake", "D(fake)"))


def _values(metrics, key):
    """(epochs, values) of the rows of ``metrics`` that hold ``key``."""
    rows = [r for r in metrics if key in r]
    return [r["epoch"] for r in rows], [float(r[key]) for r in rows]


def plot_gan_curves(metrics, *, path=None):
    """D's and G's losses, and D(real), D(fake), per epoch, from a GAN run's metrics rows
    (train_loss, train_g_loss, train_d_real, train_d_fake, test_loss, test_d_real, ...)."""
    metrics = list(metrics)
    if not metrics or not all(isinstance(r, dict) and "epoch" in r for r in metrics):
        raise InputError("plot_gan_curves: expected a list of dict records with an 'epoch', "
                         "one per epoch")
    fig, axes = plt.subplots(1, 2, figsize=(9.0, 3.4), layout="constrained")
    for ax, terms, level, title in ((axes[0], CURVES, 2 * np.log(2), "losses (nats)"),
                                    (axes[1], VERDICTS, 0.5, "D's mean probability of real")):
        for (key, label), colour in zip(terms, ("C0", "C1")):
            for split, style in (("train", "-"), ("test", "--")):
                epochs, values = _values(metrics, f"{split}_{key}")
                if values:
                    ax.plot(epochs, values, style, color=colour, marker="o", markersize=3,
                            label=f"{label}, {split}")
        ax.axhline(level, color="0.5", linestyle=":", linewidth=1, label="equilibrium")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(frameon=False, fontsize=8)
    return _save(fig, path)


def make_gan_figures(gan, dataset, metrics, out_dir, rng):
    """samples.png (64 draws G(z)) and, given metrics, loss_curves.png; their paths."""
    if not hasattr(dataset, "image_shape"):
        raise InputError(f"make_gan_figures: expected a dataset with image_shape (a "
                         f"minivae.data.Dataset), got {type(dataset).__name__}")
    rng, out_dir = np.random.default_rng(rng), Path(out_dir)
    jobs = [("samples", lambda: plot_samples(gan, dataset.image_shape, n=64, rng=rng))]
    if metrics:
        jobs.append(("loss_curves", lambda: plot_gan_curves(metrics)))
    return save_all(jobs, out_dir)
