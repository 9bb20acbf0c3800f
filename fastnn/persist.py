"""Saved models: one .npz file holding the four weight arrays and a JSON header.

The header (UTF-8 JSON in a uint8 array) records the format version, the fastnn version, the
architecture, activation, dtype, class labels (values and kind, so ints stay ints), the
training config and known scores. Loading never unpickles anything and checks every field,
name, shape and dtype before reading array data, so a damaged or tampered file is a
ModelFileError naming the file, never code execution or a huge allocation.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import fastnn
from fastnn.atomic import atomic_path
from fastnn.model import ACTIVATIONS, DTYPES, Params, check_choice

FORMAT = "fastnn-model"
FORMAT_VERSION = 1
HEADER = "header"
ARRAY_NAMES = ("W1", "b1", "W2", "b2")
HEADER_FIELDS = (
    "format", "format_version", "fastnn_version", "architecture", "activation", "dtype",
    "classes", "config", "scores",
)  # fmt: skip
MAX_HEADER_BYTES = 1 << 20  # far above any real header; bounds what a tampered file can ask for
CLASS_KINDS = {"bool": bool, "int": int, "float": float, "str": str}
ZIP_MAGIC = b"PK\x03\x04"


class ModelFileError(ValueError):
    """A model file that cannot be used: missing, damaged, tampered with, or another version."""


class SavedModel(NamedTuple):
    params: Params
    activation: str
    classes: np.ndarray
    config: dict[str, Any]
    scores: dict[str, float | None]
    header: dict[str, Any]


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars and arrays and paths."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _score(value: Any) -> float | None:
    """A score as JSON allows it: NaN (as from an empty dev set) means unknown, like None."""
    if value is None:
        return None
    if not isinstance(value, int | float | np.integer | np.floating) or isinstance(value, bool):
        raise ValueError(f"scores must be numbers or None; got {value!r}")
    return None if math.isnan(value) else float(value)


def _classes_to_json(classes: Any, n_out: int) -> dict[str, Any]:
    array = np.asarray(classes, dtype=object)  # keeps each label's own type
    if array.ndim != 1 or len(array) != n_out:
        raise ValueError(f"classes must list the network's {n_out} labels; got shape {array.shape}")
    values = [_plain(v) if isinstance(v, np.generic) else v for v in array.tolist()]
    for kind, kind_type in CLASS_KINDS.items():
        if all(type(v) is kind_type for v in values):
            if kind == "float" and not all(math.isfinite(v) for v in values):
                raise ValueError("classes must be finite numbers")
            if not np.array_equal(np.unique(values), values):
                raise ValueError("classes must be sorted and unique, as np.unique returns them")
            return {"kind": kind, "values": values}
    raise ValueError("classes must be all ints, all floats, all strings or all bools")


def save_model(
    path: str | os.PathLike,
    params: Params,
    *,
    activation: str,
    classes: Any,
    config: dict[str, Any] | None = None,
    scores: dict[str, float | None] | None = None,
) -> None:
    """Write the network to `path` (one .npz file, written atomically).

    `classes[i]` is the label of output i; `config` is any JSON-able record of how the model was
    trained; `scores` maps names such as "dev_accuracy" to numbers or None (unknown).
    """
    params.validate()
    check_choice("activation", activation, ACTIVATIONS)
    scores = {str(name): _score(value) for name, value in (scores or {}).items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastnn_version": fastnn.__version__,
        "architecture": {"n_in": params.n_in, "hidden": params.hidden, "n_out": params.n_out},
        "activation": activation,
        "dtype": params.dtype.name,
        "classes": _classes_to_json(classes, params.n_out),
        "config": dict(config or {}),
        "scores": scores,
    }
    try:
        text = json.dumps(header, default=_plain, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config and scores must be JSON-serialisable: {exc}") from None
    arrays = {
        name: np.ascontiguousarray(a) for name, a in zip(ARRAY_NAMES, params.arrays(), strict=True)
    }
    with atomic_path(path, suffix=".npz") as tmp:  # the suffix stops np.savez appending one
        np.savez(tmp, **{HEADER: np.frombuffer(text.encode("utf-8"), dtype=np.uint8)}, **arrays)


def read_model(path: str | os.PathLike) -> SavedModel:
    """Read and check a model file; raises ModelFileError for anything unusable."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: {'is a directory' if path.is_dir() else 'no such file'}")
    try:
        with path.open("rb") as f:
            if f.read(4) != ZIP_MAGIC:
                raise _fail(path, "not a fastnn model file (it is not a .npz archive)")
        with np.load(path, allow_pickle=False) as npz:
            return _read(path, npz)
    except ModelFileError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise ModelFileError(
            f"{path}: damaged or truncated model file ({type(exc).__name__}: {exc})"
        ) from None


