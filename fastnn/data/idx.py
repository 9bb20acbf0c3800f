"""Reading IDX files (the MNIST container format), gzip-compressed or raw.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), one big-endian uint32 per dimension, then the array data in
C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["DataError", "gunzip_if_compressed", "parse_idx", "read_decompressed", "read_idx"]

GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_REPLACE = "Replace it with a fresh copy of the file."


class DataError(ValueError):
    """A problem with input data that the user can fix (bad, missing or wrong file).

    The message names the file (and row, where there is one) and says what to do.
    """


def read_decompressed(path: str | os.PathLike[str]) -> bytes:
    """Return the contents of the file ``path``, gunzipped if it is gzip-compressed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found. Check the path.") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e}).") from None
    return gunzip_if_compressed(data, path)


def gunzip_if_compressed(data: bytes, source: str | os.PathLike[str]) -> bytes:
    """Gunzip ``data`` if it starts with the gzip magic bytes, else return it as is.

    Detecting by content lets a compressed file without the ``.gz`` suffix work;
    a ``source`` (file name or URL, named in errors) ending in ``.gz`` whose data
    is not gzip is an error rather than silently read raw.
    """
    if data[:2] == GZIP_MAGIC:
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(
                f"{source}: corrupt gzip data ({e}); the file is damaged or was only partly "
                f"downloaded. {_REPLACE}"
            ) from None
    if str(source).endswith(".gz"):
        raise DataError(
            f"{source}: named .gz but is not gzip-compressed (it starts with {data[:4].hex()!r}, "
            f"gzip starts with '1f8b'). {_REPLACE}"
        )
    return data


def parse_idx(data: bytes, source: str | os.PathLike[str] = "<bytes>") -> np.ndarray:
    """Parse the uncompressed bytes of an IDX file into a native-endian array.

    ``source`` only names the file in error messages. The result is a writable
    copy, not a view of ``data``.
    """
    if len(data) < 4:
        raise DataError(
            f"{source}: truncated: {len(data)} bytes, too short for the 4-byte IDX magic number. "
            f"{_REPLACE}"
        )
    zeros, code, ndim = data[:2], data[2], data[3]
    if zeros != b"\x00\x00":
        raise DataError(
            f"{source}: not an IDX file: wrong magic number {data[:4].hex()!r} (an IDX file starts "
            f"with two zero bytes, a dtype code and the number of dimensions). {_REPLACE}"
        )
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise DataError(
            f"{source}: unknown IDX dtype code 0x{code:02X} (known: {known}). {_REPLACE}"
        )
    if ndim == 0:
        raise DataError(f"{source}: the IDX header declares 0 dimensions. {_REPLACE}")

    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"{source}: truncated: the header needs {header_size} bytes for {ndim} dimensions "
            f"but the file has only {len(data)}. {_REPLACE}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    # Python ints: the product cannot overflow, however absurd the header.
    count = 1
    for d in shape:
        count *= d
    expected = header_size + count * dtype.itemsize
    described = f"shape {'x'.join(map(str, shape))} of {dtype.name}"
    if len(data) < expected:
        raise DataError(
            f"{source}: truncated: the header declares {described}, which needs {expected} bytes, "
            f"but the file has only {len(data)} bytes (uncompressed). {_REPLACE}"
        )
    if len(data) > expected:
        raise DataError(
            f"{source}: {len(data) - expected} trailing bytes after the data: the header declares "
            f"{described} ({expected} bytes) but the file has {len(data)} bytes (uncompressed). "
            f"{_REPLACE}"
        )
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a native-endian numpy array.

    Raises DataError, naming the file, if it is missing, not gzip despite a
    ``.gz`` name, corrupt, or not a well-formed IDX file.
    """
    return parse_idx(read_decompressed(path), path)
