"""The exceptions minivae raises for its users."""


class MinivaeError(Exception):
    """Base class of every error minivae raises on purpose."""


class InputError(MinivaeError, ValueError):
    """An argument has the wrong shape, dtype or values, or a call came out of order.

    The message names the object that refused it and what it expected.
    """


class NonFiniteError(InputError):
    """An array holds NaN or infinity, or a computation overflowed to it.

    Training reads this class (not the wording of the message) as a sign of divergence.
    """
