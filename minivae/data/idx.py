"""Read the IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed bytes).

IDX layout, all integers big-endian:
  magic (4 bytes) = 0x00 0x00 <type> <ndim>; type 0x08 = unsigned byte
  ndim sizes, 4 bytes each
  payload: prod(sizes) items, row-major
Image files have magic 2051 (0x00000803: ubyte, 3 dims N, rows, cols);
label files have magic 2049 (0x00000801: ubyte, 1 dim N).
"""

import gzip
import zlib

import numpy as np

from .errors import FormatError

IMAGES_MAGIC = 2051      # ubyte, 3 dims
LABELS_MAGIC = 2049      # ubyte, 1 dim


def gunzip_if_needed(data: bytes, what: str = "file") -> bytes:
    """data decompressed if it starts with the gzip signature 1f 8b, else data unchanged."""
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as e:     # gzip.BadGzipFile is an OSError
        raise FormatError(f"{what}: corrupt or truncated gzip data ({e})") from e


def read_idx(data: bytes, magic: int, what: str = "IDX file") -> np.ndarray:
    """Array stored in IDX bytes (gzip allowed); FormatError unless the magic is `magic`.

    magic 2051 -> uint8 (N, rows, cols); magic 2049 -> uint8 (N,).
    """
    data = gunzip_if_needed(data, what)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise FormatError(f"{what}: {len(data)} bytes, too short for an IDX header")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise FormatError(f"{what}: magic number {found}, expected {magic} "
                          f"({'images' if magic == IMAGES_MAGIC else 'labels'}, unsigned bytes, "
                          f"{ndim} dims); is this the right IDX file?")
    if len(data) < header:
        raise FormatError(f"{what}: header needs {header} bytes, file has {len(data)}")
    dims = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise FormatError(f"{what}: header says dims {dims}, so {expected:,} bytes, but the "
                          f"file has {len(data):,} (truncated or padded)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_images(data: bytes, what: str = "IDX images") -> np.ndarray:
    """uint8 images (N, rows, cols) from an IDX image file (magic 2051)."""
    return read_idx(data, IMAGES_MAGIC, what)


def read_idx_labels(data: bytes, what: str = "IDX labels") -> np.ndarray:
    """uint8 labels (N,) from an IDX label file (magic 2049)."""
    return read_idx(data, LABELS_MAGIC, what)
