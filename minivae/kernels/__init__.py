"""numba kernels: the hot loops of minivae, each beside its NumPy twin.

A kernel implements a formula the reader sees elsewhere: the bias add and activation of
``Dense`` (the activation layers' f and f'), the two likelihoods of ``minivae.losses``, Adam
and SGD of ``minivae.optim``, the gather and scatter-add of a convolution (im2col, col2im)
and its bias and activation per channel (``minivae.layers.conv``). Matrix products are not
here: layers write ``x @ W`` and NumPy hands them to BLAS, which beats a numba matmul at
every product of a VAE step (``benchmarks/matmul_shapes.py`` and the lessons' appendix A
measure it).

Every ``@njit`` kernel in this package has a plain NumPy function named
``<kernel>_np`` that is its specification; ``tests/test_kernels.py`` holds
each pair equal on hypothesis-generated inputs (``tests/test_conv.py`` those of
``conv``). Layers, losses and optimizers call the kernels; they never define their own.
Set ``NUMBA_DISABLE_JIT=1`` and the same code runs as plain Python.

What makes a loop here fast (the lessons' appendix A measures each):
  - ``error_model="numpy"`` on every kernel: numba's default checks each float
    division for zero, to raise ZeroDivisionError, and that branch stops the
    loop from running 8 floats at a time;
  - no C-library call inside a loop: float32 exp, log1p and tanh are polynomials
    (``fastexp``) in the loss kernels and the tanh layers;
  - no early exit: the finiteness test sums x * 0 instead of stopping at the
    first NaN;
  - fast-math only where it cannot change a result beyond rounding:
    ``reassoc`` to add a row's sum in any order (into a float64 accumulator,
    or a sum of zeros), ``contract`` to fuse a multiply and an add. Never
    ``nnan`` or ``ninf``: NaN and infinity keep their meaning, and the
    gradients the kernels compute are gradient-checked.
  - serial loops: on two cores numba's thread pool and BLAS's fight for the
    cores (a parallel Adam, tried with numba's OpenMP and workqueue layers, made
    a whole training step slower, not faster), so the threads are BLAS's.
"""
