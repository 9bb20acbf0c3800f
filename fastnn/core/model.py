"""The network's parameters, their initialisation, and the per-element maths both backends share.

Layout is row-major, one sample per row: X is (n, n_in), W1 is (n_in, H), so the hidden
pre-activation is Z1 = X @ W1 + b1. The tutorials write W1 . X with W1 (H, n_in) and X (n_in, m):
the same numbers, transposed. Deeper networks go on the same way: Z2 = A1 @ W2 + b2, ...; in
code the layers count from 0 (coefs[0] is W1), as scikit-learn's coefs_ do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ACTIVATIONS = ("relu", "leaky_relu")
# What the last layer gives, named as scikit-learn's out_activation_: class probabilities
# (softmax, cross-entropy on labels), one probability per label (logistic, binary cross-entropy
# on an indicator matrix: multilabel), or the numbers themselves (identity, squared error:
# regression). The loss's gradient at the last layer's z is the output minus the target for
# all three.
OUTPUTS = ("softmax", "logistic", "identity")
INIT_SCHEMES = ("uniform", "he", "xavier")
DTYPES = ("float32", "float64")
LEAKY_SLOPE = 0.01  # slope of leaky_relu for negative inputs
DRAW_CHUNK = 1 << 16  # random numbers drawn at a time (512 KiB of float64) by init_params


@dataclass
class Params:
    """The weights of a network with one or more hidden layers, in scikit-learn's layout, all
    of one float dtype: layer l maps its fan_in inputs to fan_out outputs as
    Z = A @ coefs[l] + intercepts[l]. The last layer gives the n_out logits."""

    coefs: list[np.ndarray]  # coefs[l]: (fan_in, fan_out)
    intercepts: list[np.ndarray]  # intercepts[l]: (fan_out,)

    @property
    def dtype(self) -> np.dtype:
        return self.coefs[0].dtype

    @property
    def n_in(self) -> int:
        return self.coefs[0].shape[0]

    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        return tuple(W.shape[1] for W in self.coefs[:-1])

    @property
    def n_out(self) -> int:
        return self.coefs[-1].shape[1]

    def copy(self) -> Params:
        return Params([W.copy() for W in self.coefs], [b.copy() for b in self.intercepts])

    def arrays(self) -> tuple[np.ndarray, ...]:
        """W0, b0, W1, b1, ...: the order the kernels and the model file take them in."""
        return tuple(a for pair in zip(self.coefs, self.intercepts, strict=True) for a in pair)

    def names(self) -> tuple[str, ...]:
        """Names of arrays() in the equations' numbering: W1, b1, W2, b2, ..."""
        return tuple(f"{kind}{i + 1}" for i in range(len(self.coefs)) for kind in "Wb")

    def validate(self) -> None:
        """Raise ValueError unless the arrays fit together as one network."""
        if len(self.coefs) < 2 or len(self.coefs) != len(self.intercepts):
            raise ValueError(
                "Params: needs at least two layers, with one intercept vector per weight matrix"
            )
        fan_in = self.coefs[0].shape[0] if self.coefs[0].ndim == 2 else None
        for name, W, b in zip(self.names()[::2], self.coefs, self.intercepts, strict=True):
            if W.ndim != 2 or b.ndim != 1 or W.shape[0] != fan_in or b.shape[0] != W.shape[1]:
                raise ValueError(
                    "Params: shapes do not fit together: "
                    + ", ".join(
                        f"{n} {a.shape}" for n, a in zip(self.names(), self.arrays(), strict=True)
                    )
                    + f" (at {name})"
                )
            fan_in = W.shape[1]
        if len({a.dtype for a in self.arrays()}) != 1 or self.dtype.name not in DTYPES:
            raise ValueError(f"Params: all arrays must be of one dtype, one of {DTYPES}")


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


def layer_sizes(n_in: int, hidden: int | tuple[int, ...] | list[int], n_out: int) -> list[int]:
    """[n_in, *hidden, n_out], each checked to be a positive whole number."""
    hidden = [hidden] if np.ndim(hidden) == 0 else list(hidden)
    sizes = [n_in, *hidden, n_out]
    labels = ["n_in", *(["hidden"] * len(hidden)), "n_out"]
    if not hidden:
        raise ValueError("the network needs at least one hidden layer")
    for label, size in zip(labels, sizes, strict=True):
        if isinstance(size, bool) or int(size) != size or size < 1:
            raise ValueError(f"{label} must be a positive whole number; got {size!r}")
    return [int(size) for size in sizes]


def init_params(
    n_in: int,
    hidden: int | tuple[int, ...],
    n_out: int = 10,
    scheme: str = "he",
    seed: int | None = 0,
    dtype: str | type | np.dtype = "float32",
) -> Params:
    """Random weights and biases, layer after layer from one random stream (so a one-hidden-
    layer network gets the very numbers it always has).

    uniform: every array, biases too, from U(-0.5, 0.5), as the tutorials do.
    he: W ~ N(0, 2 / fan_in), suited to ReLU; xavier: W ~ U(+-sqrt(6 / (fan_in + fan_out))).
    he and xavier start the biases at zero.
    """
    check_choice("init scheme", scheme, INIT_SCHEMES)
    dtype = check_dtype(dtype)
    sizes = layer_sizes(n_in, hidden, n_out)
    rng = np.random.default_rng(seed)
    coefs, intercepts = [], []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        if scheme == "he":
            W = _drawn((fan_in, fan_out), dtype, rng.normal, 0.0, np.sqrt(2.0 / fan_in))
        else:
            limit = 0.5 if scheme == "uniform" else np.sqrt(6.0 / (fan_in + fan_out))
            W = _drawn((fan_in, fan_out), dtype, rng.uniform, -limit, limit)
        if scheme == "uniform":  # the biases too, after the weights
            b = _drawn(fan_out, dtype, rng.uniform, -0.5, 0.5)
        else:
            b = np.zeros(fan_out, dtype)
        coefs.append(W)
        intercepts.append(b)
    return Params(coefs, intercepts)


def _drawn(
    shape: int | tuple[int, ...],
    dtype: str,
    distribution: Callable[[float, float, int], np.ndarray],
    a: float,
    b: float,
) -> np.ndarray:
    """An array of `dtype` filled in C order from distribution(a, b, n) (a Generator's
    uniform or normal), DRAW_CHUNK numbers at a time: the very numbers of one draw of the
    whole shape, converted, but needing only the array's own memory (a float32 layer of
    784 x 10**7 asks for 29 GiB, not for a float64 draw's 58 GiB and then the copy)."""
    out = np.empty(shape, dtype)
    flat = out.reshape(-1)  # a view: a new array is contiguous
    for start in range(0, flat.size, DRAW_CHUNK):
        flat[start : start + DRAW_CHUNK] = distribution(a, b, min(DRAW_CHUNK, flat.size - start))
    return out
