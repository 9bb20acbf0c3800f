"""The one training loop behind `python -m fastnn.train`, MLPClassifier and MLPRegressor: epochs
in a given sample order, checked for divergence after each one, stopped cleanly by Ctrl-C (or
SIGTERM); and evaluation in chunks, by the output kind (fastnn.core.model.OUTPUTS)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fastnn.backends import Backend
from fastnn.backends.base import check_X
from fastnn.core import interrupt
from fastnn.core.augment import Augmentation, check_augment
from fastnn.core.dropout import Dropout, check_rates
from fastnn.core.metrics import loss_of, score_of
from fastnn.core.model import Params
from fastnn.core.optim import Optimizer, OptimizerState, Schedule
from fastnn.core.sparse import SparseRows

PROBE_ROWS = 64  # training rows looked at after each epoch to judge the network's health
# A mean epoch loss this many times the starting loss (or the chance-level loss ln(n_classes),
# if larger) is a blow-up. Measured on 20,000 MNIST rows, hidden 128, batch 128, starting loss
# 2.37: the first epoch's loss was 0.48, 0.82 and 2.83 at lr 0.5, 1 and 2 (still training),
# 15.8 at lr 5 (collapsed, caught as such), 427 at lr 10 and 2.9e5 at lr 50.
BLOWUP_FACTOR = 10
STOP_NOTICE = (  # "{signal}": Ctrl-C or SIGTERM (see fastnn.core.interrupt)
    "{signal}: stopping after this epoch and keeping its weights ({signal} again to quit now)"
)


class TrainingDiverged(FloatingPointError):
    """The loss blew up or stopped being finite; the weights from before the epoch that did it
    are kept."""


class TrainingCollapsedWarning(UserWarning):
    """Training stopped because the network gave one output for every input; the weights from
    before the epoch that did it are kept."""


class EpochResult(NamedTuple):
    epoch: int  # counted from 1 over the model's life
    loss: float  # mean over the epoch, each batch measured before its update
    train_accuracy: float  # nan for regression (see Backend.train_epoch)
    seconds: float
    learning_rate: float  # the mean of the epoch's per-batch rates (cosine moves within one)


class Outcome(NamedTuple):
    epochs_run: int  # epochs completed (and kept) by this call
    interrupted: int | None  # the signal that stopped it: SIGINT (Ctrl-C), SIGTERM, or None
    diverged: str | None  # why training stopped on divergence; that epoch was undone
    collapsed: bool  # the divergence was a collapse to one output (the weights stay finite)
    compile_seconds: float | None  # time spent compiling kernels (not loading them), if any


def epoch_order(rng: np.random.Generator | None, n: int, batch_size: int) -> np.ndarray:
    """The sample order of one epoch: a fresh permutation, or 0..n-1 without an rng or when
    one batch holds every row (the same step in any order, but for rounding)."""
    return np.arange(n) if rng is None or batch_size >= n else rng.permutation(n)


def batch_rows(batch_size: int | str, n: int) -> int:
    """Rows per step of a batch_size (a number, "auto": scikit-learn's min(200, n), or
    "full") over n rows."""
    return min(n, {"auto": 200, "full": n}.get(batch_size, batch_size))


class Seeds(NamedTuple):
    """The seeds of a run, from its one seed, whichever front end builds it (the command's
    --seed, MLPClassifier's random_state): the same seed gives the same bits from both."""

    init: int  # the first weights (fastnn.core.model.init_params)
    order: int  # the generator of each epoch's sample order
    dropout: int  # dropout's masks and augmentation's draws (fastnn.core.dropout)
    split: int  # the held-out rows: the command's dev set, early stopping's validation set

    @classmethod
    def of(cls, seed: int) -> Seeds:
        return cls(seed, seed + 1, seed, seed)


class _Probe(NamedTuple):
    """A fixed, evenly spaced handful of training rows: the loss of the starting weights, and
    after each epoch whether the outputs still depend on the inputs.

    It runs on the training backend. On the numba one, a NumPy matmul here would wake
    OpenBLAS's worker threads, which then spin into the next epoch on the cores its kernels
    need (a quarter more time an epoch at hidden 128, 2 threads)."""

    backend: Backend
    activation: str
    output: str
    X: np.ndarray
    y: np.ndarray
    varied: bool  # holds at least two different inputs, so equal outputs mean a collapse

    @classmethod
    def of(
        cls, backend: Backend, activation: str, output: str, X: np.ndarray, y: np.ndarray
    ) -> _Probe:
        rows = np.linspace(0, len(X) - 1, min(PROBE_ROWS, len(X))).astype(np.int64)
        Xp = X[rows]
        varied = Xp.rows_differ() if isinstance(Xp, SparseRows) else bool((Xp != Xp[0]).any())
        return cls(backend, activation, output, Xp, y[rows], varied)

    def outputs(self, params: Params) -> np.ndarray:
        return self.backend.predict_proba(params, self.X, self.activation, self.output)

    def loss(self, params: Params) -> float:
        return loss_of(self.outputs(params), self.y, self.output)

    def collapsed(self, params: Params) -> bool:
        """Whether distinct probe inputs all get the very same output."""
        P = self.outputs(params)
        return self.varied and bool((P == P[0]).all())


def _collapsed(params: Params, X: np.ndarray, probe: _Probe) -> bool:
    """Whether every training row gets the very same output. The probe rows decide when they
    differ; when they do not, all rows are looked at: units dead on the probe rows may still
    respond to others (seen: 4 hidden units on 80 random images)."""
    if not probe.collapsed(params):
        return False
    P = predict_proba(probe.backend, params, X, probe.activation, probe.output, check_input=False)
    return bool((P == P[0]).all())


COLLAPSE = (
    "the network collapsed: it gives the same output for every input (its hidden units no "
    "longer respond), so it can only predict one answer"
)


def _diagnosis(
    params: Params, X: np.ndarray, probe: _Probe, loss: float, bound: float
) -> str | None:
    """Why the network is no longer trainable after this epoch, or None if it is."""
    if not (np.isfinite(loss) and all(np.isfinite(a).all() for a in params.arrays())):
        return f"the loss became {loss} (not a finite number)"
    if loss > bound:
        return f"the loss blew up to {loss:.4g} (more than {BLOWUP_FACTOR}x where it started)"
    if _collapsed(params, X, probe):
        return COLLAPSE
    return None


class Stalls:
    """Counts epochs without progress, as scikit-learn's n_iter_no_change does: a score (higher
    is better) that does not beat the best so far by more than tol is one more stale epoch."""

    def __init__(self, tol: float, patience: int) -> None:
        self.tol, self.patience = tol, patience
        self.best, self.stale = -np.inf, 0

    def add(self, score: float) -> bool:
        """Record an epoch's score; True once `patience` epochs in a row were stale (the count
        then starts again)."""
        self.stale = self.stale + 1 if score <= self.best + self.tol else 0
        self.best = max(self.best, score)
        if self.stale < self.patience:
            return False
        self.stale = 0
        return True


class Training(NamedTuple):
    """How to train: the update rule and its state, the rates, the batches."""

    optimizer: Optimizer
    state: OptimizerState  # updated in place, with the weights
    schedule: Schedule  # updated in place: samples seen, the adaptive rate
    batch_size: int
    activation: str
    dropout_rates: tuple[float, ...] = ()  # per hidden layer; none dropped if all 0 or empty
    dropout_seed: int = 0
    input_dropout: float = 0.0  # the rate of the input features
    augmentation: Augmentation | None = None  # of the images, drawn afresh every epoch
    output: str = "softmax"  # the last layer's kind (fastnn.core.model.OUTPUTS)

    @classmethod
    def of(
        cls,
        settings: object,
        *,
        state: OptimizerState,
        schedule: Schedule,
        batch_size: int,
        n_hidden: int,
        n_features: int,
        seed: int,
        image_shape: tuple[int, int] | None = None,
        output: str = "softmax",
    ) -> Training:
        """How to train by `settings` (an estimator, or the training command's options: both
        name these attributes alike), with `seed` drawing dropout and augmentation."""
        return cls(
            optimizer=Optimizer.of(settings),
            state=state,
            schedule=schedule,
            batch_size=batch_size,
            activation=settings.activation,
            dropout_rates=check_rates(settings.dropout, n_hidden),
            dropout_seed=seed,
            input_dropout=float(settings.input_dropout),
            augmentation=check_augment(settings.augment, n_features, image_shape, seed),
            output=output,
        )

    def dropout(self, epoch: int) -> Dropout | None:
        """The dropout of the given epoch, or None without any."""
        dropout = Dropout(self.dropout_rates, self.dropout_seed, epoch, self.input_dropout)
        return dropout if dropout.active else None


def run_epochs(
    backend: Backend,
    params: Params,
    X: np.ndarray,
    y: np.ndarray,
    how: Training,
    *,
    epochs: int,
    first_epoch: int,
    rng: np.random.Generator | None,
    n_threads: int | None,
    after_epoch: Callable[[EpochResult], bool],
    say: Callable[[str], None] | None = None,
    sample_weight: np.ndarray | None = None,
) -> Outcome:
    """Train params (and the optimizer state) in place for up to `epochs` epochs, numbered from
    `first_epoch`.

    `after_epoch(result)` runs after each healthy epoch and returns True to stop early. An
    epoch after which the network diverged or collapsed is undone (params and optimizer state
    as before it) and training ends, saying why in Outcome.diverged. sample_weight: one weight
    a row of X (see Backend.train_epoch), or None. The first Ctrl-C (or, in a
    command, SIGTERM) ends the run after the current epoch (see fastnn.core.interrupt). `say` gets
    one-line notices, such as that the kernels are compiling.
    """
    activation, schedule, state = how.activation, how.schedule, how.state
    X = check_X(params, X)  # once, not every epoch: the epochs take it with check_input=False
    probe = _Probe.of(backend, activation, how.output, X, y)
    images = None if how.augmentation is None else np.empty_like(X)  # each epoch's, reused
    done, diverged, collapsed = 0, None, False
    with (
        interrupt.stop_requests(STOP_NOTICE) as stop,
        backend.threads(n_threads),
        backend.compilation(say) as compilation,
    ):
        bound = BLOWUP_FACTOR * max(probe.loss(params), math.log(max(params.n_out, 2)))
        for epoch in range(first_epoch, first_epoch + epochs):
            before, state_before = params.copy(), state.copy()
            rates = schedule.rates(state.step, len(X), how.batch_size)
            order = epoch_order(rng, len(X), how.batch_size)
            start = time.perf_counter()
            seen = X if images is None else backend.augment(X, how.augmentation.at(epoch), images)
            with np.errstate(over="ignore", invalid="ignore"):  # judged below instead
                loss, accuracy = backend.train_epoch(
                    params, seen, y, order, batch_size=how.batch_size, lr=rates,
                    activation=activation, optimizer=how.optimizer, state=state,
                    dropout=how.dropout(epoch), output=how.output, sample_weight=sample_weight,
                    check_input=False,
                )  # fmt: skip
                seconds = time.perf_counter() - start
                problem = _diagnosis(params, X, probe, loss, bound)
            if problem is not None:
                for param, saved in zip(params.arrays(), before.arrays(), strict=True):
                    param[...] = saved
                state.restore(state_before)
                collapsed = problem == COLLAPSE
                lr = float(rates.max())
                diverged = (
                    f"training diverged in epoch {epoch}: {problem}. The learning rate {lr:g} "
                    f"is too high for this setup; try a smaller one, e.g. {lr / 10:g}."
                    f"{_scale_advice(X)} The weights from before this epoch were kept."
                )
                break
            schedule.samples_seen += len(X)
            done += 1
            result = EpochResult(epoch, loss, accuracy, seconds, float(rates.mean()))
            if after_epoch(result) or stop.requested:
                break
    return Outcome(done, stop.signal, diverged, collapsed, compilation.seconds)


# Inputs larger than this (in absolute value) get a word on scaling when training diverges.
LARGE_INPUT = 10.0


def _scale_advice(X: np.ndarray | SparseRows) -> str:
    """For a diverged run: a sentence on the inputs' scale if they are far from unit size (float
    pixels of 0-255, unscaled features), which a smaller rate only papers over; else ""."""
    values = X.data if isinstance(X, SparseRows) else X
    if values.dtype == np.uint8 or values.size == 0:  # pixels: the kernels scale them by 1/255
        return ""
    largest = max(-float(values.min()), float(values.max()))  # no copy of X as np.abs makes
    if not largest > LARGE_INPUT:
        return ""
    return (
        f" The inputs reach {largest:.3g} in absolute value: scaling them to about unit size "
        f"first (pixels / 255, or each feature to mean 0 and variance 1) matters more."
    )


def predict_proba(
    backend: Backend,
    params: Params,
    X: np.ndarray,
    activation: str,
    output: str = "softmax",
    check_input: bool = True,
) -> np.ndarray:
    """The outputs (n, n_out), probabilities or for "identity" the predictions; X checked once
    (`check_X`), unless check_input is False: it has been. One call of the backend, which
    bounds its own memory: the reference a chunk of rows at a time, Numba's forward pass with
    each member's activations of a chunk."""
    X = check_X(params, X, check_input)
    return backend.predict_proba(params, X, activation, output, check_input=False)


class Evaluation(NamedTuple):
    loss: float  # mean loss (see `loss_of`), without the L2 penalty (nan on no rows)
    score: float  # `score_of`: accuracy, subset accuracy or R^2 (nan on no rows)


def evaluate(
    backend: Backend,
    params: Params,
    X: np.ndarray,
    y: np.ndarray,
    activation: str,
    output: str = "softmax",
    sample_weight: np.ndarray | None = None,
) -> Evaluation:
    """The loss and score of params on (X, y), from one forward pass; weighted means over the
    rows with sample_weight."""
    if len(X) == 0:
        return Evaluation(float("nan"), float("nan"))
    P = predict_proba(backend, params, X, activation, output)
    return Evaluation(loss_of(P, y, output, sample_weight), score_of(P, y, output, sample_weight))
