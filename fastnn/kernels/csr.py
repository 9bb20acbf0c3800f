"""A sparse X (CSR: indptr, indices, values, see fastnn.core.sparse) into the first layer, never
densified.

A CSR row lists its non-zero features already, so `list_csr_row` copies them into the lists
that `sparse.scan_row` fills from a dense row (the same idx and bounds), with their values
beside them (`vals`). The first layer's loops (`tile.gather_row`, `tile.scatter_row`) read a
sample's inputs as X[r, k]: here from a row of the member's own, `row`, which holds the sample's
values at its features while the loop runs and zeros otherwise (`hidden_csr_row`,
`add_csr_block_terms`).
That row has the very type of a dense float X (read-only, C order), so those loops compile no
second time; where X is uint8 pixels, the data are never CSR (the backend passes CSR data
with an empty float X), and these helpers compile to nothing.
"""

from __future__ import annotations

from numba import njit, types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload

from fastnn.kernels.config import SERIAL
from fastnn.kernels.forward import hidden_row
from fastnn.kernels.sparse import BLOCK
from fastnn.kernels.tile import scatter_row


@intrinsic
def read_only(typingctx, array):
    """The same array typed read-only (the same data: writes through `array` show in it)."""
    result = array.copy(readonly=True)

    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, result, args[0])

    return result(array), codegen


@njit(**SERIAL)
def list_csr_row(indptr, indices, values, r, idx, vals, i, bounds):
    """Lists the non-zero features of CSR row r (ascending, as stored), and their values in
    vals, in the slots of sample i of idx, filling column i of bounds as `sparse.scan_row`
    does: no zero is stored (checks.sparse_features drops them)."""
    c = i * (idx.shape[0] // bounds.shape[1])
    b = 0
    for p in range(indptr[r], indptr[r + 1]):
        k = indices[p]
        while b * BLOCK <= k:  # the blocks up to k's start here
            bounds[b, i] = c
            b += 1
        idx[c] = k
        vals[c] = values[p]
        c += 1
    for rest in range(b, bounds.shape[0]):
        bounds[rest, i] = c


def hidden_csr_row(X, W1, b1, idx, vals, start, end, row, table, Z, i):
    """forward.hidden_row for sample i, its entries start..end-1 of idx, their values in vals."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


def add_csr_block_terms(X, g, per_job, bounds, idx, vals, row, table, D, acc):
    """passes.add_block_terms for the samples of a chunk of a sparse X, their values in vals."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


def read_csr_row(X, indptr, indices, values, r, table, out):
    """out = CSR row r dense, each value times table[0] (a dense float X's `sparse.read_row`)."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


@njit(**SERIAL)
def _set_row(row, idx, vals, start, end):
    for e in range(start, end):
        row[0, idx[e]] = vals[e]


@njit(**SERIAL)
def _clear_row(row, idx, start, end):
    zero = row.dtype.type(0)
    for e in range(start, end):
        row[0, idx[e]] = zero


@overload(hidden_csr_row, jit_options=SERIAL)
def _hidden_csr_row(X, W1, b1, idx, vals, start, end, row, table, Z, i):
    if X.dtype == types.uint8:
        return lambda X, W1, b1, idx, vals, start, end, row, table, Z, i: None

    def impl(X, W1, b1, idx, vals, start, end, row, table, Z, i):
        _set_row(row, idx, vals, start, end)
        hidden_row(W1, b1, read_only(row), 0, table, idx, start, end, Z, i)
        _clear_row(row, idx, start, end)

    return impl


@overload(add_csr_block_terms, jit_options=SERIAL)
def _add_csr_block_terms(X, g, per_job, bounds, idx, vals, row, table, D, acc):
    if X.dtype == types.uint8:
        return lambda X, g, per_job, bounds, idx, vals, row, table, D, acc: False

    def impl(X, g, per_job, bounds, idx, vals, row, table, D, acc):
        first = g * per_job
        last = min(first + per_job, bounds.shape[0] - 1)
        touched = False
        for i in range(D.shape[0]):
            start, stop = bounds[first, i], bounds[last, i]
            if stop > start:
                touched = True
                _set_row(row, idx, vals, start, stop)
                scatter_row(acc, i, D, idx, start, stop, read_only(row), 0, table)
                _clear_row(row, idx, start, stop)
        return touched

    return impl


@overload(read_csr_row, jit_options=SERIAL)
def _read_csr_row(X, indptr, indices, values, r, table, out):
    if X.dtype == types.uint8:
        return lambda X, indptr, indices, values, r, table, out: None

    def impl(X, indptr, indices, values, r, table, out):
        out[:] = 0
        for p in range(indptr[r], indptr[r + 1]):
            out[indices[p]] = values[p] * table[0]

    return impl
