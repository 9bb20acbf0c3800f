"""The network's parameters, their initialisation, and the per-element maths both backends share.

Layout is row-major, one sample per row: X is (n, n_in), W1 is (n_in, H), so the hidden
pre-activation is Z1 = X @ W1 + b1. The tutorials write W1 . X with W1 (H, n_in) and X (n_in, m):
the same numbers, transposed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("relu", "leaky_relu")
INIT_SCHEMES = ("uniform", "he", "xavier")
DTYPES = ("float32", "float64")
LEAKY_SLOPE = 0.01  # slope of leaky_relu for negative inputs


@dataclass
class Params:
    """The four arrays of the two-layer network, all of one float dtype."""

    W1: np.ndarray  # (n_in, H)
    b1: np.ndarray  # (H,)
    W2: np.ndarray  # (H, n_out)
    b2: np.ndarray  # (n_out,)

    @property
    def dtype(self) -> np.dtype:
        return self.W1.dtype

    @property
    def n_in(self) -> int:
        return self.W1.shape[0]

    @property
    def hidden(self) -> int:
        return self.W1.shape[1]

    @property
    def n_out(self) -> int:
        return self.W2.shape[1]

    def copy(self) -> Params:
        return Params(self.W1.copy(), self.b1.copy(), self.W2.copy(), self.b2.copy())

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        return self.W1, self.b1, self.W2, self.b2

    def validate(self) -> None:
        """Raise ValueError unless the four arrays fit together as one network."""
        W1, b1, W2, b2 = self.arrays()
        if W1.ndim != 2 or W2.ndim != 2 or b1.ndim != 1 or b2.ndim != 1:
            raise ValueError("Params: W1 and W2 must be 2-D, b1 and b2 1-D")
        if b1.shape[0] != W1.shape[1] or W2.shape[0] != W1.shape[1] or b2.shape[0] != W2.shape[1]:
            raise ValueError(
                f"Params: shapes do not fit together: W1 {W1.shape}, b1 {b1.shape}, "
                f"W2 {W2.shape}, b2 {b2.shape}"
            )
        if len({a.dtype for a in self.arrays()}) != 1 or self.dtype.name not in DTYPES:
            raise ValueError(f"Params: all four arrays must be one of {DTYPES}")


def scale_pixels(X: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """Pixels 0..255 to [0, 1] as X / 255 in dtype: the one definition of pixel scaling,
    which the Numba kernels reproduce bit for bit."""
    return X.astype(dtype) / np.asarray(255, dtype)


def check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_dtype(value: str | type | np.dtype, name: str = "dtype") -> str:
    """The name ("float32" or "float64") of a dtype given any way NumPy accepts one:
    "float64", "f8", "double", np.float64, np.dtype("float64")."""
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        dtype = None
    if dtype is None or value is None or dtype.name not in DTYPES:
        raise ValueError(
            f"{name} must be one of {', '.join(DTYPES)} (by name or as a NumPy type, e.g. "
            f"np.float64); got {value!r}"
        )
    return dtype.name


def pixels_or_floats(X: np.ndarray, dtype: str | np.dtype) -> np.ndarray:
    """X as the network takes it: uint8 pixels 0..255 (scaled to [0, 1] when used), or
    C-contiguous floats of `dtype`, used as they are.

    Integers of any other type whose values all lie in 0..255 are pixels too (pandas reads a
    CSV of pixels as int64): they become uint8. Other integers are numbers, used as floats.
    """
    if X.dtype.kind in "iu" and X.dtype != np.uint8 and X.size and X.min() >= 0 and X.max() <= 255:
        X = X.astype(np.uint8)
    if X.dtype == np.uint8:
        return np.ascontiguousarray(X)
    return np.ascontiguousarray(X, dtype=np.dtype(dtype).newbyteorder("="))  # native order


def init_params(
    n_in: int,
    hidden: int,
    n_out: int = 10,
    scheme: str = "he",
    seed: int | None = 0,
    dtype: str | type | np.dtype = "float32",
) -> Params:
    """Random weights and biases.

    uniform: every array, biases too, from U(-0.5, 0.5), as the tutorials do.
    he: W ~ N(0, 2 / fan_in), suited to ReLU; xavier: W ~ U(+-sqrt(6 / (fan_in + fan_out))).
    he and xavier start the biases at zero.
    """
    check_choice("init scheme", scheme, INIT_SCHEMES)
    dtype = check_dtype(dtype)
    for label, size in (("n_in", n_in), ("hidden", hidden), ("n_out", n_out)):
        if int(size) != size or size < 1:
            raise ValueError(f"{label} must be a positive whole number; got {size!r}")
    rng = np.random.default_rng(seed)
    if scheme == "uniform":
        arrays = [
            rng.uniform(-0.5, 0.5, shape)
            for shape in ((n_in, hidden), hidden, (hidden, n_out), n_out)
        ]
    else:
        arrays = []
        for fan_in, fan_out in ((n_in, hidden), (hidden, n_out)):
            if scheme == "he":
                W = rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out))
            else:
                limit = np.sqrt(6.0 / (fan_in + fan_out))
                W = rng.uniform(-limit, limit, (fan_in, fan_out))
            arrays += [W, np.zeros(fan_out)]
    return Params(*(np.ascontiguousarray(a, dtype=dtype) for a in arrays))
