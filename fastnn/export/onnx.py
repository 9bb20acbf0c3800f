"""A fitted network as an ONNX file, for onnxruntime or any other ONNX runtime to serve without
fastnn: what MLPClassifier.to_onnx and python -m fastnn.export call.

The graph's input X is (N, n_features), either
- "pixels": uint8 0..255, which the graph scales to [0, 1] as fastnn does (X / 255 in the
  model's dtype, the very same numbers), or
- "floats": the model's dtype (float32 or float64), used as they are.
The default is "pixels" when the model's rows are images as fastnn knows them (784 features,
28 x 28 as in MNIST and every dataset the training command reads, or an `image_shape` given),
else "floats". A runtime refuses an input of the other element type (uint8 for floats, or
floats for pixels).

The outputs follow scikit-learn's ONNX converters (skl2onnx, zipmap off), by the model's output
kind (fastnn.export.graph.OUTPUT_STAGES): a classifier's `label` (N,), its classes_ as int64,
strings, floats or booleans, and `probabilities` (N, n_classes) in the model's dtype.

Exporting needs the onnx package, the `onnx` extra; fastnn itself never imports it otherwise.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from fastnn.core.augment import MNIST_SHAPE
from fastnn.core.model import check_choice
from fastnn.files.atomic import atomic_path, check_writable
from fastnn.version import __version__

if TYPE_CHECKING:
    import onnx

    from fastnn.export.graph import Network

INPUTS = ("pixels", "floats")
IMAGE_FEATURES = MNIST_SHAPE[0] * MNIST_SHAPE[1]
INSTALL_EXTRA = 'pip install "fastnn-mlp[onnx]"'
# One ONNX file is one protobuf message, which cannot exceed 2 GiB; a MiB is left for the rest.
MAX_WEIGHT_BYTES = 2**31 - 2**20


def require_onnx() -> None:
    """Raise ModuleNotFoundError, saying how to install it, unless onnx can be imported."""
    try:
        importlib.import_module("onnx")
    except ImportError:
        raise ModuleNotFoundError(
            f"exporting to ONNX needs the onnx package, fastnn's onnx extra: {INSTALL_EXTRA} "
            '(in a checkout of fastnn: pip install -e ".[onnx]")',
            name="onnx",
        ) from None


def default_input(model: Network) -> str:
    """ "pixels" for a model whose rows are images (see the module's doc), else "floats"."""
    images = getattr(model, "image_shape", None) is not None
    return "pixels" if images or model.coefs_[0].shape[0] == IMAGE_FEATURES else "floats"


def check_path(path: str | os.PathLike) -> None:
    """Raise ValueError if the ONNX file cannot be written at `path` (see check_writable)."""
    check_writable(path, "ONNX file")


def onnx_model(model: Network, *, input: str | None = None) -> onnx.ModelProto:
    """The fitted `model` as an ONNX model in memory; `input` is "pixels", "floats" or None
    for the default. Raises fastnn's NotFittedError for an unfitted model, ModuleNotFoundError
    without onnx, ValueError for what the graph cannot hold."""
    model._check_fitted()
    kind = default_input(model) if input is None else check_choice("input", input, INPUTS)
    require_onnx()
    size = sum(a.nbytes for a in [*model.coefs_, *model.intercepts_])
    if size > MAX_WEIGHT_BYTES:
        raise ValueError(
            f"the weights take {size / 2**30:.1f} GiB, more than the 2 GiB one ONNX file can "
            "hold; fastnn does not export larger networks"
        )
    from fastnn.export.graph import build_graph  # imports onnx, now known to be there

    metadata = {"fastnn_version": __version__, "fastnn_input": kind}
    return build_graph(model, kind, metadata)


def write_onnx(
    model: Network, path: str | os.PathLike, *, input: str | None = None
) -> onnx.ModelProto:
    """Write the fitted `model` to the ONNX file `path` (see onnx_model for `input` and the
    errors, check_path for an unwritable path) and return it. The file is written whole or
    not at all: a write that fails leaves what was at `path` as it was."""
    proto = onnx_model(model, input=input)
    check_path(path)
    with atomic_path(path, suffix=".onnx") as tmp:
        tmp.write_bytes(proto.SerializeToString())
    return proto
