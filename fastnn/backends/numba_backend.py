"""The Numba backend: argument checks in Python, then one call into the compiled kernels.

The maths are the NumPy reference's (`numpy_backend`), fused and touching only non-zero inputs;
`fastnn.kernels` tells how the work is split among threads and why the results do not depend on
the number of threads.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

import numba
import numpy as np
from numba.core import event

from fastnn.backends.base import Compilation, Forward, Grads, check_epoch_args, check_X, check_y
from fastnn.interrupt import deferred_keyboard_interrupt
from fastnn.kernels.config import THREADING_LAYER, launch_guard
from fastnn.kernels.epoch import FORWARD, GRADIENTS, TRAIN, run
from fastnn.model import ACTIVATIONS, LEAKY_SLOPE, Params, check_choice

COMPILE_NOTICE = (
    "compiling the Numba kernels once, about 20 s (later runs load them from the cache)"
)

# Importing fastnn.kernels.config started the threading layer in this process.
_LAYER_PID = os.getpid()


def forked_from_openmp() -> bool:
    """Whether this process is a fork of one that started GNU OpenMP threads: GNU OpenMP
    cannot run in such a child (Numba would end it with SIGTERM at the first parallel launch,
    and a multiprocessing Pool waiting for it would hang)."""
    if THREADING_LAYER != "omp" or os.getpid() == _LAYER_PID:
        return False
    from numba.np.ufunc import omppool

    return omppool.openmp_vendor == "GNU"


class ForkedProcessError(RuntimeError):
    """The Numba kernels cannot run in this forked process."""


def _read_only(a: np.ndarray) -> np.ndarray:
    """A read-only view: inputs reach the kernels as one type whether the caller's array is
    writable or not (e.g. np.frombuffer), so Numba compiles one specialisation, not two."""
    view = a.view()
    view.flags.writeable = False
    return view


_NO_LABELS = _read_only(np.empty(0, np.int64))


def _run(
    mode: int,
    params: Params,
    X: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    lr: float,
    activation: str,
    grads: tuple[np.ndarray, ...],
) -> tuple:
    if forked_from_openmp():
        raise ForkedProcessError(
            "the Numba kernels cannot run in this process: it was forked from one that had "
            "started GNU OpenMP threads, which do not survive a fork. Start worker processes "
            "with multiprocessing's 'spawn' or 'forkserver' method, or take the backend anew "
            "with fastnn.backends.get_backend('numba'), which gives the numpy one here."
        )
    params.validate()  # one dtype for all four: no mixed specialisation compiled
    dtype = params.dtype.type
    given = params.arrays()
    arrays = tuple(a if _kernel_ready(a) else _kernel_copy(a) for a in given)
    # Constants go in as the parameters' dtype: no float64 creeps into float32 kernels.
    with launch_guard(), deferred_keyboard_interrupt():
        result = run(
            mode,
            arrays,
            _read_only(X),
            _read_only(y),
            _read_only(order),
            max(int(batch_size), 1),
            dtype(lr),
            dtype(LEAKY_SLOPE),
            activation == "leaky_relu",
            grads,
        )
    if mode == TRAIN:  # weights trained as copies go back where the caller keeps them
        for original, trained in zip(given, arrays, strict=True):
            if trained is not original:
                original[...] = trained
    return result


def _kernel_ready(a: np.ndarray) -> bool:
    """Whether the kernels, compiled for one kind of weight array, can take `a` as it is."""
    return type(a) is np.ndarray and a.flags.c_contiguous and a.flags.writeable and a.dtype.isnative


def _kernel_copy(a: np.ndarray) -> np.ndarray:
    """A copy of `a` the kernels take: a plain, writable C-ordered array in native byte order.
    Weights of any other kind (memory-mapped or read-only, Fortran-ordered or strided views,
    big-endian from a file) would need kernels compiled for them, or fail to compile, or (byte
    order) be read wrong."""
    return np.array(a, dtype=a.dtype.newbyteorder("="), order="C")


def _no_grads(params: Params) -> tuple[np.ndarray, ...]:
    """Width-0 placeholders for the gradients `run` writes only in GRADIENTS mode."""
    dtype = params.dtype
    return (
        np.empty((params.n_in, 0), dtype),
        np.empty(0, dtype),
        np.empty((params.n_out, 0), dtype),
        np.empty(0, dtype),
    )


class NumbaBackend:
    name = "numba"

    def forward(self, params: Params, X: np.ndarray, activation: str = "relu") -> Forward:
        check_choice("activation", activation, ACTIVATIONS)
        X = check_X(params, X)
        order = np.arange(len(X))
        *_, Z1, A1, Z2, P = _run(
            FORWARD, params, X, _NO_LABELS, order, len(X), 0.0, activation, _no_grads(params)
        )
        return Forward(Z1, A1, Z2, P)

    def loss_and_grads(
        self, params: Params, X: np.ndarray, y: np.ndarray, activation: str = "relu"
    ) -> tuple[float, Grads]:
        check_choice("activation", activation, ACTIVATIONS)
        X = check_X(params, X)
        y = check_y(params, X, y)
        dW1 = np.zeros_like(params.W1)  # rows of features that are zero in all of X stay 0
        db1, db2 = np.empty_like(params.b1), np.empty_like(params.b2)
        dW2T = np.empty((params.n_out, params.hidden), params.dtype)  # (n_out, H)
        loss_sum, *_ = _run(
            GRADIENTS,
            params,
            X,
            y,
            np.arange(len(X)),
            len(X),
            0.0,
            activation,
            (dW1, db1, dW2T, db2),
        )
        loss = loss_sum / len(X) if len(X) else float("nan")
        return loss, Grads(dW1, db1, np.ascontiguousarray(dW2T.T), db2)

    def train_epoch(
        self,
        params: Params,
        X: np.ndarray,
        y: np.ndarray,
        order: np.ndarray,
        batch_size: int,
        lr: float,
        activation: str = "relu",
    ) -> tuple[float, float]:
        X = check_X(params, X)
        y = check_y(params, X, y)
        order = check_epoch_args(params, X, order, batch_size, lr, activation)
        loss_sum, hits, *_ = _run(
            TRAIN, params, X, y, order, batch_size, lr, activation, _no_grads(params)
        )
        return loss_sum / len(order), hits / len(order)

    def predict_proba(self, params: Params, X: np.ndarray, activation: str = "relu") -> np.ndarray:
        return self.forward(params, X, activation).P

    @contextlib.contextmanager
    def threads(self, n: int | None) -> Iterator[None]:
        """Run the block with n threads (None: as is), then restore the previous count.
        Numba keeps the count per Python thread, so other threads are not affected."""
        if n is None:
            yield
            return
        most = numba.config.NUMBA_NUM_THREADS
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= most:
            raise ValueError(
                f"threads must be a whole number from 1 to {most} "
                f"(numba.config.NUMBA_NUM_THREADS); got {n!r}"
            )
        previous = numba.get_num_threads()
        numba.set_num_threads(int(n))
        try:
            yield
        finally:
            numba.set_num_threads(previous)

    @contextlib.contextmanager
    def compilation(self, say: Callable[[str], None] | None) -> Iterator[Compilation]:
        """Numba's compile events for the kernels' entry point during the block: a cache miss
        that compiles, not a cache load."""
        record = Compilation()
        with event.install_listener("numba:compile", _CompileListener(record, say)):
            yield record


class _CompileListener(event.Listener):
    """Times the compiling of `run` (which compiles every kernel it calls)."""

    def __init__(self, record: Compilation, say: Callable[[str], None] | None) -> None:
        self.record, self.say = record, say
        self.started = 0.0

    def on_start(self, ev: event.Event) -> None:
        if ev.data["dispatcher"] is run:
            self.started = time.perf_counter()
            if self.say is not None:
                self.say(COMPILE_NOTICE)

    def on_end(self, ev: event.Event) -> None:
        if ev.data["dispatcher"] is run:
            self.record.seconds = (self.record.seconds or 0.0) + time.perf_counter() - self.started
