"""The Numba backend: argument checks in Python, then one call into the compiled kernels.

The maths are the NumPy reference's (`numpy_backend`), fused and touching only non-zero inputs;
`fastnn.kernels` tells how the work is split among threads and why the results do not depend on
the number of threads.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextvars import ContextVar

import numba
import numpy as np
from numba.core import event

from fastnn.backends.base import (
    PLAIN_SGD,
    Compilation,
    Forward,
    Grads,
    Truth,
    check_dropout,
    check_epoch_args,
    check_images,
    check_sample_weight,
    check_X,
    check_y,
)
from fastnn.backends.numba_team import run_team, team_size, team_threads
from fastnn.core.augment import KINDS, Augmentation, working_dtype
from fastnn.core.dropout import Dropout
from fastnn.core.interrupt import deferred_keyboard_interrupt
from fastnn.core.model import ACTIVATIONS, LEAKY_SLOPE, OUTPUTS, Params, check_choice
from fastnn.core.optim import Optimizer, OptimizerState, adam_rate
from fastnn.core.sparse import INDEX, POINTER, SparseRows
from fastnn.kernels.augment import ROWS, Warp
from fastnn.kernels.epoch import (
    CHUNK,
    Activations,
    Data,
    Net,
    State,
    augment,
    forward,
    forward_outputs,
    train_batches,
    train_workspace,
)
from fastnn.kernels.layout import (
    Layout,
    line_aligned,
    line_aligned_copy,
    make_layout,
    to_panels,
)
from fastnn.kernels.optimizer import ADAM, GRADIENTS_ONLY, MOMENTUM, RMSPROP, SGD, Rule
from fastnn.kernels.team import SYNC_SLOTS, Team

# How the first layer takes its inputs (see fastnn.kernels.samples): "sparse" over each
# sample's list of non-zero features, "dense" as products of register tiles over all of them,
# "auto" dense where more than DENSE_FROM of the inputs are non-zero (on about DENSITY_ROWS
# rows spread over X).
FIRST_LAYER_PATHS = ("auto", "sparse", "dense")
DENSE_FROM = 0.5
DENSITY_ROWS = 256  # 200,000 values at MNIST's width: plenty to tell above half from below
_first_layer: ContextVar[str] = ContextVar("first_layer", default="auto")


def dense_input(X: np.ndarray | SparseRows) -> bool:
    """Whether the first layer takes X dense, by the path in force (`NumbaBackend.first_layer`):
    a sparse X as a dense one of the same numbers."""
    path = _first_layer.get()
    if path != "auto":
        return path == "dense"
    n, n_in = X.shape
    if n == 0 or n_in == 0:
        return False
    rows = X if n <= DENSITY_ROWS else X[:: n // DENSITY_ROWS]  # a few rows: all, no view
    if isinstance(rows, SparseRows):
        nonzeros = len(rows.data)
    else:  # copied first: np.count_nonzero is slower on a strided view than copy and count
        nonzeros = np.count_nonzero(np.ascontiguousarray(rows))
    return nonzeros > DENSE_FROM * len(rows) * n_in


COMPILE_NOTICE = (
    "compiling the Numba kernels once, about half a minute (later runs load them from the cache)"
)


def warm_up() -> None:
    """Fill Numba's tables of implementations now: Numba does it once per process, at the
    first compiled function it loads or compiles, and it takes about 0.4 s (see
    backends.start_loading). Under Numba's compiler lock, as its own loading does it."""
    from numba.core.compiler_lock import global_compiler_lock
    from numba.core.registry import cpu_target

    with global_compiler_lock:
        cpu_target.target_context.refresh()


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view: inputs reach the kernels as one type whether the caller's array is
    writable or not (e.g. np.frombuffer), so Numba compiles one specialisation, not two."""
    view = a.view()
    view.flags.writeable = False
    return view


def _call(entry, args: tuple, jobs: int | None = None) -> object:
    """entry(team, *args) on the compiled kernels (a Numba dispatcher, or what
    `_compiled_forward` gives), by a team of threads (at most `jobs`), with Ctrl-C held until
    it returns."""
    with deferred_keyboard_interrupt():
        return run_team(entry, args, team_size(jobs))


# The compiled forward pass for each pair of X's dtype and the parameters', as Numba compiled
# it. A prediction calls it directly: Numba's dispatcher would match the types of every
# argument at every call, in each thread of the team, which costs more than a row's
# arithmetic. Every other argument's type follows from those two dtypes.
_forward_of: dict[tuple[np.dtype, np.dtype], Callable] = {}


def _compiled_forward(args: tuple) -> Callable:
    """`forward` compiled (or loaded from the cache) for args' types, as a plain function of
    (team, *args)."""
    key = (args[2].dtype, args[1].theta.dtype)
    compiled = _forward_of.get(key)
    if compiled is None:
        team = Team(0, 1, np.zeros(SYNC_SLOTS, np.int64))
        types = tuple(forward.typeof_pyval(a) for a in (team, *args))
        forward.compile(types)
        compiled = _forward_of[key] = forward.overloads[types].entry_point
    return compiled


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


def _pieces(flat: np.ndarray, layout: Layout) -> list[np.ndarray]:
    """Views of a flat buffer laid out as theta, in Params.arrays()' layout: W1, b1, W2, ..."""
    views = []
    widths = zip(layout.sizes[:-1], layout.sizes[1:], strict=True)
    for layer, (fan_in, fan_out) in enumerate(widths):
        start, bias_at = layout.weights_at[layer], layout.bias_at[layer]
        shape = (fan_in, fan_out) if layer == 0 else (fan_out, fan_in)
        views.append(_kernel_shape(2 * layer, flat[start:bias_at].reshape(shape)))
        views.append(flat[bias_at : bias_at + fan_out])
    return views


