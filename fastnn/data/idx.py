"""Reading IDX files (the MNIST container format), gzip-compressed or raw.

An IDX file is a 4-byte magic number (two zero bytes, a dtype code, the number
of dimensions), one big-endian uint32 per dimension, then the array data in
C order, big-endian.
"""

from __future__ import annotations

import os
import re
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

__all__ = [
    "DataError",
    "gunzip_if_compressed",
    "parse_idx",
    "read_decompressed",
    "read_idx",
    "stored_size_bound",
]

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


def stored_size_bound(size: int) -> int:
    """The most bytes a file holding ``size`` bytes can take on disk or on the wire.

    Raw, it is ``size``; gzip-compressed, deflate never expands data by more than
    5 bytes per 64 KiB block (stored blocks), plus a header, possibly with a file
    name, and an 8-byte trailer. One part in 1000 and 64 KiB cover all of that.
    """
    return size + size // 1000 + (1 << 16)


def read_decompressed(
    path: str | os.PathLike[str], max_size: int | None = None, advice: str = _REPLACE
) -> bytes | np.ndarray:
    """Return the contents of the file ``path``, gunzipped if it is gzip-compressed.

    With ``max_size`` (the size the contents must have), a file larger than any
    copy of such contents could be is an error without being read, and so is
    gzip data that decompresses to more: memory stays bounded by ``max_size``.
    ``advice`` ends the message of such errors. The contents are bytes, or as
    `gunzip_if_compressed` gives them.
    """
    path = Path(path)
    limit = None if max_size is None else stored_size_bound(max_size)
    data = _read_file(path, limit)
    if limit is not None and len(data) > limit:
        raise DataError(
            f"{path}: the file is larger than any copy of it can be (more than {limit} bytes, for "
            f"{max_size} bytes uncompressed): it is damaged or not the file its name says. {advice}"
        )
    return gunzip_if_compressed(data, path, max_size, advice)


def _read_file(path: Path, limit: int | None = None) -> bytes:
    """The bytes of ``path``, or its first ``limit + 1`` bytes (enough to tell it is too big)."""
    try:
        with open(path, "rb") as f:
            return f.read() if limit is None else f.read(limit + 1)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found. Check the path.") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read the file ({e.strerror or e}).") from None


def gunzip_if_compressed(
    data: bytes,
    source: str | os.PathLike[str],
    max_size: int | None = None,
    advice: str = _REPLACE,
) -> bytes | np.ndarray:
    """Gunzip ``data`` if it starts with the gzip magic bytes, else return it as is.

    Detecting by content lets a compressed file without the ``.gz`` suffix work;
    a ``source`` (file name or URL, named in errors) ending in ``.gz`` whose data
    is not gzip is an error rather than silently read raw. With ``max_size``,
    contents larger than that are an error, found without decompressing more than
    ``max_size + 1`` bytes, and gzip data comes back as a uint8 array (bytes
    otherwise). ``advice`` ends the messages.
    """
    if data[:2] == GZIP_MAGIC:
        stream = _Gunzip(data, source, advice)
        if max_size is None:
            return stream.read(sys.maxsize)
        # Straight into one array of the most it may hold: no bytes joined from the pieces,
        # and the array's own pages (numpy asks for huge ones) rather than one page at a
        # time for a bytes object as large (MNIST's training images: 47 MB).
        buffer = np.empty(max_size + 1, np.uint8)
        contents = buffer[: stream.read_into(buffer)]
        if len(contents) > max_size:
            raise DataError(
                f"{source}: decompresses to more than the {max_size} bytes expected (a damaged "
                f"file or a decompression bomb). {advice}"
            )
        return contents
    if str(source).endswith(".gz"):
        raise DataError(
            f"{source}: named .gz but is not gzip-compressed (it starts with {data[:4].hex()!r}, "
            f"gzip starts with '1f8b'). {advice}"
        )
    if max_size is not None and len(data) > max_size:
        raise DataError(
            f"{source}: {len(data)} bytes, more than the {max_size} bytes expected. {advice}"
        )
    return data


class _Gunzip:
    """Decompress gzip data (one or more members) piece by piece, never more than asked for.

    Like gzip.decompress, members may be followed by zero bytes; anything else, a
    truncated member or a bad checksum is a DataError naming ``source``.
    """

    # Compressed bytes given to zlib at once, and the most it gives back at once to be copied
    # into an array: for MNIST's files (compressed about 5 to 1) about an input's output;
    # for a decompression bomb, which turns an input into up to 1032 times as much, a bound
    # on the memory beside the array. Few calls: each gives up the GIL and must take it back
    # from whatever else runs (the commands import Numba meanwhile), up to 5 ms a call.
    _INPUT, _OUTPUT = 1 << 20, 1 << 22

    def __init__(self, data: bytes, source: str | os.PathLike[str], advice: str) -> None:
        self._data = memoryview(data)
        self._pos = 0  # the compressed bytes before this were given to zlib
        self._tail = b""  # given to zlib, not yet used: it ends at self._pos
        self._member = None  # the zlib decompressor of the current member, None between
        self._source, self._advice = source, advice

    def read(self, n: int) -> bytes:
        """Up to ``n`` decompressed bytes; fewer only at the end of the data, then checked."""
        return b"".join(self._pieces(n, n))  # a single piece is joined without a copy

    def read_into(self, out: np.ndarray) -> int:
        """Decompress into the uint8 array ``out`` until it is full or the data ends (then
        checked); return the number of bytes written."""
        size = 0
        for piece in self._pieces(len(out), self._OUTPUT):
            out[size : size + len(piece)] = np.frombuffer(piece, np.uint8)
            size += len(piece)
        return size

    def _pieces(self, n: int, largest: int) -> Iterator[bytes]:
        """The next ``n`` decompressed bytes (fewer only at the end), in pieces of at most
        ``largest`` bytes."""
        size = 0
        while size < n:
            if self._member is None and not self._next_member():
                break
            if not self._tail:
                self._tail = self._data[self._pos : self._pos + self._INPUT]
                self._pos += len(self._tail)
                if not self._tail:
                    raise self._corrupt("the compressed data ends before the end of the stream")
            try:
                piece = self._member.decompress(self._tail, min(n - size, largest))
            except zlib.error as e:
                raise self._corrupt(e) from None
            size += len(piece)
            self._tail = self._member.unconsumed_tail
            if self._member.eof:
                self._pos -= len(self._member.unused_data)  # the next member starts there
                self._tail = b""
                self._member = None
            yield piece

    def count_rest(self) -> int:
        """Decompress the rest, keeping none of it; return its size."""
        size = 0
        while part := self.read(1 << 20):
            size += len(part)
        return size

    def _next_member(self) -> bool:
        """Start the next member, after any zero padding; False at the end of the data."""
        found = _NOT_ZERO.search(self._data, self._pos)
        if found is None:
            self._pos = len(self._data)
            return False
        self._pos = found.start()
        if self._data[self._pos : self._pos + 2] != GZIP_MAGIC:
            raise self._corrupt("the bytes after the compressed data are not gzip data")
        self._member = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer
        return True

    def _corrupt(self, problem: object) -> DataError:
        return DataError(
            f"{self._source}: corrupt gzip data ({problem}); the file is damaged or was only "
            f"partly downloaded. {self._advice}"
        )


