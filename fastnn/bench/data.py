"""The bench's data: the MNIST-style sets as loaded, MNIST standardised per feature, a seeded
synthetic dense tabular set and a seeded synthetic regression set.

The dense forms are what fastnn's sparse first layer cannot skip through: standardised MNIST
is 91.5% non-zero (only the always-blank pixels stay 0), the tabular set 100%.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import DTypeLike

from fastnn.data import load_dataset

N_CLASSES = 10
TABULAR = "tabular"  # the synthetic set's name where a data set's name goes
TABULAR_ROWS = 100_000
TABULAR_FEATURES = 256
TABULAR_SEED = 0
REGRESSION = "regression"  # the synthetic regression set's name
REGRESSION_SEED = 1
# The distance of each class's centre from the origin. Random centres in 256 dimensions are
# nearly orthogonal, so two classes' centres are about 1.41 x 3 apart in noise of unit
# variance: the best possible classifier is right about 9 times in 10 (measured on 100,000
# rows: 89.7% for the nearest centre), chance is 1 in 10.
TABULAR_SEPARATION = 3.0
STANDARDISE_ROWS = 1024  # rows at a time: their float64 copy stays in cache (all: 376 MB)


def standardise(X: np.ndarray, dtype: DTypeLike = "float32") -> np.ndarray:
    """(X / 255 - mean) / std per feature of uint8 pixels X, the mean and standard deviation
    taken over X's rows (a feature whose std is 0 keeps a std of 1, as scikit-learn's
    StandardScaler does: it becomes 0 everywhere), rounded once to `dtype`. The statistics
    come from the pixels' sums and sums of squares, exact in integers."""
    X = np.asarray(X)
    if X.dtype != np.uint8 or X.ndim != 2 or len(X) == 0:
        raise ValueError(f"standardise: X must be 2-D uint8 pixels with rows; got {X.dtype} "
                         f"{X.shape}")  # fmt: skip
    n = len(X)
    parts = [slice(start, start + STANDARDISE_ROWS) for start in range(0, n, STANDARDISE_ROWS)]
    sums = X.sum(axis=0, dtype=np.int64)
    squares = np.zeros(X.shape[1], np.int64)
    for part in parts:
        wide = X[part].astype(np.int64)
        squares += np.einsum("ij,ij->j", wide, wide)
    # n**2 times the variance in pixel units, an exact integer: 0 for a constant feature.
    spread = n * squares - sums * sums
    mean = sums / (255.0 * n)
    std = np.sqrt(spread.astype(np.float64)) / (255.0 * n)
    std[spread == 0] = 1.0
    out = np.empty(X.shape, dtype)
    for part in parts:
        scaled = X[part] / 255.0
        scaled -= mean
        scaled /= std
        out[part] = scaled
    return out


def synthetic_tabular(
    rows: int = TABULAR_ROWS, features: int = TABULAR_FEATURES, seed: int = TABULAR_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """A dense classification set with a planted signal: labels 0..9 in equal numbers,
    shuffled; each row its class's centre (random, at TABULAR_SEPARATION from the origin)
    plus standard normal noise, float32 (rows, features); labels int64. The same arguments
    give the same bits."""
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(rows) % N_CLASSES)
    centres = rng.standard_normal((N_CLASSES, features))
    centres *= TABULAR_SEPARATION / np.linalg.norm(centres, axis=1, keepdims=True)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    X += centres.astype(np.float32)[y]
    return X, y.astype(np.int64)


def synthetic_regression(
    rows: int = TABULAR_ROWS, features: int = TABULAR_FEATURES, seed: int = REGRESSION_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """A dense regression set with a planted signal: X standard normal, float32 (rows,
    features); one target a sample, a smooth non-linear function of four random directions of
    X (each of unit variance: tanh of the first, the product of the next two, a sine of the
    fourth) plus noise of a tenth of a unit, standardised to mean 0 and variance 1, float32
    (rows,). The same arguments give the same bits."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, features), dtype=np.float32)
    directions = rng.standard_normal((features, 4)) / np.sqrt(features)
    u = X @ directions  # (rows, 4) in float64
    y = np.tanh(u[:, 0]) + u[:, 1] * u[:, 2] + 0.5 * np.sin(2 * u[:, 3])
    y += 0.1 * rng.standard_normal(rows)
    return X, ((y - y.mean()) / y.std()).astype(np.float32)


def load(name: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training rows and labels (targets) of data set `name`: an MNIST-style set from
    `data_dir` (default: where load_dataset looks), uint8 pixels; or TABULAR or REGRESSION,
    generated. Raises DataError for a missing or bad data set."""
    if name == TABULAR:
        return synthetic_tabular()
    if name == REGRESSION:
        return synthetic_regression()
    ds = load_dataset(name, data_dir=data_dir, download=False)
    return ds.X_train, ds.y_train
