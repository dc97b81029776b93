"""Tests of minivae.figures: every figure comes back as a Figure and as a PNG that reads back,
the image grids hold exactly the decoded images they claim to show, and make_figures writes the
files that apply to each kind of model."""

import os
import subprocess
import sys
from pathlib import Path
from statistics import NormalDist
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from minivae import figures
from minivae.errors import InputError
from minivae.models import PCA, VAE, Autoencoder

SHAPE = (8, 8)
D = 64
METRICS = [{"epoch": e, "train_loss": 60.0 - e, "train_recon": 50.0 - e, "train_kl": 10.0,
            "test_loss": 62.0 - e, "test_recon": 51.0 - e, "test_kl": 11.0} for e in (1, 2, 3)]


@pytest.fixture(scope="module")
def dataset():
    rng = np.random.default_rng(0)
    x = (rng.random((120, D)) < 0.3).astype(np.float32)
    return SimpleNamespace(x=x, y=rng.integers(0, 4, 120), image_shape=SHAPE)


def vae(z_dim):
    return VAE(D, (16,), z_dim, rng=0)


def read_png(path):
    path = Path(path)
    assert path.is_file() and path.stat().st_size > 0
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4) and min(img.shape[:2]) > 50
    assert img[..., :3].std() > 0.01                       # not a blank canvas
    return img


def shown(fig, i=0):
    """The array drawn by the i-th image axes of fig."""
    return np.asarray(fig.axes[i].images[0].get_array())


# ---- image_grid ----

def test_image_grid_places_each_image_between_pads():
    images = np.arange(5 * 6, dtype=np.float64).reshape(5, 6) / 30           # 5 images of 2x3
    grid = figures.image_grid(images, (2, 3), nrow=3, pad=1, pad_value=0.5)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1)
    np.testing.assert_array_equal(grid[1:3, 1:4], images[0].reshape(2, 3))
    np.testing.assert_array_equal(grid[4:6, 5:8], images[4].reshape(2, 3))   # row 1, col 1
    assert (grid[4:6, 9:12] == 0.5).all()                                    # the empty cell
    assert (grid[0] == 0.5).all() and (grid[:, 4] == 0.5).all()


def test_image_grid_clips_and_defaults_to_a_square():
    grid = figures.image_grid(np.full((9, 4), 7.0), (2, 2), pad=0)
    assert grid.shape == (6, 6) and grid.max() == 1.0
    with pytest.raises(InputError, match="image_shape"):
        figures.image_grid(np.zeros((3, 5)), (2, 2))


# ---- every figure: a Figure back and a PNG on disk ----

def draw_all(model, ds):
    x, y = ds.x, ds.y
    return {
        "images": lambda p: figures.plot_images(x[:10], SHAPE, title="x", path=p),
        "reconstructions": lambda p: figures.plot_reconstructions(model, x[:8], SHAPE, path=p),
        "samples": lambda p: figures.plot_samples(model, SHAPE, n=16, rng=0, path=p),
        "interpolation": lambda p: figures.plot_interpolation(model, x[0], x[1], SHAPE, path=p),
        "traversals": lambda p: figures.plot_traversals(model, SHAPE, x=x[0], path=p),
        "manifold": lambda p: figures.plot_manifold(model, SHAPE, n=5, path=p),
        "latent_scatter": lambda p: figures.plot_latent_scatter(model, x, y, path=p),
        "loss_curves": lambda p: figures.plot_loss_curves(METRICS, path=p),
        "kl_per_dim": lambda p: figures.plot_kl_per_dim([0.5, 2.0], path=p),
    }


def test_every_figure_is_returned_and_saved_only_when_asked(dataset, tmp_path):
    model = vae(2)
    for name, draw in draw_all(model, dataset).items():
        before = set(tmp_path.rglob("*"))
        fig = draw(None)
        assert isinstance(fig, Figure), name
        assert set(tmp_path.rglob("*")) == before, name               # no path: nothing written
        path = tmp_path / "sub" / f"{name}.png"
        assert isinstance(draw(path), Figure)
        read_png(path)
        figures.plt.close("all")


