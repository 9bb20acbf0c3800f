"""A sparse X (CSR: indptr, indices, values, see fastnn.core.sparse) into the first layer, never
densified.

A CSR row lists its non-zero features already, so `list_csr_row` copies them into the lists
that `sparse.scan_row` fills from a dense row (the same idx), with their values beside them
(`vals`). Bounds are kept per sample, not per block of features: with very many features and few
non-zeros a row (text), filling a bound for every block of every sample would cost many times
the non-zeros (50,000 features: 3,125 blocks against 80 non-zeros). Instead the update pass
finds a block group's entries through `group_runs`, which sorts the chunk's runs of entries by
group, in O(non-zeros + groups), keeping sample order within a group (so the same sums in the
same order as with bounds). The first layer's loops (`tile.gather_row`, `tile.scatter_row`) read a
sample's inputs as X[r, k]: here from a row of the member's own, `row`, which holds the sample's
values at its features while the loop runs and zeros otherwise (`hidden_csr_row`,
`add_csr_block_terms`).
That row has the very type of a dense float X (read-only, C order), so those loops compile no
second time; where X is uint8 pixels, the data are never CSR (the backend passes CSR data
with an empty float X), and these helpers compile to nothing.
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic, overload

from fastnn.kernels.config import SERIAL, helper
from fastnn.kernels.forward import hidden_row
from fastnn.kernels.tile import scatter_row


@intrinsic
def read_only(typingctx, array):
    """The same array typed read-only (the same data: writes through `array` show in it)."""
    result = array.copy(readonly=True)

    def codegen(context, builder, signature, args):
        return impl_ret_borrowed(context, builder, result, args[0])

    return result(array), codegen


@helper
def list_csr_row(indptr, indices, values, r, idx, vals, i, bounds):
    """Lists the non-zero features of CSR row r (ascending, as stored), and their values in
    vals, in the slots of sample i of idx: bounds (2, chunk), bounds[0, i] .. bounds[1, i] - 1
    are its slots (one block, for `dropout.drop_features`). No zero is stored
    (checks.sparse_features drops them)."""
    c = i * (idx.shape[0] // bounds.shape[1])
    bounds[0, i] = c
    for p in range(indptr[r], indptr[r + 1]):
        idx[c] = indices[p]
        vals[c] = values[p]
        c += 1
    bounds[1, i] = c


@helper
def group_runs(idx, bounds, m, width, runs, firsts):
    """Sorts the entries of the chunk's m samples (listed by `list_csr_row`) into runs, one per
    sample and block group of `width` features it has entries in: run q is sample runs[0, q]'s
    slots runs[1, q] .. runs[2, q] - 1, and group g's runs are firsts[g] .. firsts[g + 1] - 1,
    in sample order (a counting sort)."""
    n_groups = firsts.shape[0] - 1
    firsts[:] = 0
    for i in range(m):  # each group's runs counted in firsts[g + 1]
        e, end = bounds[0, i], bounds[1, i]
        while e < end:
            g = idx[e] // width
            firsts[g + 1] += 1
            e += 1
            while e < end and idx[e] // width == g:
                e += 1
    for g in range(n_groups):
        firsts[g + 1] += firsts[g]  # firsts[g]: where group g's runs start
    for i in range(m):  # each run at its group's cursor, firsts[g], which moves on
        e, end = bounds[0, i], bounds[1, i]
        while e < end:
            g = idx[e] // width
            q = firsts[g]
            runs[0, q] = i
            runs[1, q] = e
            e += 1
            while e < end and idx[e] // width == g:
                e += 1
            runs[2, q] = e
            firsts[g] = q + 1
    for g in range(n_groups, 0, -1):  # the cursors ended where the next group starts
        firsts[g] = firsts[g - 1]
    firsts[0] = 0


@helper
def mark_csr_rows(g, runs, firsts, idx, rows_touched):
    """rows_touched[k] = True for every feature k of block group g in the chunk's runs."""
    for q in range(firsts[g], firsts[g + 1]):
        for e in range(runs[1, q], runs[2, q]):
            rows_touched[idx[e]] = True


def hidden_csr_row(X, W1, b1, idx, vals, start, end, row, table, Z, i):
    """forward.hidden_row for sample i, its entries start..end-1 of idx, their values in vals."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


def add_csr_block_terms(X, g, runs, firsts, idx, vals, row, table, D, acc):
    """update.add_block_terms for the samples of a chunk of a sparse X, their values in vals,
    by the runs of block group g (`group_runs`)."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


def read_csr_row(X, indptr, indices, values, r, table, out):
    """out = CSR row r dense, each value times table[0] (a dense float X's `sparse.read_row`)."""
    raise NotImplementedError  # called only from jitted code, which compiles the overload


@helper
def first_row(row):
    """0, the row's only row number, typed as any row number (int64): given as the literal 0,
    the first layer's loops would be compiled once more for it."""
    return row.shape[0] - 1


@helper
def _set_row(row, idx, vals, start, end):
    for e in range(start, end):
        row[0, idx[e]] = vals[e]


@helper
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
        hidden_row(W1, b1, read_only(row), first_row(row), table, idx, start, end, Z, i)
        _clear_row(row, idx, start, end)

    return impl


@overload(add_csr_block_terms, jit_options=SERIAL)
def _add_csr_block_terms(X, g, runs, firsts, idx, vals, row, table, D, acc):
    if X.dtype == types.uint8:
        return lambda X, g, runs, firsts, idx, vals, row, table, D, acc: False

    def impl(X, g, runs, firsts, idx, vals, row, table, D, acc):
        for q in range(firsts[g], firsts[g + 1]):
            i, start, stop = np.int64(runs[0, q]), runs[1, q], runs[2, q]  # as add_block_terms
            _set_row(row, idx, vals, start, stop)
            scatter_row(acc, i, D, idx, start, stop, read_only(row), first_row(row), table)
            _clear_row(row, idx, start, stop)
        return firsts[g + 1] > firsts[g]

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
