"""Tests for the IDX reader: round trips and a clear error for every kind of bad file."""

import gzip
import re
import struct
import tracemalloc

import numpy as np
import pytest
from gzip_bomb import write_gzip_bomb

from fastnn.data import DataError, read_idx

CODES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def idx_bytes(array: np.ndarray, code: int) -> bytes:
    """Encode ``array`` as IDX, written here independently of the reader."""
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(CODES[code]).tobytes()


def sample(code: int, shape: tuple[int, ...]) -> np.ndarray:
    dtype = np.dtype(CODES[code]).newbyteorder("=")
    rng = np.random.default_rng(code)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)


def expect_error(path, pattern: str) -> None:
    """read_idx must raise a DataError naming ``path`` and matching ``pattern``."""
    with pytest.raises(DataError, match=pattern) as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("compressed", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4)], ids=["1d", "2d", "3d"])
@pytest.mark.parametrize("code", sorted(CODES), ids=[f"0x{c:02X}" for c in sorted(CODES)])
def test_round_trip(tmp_path, code, shape, compressed):
    array = sample(code, shape)
    data = idx_bytes(array, code)
    path = tmp_path / ("a.idx.gz" if compressed else "a.idx")
    path.write_bytes(gzip.compress(data) if compressed else data)

    result = read_idx(path)

    assert result.shape == shape
    assert result.dtype == array.dtype and result.dtype.isnative
    np.testing.assert_array_equal(result, array)
    assert result.flags.writeable


def test_gzip_is_detected_by_content_not_name(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = tmp_path / "labels-idx2-ubyte"
    path.write_bytes(gzip.compress(idx_bytes(array, 0x08)))
    np.testing.assert_array_equal(read_idx(path), array)


def test_str_path_and_empty_dimension(tmp_path):
    path = tmp_path / "empty.idx"
    path.write_bytes(idx_bytes(np.zeros((0, 28, 28), np.uint8), 0x08))
    assert read_idx(str(path)).shape == (0, 28, 28)


def test_missing_file(tmp_path):
    expect_error(tmp_path / "nope.gz", "file not found")


def test_directory_instead_of_file(tmp_path):
    expect_error(tmp_path, "cannot read the file")


def test_truncated_data_says_expected_and_actual_bytes(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(idx_bytes(np.zeros((2, 3), np.int32), 0x0C)[:-1])
    # 4 magic + 2*4 dims + 6*4 data = 36 bytes needed.
    expect_error(path, r"truncated: .*shape 2x3 of int32, which needs 36 bytes, .*only 35 bytes")


def test_truncated_inside_gzip(tmp_path):
    path = tmp_path / "t.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(10, np.uint8), 0x08)[:-4]))
    expect_error(path, r"truncated: .*needs 18 bytes, .*only 14 bytes \(uncompressed\)")


def test_truncated_header(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 5))
    expect_error(path, "truncated: the header needs 16 bytes for 3 dimensions .* only 8")


def test_too_short_for_magic(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(b"\x00\x00")
    expect_error(path, "truncated: 2 bytes, too short for the 4-byte IDX magic number")


def test_trailing_bytes(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(idx_bytes(np.ones(4, np.uint8), 0x08) + b"xyz")
    expect_error(path, r"3 trailing bytes after the data: .*\(12 bytes\) but the file has 15")


def test_wrong_magic(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(b"PK\x03\x04" + bytes(20))
    expect_error(path, "not an IDX file: wrong magic number '504b0304'")


def test_unknown_dtype_code(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(bytes([0, 0, 0x0A, 1]) + struct.pack(">I", 0))
    expect_error(path, re.escape("unknown IDX dtype code 0x0A (known: 0x08, 0x09, 0x0B,"))


def test_zero_dimensions(tmp_path):
    path = tmp_path / "t.idx"
    path.write_bytes(bytes([0, 0, 0x08, 0]))
    expect_error(path, "declares 0 dimensions")


def test_gz_name_but_not_gzip(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(idx_bytes(np.ones(4, np.uint8), 0x08))
    expect_error(path, "named .gz but is not gzip-compressed")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda z: z[: len(z) // 2], id="cut-short"),
        pytest.param(lambda z: z[:-8] + bytes(8), id="bad-crc"),
        pytest.param(lambda z: z[:10] + b"\xff" * (len(z) - 10), id="bad-deflate"),
    ],
)
def test_corrupt_gzip(tmp_path, damage):
    path = tmp_path / "t.idx.gz"
    data = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8), 0x08))
    path.write_bytes(damage(data))
    expect_error(path, "corrupt gzip data .*damaged or was only partly downloaded")


def test_zero_padding_and_several_gzip_members(tmp_path):
    # As gzip.decompress reads them: members one after another, zero bytes after any.
    data = idx_bytes(np.arange(300, dtype=np.int32), 0x0C)
    path = tmp_path / "t.idx.gz"
    path.write_bytes(gzip.compress(data[:5]) + bytes(3) + gzip.compress(data[5:]) + bytes(7))
    np.testing.assert_array_equal(read_idx(path), np.arange(300))


def test_garbage_after_gzip_data(tmp_path):
    path = tmp_path / "t.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.ones(4, np.uint8), 0x08)) + b"junk")
    expect_error(path, "corrupt gzip data .*after the compressed data are not gzip")


# --- gzip bombs: decompressed no further than the IDX header allows ----------------------

BOMB_ZEROS = 256 << 20


def peak_memory_of_error(path, pattern: str) -> int:
    """read_idx(path) must raise a DataError matching ``pattern``; return the peak traced bytes."""
    tracemalloc.start()
    try:
        expect_error(path, pattern)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_gzip_bomb_after_a_small_idx(tmp_path):
    data = idx_bytes(np.arange(10, dtype=np.uint8), 0x08)
    path = write_gzip_bomb(tmp_path / "bomb.idx.gz", BOMB_ZEROS, data)
    peak = peak_memory_of_error(path, f"{BOMB_ZEROS} trailing bytes after the data")
    print(f"peak traced memory reading a {BOMB_ZEROS >> 20} MiB gzip bomb: {peak / 1e6:.1f} MB")
    assert peak < 8e6  # pieces of 1 MiB, not the bomb's 268 MB


def test_gzip_bomb_with_an_absurd_header(tmp_path):
    # A header declaring 2**64 bytes, more than the bomb's 260 kB could ever decompress to.
    header = bytes([0, 0, 0x08, 2]) + b"\xff" * 8
    path = write_gzip_bomb(tmp_path / "bomb.idx.gz", BOMB_ZEROS, header)
    pattern = f"truncated: .*needs {4 + 8 + (2**32 - 1) ** 2} bytes, .*only {12 + BOMB_ZEROS} bytes"
    peak = peak_memory_of_error(path, pattern)
    assert peak < 8e6
