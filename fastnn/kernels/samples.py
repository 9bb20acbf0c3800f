"""The sample pass of a mini-batch (see `epoch.train_batches`), and a prediction's forward
pass: a team of threads (see `team`) takes the batch a chunk of samples at a time (so a full
batch of 60,000 stays in cache too). Any number of hidden layers: the per-layer data sit in
flat buffers (see `layout`).

`sample_pass` splits a chunk's samples among the members in runs of RUN: a job takes its run
forward through every layer, through the loss's gradient at the last layer (`output_gradient`:
softmax cross-entropy, logistic, squared error), and back to the first layer, a layer at a time
(the later layers a tile of samples at once, see `dense.add_products`), keeping what the
update pass (`update`) needs for the weight gradients: each layer's A and dZ rows, and the
first layer's inputs: where it runs sparse, in lists of its own, every sample's non-zero
features; where it runs dense (`Chunk.dense_input`), their rows of X in the parameters' dtype,
which two passes before the sample pass read (`read_inputs_pass`) and take through the first
layer's products by panels of its units (`first_layer_forward`). Each sample's numbers are its
own, whoever takes its run.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnn.kernels.config import DENSE_ROWS, helper, inlined_helper
from fastnn.kernels.csr import hidden_csr_row, list_csr_row, read_csr_row
from fastnn.kernels.dense import add_panel_column, add_panel_products, add_products
from fastnn.kernels.dropout import drop_features, drop_inputs, drop_units, drops
from fastnn.kernels.forward import activate_row, dense_rows, hidden_row
from fastnn.kernels.layout import (
    ahead_weights,
    bias,
    matrix,
    set_panel_row,
    set_row,
    unit_panels,
    weights,
)
from fastnn.kernels.outputs import output_gradient, output_row
from fastnn.kernels.sparse import prefetch_row, read_row, scan_row
from fastnn.kernels.team import is_mine, my_jobs

RUN = 16  # samples a job of the sample pass takes (see forward_samples)
LOAD_AHEAD = 4  # rows of X `list_others` loads ahead of the one it lists (8: no better)


@helper
def hidden_grad_rows(G, start, stop, WT, A, slope, leaky, D):
    """D[i] = (G[i] @ W.T) * activation'(z) for the rows i of start..stop-1, for the layer
    below W (WT: W transposed, G: the dZ of W's layer), telling z > 0 from A[i] > 0 (the same
    test: the activation and a dropout factor keep the sign; a dropped unit's D is zeroed
    after); the slope at 0 is the negative side's, as in the reference."""
    zero = D.dtype.type(0)
    negative = slope if leaky else zero
    for i in range(start, stop):
        D[i] = zero
    add_products(D, start, stop, G, WT)
    for i in range(start, stop):
        for j in range(D.shape[1]):
            if not A[i, j] > zero:
                D[i, j] = D[i, j] * negative


class Chunk(NamedTuple):
    """Up to CHUNK samples of a batch, and where their per-sample data go."""

    rows: np.ndarray  # (m,) their rows of X
    idx: np.ndarray  # their non-zero features (see `sparse`)
    bounds: np.ndarray  # (n_blocks + 1, CHUNK) where each sample's features of a block are
    Z: np.ndarray  # every layer's Z, then dZ, for `held` samples (see `layer_rows`)
    A: np.ndarray  # every hidden layer's A, for `held` samples
    held: int  # samples the activation buffers hold
    at: int  # where this chunk's samples start in them
    # The first layer runs dense: as products of tiles over every feature of `inputs`, rather
    # than over each sample's list of non-zero features.
    dense_input: bool
    inputs: np.ndarray  # (CHUNK, n_in) row i: sample i's X in the params' dtype (if dense_input)
    # For the update pass (empty in a forward pass alone): every hidden layer's A and the first
    # layer's dZ again, in panels for the weight gradients' products (see layout.unit_panels).
    panels: np.ndarray
    # A sparse X (see `csr`; all empty for a dense X): its CSR arrays, the values of the
    # listed features beside idx, and the member's row that the first layer's loops read.
    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    vals: np.ndarray
    row: np.ndarray
    runs: np.ndarray  # (3, ...) the entries' runs by block group, and where each group's start
    firsts: np.ndarray  # (n_groups + 1,): see csr.group_runs


