"""What is timed: the benchmark workloads, their data and FLOP counts, and the contenders that
run them. `python -m fastnn.bench` and the pytest-benchmark suite in benchmarks/ share these,
so both time exactly the same thing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnn.backends import Backend
from fastnn.data import scale
from fastnn.model import Params, init_params

N_CLASSES = 10
LEARNING_RATE = 0.1
SEED = 0
# The tutorials hold out the first 1,000 rows as a dev set and step on the other 59,000.
FULL_BATCH_HELD_OUT = 1000
FLOP_FORMULA = (
    "per sample, forward 2*(n_in*H + H*n_out) + backward 2*H*n_out (dW2) + 2*H*n_out (dA1) "
    "+ 2*n_in*H (dW1) = 4*n_in*H + 6*H*n_out, ignoring the O(H) terms of biases, activations "
    "and softmax"
)
# Each contender gets its best input form; the JSON and the printed notes say which.
INPUT_FORMS = {
    "numpy": "float X/255 in the workload's dtype, scaled once outside the timing "
    "(as the tutorials do)",
    "numba": "uint8 pixels as loaded; the kernels scale them as they read them",
}


@dataclass(frozen=True)
class Workload:
    name: str
    dataset: str  # "mnist" or "fashion-mnist"
    hidden: int
    batch_size: int | None  # None: the full batch, one gradient step per iteration
    dtype: str
    init: str  # the scheme of the preset this workload mirrors

    @property
    def full_batch(self) -> bool:
        return self.batch_size is None

    def label(self) -> str:
        data = "MNIST" if self.dataset == "mnist" else "Fashion-MNIST"
        batch = "full batch (1 step)" if self.full_batch else f"batch {self.batch_size}"
        return f"{data}, hidden {self.hidden}, {batch}, {self.dtype}"


WORKLOADS = (
    Workload("mnist-h10", "mnist", 10, 128, "float32", "he"),
    Workload("mnist-h128", "mnist", 128, 128, "float32", "he"),
    Workload("mnist-h512", "mnist", 512, 128, "float32", "he"),
    Workload("mnist-full-h10", "mnist", 10, None, "float64", "uniform"),
    Workload("fashion-h128", "fashion-mnist", 128, 128, "float32", "he"),
)
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)
PEER_WORKLOAD = "mnist-h128"  # the one workload the other libraries run too


def workload(name: str) -> Workload:
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOAD_NAMES)}")


def flops_per_sample(n_in: int, hidden: int, n_out: int = N_CLASSES) -> int:
    """Dense multiply-add FLOPs of one training sample (see FLOP_FORMULA)."""
    forward = 2 * (n_in * hidden + hidden * n_out)
    backward = 2 * hidden * n_out + 2 * hidden * n_out + 2 * n_in * hidden
    return forward + backward


@dataclass
class Prepared:
    """A workload made concrete: its rows, sample order and starting parameters."""

    workload: Workload
    X: np.ndarray  # uint8 pixels, (n, n_in)
    y: np.ndarray  # int64 labels
    order: np.ndarray  # the sample order every contender uses
    batch_size: int
    iterations: int  # train_epoch calls per timed run: 1, or K full-batch steps
    params0: Params
    _scaled: np.ndarray | None = None

    @property
    def samples_per_run(self) -> int:
        return len(self.order) * self.iterations

    @property
    def flops_per_sample(self) -> int:
        return flops_per_sample(self.X.shape[1], self.workload.hidden)

    def scaled(self) -> np.ndarray:
        """X / 255 in the workload's dtype, computed once and shared by every contender."""
        if self._scaled is None:
            self._scaled = scale(self.X, self.workload.dtype)
        return self._scaled


def prepare(
    w: Workload,
    X: np.ndarray,
    y: np.ndarray,
    rows: int | None = None,
    full_batch_iters: int = 1,
) -> Prepared:
    """The workload on a training set; `rows` keeps only the first rows (quick runs, tests)."""
    if w.full_batch:
        X, y = X[FULL_BATCH_HELD_OUT:], y[FULL_BATCH_HELD_OUT:]
    X, y = X[:rows], y[:rows]
    if len(X) == 0:
        raise ValueError(f"workload {w.name}: no training rows left")
    n = len(X)
    # A full batch has nothing to shuffle, as in training; mini-batches get one fixed shuffle.
    order = np.arange(n) if w.full_batch else np.random.default_rng(SEED).permutation(n)
    return Prepared(
        workload=w,
        X=np.ascontiguousarray(X),
        y=np.ascontiguousarray(y, dtype=np.int64),
        order=order,
        batch_size=n if w.full_batch else w.batch_size,
        iterations=full_batch_iters if w.full_batch else 1,
        params0=init_params(X.shape[1], w.hidden, N_CLASSES, w.init, SEED, w.dtype),
    )


@dataclass
class Contender:
    """One implementation of a prepared workload. `setup` builds fresh state untimed (the
    parameters are updated in place, so every run must start from the same ones); `run`
    is the timed part."""

    name: str
    input_form: str
    setup: Callable[[], Any]
    run: Callable[[Any], object]
    samples_per_run: int
    epochs_per_run: int = 1


def backend_contender(backend: Backend, p: Prepared) -> Contender:
    X = p.scaled() if backend.name == "numpy" else p.X

    def run(params: Params) -> None:
        for _ in range(p.iterations):
            backend.train_epoch(params, X, p.y, p.order, p.batch_size, LEARNING_RATE)

    return Contender(
        name=backend.name,
        input_form=INPUT_FORMS.get(backend.name, "uint8 pixels as loaded"),
        setup=p.params0.copy,
        run=run,
        samples_per_run=p.samples_per_run,
        epochs_per_run=p.iterations,
    )
