"""Models: each exposes ``params``/``grads`` (dotted names), ``zero_grad()``,
``loss(x) -> float`` (batch mean, keeping what ``backward`` needs), ``backward()``
and ``config()`` (JSON-able constructor arguments, with a "model" key that
``build`` reads). Models that draw noise keep their Generator in ``self.rng``.

PCA follows the same interface but is fitted in closed form: its ``params`` are
the fitted arrays, its ``grads`` are empty and its ``backward`` refuses.
The densities in ``minivae.models.density`` are fitted to codes, not trained.

A config can come from a file someone else wrote, so ``build`` counts the parameters it
describes first, by arithmetic, and refuses one beyond MAX_PARAMETERS before allocating
anything (``hidden=[10**9]`` would otherwise ask for gigabytes).
"""

import inspect
import json
from itertools import pairwise

import numpy as np

from minivae.errors import InputError
from minivae.models.autoencoder import Autoencoder, DenoisingAutoencoder
from minivae.models.conv import architecture
from minivae.models.density import DiagonalGaussian, GaussianMixture
from minivae.models.gan import GAN
from minivae.models.iwae import IWAE
from minivae.models.linear_ae import LinearAutoencoder, principal_angles
from minivae.models.pca import PCA
from minivae.models.vae import VAE
from minivae.models.wae import WAE

MODELS = {"vae": VAE, "pca": PCA, "linear-ae": LinearAutoencoder, "ae": Autoencoder,
          "dae": DenoisingAutoencoder, "wae": WAE, "gan": GAN, "iwae": IWAE}
MAX_PARAMETERS = 10 ** 8   # 0.4 GB per float32 copy; training keeps 4 (params, grads, Adam m, v)
MAX_LAYERS = 64            # hidden layers of the encoder (the decoder mirrors them)


def _arguments(config):
    """(name, the constructor's arguments with defaults filled in) for a config dict."""
    if not isinstance(config, dict):
        raise InputError(f"a model config must be a dict, got {type(config).__name__}")
    config = dict(config)
    name = config.pop("model", None)
    if name not in MODELS:
        raise InputError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    try:
        bound = inspect.signature(MODELS[name]).bind(**config, rng=None)
    except TypeError as e:
        raise InputError(f"{name} model config: {e}") from None
    bound.apply_defaults()
    return name, bound.arguments


def full_config(config):
    """``config`` with every constructor default filled in, as JSON values: two configs that
    build the same model compare equal (e.g. a config.json and a checkpoint's record)."""
    name, args = _arguments(config)
    args.pop("rng", None)
    if "dtype" in args:
        args["dtype"] = np.dtype(args["dtype"]).name
    return {"model": name, **json.loads(json.dumps(args, default=str))}


def _size(args, key, name):
    v = args[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InputError(f"{name} model config: {key} must be a positive integer, got {v!r}")
    return v


def _hidden(args, key, name):
    """args[key] as a list of at most MAX_LAYERS positive layer sizes."""
    hidden = args[key]
    if not isinstance(hidden, (list, tuple)) or len(hidden) > MAX_LAYERS:
        raise InputError(f"{name} model config: {key} must be a list of at most {MAX_LAYERS} "
                         f"layer sizes, got {type(hidden).__name__} of length "
                         f"{len(hidden) if hasattr(hidden, '__len__') else '?'}")
    return [_size({key: h}, key, name) for h in hidden]


def parameter_count(config):
    """The number of parameters the model ``config`` describes, counted without building it.

    MLP layers a -> b hold a b + b numbers (a GAN's generator z -> hidden -> x and its
    discriminator x -> d_hidden -> 1 too), convolutions (``"arch": "conv"``) C_in C_out k k
    + C_out; PCA holds components (K, D), mean (D,), explained variance (K,) and the total
    variance (1). InputError for a config that names an unknown model or setting, a dtype
    other than float32 / float64, or sizes that are not positive integers.
    """
    name, a = _arguments(config)
    try:
        dtype_ok = np.dtype(a["dtype"]) in (np.float32, np.float64)
    except TypeError:
        dtype_ok = False
    if not dtype_ok:
        raise InputError(f"{name} model config: dtype must be float32 or float64, got "
                         f"{a['dtype']!r}")
    if name == "pca":
        if a["x_dim"] is None:
            return 0                                        # nothing allocated until fit(x)
        K, D = _size(a, "n_components", name), _size(a, "x_dim", name)
        return K * D + D + K + 1
    D, Z = _size(a, "x_dim", name), _size(a, "z_dim", name)
    if name == "linear-ae":
        return 2 * D * Z + D + Z
    hidden = _hidden(a, "hidden", name)
    if name == "gan":                                       # generator, discriminator
        d_hidden = hidden if a["d_hidden"] is None else _hidden(a, "d_hidden", name)
        net = architecture(a["arch"], D, a["image_shape"], a["channels"], f"{name} model config")
        if net.conv:                                        # D an encoder, G a decoder
            return net.parameter_count((D, *d_hidden, 1), (Z, *hidden, D))
        return sum(p * q + q for s in [(Z, *hidden, D), (D, *d_hidden, 1)]
                   for p, q in pairwise(s))
    code = 2 * Z if name in ("vae", "iwae") else Z         # a VAE's encoder gives mu, logvar
    out = 2 * D if a.get("likelihood") == "gaussian-learned" else D
    sizes = [(D, *hidden, code), (Z, *hidden[::-1], out)]   # encoder, decoder
    net = architecture(a["arch"], D, a["image_shape"], a["channels"], f"{name} model config")
    if net.conv:                                            # image_shape and channels checked
        return net.parameter_count(*sizes)
    return sum(p * q + q for s in sizes for p, q in pairwise(s))


def check_config(config):
    """parameter_count(config), after refusing more than MAX_PARAMETERS (InputError)."""
    n = parameter_count(config)
    if n > MAX_PARAMETERS:
        raise InputError(f"the {config['model']} model described has {n:,} parameters, more "
                         f"than minivae builds ({MAX_PARAMETERS:,}: "
                         f"{MAX_PARAMETERS * 4 / 1e9:.1f} GB per float32 copy, and training "
                         "keeps four); choose smaller --hidden, --latent or images")
    return n


def build(config, rng=None):
    """Rebuild a model from its ``config()``.

    InputError, before any array is allocated, for an unknown model or setting, sizes that
    are not positive integers, more than MAX_PARAMETERS parameters or MAX_LAYERS layers.
    """
    check_config(config)
    name = config["model"]
    kwargs = {k: v for k, v in config.items() if k != "model"}
    try:
        return MODELS[name](**kwargs, rng=rng)
    except InputError:
        raise
    except (TypeError, ValueError) as e:                   # e.g. a dtype or activation name
        raise InputError(f"{name} model config: {e}") from None


__all__ = ["GAN", "MAX_LAYERS", "MAX_PARAMETERS", "MODELS", "PCA", "VAE", "WAE", "Autoencoder",
           "DenoisingAutoencoder", "DiagonalGaussian", "GaussianMixture", "LinearAutoencoder",
           "build", "check_config", "full_config", "parameter_count", "principal_angles"]
