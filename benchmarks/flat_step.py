"""The least a VAE training step can do in Python: how close to sgemm a step can come here.

minivae's training step goes through the model and its layers: the model checks the batch
once, each layer allocates its output and its dW and adds dW into grads (after zero_grad
filled them with zeros), the losses check their per-example values, and Adam checks every
gradient before it changes a parameter. ``FlatStep`` is the same step with all of that taken
out, written flat for the classic VAE (one hidden layer, ReLU, Bernoulli, the stock sampler):

    buffers     every activation and gradient preallocated once for the batch size
    products    the 11 matrix products, each np.matmul(..., out=) straight into its buffer
    kernels     minivae's own fused kernels (bias + activation, loss + gradient, activation
                backward + bias gradient) and Adam's update, in place; and one minivae does
                not have: the sampler fused with the KL (``benchmarks/fused_reparam.py``),
                where the library runs its Reparameterize layer and ``losses.gaussian_kl``
    left out    input checks, zero_grad, temporaries, the finiteness checks

It computes what ``model.loss(x, eps); model.backward(); opt.step(model.grads)`` computes
(a test holds them equal), so its time is the floor that minivae's overhead sits on:
``benchmarks/vae_speed.py`` runs it as the contender "flat" to show how much of the sgemm
rate any step of this model reaches on the machine, with nothing but the required work.
Not part of minivae: it trades every check a user relies on for speed.

    step = FlatStep(model, opt, batch=128)
    loss = step(xb)                  # or step(xb, eps): eps (128, 20) fixes the noise
"""

import numpy as np

from benchmarks import fused_reparam as KR
from minivae.kernels import activations as KA
from minivae.kernels import losses as KL
from minivae.kernels import optim as KO
from minivae.layers import Dense, Linear, Reparameterize

RELU, IDENTITY = KA.CODES["relu"], KA.CODES["identity"]


class FlatStep:
    """One Adam step of a one-hidden-layer ReLU Bernoulli VAE, no layers and no checks."""

    def __init__(self, model, opt, batch):
        enc, dec = model.encoder.layers, model.decoder.layers
        kinds = [type(layer) for layer in (*enc, *dec)]
        if (kinds != [Dense, Linear, Dense, Linear] or model.likelihood != "bernoulli"
                or type(model.reparam) is not Reparameterize or model.activation != "relu"):
            raise ValueError("FlatStep: expected a VAE with one ReLU hidden layer each way, a "
                             "Bernoulli likelihood and the stock sampler")
        self.model, self.opt, self.n = model, opt, int(batch)
        self.enc1, self.enc2 = enc
        self.dec1, self.dec2 = dec
        D, H, Z = model.x_dim, model.hidden[0], model.z_dim
        n, f = self.n, model.dtype

        def buf(*shape):
            return np.empty(shape, f)
        self.h1, self.h, self.z, self.std = buf(n, H), buf(n, 2 * Z), buf(n, Z), buf(n, Z)
        self.kl, self.g1, self.logits, self.nll = buf(n), buf(n, H), buf(n, D), buf(n)
        self.dlogits, self.dg1, self.dz, self.dh = buf(n, D), buf(n, H), buf(n, Z), buf(n, 2 * Z)
        self.dh1 = buf(n, H)
        # Adam's (param, grad, m, v) as flat views, in the optimizer's order
        grads = model.grads
        self.adam = [(p.reshape(-1), grads[k].reshape(-1), opt.state[f"m.{k}"].reshape(-1),
                      opt.state[f"v.{k}"].reshape(-1)) for k, p in opt.params.items()]

    def __call__(self, x, eps=None):
        """One step on x (batch, D); returns the batch-mean negative ELBO."""
        m, n = self.model, self.n
        e1, e2, d1, d2 = (layer.params for layer in (self.enc1, self.enc2, self.dec1, self.dec2))
        g_e1, g_e2, g_d1, g_d2 = (layer.grads for layer in
                                  (self.enc1, self.enc2, self.dec1, self.dec2))
        if eps is None:
            eps = m.reparam.rng.standard_normal(self.z.shape, dtype=self.z.dtype)   # (n, Z)
        # forward
        np.matmul(x, e1["W"], out=self.h1)                                      # (n, H)
        KA.bias_act_forward(self.h1, e1["b"], RELU, 0.0, self.h1)
        np.matmul(self.h1, e2["W"], out=self.h)                                 # (n, 2Z)
        self.h += e2["b"]
        KR.reparam_kl_forward(self.h, eps, self.z, self.std, self.kl)           # z, KL (n,)
        np.matmul(self.z, d1["W"], out=self.g1)                                 # (n, H)
        KA.bias_act_forward(self.g1, d1["b"], RELU, 0.0, self.g1)
        np.matmul(self.g1, d2["W"], out=self.logits)                            # (n, D)
        self.logits += d2["b"]
        KL.bernoulli_nll(self.logits, x, self.nll, self.dlogits)                # (n,), (n, D)
        w = m.beta * m.kl_weight
        loss = float((self.nll + w * self.kl).mean())
        self.dlogits *= 1.0 / n
        # backward: each dW written straight into grads
        np.matmul(self.g1.T, self.dlogits, out=g_d2["W"])                       # (H, D)
        np.sum(self.dlogits, axis=0, out=g_d2["b"])
        np.matmul(self.dlogits, d2["W"].T, out=self.dg1)                        # (n, H)
        g_d1["b"].fill(0)
        KA.act_backward_bias(self.dg1, self.g1, RELU, 0.0, self.dg1, g_d1["b"])
        np.matmul(self.z.T, self.dg1, out=g_d1["W"])                            # (Z, H)
        np.matmul(self.dg1, d1["W"].T, out=self.dz)                             # (n, Z)
        KR.reparam_kl_backward(self.dz, eps, self.std, self.h, w / n, self.dh)  # (n, 2Z)
        np.matmul(self.h1.T, self.dh, out=g_e2["W"])                            # (H, 2Z)
        np.sum(self.dh, axis=0, out=g_e2["b"])
        np.matmul(self.dh, e2["W"].T, out=self.dh1)                             # (n, H)
        g_e1["b"].fill(0)
        KA.act_backward_bias(self.dh1, self.h1, RELU, 0.0, self.dh1, g_e1["b"])
        np.matmul(x.T, self.dh1, out=g_e1["W"])                                 # (D, H)
        # Adam, in place
        o = self.opt
        o.t += 1
        for p, g, mom, var in self.adam:
            KO.adam_update(p, g, mom, var, o.lr, o.b1, o.b2, o.eps, o.t, o.weight_decay)
        return loss