def _fail(path: Path, what: str) -> ModelFileError:
    return ModelFileError(f"{path}: {what}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _array_spec(path: Path, npz: np.lib.npyio.NpzFile, name: str) -> tuple[tuple, np.dtype]:
    """Shape and dtype from the .npy header of array `name`, without reading its data."""
    with npz.zip.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise _fail(
                path, f"array {name!r} uses .npy format {version}, which fastnn never writes"
            )
    if dtype.hasobject:
        raise _fail(
            path, f"array {name!r} holds Python objects (pickled data); refusing to load it"
        )
    return shape, dtype


def _field(path: Path, record: dict, key: str, ok: Callable[[Any], bool], wanted: str) -> Any:
    if key not in record:
        raise _fail(path, f"the header has no {key!r} field")
    if not ok(record[key]):
        raise _fail(path, f"header field {key!r} must be {wanted}; got {_short(record[key])}")
    return record[key]


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_positive_int(value: Any) -> bool:
    return type(value) is int and value >= 1


def _is_scores(value: Any) -> bool:
    return _is_dict(value) and all(s is None or type(s) in (int, float) for s in value.values())


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _check_members(path: Path, npz: np.lib.npyio.NpzFile) -> None:
    entries = npz.zip.namelist()
    members = {name.removesuffix(".npy") for name in entries}
    if len(members) != len(entries) or not all(name.endswith(".npy") for name in entries):
        raise _fail(path, "the archive holds entries that are not .npy arrays")
    expected = {HEADER, *ARRAY_NAMES}
    if expected - members:
        raise _fail(path, f"missing array(s) {sorted(expected - members)}")
    if members - expected:
        raise _fail(path, f"unexpected array(s) {sorted(members - expected)}")


def _read_header(path: Path, npz: np.lib.npyio.NpzFile) -> dict[str, Any]:
    shape, dtype = _array_spec(path, npz, HEADER)
    if dtype != np.uint8 or len(shape) != 1 or shape[0] > MAX_HEADER_BYTES:
        raise _fail(path, f"the header must be 1-D uint8 of at most {MAX_HEADER_BYTES} bytes")
    try:
        text = npz[HEADER].tobytes().decode("utf-8")
        header = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise _fail(path, f"the header is not valid JSON text ({exc})") from None
    if not _is_dict(header) or header.get("format") != FORMAT:
        raise _fail(path, f"not a fastnn model file (its header does not say format {FORMAT!r})")
    version = header.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise _fail(
            path,
            f"model format version {_short(version)} is not supported: fastnn "
            f"{fastnn.__version__} reads version {FORMAT_VERSION}",
        )
    unknown = sorted(set(header) - set(HEADER_FIELDS))
    if unknown:
        raise _fail(path, f"unexpected header field(s) {unknown}")
    _field(path, header, "fastnn_version", lambda v: isinstance(v, str), "a string")
    return header


def _read_classes(path: Path, header: dict, n_out: int) -> np.ndarray:
    record = _field(path, header, "classes", _is_dict, "an object")
    kind = _field(path, record, "kind", lambda v: v in CLASS_KINDS, f"one of {list(CLASS_KINDS)}")
    values = _field(
        path,
        record,
        "values",
        lambda v: isinstance(v, list) and all(type(x) is CLASS_KINDS[kind] for x in v),
        f"a list of {kind} labels",
    )
    if len(values) != n_out:
        raise _fail(path, f"{len(values)} class labels for {n_out} outputs")
    classes = np.array(values)
    finite = kind != "float" or np.isfinite(classes).all()
    if not finite or not np.array_equal(np.unique(classes), classes):
        raise _fail(path, "the class labels must be sorted, unique and finite")
    return classes


def _read(path: Path, npz: np.lib.npyio.NpzFile) -> SavedModel:
    _check_members(path, npz)
    header = _read_header(path, npz)
    arch = _field(path, header, "architecture", _is_dict, "an object")
    n_in, hidden, n_out = (
        _field(path, arch, key, _is_positive_int, "a positive whole number")
        for key in ("n_in", "hidden", "n_out")
    )
    activation = _field(path, header, "activation", ACTIVATIONS.__contains__, str(ACTIVATIONS))
    dtype = np.dtype(_field(path, header, "dtype", DTYPES.__contains__, str(DTYPES)))
    classes = _read_classes(path, header, n_out)
    config = _field(path, header, "config", _is_dict, "an object")
    scores = _field(path, header, "scores", _is_scores, "an object of numbers or nulls")

    # Every shape is checked before any array data is read, so a tampered header cannot make
    # numpy allocate more than the file could hold.
    shapes = {"W1": (n_in, hidden), "b1": (hidden,), "W2": (hidden, n_out), "b2": (n_out,)}
    needed = sum(math.prod(s) for s in shapes.values()) * dtype.itemsize
    size = path.stat().st_size
    if needed > size:
        raise _fail(
            path,
            f"the architecture {n_in}-{hidden}-{n_out} needs {needed} bytes of weights but the "
            f"file has only {size} bytes (truncated or tampered)",
        )
    for name, shape in shapes.items():
        found = _array_spec(path, npz, name)
        if found != (shape, dtype):
            raise _fail(
                path,
                f"array {name!r} is {found[1]} with shape {found[0]}, but the header says "
                f"{dtype} with shape {shape}",
            )
    arrays = [np.ascontiguousarray(npz[name]) for name in ARRAY_NAMES]
    for name, array in zip(ARRAY_NAMES, arrays, strict=True):
        if not np.isfinite(array).all():
            raise _fail(path, f"array {name!r} holds NaN or infinite weights")
    return SavedModel(Params(*arrays), activation, classes, config, scores, header)
