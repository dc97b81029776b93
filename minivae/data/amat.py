"""Read the .amat text of binarized MNIST: one image a line, 784 values 0/1 separated by spaces.

Fast path (the real files): every line is exactly "d d d ... d\\n", 784 digits and 784 separators,
so, read as little-endian uint16, the file is an (N, 784) matrix of digit + 256 * separator;
subtracting the expected "0 " ... "0\\n" leaves the 0/1 values, in three passes over memory
(under 0.1 s for 50,000 lines) instead of np.loadtxt's per-value Python parsing.
Anything else goes through a general parser that accepts any spaces/tabs/CRLF and says which
line is wrong.
"""

import numpy as np

from .errors import FormatError

D = 784                  # values per line (28 * 28)
ZERO, ONE, SPACE, TAB, CR, LF = 48, 49, 32, 9, 13, 10


def read_amat(data: bytes, what: str = ".amat file") -> np.ndarray:
    """uint8 array (N, 784) of 0/1 from .amat bytes; FormatError if any line is not 784 0/1s."""
    b = np.frombuffer(data, dtype=np.uint8)
    if b.size and b.size % (2 * D) == 0:
        pairs = b.view("<u2").reshape(-1, D)                  # (N, 784) digit + 256 * separator
        expected = np.full(D, ZERO + 256 * SPACE, np.uint16)  # "0 " ... "0 " "0\n"
        expected[-1] = ZERO + 256 * LF
        values = pairs - expected                             # (N, 784) 0/1 if well formed
        if (values <= 1).all():
            return values.astype(np.uint8)                   # (N, 784)
    return _read_amat_general(b, what)


def _read_amat_general(b: np.ndarray, what: str) -> np.ndarray:
    """Slow but forgiving path; names the first bad line when the file is malformed."""
    is_digit = (b == ZERO) | (b == ONE)
    bad = ~(is_digit | (b == SPACE) | (b == TAB) | (b == CR) | (b == LF))
    if bad.any():
        i = int(np.argmax(bad))
        line = int(np.count_nonzero(b[:i] == LF)) + 1
        raise FormatError(f"{what}: line {line} has byte {bytes(b[i:i + 1])!r}; expected only "
                          f"'0', '1', spaces and newlines")
    if not is_digit.any():
        raise FormatError(f"{what}: no values; expected lines of {D} 0/1 values")
    glued = is_digit[1:] & is_digit[:-1]
    if glued.any():
        line = int(np.count_nonzero(b[:int(np.argmax(glued))] == LF)) + 1
        raise FormatError(f"{what}: line {line} has two digits with no space between them; "
                          f"expected single 0/1 values separated by spaces")
    line_of = np.cumsum(b == LF) - (b == LF)                  # (bytes,) line index of each byte
    counts = np.bincount(line_of[is_digit], minlength=int(line_of[-1]) + 1)   # values per line
    filled = np.flatnonzero(counts)
    counts = counts[: filled[-1] + 1]                         # drop the blank end of the file
    wrong = np.flatnonzero(counts != D)
    if wrong.size:
        k = int(wrong[0])
        raise FormatError(f"{what}: line {k + 1} has {int(counts[k])} values, expected {D} "
                          f"(truncated file?)")
    return (b[is_digit] - ZERO).reshape(-1, D)                # (N, 784)
