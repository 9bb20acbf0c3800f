"""The forward pass of one sample (one row of X), layer by layer, as small serial helpers.

Each helper writes only its own sample's outputs, so the parallel pass over samples
(`passes.sample_pass`) can run them on any thread. Their sums run in a fixed order (features,
then hidden units, ascending), which does not depend on the number of threads. Their inner
loops are `tile.gather_row` (the first layer, sparse) and `dense.add_panel_products`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastnn.kernels.config import SERIAL
from fastnn.kernels.dense import add_panel_products
from fastnn.kernels.tile import gather_row

# Net.output: what the last layer gives, in the order of fastnn.core.model.OUTPUTS. A number
# read at run time, so that one compiled kernel serves every kind.
SOFTMAX, LOGISTIC, IDENTITY = 0, 1, 2


@njit(**SERIAL)
def hidden_row(W1, b1, X, r, table, idx, start, end, Z, i):
    """Z[i] = X[r] @ W1 + b1, summing only over the features listed in idx[start:end], in that
    order (see `tile`)."""
    gather_row(Z, i, W1, idx, start, end, X, r, table)
    for j in range(Z.shape[1]):
        Z[i, j] += b1[j]  # after the sum, as X @ W1 + b1 does


@njit(**SERIAL)
def activate_row(z, a, slope, leaky):
    """a = relu(z), or leaky relu with `slope` for z <= 0."""
    zero = z.dtype.type(0)
    if leaky:
        for j in range(z.shape[0]):
            a[j] = z[j] if z[j] > zero else z[j] * slope
    else:
        for j in range(z.shape[0]):
            a[j] = z[j] if z[j] > zero else zero


@njit(**SERIAL)
def dense_rows(A, start, stop, W, b, Z):
    """Z[i] = b + A[i] @ W for the rows i of start..stop-1: W (fan_in, fan_out) in panels (see
    layout.ahead_weights)."""
    for i in range(start, stop):
        Z[i] = b
    add_panel_products(Z, start, stop, A, W)


@njit(**SERIAL)
def softmax_row(z, p):
    """p = softmax(z) of the logits z, shifted by the max so exp cannot overflow; p may be z
    itself. Returns log(sum(exp(z - max))), the max, and the first index holding it."""
    n_out = z.shape[0]
    top = z[0]
    arg = 0
    for o in range(1, n_out):
        if z[o] > top:
            top = z[o]
            arg = o
    total = z.dtype.type(0)
    for o in range(n_out):
        e = np.exp(z[o] - top)
        p[o] = e
        total += e
    for o in range(n_out):
        p[o] = p[o] / total
    return np.log(total), top, arg


@njit(**SERIAL)
def sigmoid_row(z, p):
    """p = 1 / (1 + exp(-z)) elementwise, from e = exp(-|z|) so exp cannot overflow: 1 / (1 + e)
    for z >= 0, e / (1 + e) below, as the reference computes it. p may be z itself."""
    one = p.dtype.type(1)
    for o in range(z.shape[0]):
        e = np.exp(-abs(z[o]))
        p[o] = one / (one + e) if z[o] >= 0 else e / (one + e)


@njit(**SERIAL)
def output_row(output, z, p):
    """p = the network's outputs from the last layer's z, by the kind `output`: softmax,
    logistic (a sigmoid per output) or identity."""
    if output == SOFTMAX:
        softmax_row(z, p)
    elif output == LOGISTIC:
        sigmoid_row(z, p)
    else:
        for o in range(z.shape[0]):
            p[o] = z[o]
