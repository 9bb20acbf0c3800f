"""Helper of the tests that run exported ONNX files: onnx and onnxruntime, or a skip."""

import os
from types import ModuleType

import pytest


def require_runtime() -> ModuleType:
    """onnxruntime (with onnx); skipped without them, except in CI, which installs the onnx
    extra: it fails there."""
    try:
        pytest.importorskip("onnx", minversion="1.16")
        return pytest.importorskip("onnxruntime", minversion="1.18")
    except pytest.skip.Exception:
        if os.environ.get("CI"):
            pytest.fail("CI must install the onnx extra: pip install -e '.[dev,sweep,compat,onnx]'")
        raise
