"""minivae: autoencoders and variational autoencoders from scratch.

Every layer writes its own forward and backward pass in NumPy; hot loops run
through numba kernels (``minivae.kernels``), each beside a NumPy twin that is
its specification. Nothing here uses autograd: ``minivae.gradcheck`` checks
every gradient numerically instead.

Conventions, stated once:
- arrays are (N, D): N examples in a batch, D features; images are flattened;
- losses in ``minivae.losses`` return per-example values of shape (N,), summed
  over every other axis (pixels, latent dimensions), in nats;
- a model's loss is the batch *mean* of those per-example values, and beta
  multiplies the KL term there (see ``minivae.models.vae``).
"""

__version__ = "0.1.0"

from minivae.errors import InputError, MinivaeError, NonFiniteError

__all__ = ["InputError", "MinivaeError", "NonFiniteError", "__version__"]
