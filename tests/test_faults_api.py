"""Fault injection, the Python API: what a student types at a prompt. Nothing is coerced
silently: every constructor and public method checks types and ranges where they are handed
over, and raises an InputError that names itself and what it expected.

    constructors     VAE(16, hidden=400), hidden="12" (once layers (1, 2)), hidden=(1.5,) (once
                     (1,)), x_dim=16.9 (once 16), beta="1", rng="seed", PCA(2.7), ... for VAE,
                     Autoencoder, DenoisingAutoencoder, LinearAutoencoder, PCA, DiagonalGaussian
                     and GaussianMixture
    np.matrix        a subclass of ndarray with other rules (once a numba TypingError): refused
                     by every entry point that takes arrays; np.memmap is accepted
    beta = 1e300     more than float32 holds: refused; in float64, loss and gradients finite
"""

import functools

import numpy as np
import pytest

from minivae import InputError
from minivae.evaluate import evaluate, kl_per_dim
from minivae.models import (
    PCA,
    VAE,
    Autoencoder,
    DenoisingAutoencoder,
    DiagonalGaussian,
    GaussianMixture,
    LinearAutoencoder,
)
from minivae.optim import Adam
from minivae.train import fit

D, Z = 16, 2

CONSTRUCTORS = [   # (call, words of the InputError)
    (lambda: VAE(D, hidden=400), "VAE: hidden must be a list or tuple of layer sizes"),
    (lambda: VAE(D, hidden="12"), "VAE: hidden must be a list or tuple of layer sizes"),
    (lambda: VAE(D, hidden=(1.5,)), "VAE: each hidden size must be a positive integer, got 1.5"),
    (lambda: VAE(D, hidden=[True]), "each hidden size must be a positive integer, got True"),
    (lambda: VAE(16.9), "VAE: x_dim must be a positive integer, got 16.9"),
    (lambda: VAE(D, z_dim=np.float64(2)), "VAE: z_dim must be a positive integer"),
    (lambda: VAE(D, beta="1"), "VAE: beta must be a finite number >= 0"),
    (lambda: VAE(D, beta=-1.0), "VAE: beta must be a finite number >= 0"),
    (lambda: VAE(D, beta=10 ** 400), "VAE: beta must be a finite number >= 0"),
    (lambda: VAE(D, beta=1e300), "VAE: beta must be a finite number >= 0 and <= 3.40282e+38"),
    (lambda: VAE(D, sigma="0.1"), "VAE: sigma must be a finite number > 0"),
    (lambda: VAE(D, likelihood="Bernoulli"), "VAE: likelihood must be one of"),
    (lambda: VAE(D, rng="seed"), "VAE: rng must be a numpy Generator, a seed"),
    (lambda: VAE(D, rng=-1), "VAE: rng must be a numpy Generator, a seed"),
    (lambda: Autoencoder(D, hidden=400), "Autoencoder: hidden must be a list or tuple"),
    (lambda: Autoencoder(16.9), "Autoencoder: x_dim must be a positive integer"),
    (lambda: Autoencoder(D, output="l2"), "Autoencoder: output must be one of"),
    (lambda: Autoencoder(D, rng=1.5), "Autoencoder: rng must be a numpy Generator"),
    (lambda: DenoisingAutoencoder(D, noise_level="0.3"), "noise_level must be a finite number"),
    (lambda: DenoisingAutoencoder(D, noise="salt"), "DenoisingAutoencoder: noise must be one"),
    (lambda: LinearAutoencoder(D, 2.5), "LinearAutoencoder: z_dim must be a positive integer"),
    (lambda: LinearAutoencoder(D, Z, rng=[1.5]), "LinearAutoencoder: rng must be"),
    (lambda: PCA(2.7), "PCA: n_components must be a positive integer, got 2.7"),
    (lambda: PCA("3"), "PCA: n_components must be a positive integer, got '3'"),
    (lambda: PCA(True), "PCA: n_components must be a positive integer, got True"),
    (lambda: PCA(2, x_dim=16.5), "PCA: x_dim must be a positive integer, got 16.5"),
    (lambda: PCA(2, x_dim="16"), "PCA: x_dim must be a positive integer, got '16'"),
    (lambda: PCA(2, method=["eigh"]), "PCA: method must be one of ('eigh', 'svd')"),
    (lambda: PCA(2, dtype="int8"), "PCA: dtype must be float32 or float64"),
    (lambda: DiagonalGaussian(reg="1"), "DiagonalGaussian: reg must be a finite number >= 0"),
    (lambda: DiagonalGaussian(reg=None), "DiagonalGaussian: reg must be a finite number >= 0"),
    (lambda: GaussianMixture(2.5), "GaussianMixture: n_components must be a positive integer"),
    (lambda: GaussianMixture("2"), "GaussianMixture: n_components must be a positive integer"),
    (lambda: GaussianMixture(2, max_iter=1.5), "GaussianMixture: max_iter must be a positive"),
    (lambda: GaussianMixture(2, tol="x"), "GaussianMixture: tol must be a finite number >= 0"),
    (lambda: GaussianMixture(2, tol=float("nan")), "GaussianMixture: tol must be a finite"),
    (lambda: GaussianMixture(2, covariance=["full"]), "covariance must be one of"),
    (lambda: GaussianMixture(2, init="kmeans"), "GaussianMixture: init must be one of"),
]


