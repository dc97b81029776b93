"""A trained VAE's decoder and test codes in one file a web page can load: `minivae export RUN`.

    decoder   the layers of the mean of p(x|z), in order: W (in, out), b (out,), activation
    codes     mu(x) of n test examples (n, Z), their labels (and, for sprites, their factors)

The file is JSON. Each array is stored as {"shape": [...], "float32": base64 of its
little-endian float32 bytes}: the exact weights, in about half the space of decimal text.

The page runs the decoder in JavaScript (site_src/explorer/decoder.js), one layer a line:

    h = z;   for each layer:  h = act(h @ W + b)        (N, in) -> (N, out)
    x = sigmoid(h[:, :D])   for a Bernoulli likelihood (h are logits); h[:, :D] otherwise

``decode`` below is the same forward pass in NumPy, read from the file: the tests hold it equal
to ``VAE.decode``, and the site's browser test holds the JavaScript equal to it.
"""

import base64
import json
from pathlib import Path

import numpy as np

from minivae.checks import check_array, check_count
from minivae.errors import InputError
from minivae.layers.dense import Dense
from minivae.layers.linear import Linear
from minivae.run.atomic import write_json

FORMAT = "minivae-decoder"
VERSION = 1
N_CODES = 2000                  # test examples whose codes the file holds, unless told


# ---- arrays as base64 float32 ----

def pack(a):
    """An array as {"shape", "float32": base64 of its little-endian float32 bytes}."""
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "float32": base64.b64encode(a.tobytes()).decode("ascii")}


def unpack(d, who="export"):
    """The float32 array that ``pack`` stored."""
    try:
        a = np.frombuffer(base64.b64decode(d["float32"], validate=True), dtype="<f4")
        return a.reshape(d["shape"]).astype(np.float32)
    except (KeyError, TypeError, ValueError) as e:
        raise InputError(f"{who}: expected an array as {{'shape': [...], 'float32': base64}}, "
                         f"got one that does not read ({e})") from None


# ---- what the file holds ----

def decoder_layers(model):
    """The decoder of ``model`` as a list of {"W", "b", "activation", "slope"} (NumPy arrays).

    Only dense decoders (arch "mlp") are written: Dense layers, then a Linear one.
    """
    from minivae.models import VAE
    if not isinstance(model, VAE):
        raise InputError(f"export: expected a VAE (a decoder from a latent code), got "
                         f"{type(model).__name__}")
    if model.net.conv:
        raise InputError("export: expected a VAE with a dense decoder (arch 'mlp'); this one "
                         "is convolutional, which the explorer page cannot run")
    layers = []
    for layer in model.decoder.layers:
        if isinstance(layer, Dense):
            act, slope = layer.activation, layer.slope
        elif isinstance(layer, Linear):
            act, slope = "identity", 0.0
        else:
            raise InputError(f"export: expected Dense or Linear decoder layers, got {layer!r}")
        layers.append({"W": layer.params["W"], "b": layer.params["b"], "activation": act,
                       "slope": slope})
    return layers


def export_vae(model, x, labels=None, label_names=None, factors=None, factor_names=None,
               image_shape=None, about=None):
    """The exported file's content (a JSON-able dict) for ``model`` and the examples x (n, D):
    its decoder, and the codes mu(x) with their labels (n,) and factors (n, F) if given.

    ``image_shape`` (H, W) or (C, H, W) says how the page draws a decoded row; ``about``
    ({"data": ..., "epochs": ...}) is kept as it is.
    """
    layers = decoder_layers(model)
    mu, _ = model.encode(x)                                             # (n, Z)
    n, Z = mu.shape
    shape = tuple(image_shape) if image_shape is not None else (model.x_dim,)
    if int(np.prod(shape)) != model.x_dim:
        raise InputError(f"export: image_shape {shape} holds {int(np.prod(shape))} pixels, "
                         f"expected {model.x_dim}")
    var = mu.astype(np.float64).var(axis=0)                             # (Z,) Var mu per dim
    doc = {
        "format": FORMAT, "version": VERSION, **(about or {}),
        "z_dim": Z, "x_dim": model.x_dim, "image_shape": list(shape),
        "likelihood": model.likelihood, "beta": model.beta,
        "output": "sigmoid" if model.likelihood == "bernoulli" else "identity",
        "layers": [{"W": pack(la["W"]), "b": pack(la["b"]), "activation": la["activation"],
                    "slope": la["slope"]} for la in layers],
        "codes": {"mu": pack(mu), "var_mu": [float(v) for v in var],
                  "dims_by_var": [int(j) for j in np.argsort(-var, kind="stable")]},
    }
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,):
            raise InputError(f"export: expected labels of shape ({n},), got {labels.shape}")
        doc["codes"]["labels"] = [int(v) for v in labels]
        names = label_names or [str(v) for v in range(int(labels.max()) + 1)]
        doc["codes"]["label_names"] = list(names)
    if factors is not None:
        factors = np.asarray(factors, dtype=np.float64)
        if factors.ndim != 2 or factors.shape[0] != n or \
                len(factor_names or ()) != factors.shape[1]:
            raise InputError(f"export: expected factors (n={n}, F) with F names, got "
                             f"{factors.shape} and {factor_names}")
        doc["codes"]["factors"] = factors.T.tolist()                    # F lists of n
        doc["codes"]["factor_names"] = list(factor_names)
    return doc


def write_export(path, doc):
    """Write ``doc`` to ``path`` whole or not at all (minivae.run.atomic)."""
    write_json(path, doc)


def read_export(path):
    """The exported file at ``path``, with its layers' arrays and codes as NumPy arrays."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"read_export: cannot read {path} as JSON ({e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InputError(f"read_export: {path} is not a file written by `minivae export` "
                         f"(expected format {FORMAT!r})")
    who = f"read_export({path})"
    doc["layers"] = [{**la, "W": unpack(la["W"], who), "b": unpack(la["b"], who)}
                     for la in doc["layers"]]
    doc["codes"]["mu"] = unpack(doc["codes"]["mu"], who)
    return doc


# ---- the page's forward pass, in NumPy ----

ACTS = {
    "identity": lambda a, s: a,
    "relu": lambda a, s: np.maximum(a, 0.0),
    "leaky_relu": lambda a, s: np.where(a > 0, a, s * a),
    "tanh": lambda a, s: np.tanh(a),
    "sigmoid": lambda a, s: 1.0 / (1.0 + np.exp(-a)),
    "softplus": lambda a, s: np.logaddexp(0.0, a),
}


def decode(doc, z):
    """The mean of p(x|z) from an exported file (``read_export``), in float64, as the page
    computes it.   z (N, Z) -> (N, x_dim)."""
    z = check_array(np.asarray(z, dtype=np.float64), "export.decode",
                    shape=(None, doc["z_dim"]), name="z")
    h = z                                                               # (N, Z)
    for la in doc["layers"]:
        a = h @ la["W"].astype(np.float64) + la["b"].astype(np.float64)  # (N, out)
        h = ACTS[la["activation"]](a, la["slope"])
    mean = h[:, :doc["x_dim"]]                                          # (N, D)
    return 1.0 / (1.0 + np.exp(-mean)) if doc["output"] == "sigmoid" else mean


def pick_examples(n_total, n, seed=0):
    """Indices of ``n`` test examples (all of them if fewer), in a shuffled order fixed by
    ``seed``: the page lists the first ones, of every label."""
    n = check_count(n, "export", "n")
    return np.random.default_rng(seed).permutation(n_total)[:min(n, n_total)]
