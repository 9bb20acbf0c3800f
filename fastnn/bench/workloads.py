"""What is timed: the benchmark workloads, their data and FLOP counts, and the contenders that
run them. `python -m fastnn.bench` and the pytest-benchmark suite in benchmarks/ share these,
so both time exactly the same thing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from fastnn.backends import Backend
from fastnn.data import scale
from fastnn.model import Params, init_params, layer_sizes
from fastnn.optim import Optimizer, OptimizerState

N_CLASSES = 10
LEARNING_RATE = 0.1  # plain SGD's, as the benchmark has always used: numbers stay comparable
ADAM_LEARNING_RATE = 0.001  # Adam's usual rate (scikit-learn's and PyTorch's default)
SEED = 0
# The tutorials hold out the first 1,000 rows as a dev set and step on the other 59,000.
FULL_BATCH_HELD_OUT = 1000
FLOP_FORMULA = (
    "per sample, over the layers l = 1..L from fan_in to fan_out units: forward "
    "2*sum(fan_in*fan_out), backward 2*sum(fan_in*fan_out) (dW of every layer) + 2*sum over "
    "l >= 2 of fan_in*fan_out (dA passed down to every layer but the first); with one hidden "
    "layer of H units 4*n_in*H + 6*H*n_out. Ignored: the O(units) terms of biases, "
    "activations and softmax, and the optimizer's few FLOPs per weight per batch (more for "
    "Adam than for SGD)"
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
    hidden: tuple[int, ...]  # units of each hidden layer
    batch_size: int | None  # None: the full batch, one gradient step per iteration
    dtype: str
    init: str  # the scheme of the preset this workload mirrors
    # The update rule: plain SGD, or Adam with scikit-learn's default betas and epsilon.
    solver: str = "sgd"
    learning_rate: float = LEARNING_RATE
    # For another solver: the workload that differs only in being plain SGD, which this one's
    # epoch time is set against (what the solver's extra work costs).
    sgd_twin: str | None = None

    @property
    def full_batch(self) -> bool:
        return self.batch_size is None

    @property
    def optimizer(self) -> Optimizer:
        return Optimizer(solver=self.solver)

    def label(self) -> str:
        data = "MNIST" if self.dataset == "mnist" else "Fashion-MNIST"
        layers = "-".join(map(str, self.hidden))
        batch = "full batch (1 step)" if self.full_batch else f"batch {self.batch_size}"
        solver = f"{self.solver} lr {self.learning_rate:g}"
        return f"{data}, hidden {layers}, {batch}, {self.dtype}, {solver}"


WORKLOADS = (
    Workload("mnist-h10", "mnist", (10,), 128, "float32", "he"),
    Workload("mnist-h128", "mnist", (128,), 128, "float32", "he"),
    Workload("mnist-h512", "mnist", (512,), 128, "float32", "he"),
    Workload("mnist-full-h10", "mnist", (10,), None, "float64", "uniform"),
    Workload("fashion-h128", "fashion-mnist", (128,), 128, "float32", "he"),
    Workload("mnist-h256-128", "mnist", (256, 128), 128, "float32", "he"),
    Workload(
        "mnist-h128-adam",
        "mnist",
        (128,),
        128,
        "float32",
        "he",
        solver="adam",
        learning_rate=ADAM_LEARNING_RATE,
        sgd_twin="mnist-h128",
    ),
)
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)
# The workloads the other libraries run too: one hidden layer with SGD, two, and Adam.
PEER_WORKLOADS = ("mnist-h128", "mnist-h256-128", "mnist-h128-adam")


def workload(name: str) -> Workload:
    for w in WORKLOADS:
        if w.name == name:
            return w
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOAD_NAMES)}")


def flops_per_sample(n_in: int, hidden: int | tuple[int, ...], n_out: int = N_CLASSES) -> int:
    """Dense multiply-add FLOPs of one training sample (see FLOP_FORMULA)."""
    sizes = layer_sizes(n_in, hidden, n_out)
    weights = [fan_in * fan_out for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)]
    forward = 2 * sum(weights)
    backward = 2 * sum(weights) + 2 * sum(weights[1:])  # the first layer passes no dA down
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

    @property
    def sparse_flops_per_sample(self) -> float:
        """The FLOPs of FLOP_FORMULA that a kernel skipping zero inputs does: the first
        layer's over the rows' mean number of non-zero features instead of all of them."""
        non_zero = float(np.count_nonzero(self.X)) / max(len(self.X), 1)
        dense = flops_per_sample(self.X.shape[1], self.workload.hidden)
        first = self.X.shape[1] * self.workload.hidden[0]  # fan_in * fan_out of layer 1
        return dense - 4 * first + 4 * non_zero * self.workload.hidden[0]

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


class Training(NamedTuple):
    """What one timed run trains, both updated in place."""

    params: Params
    state: OptimizerState


@dataclass
class Contender:
    """One implementation of a prepared workload. `setup` builds fresh state untimed (the
    parameters and the optimizer's state are updated in place, so every run must start from
    the same ones); `run` is the timed part."""

    name: str
    input_form: str
    setup: Callable[[], Any]
    run: Callable[[Any], object]
    samples_per_run: int
    epochs_per_run: int = 1


def backend_contender(backend: Backend, p: Prepared) -> Contender:
    X = p.scaled() if backend.name == "numpy" else p.X
    w = p.workload

    def setup() -> Training:
        params = p.params0.copy()
        return Training(params, OptimizerState.fresh(w.optimizer, params))

    def run(training: Training) -> None:
        for _ in range(p.iterations):  # full-batch steps go on from each other, as in training
            backend.train_epoch(
                training.params,
                X,
                p.y,
                p.order,
                p.batch_size,
                w.learning_rate,
                optimizer=w.optimizer,
                state=training.state,
            )

    return Contender(
        name=backend.name,
        input_form=INPUT_FORMS.get(backend.name, "uint8 pixels as loaded"),
        setup=setup,
        run=run,
        samples_per_run=p.samples_per_run,
        epochs_per_run=p.iterations,
    )
