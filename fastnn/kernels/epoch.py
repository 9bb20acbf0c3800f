"""The compiled entry points: `train_batches`, a whole epoch of mini-batch updates (or the
gradients of one batch), `forward`, a forward pass keeping every layer's activations, and
`augment`, an epoch's augmented images (see `kernels.augment`).

Each is called once per member of a team of threads (see `team`), all on the same buffers,
which the backend allocates (`train_workspace`, `forward_outputs`). `train_batches` is a loop
over batches, and over chunks of at most CHUNK samples within a batch, around the two passes
(`samples.sample_pass`, `update.gradient_pass`), with the team meeting after each: no Python
between batches and none of the reference's per-batch temporaries. The gradients of
`loss_and_grads` come from `train_batches` too (one batch, rule GRADIENTS_ONLY), not from a
third entry, because every entry costs seconds of compiling for every dtype pair.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from fastnn.kernels.augment import augment_rows
from fastnn.kernels.config import DENSE_ROWS, counted_helper, entry, helper
from fastnn.kernels.constraint import cap_first_layer
from fastnn.kernels.dropout import drops
from fastnn.kernels.layout import Layout, line_aligned, set_row
from fastnn.kernels.optimizer import GRADIENTS_ONLY
from fastnn.kernels.samples import (
    Chunk,
    first_layer_forward,
    forward_pass,
    read_inputs_pass,
    sample_pass,
)
from fastnn.kernels.sparse import BLOCK, input_table, rows_in_place
from fastnn.kernels.team import borrowed, clock, meet, next_job
from fastnn.kernels.update import (
    Batch,
    block_groups,
    blocks_per_job,
    gradient_pass,
    n_jobs,
    weight_squares,
)

CHUNK = 256  # samples per pass: a chunk's lists, activations and gradients stay in L2 cache
SAMPLING, WAITING, UPDATING, SETTLING = range(4)  # Workspace.passes' columns
PASS_TIMES = 4


class Net(NamedTuple):
    """The network's numbers in the kernels' layout; a `Layout` (passed beside it: Numba's
    parallel loops take no structure nested in another) tells where each layer's are."""

    theta: np.ndarray  # every parameter, flat, as the update pass owns them
    ahead: np.ndarray  # the weights of the layers after the first, as the forward pass reads them
    slope: np.floating  # of leaky_relu below 0, in the parameters' dtype
    leaky: bool  # leaky_relu, else relu
    output: int  # what the last layer gives: outputs.SOFTMAX, LOGISTIC or IDENTITY
    # Dropout of each hidden layer (see fastnn.core.dropout): a threshold of 0 drops nothing.
    # Entry n_hidden is the inputs' (see fastnn.core.dropout).
    drop_keys: np.ndarray  # (n_hidden + 1,) uint64, the layers' keys in this epoch
    drop_thresholds: np.ndarray  # (n_hidden + 1,) uint64
    drop_scales: np.ndarray  # (n_hidden + 1,) the factor of a kept unit, in the params' dtype


class Data(NamedTuple):
    # (n, n_in) uint8 pixels or floats of the parameters' dtype; for a sparse X, (0, n_in)
    # floats, its rows in indptr, indices and values instead (CSR, see fastnn.core.sparse):
    # always passed, empty for a dense X, so that one compiled kernel takes both.
    X: np.ndarray
    indptr: np.ndarray  # (n + 1,) int64
    indices: np.ndarray  # (nnz,) int32
    values: np.ndarray  # (nnz,) the parameters' dtype
    # What the outputs are trained towards, by Net.output: (n,) int64 labels for SOFTMAX, else
    # (n, n_out) targets in the parameters' dtype. The other one is empty, so that one
    # compiled kernel takes every kind.
    y: np.ndarray
    targets: np.ndarray
    # (n,) float64 sample weights, or (0,) for none: always passed, and always float64, so that
    # one compiled kernel takes weighted and unweighted data in every parameters' dtype.
    weights: np.ndarray
    order: np.ndarray  # (n_samples,) int64 rows of X, taken in batches in this order
    batch_size: int
    dense_input: bool  # the first layer runs dense (see samples.Chunk)


class State(NamedTuple):
    """What `train_batches` updates besides theta, laid out as theta."""

    sums: np.ndarray  # gradient sums, zero beforehand; after GRADIENTS_ONLY, the gradients
    first: np.ndarray  # velocities or Adam's m (empty if the rule keeps none)
    second: np.ndarray  # running means of g * g (empty if the rule keeps none)