def _unpack(flat: np.ndarray, layout: Layout, arrays: list[np.ndarray]) -> None:
    """arrays[...] = the numbers of a flat buffer from `_pack`, in place."""
    for a, piece in zip(arrays, _pieces(flat, layout), strict=True):
        a[...] = piece


def _units(buf: np.ndarray, n: int, layout: Layout, layer: int) -> np.ndarray:
    """A layer's activations of n samples in a flat buffer of `forward`: (n, fan_out)."""
    start, end = n * layout.units_at[layer], n * layout.units_at[layer + 1]
    return buf[start:end].reshape(n, layout.sizes[layer + 1])


def _network(
    params: Params, activation: str, dropout: Dropout | None = None, output: str = "softmax"
) -> tuple[Layout, Net]:
    """The network as the kernels take it: where each layer's numbers sit, and a copy of them
    in that layout (written back by `_unpack` after training); with its dropout, if any, and
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


def _prediction_network(params: Params, activation: str, output: str) -> tuple[Layout, Net]:
    """`_network` for a forward pass, packed once for arrays that cannot change."""
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
        return _network(params, activation, output=output)
    layout, net = _network(params, activation, output=output)
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
    return tuple(_read_only(np.empty(0, t)) for t in (POINTER, INDEX, dtype))


def _inputs(X: np.ndarray | SparseRows, dtype: np.dtype) -> tuple[np.ndarray, ...]:
    """X as the kernels take it (see epoch.Data): a dense X and empty CSR arrays, or for a
    sparse X an empty float X of `dtype` (the float specialisation, compiled already) and its
    CSR arrays; all read-only."""
    if isinstance(X, SparseRows):
        dense = np.empty((0, X.shape[1]), dtype)
        return tuple(_read_only(a) for a in (dense, X.indptr, X.indices, X.data))
    return (_read_only(X), *_no_csr(dtype))


# rows 0..n-1 for a forward pass of n <= CHUNK rows (one job: a row, a few rows), read-only.
_FIRST_ROWS = _read_only(np.arange(CHUNK))


def _rows(n: int) -> np.ndarray:
    """0..n-1, read-only: the rows of a forward pass (see epoch.forward)."""
    return _FIRST_ROWS[:n] if n <= CHUNK else _read_only(np.arange(n))


@functools.cache
def _no_activations(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Empty Z and A for `Activations`: a prediction keeps no activations (nothing can be
    written to them)."""
    return np.empty(0, dtype), np.empty(0, dtype)


def _data(
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
        *_inputs(X, dtype), _read_only(truth.labels), _read_only(truth.targets),
        _read_only(weights), order, batch_size, dense_input(X),
    )  # fmt: skip


