"""The update pass of a mini-batch (see `epoch.train_batches`), after the sample pass
(`samples`) of each chunk: its terms added to the gradient sums, and after the batch's last
chunk the step.

`gradient_pass` splits the parameters among the members by output element: a job owns the rows
of W1 of a few blocks of input features (`blocks_per_job`), or the weights into a panel's units
of a later layer (rows of its transposed weights: `units_of_group`), or one layer's biases. It
adds the chunk's samples' terms, in ascending sample order, to its own range of the gradient
sums; after the batch's last chunk it steps its own parameters (and optimizer state) by the
update rule, or, for `loss_and_grads`, leaves the sums as the result. (A dense first layer's
jobs, where a chunk is its whole batch, sum a few rows at a time and step them at once:
`step_dense_group`.) No element is written by two jobs and every sum runs in sample order
whatever member runs the job, so results are the same bits for any number of threads.
"""

from __future__ import annotations

from typing import NamedTuple

from fastnn.kernels.config import helper
from fastnn.kernels.constraint import cap_rows
from fastnn.kernels.csr import add_csr_block_terms, group_runs, mark_csr_rows
from fastnn.kernels.dense import add_panel_products
from fastnn.kernels.layout import ahead_weights, bias, set_panel_row, unit_panels, weights
from fastnn.kernels.optimizer import (
    GRADIENTS_ONLY,
    MOMENTUM,
    moves_idle_weights,
    step,
    step_slices,
    steps_touched_rows,
)
from fastnn.kernels.samples import layer_rows
from fastnn.kernels.sparse import BLOCK
from fastnn.kernels.team import my_jobs
from fastnn.kernels.tile import scatter_row

BLOCK_JOB, COLUMN_JOB, BIAS_JOB = 0, 1, 2  # what a job owns (`locate`)
TOUCHED, MOVING = 0, 1  # the rows of row_flags (see `step_rows`)
# A first-layer job of the update pass owns the W1 rows of a few blocks of input features
# (sparse.BLOCK each): about JOB_BYTES of them, and at most MAX_BLOCKS_PER_JOB blocks (see
# `blocks_per_job`).
JOB_BYTES = 32768
MAX_BLOCKS_PER_JOB = 8


