"""The bench's data: the MNIST-style sets as loaded, MNIST standardised per feature, a seeded
synthetic dense tabular set, a seeded synthetic regression set and a seeded synthetic sparse
text-like set (a scipy.sparse CSR matrix).

The dense forms are what fastnn's sparse first layer cannot skip through: standardised MNIST
is 91.5% non-zero (only the always-blank pixels stay 0), the tabular set 100%.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import DTypeLike

from fastnn.data import load_dataset

if TYPE_CHECKING:  # scipy is optional: imported where the sparse set is built, if it is
    from scipy.sparse import csr_matrix

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
SPARSE = "sparse"  # the synthetic text-like set's name
SPARSE_ROWS = 100_000
SPARSE_FEATURES = 50_000
SPARSE_NON_ZEROS = 80  # per row, on average
SPARSE_CLASSES = 20
SPARSE_SEED = 2
# Word frequencies: the feature of frequency rank r is drawn in proportion to 1 / (r + 1) ** s
# (Zipf's law; s near 1 in English text).
ZIPF_EXPONENT = 1.0
# The planted signal: each class has CLASS_WORDS words of its own, drawn uniformly from the
# vocabulary (so mostly rare ones, as topic words are), and each token of a row is one of its
# class's words with probability CLASS_SHARE, else a word of the common Zipf distribution.
# About 3 of a row's 101 tokens are its class's: the class means of 25,000 rows classify the
# next 5,000 85% right (chance: 5%); at 0.1 they were 99.98% right, at 0.02 of 200 words 45%.
CLASS_WORDS = 100
CLASS_SHARE = 0.03
SPARSE_CHUNK_ROWS = 8192  # rows drawn at a time: their tokens stay a few MB
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


def tokens_per_row(word_p: np.ndarray, non_zeros: float) -> int:
    """How many tokens (draws with replacement from `word_p`) a row needs for about
    `non_zeros` distinct words: the expected count of distinct words, sum(1 - (1 - p)**T),
    grows with T; the smallest T that reaches `non_zeros`, found by bisection."""
    if non_zeros >= len(word_p):
        raise ValueError(f"{non_zeros} non-zeros a row need more than {len(word_p)} features")

    def distinct(tokens: int) -> float:
        return float(np.sum(-np.expm1(tokens * np.log1p(-np.minimum(word_p, 1 - 1e-12)))))

    low, high = 1, 2
    while distinct(high) < non_zeros:
        low, high = high, 2 * high
    while low < high:
        middle = (low + high) // 2
        low, high = (middle + 1, high) if distinct(middle) < non_zeros else (low, middle)
    return low


def synthetic_sparse(
    rows: int = SPARSE_ROWS,
    features: int = SPARSE_FEATURES,
    non_zeros: float = SPARSE_NON_ZEROS,
    classes: int = SPARSE_CLASSES,
    seed: int = SPARSE_SEED,
) -> tuple[csr_matrix, np.ndarray]:
    """A text-like classification set with a planted signal, built sparse (no dense
    (rows, features) array ever exists): labels 0..classes-1 in equal numbers, shuffled; each
    row a bag of tokens, each token its class's word (CLASS_SHARE of them, see CLASS_WORDS) or
    a word of a Zipf distribution over the features (ranks shuffled over the columns), as many
    tokens as give about `non_zeros` distinct words a row. Values tf-idf as scikit-learn's
    TfidfTransformer computes them with sublinear_tf: (1 + log count) * (1 + log((1 + rows) /
    (1 + document frequency))), each row scaled to unit length. A float32 CSR matrix (rows,
    features) with sorted indices and no explicit zeros; labels int64. The same arguments give
    the same bits."""
    try:
        from scipy.sparse import csr_matrix
    except ImportError:  # scipy is optional: only the sparse workload needs it
        raise ValueError(
            "the sparse workload needs scipy: pip install scipy, or leave sparse-h128 out of "
            "--workloads"
        ) from None

    rng = np.random.default_rng(seed)
    y = rng.permutation(np.arange(rows) % classes)
    ranked = 1.0 / np.arange(1, features + 1) ** ZIPF_EXPONENT
    word_p = np.empty(features)
    word_p[rng.permutation(features)] = ranked / ranked.sum()
    cumulative = np.cumsum(word_p)
    own_words = np.stack([rng.choice(features, CLASS_WORDS, replace=False) for _ in range(classes)])
    # The distinct words of a row: the common distribution mixed with one class's words.
    mixed = (1 - CLASS_SHARE) * word_p
    mixed[own_words[0]] += CLASS_SHARE / CLASS_WORDS
    tokens = tokens_per_row(mixed, non_zeros)
    columns, counts, lengths = [], [], []
    for start in range(0, rows, SPARSE_CHUNK_ROWS):
        labels = y[start : start + SPARSE_CHUNK_ROWS]
        n = len(labels)
        drawn = np.searchsorted(cumulative, rng.random((n, tokens)) * cumulative[-1])
        own = rng.random((n, tokens)) < CLASS_SHARE
        picks = rng.integers(0, CLASS_WORDS, (n, tokens))
        drawn[own] = own_words[np.broadcast_to(labels[:, None], own.shape)[own], picks[own]]
        # One sort of (row, word) keys gives each row's distinct words in order and their counts.
        keys, count = np.unique(
            np.arange(n, dtype=np.int64)[:, None] * features + drawn, return_counts=True
        )
        columns.append((keys % features).astype(np.int32))
        counts.append(count)
        lengths.append(np.bincount(keys // features, minlength=n))
    indices = np.concatenate(columns)
    count = np.concatenate(counts)
    indptr = np.zeros(rows + 1, np.int64)
    np.cumsum(np.concatenate(lengths), out=indptr[1:])
    frequency = np.bincount(indices, minlength=features)
    idf = 1.0 + np.log((1.0 + rows) / (1.0 + frequency))
    values = (1.0 + np.log(count)) * idf[indices]
    row_of = np.repeat(np.arange(rows), np.diff(indptr))
    values /= np.sqrt(np.bincount(row_of, weights=values * values, minlength=rows))[row_of]
    X = csr_matrix((values.astype(np.float32), indices, indptr), shape=(rows, features))
    X.has_sorted_indices = True  # np.unique sorted each row's words
    return X, y.astype(np.int64)


def load(name: str, data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The training rows and labels (targets) of data set `name`: an MNIST-style set from
    `data_dir` (default: where load_dataset looks), uint8 pixels; or TABULAR, REGRESSION or
    SPARSE (a CSR matrix), generated. Raises DataError for a missing or bad data set."""
    if name == TABULAR:
        return synthetic_tabular()
    if name == REGRESSION:
        return synthetic_regression()
    if name == SPARSE:
        return synthetic_sparse()
    ds = load_dataset(name, data_dir=data_dir, download=False)
    return ds.X_train, ds.y_train
