"""The network, the data and the update rule as the Numba kernels take them (see
`fastnn.kernels.epoch`): parameters packed into one flat buffer in the kernels' layout and
unpacked after training, X and the truth as read-only arrays, the optimizer's scalars in the
parameters' dtype, and the first layer's path chosen from the data. A prediction's packed
network is kept while its arrays cannot change.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections import OrderedDict
from contextvars import ContextVar

import numpy as np

from fastnn.backends.base import Truth
from fastnn.core.dropout import Dropout
from fastnn.core.model import LEAKY_SLOPE, OUTPUTS, Params
from fastnn.core.optim import Optimizer, adam_rate
from fastnn.core.sparse import INDEX, POINTER, SparseRows
from fastnn.kernels.epoch import CHUNK, Activations, Data, Net
from fastnn.kernels.layout import Layout, line_aligned_copy, make_layout, to_panels
from fastnn.kernels.optimizer import ADAM, MOMENTUM, RMSPROP, SGD, Rule

# How the first layer takes its inputs (see fastnn.kernels.samples): "sparse" over each
# sample's list of non-zero features, "dense" as products of register tiles over all of them,
# "auto" dense where more than DENSE_FROM of the inputs are non-zero (on about DENSITY_ROWS
# rows spread over X): about where the two paths' epochs cost the same (docs/dense-engine.md).
FIRST_LAYER_PATHS = ("auto", "sparse", "dense")
DENSE_FROM = 0.4
DENSITY_ROWS = 256  # 200,000 values at MNIST's width: plenty to tell above 40% from below
FIRST_LAYER: ContextVar[str] = ContextVar("first_layer", default="auto")


def dense_input(X: np.ndarray | SparseRows) -> bool:
    """Whether the first layer takes X dense, by the path in force (`NumbaBackend.first_layer`):
    a sparse X as a dense one of the same numbers."""
    path = FIRST_LAYER.get()
    if path != "auto":
        return path == "dense"
    n, n_in = X.shape
    if n == 0 or n_in == 0:
        return False
    probe = X if n <= DENSITY_ROWS else X[:: n // DENSITY_ROWS]  # a few rows: all, no view
    if isinstance(probe, SparseRows):
        nonzeros = len(probe.data)
    else:  # copied first: np.count_nonzero is slower on a strided view than copy and count
        nonzeros = np.count_nonzero(np.ascontiguousarray(probe))
    return nonzeros > DENSE_FROM * len(probe) * n_in


def read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view: inputs reach the kernels as one type whether the caller's array is
    writable or not (e.g. np.frombuffer), so Numba compiles one specialisation, not two."""
    view = a.view()
    view.flags.writeable = False
    return view


def _kernel_shape(p: int, a: np.ndarray) -> np.ndarray:
    """Array p of Params.arrays() (W1, b1, W2, b2, ...) as the kernels lay it out: the weights
    of every layer after the first transposed (see fastnn.kernels.layout)."""
    return a.T if p % 2 == 0 and p > 0 else a


def _pack(arrays: list[np.ndarray] | tuple[np.ndarray, ...], dtype: np.dtype) -> np.ndarray:
    """Arrays laid out as Params.arrays(), as one flat buffer in the kernels' layout: always a
    fresh, writable, native-order copy, so weights of any kind (memory-mapped or read-only,
    Fortran-ordered or strided views, big-endian from a file) reach the kernels as the one
    kind of array they are compiled for."""
    pieces = [np.ravel(_kernel_shape(p, a)) for p, a in enumerate(arrays)]
    return line_aligned_copy(np.concatenate(pieces, dtype=dtype.newbyteorder("=")))


