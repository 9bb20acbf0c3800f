"""Fuzzing read_model: a damaged model file loads or is a ModelFileError, in bounded memory."""

import struct
import tracemalloc
import zipfile

import numpy as np

from fastnn.core.model import init_params
from fastnn.files.persist import ModelFileError, read_model, save_model

SEED = 20261122
CASES = 400
SHAPES = [(784, 16), (16,), (16, 10), (10,)]


def parsed_offsets(data: bytes, path) -> np.ndarray:
    """Offsets of the bytes zipfile and numpy parse rather than checksum: each member's local
    header and .npy preamble, and the central directory to the end of the file. Random flips
    elsewhere almost all land in W1's data, where the CRC-32 check turns them all away alike."""
    with zipfile.ZipFile(path) as archive:
        infos = archive.infolist()
    directory = struct.unpack_from("<I", data, len(data) - 6)[0]  # from the end-of-directory record
    ranges = [range(directory, len(data))]
    for info in infos:
        name_and_extra = sum(struct.unpack_from("<2H", data, info.header_offset + 26))
        npy_end = info.header_offset + 30 + name_and_extra + 128  # numpy's preamble: 128 bytes
        ranges.append(range(info.header_offset, npy_end))
    return np.array([offset for r in ranges for offset in r])


def damage(rng: np.random.Generator, data: bytes, parsed: np.ndarray) -> bytes:
    """1 to 8 flipped bytes (half of them where a parser reads), a truncation, or both."""
    damaged = bytearray(data)
    kind = rng.choice(["flip", "truncate", "both"], p=[0.6, 0.2, 0.2])
    if kind != "truncate":
        for _ in range(rng.integers(1, 9)):
            offset = rng.choice(parsed) if rng.random() < 0.5 else rng.integers(len(data))
            damaged[offset] ^= int(rng.integers(1, 256))
    if kind != "flip":
        del damaged[rng.integers(len(damaged)) :]
    return bytes(damaged)


def test_damaged_files_load_or_raise_model_file_error(tmp_path):
    path = tmp_path / "model.npz"
    save_model(path, init_params(784, 16, 10, seed=0), activation="relu", classes=range(10))
    data = path.read_bytes()
    parsed = parsed_offsets(data, path)
    read_model(path)  # outside the measurement: numpy imports modules on first use
    # Reading holds the archive's directory, the header, and each array as read from its member,
    # while zipfile assembles that read, and as the writable copy returned: at most 4x the file,
    # plus 1 MiB for the objects of zipfile, numpy and json (zipfile alone may read a 64 kB name
    # from a damaged local header and quote it in its error message).
    limit = 4 * len(data) + (1 << 20)
    bad = tmp_path / "bad.npz"
    outcomes = {"loaded": 0, "refused": 0}
    tracemalloc.start()
    try:
        for case in range(CASES):
            where = f"seed {SEED} case {case}"
            bad.write_bytes(damage(np.random.default_rng([SEED, case]), data, parsed))
            start = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            try:
                params = read_model(bad).params
            except ModelFileError as exc:
                assert str(bad) in str(exc), f"{where}: {exc}"
                outcomes["refused"] += 1
            except Exception as exc:
                raise AssertionError(f"{where}: {type(exc).__name__}: {exc}") from exc
            else:
                arrays = params.arrays()
                assert [a.shape for a in arrays] == SHAPES, where
                assert all(a.dtype == np.float32 and np.isfinite(a).all() for a in arrays), where
                outcomes["loaded"] += 1
            peak = tracemalloc.get_traced_memory()[1] - start
            assert peak < limit, f"{where}: {peak} bytes allocated, limit {limit}"
    finally:
        tracemalloc.stop()
    assert outcomes["refused"] > CASES // 2, outcomes  # the damage does reach the checks
