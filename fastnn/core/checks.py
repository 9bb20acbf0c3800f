"""What MLPClassifier and MLPRegressor accept: their hyperparameters, X and y, refused with
scikit-learn's messages (users of that API search for them) and a word on what to do."""

from __future__ import annotations

import functools
import sys
import warnings
from typing import Any

import numpy as np

from fastnn.core import hyperparameters as schema
from fastnn.core.hyperparameters import is_int
from fastnn.core.model import pixels_or_floats, scale_pixels
from fastnn.core.sparse import INDEX, POINTER, SparseRows, is_sparse


class DataConversionWarning(UserWarning):
    """y was converted to the shape fastnn needs; named as scikit-learn's warning for this."""


def also_scikit_learns(own: type) -> type:
    """`own` (an exception or warning class), or, in a program that has loaded scikit-learn, a
    subclass that is also scikit-learn's class of the same name: its `except` clauses, warning
    filters and estimator checks then recognise fastnn's. scikit-learn is never imported."""
    exceptions = sys.modules.get("sklearn.exceptions")
    return own if exceptions is None else _both(own, getattr(exceptions, own.__name__))


@functools.cache
def _both(own: type, theirs: type) -> type:
    return type(own.__name__, (own, theirs), {"__module__": own.__module__})


def _shape_error(shape: tuple[int, ...]) -> ValueError:
    if len(shape) == 1:
        hint = "use X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one sample"
    else:
        hint = "flatten each sample into one row, e.g. X.reshape(len(X), -1)"
    return ValueError(
        f"X must be 2-D (n_samples, n_features); got shape {shape}. Reshape your data: {hint}"
    )


def _column_to_1d(y: np.ndarray) -> np.ndarray:
    """A column y (n, 1) as 1-D, with scikit-learn's warning (its checks look for the class name
    and the message's start), as its estimators take it."""
    warnings.warn(
        "A column-vector y was passed when a 1d array was expected; fastnn uses y.ravel() "
        "(pass y as shape (n_samples,) to silence this)",
        also_scikit_learns(DataConversionWarning),
        stacklevel=5,
    )
    return y.ravel()


def _rows_match(y: np.ndarray, n_samples: int, what: str) -> None:
    if len(y) != n_samples:
        raise ValueError(f"X has {n_samples} samples but y has {len(y)} {what}; they must match")


