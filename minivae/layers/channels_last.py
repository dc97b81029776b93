"""Images kept channels-last, (N, H, W, C), between the layers of a convolutional stack.

A convolution gathers patches (im2col). Channels-last, the k pixels of a patch row and their
C channels are one run of k C contiguous floats, and a convolution's product already comes
out as (N OH OW, O) = (N, OH, OW, O): nothing to transpose between layers. The models keep
their images so from the first convolution to the last, and flatten them channel first, as
``Flatten`` does (N, C, H, W): the dense layers around the stack see what they always saw.

    channels_last:    (N, C, H, W) -> (N, H, W, C)       channels_first: the inverse
    UnflattenChannelsLast:  (N, C H W) -> (N, H, W, C)   Unflatten, then channels_last
    FlattenChannelsFirst:   (N, H, W, C) -> (N, C H W)   channels_first, then Flatten

Each is a transpose, so its backward is the inverse transpose. Both are copies, except
for one channel (C = 1), where the two layouts are the same floats in the same order.
"""

import numpy as np

from minivae.layers.reshape import Flatten, Unflatten


def channels_last(x):
    """(N, C, H, W) -> (N, H, W, C), C-contiguous."""
    return np.ascontiguousarray(np.transpose(x, (0, 2, 3, 1)))


def channels_first(x):
    """(N, H, W, C) -> (N, C, H, W), C-contiguous."""
    return np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2)))


class UnflattenChannelsLast(Unflatten):
    """(N, C H W) -> (N, H, W, C): rows flattened channel first, as images channels-last.
    ``shape`` is (C, H, W), as for Unflatten."""

    def forward(self, x):
        return channels_last(super().forward(x))                      # (N, H, W, C)

    def backward(self, dy):
        if dy is None:
            return super().backward(None)
        return super().backward(channels_first(dy))                   # (N, C H W)

    def __repr__(self):
        return f"UnflattenChannelsLast({self.shape})"


class FlattenChannelsFirst(Flatten):
    """(N, H, W, C) -> (N, C H W): images channels-last, as rows flattened channel first."""

    def forward(self, x):
        self.check(x, ndim=4)
        return super().forward(channels_first(x))                     # (N, C H W)

    def backward(self, dy):
        dx = super().backward(dy)                                     # (N, C, H, W)
        return None if dx is None else channels_last(dx)              # (N, H, W, C)