@pytest.mark.parametrize("call, words", CONSTRUCTORS, ids=[w for _, w in CONSTRUCTORS])
def test_constructors_refuse_what_they_would_coerce(call, words):
    with pytest.raises(InputError) as info:
        call()
    assert words in str(info.value), str(info.value)


def test_densities_refuse_a_count_they_would_round():
    z = np.random.default_rng(0).standard_normal((20, Z))
    for density in (DiagonalGaussian(rng=0).fit(z), GaussianMixture(2, rng=0).fit(z)):
        who = f"{type(density).__name__}.sample"
        for n in (2.5, "3", 0, True):
            with pytest.raises(InputError, match=f"{who}: expected an integer n >= 1"):
                density.sample(n)
        assert density.sample(np.int64(3)).shape == (3, Z)


def _x(n=6):
    return (np.random.default_rng(1).random((n, D)) < 0.5).astype(np.float32)


MODELS = {
    "vae": lambda: VAE(D, (4,), Z, rng=0),
    "ae": lambda: Autoencoder(D, (4,), Z, rng=0),
    "dae": lambda: DenoisingAutoencoder(D, (4,), Z, rng=0),
    "linear-ae": lambda: LinearAutoencoder(D, Z, rng=0),
    "pca": lambda: PCA(Z).fit(_x(20)),
}


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")     # numpy's, on np.matrix
@pytest.mark.parametrize("name", list(MODELS))
def test_a_matrix_is_refused_by_every_entry_point(name):
    """np.matrix is an ndarray whose * multiplies matrices and whose rows stay 2-D: it once
    reached numba and failed there with a TypingError."""
    model, x = MODELS[name](), np.asmatrix(_x())
    calls = [functools.partial(getattr(model, m), x) for m in
             ("loss", "encode", "reconstruct", "corrupt") if hasattr(model, m)]
    calls += [functools.partial(evaluate, model, x)]
    if name == "vae":
        calls += [functools.partial(model.iwae_bound, x, 3),
                  functools.partial(model.decode, np.asmatrix(np.zeros((2, Z), np.float32)))]
    if name != "pca":
        calls += [functools.partial(fit, model, x, Adam(model.params), 1)]
    for call in calls:
        with pytest.raises(InputError, match="expected x to be a plain numpy array, got a "
                                             "matrix|expected z to be a plain numpy array"):
            call()
    with pytest.raises(InputError, match="plain numpy array, got a MaskedArray"):
        model.reconstruct(np.ma.masked_array(_x(), mask=_x() > 0))
    with pytest.raises(InputError, match="plain numpy array, got a matrix"):
        kl_per_dim(np.asmatrix(np.zeros((3, Z))), np.zeros((3, Z)))


def test_a_memmap_is_accepted(tmp_path):
    """Data loaded with np.load(..., mmap_mode="r") is an ndarray subclass too, and welcome."""
    np.save(tmp_path / "x.npy", _x())
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    model = MODELS["vae"]()
    assert isinstance(x, np.memmap) and np.isfinite(model.loss(x))
    assert evaluate(model, x, iwae_k=2)["n"] == len(x)


def test_a_huge_beta_gives_finite_values_in_float64():
    """beta = 1e300 is refused in float32 (test above); float64 holds it: the loss and every
    gradient are finite, and no operation overflows on the way (errstate raises)."""
    model = VAE(D, (4,), Z, beta=1e300, rng=0, dtype=np.float64)
    x = _x().astype(np.float64)
    with np.errstate(all="raise"):
        loss = model.loss(x)
        model.backward()
    assert np.isfinite(loss) and loss > 1e290
    assert all(np.isfinite(g).all() for g in model.grads.values())
    assert np.isfinite(evaluate(model, x, iwae_k=3)["nll"])