def test_a_figure_that_fails_half_written_leaves_the_old_picture(tmp_path, monkeypatch):
    """Figures are drawn in memory and replace the file at once: a write that dies half-way
    (a full disk, say) leaves the previous PNG whole, and no temporary file behind."""
    from minivae.errors import MinivaeError
    from minivae.run import atomic
    path = tmp_path / "images.png"
    figures.plot_images(np.zeros((4, 4)), (2, 2), path=path)
    old = path.read_bytes()

    def half_then_fail(f, data):
        f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(atomic, "_write_all", half_then_fail)
    with pytest.raises(MinivaeError, match="No space left"):
        figures.plot_images(np.ones((4, 4)), (2, 2), path=path)
    assert path.read_bytes() == old
    read_png(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.png"]
    figures.plt.close("all")


# ---- the grids show what they say ----

def test_interpolation_rows_are_latent_then_pixel(dataset):
    model, x = vae(3), dataset.x
    fig = figures.plot_interpolation(model, x[0], x[1], SHAPE, steps=4)
    t = np.linspace(0, 1, 4)[:, None]
    mu = np.array(model.encode(x[:2])[0])
    latent = model.decode(np.ascontiguousarray((1 - t) * mu[0] + t * mu[1], dtype=np.float32))
    pixel = (1 - t) * x[0] + t * x[1]
    expected = figures.image_grid(np.concatenate([latent, pixel]), SHAPE, 4)
    np.testing.assert_allclose(shown(fig), expected, atol=1e-6)
    labels = [tick.get_text() for tick in fig.axes[0].get_yticklabels()]
    assert labels == ["in latent space", "in pixel space"]
    figures.plt.close(fig)


def test_traversals_move_one_dimension_per_row():
    model = vae(3)
    fig = figures.plot_traversals(model, SHAPE, dims=[2, 0], steps=3, span=2.0)
    z = np.zeros((6, 3), np.float32)
    z[:3, 2] = z[3:, 0] = [-2.0, 0.0, 2.0]
    np.testing.assert_allclose(shown(fig), figures.image_grid(model.decode(z), SHAPE, 3),
                               atol=1e-6)
    assert "other dimensions at 0" in fig.axes[0].get_title()
    figures.plt.close(fig)


def test_manifold_walks_the_normal_quantiles_with_z1_upwards():
    model = vae(2)
    fig = figures.plot_manifold(model, SHAPE, n=3)
    q = [NormalDist().inv_cdf(p) for p in (0.05, 0.5, 0.95)]
    z = np.array([(a, b) for b in q[::-1] for a in q], np.float32)      # top row: z1 = q[-1]
    np.testing.assert_allclose(shown(fig), figures.image_grid(model.decode(z), SHAPE, 3),
                               atol=1e-6)
    figures.plt.close(fig)
    with pytest.raises(InputError, match="2-D latent"):
        figures.plot_manifold(vae(3), SHAPE)


def test_latent_scatter_says_which_projection_it_shows(dataset):
    for z_dim, words in ((1, "1-D"), (2, "2-D latent space"), (5, "PCA projection of mu")):
        fig = figures.plot_latent_scatter(vae(z_dim), dataset.x, dataset.y)
        assert words in fig.axes[0].get_title()
        figures.plt.close(fig)
    fig = figures.plot_latent_scatter(vae(2), dataset.x)            # no labels: one colour
    assert len(fig.axes[0].collections) == 1
    figures.plt.close(fig)


def test_loss_curves_read_flat_and_nested_records():
    nested = [{"epoch": r["epoch"], **{s: {t: r[f"{s}_{t}"] for t in ("loss", "recon", "kl")}
                                       for s in ("train", "test")}} for r in METRICS]
    for metrics in (METRICS, nested):
        fig = figures.plot_loss_curves(metrics)
        titles = [ax.get_title() for ax in fig.axes]
        assert len(titles) == 3 and "reconstruction" in titles[1] and "KL" in titles[2]
        recon_train, recon_test = fig.axes[1].lines
        np.testing.assert_array_equal(recon_train.get_xdata(), [1, 2, 3])
        np.testing.assert_array_equal(recon_train.get_ydata(), [49.0, 48.0, 47.0])
        np.testing.assert_array_equal(recon_test.get_ydata(), [50.0, 49.0, 48.0])
        figures.plt.close(fig)
    fig = figures.plot_loss_curves([{"epoch": 1, "train_loss": 3.0, "test_loss": 4.0}])
    assert len(fig.axes) == 1                                      # an autoencoder: loss only
    figures.plt.close(fig)
    with pytest.raises(InputError, match="train_recon"):
        figures.plot_loss_curves([{"epoch": 1, "accuracy": 0.5}])


# ---- make_figures and sample_grid ----

VAE_FILES = {"reconstructions", "samples", "interpolation", "traversals", "latent_scatter",
             "loss_curves", "kl_per_dim"}


@pytest.mark.parametrize("z_dim", [2, 4])
def test_make_figures_for_a_vae(dataset, tmp_path, z_dim):
    open_before = len(figures.plt.get_fignums())
    paths = figures.make_figures(vae(z_dim), dataset, METRICS, tmp_path / "figs", rng=0)
    names = {p.stem for p in paths}
    assert names == VAE_FILES | ({"manifold"} if z_dim == 2 else set())
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(p.name for p in paths)
    for p in paths:
        read_png(p)
    assert len(figures.plt.get_fignums()) == open_before          # it closed what it drew


def test_make_figures_without_labels_or_metrics(dataset, tmp_path):
    ds = SimpleNamespace(x=dataset.x, y=None, image_shape=SHAPE)
    names = {p.stem for p in figures.make_figures(vae(3), ds, [], tmp_path, rng=0)}
    assert names == VAE_FILES - {"latent_scatter", "loss_curves"}


def test_make_figures_for_deterministic_autoencoders(dataset, tmp_path):
    pca = PCA(3, x_dim=D)
    pca.fit(dataset.x)
    for model in (pca, Autoencoder(D, (16,), 3, rng=0)):
        out = tmp_path / type(model).__name__
        paths = figures.make_figures(model, dataset, METRICS[:1], out, rng=0)
        assert {p.stem for p in paths} == {"reconstructions", "interpolation", "latent_scatter",
                                           "loss_curves"}
        for p in paths:
            read_png(p)


def test_sample_grid_writes_the_file_it_returns(tmp_path):
    open_before = len(figures.plt.get_fignums())
    path = figures.sample_grid(vae(2), 9, np.random.default_rng(0), tmp_path / "s.png", SHAPE)
    assert path == tmp_path / "s.png"
    read_png(path)
    assert len(figures.plt.get_fignums()) == open_before


def test_a_fresh_process_with_no_backend_chosen_gets_agg():
    code = "import minivae.figures, matplotlib; print(matplotlib.get_backend().lower())"
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get(
        "PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "agg"


def test_a_chosen_backend_is_left_alone(monkeypatch):
    monkeypatch.delenv("MPLBACKEND", raising=False)
    monkeypatch.setattr(figures.matplotlib.rcParams, "_get_backend_or_none", lambda: None,
                        raising=False)
    assert not figures._backend_chosen()                         # nobody chose: Agg is used
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")   # Jupyter
    assert figures._backend_chosen()
    monkeypatch.delenv("MPLBACKEND")
    monkeypatch.setattr(figures.matplotlib.rcParams, "_get_backend_or_none", lambda: "svg",
                        raising=False)
    assert figures._backend_chosen()                             # a matplotlibrc or use()
