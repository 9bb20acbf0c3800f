"""Where a numba epoch's time goes, layer by layer: each layer's products timed on their own.

A layer from fan_in inputs to fan_out units does three products a batch (see FLOP_FORMULA):
forward Z = A W, dA = dZ W.T passed down to the layer below (none in the first layer), and the
weight gradients dW = A.T dZ. Each is timed here alone, over one epoch's batches of the
workload, in the epoch's shapes (chunks of min(CHUNK, batch) samples, runs of RUN samples, the
update jobs' groups of a panel's units or of `blocks_per_job` blocks of features) and with the
kernels the epoch runs it with: `forward.dense_rows`, `samples.hidden_grad_rows` and
`update.add_column_terms`, all `dense`'s products (M in panels where the epoch keeps it so);
the first layer by the path numba takes on the workload's data (`NumbaBackend.first_layer`):
dense, its rows of X read in the parameters' dtype (`sparse.read_row`), then
`dense.add_panel_products`; sparse, each sample's non-zero
features listed (`sparse.scan_row`), then `forward.hidden_row` and `update.add_block_terms`.
The first layer's reading of its inputs is timed alone too, and each of its products is what
it adds to that reading.

One thread, the median of the repeats after a warm-up run (which compiles). A layer's share of
the epoch is its one-thread seconds over the epoch's thread-seconds (numba's median epoch times
its threads): what the layer would take of a perfectly shared-out epoch. What is left is the
rest: activations, softmax and loss, biases, the update, the sparse first layer's second
listing of the features, waiting at the barriers, and whatever the products cost more inside
the epoch, where they share the caches. The operands are random numbers, except X: a dense
product's time does not depend on the values (none are skipped, none are subnormal), while
the sparse first layer reads the workload's own rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from fastnn.bench.timing import median_seconds
from fastnn.bench.workloads import Prepared
from fastnn.core.model import LEAKY_SLOPE
from fastnn.kernels.config import FROM_PYTHON
from fastnn.kernels.dense import add_panel_products
from fastnn.kernels.epoch import CHUNK
from fastnn.kernels.forward import dense_rows, hidden_row
from fastnn.kernels.layout import line_aligned, line_aligned_copy, panel_copy, set_row
from fastnn.kernels.samples import RUN, hidden_grad_rows
from fastnn.kernels.sparse import BLOCK, input_table, prefetch_row, read_row, scan_row
from fastnn.kernels.update import (
    add_block_terms,
    add_column_terms,
    block_groups,
    blocks_per_job,
    features_of_group,
)

INPUTS, FORWARD, DA, DW = range(4)
PARTS = ("inputs", "forward", "dA", "dW")


class FirstLayer(NamedTuple):
    """The first layer's operands, as `first_layer_pass` takes them."""

    X: np.ndarray  # (n, n_in) as numba takes it: uint8 pixels or floats
    order: np.ndarray  # the epoch's sample order
    batch: int
    chunk: int
    dense: bool  # the path: products over every input, or over the non-zero ones
    W1: np.ndarray  # (n_in, fan_out)
    W1_panels: np.ndarray  # W1 in panels, as a dense forward reads it (see layout.panels)
    b1: np.ndarray
    Z: np.ndarray  # (chunk, fan_out): Z1, written by FORWARD
    dZ_panels: np.ndarray  # (chunk, fan_out) in panels: dZ1 as a dense DW reads it
    inputs: np.ndarray  # (chunk, n_in): the chunk's rows of X in W1's dtype, where dense
    idx: np.ndarray  # the chunk's lists of non-zero features, where sparse (see kernels.sparse)
    bounds: np.ndarray
    dW1: np.ndarray  # (n_in, fan_out): DW adds to it