@helper
def blocks_per_job(hidden, itemsize):
    """The blocks of input features a first-layer job of the update pass owns, for W1 rows of
    `hidden` elements of itemsize bytes: the job's loop over a sample's entries ends (a
    mispredicted branch) once for all its blocks, so narrow rows take several (up to
    MAX_BLOCKS_PER_JOB: enough jobs left to share out evenly); wide rows fewer, keeping the
    gradient sums the job adds to near JOB_BYTES, a core's L1 cache (every sample of the chunk
    visits them). Yet two blocks wherever one block's sums fit in JOB_BYTES: jobs of one block
    deal every other block to a member, and MNIST's odd blocks are busier (blocks of 16
    features against image rows of 28): 8% more pixels for one of two members (Fashion-MNIST
    4%), whom the other then waits for at every batch's end (docs/design.md has the
    measurements that chose these counts)."""
    block_bytes = BLOCK * hidden * itemsize
    least = 2 if block_bytes <= JOB_BYTES else 1
    return max(least, min(MAX_BLOCKS_PER_JOB, JOB_BYTES // block_bytes))


@helper
def block_groups(n_blocks, per_job):
    """The update pass's jobs of the first layer: one for every per_job blocks."""
    return (n_blocks + per_job - 1) // per_job


@helper
def add_block_terms(g, per_job, X, rows, table, idx, bounds, D, acc):
    """acc[k] += X[rows[i], k] * D[i] for the features k of block group g (blocks g * per_job
    onwards), samples i in order (see `tile.scatter_row`). Returns whether any sample has a
    non-zero feature there."""
    first = g * per_job
    end = min(first + per_job, bounds.shape[0] - 1)
    touched = False
    for i in range(rows.shape[0]):
        start, stop = bounds[first, i], bounds[end, i]  # a sample's entries: in a row
        if stop > start:
            touched = True
            scatter_row(acc, i, D, idx, start, stop, X, rows[i], table)
    return touched


@helper
def mark_rows(g, per_job, bounds, idx, m, rows_touched):
    """rows_touched[k] = True for every feature k of block group g that one of the chunk's m
    samples lists (see `add_block_terms`)."""
    first = g * per_job
    last = min(first + per_job, bounds.shape[0] - 1)
    for i in range(m):
        for e in range(bounds[first, i], bounds[last, i]):
            rows_touched[idx[e]] = True


@helper
def add_column_terms(first, end, A, G, dWT):
    """dWT[o] += G[:, o] @ A for the units o of first..end-1, samples in order: columns of
    dW = A.T @ dZ, for the layer taking A (in panels) and giving dZ = G."""
    add_panel_products(dWT, first, end, G.T, A)


@helper
def add_rows(M, acc):
    """acc += M[i], rows i in order: a bias gradient, summed over the samples."""
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            acc[j] += M[i, j]


class Batch(NamedTuple):
    """What the update pass needs to know of the batch a chunk belongs to."""

    index: int  # which batch of the epoch: its learning rate is rule.rates[index]
    weight: float  # its number of samples, or where data has weights their sum (float64)
    last: bool  # whether this chunk ends it: time for the update
    whole: bool  # whether this chunk is all of it (its first chunk and its last)


@helper
def locate(job, layout, n_groups):
    """What job of the update pass does: (BLOCK_JOB, 0, block group g of the first layer's
    input features, of n_groups), (COLUMN_JOB, layer >= 1, group g of its units: see
    `units_of_group`), or (BIAS_JOB, layer, 0)."""
    n_layers = layout.sizes.shape[0] - 1
    if job < n_groups:
        return BLOCK_JOB, 0, job
    c = job - n_groups
    for layer in range(1, n_layers):
        groups = (layout.sizes[layer + 1] + layout.panel - 1) // layout.panel
        if c < groups:
            return COLUMN_JOB, layer, c
        c -= groups
    return BIAS_JOB, c, 0


@helper
def n_jobs(layout, n_groups):
    n_layers = layout.sizes.shape[0] - 1
    groups = 0
    for layer in range(1, n_layers):
        groups += (layout.sizes[layer + 1] + layout.panel - 1) // layout.panel
    return n_groups + groups + n_layers


@helper
def units_of_group(layout, layer, g):
    """Units first..end-1 of a later layer: those of panel g of its forward copy (see
    `copy_ahead`), fewer in the last: one panel a job, so that no cache line of the copy is
    written by two jobs, which two members would pass back and forth."""
    first = g * layout.panel
    return first, min(first + layout.panel, layout.sizes[layer + 1])


@helper
def features_of_group(g, per_job, n_in):
    """Input features first..end-1 of block group g, per_job blocks a group."""
    features = per_job * BLOCK
    return g * features, min((g + 1) * features, n_in)


@helper
def owned(kind, layer, index, layout, itemsize):
    """The flat range of theta (of itemsize bytes an element) a job owns: a block group's rows
    of W1, a group's rows of a later layer's (transposed) weights, or a layer's biases."""
    sizes = layout.sizes
    if kind == BLOCK_JOB:
        per_job = blocks_per_job(sizes[1], itemsize)
        first, end = features_of_group(index, per_job, sizes[0])
        return layout.weights_at[0] + first * sizes[1], layout.weights_at[0] + end * sizes[1]
    if kind == COLUMN_JOB:
        first, end = units_of_group(layout, layer, index)
        at = layout.weights_at[layer]
        return at + first * sizes[layer], at + end * sizes[layer]
    return layout.bias_at[layer], layout.bias_at[layer] + sizes[layer + 1]


@helper
def sum_squares(theta, start, stop):
    """sum(theta[start:stop] ** 2) in float64, in order."""
    w = theta[start:stop]
    total = 0.0
    for j in range(w.shape[0]):
        total += float(w[j]) * float(w[j])
    return total


@helper
def weight_squares(theta, layout, n_groups, squares):
    """squares[job] = the sum of the squared weights the job owns (biases: 0); the L2
    penalty of the weights is alpha / 2 * their sum, summed in job order."""
    for job in range(squares.shape[0]):
        kind, layer, index = locate(job, layout, n_groups)
        start, stop = owned(kind, layer, index, layout, theta.itemsize)
        squares[job] = 0.0 if kind == BIAS_JOB else sum_squares(theta, start, stop)


@helper
def add_job_terms(kind, layer, index, per_job, layout, X, table, chunk, sums):
    """Adds the chunk's terms to the job's gradient sums (per_job: `blocks_per_job`); returns
    whether any was non-zero for certain (a block of the first layer where some sample has a
    non-zero input; every block, where the first layer runs dense)."""
    dZ = layer_rows(chunk.Z, chunk, layout, layer)
    if kind == BLOCK_JOB:
        dW1 = weights(sums, layout, 0)
        if chunk.dense_input:  # dW1[k] += X[:, k] @ dZ1 for the group's features k
            first, end = features_of_group(index, per_job, layout.sizes[0])
            dZ_panels = unit_panels(chunk.panels, chunk.held, layout, layout.sizes.shape[0] - 2)
            add_panel_products(dW1, first, end, chunk.inputs[: chunk.rows.shape[0]].T, dZ_panels)
            return True
        if chunk.indptr.shape[0] > 0:
            return add_csr_block_terms(
                X, index, chunk.runs, chunk.firsts, chunk.idx, chunk.vals, chunk.row, table, dZ, dW1
            )
        return add_block_terms(
            index, per_job, X, chunk.rows, table, chunk.idx, chunk.bounds, dZ, dW1
        )
    if kind == COLUMN_JOB:
        A = unit_panels(chunk.panels, chunk.held, layout, layer - 1)
        first, end = units_of_group(layout, layer, index)
        add_column_terms(first, end, A, dZ, weights(sums, layout, layer))
    else:
        add_rows(dZ, bias(sums, layout, layer))
    return True


@helper
def copy_ahead(layout, net, layer, g):
    """Panel g of the layer's forward copy = the group's rows of the updated weights,
    transposed (the same numbers: the same bits), a row of the panel at a time."""
    W, WT = ahead_weights(net.ahead, layout, layer), weights(net.theta, layout, layer)
    first, end = units_of_group(layout, layer, g)
    panel = W[g]  # (fan_in, layout.panel)
    for j in range(panel.shape[0]):
        row = panel[j]
        for u in range(end - first):
            row[u] = WT[first + u, j]


@helper
def finish_job(
    job, kind, layer, index, layout, net, state, rule, batch, chunk, touched, row_flags, squares
):
    """After the batch's last chunk: the job steps its own parameters by `rule`
    (optimizer.step) and keeps their forward copy (`ahead`: the first layer's where it runs
    dense) and their squares up to date.

    A block group of input features that no sample of the batch touched has zero gradient sums:
    under plain SGD it stays as it is, so its update is skipped; other rules may move it all
    the same (`moves_idle_weights`). Where `steps_touched_rows` (plain SGD or momentum, no L2,
    the first layer sparse) only the rows of W1 that can move are stepped, as row_flags says
    (`step_rows`). A batch of weight 0 moves nothing (its gradient sums are zero, and
    alpha / 0 is no decay)."""
    by_rows = kind == BLOCK_JOB and steps_touched_rows(rule, row_flags)
    if kind == BLOCK_JOB:
        idle = not touched[index]
        touched[index] = False
        if idle and not moves_idle_weights(rule):
            return
    start, stop = owned(kind, layer, index, layout, net.theta.itemsize)
    if batch.weight == 0:
        if rule.solver != GRADIENTS_ONLY:
            state.sums[start:stop] = 0  # for the next batch, as `step` leaves them
        if by_rows:
            first, end = features_of_group(
                index, blocks_per_job(layout.sizes[1], net.theta.itemsize), layout.sizes[0]
            )
            row_flags[TOUCHED, first:end] = False
        return
    lr = rule.rates[batch.index]
    if kind == BIAS_JOB:
        step(net.theta, state.sums, state.first, state.second, start, stop, rule, lr, None)
        return
    decay = net.theta.dtype.type(rule.alpha / batch.weight)
    if by_rows:
        step_rows(layout, net, state, rule, lr, decay, index, row_flags)
        return
    step(net.theta, state.sums, state.first, state.second, start, stop, rule, lr, decay)
    if kind == COLUMN_JOB and rule.solver != GRADIENTS_ONLY:
        if rule.max_norm > 0 and layer < layout.sizes.shape[0] - 2:  # a hidden layer's
            first, end = units_of_group(layout, layer, index)
            cap_rows(weights(net.theta, layout, layer), first, end, rule.max_norm)
        copy_ahead(layout, net, layer, index)
    if kind == BLOCK_JOB and chunk.dense_input and rule.solver != GRADIENTS_ONLY:
        W1, W1_ahead = weights(net.theta, layout, 0), ahead_weights(net.ahead, layout, 0)
        first, end = features_of_group(
            index, blocks_per_job(layout.sizes[1], net.theta.itemsize), layout.sizes[0]
        )
        for k in range(first, end):
            set_panel_row(W1_ahead, k, W1[k])
    if rule.alpha > 0:
        squares[job] = sum_squares(net.theta, start, stop)


@helper
def fuses_the_step(chunk, rule, batch, by_rows):
    """Whether a dense first layer's jobs step W1 as they sum its gradient (`step_dense_group`):
    where the chunk is its whole batch, which moves the weights (not GRADIENTS_ONLY, weight not
    0), and every row is stepped (not `steps_touched_rows`)."""
    return (
        chunk.dense_input and batch.whole and batch.weight > 0
        and rule.solver != GRADIENTS_ONLY and not by_rows
    )  # fmt: skip


@helper
def step_dense_group(g, per_job, layout, net, state, rule, batch, chunk, scratch):
    """A dense first layer's block group g of input features, where the chunk is its whole
    batch: a few features (scratch's rows) at a time, their gradient sums added up in
    `scratch` (this member's own, in its L1 cache), their W1 rows stepped from them
    (`optimizer.step_slices`, which leaves scratch zero) and copied ahead. The sums never go
    out to state.sums and back; they start from zero either way, so the numbers are
    `add_job_terms` and `finish_job`'s."""
    first, end = features_of_group(g, per_job, layout.sizes[0])
    width = layout.sizes[1]
    at = layout.weights_at[0]
    lr = rule.rates[batch.index]
    decay = net.theta.dtype.type(rule.alpha / batch.weight)
    W1, W1_ahead = weights(net.theta, layout, 0), ahead_weights(net.ahead, layout, 0)
    dZ_panels = unit_panels(chunk.panels, chunk.held, layout, layout.sizes.shape[0] - 2)
    XT = chunk.inputs[: chunk.rows.shape[0]].T
    sums = scratch.reshape(scratch.size)
    for k0 in range(first, end, scratch.shape[0]):
        k1 = min(k0 + scratch.shape[0], end)
        add_panel_products(scratch, 0, k1 - k0, XT[k0:k1], dZ_panels)
        start, stop = at + k0 * width, at + k1 * width
        step_slices(
            net.theta[start:stop], sums[: stop - start], state.first[start:stop],
            state.second[start:stop], rule, lr, decay,
        )  # fmt: skip
        for k in range(k0, k1):
            set_panel_row(W1_ahead, k, W1[k])


@helper
def step_rows(layout, net, state, rule, lr, decay, g, row_flags):
    """`step` for the W1 rows of block group g that move. Under plain SGD those the batch
    touched (row_flags[TOUCHED, k], cleared here for the next batch), a run of neighbouring rows
    at a time: an untouched row's gradient is +0. Under momentum such a row still moves while
    its velocity is not zero (row_flags[MOVING, k]: set by the backend for the rows whose
    velocity is not all zero, and here for every row touched), so the group is stepped whole
    where any of its rows moves (stepping a row of zero velocity and gradient changes nothing,
    and one step over the group costs less than many over runs), and skipped where none does."""
    width = layout.sizes[1]
    at = layout.weights_at[0]
    per_job = blocks_per_job(width, net.theta.itemsize)
    first, end = features_of_group(g, per_job, layout.sizes[0])
    touched, moving = row_flags[TOUCHED], row_flags[MOVING]
    if rule.solver == MOMENTUM:
        moves = False
        for k in range(first, end):
            if touched[k]:
                touched[k] = False
                moving[k] = True
            moves |= moving[k]
        if moves:
            start, stop = at + first * width, at + end * width
            step(net.theta, state.sums, state.first, state.second, start, stop, rule, lr, decay)
        return
    k = first
    while k < end:
        if not touched[k]:
            k += 1
            continue
        run = k
        while k < end and touched[k]:
            touched[k] = False
            k += 1
        step(net.theta, state.sums, state.first, state.second, at + run * width, at + k * width,
             rule, lr, decay)  # fmt: skip


@helper
def gradient_pass(
    team, layout, net, X, table, chunk, state, rule, batch, touched, row_flags, squares, scratch
):
    """This member's jobs: each adds the chunk's terms to its own range of the gradient sums
    (state.sums, laid out as theta), and after the batch's last chunk updates that range
    (`finish_job`). touched[g]: whether block group g of input features had a non-zero in the
    batch so far; row_flags[TOUCHED, k] (where `steps_touched_rows`), whether feature k had. Every
    size-th job a member, and neighbouring jobs cost about the same (blocks of the image's busy
    middle, of its empty borders, the groups of a later layer), so members get about the same
    work. A sparse X's lists (every sample's, each member's own) are first sorted into runs by
    block group (`csr.group_runs`), which its first-layer jobs read. A dense first layer's jobs
    step W1 as they sum its gradient where `fuses_the_step` (scratch: this member's rows for
    the sums, see `step_dense_group`)."""
    per_job = blocks_per_job(layout.sizes[1], net.theta.itemsize)
    n_groups = touched.shape[0]  # block_groups of the lists' blocks, per_job a group
    by_rows = steps_touched_rows(rule, row_flags)
    m = chunk.rows.shape[0]
    if not chunk.dense_input and chunk.indptr.shape[0] > 0:  # a sparse X: its lists in runs
        group_runs(chunk.idx, chunk.bounds, m, per_job * BLOCK, chunk.runs, chunk.firsts)
    fused = fuses_the_step(chunk, rule, batch, by_rows)
    for job in my_jobs(team, n_jobs(layout, n_groups)):
        kind, layer, index = locate(job, layout, n_groups)
        if kind == BLOCK_JOB and fused:
            step_dense_group(index, per_job, layout, net, state, rule, batch, chunk, scratch)
            if rule.alpha > 0:
                start, stop = owned(kind, layer, index, layout, net.theta.itemsize)
                squares[job] = sum_squares(net.theta, start, stop)
            continue
        hit = add_job_terms(kind, layer, index, per_job, layout, X, table, chunk, state.sums)
        if kind == BLOCK_JOB:
            touched[index] |= hit
            if hit and by_rows:
                if chunk.indptr.shape[0] > 0:
                    mark_csr_rows(index, chunk.runs, chunk.firsts, chunk.idx, row_flags[TOUCHED])
                else:
                    mark_rows(index, per_job, chunk.bounds, chunk.idx, m, row_flags[TOUCHED])
        if batch.last:
            finish_job(
                job, kind, layer, index, layout, net, state, rule, batch, chunk, touched,
                row_flags, squares,
            )  # fmt: skip
