"""The forward pass of one sample (one row of X), layer by layer, as small serial helpers.

Each helper writes only its own sample's outputs, so the parallel pass over samples
(`samples.sample_pass`) can run them on any thread. Their sums run in a fixed order (features,
then hidden units, ascending), which does not depend on the number of threads. Their inner
loops are `tile.gather_row` (the first layer, sparse) and `dense.add_panel_products`.
"""

from __future__ import annotations

from fastnn.kernels.config import helper
from fastnn.kernels.dense import add_panel_products
from fastnn.kernels.layout import set_row
from fastnn.kernels.tile import gather_row


@helper
def hidden_row(W1, b1, X, r, table, idx, start, end, Z, i):
    """Z[i] = X[r] @ W1 + b1, summing only over the features listed in idx[start:end], in that
    order (see `tile`)."""
    gather_row(Z, i, W1, idx, start, end, X, r, table)
    for j in range(Z.shape[1]):
        Z[i, j] += b1[j]  # after the sum, as X @ W1 + b1 does


@helper
def activate_row(z, a, slope, leaky):
    """a = relu(z), or leaky relu with `slope` for z <= 0."""
    zero = z.dtype.type(0)
    if leaky:
        for j in range(z.shape[0]):
            a[j] = z[j] if z[j] > zero else z[j] * slope
    else:
        for j in range(z.shape[0]):
            a[j] = z[j] if z[j] > zero else zero


@helper
def dense_rows(A, start, stop, W, b, Z):
    """Z[i] = b + A[i] @ W for the rows i of start..stop-1: W (fan_in, fan_out) in panels (see
    layout.ahead_weights)."""
    for i in range(start, stop):
        set_row(Z, i, b)
    add_panel_products(Z, start, stop, A, W)
