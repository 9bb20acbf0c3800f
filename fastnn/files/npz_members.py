"""Reading the .npy members of an untrusted .npz archive with every read bounded in advance:
.npy preambles by MAX_NPY_HEADER_BYTES, array data by the size the member declares (checked
against the preamble's shape and dtype); only stored or deflated members, which zipfile
inflates no further than a read asks. Any problem is a ModelFileError naming the file."""

from __future__ import annotations

import io
import math
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

# np.savez stores members and np.savez_compressed deflates them. For those two methods zipfile
# inflates no more than a read asks for; for the others (bzip2, lzma) it inflates every
# compressed chunk it reads whole, so a few hundred bytes can become gigabytes before any check.
COMPRESSIONS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
# The .npy versions fastnn reads: the format of their header-length field, their header reader.
NPY_VERSIONS = {
    (1, 0): ("<H", np.lib.format.read_array_header_1_0),
    (2, 0): ("<I", np.lib.format.read_array_header_2_0),
}
MAX_NPY_HEADER_BYTES = 4096  # numpy writes about 120 bytes for the arrays fastnn saves


class ModelFileError(ValueError):
    """A model file that cannot be used: missing, damaged, tampered with, or another version."""


def fail(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}")


def clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(value: Any) -> str:
    return clip(repr(value), 80)


class Npy(NamedTuple):
    """What a .npy member's preamble says, and how many bytes the member declares after it."""

    shape: tuple
    fortran_order: bool
    dtype: np.dtype
    data_bytes: int


@contextmanager
def open_npy(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo
) -> Iterator[tuple[IO[bytes], Npy]]:
    """Open member `info` and read its .npy preamble (at most MAX_NPY_HEADER_BYTES + 12 bytes).

    Yields the member, positioned at the array data, and what the preamble says.
    """
    name = info.filename.removesuffix(".npy")
    if info.compress_type not in COMPRESSIONS:
        raise fail(
            path,
            f"array {name!r} uses zip compression method {info.compress_type}; fastnn reads only "
            "the stored and deflated members numpy writes",
        )
    with archive.open(info) as f:
        yield f, _read_preamble(path, name, f, info.file_size)


def _read_preamble(path: Path, name: str, f: IO[bytes], member_bytes: int) -> Npy:
    version = np.lib.format.read_magic(f)
    if version not in NPY_VERSIONS:
        raise fail(path, f"array {name!r} uses .npy format {version}, which fastnn never writes")
    length_format, read_array_header = NPY_VERSIONS[version]
    length_field = f.read(struct.calcsize(length_format))
    (length,) = struct.unpack(length_format, length_field)
    # numpy reads the whole header before checking its length, so the length is checked here.
    if length > MAX_NPY_HEADER_BYTES:
        raise fail(
            path,
            f"array {name!r} has a {length}-byte .npy header; fastnn reads at most "
            f"{MAX_NPY_HEADER_BYTES} (numpy writes about 120)",
        )
    shape, fortran_order, dtype = read_array_header(io.BytesIO(length_field + f.read(length)))
    if dtype.hasobject:
        raise fail(path, f"array {name!r} holds Python objects (pickled data); refusing to load it")
    preamble_bytes = np.lib.format.MAGIC_LEN + len(length_field) + length
    return Npy(shape, fortran_order, dtype, member_bytes - preamble_bytes)


def data_size(path: Path, name: str, npy: Npy) -> int:
    """The bytes of data the preamble's shape and dtype need, checked to be exactly what the
    member declares after its preamble: that declared size is what bounds reading it."""
    size = math.prod(npy.shape) * npy.dtype.itemsize
    if npy.data_bytes != size:
        raise fail(
            path,
            f"array {name!r} declares {npy.data_bytes} bytes of data but its shape and dtype "
            f"need {size} (truncated or tampered)",
        )
    return size


def read_data(path: Path, name: str, f: IO[bytes], size: int) -> bytes:
    # One read of exactly the declared size: zipfile inflates no more than a read asks for (for
    # stored and deflated members), and it checks the member's CRC-32 when the read reaches its end.
    data = f.read(size)
    if len(data) != size:
        raise fail(path, f"array {name!r} is truncated")
    return data


def check_array(path: Path, name: str, npy: Npy, shape: tuple, dtype: np.dtype) -> int:
    """Raise unless the preamble says `shape` and `dtype`; return the data's size in bytes."""
    if (npy.shape, npy.dtype) != (shape, dtype):
        raise fail(
            path,
            f"array {name!r} is {npy.dtype} with shape {npy.shape}, but the header says "
            f"{dtype} with shape {shape}",
        )
    return data_size(path, name, npy)


def read_array(
    path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, shape: tuple, dtype: np.dtype
) -> np.ndarray:
    name = info.filename.removesuffix(".npy")
    with open_npy(path, archive, info) as (f, npy):
        # Checked again: this is a fresh read of the member.
        data = read_data(path, name, f, check_array(path, name, npy, shape, dtype))
    array = np.frombuffer(data, dtype).reshape(shape, order="F" if npy.fortran_order else "C")
    return array.copy()  # C order, and writable (training updates the weights in place)
