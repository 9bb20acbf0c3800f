"""python -m fastnn.bench.profile: where a Numba epoch's time goes, stage by stage.

A serial copy of one training epoch's work (`epoch.train_batches` without the team's two passes and
the update), for one hidden layer or more (`--hidden 256 128`), calls the same kernel helpers
over the training set in chunks, and is timed with its stages switched on one after another:
each stage's time is what it added to the ones before. One thread, so the stages add up to the
work the two passes share out among the team; the real single-thread epoch is timed beside it.

The first layer runs on the path numba takes on the data, or the one `--first-layer` forces:
sparse, its loops touching W1 and dW1 once for each non-zero input (listed first), so per
non-zero input figures show their cost; or dense, X's rows read in the parameters' dtype and
then products over every input (`dense.add_panel_products`), figures per input. `--standardise`
(MNIST's pixels standardised per feature, as the bench's mnist-std workloads) and `--dataset
tabular` (the bench's synthetic set) give dense data, which numba takes dense.

Then the real epoch on one thread and on a team of `--threads`: where each member's time goes
(its sample passes, its update passes, and waiting for the others after each), from the time
stamp counter ticks each member counts inside the compiled call (`NumbaBackend.last_passes`),
scaled to the epoch's wall time. On two threads that shows what one thread's split does not:
how much a member's share of the work costs more than half of one thread's, and how long the
members wait for each other.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
from numba import njit
from numba.typed import List

from fastnn.backends.numba_backend import NumbaBackend
from fastnn.backends.numba_packing import FIRST_LAYER_PATHS, dense_input
from fastnn.backends.numba_team import team_size
from fastnn.bench.data import TABULAR, load, standardise
from fastnn.bench.timing import median_seconds
from fastnn.bench.workloads import N_CLASSES
from fastnn.core.model import LEAKY_SLOPE, check_dtype, init_params
from fastnn.data import DataError
from fastnn.kernels.config import FROM_PYTHON, counted_helper
from fastnn.kernels.dense import add_panel_products
from fastnn.kernels.epoch import CHUNK
from fastnn.kernels.forward import activate_row, dense_rows, hidden_row
from fastnn.kernels.layout import (
    CACHE_LINE,
    first_on_line,
    line_aligned_copy,
    panel_copy,
    set_panel_row,
    set_row,
)
from fastnn.kernels.outputs import softmax_row
from fastnn.kernels.samples import RUN, hidden_grad_rows
from fastnn.kernels.sparse import BLOCK, input_table, prefetch_row, read_row, scan_row
from fastnn.kernels.update import (
    add_block_terms,
    add_column_terms,
    add_rows,
    block_groups,
    blocks_per_job,
    features_of_group,
)
from fastnn.tools import add_version
from fastnn.train.options import positive_int

STAGES = (
    "list non-zero pixels (scan_row, prefetch)",
    "Z1 = X W1 + b1 over non-zeros (hidden_row)",
    "A, the later layers' Z, softmax, loss (activate, dense_rows, softmax)",
    "dZ of every layer down to dZ1, A (dense: dZ1) in panels (hidden_grad_rows, set_panel_row)",
    "dW1 += X.T dZ1 over non-zeros (add_block_terms)",
    "dW and db of the later layers, db1 (add_column_terms, add_rows)",
)
# The same stages where the first layer runs dense: products over every input.
DENSE_STAGES = (
    "read X's rows in the params' dtype (read_row)",
    "Z1 = X W1 + b1 over every input (add_panel_products)",
    *STAGES[2:4],
    "dW1 += X.T dZ1 over every input (add_panel_products)",
    STAGES[5],
)


@counted_helper
def _zeros_on_line(rows, cols, dtype):
    """`layout.line_aligned` in compiled code (Numba's own arrays start on 32 bytes)."""
    buf = np.zeros(rows * cols + CACHE_LINE, dtype)
    start = first_on_line(buf)
    return buf[start : start + rows * cols].reshape(rows, cols)


@counted_helper
def _panels_on_line(rows, width, panel, dtype):
    """Zeros for a (rows, width) matrix in panels (see layout.panels), starting a cache line."""
    n_panels = (width + panel - 1) // panel
    return _zeros_on_line(n_panels, rows * panel, dtype).reshape(n_panels, rows, panel)


@njit(**FROM_PYTHON)
def _epoch_stages(X, y, order, coefs, ahead, intercepts, chunk, stages, dense):
    """The epoch's per-sample and per-chunk kernels, stages 1..`stages` of STAGES (the first
    layer sparse) or DENSE_STAGES (dense), serially, for any depth (coefs, intercepts: typed
    lists, one array a layer; ahead: coefs in panels, as the forward's products read them).
    Returns the number of inputs the first layer went over (the
    non-zero ones where sparse) and a checksum that keeps the work alive."""
    n_layers = len(coefs)
    W1 = coefs[0]
    n_in = W1.shape[0]
    dtype = W1.dtype
    idx = np.empty(chunk * (n_in + 1), np.int32)
    bounds = np.empty(((n_in + BLOCK - 1) // BLOCK + 1, chunk), np.int32)
    Z = List()  # Z[l]: (chunk, fan_out) the layer's Z, then its dZ
    A = List()  # A[l]: (chunk, fan_out) a hidden layer's activations
    WT = List()  # WT[l]: coefs[l] transposed (W1's is not used)
    dWT = List()  # dWT[l]: the gradient sums of coefs[l] transposed (dW1's is not used)
    db = List()
    for layer in range(n_layers):
        fan_in, fan_out = coefs[layer].shape
        Z.append(_zeros_on_line(chunk, fan_out, dtype))
        A.append(_zeros_on_line(chunk, fan_out, dtype))
        WT.append(_zeros_on_line(fan_out, fan_in, dtype))
        for unit in range(fan_out):
            set_row(WT[layer], unit, coefs[layer][:, unit])
        dWT.append(_zeros_on_line(fan_out, fan_in, dtype))
        db.append(np.zeros(fan_out, dtype))
    panel = ahead[0].shape[2]
    A_panels = List()  # A_panels[l]: a hidden layer's A in panels, for the weight gradients
    for layer in range(n_layers - 1):
        A_panels.append(_panels_on_line(chunk, coefs[layer].shape[1], panel, dtype))
    dZ1_panels = _panels_on_line(chunk if dense else 0, W1.shape[1], panel, dtype)
    dW1 = _zeros_on_line(W1.shape[0], W1.shape[1], dtype)
    inputs = _zeros_on_line(chunk if dense else 0, n_in, dtype)  # X's rows, where dense
    table = input_table(X, W1, dtype.type(1))
    slope = dtype.type(LEAKY_SLOPE)
    visited = 0
    checksum = 0.0
    for start in range(0, order.shape[0], chunk):
        rows = order[start : start + chunk]
        m = rows.shape[0]
        for lo in range(0, m if dense else 0, RUN):  # a run at a time, as forward_samples
            hi = min(lo + RUN, m)
            for i in range(lo, hi):
                read_row(X, rows[i], table, inputs[i])
            visited += (hi - lo) * n_in
            if stages >= 2:
                for i in range(lo, hi):
                    set_row(Z[0], i, intercepts[0])
                add_panel_products(Z[0], lo, hi, inputs, ahead[0])
        for i in range(0 if dense else m):
            r = rows[i]
            if i + 1 < m:
                prefetch_row(X, rows[i + 1])
            scan_row(X, r, idx, i, bounds)
            first, end = bounds[0, i], bounds[bounds.shape[0] - 1, i]
            visited += end - first
            if stages >= 2:
                hidden_row(W1, intercepts[0], X, r, table, idx, first, end, Z[0], i)
        # The dense layers a run of RUN samples at a time, as samples.sample_pass takes them.
        for lo in range(0, m, RUN):
            hi = min(lo + RUN, m)
            if stages >= 3:
                for layer in range(1, n_layers):
                    for i in range(lo, hi):
                        activate_row(Z[layer - 1][i], A[layer - 1][i], slope, False)
                    dense_rows(A[layer - 1], lo, hi, ahead[layer], intercepts[layer], Z[layer])
                logits = Z[n_layers - 1]
                for i in range(lo, hi):
                    log_sum, top, _ = softmax_row(logits[i], logits[i])
                    checksum += log_sum + top
            if stages >= 4:
                for i in range(lo, hi):
                    Z[n_layers - 1][i, y[rows[i]]] -= 1
                for layer in range(n_layers - 1, 0, -1):
                    G, below = Z[layer], Z[layer - 1]
                    hidden_grad_rows(G, lo, hi, WT[layer], A[layer - 1], slope, False, below)
                for i in range(lo, hi):  # as samples.keep_panels
                    for layer in range(n_layers - 1):
                        set_panel_row(A_panels[layer], i, A[layer][i])
                    if dense:
                        set_panel_row(dZ1_panels, i, Z[0][i])
        if stages >= 5:
            per_job = blocks_per_job(W1.shape[1], W1.itemsize)
            for g in range(block_groups(bounds.shape[0] - 1, per_job)):
                if dense:
                    first, end = features_of_group(g, per_job, n_in)
                    add_panel_products(dW1, first, end, inputs[:m].T, dZ1_panels)
                else:
                    add_block_terms(g, per_job, X, rows, table, idx, bounds, Z[0][:m], dW1)
        if stages >= 6:
            add_rows(Z[0][:m], db[0])
            for layer in range(1, n_layers):
                fan_out = coefs[layer].shape[1]
                add_column_terms(0, fan_out, A_panels[layer - 1], Z[layer][:m], dWT[layer])
                add_rows(Z[layer][:m], db[layer])
        checksum += Z[0][0, 0] + dW1[n_in // 2, 0] + dWT[n_layers - 1][0, 0]
    return visited, checksum


def profile(
    X: np.ndarray,
    y: np.ndarray,
    hidden: int | tuple[int, ...],
    dtype: str,
    batch_size: int,
    repeats: int,
    threads: int = 1,
    first_layer: str = "auto",
) -> dict:
    """Seconds each stage adds to a single-thread epoch (medians), the first layer's path
    (`first_layer` forced, or "auto": the one numba takes on X) and the inputs it went over,
    and the real epoch (`NumbaBackend.train_epoch`, on the same path) on one thread and on
    `threads`, with where each member's time went (see `team_epoch`)."""
    backend = NumbaBackend()
    with backend.first_layer(first_layer):
        path = "dense" if dense_input(X) else "sparse"
    X = np.ascontiguousarray(X)
    y = np.ascontiguousarray(y, dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(X))
    params = init_params(X.shape[1], hidden, N_CLASSES, "he", 0, dtype)
    chunk = min(CHUNK, batch_size, len(X))
    coefs = List([line_aligned_copy(W) for W in params.coefs])  # as the backend's theta
    ahead = List([panel_copy(W) for W in params.coefs])  # as the backend's ahead
    intercepts = List([line_aligned_copy(b) for b in params.intercepts])
    cumulative = []
    visited = 0
    for stages in range(1, len(STAGES) + 1):

        def run(stages: int = stages) -> None:
            nonlocal visited
            visited, _ = _epoch_stages(
                X, y, order, coefs, ahead, intercepts, chunk, stages, path == "dense"
            )

        cumulative.append(median_seconds(run, repeats))  # serial code: one thread

    def epoch() -> None:
        with backend.first_layer(path):
            backend.train_epoch(params.copy(), X, y, order, batch_size=batch_size, lr=0.01)

    teams = [team_epoch(backend, epoch, n, repeats) for n in sorted({1, threads})]
    added = [cumulative[0]] + [b - a for a, b in zip(cumulative, cumulative[1:], strict=False)]
    return dict(
        path=path, stages=DENSE_STAGES if path == "dense" else STAGES, stage_s=added,
        inputs=visited, nonzeros=int(np.count_nonzero(X)), epoch_s=teams[0]["epoch_s"],
        rows=len(X), teams=teams,
    )  # fmt: skip


PASSES = ("sample passes", "waiting", "update passes", "waiting")  # kernels.epoch's PASS_TIMES


def team_epoch(backend: NumbaBackend, epoch, threads: int, repeats: int) -> dict:
    """The real epoch on a team of `threads`: its median seconds, and per member the median
    seconds of each of PASSES (None where the CPU has no time stamp counter), each run's ticks
    scaled to its wall time."""
    with backend.threads(threads):
        epoch()  # compiles, and warms the caches
        times, shares = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            epoch()
            seconds = time.perf_counter() - start
            ticks = np.asarray(backend.last_passes, dtype=float)
            totals = ticks.sum(axis=1, keepdims=True)
            times.append(seconds)
            if np.all(totals > 0):
                shares.append(ticks / totals * seconds)
    passes = np.median(shares, axis=0) if shares else None
    return dict(threads=threads, epoch_s=statistics.median(times), passes_s=passes)


def render(result: dict, title: str) -> str:
    total = sum(result["stage_s"])
    per_input = 1e9 / max(result["inputs"], 1)
    dense = result["path"] == "dense"
    went_over = "every input" if dense else "the non-zero inputs only"
    lines = [
        title,
        "",
        f"| stage | s per epoch | share | ns per {'input' if dense else 'non-zero input'} |",
        "|:---|---:|---:|---:|",
    ]
    for name, s in zip(result["stages"], result["stage_s"], strict=True):
        share = 100 * s / total if total > 0 else 0.0
        lines.append(f"| {name} | {s:.4f} | {share:.0f}% | {s * per_input:.2f} |")
    rows = max(result["rows"], 1)
    lines += [
        f"| sum of the stages | {total:.4f} | 100% | {total * per_input:.2f} |",
        "",
        f"{result['rows']:,} rows, {result['nonzeros']:,} non-zero inputs "
        f"({result['nonzeros'] / rows:.0f} a row, {result['inputs'] / rows:.0f} of them "
        f"visited: the first layer ran {result['path']}, over {went_over}). The real epoch on "
        f"one thread (train_epoch, with the update, on the same path): "
        f"{result['epoch_s']:.4f} s. Each stage's time is what it added to the stages above it "
        "(medians); small negative values are noise.",
        "",
        "The real epoch (train_epoch) and where each thread's time goes in it, seconds (ticks "
        "of the time stamp counter counted in the compiled call, scaled to the epoch's time; "
        "medians):",
        "",
        "| threads | epoch s | member | " + " | ".join(PASSES) + " |",
        "|---:|---:|---:|" + "---:|" * len(PASSES),
    ]
    for team in result["teams"]:
        head = f"| {team['threads']} | {team['epoch_s']:.4f} |"
        if team["passes_s"] is None:
            lines.append(head + " - | " + " | ".join("not measured" for _ in PASSES) + " |")
            continue
        for member, row in enumerate(team["passes_s"]):
            lines.append(head + f" {member} | " + " | ".join(f"{s:.4f}" for s in row) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fastnn.bench.profile",
        description="Time the stages of a single-thread Numba training epoch, and where "
        "each thread's time goes in a real epoch on one thread and on --threads.",
    )
    add_version(parser)
    parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion-mnist", TABULAR),
                        help=f"{TABULAR}: the bench's synthetic dense set")  # fmt: skip
    parser.add_argument("--standardise", action="store_true",
                        help="the images' pixels standardised per feature, (X/255 - mean) / std, "
                        "as the bench's mnist-std workloads: dense inputs")  # fmt: skip
    parser.add_argument("--first-layer", choices=FIRST_LAYER_PATHS, default="auto",
                        help="the first layer's path: over each sample's non-zero inputs "
                        "(sparse), over all of them (dense), or as numba chooses by the "
                        "data's density (auto, the default)")  # fmt: skip
    parser.add_argument("--hidden", type=positive_int, nargs="+", default=[128],
                        help="the hidden layers' widths, e.g. 256 128 (default: 128)")  # fmt: skip
    parser.add_argument("--dtype", default="float32", help="float32 or float64")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--threads", type=positive_int, default=team_size(),
                        help="threads of the second table (default: all cores)")  # fmt: skip
    parser.add_argument("--rows", type=positive_int, help="use only the first N training rows")
    parser.add_argument("--data", help="folder with mnist/ and fashion-mnist/")
    return parser.parse_args(argv)


def profiled_inputs(X: np.ndarray, standardised: bool, dtype: str) -> np.ndarray:
    """X as the bench's workloads give it to numba: images' uint8 pixels as loaded (the kernels
    scale them as they read them) or standardised in `dtype`; float features in `dtype`."""
    if standardised:
        return standardise(X, dtype)
    return X if X.dtype == np.uint8 else X.astype(dtype, copy=False)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args.dtype = check_dtype(args.dtype)
        if args.standardise and args.dataset == TABULAR:
            raise ValueError(f"--standardise is for the image data sets; {TABULAR}'s features "
                             "are floats already: leave it out")  # fmt: skip
        X, y = load(args.dataset, args.data)
    except (ValueError, DataError) as exc:
        print(f"fastnn.bench.profile: error: {exc}", file=sys.stderr)
        return 1
    X, y = X[: args.rows], y[: args.rows]
    X = profiled_inputs(X, args.standardise, args.dtype)
    result = profile(X, y, tuple(args.hidden), args.dtype, args.batch_size, args.repeats,
                     args.threads, args.first_layer)  # fmt: skip
    chosen = "chosen by the data" if args.first_layer == "auto" else "forced"
    title = (
        f"{args.dataset}{' standardised' if args.standardise else ''}, hidden "
        f"{'-'.join(map(str, args.hidden))}, batch {args.batch_size}, {args.dtype}, first layer "
        f"{result['path']} ({chosen}), one thread, medians of {args.repeats}"
    )
    print(render(result, title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
