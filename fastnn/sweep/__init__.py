"""Hyperparameter sweeps of fastnn's training on Dask: `fastnn.sweep(grid, ...)` (a pandas
DataFrame of the trials) and the command `python -m fastnn.sweep`.

Dask is an optional extra (pip install 'fastnn-mlp[sweep]'): this package imports without it, and
says what to install when a sweep is started.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def sweep(*args: Any, **kwargs: Any) -> pd.DataFrame:
    """Train a grid (or random draws) of configurations over seeds on Dask, a DataFrame of the
    trials back; the parameters are fastnn.sweep.run.sweep's."""
    from fastnn.sweep.run import sweep as run_sweep  # Dask, pandas, training: on first use

    return run_sweep(*args, **kwargs)


class _CallableModule(types.ModuleType):
    """`fastnn.sweep` is this package (python -m fastnn.sweep must be one) and also the
    function: once the package is imported Python makes `fastnn.sweep` the module, so the
    module itself answers calls."""

    def __call__(self, *args: Any, **kwargs: Any) -> pd.DataFrame:
        return sweep(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["sweep"]
