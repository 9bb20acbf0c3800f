"""fastnn: the two-layer MNIST network, as a NumPy reference and as fused Numba kernels."""

__version__ = "0.1.0"

# After __version__: persist reads it. Nothing here imports Numba (backends load on first use).
from fastnn.estimator import MLPClassifier, load  # noqa: E402

__all__ = ["MLPClassifier", "__version__", "load"]
