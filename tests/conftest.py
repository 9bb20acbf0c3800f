"""Fixtures shared across the test suite."""

import os
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
