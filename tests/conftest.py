"""Fixtures shared across the test suite."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

# Read once at import, before any test's monkeypatch can unset it.
_REAL_DATA_DIR = os.environ.get("FASTNN_DATA_DIR")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder holding the real mnist/ and fashion-mnist/ data, from FASTNN_DATA_DIR.

    CI sets the variable; elsewhere the tests that need real data are skipped.
    """
    if not _REAL_DATA_DIR:
        pytest.skip("FASTNN_DATA_DIR is not set (it should point at the real datasets)")
    return Path(_REAL_DATA_DIR)


# Compiling the Numba kernels for one (X dtype, parameters dtype) pair takes 40-50 s, most of
# the suite's time, on one core. A whole-suite run (many tests collected) starts, beside the
# tests, one process that compiles the pairs the tests reach later (float X of either dtype,
# and uint8 X with float64 parameters) into the same cache, on the other core: the tests then
# load them instead of compiling. Its work is lost, not wrong, if a test gets there first.
WARM_UP_MIN_TESTS = 500
WARM_UP = """
import numpy as np
from fastnn import MLPClassifier
pixels = np.random.default_rng(0).integers(0, 256, (64, 784)).astype(np.uint8)
y = np.arange(64) % 3
for X, dtype in ((pixels / np.float32(255), "float32"), (pixels / 255.0, "float64"),
                 (pixels, "float64")):
    model = MLPClassifier(hidden_layer_sizes=(4,), max_iter=1, learning_rate_init=0.01, dtype=dtype)
    model.fit(X, y).predict(X)
"""
_warm_up: subprocess.Popen | None = None


def pytest_collection_finish(session: pytest.Session) -> None:
    global _warm_up
    if len(session.items) < WARM_UP_MIN_TESTS or os.environ.get("FASTNN_TEST_WARM_UP") == "0":
        return
    if importlib.util.find_spec("numba") is None:
        return
    _warm_up = subprocess.Popen(
        [sys.executable, "-c", WARM_UP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _warm_up is not None and _warm_up.poll() is None:
        _warm_up.terminate()
        _warm_up.wait(timeout=30)