class Workspace(NamedTuple):
    """What `train_batches`'s team shares besides its arguments: a chunk's per-sample data, twice (a
    chunk's and the next one's: see `train_batches`), and the update jobs' flags and sums. (The
    chunk's lists of non-zero features are each member's own: see `sample_pass`.)"""

    Z: np.ndarray  # (2, ...) every layer's Z, then dZ, of the chunk's samples
    A: np.ndarray  # (2, ...) every hidden layer's A
    inputs: np.ndarray  # (2, chunk, n_in) their X if the first layer runs dense, else (2, 0, n_in)
    panels: np.ndarray  # (2, ...) their activations in panels, for the update pass's products
    losses: np.ndarray  # (2, chunk)
    hits: np.ndarray  # (2, chunk) int64
    touched: np.ndarray  # (n_groups,) bool, all False: see update.block_groups
    # (2, n_in) bool where X is a sparse matrix and the first layer runs sparse, else (2, 0):
    # which rows of W1 the batch touched (all False) and which may move untouched (see
    # update.step_rows). Not for a dense X: its batches touch most of its few features' rows
    # (MNIST's), the groups of rows no sample touched are skipped whole anyway, and marking
    # rows cost mnist-h128's plain SGD epoch 17%.
    row_flags: np.ndarray
    squares: np.ndarray  # (n_jobs,) float64, see weight_squares
    # (members, PASS_TIMES) int64: each member's ticks of the time stamp counter (team.clock)
    # in the sample passes, waiting after them, in the update passes, waiting after those.
    passes: np.ndarray


def train_workspace(layout: Layout, data: Data, dtype: np.dtype, members: int) -> Workspace:
    """Fresh buffers for one call of `train_batches` by a team of `members`; chunks of
    min(CHUNK, batch_size, n) samples."""
    chunk = min(CHUNK, data.batch_size, len(data.order))
    n_layers = len(layout.sizes) - 1
    # Python's functions, not the compiled ones: compiling them cost every process 0.23 s.
    per_job = blocks_per_job.py_func(int(layout.sizes[1]), np.dtype(dtype).itemsize)
    n_groups = block_groups.py_func(n_blocks.py_func(layout), per_job)
    by_rows = len(data.indptr) > 0 and not data.dense_input
    return Workspace(
        line_aligned((2, chunk * int(layout.units_at[n_layers])), dtype),
        line_aligned((2, chunk * int(layout.units_at[n_layers - 1])), dtype),
        line_aligned((2, chunk if data.dense_input else 0, int(layout.sizes[0])), dtype),
        line_aligned((2, chunk * int(layout.panels_at[n_layers])), dtype),
        np.empty((2, chunk), dtype),
        np.empty((2, chunk), np.int64),
        np.zeros(n_groups, np.bool_),
        np.zeros((2, int(layout.sizes[0]) if by_rows else 0), np.bool_),
        np.zeros(n_jobs.py_func(layout, n_groups)),
        np.zeros((members, PASS_TIMES), np.int64),
    )


@helper
def n_blocks(layout):
    """The blocks of BLOCK input features the lists of non-zero features are kept by."""
    return (layout.sizes[0] + BLOCK - 1) // BLOCK


@counted_helper
def feature_lists(layout, chunk, indptr, like):
    """Empty lists of the non-zero features of chunk samples (see `sparse.scan_row`), of a
    dense X or, where indptr is not empty, of a sparse one (see `csr`): idx (chunk * slots,)
    (slots: n_in + 1, or the most non-zeros of a row of the sparse X); bounds
    (n_blocks + 1, chunk), or for a sparse X (2, chunk); and for a sparse X only (else empty),
    the values beside idx, the row of inputs the first layer's loops read them from (1, n_in),
    and the runs of csr.group_runs; the values in the dtype of `like`."""
    n_in = layout.sizes[0]
    sparse = indptr.shape[0] > 0
    slots = n_in + 1
    if sparse:
        slots = 1
        for r in range(indptr.shape[0] - 1):
            slots = max(slots, indptr[r + 1] - indptr[r])
    listed = chunk * slots if sparse else 0
    n_groups = block_groups(n_blocks(layout), blocks_per_job(layout.sizes[1], like.itemsize))
    return (
        np.empty(chunk * slots, np.int32),
        np.empty(listed, like.dtype),
        np.empty((2 if sparse else n_blocks(layout) + 1, chunk), np.int32),
        np.zeros((1, n_in if sparse else 0), like.dtype),
        np.empty((3, listed), np.int32),
        np.empty(n_groups + 1 if sparse else 0, np.int32),
    )


@helper
def batch_weight(data, first, end):
    """The batch of rows order[first:end]: its weight sum (float64, in order), or its size
    where data has no weights."""
    if data.weights.shape[0] == 0:
        return float(end - first)
    total = 0.0
    for r in data.order[first:end]:
        total += data.weights[r]
    return total


