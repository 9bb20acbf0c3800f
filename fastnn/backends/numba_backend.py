"""The Numba backend: argument checks in Python, the network and the data packed as the kernels
take them (`numba_packing`), then one call into the compiled kernels.

The maths are the NumPy reference's (`numpy_backend`), fused and touching only non-zero inputs;
`fastnn.kernels` tells how the work is split among threads and why the results do not depend on
the number of threads.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import numba
import numpy as np
from numba.core import event

from fastnn.backends import numba_packing as packing
from fastnn.backends.base import (
    PLAIN_SGD,
    Compilation,
    Forward,
    Grads,
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
from fastnn.core.model import ACTIVATIONS, OUTPUTS, Params, check_choice
from fastnn.core.optim import Optimizer, OptimizerState
from fastnn.core.sparse import SparseRows
from fastnn.kernels.augment import ROWS, Warp
from fastnn.kernels.epoch import (
    CHUNK,
    Activations,
    Net,
    State,
    augment,
    forward,
    forward_outputs,
    train_batches,
    train_workspace,
)
from fastnn.kernels.layout import Layout, line_aligned
from fastnn.kernels.optimizer import GRADIENTS_ONLY, MOMENTUM
from fastnn.kernels.team import SYNC_SLOTS, Team

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


def _call(entry, args: tuple, jobs: int | None = None) -> object:
    """entry(team, *args) on the compiled kernels (a Numba dispatcher, or what
    `_compiled_forward` gives), by a team of threads (at most `jobs`), with Ctrl-C held until
    it returns."""
    with deferred_keyboard_interrupt():
        return run_team(entry, args, team_size(jobs))


# Rows of X a prediction's compiled call takes (see NumbaBackend.predict_proba): 10,000 rows,
# as the bench predicts, in one team run; a fraction of a second of work at the largest
# networks of the presets, (800, 800).
PREDICTION_ROWS = 65536

# The compiled forward pass for each pair of X's dtype and the parameters', as Numba compiled
# it. A prediction calls it directly: Numba's dispatcher would match the types of every
# argument at every call, in each thread of the team, which costs more than a row's
# arithmetic. Every other argument's type follows from those two dtypes.
_forward_of: dict[tuple[np.dtype, np.dtype], Callable] = {}


def _predict(
    layout: Layout, net: Net, X: np.ndarray | SparseRows, P: np.ndarray, dense: bool
) -> None:
    """P = the outputs of X's rows, in one compiled call: one chunk (a row, say) on this
    thread, no thread to start, and nothing a Ctrl-C could leave half-done (P is new)."""
    out = Activations(*packing.no_activations(P.dtype), P)
    args = packing.forward_args(layout, net, X, out, dense)
    compiled = _compiled_forward(args)
    if len(X) <= CHUNK:
        compiled(Team(0, 1, np.zeros(SYNC_SLOTS, np.int64)), *args)
    else:
        _call(compiled, args, -(-len(X) // CHUNK))


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
        layout, net = packing.network(params, activation, output=output)
        n = len(X)
        out = forward_outputs(layout, n, net.theta.dtype)
        args = packing.forward_args(layout, net, X, out, packing.dense_input(X))
        _call(forward, args, -(-n // CHUNK))
        Z, A, P = out
        Zs = [packing.units(Z, n, layout, layer) for layer in range(len(params.coefs))]
        As = [packing.units(A, n, layout, layer) for layer in range(len(params.coefs) - 1)]
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
        layout, net = packing.network(params, activation, dropout, output)
        rule = packing.rule(PLAIN_SGD, np.zeros(1), 0, net.theta.dtype)._replace(
            solver=GRADIENTS_ONLY
        )
        state = State(line_aligned(net.theta.shape, net.theta.dtype), net.theta[:0], net.theta[:0])
        rows = packing.read_only(np.arange(len(X)))
        data = packing.data(X, net.theta.dtype, truth, weights, rows, max(len(X), 1))
        work = train_workspace(layout, data, net.theta.dtype, team_size())
        loss_sum, _ = _call(train_batches, (layout, net, data, rule, state, work))
        loss = loss_sum / len(X) if len(X) else float("nan")
        grads = [np.ascontiguousarray(g) for g in packing.pieces(state.sums, layout)]
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
        layout, net = packing.network(params, activation, dropout, output)
        rule = packing.rule(optimizer, rates, state.step, net.theta.dtype)
        moments = State(
            line_aligned(net.theta.shape, net.theta.dtype),  # the gradient sums
            packing.moments(state.first, net),
            packing.moments(state.second, net),
        )
        data = packing.data(
            X, net.theta.dtype, truth, weights, packing.read_only(order), int(batch_size)
        )
        work = train_workspace(layout, data, net.theta.dtype, team_size())
        if work.row_flags.size and rule.solver == MOMENTUM:  # W1 rows it moves untouched
            np.any(state.first[0] != 0, axis=1, out=work.row_flags[1])
        loss_sum, hits = _call(train_batches, (layout, net, data, rule, moments, work))
        self.last_passes = work.passes
        packing.unpack(net.theta, layout, list(params.arrays()))
        for packed, given in ((moments.first, state.first), (moments.second, state.second)):
            if given:
                packing.unpack(packed, layout, given)
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
        """The forward pass keeping only P: each member keeps a chunk's activations at a time.
        PREDICTION_ROWS rows a compiled call: Ctrl-C waits for the call to return (see
        `deferred_keyboard_interrupt`), so that on many rows it is answered soon."""
        check_choice("activation", activation, ACTIVATIONS)
        check_choice("output", output, OUTPUTS)
        X = check_X(params, X, check_input)
        layout, net = packing.prediction_network(params, activation, output)
        n = len(X)
        P = np.empty((n, params.n_out), net.theta.dtype)
        dense = packing.dense_input(X)  # judged once: every part takes the same path
        if n <= PREDICTION_ROWS:  # a row, say: no views to make
            _predict(layout, net, X, P, dense)
            return P
        for start in range(0, n, PREDICTION_ROWS):
            rows = slice(start, start + PREDICTION_ROWS)
            _predict(layout, net, X[rows], P[rows], dense)
        return P

    def augment(
        self, X: np.ndarray, augmentation: Augmentation, out: np.ndarray | None = None
    ) -> np.ndarray:
        X, out = check_images(X, augmentation, out)
        dtype = working_dtype(X)
        warp = Warp(
            KINDS.index(augmentation.kind), augmentation.key(), *augmentation.image_shape,
            augmentation.numbers(dtype), augmentation.gauss(dtype),
        )  # fmt: skip
        _call(augment, (packing.read_only(X), warp, out), -(-len(X) // ROWS))
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
        check_choice("first layer path", path, packing.FIRST_LAYER_PATHS)
        token = packing.FIRST_LAYER.set(path)
        try:
            yield
        finally:
            packing.FIRST_LAYER.reset(token)

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