_NOT_ZERO = re.compile(rb"[^\x00]")


def parse_idx(data: bytes | np.ndarray, source: str | os.PathLike[str] = "<bytes>") -> np.ndarray:
    """Parse the uncompressed bytes of an IDX file into a native-endian array.

    ``source`` only names the file in error messages. The result is writable: a copy
    of ``data``, except that given a writable numpy uint8 array (as
    `gunzip_if_compressed` returns for a bounded size) it is a view of it where the
    values need no byte swapping: the array then belongs to the result.
    """
    # The header as bytes (_MAX_HEADER of them hold any header, and shorter data all of it).
    shape, dtype, header_size, expected = _parse_header(bytes(data[:_MAX_HEADER]), source)
    _check_size(source, shape, dtype, expected, len(data))
    count = (expected - header_size) // dtype.itemsize
    array = np.frombuffer(data, dtype=dtype, count=count, offset=header_size).reshape(shape)
    if isinstance(data, np.ndarray) and array.flags.writeable and array.dtype.isnative:
        return array
    return array.astype(dtype.newbyteorder("="))


# The longest IDX header: the magic number and 255 dimensions.
_MAX_HEADER = 4 + 4 * 255


def _parse_header(
    data: bytes, source: str | os.PathLike[str]
) -> tuple[tuple[int, ...], np.dtype, int, int]:
    """(shape, dtype, header size, file size) from the IDX header at the start of ``data``.

    ``data`` may hold only the start of the file, but then at least _MAX_HEADER bytes.
    """
    if len(data) < 4:
        raise DataError(
            f"{source}: truncated: {len(data)} bytes, too short for the 4-byte IDX magic number. "
            f"{_REPLACE}"
        )
    zeros, code, ndim = data[:2], data[2], data[3]
    if zeros != b"\x00\x00":
        raise DataError(
            f"{source}: not an IDX file: wrong magic number {bytes(data[:4]).hex()!r} (an IDX file "
            f"starts with two zero bytes, a dtype code and the number of dimensions). {_REPLACE}"
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
    return shape, dtype, header_size, header_size + count * dtype.itemsize


def _check_size(
    source: str | os.PathLike[str],
    shape: tuple[int, ...],
    dtype: np.dtype,
    expected: int,
    size: int,
) -> None:
    """Raise a DataError if the file's (uncompressed) ``size`` is not the ``expected`` one."""
    described = f"shape {'x'.join(map(str, shape))} of {dtype.name}"
    if size < expected:
        raise DataError(
            f"{source}: truncated: the header declares {described}, which needs {expected} bytes, "
            f"but the file has only {size} bytes (uncompressed). {_REPLACE}"
        )
    if size > expected:
        raise DataError(
            f"{source}: {size - expected} trailing bytes after the data: the header declares "
            f"{described} ({expected} bytes) but the file has {size} bytes (uncompressed). "
            f"{_REPLACE}"
        )


# Deflate turns one compressed byte into at most 1032 bytes (a 258-byte match in 2 bits).
_MAX_GZIP_RATIO = 1032


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip-compressed or raw) into a native-endian numpy array.

    Raises DataError, naming the file, if it is missing, not gzip despite a
    ``.gz`` name, corrupt, or not a well-formed IDX file. A gzip file is never
    decompressed to more than its IDX header declares (plus 1 MiB at a time to
    count any excess), so a decompression bomb is an error, not a memory hog.
    """
    path = Path(path)
    data = _read_file(path)
    if data[:2] != GZIP_MAGIC:
        return parse_idx(gunzip_if_compressed(data, path), path)
    stream = _Gunzip(data, path, _REPLACE)
    head = stream.read(_MAX_HEADER)
    shape, dtype, _, expected = _parse_header(head, path)
    if expected > _MAX_GZIP_RATIO * len(data):
        # More than this gzip data can hold: truncated, whatever it holds; only count it.
        _check_size(path, shape, dtype, expected, len(head) + stream.count_rest())
    contents = head + stream.read(expected + 1 - len(head)) if expected >= len(head) else head
    if len(contents) > expected:
        _check_size(path, shape, dtype, expected, len(contents) + stream.count_rest())
    return parse_idx(contents, path)