@helper
def timed_meet(team, passed, ticks):
    """`meet` inside the sample pass, its time counted as waiting, not as the pass's."""
    start = clock()
    ok = meet(team, passed)
    waited = clock() - start
    ticks[WAITING] += waited
    ticks[SAMPLING] -= waited
    return ok


@entry
def train_batches(team, layout, net, data, rule, state, work):
    """Takes X[order] in batches of batch_size (the last one possibly smaller) and after each
    steps theta (and `ahead`, and state) by `rule` (see `optimizer`), in place; this member's
    share of it. Returns (to member 0; the others get zeros) the sum of the per-sample losses
    (plus, with alpha, each batch's L2 penalty) and the number of samples predicted right (see
    outputs.output_gradient), each batch measured before its update. Returns early, with
    partial sums, if a member failed. With sample weights (data.weights) the sum is of each
    batch's weighted objective, (penalty + sum of w_i * loss_i) / (weight sum), times its
    rows (scikit-learn's way to the epoch's loss); a batch weighing 0 adds 0 and moves
    nothing.

    The team meets before the update pass reads what the sample pass wrote, and, after a
    batch's last chunk, before the next batch's samples go forward through the updated
    parameters (and after max-norm's capping). Where the first layer runs dense, it also meets
    after the chunk's rows of X are read and after the first layer's products, which the
    members share by panels of W1 (`samples.first_layer_forward`) before the sample pass.
    Within a batch, chunks take turns with the two halves of `work`, so that a member may take
    the next chunk's samples forward while another is still reading this one's: the meeting
    before the next update pass is soon enough. (A full batch of 60,000 samples: 235 meetings a
    step instead of 470.) Each member records where its time went in work.passes."""
    team, layout, net, data, rule, state, work = borrowed(
        (team, layout, net, data, rule, state, work)
    )
    n = data.order.shape[0]
    n_layers = layout.sizes.shape[0] - 1
    dtype = net.theta.dtype
    chunk = work.losses.shape[1]
    n_groups = work.touched.shape[0]  # the first layer's jobs of the update pass
    lead = team.member == 0  # sums the losses, in sample order, and the penalty
    if lead and rule.alpha > 0:
        weight_squares(net.theta, layout, n_groups, work.squares)
    inputs = n_layers - 1  # the inputs' entry in net's dropout arrays
    factor = net.drop_scales[inputs] if drops(net, inputs) else dtype.type(1)
    table = input_table(data.X, net.theta, factor)  # every member its own copy
    lists = feature_lists(layout, chunk, data.indptr, net.theta)  # every member its own
    idx, vals, bounds, row, runs, firsts = lists
    # this member's gradient sums of a dense first layer's few rows (see update.step_dense_group)
    scratch = np.zeros((DENSE_ROWS if data.dense_input else 0, layout.sizes[1]), dtype)
    loss_sum = 0.0
    n_hits = 0
    passed = 0  # barriers
    ticks = np.zeros(PASS_TIMES, np.int64)  # see Workspace.passes
    weighted = data.weights.shape[0] > 0
    for batch, first in enumerate(range(0, n, data.batch_size)):
        end = min(first + data.batch_size, n)
        weight = batch_weight(data, first, end)
        batch_sum = 0.0  # weighted: the penalty and the weighted losses of this batch
        if lead and rule.alpha > 0:
            penalty = 0.5 * rule.alpha * work.squares.sum()  # the penalty before the update
            if weighted:
                batch_sum = penalty
            else:
                loss_sum += penalty
        for start in range(first, end, chunk):
            m = min(chunk, end - start)
            rows = data.order[start : start + m]
            half = (start - first) // chunk % 2
            part = Chunk(
                rows, idx, bounds, work.Z[half], work.A[half], chunk, 0,
                data.dense_input, work.inputs[half], work.panels[half],
                data.indptr, data.indices, data.values, vals, row, runs, firsts,
            )  # fmt: skip
            losses, hits = work.losses[half], work.hits[half]
            t0 = clock()
            if data.dense_input:  # the first layer's products by panels, before the samples
                read_inputs_pass(team, layout, net, data.X, table, part)
                if not timed_meet(team, passed, ticks):
                    return loss_sum, n_hits
                passed += 1
                first_layer_forward(team, layout, net, part)
                if not timed_meet(team, passed, ticks):
                    return loss_sum, n_hits
                passed += 1
            sample_pass(
                team, layout, net, data, table, part, weight if weight > 0 else 1.0,
                losses, hits,
            )  # fmt: skip
            t1 = clock()
            if not meet(team, passed):
                return loss_sum, n_hits
            passed += 1
            t2 = clock()
            done = Batch(batch, weight, start + m == end, start == first and start + m == end)
            gradient_pass(
                team,
                layout,
                net,
                data.X,
                table,
                part,
                state,
                rule,
                done,
                work.touched,
                work.row_flags,
                work.squares,
                scratch,
            )
            if lead:
                for i in range(m):  # in order: the same sum whatever the threads
                    if weighted:
                        batch_sum += data.weights[rows[i]] * losses[i]
                    else:
                        loss_sum += losses[i]
                    n_hits += hits[i]
                if weighted and done.last and weight > 0:
                    loss_sum += batch_sum * (end - first) / weight
            t3 = clock()
            ticks[SAMPLING] += t1 - t0
            ticks[WAITING] += t2 - t1
            ticks[UPDATING] += t3 - t2
            if not done.last:
                continue
            if not meet(team, passed):  # the parameters are updated
                return loss_sum, n_hits
            passed += 1
            t4 = clock()
            ticks[SETTLING] += t4 - t3
            if rule.max_norm > 0 and rule.solver != GRADIENTS_ONLY and weight > 0:
                cap_first_layer(team, net, layout, rule.max_norm, data.dense_input)
                t5 = clock()
                if not meet(team, passed):
                    return loss_sum, n_hits
                passed += 1
                if lead and rule.alpha > 0:  # the penalty of the capped weights
                    weight_squares(net.theta, layout, n_groups, work.squares)
                ticks[UPDATING] += t5 - t4
                ticks[SETTLING] += clock() - t5
    set_row(work.passes, team.member, ticks)
    return loss_sum, n_hits