@inlined_helper
def layer_rows(buf, chunk, layout, layer):
    """The chunk's rows of a layer's activations in buf (chunk.Z or chunk.A): (m, fan_out),
    from row chunk.at of the layer's `held` rows, which follow the layers' before it."""
    width = layout.sizes[layer + 1]
    start = chunk.held * layout.units_at[layer] + chunk.at * width
    return matrix(buf, start, chunk.rows.shape[0], width)


@helper
def consecutive(rows, lo, hi):
    """Whether rows[lo..hi-1] are rows[lo], rows[lo] + 1, ..., as a prediction's are."""
    for i in range(lo + 1, hi):
        if rows[i] != rows[i - 1] + 1:
            return False
    return True


@helper
def read_inputs(layout, net, X, table, chunk, lo, hi):
    """Samples lo..hi-1's rows of X into chunk.inputs in the parameters' dtype (scaled where X
    holds pixels, dropped where the inputs' dropout drops), and their Z1 = b1, for a dense first
    layer's products to add to."""
    Z, b1 = layer_rows(chunk.Z, chunk, layout, 0), bias(net.theta, layout, 0)
    inputs = layout.sizes.shape[0] - 2  # where the inputs' dropout is in net's drop arrays
    for i in range(lo, hi):
        set_row(Z, i, b1)
        if chunk.indptr.shape[0] > 0:
            read_csr_row(
                X, chunk.indptr, chunk.indices, chunk.values, chunk.rows[i], table, chunk.inputs[i]
            )
        else:
            read_row(X, chunk.rows[i], table, chunk.inputs[i])
        if drops(net, inputs):
            drop_inputs(chunk.inputs[i], net, inputs, chunk.rows[i])


@helper
def forward_samples(layout, net, X, table, chunk, lo, hi, direct, first_done):
    """Samples lo..hi-1 of the chunk through every layer, a layer at a time: Z and A of each
    in their rows, the logits last. Their non-zero features are listed first, for this pass
    and the update pass. A dense first layer's Z is there already where first_done (training:
    `first_layer_forward`); else its products read X's rows in place where direct is X
    (`sparse.rows_in_place`: a prediction's float X, no copy of every row) and the run's rows
    are consecutive, or copy them into chunk.inputs first. Each layer's views are made once
    here, not per sample: each comes from a counted helper (`layout.matrix`, see config), a
    few calls into Numba's runtime."""
    rows, idx, bounds = chunk.rows, chunk.idx, chunk.bounds
    Z = layer_rows(chunk.Z, chunk, layout, 0)
    A = layer_rows(chunk.A, chunk, layout, 0)
    W1, b1 = weights(net.theta, layout, 0), bias(net.theta, layout, 0)
    inputs = layout.sizes.shape[0] - 2  # where the inputs' dropout is in net's drop arrays
    csr = chunk.indptr.shape[0] > 0
    if chunk.dense_input and not first_done:
        first = rows[lo] - lo  # X's row of sample 0, where the run's rows are consecutive
        in_place = (
            direct.shape[0] > 0 and not csr and table[0] == 1 and not drops(net, inputs)
            and first >= 0 and consecutive(rows, lo, hi)
        )  # fmt: skip
        W1_ahead = ahead_weights(net.ahead, layout, 0)
        if in_place:  # direct[first + i] is sample i's row, X[rows[i]]
            for i in range(lo, hi):
                set_row(Z, i, b1)
            add_panel_products(Z, lo, hi, direct[first : first + hi], W1_ahead)
        else:
            read_inputs(layout, net, X, table, chunk, lo, hi)
            add_panel_products(Z, lo, hi, chunk.inputs, W1_ahead)
    for i in range(lo, hi):
        r = rows[i]
        if not chunk.dense_input:
            if csr:
                list_csr_row(
                    chunk.indptr, chunk.indices, chunk.values, r, idx, chunk.vals, i, bounds
                )
            else:
                if i + 1 < hi:
                    prefetch_row(X, rows[i + 1])  # arrives while this sample is worked on
                scan_row(X, r, idx, i, bounds)
            if drops(net, inputs):
                drop_features(idx, chunk.vals, bounds, i, net, inputs, r)
            start, end = bounds[0, i], bounds[bounds.shape[0] - 1, i]
            if csr:
                hidden_csr_row(X, W1, b1, idx, chunk.vals, start, end, chunk.row, table, Z, i)
            else:
                hidden_row(W1, b1, X, r, table, idx, start, end, Z, i)
        activate_row(Z[i], A[i], net.slope, net.leaky)
        if drops(net, 0):
            drop_units(A[i], net, 0, r)
    n_layers = layout.sizes.shape[0] - 1
    for layer in range(1, n_layers):
        Z = layer_rows(chunk.Z, chunk, layout, layer)
        W, b = ahead_weights(net.ahead, layout, layer), bias(net.theta, layout, layer)
        dense_rows(A, lo, hi, W, b, Z)
        if layer < n_layers - 1:
            A = layer_rows(chunk.A, chunk, layout, layer)
            for i in range(lo, hi):
                activate_row(Z[i], A[i], net.slope, net.leaky)
                if drops(net, layer):
                    drop_units(A[i], net, layer, rows[i])


