"""What is timed: the benchmark workloads, their data and FLOP counts, and the contenders that
run them. `python -m fastnn.bench` and the pytest-benchmark suite in benchmarks/ share these,
so both time exactly the same thing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from fastnn.backends import Backend
from fastnn.backends.base import check_X
from fastnn.bench.data import (
    N_CLASSES,
    REGRESSION,
    SPARSE,
    SPARSE_CLASSES,
    SPARSE_FEATURES,
    SPARSE_NON_ZEROS,
    SPARSE_ROWS,
    TABULAR,
    TABULAR_FEATURES,
    TABULAR_ROWS,
    standardise,
)
from fastnn.core.hyperparameters import REGRESSION_SGD_STEP
from fastnn.core.model import Params, init_params, layer_sizes
from fastnn.core.optim import Optimizer, OptimizerState
from fastnn.core.sparse import is_sparse
from fastnn.data import scale

if TYPE_CHECKING:  # scipy is optional: only the sparse workload's data is a scipy matrix
    from scipy.sparse import csr_matrix

LEARNING_RATE = 0.1  # plain SGD's, as the benchmark has always used: numbers stay comparable
# Plain SGD's on the dense workloads, as issue 28's table measured them, so that its numbers
# and these compare. The rate changes no work done: 0.1 trains these as well (2 epochs of 30,000
# standardised MNIST rows, hidden 512: train accuracy 94.9% at 0.1, 93.6% at 0.05).
DENSE_LEARNING_RATE = 0.05
# Plain SGD's on the regression workload: the library's default for regression (rates near
# the classifiers' diverge on a squared error).
REGRESSION_LEARNING_RATE = REGRESSION_SGD_STEP
# Plain SGD's on the sparse workload: the rate that learnt most in two and three epochs of
# those tried. Trained from the workload's weights on 90,000 of its rows (PyTorch's peer for
# 0.1 and 2.0, the same SGD written out in SciPy for the others), accuracy on the other 10,000
# after epochs 1, 2 and 3: 0.1: 12%, 24% (two epochs); 0.3: 21%, 41%, 51%; 0.5: 25%, 31%,
# 38%; 0.7: 17%, 25%, 39%; 1.0: 16%, 21%, 8% (diverging); 2.0: 5% (diverged). Chance is 5%.
# Unit-length rows of about 80 non-zeros are small inputs, and most features are seen in few
# batches: slow for plain SGD at any rate.
SPARSE_LEARNING_RATE = 0.3
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
# On the dense workloads there is one form for all: no contender starts from pixels.
DENSE_INPUT = (
    "the workload's float32 X, one array that every contender takes as it is (MNIST "
    "standardised per feature, (X/255 - mean) / std over the training rows, once outside the "
    f"timing; the tabular set as generated: {TABULAR_ROWS:,} rows of {TABULAR_FEATURES} "
    "features, 10 classes around random centres; the regression set: as many rows and "
    "features, one target; see fastnn/bench/data.py)"
)
# On the sparse workload, too, one form for all: the CSR matrix as generated.
SPARSE_INPUT = (
    f"the workload's float32 CSR matrix (scipy.sparse, sorted indices; {SPARSE_ROWS:,} rows of "
    f"{SPARSE_FEATURES:,} features, about {SPARSE_NON_ZEROS} non-zeros a row, tf-idf values, rows "
    f"of unit length, {SPARSE_CLASSES} classes; see fastnn/bench/data.py), that every contender "
    "takes as it is: fastnn and scikit-learn whole, PyTorch each batch's rows of it as a "
    "sparse COO tensor, built inside the timing"
)
DATA_NAMES = {
    "mnist": "MNIST",
    "fashion-mnist": "Fashion-MNIST",
    TABULAR: "synthetic tabular",
    REGRESSION: "synthetic regression",
    SPARSE: "synthetic sparse text",
}


@dataclass(frozen=True)
class Workload:
    name: str
    # "mnist", "fashion-mnist" (uint8 pixels), TABULAR or REGRESSION (float features), or
    # SPARSE (a CSR matrix of float features)
    dataset: str
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
    # The pixels standardised per feature (see bench.data.standardise): dense float inputs.
    standardise: bool = False
    # The last layer (fastnn.core.model.OUTPUTS): softmax over `classes` classes, or identity:
    # one target a sample, on scikit-learn's squared error.
    output: str = "softmax"
    classes: int = N_CLASSES

    @property
    def full_batch(self) -> bool:
        return self.batch_size is None

    @property
    def dense(self) -> bool:
        """Whether the inputs are float features rather than pixels (see DENSE_INPUT)."""
        return self.standardise or self.dataset in (TABULAR, REGRESSION)

    @property
    def sparse(self) -> bool:
        """Whether the inputs are a CSR matrix (see SPARSE_INPUT)."""
        return self.dataset == SPARSE

    @property
    def n_out(self) -> int:
        return 1 if self.output == "identity" else self.classes

    @property
    def optimizer(self) -> Optimizer:
        return Optimizer(solver=self.solver)

    def label(self) -> str:
        batch = "full batch (1 step)" if self.full_batch else f"batch {self.batch_size}"
        solver = f"{self.solver} lr {self.learning_rate:g}"
        return f"{self._data()}, {self._layers()}, {batch}, {self.dtype}, {solver}"

    def network_label(self) -> str:
        """The data and the network, without how it is trained."""
        return f"{self._data()}, {self._layers()}, {self.dtype}"

    def _data(self) -> str:
        return DATA_NAMES[self.dataset] + (" standardised" if self.standardise else "")

    def _layers(self) -> str:
        return f"hidden {'-'.join(map(str, self.hidden))}"


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
    # Dense inputs: what the sparse first layer cannot skip (issue 28).
    Workload(
        "mnist-std-h128", "mnist", (128,), 128, "float32", "he",
        learning_rate=DENSE_LEARNING_RATE, standardise=True,
    ),
    Workload(
        "mnist-std-h512", "mnist", (512,), 128, "float32", "he",
        learning_rate=DENSE_LEARNING_RATE, standardise=True,
    ),
    Workload(
        "tabular-h512", TABULAR, (512,), 128, "float32", "he", learning_rate=DENSE_LEARNING_RATE
    ),
    # A regressor on dense features (issue 30).
    Workload(
        "regression-h512", REGRESSION, (512,), 128, "float32", "he",
        learning_rate=REGRESSION_LEARNING_RATE, output="identity",
    ),
    # Sparse text-like input, taken as a CSR matrix (issue 30).
    Workload(
        "sparse-h128", SPARSE, (128,), 128, "float32", "he",
        learning_rate=SPARSE_LEARNING_RATE, classes=SPARSE_CLASSES,
    ),
)  # fmt: skip
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)
# The workloads the other libraries run too: one hidden layer with SGD, two, Adam, the dense
# ones, the regressor and the sparse one.
PEER_WORKLOADS = (
    "mnist-h128", "mnist-h256-128", "mnist-h128-adam", "mnist-std-h128", "mnist-std-h512",
    "tabular-h512", "regression-h512", "sparse-h128",
)  # fmt: skip


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
    # (n, n_in) uint8 pixels, a dense workload's floats in its dtype, or the sparse workload's
    # CSR matrix of them
    X: np.ndarray | csr_matrix
    y: np.ndarray  # int64 labels (n,), or a regression's targets (n, 1) in its dtype
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
        return flops_per_sample(self.X.shape[1], self.workload.hidden, self.workload.n_out)

    @property
    def counted_flops_per_sample(self) -> int | None:
        """The FLOPs a sample counts in the timed tables' dense-equivalent GFLOP/s: the dense
        network's; none on a CSR matrix, where every feature times the hidden units would
        count hundreds of times the work anyone does (see work_flops_per_sample)."""
        return None if is_sparse(self.X) else self.flops_per_sample

    @property
    def sparse_flops_per_sample(self) -> float:
        """The FLOPs of FLOP_FORMULA that a kernel skipping zero inputs does: the first
        layer's over the rows' mean number of non-zero features instead of all of them."""
        rows = self.X.shape[0]
        non_zero = self.X.count_nonzero() if is_sparse(self.X) else np.count_nonzero(self.X)
        non_zero = float(non_zero) / max(rows, 1)
        dense = self.flops_per_sample
        first = self.X.shape[1] * self.workload.hidden[0]  # fan_in * fan_out of layer 1
        return dense - 4 * first + 4 * non_zero * self.workload.hidden[0]

    def work_flops_per_sample(self, dense_first_layer: bool) -> float:
        """The FLOPs of FLOP_FORMULA that the numba kernels do, with the first layer over
        every input (dense) or over the non-zero ones only (sparse)."""
        return self.flops_per_sample if dense_first_layer else self.sparse_flops_per_sample

    def scaled(self) -> np.ndarray:
        """X / 255 in the workload's dtype (a dense workload's X itself), computed once and
        shared by every contender."""
        if self._scaled is None:
            as_is = self.X.dtype == np.dtype(self.workload.dtype)
            self._scaled = self.X if as_is else scale(self.X, self.workload.dtype)
        return self._scaled

    def input_form(self, contender: str) -> str:
        """How the contender (a backend's name, or another library) takes X."""
        if self.workload.sparse:
            return SPARSE_INPUT
        if self.workload.dense:
            return DENSE_INPUT
        return INPUT_FORMS.get(contender, "uint8 pixels as loaded")


def prepare(
    w: Workload,
    X: np.ndarray,
    y: np.ndarray,
    rows: int | None = None,
    full_batch_iters: int = 1,
) -> Prepared:
    """The workload on a training set (see bench.data.load); `rows` keeps only the first rows
    (quick runs, tests), which are the rows a standardised workload's statistics come from."""
    if w.full_batch:
        X, y = X[FULL_BATCH_HELD_OUT:], y[FULL_BATCH_HELD_OUT:]
    X, y = X[:rows], y[:rows]
    n = X.shape[0]
    if n == 0:
        raise ValueError(f"workload {w.name}: no training rows left")
    if w.standardise:
        X = standardise(X, w.dtype)
    if not is_sparse(X):  # a CSR matrix's arrays are contiguous already
        X = np.ascontiguousarray(X)
    # A full batch has nothing to shuffle, as in training; mini-batches get one fixed shuffle.
    order = np.arange(n) if w.full_batch else np.random.default_rng(SEED).permutation(n)
    regression = w.output == "identity"  # targets (n, 1) in the workload's dtype
    y = np.asarray(y, dtype=w.dtype).reshape(n, 1) if regression else np.asarray(y, np.int64)
    return Prepared(
        workload=w,
        X=X,
        y=np.ascontiguousarray(y),
        order=order,
        batch_size=n if w.full_batch else w.batch_size,
        iterations=full_batch_iters if w.full_batch else 1,
        params0=init_params(X.shape[1], w.hidden, w.n_out, w.init, SEED, w.dtype),
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
    X = p.scaled() if backend.name == "numpy" else p.X  # the same array on dense workloads
    # Checked once, and each epoch takes it as checked, as the training loop does.
    X = check_X(p.params0, X)
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
                output=w.output,
                check_input=False,
            )

    return Contender(
        name=backend.name,
        input_form=p.input_form(backend.name),
        setup=setup,
        run=run,
        samples_per_run=p.samples_per_run,
        epochs_per_run=p.iterations,
    )
