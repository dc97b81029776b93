"""Models: each exposes ``params``/``grads`` (dotted names), ``zero_grad()``,
``loss(x) -> float`` (batch mean, keeping what ``backward`` needs), ``backward()``
and ``config()`` (JSON-able constructor arguments, with a "model" key that
``build`` reads). Models that draw noise keep their Generator in ``self.rng``.
"""

from minivae.models.vae import VAE

MODELS = {"vae": VAE}


def build(config, rng=None):
    """Rebuild a model from its ``config()``."""
    config = dict(config)
    name = config.pop("model", None)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    return MODELS[name](**config, rng=rng)


__all__ = ["MODELS", "VAE", "build"]
