"""The compiled entry points: `descend`, a whole epoch of mini-batch updates (or the
gradients of one batch), `forward`, a forward pass keeping every layer's activations, and
`augment`, an epoch's augmented images (see `kernels.augment`).

Each is a serial loop over batches, and over chunks of at most CHUNK samples within a batch,
around the parallel passes of `backward`. Every buffer is allocated once per call and reused:
no Python between batches and none of the reference's per-batch temporaries. The gradients of
`loss_and_grads` come from `descend` too (one batch, rule GRADIENTS_ONLY), not from a third
entry, because every entry costs seconds of compiling for every dtype pair.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from fastnn.kernels.augment import augment_rows
from fastnn.kernels.backward import (
    Batch,
    Chunk,
    forward_pass,
    gradient_pass,
    n_jobs,
    sample_pass,
    weight_squares,
)
from fastnn.kernels.config import ENTRY
from fastnn.kernels.constraint import cap_first_layer
from fastnn.kernels.dropout import drops
from fastnn.kernels.optimizer import GRADIENTS_ONLY
from fastnn.kernels.sparse import BLOCK, input_table

# Numba checks the cached code of an entry against this file only, yet that code includes every
# kernel it calls: an edit to another kernel module (or to the options in config.py) would
# leave a stale compiled entry in use (so would one to fastnn/dropout.py, whose constants
# the kernels compile in). This digest of those modules, kept up to date by
# test_kernel_sources_digest_is_current, makes every such edit change this file too.
KERNEL_SOURCES_DIGEST = "97e9744f010092734fa3958abb0448d24c38559dca0a1f2ffba4a10e413e0a58"

CHUNK = 256  # samples per pass: a chunk's lists, activations and gradients stay in L2 cache


class Net(NamedTuple):
    """The network's numbers in the kernels' layout; a `Layout` (passed beside it: Numba's
    parallel loops take no structure nested in another) tells where each layer's are."""

    theta: np.ndarray  # every parameter, flat, as the update pass owns them
    ahead: np.ndarray  # the weights of the layers after the first, as the forward pass reads them
    slope: np.floating  # of leaky_relu below 0, in the parameters' dtype
    leaky: bool  # leaky_relu, else relu
    # Dropout of each hidden layer (see fastnn.dropout): a threshold of 0 drops nothing.
    # Entry n_hidden is the inputs' (see fastnn.dropout).
    drop_keys: np.ndarray  # (n_hidden + 1,) uint64, the layers' keys in this epoch
    drop_thresholds: np.ndarray  # (n_hidden + 1,) uint64
    drop_scales: np.ndarray  # (n_hidden + 1,) the factor of a kept unit, in the params' dtype


class Data(NamedTuple):
    X: np.ndarray  # (n, n_in) uint8 pixels or floats of the parameters' dtype
    y: np.ndarray  # (n,) int64 labels
    order: np.ndarray  # (n_samples,) int64 rows of X, taken in batches in this order
    batch_size: int


class State(NamedTuple):
    """What `descend` updates besides theta, laid out as theta."""

    sums: np.ndarray  # gradient sums, zero beforehand; after GRADIENTS_ONLY, the gradients
    first: np.ndarray  # velocities or Adam's m (empty if the rule keeps none)
    second: np.ndarray  # running means of g * g (empty if the rule keeps none)


