"""fastnn: the tutorials' MNIST network and deeper ones, as a NumPy reference and as fused Numba
kernels."""

# Importing this loads neither Numba nor pandas: backends load on first use.
from fastnn.estimator import MLPClassifier
from fastnn.regressor import MLPRegressor
from fastnn.saved import load
from fastnn.version import __version__

__all__ = ["MLPClassifier", "MLPRegressor", "__version__", "load"]


def __getattr__(name: str):
    # fastnn.sweep(...) without importing Dask (or pandas) with fastnn: the package
    # fastnn.sweep is imported on first use, and is itself callable (see fastnn/sweep).
    if name == "sweep":
        import fastnn.sweep

        return fastnn.sweep
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
