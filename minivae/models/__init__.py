"""Models: each exposes ``params``/``grads`` (dotted names), ``zero_grad()``,
``loss(x) -> float`` (batch mean, keeping what ``backward`` needs), ``backward()``
and ``config()`` (JSON-able constructor arguments, with a "model" key that
``build`` reads). Models that draw noise keep their Generator in ``self.rng``.

PCA follows the same interface but is fitted in closed form: its ``params`` are
the fitted arrays, its ``grads`` are empty and its ``backward`` refuses.
The densities in ``minivae.models.density`` are fitted to codes, not trained.
"""

from minivae.models.autoencoder import Autoencoder, DenoisingAutoencoder
from minivae.models.density import DiagonalGaussian, GaussianMixture
from minivae.models.linear_ae import LinearAutoencoder, principal_angles
from minivae.models.pca import PCA
from minivae.models.vae import VAE

MODELS = {"vae": VAE, "pca": PCA, "linear-ae": LinearAutoencoder, "ae": Autoencoder,
          "dae": DenoisingAutoencoder}


def build(config, rng=None):
    """Rebuild a model from its ``config()``."""
    config = dict(config)
    name = config.pop("model", None)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name](**config, rng=rng)


__all__ = ["MODELS", "PCA", "VAE", "Autoencoder", "DenoisingAutoencoder", "DiagonalGaussian",
           "GaussianMixture", "LinearAutoencoder", "build", "principal_angles"]