class LaterLayer(NamedTuple):
    """A later layer's operands, as `later_layer_pass` takes them."""

    n: int  # samples in the epoch
    batch: int
    chunk: int
    W: np.ndarray  # (fan_in, fan_out) in panels, as the forward pass reads it
    b: np.ndarray
    WT: np.ndarray  # W transposed, as the backward pass reads it
    A: np.ndarray  # (chunk, fan_in): the activations below
    A_panels: np.ndarray  # the same in panels, as DW reads them
    G: np.ndarray  # (chunk, fan_out): the layer's dZ
    D: np.ndarray  # (chunk, fan_in): the dZ that DA passes down
    Z: np.ndarray  # (chunk, fan_out): FORWARD writes it
    dWT: np.ndarray  # (fan_out, fan_in): DW adds to it
    slope: np.floating


@njit(**FROM_PYTHON)
def first_layer_pass(part, f):
    """The first layer's reading of its inputs over an epoch's chunks, and with it `part`:
    FORWARD, f.Z = X W1 + b1 for each chunk's rows; DW, f.dW1 += X.T f.Z over every chunk;
    INPUTS, the reading alone."""
    X, W1, Z, idx, bounds = f.X, f.W1, f.Z, f.idx, f.bounds
    n, n_in = f.order.shape[0], X.shape[1]
    table = input_table(X, W1, W1.dtype.type(1))
    per_job = blocks_per_job(W1.shape[1], W1.itemsize)
    groups = block_groups((n_in + BLOCK - 1) // BLOCK, per_job)
    last = bounds.shape[0] - 1
    for first in range(0, n, f.batch):
        end = min(first + f.batch, n)
        for start in range(first, end, f.chunk):
            rows = f.order[start : min(start + f.chunk, end)]
            m = rows.shape[0]
            for lo in range(0, m, RUN):
                hi = min(lo + RUN, m)
                for i in range(lo, hi):
                    if f.dense:
                        read_row(X, rows[i], table, f.inputs[i])
                    else:
                        if i + 1 < hi:
                            prefetch_row(X, rows[i + 1])
                        scan_row(X, rows[i], idx, i, bounds)
                if part == FORWARD and f.dense:
                    for i in range(lo, hi):
                        set_row(Z, i, f.b1)
                    add_panel_products(Z, lo, hi, f.inputs, f.W1_panels)
                elif part == FORWARD:
                    for i in range(lo, hi):
                        listed, stop = bounds[0, i], bounds[last, i]
                        hidden_row(W1, f.b1, X, rows[i], table, idx, listed, stop, Z, i)
            if part != DW:
                continue
            for g in range(groups):
                if f.dense:
                    lo, hi = features_of_group(g, per_job, n_in)
                    add_panel_products(f.dW1, lo, hi, f.inputs[:m].T, f.dZ_panels)
                else:
                    add_block_terms(g, per_job, X, rows, table, idx, bounds, Z[:m], f.dW1)


@njit(**FROM_PYTHON)
def later_layer_pass(part, s):
    """A later layer's `part` over an epoch's chunks: FORWARD s.Z = A W + b, DA
    s.D = (G W.T) * relu'(A), DW s.dWT += G.T A, for each chunk's rows."""
    fan_out = s.G.shape[1]
    group = s.A_panels.shape[2]  # a DW job's units: a panel's (update.units_of_group)
    for first in range(0, s.n, s.batch):
        end = min(first + s.batch, s.n)
        for start in range(first, end, s.chunk):
            m = min(s.chunk, end - start)
            if part == DW:
                for unit in range(0, fan_out, group):
                    last = min(unit + group, fan_out)
                    add_column_terms(unit, last, s.A_panels, s.G[:m], s.dWT)
                continue
            for lo in range(0, m, RUN):
                hi = min(lo + RUN, m)
                if part == FORWARD:
                    dense_rows(s.A, lo, hi, s.W, s.b, s.Z)
                else:
                    hidden_grad_rows(s.G, lo, hi, s.WT, s.A, s.slope, False, s.D)


def _random(shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    a = line_aligned(shape, dtype)
    a[...] = rng.standard_normal(shape)
    return a


def operands(p: Prepared, dense: bool) -> tuple[FirstLayer, list[LaterLayer]]:
    """Every layer's operands for one epoch of the prepared workload (one full-batch step),
    the first layer dense or sparse: the weights, the workload's order and X as numba takes
    it, the other inputs random numbers."""
    params, dtype = p.params0, p.params0.dtype
    rng = np.random.default_rng(0)
    n, batch = len(p.order), p.batch_size
    chunk = min(CHUNK, batch, n)
    W1 = line_aligned_copy(params.coefs[0])
    n_in, width = W1.shape
    Z = _random((chunk, width), dtype, rng)
    first = FirstLayer(
        p.X, p.order, batch, chunk, dense, W1, panel_copy(W1), params.intercepts[0].copy(),
        Z, panel_copy(Z), line_aligned((chunk, n_in), dtype),
        np.empty(chunk * (n_in + 1), np.int32),
        np.empty(((n_in + BLOCK - 1) // BLOCK + 1, chunk), np.int32),
        line_aligned(W1.shape, dtype),
    )  # fmt: skip
    later = []
    for W, b in zip(params.coefs[1:], params.intercepts[1:], strict=True):
        fan_in, fan_out = W.shape
        A = _random((chunk, fan_in), dtype, rng)
        later.append(LaterLayer(
            n, batch, chunk, panel_copy(W), b.copy(), line_aligned_copy(W.T),
            A, panel_copy(A), _random((chunk, fan_out), dtype, rng),
            line_aligned((chunk, fan_in), dtype), line_aligned((chunk, fan_out), dtype),
            line_aligned((fan_out, fan_in), dtype), dtype.type(LEAKY_SLOPE),
        ))  # fmt: skip
    return first, later


def layer_seconds(p: Prepared, dense: bool, repeats: int) -> list[dict[str, float]]:
    """Per layer, the median one-thread seconds of each of its PARTS over one epoch of the
    prepared workload (see `operands`)."""
    first, later = operands(p, dense)

    def timed(run, part: int, layer: NamedTuple) -> float:
        return median_seconds(lambda: run(part, layer), repeats)

    reading = timed(first_layer_pass, INPUTS, first)
    times = [
        dict(
            inputs=reading,
            forward=timed(first_layer_pass, FORWARD, first) - reading,
            dW=timed(first_layer_pass, DW, first) - reading,
        )
    ]
    for layer in later:
        times.append(
            {PARTS[part]: timed(later_layer_pass, part, layer) for part in (FORWARD, DA, DW)}
        )
    return times


def layer_shares(p: Prepared, path: str, repeats: int, epoch_s: float, threads: int) -> dict:
    """Each layer's products (see the module's docstring) against numba's epoch of
    `epoch_s` seconds on `threads` threads, JSON-ready."""
    times = layer_seconds(p, path == "dense", repeats)
    sizes = [p.X.shape[1], *p.workload.hidden, p.params0.n_out]
    samples = len(p.order)
    # The first layer's inputs per sample: all of them, or the non-zero ones it visits.
    first_inputs = p.X.shape[1] if path == "dense" else np.count_nonzero(p.X) / len(p.X)
    thread_seconds = epoch_s * threads
    layers = []
    for index, seconds in enumerate(times):
        fan_in, fan_out = sizes[index], sizes[index + 1]
        terms = first_inputs if index == 0 else fan_in
        products = [part for part in ("forward", "dA", "dW") if part in seconds]
        flops = 2 * terms * fan_out * samples * len(products)
        product_s = sum(seconds[part] for part in products)
        total = sum(seconds.values())
        layers.append(
            dict(
                layer=index + 1,
                fan_in=fan_in,
                fan_out=fan_out,
                path=path if index == 0 else "dense",
                seconds=seconds,
                flops=flops,
                gflops=flops / product_s / 1e9 if product_s > 0 else None,
                share=100 * total / thread_seconds,
            )
        )
    rest = 100 - sum(layer["share"] for layer in layers)
    return dict(path=path, epoch_s=epoch_s, threads=threads, layers=layers, rest_share=rest)