@helper
def backward_samples(layout, net, y, targets, row_weights, chunk, lo, hi, total, losses, hits):
    """From the last layer's z of samples lo..hi-1: losses[i] = its loss, hits[i] = whether it
    is predicted right (see `output_gradient`), and the gradients of the batch's mean loss (its
    weighted mean where `row_weights`, one a row of X, are given), dZ of each layer in place of its
    Z, a layer at a time; `total`: the batch's size, or the sum of its weights."""
    n_layers = layout.sizes.shape[0] - 1
    G = layer_rows(chunk.Z, chunk, layout, n_layers - 1)
    size = G.dtype.type(total)
    weighted = row_weights.shape[0] > 0
    for i in range(lo, hi):
        loss, right = output_gradient(net, y, targets, chunk.rows[i], G[i])
        losses[i] = loss
        hits[i] = right
        if weighted:  # the gradient of the weighted mean loss
            w = G.dtype.type(row_weights[chunk.rows[i]])
            for o in range(G.shape[1]):
                G[i, o] = G[i, o] * w / size
        else:  # of the mean loss, as it always was: not a product with 1s
            for o in range(G.shape[1]):
                G[i, o] = G[i, o] / size
    for layer in range(n_layers - 1, 0, -1):
        D = layer_rows(chunk.Z, chunk, layout, layer - 1)
        A = layer_rows(chunk.A, chunk, layout, layer - 1)
        WT = weights(net.theta, layout, layer)
        hidden_grad_rows(G, lo, hi, WT, A, net.slope, net.leaky, D)
        if drops(net, layer - 1):  # through the kept units only
            for i in range(lo, hi):
                drop_units(D[i], net, layer - 1, chunk.rows[i])
        G = D


@helper
def run_of(t, m):
    """Run t of a chunk of m samples: samples t * RUN .. min((t + 1) * RUN, m) - 1."""
    return t * RUN, min((t + 1) * RUN, m)


