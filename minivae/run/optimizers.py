"""The optimizer a run trains with, made from its TrainConfig, and a GAN's pair of them.

    one network:  Adam(model.params, lr, betas=(adam_beta1, adam_beta2), eps=adam_eps), or
                  SGD(model.params, lr, momentum)
    a GAN:        OptimizerPair(discriminator = Adam(D's params, d_lr or lr, betas=(0.5, beta2)),
                                generator     = Adam(G's params, lr,         betas=(0.5, beta2)))

A GAN's two players take turns (minivae.train.fit_gan), each with its own optimizer, and
each optimizer's state (Adam's step count and moments) is its own: a checkpoint keeps both,
as "optim.discriminator.t", "optim.generator.m.0.W", ... (checkpoint.py). beta1 = 0.5 is the
usual choice for GANs since Radford et al. (2016): with 0.9 the moment remembers gradients
of an opponent that has moved on.
"""

from minivae.optim import SGD, Adam

GAN_BETAS = (0.5, 0.999)


class OptimizerPair:
    """Two optimizers, by name (``parts``): their state_dicts side by side, names prefixed."""

    def __init__(self, **parts):
        self.parts = parts

    def __getitem__(self, name):
        return self.parts[name]

    @property
    def params(self):
        return {f"{n}.{k}": v for n, opt in self.parts.items() for k, v in opt.params.items()}

    def state_dict(self):
        """{"discriminator.t": ..., "generator.m.0.W": ..., ...}: copies, as Optimizer's."""
        return {f"{n}.{k}": v for n, opt in self.parts.items()
                for k, v in opt.state_dict().items()}

    def __repr__(self):
        return "OptimizerPair(" + ", ".join(f"{n}={o!r}" for n, o in self.parts.items()) + ")"


def make_optimizer(model, cfg):
    """The optimizer of a run's model (None for one fitted in closed form: PCA)."""
    if not model.grads:
        return None
    if hasattr(model, "discriminator"):                 # a GAN: one optimizer per player
        d_lr = cfg.lr if cfg.d_lr is None else cfg.d_lr
        return OptimizerPair(discriminator=_one(model.discriminator.params, cfg, d_lr, True),
                             generator=_one(model.generator.params, cfg, cfg.lr, True))
    return _one(model.params, cfg, cfg.lr)


def _one(params, cfg, lr, gan=False):
    if cfg.optimizer == "sgd":
        return SGD(params, lr=lr, momentum=cfg.momentum)
    beta1 = GAN_BETAS[0] if gan else cfg.adam_beta1
    return Adam(params, lr=lr, betas=(beta1, cfg.adam_beta2), eps=cfg.adam_eps)