def _rule(optimizer: Optimizer, rates: np.ndarray, steps_done: int, dtype: np.dtype) -> Rule:
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


def _moments(moments: list[np.ndarray], net: Net) -> np.ndarray:
    """One kind of optimizer moments, packed as theta; empty if the solver keeps none."""
    return _pack(moments, net.theta.dtype) if moments else net.theta[:0].copy()


class NumbaBackend:
    name = "numba"
    # The last train_epoch's time stamp counter ticks per team member: in the sample passes,
    # waiting after them, in the update passes, waiting after those (see kernels.epoch's
    # Workspace.passes; zeros where the CPU has no such counter). For the profiler.
    last_passes: np.ndarray | None = None

    def forward(
        self,
        params: Params,
        X: np.ndarray,
        activation: str = "relu",
        output: str = "softmax",
        check_input: bool = True,
    ) -> Forward:
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("output", output, OUTPUTS)
        X = check_X(params, X, check_input)
        layout, net = _network(params, activation, output=output)
        n = len(X)
        out = forward_outputs(layout, n, net.theta.dtype)
        args = (layout, net, *_inputs(X, net.theta.dtype), _rows(n), dense_input(X), out)
        _call(forward, args, -(-n // CHUNK))
        Z, A, P = out
        Zs = [_units(Z, n, layout, layer) for layer in range(len(params.coefs))]
        As = [_units(A, n, layout, layer) for layer in range(len(params.coefs) - 1)]
        return Forward(Zs, As, P)

    def loss_and_grads(
        self,
        params: Params,
        X: np.ndarray,
        y: np.ndarray,
        activation: str = "relu",
        dropout: Dropout | None = None,
        output: str = "softmax",
        sample_weight: np.ndarray | None = None,
    ) -> tuple[float, Grads]:
        check_choice("activation", activation, ACTIVATIONS)
        X = check_X(params, X)
        truth = check_y(params, X, y, output)
        weights = check_sample_weight(X, sample_weight)
        if dropout is not None:
            check_dropout(params, dropout)
        layout, net = _network(params, activation, dropout, output)
        rule = _rule(PLAIN_SGD, np.zeros(1), 0, net.theta.dtype)._replace(solver=GRADIENTS_ONLY)
        state = State(line_aligned(net.theta.shape, net.theta.dtype), net.theta[:0], net.theta[:0])
        rows = _read_only(np.arange(len(X)))
        data = _data(X, net.theta.dtype, truth, weights, rows, max(len(X), 1))
        work = train_workspace(layout, data, net.theta.dtype, team_size())
        loss_sum, _ = _call(train_batches, (layout, net, data, rule, state, work))
        loss = loss_sum / len(X) if len(X) else float("nan")
        grads = [np.ascontiguousarray(g) for g in _pieces(state.sums, layout)]
        return loss, Grads(grads[0::2], grads[1::2])

    def train_epoch(
        self,
        params: Params,
        X: np.ndarray,
        y: np.ndarray,
        order: np.ndarray,
        batch_size: int,
        lr: float | np.ndarray,
        activation: str = "relu",
        optimizer: Optimizer = PLAIN_SGD,
        state: OptimizerState | None = None,
        dropout: Dropout | None = None,
        output: str = "softmax",
        sample_weight: np.ndarray | None = None,
        check_input: bool = True,
    ) -> tuple[float, float]:
        X = check_X(params, X, check_input)
        truth = check_y(params, X, y, output)
        weights = check_sample_weight(X, sample_weight)
        order, rates, state = check_epoch_args(
            params, X, order, batch_size, lr, activation, optimizer, state, dropout
        )
        layout, net = _network(params, activation, dropout, output)
        rule = _rule(optimizer, rates, state.step, net.theta.dtype)
        moments = State(
            line_aligned(net.theta.shape, net.theta.dtype),  # the gradient sums
            _moments(state.first, net),
            _moments(state.second, net),
        )
        data = _data(X, net.theta.dtype, truth, weights, _read_only(order), int(batch_size))
        work = train_workspace(layout, data, net.theta.dtype, team_size())
        if work.row_flags.size and rule.solver == MOMENTUM:  # W1 rows it moves untouched
            np.any(state.first[0] != 0, axis=1, out=work.row_flags[1])
        loss_sum, hits = _call(train_batches, (layout, net, data, rule, moments, work))
        self.last_passes = work.passes
        _unpack(net.theta, layout, list(params.arrays()))
        for packed, given in ((moments.first, state.first), (moments.second, state.second)):
            if given:
                _unpack(packed, layout, given)
        state.step += len(rates)
        accuracy = float("nan") if output == "identity" else hits / len(order)
        return loss_sum / len(order), accuracy

    def predict_proba(
        self,
        params: Params,
        X: np.ndarray,
        activation: str = "relu",
        output: str = "softmax",
        check_input: bool = True,
    ) -> np.ndarray:
        """The forward pass keeping only P: each member keeps a chunk's activations at a time."""
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("output", output, OUTPUTS)
        X = check_X(params, X, check_input)
        layout, net = _prediction_network(params, activation, output)
        n = len(X)
        dtype = net.theta.dtype
        out = Activations(*_no_activations(dtype), np.empty((n, params.n_out), dtype))
        args = (layout, net, *_inputs(X, dtype), _rows(n), dense_input(X), out)
        # One chunk (a row, say) on this thread: no thread to start, and nothing a Ctrl-C could
        # leave half-done (the outputs are new arrays).
        compiled = _compiled_forward(args)
        if n <= CHUNK:
            compiled(Team(0, 1, np.zeros(SYNC_SLOTS, np.int64)), *args)
        else:
            _call(compiled, args, -(-n // CHUNK))
        return out.P

    def augment(
        self, X: np.ndarray, augmentation: Augmentation, out: np.ndarray | None = None
    ) -> np.ndarray:
        X, out = check_images(X, augmentation, out)
        dtype = working_dtype(X)
        warp = Warp(
            KINDS.index(augmentation.kind), augmentation.key(), *augmentation.image_shape,
            augmentation.numbers(dtype), augmentation.gauss(dtype),
        )  # fmt: skip
        _call(augment, (_read_only(X), warp, out), -(-len(X) // ROWS))
        return out

    def threads(self, n: int | None) -> contextlib.AbstractContextManager[None]:
        """Run the block with n threads (None: as is), then restore the previous count. The
        count is kept per Python thread, so other threads are not affected. A bad n raises
        here, before the block. `team_threads` itself, not a generator around it: every
        prediction enters this, and a second generator adds to a row's latency."""
        if n is None:
            return contextlib.nullcontext()
        most = numba.config.NUMBA_NUM_THREADS
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= most:
            raise ValueError(
                f"threads must be a whole number from 1 to {most} "
                f"(numba.config.NUMBA_NUM_THREADS); got {n!r}"
            )
        return team_threads(int(n))

    @contextlib.contextmanager
    def first_layer(self, path: str) -> Iterator[None]:
        """Run the block with the first layer's path forced ("sparse" or "dense") or chosen by
        the data ("auto", the default); for tests and benchmarks. Kept per thread (a context
        variable)."""
        check_choice("first layer path", path, FIRST_LAYER_PATHS)
        token = _first_layer.set(path)
        try:
            yield
        finally:
            _first_layer.reset(token)

    @contextlib.contextmanager
    def compilation(self, say: Callable[[str], None] | None) -> Iterator[Compilation]:
        """Numba's compile events for the kernels' entry point during the block: a cache miss
        that compiles, not a cache load."""
        record = Compilation()
        with event.install_listener("numba:compile", _CompileListener(record, say)):
            yield record


ENTRIES = (train_batches, forward, augment)


class _CompileListener(event.Listener):
    """Times the compiling of the entries (each compiles every kernel it calls)."""

    def __init__(self, record: Compilation, say: Callable[[str], None] | None) -> None:
        self.record, self.say = record, say
        self.started = 0.0

    def on_start(self, ev: event.Event) -> None:
        if ev.data["dispatcher"] in ENTRIES:
            self.started = time.perf_counter()
            if self.say is not None and self.record.seconds is None:  # once for all entries
                self.say(COMPILE_NOTICE)

    def on_end(self, ev: event.Event) -> None:
        if ev.data["dispatcher"] in ENTRIES:
            self.record.seconds = (self.record.seconds or 0.0) + time.perf_counter() - self.started
