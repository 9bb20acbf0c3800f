"""The machine a bench result was measured on, as the report names it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

import numpy as np


def machine() -> dict:
    """The machine as the report names it."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass  # not Linux: keep platform's guess
    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        python=platform.python_version(),
        numpy=np.__version__,
        numba=importlib.metadata.version("numba"),
    )
