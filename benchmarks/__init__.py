"""Benchmarks and experiments beside minivae, not part of it (the wheel packages minivae only).

    vae_speed.py      minivae against PyTorch and the sgemm rate, on the classic MNIST VAE
    torch_vae.py      the PyTorch VAE it times against (PyTorch is never a minivae dependency)
    flat_step.py      the same VAE step with everything a library adds taken out: a ceiling
    fused_reparam.py  the sampler fused with the KL, the flat step's kernels, with their twins
    numba_matmul.py   a blocked numba matmul with its twins: the experiment that BLAS wins
    matmul_shapes.py  that experiment, timed product by product at a VAE step's shapes
"""
