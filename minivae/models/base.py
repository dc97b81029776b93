"""What every encoder-decoder model shares: its parameters and gradients are those of its
``encoder`` and ``decoder``, named "encoder.<name>" and "decoder.<name>"."""


class EncoderDecoder:
    """Mixin for a model with ``self.encoder`` and ``self.decoder`` layers."""

    @property
    def params(self):
        return {**{f"encoder.{k}": v for k, v in self.encoder.params.items()},
                **{f"decoder.{k}": v for k, v in self.decoder.params.items()}}

    @property
    def grads(self):
        return {**{f"encoder.{k}": v for k, v in self.encoder.grads.items()},
                **{f"decoder.{k}": v for k, v in self.decoder.grads.items()}}

    def zero_grad(self):
        self.encoder.zero_grad()
        self.decoder.zero_grad()