def classifier_target(y: Any, n_samples: int) -> np.ndarray:
    """A classifier's y: labels (n_samples,), or a multilabel indicator matrix (n_samples,
    n_labels) of 0 and 1 (as int64)."""
    if y is None:
        raise ValueError("MLPClassifier requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[1] == 1:
        return labels(y, n_samples)
    _rows_match(y, n_samples, "rows of labels")
    if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
        raise ValueError(
            f"a 2-D y {y.shape} is a multilabel indicator matrix, one column a label: it must "
            "hold only 0 and 1. Pass class labels as 1-D y; for numbers to predict, use "
            "MLPRegressor"
        )
    return y.astype(np.int64)


def labels(y: Any, n_samples: int) -> np.ndarray:
    if y is None:
        raise ValueError("MLPClassifier requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = _column_to_1d(y)
    if y.ndim != 1:
        raise ValueError(
            f"y must be 1-D, one label per sample (or a 2-D multilabel indicator matrix); got "
            f"shape {y.shape}"
        )
    _rows_match(y, n_samples, "labels")
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        raise ValueError("y contains NaN or infinite labels; drop those samples first")
    return y


def regression_target(y: Any, n_samples: int) -> np.ndarray:
    """A regressor's y as float64 (n_samples, n_outputs): 1-D y is one output (a column too,
    with scikit-learn's warning), 2-D y several."""
    if y is None:
        raise ValueError("MLPRegressor requires y to be passed, but the target y is None")
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = _column_to_1d(y)
    if y.ndim not in (1, 2) or y.ndim == 2 and y.shape[1] == 0:
        raise ValueError(
            f"y must be 1-D (one target a sample) or 2-D (n_samples, n_outputs); got shape "
            f"{y.shape}"
        )
    _rows_match(y, n_samples, "targets")
    if y.dtype.kind == "O":  # numbers in an object array (as from pandas) are targets too
        try:
            y = y.astype(np.float64)
        except (TypeError, ValueError):
            pass  # refused below
    if y.dtype.kind not in "biuf":
        raise ValueError(
            f"Unknown label type: y must hold numbers, the values to predict; got dtype "
            f"{y.dtype}. For class labels, use MLPClassifier"
        )
    y = y.astype(np.float64).reshape(n_samples, -1)
    bad = int(y.size - np.isfinite(y).sum())
    if bad:
        raise ValueError(
            f"Input y contains {bad} NaN or infinite values; drop those samples or impute them"
        )
    return y


def sample_weights(sample_weight: Any, n_samples: int) -> np.ndarray | None:
    """sample_weight as float64 (n_samples,), or None for none: one finite, non-negative
    number per sample, not all 0 (as scikit-learn's: nothing would be learnt). Within them, a
    batch whose weights sum to 0 makes no update (see fastnn.backends.base.Backend.train_epoch)."""
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight)
    if weights.ndim != 1:
        raise ValueError(
            f"sample_weight must be 1-D, one weight per sample; got shape {weights.shape}"
        )
    if len(weights) != n_samples:
        raise ValueError(
            f"sample_weight has {len(weights)} weights but X has {n_samples} samples; they "
            "must match"
        )
    if weights.dtype.kind not in "biuf":
        raise ValueError(f"sample_weight must hold numbers; got dtype {weights.dtype}")
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if not np.isfinite(weights).all():
        raise ValueError("sample_weight contains NaN or infinite values")
    if (weights < 0).any():
        raise ValueError("Negative values in data passed to sample_weight: weights must be >= 0")
    if n_samples and not weights.any():
        raise ValueError(
            "sample_weight holds only zero weights: at least one sample needs a non-zero weight"
        )
    return weights


def sorted_labels(labels: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(unique sorted labels, index of each label among them)."""
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise ValueError(
            f"Unknown label type: continuous. {name} holds fractions such as "
            f"{labels[labels != np.round(labels)][0]}: a classifier needs class labels "
            "(whole numbers or strings), not a regression target"
        )
    try:
        classes, index = np.unique(labels, return_inverse=True)
    except TypeError as exc:  # e.g. strings mixed with numbers or None
        raise ValueError(f"{name} mixes labels that cannot be sorted together ({exc})") from None
    return classes, np.ascontiguousarray(index.reshape(-1), dtype=np.int64)


def hyperparameters(est: Any) -> tuple[int, ...]:
    """Raise ValueError for any unusable hyperparameter of the estimator `est` (by the
    one schema, fastnn.core.hyperparameters); return its hidden layers' sizes."""
    schema.check(est.get_params())
    sizes = est.hidden_layer_sizes
    return tuple(int(size) for size in ((sizes,) if is_int(sizes) else sizes))


def _check_shape(shape: tuple[int, ...], n_features: int | None, estimator: str) -> None:
    if len(shape) != 2:
        raise _shape_error(shape)
    for axis, what in enumerate(("sample", "feature")):
        if shape[axis] == 0:
            raise ValueError(
                f"Found array with 0 {what}(s) (shape={shape}) while a minimum of 1 is required."
            )
    if n_features is not None and shape[1] != n_features:
        raise ValueError(
            f"X has {shape[1]} features, but {estimator} is expecting "
            f"{n_features} features as input (as many as in fit)"
        )


def features(
    X: Any,
    dtype: str | np.dtype,
    n_features: int | None,
    fitted_names: np.ndarray | None,
    estimator: str = "MLPClassifier",
) -> tuple[np.ndarray | SparseRows, np.ndarray | None]:
    """X as a C-contiguous uint8 or `dtype` array (a sparse X as `sparse_features`), and its
    column names if it has str ones. n_features and fitted_names: what fit saw (None when
    checking X for fit itself); `estimator` names the model in messages."""
    columns = getattr(X, "columns", None)  # a pandas DataFrame
    names = None
    if columns is not None and len(columns) and all(isinstance(c, str) for c in columns):
        names = np.asarray(list(columns), dtype=object)
    if is_sparse(X) or isinstance(X, SparseRows):
        return sparse_features(X, dtype, n_features, estimator), None
    X = np.asarray(X)
    _check_shape(X.shape, n_features, estimator)
    if names is not None and fitted_names is not None and list(names) != list(fitted_names):
        raise ValueError(
            "X's column names differ from those seen in fit; select them in that "
            f"order: {list(fitted_names)}"
        )
    if X.dtype.kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers")
    if X.dtype.kind not in "biufO":
        raise ValueError(f"X must hold numbers (uint8 pixels or floats); got dtype {X.dtype}")
    if X.dtype.kind in "iu":
        X = pixels_or_floats(X, dtype)
        if X.dtype == np.uint8:
            return X, names
    try:
        X = np.ascontiguousarray(X, dtype=dtype)
    except (TypeError, ValueError) as exc:  # keeps numpy's type, as scikit-learn does
        raise type(exc)(f"X must hold numbers (uint8 pixels or floats): {exc}") from None
    _check_values(X)
    return X, names


def sparse_features(
    X: Any, dtype: str | np.dtype, n_features: int | None, estimator: str = "MLPClassifier"
) -> SparseRows:
    """A scipy.sparse X (CSR, CSC or COO, matrix or array, any real dtype) as SparseRows,
    never densified, the user's matrix untouched: converted to CSR, made canonical (sorted
    indices, duplicates summed), the values to `dtype`, each only where needed, on a copy.
    Integer values all within 0..255 are pixels, scaled to [0, 1] as X / 255, as a dense
    integer X of the same values is (`pixels_or_floats`); other integers are numbers. Values
    that are 0 in `dtype` are dropped, as the kernels list a dense row's non-zeros only."""
    if isinstance(X, SparseRows):
        _check_shape(X.shape, n_features, estimator)
        return X
    _check_shape(X.shape, n_features, estimator)
    if X.shape[1] >= np.iinfo(INDEX).max:
        raise ValueError(f"X has {X.shape[1]} features; fastnn takes fewer than 2**31 - 1")
    if X.format not in ("csr", "csc", "coo"):
        X = X.tocsr()  # other formats (LIL, DOK, BSR, DIA) convert as cheaply as they can
    kind = X.dtype.kind
    if kind == "c":
        raise ValueError("Complex data not supported: X must hold real numbers")
    if kind not in "biuf":
        raise ValueError(f"X must hold numbers (integer pixels or floats); got dtype {X.dtype}")
    if X.format == "csr":
        _check_csr_arrays(X)
        if not X.has_canonical_format:
            X = X.copy()
            X.sum_duplicates()  # sorts the indices too
    else:
        if X.format == "coo" and X.nnz and (
            X.row.min() < 0 or X.col.min() < 0
            or X.row.max() >= X.shape[0] or X.col.max() >= X.shape[1]
        ):  # fmt: skip
            raise ValueError("X (sparse) has row or column indices outside its shape")
        if X.format == "csc":
            _check_csr_arrays(X)  # CSC's arrays: the same checks with rows and columns swapped
        X = X.tocsr()
        X.sum_duplicates()
    data = X.data
    dtype = np.dtype(dtype).newbyteorder("=")  # native, as the kernels take every array
    if kind in "iu" and (not data.size or (data.min() >= 0 and data.max() <= 255)):
        values = scale_pixels(data, dtype)
    else:
        values = np.asarray(data, dtype=dtype)
        _check_values(values)
    indices, indptr = X.indices, X.indptr
    zeros = values == 0
    if zeros.any():  # stored zeros, or tiny values rounded to 0 in dtype
        keep = ~zeros
        values, indices = values[keep], indices[keep]
        indptr = np.concatenate(([0], np.cumsum(keep, dtype=POINTER)))[indptr]
    return SparseRows(
        np.ascontiguousarray(values),
        np.ascontiguousarray(indices, dtype=INDEX),
        np.ascontiguousarray(indptr, dtype=POINTER),
        (int(X.shape[0]), int(X.shape[1])),
    )


def augmentable(X: np.ndarray | SparseRows, augment: Any) -> None:
    """Augmentation transforms images, dense rows of pixels: not a sparse X."""
    if augment is not None and isinstance(X, SparseRows):
        raise ValueError(
            "augment transforms images, which come as dense arrays: pass X dense (e.g. "
            "X.toarray()) or set augment=None"
        )


def _check_csr_arrays(X: Any) -> None:
    """A CSR (or CSC) matrix's arrays describe its shape: indptr from 0 to nnz, never
    decreasing, one more than the rows (columns); every index within the columns (rows)."""
    rows, columns = X.shape if X.format == "csr" else X.shape[::-1]
    indptr, indices = X.indptr, X.indices
    if (
        len(indptr) != rows + 1
        or indptr[0] != 0
        or indptr[-1] != len(indices)
        or len(X.data) != len(indices)
        or (np.diff(indptr) < 0).any()
    ):
        raise ValueError(
            f"X (sparse, {X.format}) is malformed: its indptr does not describe {rows} rows of "
            "its indices; rebuild it with scipy"
        )
    if len(indices) and (indices.min() < 0 or indices.max() >= columns):
        raise ValueError("X (sparse) has row or column indices outside its shape")


# _value_bounds reads X in blocks of this many bytes: a block's max finds it in the L2 cache.
BOUNDS_BLOCK_BYTES = 1 << 20


def _value_bounds(X: np.ndarray) -> tuple[np.floating, np.floating]:
    """The smallest and the largest value of the float array X (both NaN if a value is), a
    block at a time: X.min() and X.max() each read X from memory, a prediction's 10,000
    standardised rows (31 MB) in 2.3 ms against 1.6 by blocks."""
    flat = X.reshape(-1)
    step = BOUNDS_BLOCK_BYTES // flat.itemsize
    low, high = flat[:step].min(), flat[:step].max()
    for start in range(step, flat.size, step):
        block = flat[start : start + step]
        low, high = np.minimum(low, block.min()), np.maximum(high, block.max())  # NaN stays
    return low, high


def _check_values(X: np.ndarray) -> None:
    """Raises if a value of the float array X is NaN or infinite; warns if X looks like pixels
    that lost their uint8 type: floats that are whole numbers in 0..255, some above 1 (e.g.
    through pandas), which used unscaled train to chance. One min and one max serve both:
    either is NaN or infinite exactly when some value is, and unlike np.isfinite(X) they
    make no temporary array as large as X."""
    if not X.size:
        return
    low, high = _value_bounds(X)
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = int(X.size - np.isfinite(X).sum())
        raise ValueError(f"X contains {bad} NaN or infinite values; remove or impute them")
    if 1 < high <= 255 and low >= 0 and np.array_equal(X, np.round(X)):
        warnings.warn(
            f"X holds floats that look like pixels (whole numbers from 0 to {high:g}): they are "
            "used as they are, unscaled, which trains poorly. If they are pixels, pass them "
            "as integers (X.astype(np.uint8)) to have them scaled to [0, 1], or divide by 255.",
            UserWarning,
            stacklevel=4,
        )
