"""The one compiled entry point: a whole epoch of mini-batch SGD, or the gradients of one batch,
or a forward pass, in one call.

It is a serial loop over batches, and over chunks of at most CHUNK samples within a batch,
around the two parallel passes of `backward`. Every buffer is allocated once per call and
reused: no Python between batches and none of the reference's per-batch temporaries. The
three uses share this one function rather than three thin wrappers, because every jitted layer
costs seconds of compiling for every dtype pair.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from fastnn.kernels.backward import gradient_pass, sample_pass
from fastnn.kernels.config import ENTRY
from fastnn.kernels.sparse import BLOCK, pixel_table

# Numba checks the cached code of `run` against this file only, yet that code includes every
# kernel it calls: an edit to another kernel module (or to the options in config.py) would
# leave a stale compiled `run` in use. This digest of those modules, kept up to date by
# test_kernel_sources_digest_is_current, makes every such edit change this file too.
KERNEL_SOURCES_DIGEST = "881aed68a7f09335bcb5407f8de11752de867d93b0e79d3f4a9631893351d3c3"

FORWARD, GRADIENTS, TRAIN = 0, 1, 2  # what `run` does
CHUNK = 256  # samples per pass: a chunk's lists, activations and gradients stay in L2 cache


@njit(**ENTRY)
def run(mode, params, X, y, order, batch_size, lr, slope, leaky, grads):
    """Takes X[order] in batches of batch_size (the last one possibly smaller) and, by `mode`:

    TRAIN: params = (W1, b1, W2, b2) -= lr * gradients after each batch, in place;
    GRADIENTS: writes the gradients of the mean loss over the one batch to
        grads = (dW1 (zero beforehand), db1, dW2.T (n_out, H), db2), which are width-0
        placeholders in the other modes;
    FORWARD: one batch, no labels (y may be empty), no update.

    Returns (sum of the per-sample losses, number of correct argmax), each batch measured
    before its update, and Z1, A1, Z2, P of all samples in FORWARD mode (else scratch).
    """
    W1, b1, W2, b2 = params
    n = order.shape[0]
    n_in, H = W1.shape
    n_out = W2.shape[1]
    dtype = W1.dtype
    backprop = mode != FORWARD
    chunk = min(CHUNK, batch_size, n)
    held = chunk if backprop else n  # samples whose activations are kept at once
    idx = np.empty(chunk * (n_in + 1), np.int32)  # the chunk's feature lists
    bounds = np.empty(((n_in + BLOCK - 1) // BLOCK + 1, chunk), np.int32)  # (n_blocks + 1, chunk)
    D = np.empty((held, H), dtype)  # Z1, then dZ1
    A = np.empty((held, H), dtype)  # A1
    G = np.empty((held, n_out), dtype)  # Z2, then dZ2
    P = np.empty((0 if backprop else n, n_out), dtype)  # (n, n_out) softmax, forward only
    losses = np.empty(chunk, dtype)  # (chunk,)
    hits = np.empty(chunk, np.int64)  # (chunk,)
    sums = (  # the gradients of the batch so far, rows owned by the jobs of gradient_pass
        np.zeros((n_in, H), dtype),
        np.zeros(H, dtype),
        np.zeros((n_out, H), dtype),
        np.zeros(n_out, dtype),
    )
    touched = np.zeros(bounds.shape[0] - 1, np.bool_)  # (n_blocks,)
    work = (W1, b1, W2, np.ascontiguousarray(W2.T), b2)  # W2.T: (n_out, H)
    table = pixel_table(W1)
    loss_sum = 0.0
    n_hits = 0
    for first in range(0, n, batch_size):
        end = min(first + batch_size, n)
        for start in range(first, end, chunk):
            m = min(chunk, end - start)
            at = 0 if backprop else start  # where the chunk's rows go in D, A, G, P
            part = (
                order[start : start + m],
                idx,
                bounds,
                A[at : at + m],
                D[at : at + m],
                G[at : at + m],
            )
            sample_pass(
                work,
                X,
                y,
                table,
                slope,
                leaky,
                part,
                end - first,
                losses,
                hits,
                P[at : at + m],
                backprop,
            )
            if backprop:
                gradient_pass(
                    work, X, table, part, lr, mode == TRAIN, start + m == end, sums, touched, grads
                )
                for i in range(m):  # in order: the same sum whatever the threads
                    loss_sum += losses[i]
                    n_hits += hits[i]
    return loss_sum, n_hits, D, A, G, P
