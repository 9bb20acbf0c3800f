"""Preparing loaded images for training: scaling to [0, 1], shuffling, a dev split."""

from __future__ import annotations

import operator

import numpy as np
from numpy.typing import DTypeLike

from fastnn.core.model import scale_pixels

from .idx import DataError

__all__ = ["scale", "shuffle", "train_dev_split"]

# Whatever np.random.default_rng accepts.
Seed = int | np.random.SeedSequence | np.random.Generator | None


def scale(X: np.ndarray, dtype: DTypeLike = "float32") -> np.ndarray:
    """Scale pixel values 0..255 to floats in [0, 1].

    Integer input is computed exactly as ``X.astype(dtype) / np.asarray(255, dtype)``
    (the Numba kernels reproduce this bit for bit); other integer dtypes must hold
    values in 0..255. Float input is taken as already scaled: it is only converted
    to ``dtype``. The result is always a new array.
    """
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"scale: dtype must be a floating-point type, got {dtype}")
    X = np.asarray(X)
    if np.issubdtype(X.dtype, np.floating):
        return X.astype(dtype)
    if not np.issubdtype(X.dtype, np.integer):
        raise TypeError(f"scale: expected an integer or float array of pixels, got {X.dtype}")
    if X.dtype != np.uint8 and X.size:
        low, high = int(X.min()), int(X.max())
        if low < 0 or high > 255:
            raise DataError(
                f"scale: pixel values must be in 0..255, but this {X.dtype} array holds values "
                f"from {low} to {high}. Pass raw 8-bit pixels (as load_dataset returns them)."
            )
    return scale_pixels(X, dtype)


def shuffle(X: np.ndarray, y: np.ndarray, seed: Seed) -> tuple[np.ndarray, np.ndarray]:
    """Return X and y with their rows permuted the same way.

    The permutation is ``np.random.default_rng(seed).permutation(len(X))``, so a
    given seed always gives the same order.
    """
    _check_same_length(X, y)
    order = np.random.default_rng(seed).permutation(len(X))
    return X[order], y[order]


def train_dev_split(
    X: np.ndarray, y: np.ndarray, dev_size: int, seed: Seed = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split off the first ``dev_size`` rows as a dev set, as the tutorials do.

    Returns ``(X_train, y_train, X_dev, y_dev)``. If ``seed`` is not None and there is a
    dev set to draw, the rows are shuffled with it first. ``dev_size`` may be 0 (empty dev
    set: the rows are the training rows as given, so that a run of the command trains on
    them in the order MLPClassifier.fit would) but must leave at least one training row.
    Without a seed the parts are views of X and y.
    """
    _check_same_length(X, y)
    if isinstance(dev_size, bool):
        raise TypeError(f"dev_size must be a whole number of rows, got {dev_size!r}")
    try:
        dev_size = operator.index(dev_size)
    except TypeError:
        raise TypeError(f"dev_size must be a whole number of rows, got {dev_size!r}") from None
    if not 0 <= dev_size < len(X):
        raise DataError(
            f"dev_size={dev_size} is invalid for {len(X)} examples: it must be at least 0 and "
            f"less than the number of examples, so that some are left for training."
        )
    if seed is not None and dev_size:
        X, y = shuffle(X, y, seed)
    return X[dev_size:], y[dev_size:], X[:dev_size], y[:dev_size]


def _check_same_length(X: np.ndarray, y: np.ndarray) -> None:
    if len(X) != len(y):
        raise DataError(
            f"X has {len(X)} rows but y has {len(y)} labels; they must have one label per row."
        )