@helper
def forward_pass(layout, net, X, table, chunk, P, direct):
    """The chunk's samples forward, P[i] = their outputs (`outputs.output_row`), a run of
    samples at a time; a dense first layer reads X's rows in place where direct is X (see
    `forward_samples`)."""
    m = chunk.rows.shape[0]
    for t in range((m + RUN - 1) // RUN):
        lo, hi = run_of(t, m)
        forward_samples(layout, net, X, table, chunk, lo, hi, direct, False)
        logits = layer_rows(chunk.Z, chunk, layout, layout.sizes.shape[0] - 2)
        for i in range(lo, hi):
            output_row(net.output, logits[i], P[i])


@helper
def read_inputs_pass(team, layout, net, X, table, chunk):
    """This member's runs of the chunk's samples: their rows of X read into chunk.inputs, and
    Z1 = b1 (see `read_inputs`), before `first_layer_forward` (a dense first layer, training)."""
    m = chunk.rows.shape[0]
    for t in my_jobs(team, (m + RUN - 1) // RUN):
        lo, hi = run_of(t, m)
        read_inputs(layout, net, X, table, chunk, lo, hi)


@helper
def first_layer_forward(team, layout, net, chunk):
    """Z1 += inputs @ W1 for every sample of the chunk, a job a panel of W1's forward copy (of
    a block of the samples, where there are too few panels to go round twice): a member's
    jobs are the same panels every batch, so it reads its own share of W1, which stays in its
    cache, where a run of samples a job read all of it. A panel's products are the same
    numbers whatever rows a job takes (see `dense`)."""
    Z = layer_rows(chunk.Z, chunk, layout, 0)
    W1_ahead = ahead_weights(net.ahead, layout, 0)
    m = chunk.rows.shape[0]
    n_panels = W1_ahead.shape[0]
    blocks = min(max(1, (2 * team.size + n_panels - 1) // n_panels), (m + RUN - 1) // RUN)
    per_block = (m + blocks - 1) // blocks
    per_block = (per_block + DENSE_ROWS - 1) // DENSE_ROWS * DENSE_ROWS  # whole tiles
    for job in my_jobs(team, blocks * n_panels):
        block, p = job // n_panels, job % n_panels
        lo, hi = block * per_block, min((block + 1) * per_block, m)
        if lo < hi:
            add_panel_column(Z, lo, hi, chunk.inputs, W1_ahead, p)


@helper
def sample_pass(team, layout, net, data, table, chunk, total, losses, hits):
    """This member's share of the chunk's samples forward and back to the first layer's dZ, a
    run of samples a job; losses[i] and hits[i] get its loss and whether it was predicted
    right (data's labels or targets, see `output_gradient`); `total` is the batch's size, or
    the sum of its weights (1 if they sum to 0) where data has weights. How the samples are
    shared out changes no result: each sample's numbers are its own."""
    m = chunk.rows.shape[0]
    # A dense first layer's Z1 is there already (`first_layer_forward`): no X read in place.
    no_direct = chunk.inputs[:0]
    for t in my_jobs(team, (m + RUN - 1) // RUN):
        lo, hi = run_of(t, m)
        forward_samples(layout, net, data.X, table, chunk, lo, hi, no_direct, chunk.dense_input)
        backward_samples(
            layout, net, data.y, data.targets, data.weights, chunk, lo, hi, total, losses, hits
        )
        keep_panels(layout, chunk, lo, hi)
    if not chunk.dense_input:
        list_others(team, layout, net, data.X, chunk)


@helper
def keep_panels(layout, chunk, lo, hi):
    """Samples lo..hi-1's rows of every hidden layer's A, and where the first layer runs dense
    of its dZ, into the chunk's panels, for the update pass's products."""
    n_layers = layout.sizes.shape[0] - 1
    for layer in range(n_layers - 1):
        A = layer_rows(chunk.A, chunk, layout, layer)
        P = unit_panels(chunk.panels, chunk.held, layout, layer)
        for i in range(lo, hi):
            set_panel_row(P, chunk.at + i, A[i])
    if chunk.dense_input:
        dZ = layer_rows(chunk.Z, chunk, layout, 0)
        P = unit_panels(chunk.panels, chunk.held, layout, n_layers - 1)
        for i in range(lo, hi):
            set_panel_row(P, chunk.at + i, dZ[i])


@helper
def list_others(team, layout, net, X, chunk):
    """Lists the non-zero features of the samples of the chunk that the other members take
    forward, in this member's own lists: the update pass reads every sample's, and reading
    them from the cache of the core that wrote them costs more than scanning again. Rows of X
    are loaded LOAD_AHEAD samples ahead: without work between them, one sample ahead comes too
    late. The scan is called here, not through a helper taking net and chunk per sample,
    which Numba does not inline as well (docs/design.md has the measurements)."""
    rows, idx, bounds = chunk.rows, chunk.idx, chunk.bounds
    inputs = layout.sizes.shape[0] - 2  # where the inputs' dropout is in net's drop arrays
    m = rows.shape[0]
    csr = chunk.indptr.shape[0] > 0
    for t in range((m + RUN - 1) // RUN):
        if is_mine(team, t):
            continue
        lo, hi = run_of(t, m)
        if csr:  # its rows are lists already
            for i in range(lo, hi):
                list_csr_row(
                    chunk.indptr, chunk.indices, chunk.values, rows[i], idx, chunk.vals, i, bounds
                )
                if drops(net, inputs):
                    drop_features(idx, chunk.vals, bounds, i, net, inputs, rows[i])
            continue
        for i in range(lo, min(lo + LOAD_AHEAD, hi)):
            prefetch_row(X, rows[i])
        for i in range(lo, hi):
            if i + LOAD_AHEAD < hi:
                prefetch_row(X, rows[i + LOAD_AHEAD])
            scan_row(X, rows[i], idx, i, bounds)
            if drops(net, inputs):
                drop_features(idx, chunk.vals, bounds, i, net, inputs, rows[i])
