"""Saved models: one .npz file holding the weight arrays (W1, b1, W2, b2, ...), the optimizer's
state arrays if it keeps any, and a JSON header.

The header (UTF-8 JSON in a uint8 array) records the format version, the fastnn version, the
architecture, activation, dtype, class labels (values and kind, so ints stay ints; null for a
regressor), the training config, known scores, (version 2) the optimizer's step count and the
training history, and the output kind (fastnn.core.model.OUTPUTS; a file without one, written
before the kinds existed, is "softmax"). Version 1 files (one hidden layer, no optimizer state)
still load. Loading never unpickles anything and checks every field, name, shape, dtype and size
before reading array data, so a damaged or tampered file is a ModelFileError naming the file, never
code execution or a huge allocation. Every read has a bound fixed before it
(fastnn.files.npz_members reads the members): .npy preambles MAX_NPY_HEADER_BYTES, the header
MAX_HEADER_BYTES, array data the file's own size; and only stored or deflated members (what numpy
writes) are read, as zipfile inflates those no further than a read asks.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fastnn.core.model import ACTIVATIONS, DTYPES, OUTPUTS, Params, check_choice
from fastnn.core.optim import OptimizerState
from fastnn.files.atomic import atomic_path
from fastnn.files.npz_members import (
    ModelFileError,
    check_array,
    clip,
    data_size,
    fail,
    open_npy,
    read_array,
    read_data,
    short,
)
from fastnn.version import __version__

FORMAT = "fastnn-model"
FORMAT_VERSION = 2
READ_VERSIONS = (1, 2)
HEADER = "header"
# A file that is no model file at all (another archive, numpy's own .npz of arrays): what it
# is, and what fastnn reads instead.
NOT_A_MODEL = (
    "not a fastnn model file ({}); fastnn reads the .npz files that a model's save() and "
    "python -m fastnn.train --save write"
)
HEADER_FIELDS = (
    "format", "format_version", "fastnn_version", "architecture", "activation", "dtype",
    "classes", "config", "scores", "optimizer", "history", "output",
)  # fmt: skip
MOMENTS = ("first", "second")  # the optimizer state's arrays are saved as first_W1, ...
MAX_HEADER_BYTES = 1 << 20  # far above any real header; bounds what a tampered file can ask for
CLASS_KINDS = {"bool": bool, "int": int, "float": float, "str": str}
ZIP_MAGIC = b"PK\x03\x04"
MAX_LAYERS = 64  # hidden layers a file may declare: bounds the work a tampered header asks for


class SavedModel(NamedTuple):
    params: Params
    activation: str
    classes: np.ndarray | None  # None for a regressor ("identity" output)
    config: dict[str, Any]
    scores: dict[str, float | None]
    header: dict[str, Any]
    state: OptimizerState | None  # None: saved without one (version 1, or never trained)
    history: dict[str, Any]  # what save_model was given; {} for version 1
    output: str  # the output kind, fastnn.core.model.OUTPUTS


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
    output: str = "softmax",
    config: dict[str, Any] | None = None,
    scores: dict[str, float | None] | None = None,
    state: OptimizerState | None = None,
    history: dict[str, Any] | None = None,
) -> None:
    """Write the network to `path` (one .npz file, written atomically).

    `classes[i]` is the label of output i (None for "identity" outputs, a regressor's); `output`
    the output kind (fastnn.core.model.OUTPUTS); `config` is any JSON-able record of how the
    model was trained; `scores` maps names such as "dev_accuracy" to numbers or None (unknown);
    `state` the optimizer's, to go on training later; `history` any JSON-able record of the
    training so far (loss curve, epochs, the schedule's position).
    """
    params.validate()
    if state is not None and not state.laid_out_as(params):
        raise ValueError("the optimizer state does not fit the network's arrays")
    check_choice("activation", activation, ACTIVATIONS)
    check_choice("output", output, OUTPUTS)
    if (classes is None) != (output == "identity"):
        raise ValueError("classes must be given for class outputs, and None for identity ones")
    scores = {str(name): _score(value) for name, value in (scores or {}).items()}
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "fastnn_version": __version__,
        "architecture": {
            "n_in": params.n_in,
            "hidden": list(params.hidden_sizes),
            "n_out": params.n_out,
        },  # fmt: skip
        "activation": activation,
        "dtype": params.dtype.name,
        "classes": None if classes is None else _classes_to_json(classes, params.n_out),
        "config": dict(config or {}),
        "scores": scores,
        "history": dict(history or {}),
        "output": output,
    }
    arrays = dict(zip(params.names(), params.arrays(), strict=True))
    if state is not None:
        header["optimizer"] = {"step": state.step, **{m: bool(getattr(state, m)) for m in MOMENTS}}
        for moment in MOMENTS:
            if getattr(state, moment):
                arrays.update(
                    {
                        f"{moment}_{n}": a
                        for n, a in zip(params.names(), getattr(state, moment), strict=True)
                    }
                )
    try:
        text = json.dumps(header, default=_plain, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"config and scores must be JSON-serialisable: {exc}") from None
    arrays = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
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
                raise fail(path, NOT_A_MODEL.format("it is not a .npz archive"))
            with zipfile.ZipFile(f) as archive:
                return _read(path, archive, os.fstat(f.fileno()).st_size)
    except (ModelFileError, MemoryError):
        # A MemoryError is the machine's, not the file's: the checks below keep any file from
        # making the loader allocate much more than its own size and MAX_HEADER_BYTES.
        raise
    except Exception as exc:
        # zipfile and numpy parse the untrusted bytes and raise whatever the damage trips over
        # (BadZipFile, struct.error, NotImplementedError, RuntimeError, tokenize.TokenError,
        # SyntaxError, UnicodeDecodeError, ...): to the caller all of them mean the same.
        raise ModelFileError(
            f"{path}: damaged or truncated model file ({type(exc).__name__}: {clip(str(exc))})"
        ) from None


def _field(path: Path, record: dict, key: str, ok: Callable[[Any], bool], wanted: str) -> Any:
    if key not in record:
        raise fail(path, f"the header has no {key!r} field")
    if not ok(record[key]):
        raise fail(path, f"header field {key!r} must be {wanted}; got {short(record[key])}")
    return record[key]


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_positive_int(value: Any) -> bool:
    return type(value) is int and value >= 1


def _is_scores(value: Any) -> bool:
    return _is_dict(value) and all(s is None or type(s) in (int, float) for s in value.values())


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a number JSON allows")


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by array name, checked to be .npy arrays and to hold a header."""
    infos = archive.infolist()
    members = {info.filename.removesuffix(".npy"): info for info in infos}
    if len(members) != len(infos) or not all(info.filename.endswith(".npy") for info in infos):
        raise fail(path, NOT_A_MODEL.format("the archive holds entries that are not .npy arrays"))
    if HEADER not in members:
        why = f"a .npz archive of other arrays: it has no {HEADER!r} array"
        raise fail(path, NOT_A_MODEL.format(why))
    return members


def _check_names(path: Path, members: dict[str, zipfile.ZipInfo], expected: set[str]) -> None:
    if expected - members.keys():
        raise fail(path, f"missing array(s) {sorted(expected - members.keys())}")
    if members.keys() - expected:
        raise fail(path, f"unexpected array(s) {sorted(members.keys() - expected)}")


def _read_header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict[str, Any]:
    with open_npy(path, archive, info) as (f, npy):
        if npy.dtype != np.uint8 or len(npy.shape) != 1 or npy.shape[0] > MAX_HEADER_BYTES:
            raise fail(path, f"the header must be 1-D uint8 of at most {MAX_HEADER_BYTES} bytes")
        raw = read_data(path, HEADER, f, data_size(path, HEADER, npy))
    try:
        header = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise fail(path, f"the header is not valid JSON text ({exc})") from None
    if not _is_dict(header) or header.get("format") != FORMAT:
        raise fail(path, NOT_A_MODEL.format(f"its header does not say format {FORMAT!r}"))
    version = header.get("format_version")
    if type(version) is not int or version not in READ_VERSIONS:
        raise fail(
            path,
            f"model format version {short(version)} is not supported: fastnn "
            f"{__version__} reads versions {', '.join(map(str, READ_VERSIONS))}",
        )
    unknown = sorted(set(header) - set(HEADER_FIELDS))
    if unknown:
        raise fail(path, f"unexpected header field(s) {unknown}")
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
        raise fail(path, f"{len(values)} class labels for {n_out} outputs")
    # numpy pads every string label to the longest (4 bytes a character): unchecked, a header of
    # a few hundred kB could ask for gigabytes.
    if kind == "str" and len(values) * max(map(len, values)) > MAX_HEADER_BYTES:
        raise fail(
            path,
            f"the class labels are too long: {n_out} padded to the longest exceed "
            f"{MAX_HEADER_BYTES} characters",
        )
    classes = np.array(values)
    finite = kind != "float" or np.isfinite(classes).all()
    if not finite or not np.array_equal(np.unique(classes), classes):
        raise fail(path, "the class labels must be sorted, unique and finite")
    return classes


def _hidden_sizes(path: Path, arch: dict, version: int) -> list[int]:
    if version == 1:  # one hidden layer, its size a number
        return [_field(path, arch, "hidden", _is_positive_int, "a positive whole number")]

    def ok(v: Any) -> bool:
        return isinstance(v, list) and 0 < len(v) <= MAX_LAYERS and all(map(_is_positive_int, v))

    return _field(path, arch, "hidden", ok, f"a list of 1 to {MAX_LAYERS} positive whole numbers")


def _read_optimizer(path: Path, header: dict) -> tuple[int, list[str]] | None:
    """(step, the moments saved) from the header's optimizer record, if it has one."""
    if "optimizer" not in header:
        return None
    record = _field(path, header, "optimizer", _is_dict, "an object")
    step = _field(path, record, "step", lambda v: type(v) is int and v >= 0, "a whole number >= 0")
    for moment in MOMENTS:
        _field(path, record, moment, lambda v: type(v) is bool, "true or false")
    if set(record) - {"step", *MOMENTS}:
        raise fail(
            path, f"unexpected optimizer field(s) {sorted(set(record) - {'step', *MOMENTS})}"
        )
    return step, [moment for moment in MOMENTS if record[moment]]


def _read(path: Path, archive: zipfile.ZipFile, file_size: int) -> SavedModel:
    members = _members(path, archive)
    header = _read_header(path, archive, members[HEADER])
    version = header["format_version"]
    arch = _field(path, header, "architecture", _is_dict, "an object")
    n_in = _field(path, arch, "n_in", _is_positive_int, "a positive whole number")
    n_out = _field(path, arch, "n_out", _is_positive_int, "a positive whole number")
    sizes = [n_in, *_hidden_sizes(path, arch, version), n_out]
    activation = _field(path, header, "activation", ACTIVATIONS.__contains__, str(ACTIVATIONS))
    dtype = np.dtype(_field(path, header, "dtype", DTYPES.__contains__, str(DTYPES)))
    output = header.get("output", "softmax")
    if output not in OUTPUTS:
        raise fail(
            path, f"header field 'output' must be one of {list(OUTPUTS)}; got {short(output)}"
        )
    if output == "identity":
        _field(path, header, "classes", lambda v: v is None, "null for identity outputs")
        classes = None
    else:
        classes = _read_classes(path, header, n_out)
    config = _field(path, header, "config", _is_dict, "an object")
    scores = _field(path, header, "scores", _is_scores, "an object of numbers or nulls")
    history = _field(path, header, "history", _is_dict, "an object") if version > 1 else {}
    optimizer = _read_optimizer(path, header) if version > 1 else None

    # Every shape and size is checked before any array data is read, and the arrays must fit
    # in the file (so a deflated member cannot inflate past the file's own size).
    shapes = {}
    for layer, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        shapes[f"W{layer + 1}"], shapes[f"b{layer + 1}"] = (fan_in, fan_out), (fan_out,)
    weight_names = list(shapes)
    for moment in optimizer[1] if optimizer else []:
        shapes.update({f"{moment}_{name}": shapes[name] for name in weight_names})
    _check_names(path, members, {HEADER, *shapes})
    needed = sum(math.prod(s) for s in shapes.values()) * dtype.itemsize
    if needed > file_size:
        raise fail(
            path,
            f"the architecture {'-'.join(map(str, sizes))} needs {needed} bytes of arrays but "
            f"the file has only {file_size} bytes (truncated or tampered)",
        )
    for name, shape in shapes.items():
        with open_npy(path, archive, members[name]) as (_, npy):
            check_array(path, name, npy, shape, dtype)
    arrays = {
        name: read_array(path, archive, members[name], shapes[name], dtype) for name in shapes
    }
    for name, array in arrays.items():
        if not np.isfinite(array).all():
            raise fail(path, f"array {name!r} holds NaN or infinite numbers")
    weights = [arrays[name] for name in weight_names]
    params = Params(weights[0::2], weights[1::2])
    state = None
    if optimizer is not None:
        step, saved = optimizer
        moments = {
            m: [arrays[f"{m}_{name}"] for name in weight_names] if m in saved else []
            for m in MOMENTS
        }
        state = OptimizerState(step, moments["first"], moments["second"])
    return SavedModel(params, activation, classes, config, scores, header, state, history, output)