def pieces(flat: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """Views of a flat buffer laid out as theta, in Params.arrays()' layout: W1, b1, W2, ..."""
    views = []
    widths = zip(layout.sizes[:-1], layout.sizes[1:], strict=True)
    for layer, (fan_in, fan_out) in enumerate(widths):
        start, bias_at = layout.weights_at[layer], layout.bias_at[layer]
        shape = (fan_in, fan_out) if layer == 0 else (fan_out, fan_in)
        views.append(_kernel_shape(2 * layer, flat[start:bias_at].reshape(shape)))
        views.append(flat[bias_at : bias_at + fan_out])
    return views


def unpack(flat: np.ndarray, layout: Layout, arrays: list[np.ndarray]) -> None:
    """arrays[...] = the numbers of a flat buffer from `_pack`, in place."""
    for a, piece in zip(arrays, pieces(flat, layout), strict=True):
        a[...] = piece


def units(buf: np.ndarray, n: int, layout: Layout, layer: int) -> np.ndarray:
    """A layer's activations of n samples in a flat buffer of `forward`: (n, fan_out)."""
    start, end = n * layout.units_at[layer], n * layout.units_at[layer + 1]
    return buf[start:end].reshape(n, layout.sizes[layer + 1])


def network(
    params: Params, activation: str, dropout: Dropout | None = None, output: str = "softmax"
) -> tuple[Layout, Net]:
    """The network as the kernels take it: where each layer's numbers sit, and a copy of them
    in that layout (written back by `unpack` after training); with its dropout, if any, and
    its output kind (a number the kernels read at run time: no compiling per kind)."""
    params.validate()  # one dtype for all arrays: no mixed specialisation compiled
    dtype = params.dtype.newbyteorder("=")
    layout = make_layout([params.n_in, *params.hidden_sizes, params.n_out], dtype.itemsize)
    paneled = [to_panels(W, layout.panel) for W in params.coefs]  # for the forward's products
    ahead = line_aligned_copy(np.concatenate(paneled, dtype=dtype))
    leaky = activation == "leaky_relu"
    if dropout is None:  # keys and scales do not matter where nothing is dropped
        dropout = Dropout((0.0,) * len(params.hidden_sizes), 0, 0)
    return layout, Net(
        _pack(params.arrays(), dtype), ahead, dtype.type(LEAKY_SLOPE), leaky,
        OUTPUTS.index(output), dropout.layer_keys(), dropout.thresholds(), dropout.scales(dtype),
    )  # fmt: skip


# Prediction packs a network once while its arrays cannot change (a fitted MLPClassifier's are
# read-only), not at every call: at hidden 128 packing costs more than a row's forward pass. The
# last FROZEN_KEPT networks are kept (by the ids of their arrays, activation and output), each
# with weak references to the arrays it was packed from.
FROZEN_KEPT = 8
_frozen: OrderedDict[tuple, tuple[tuple[weakref.ref, ...], Layout, Net]] = OrderedDict()
_frozen_lock = threading.Lock()


def _immutable(a: np.ndarray) -> bool:
    """Whether nothing can write a's numbers: it and every array it views are read-only (an
    array over other memory, such as a file mapped by np.load(mmap_mode="r"), may change)."""
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        if a.base is None:
            return True
        a = a.base
    return False


def prediction_network(params: Params, activation: str, output: str) -> tuple[Layout, Net]:
    """`network` for a forward pass, packed once for arrays that cannot change."""
    arrays = params.arrays()
    key = (*map(id, arrays), activation, output)
    with _frozen_lock:
        kept = _frozen.get(key)
        if kept is not None and all(
            r() is a and _immutable(a) for r, a in zip(kept[0], arrays, strict=True)
        ):
            _frozen.move_to_end(key)
            return kept[1], kept[2]
    if not all(_immutable(a) for a in arrays):
        return network(params, activation, output=output)
    layout, net = network(params, activation, output=output)
    with _frozen_lock:
        _frozen[key] = (tuple(map(weakref.ref, arrays)), layout, net)
        while len(_frozen) > FROZEN_KEPT:
            _frozen.popitem(last=False)
    return layout, net


NO_WEIGHTS = np.empty(0, np.float64)


@functools.cache
def _no_csr(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The empty CSR arrays a dense X comes with (see epoch.Data), read-only: made once, not
    at every call of a one-row prediction, whose latency they would add to."""
    return tuple(read_only(np.empty(0, t)) for t in (POINTER, INDEX, dtype))


def _inputs(X: np.ndarray | SparseRows, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """X as the kernels take it (see epoch.Data): a dense X and empty CSR arrays, or for a
    sparse X an empty float X of `dtype` (the float specialisation, compiled already) and its
    CSR arrays; all read-only."""
    if isinstance(X, SparseRows):
        dense = np.empty((0, X.shape[1]), dtype)
        return tuple(read_only(a) for a in (dense, X.indptr, X.indices, X.data))
    return (read_only(X), *_no_csr(dtype))


# rows 0..n-1 for a forward pass of n <= CHUNK rows (one job: a row, a few rows), read-only.
_FIRST_ROWS = read_only(np.arange(CHUNK))


def _rows(n: int) -> np.ndarray:
    """0..n-1, read-only: the rows of a forward pass (see epoch.forward)."""
    return _FIRST_ROWS[:n] if n <= CHUNK else read_only(np.arange(n))


def forward_args(
    layout: Layout, net: Net, X: np.ndarray | SparseRows, out: Activations, dense: bool
) -> tuple:
    """The arguments of the kernels' `forward` after the team: the network, X as the kernels
    take it (`_inputs`), its rows 0..n-1, the first layer's path (`dense_input`), and where
    the outputs go."""
    return (layout, net, *_inputs(X, net.theta.dtype), _rows(len(X)), dense, out)


@functools.cache
def no_activations(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Empty Z and A for `Activations`: a prediction keeps no activations (nothing can be
    written to them)."""
    return np.empty(0, dtype), np.empty(0, dtype)


def data(
    X: np.ndarray | SparseRows,
    dtype: np.dtype,
    truth: Truth,
    weights: np.ndarray | None,
    order: np.ndarray,
    batch_size: int,
) -> Data:
    """The kernels' Data: X dense or sparse (`_inputs`), labels and targets both passed, one
    of them empty (see `check_y`), and the sample weights (float64, `check_sample_weight`) or
    none, empty; all read-only, so one compiled kernel takes every output kind, weighted or
    not, dense or sparse."""
    weights = NO_WEIGHTS if weights is None else weights
    return Data(
        *_inputs(X, dtype), read_only(truth.labels), read_only(truth.targets),
        read_only(weights), order, batch_size, dense_input(X),
    )  # fmt: skip


def rule(optimizer: Optimizer, rates: np.ndarray, steps_done: int, dtype: np.dtype) -> Rule:
    """The kernels' Rule: every scalar rounded to the parameters' dtype (native byte order), as
    the reference rounds it; Adam's bias-corrected rate of each step computed here in float64
    first."""
    if optimizer.solver == "adam":
        rates = [adam_rate(lr, optimizer, steps_done + 1 + b) for b, lr in enumerate(rates)]
        solver = ADAM
    elif optimizer.solver == "rmsprop":
        solver = RMSPROP
    else:
        solver = MOMENTUM if optimizer.momentum else SGD
    d = dtype.type
    return Rule(
        solver=solver,
        rates=np.asarray(rates, dtype),
        alpha=float(optimizer.alpha),
        momentum=d(optimizer.momentum),
        nesterov=bool(optimizer.nesterovs_momentum),
        beta_1=d(optimizer.beta_1),
        one_minus_beta_1=d(1 - optimizer.beta_1),
        beta_2=d(optimizer.beta_2),
        one_minus_beta_2=d(1 - optimizer.beta_2),
        rho=d(optimizer.rho),
        one_minus_rho=d(1 - optimizer.rho),
        epsilon=d(optimizer.epsilon),
        max_norm=d(optimizer.max_norm or 0),
    )


def moments(arrays: list[np.ndarray], net: Net) -> np.ndarray:
    """One kind of optimizer moments, packed as theta; empty if the solver keeps none."""
    return _pack(arrays, net.theta.dtype) if arrays else net.theta[:0].copy()
