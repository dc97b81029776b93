"""numba kernels: the hot loops of minivae, each beside its NumPy twin.

Every ``@njit(cache=True)`` kernel in this package has a plain NumPy function
named ``<kernel>_np`` that is its specification; ``tests/test_kernels.py``
holds each pair equal on hypothesis-generated inputs. Layers, losses and
optimizers call the kernels; they never define their own. No ``fastmath``:
the gradients these kernels compute are gradient-checked. Set
``NUMBA_DISABLE_JIT=1`` and the same code runs as plain Python.
"""