class Activations(NamedTuple):
    """What `forward` gives, for n rows: every layer's Z and every hidden layer's A, each flat
    as `samples.layer_rows` reads them (or both empty, when only P is wanted), and P (n, n_out)."""

    Z: np.ndarray
    A: np.ndarray
    P: np.ndarray


def forward_outputs(layout: Layout, n: int, dtype: np.dtype) -> Activations:
    n_layers = len(layout.sizes) - 1
    return Activations(
        line_aligned(n * int(layout.units_at[n_layers]), dtype),
        line_aligned(n * int(layout.units_at[n_layers - 1]), dtype),
        line_aligned((n, int(layout.sizes[n_layers])), dtype),
    )


@entry
def forward(team, layout, net, X, indptr, indices, values, rows, dense_input, out):
    """Every row of X (or, where indptr is not empty, of the sparse X of indptr, indices and
    values: see `Data`) through the network into `out`, a chunk of CHUNK rows a job, to
    whichever member is free (`team.next_job`), the first layer dense or not (see
    samples.Chunk). rows: 0..n-1, read-only, as train_batches's chunks take theirs from
    data.order, so that the passes both use compile once. Where `out` has no room for the
    activations, each member keeps a chunk's in buffers of its own."""
    team, layout, net, X, indptr, indices, values, rows, out = borrowed(
        (team, layout, net, X, indptr, indices, values, rows, out)
    )
    n = rows.shape[0]
    n_layers = layout.sizes.shape[0] - 1
    dtype = net.theta.dtype
    chunk = max(min(CHUNK, n), 1)
    lists = feature_lists(layout, chunk, indptr, net.theta)  # this member's own
    idx, vals, bounds, row, runs, firsts = lists
    inputs = np.empty((chunk if dense_input else 0, X.shape[1]), dtype)  # and these
    keep = out.Z.shape[0] > 0
    held = n if keep else chunk
    Z = out.Z if keep else np.empty(chunk * layout.units_at[n_layers], dtype)
    A = out.A if keep else np.empty(chunk * layout.units_at[n_layers - 1], dtype)
    no_panels = np.empty(0, dtype)  # a forward pass alone keeps none
    table = input_table(X, net.theta, dtype.type(1))
    direct = rows_in_place(X, net.theta)  # X where its rows are read as they are, else empty
    jobs = (n + chunk - 1) // chunk
    job = next_job(team)
    while job < jobs:
        start = job * chunk
        m = min(chunk, n - start)
        at = start if keep else 0
        part = Chunk(
            rows[start : start + m], idx, bounds, Z, A, held, at, dense_input, inputs, no_panels,
            indptr, indices, values, vals, row, runs, firsts,
        )  # fmt: skip
        forward_pass(layout, net, X, table, part, out.P[start : start + m], direct)
        job = next_job(team)


@entry
def augment(team, X, warp, out):
    """out[r] = row r of X (n, height * width) transformed by `warp`, for this member's rows."""
    augment_rows(*borrowed((team, X, warp, out)))