@njit(**ENTRY)
def descend(layout, net, data, rule, state):
    """Takes X[order] in batches of batch_size (the last one possibly smaller) and after each
    steps theta (and `ahead`, and state) by `rule` (see `optimizer`), in place. Returns the
    sum of the per-sample losses (plus, with alpha, each batch's L2 penalty) and the number
    of correct argmax, each batch measured before its update."""
    n = data.order.shape[0]
    n_in = layout.sizes[0]
    n_layers = layout.sizes.shape[0] - 1
    dtype = net.theta.dtype
    chunk = min(CHUNK, data.batch_size, n)
    n_blocks = (n_in + BLOCK - 1) // BLOCK
    rows = np.empty(chunk, np.int64)  # the chunk's rows of X (see below)
    idx = np.empty(chunk * (n_in + 1), np.int32)  # the chunk's feature lists
    bounds = np.empty((n_blocks + 1, chunk), np.int32)  # (n_blocks + 1, chunk)
    Z = np.empty(chunk * layout.units_at[n_layers], dtype)  # every layer's Z, then dZ
    A = np.empty(chunk * layout.units_at[n_layers - 1], dtype)  # every hidden layer's A
    losses = np.empty(chunk, dtype)  # (chunk,)
    hits = np.empty(chunk, np.int64)  # (chunk,)
    touched = np.zeros(n_blocks, np.bool_)  # (n_blocks,)
    squares = np.zeros(n_jobs(layout, n_blocks))  # (n_jobs,) float64, see weight_squares
    if rule.alpha > 0:
        weight_squares(net.theta, layout, n_blocks, squares)
    inputs = n_layers - 1  # the inputs' entry in net's dropout arrays
    factor = net.drop_scales[inputs] if drops(net, inputs) else dtype.type(1)
    table = input_table(data.X, net.theta, factor)
    loss_sum = 0.0
    n_hits = 0
    for batch, first in enumerate(range(0, n, data.batch_size)):
        end = min(first + data.batch_size, n)
        if rule.alpha > 0:
            loss_sum += 0.5 * rule.alpha * squares.sum()  # the penalty before the update
        for start in range(first, end, chunk):
            m = min(chunk, end - start)
            # Copied out of the read-only order, the chunk's rows are a writable array as in
            # `forward`: one type of Chunk, so the passes they share compile once for both. A
            # loop: Numba's slice assignment compiles for seconds.
            for i in range(m):
                rows[i] = data.order[start + i]
            part = Chunk(rows[:m], idx, bounds, Z, A, chunk, 0)
            sample_pass(layout, net, data.X, data.y, table, part, end - first, losses, hits)
            done = Batch(batch, end - first, start + m == end)
            gradient_pass(layout, net, data.X, table, part, state, rule, done, touched, squares)
            if done.last and rule.max_norm > 0 and rule.solver != GRADIENTS_ONLY:
                cap_first_layer(net.theta, layout, rule.max_norm)
                if rule.alpha > 0:  # the penalty of the capped weights
                    weight_squares(net.theta, layout, n_blocks, squares)
            for i in range(m):  # in order: the same sum whatever the threads
                loss_sum += losses[i]
                n_hits += hits[i]
    return loss_sum, n_hits


@njit(**ENTRY)
def forward(layout, net, X):
    """Every row of X through the network. Returns Z of every layer and A of every hidden
    layer, each flat as `layout.units` reads them for n rows, and P (n, n_out)."""
    n = X.shape[0]
    n_in = layout.sizes[0]
    n_layers = layout.sizes.shape[0] - 1
    dtype = net.theta.dtype
    chunk = max(min(CHUNK, n), 1)
    idx = np.empty(chunk * (n_in + 1), np.int32)
    bounds = np.empty(((n_in + BLOCK - 1) // BLOCK + 1, chunk), np.int32)
    Z = np.empty(n * layout.units_at[n_layers], dtype)
    A = np.empty(n * layout.units_at[n_layers - 1], dtype)
    P = np.empty((n, layout.sizes[n_layers]), dtype)  # (n, n_out)
    rows = np.arange(n)
    table = input_table(X, net.theta, dtype.type(1))
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        part = Chunk(rows[start : start + m], idx, bounds, Z, A, n, start)
        forward_pass(layout, net, X, table, part, P[start : start + m])
    return Z, A, P


@njit(**ENTRY)
def augment(X, warp, out):
    """out[r] = row r of X (n, height * width) transformed by `warp`, for every row r."""
    augment_rows(X, warp, out)
    return out
