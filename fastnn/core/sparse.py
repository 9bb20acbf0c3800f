"""Sparse X as fastnn's code takes it: `SparseRows`, a CSR matrix of checked, canonical arrays
(see fastnn.core.checks.sparse_features), and how to recognise a scipy.sparse matrix without
importing scipy, which only users who pass sparse matrices need.

Why not scipy's own matrix throughout: the training loop takes rows by length, slices and index
arrays as it takes them from a dense array (len(X), X[rows]), which scipy's matrices do not all
answer alike, and scipy keeps its index arrays in the narrowest dtype their values fit, while
the kernels take one fixed dtype of each (compiling another costs a minute).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

INDEX = np.int32  # SparseRows.indices: scipy's own default, so usually no copy
POINTER = np.int64  # SparseRows.indptr: more than 2**31 non-zeros fit


def is_sparse(X: Any) -> bool:
    """Whether X is a scipy.sparse matrix or array (scipy is not imported for it)."""
    return type(X).__module__.startswith("scipy.sparse")


class SparseRows(NamedTuple):
    """n rows of a CSR matrix: row r's non-zeros are data[indptr[r]:indptr[r + 1]], in the
    columns indices[...] (ascending, none twice). data holds floats of the parameters' dtype
    (integer pixels already scaled: see checks.sparse_features)."""

    data: np.ndarray  # (nnz,) floats
    indices: np.ndarray  # (nnz,) INDEX
    indptr: np.ndarray  # (n + 1,) POINTER
    shape: tuple[int, int]

    ndim = 2

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + self.indices.nbytes + self.indptr.nbytes

    def __getitem__(self, rows: slice | np.ndarray) -> SparseRows:
        """The given rows (a slice, or an array of row numbers), as X[rows] of a dense X."""
        if isinstance(rows, slice):
            start, stop, stride = rows.indices(self.shape[0])
            if stride != 1:
                return self[np.arange(start, stop, stride)]
            first, last = self.indptr[start], self.indptr[max(start, stop)]
            return SparseRows(
                self.data[first:last],
                self.indices[first:last],
                self.indptr[start : max(start, stop) + 1] - first,
                (max(stop - start, 0), self.shape[1]),
            )
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows) + 1, POINTER)
        np.cumsum(lengths, out=indptr[1:])
        # positions of the chosen rows' entries: each row's run start..end-1, one after another
        at = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return SparseRows(self.data[at], self.indices[at], indptr, (len(rows), self.shape[1]))

    def to_scipy(self) -> Any:
        """The same rows as a scipy.sparse.csr_matrix (sharing the arrays where scipy keeps
        their dtypes), for the NumPy reference's products."""
        from scipy import sparse

        return sparse.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)

    def rows_differ(self) -> bool:
        """Whether some row differs from the first one (as (X != X[0]).any() of a dense X)."""
        if len(self) < 2:
            return False
        first = slice(self.indptr[0], self.indptr[1])
        for r in range(1, len(self)):
            here = slice(self.indptr[r], self.indptr[r + 1])
            if not (
                np.array_equal(self.indices[here], self.indices[first])
                and np.array_equal(self.data[here], self.data[first])
            ):
                return True
        return False
