"""The forward pass of one sample (one row of X), as small serial helpers.

Each helper writes only its own sample's outputs, so the parallel pass over samples
(`backward.sample_pass`) can run them on any thread. Their sums run in a fixed order (features,
then hidden units, ascending), which does not depend on the number of threads.

hidden_row, logits_row, `backward.hidden_grad_row` and `backward.add_column_terms` each write out
the same loop (y += c0 * M[r0] + ... + c3 * M[r3], four rows a pass). One shared helper for them
gave the same bits but made an MNIST epoch 7-8% slower (hidden 10 and 128, 2 threads, A/B in one
process), so the loop is written out in each.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastnn.kernels.config import SERIAL
from fastnn.kernels.sparse import load_x


@njit(**SERIAL)
def hidden_row(W1, b1, X, r, table, idx, start, end, z):
    """z = X[r] @ W1 + b1, summing only over the features listed in idx[start:end]. Four
    features a pass, added one after another as written: z is loaded and stored once per four
    rows of W1 rather than once per row, and every z[j] gets the same sums in the same order
    (so the same bits) as one feature a pass."""
    H = z.shape[0]
    for j in range(H):
        z[j] = 0
    e = start
    while e + 4 <= end:
        k0, k1, k2, k3 = idx[e], idx[e + 1], idx[e + 2], idx[e + 3]
        x0, x1 = load_x(X, r, k0, table), load_x(X, r, k1, table)
        x2, x3 = load_x(X, r, k2, table), load_x(X, r, k3, table)
        for j in range(H):  # contiguous in W1 and z: vectorised; the adds in feature order
            s = z[j] + x0 * W1[k0, j]
            s = s + x1 * W1[k1, j]
            s = s + x2 * W1[k2, j]
            z[j] = s + x3 * W1[k3, j]
        e += 4
    for rest in range(e, end):
        k = idx[rest]
        x = load_x(X, r, k, table)
        for j in range(H):
            z[j] += x * W1[k, j]
    for j in range(H):
        z[j] += b1[j]  # after the sum, as X @ W1 + b1 does


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
def logits_row(a, W2, b2, z2):
    """z2 = a @ W2 + b2, four hidden units a pass, added one after another as written (the
    same bits as one a pass, with a quarter of the loads and stores of z2)."""
    H, n_out = W2.shape
    for o in range(n_out):
        z2[o] = 0
    j = 0
    while j + 4 <= H:
        a0, a1, a2, a3 = a[j], a[j + 1], a[j + 2], a[j + 3]
        for o in range(n_out):
            t = z2[o] + a0 * W2[j, o]
            t = t + a1 * W2[j + 1, o]
            t = t + a2 * W2[j + 2, o]
            z2[o] = t + a3 * W2[j + 3, o]
        j += 4
    for rest in range(j, H):
        v = a[rest]
        for o in range(n_out):
            z2[o] += v * W2[rest, o]
    for o in range(n_out):
        z2[o] += b2[o]


@njit(**SERIAL)
def softmax_row(z2, p):
    """p = softmax(z2), shifted by the max so exp cannot overflow; p may be z2 itself.
    Returns log(sum(exp(z2 - max))), the max, and the first index holding it."""
    n_out = z2.shape[0]
    top = z2[0]
    arg = 0
    for o in range(1, n_out):
        if z2[o] > top:
            top = z2[o]
            arg = o
    total = z2.dtype.type(0)
    for o in range(n_out):
        e = np.exp(z2[o] - top)
        p[o] = e
        total += e
    for o in range(n_out):
        p[o] = p[o] / total
    return np.log(total), top, arg
