"""The pieces of a training run that the command line and the estimator share: one guarded
epoch, evaluation in chunks, and the sample order of each epoch."""

from __future__ import annotations

import time

import numpy as np

from fastnn.backends import Backend
from fastnn.model import Params

EVAL_CHUNK = 8192  # rows per forward pass when evaluating, to bound memory on large sets


class TrainingDiverged(FloatingPointError):
    """The loss or the weights stopped being finite numbers."""


def epoch_order(rng: np.random.Generator | None, n: int) -> np.ndarray:
    """The sample order of one epoch: a fresh permutation, or 0..n-1 without an rng."""
    return np.arange(n) if rng is None else rng.permutation(n)


def guarded_epoch(
    backend: Backend,
    params: Params,
    X: np.ndarray,
    y: np.ndarray,
    order: np.ndarray,
    batch_size: int,
    lr: float,
    activation: str,
    epoch: int,
) -> tuple[float, float, float]:
    """One epoch of `backend.train_epoch`; returns (loss, train accuracy, seconds).

    If the epoch ends with a non-finite loss or weights, params are put back as they were
    before it and TrainingDiverged says so.
    """
    before = params.copy()
    start = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below instead
        loss, accuracy = backend.train_epoch(params, X, y, order, batch_size, lr, activation)
    seconds = time.perf_counter() - start
    if not (np.isfinite(loss) and all(np.isfinite(a).all() for a in params.arrays())):
        for param, saved in zip(params.arrays(), before.arrays(), strict=True):
            param[...] = saved
        raise TrainingDiverged(
            f"training diverged in epoch {epoch}: the loss became {loss} (not a finite number). "
            f"The learning rate {lr:g} is too high for this setup; try a smaller one, "
            f"e.g. {lr / 10:g}. The weights from before this epoch were kept."
        )
    return loss, accuracy, seconds


def predict_proba(backend: Backend, params: Params, X: np.ndarray, activation: str) -> np.ndarray:
    """Class probabilities (n, n_out), computed chunk by chunk."""
    chunks = [
        backend.predict_proba(params, X[start : start + EVAL_CHUNK], activation)
        for start in range(0, len(X), EVAL_CHUNK)
    ]
    if not chunks:
        return np.zeros((0, params.n_out), dtype=params.dtype)
    return np.concatenate(chunks)


def accuracy(
    backend: Backend, params: Params, X: np.ndarray, y: np.ndarray, activation: str
) -> float:
    if len(X) == 0:
        return float("nan")
    return float((predict_proba(backend, params, X, activation).argmax(axis=1) == y).mean())
