"""The losses and scores of a network's outputs, by their kind (fastnn.core.model.OUTPUTS), in
float64: what evaluation, early stopping and the estimators' `score` report. The losses are
scikit-learn's (sklearn.neural_network's log_loss, binary_log_loss and squared_loss); the
scores its accuracy_score (subset accuracy for multilabel) and r2_score. Each takes optional
sample weights (n,), for a weighted mean over the samples, as scikit-learn's do."""

from __future__ import annotations

import numpy as np


def _mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    """The mean of per-sample values, weighted if weights are given."""
    return float(values.mean() if weights is None else np.average(values, weights=weights))


def cross_entropy(P: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The mean of -log P[i, y[i]], in float64; a probability of 0 counts as the smallest
    positive float64, so the loss stays finite."""
    picked = P[np.arange(len(y)), y].astype(np.float64)
    return _mean(-np.log(np.maximum(picked, np.finfo(np.float64).tiny)), weights)


def binary_log_loss(P: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """scikit-learn's binary_log_loss of probabilities P against an indicator matrix Y: the
    binary cross-entropy summed over the labels, averaged over the samples, P clipped to
    [eps, 1 - eps] (eps of P's dtype)."""
    eps = np.finfo(P.dtype).eps
    P = np.clip(P, eps, 1 - eps).astype(np.float64)
    return _mean(-(Y * np.log(P) + (1 - Y) * np.log(1 - P)).sum(axis=1), weights)


def squared_loss(P: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """scikit-learn's squared_loss: half the squared error averaged over samples and outputs."""
    squares = (P.astype(np.float64) - Y) ** 2
    if weights is None:
        return float(0.5 * squares.mean())
    return 0.5 * _mean(squares.mean(axis=1), weights)


def r2_score(P: np.ndarray, Y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The coefficient of determination of predictions P (n, k) for targets Y (n, k), averaged
    over the k outputs with equal weights, as scikit-learn's r2_score: 1 - (sum of squared
    errors) / (sum of squared deviations from the mean), each sum over the samples weighted by
    `weights` if given. An output whose targets are all equal scores 1 if predicted exactly,
    else 0; fewer than two samples give nan."""
    if len(Y) < 2:
        return float("nan")
    w = np.ones((len(Y), 1)) if weights is None else weights.reshape(-1, 1)
    Y = Y.astype(np.float64)
    errors = (w * (Y - P) ** 2).sum(axis=0)
    mean = (w * Y).sum(axis=0) / w.sum()
    spread = (w * (Y - mean) ** 2).sum(axis=0)
    flat = spread == 0
    exact = (errors == 0).astype(np.float64)
    scores = np.where(flat, exact, 1 - errors / np.where(flat, 1, spread))
    return float(scores.mean())


def loss_of(P: np.ndarray, y: np.ndarray, output: str, weights: np.ndarray | None = None) -> float:
    """The mean loss of outputs P against y by the output kind, without the L2 penalty."""
    if output == "softmax":
        return cross_entropy(P, y, weights)
    if output == "logistic":
        return binary_log_loss(P, y, weights)
    return squared_loss(P, y, weights)


def score_of(P: np.ndarray, y: np.ndarray, output: str, weights: np.ndarray | None = None) -> float:
    """How well outputs P answer y, higher is better: accuracy for "softmax", subset accuracy
    (every label right) for "logistic", R^2 for "identity"."""
    if output == "softmax":
        return _mean(P.argmax(axis=1) == y, weights)
    if output == "logistic":
        return _mean(((P > 0.5) == (y > 0.5)).all(axis=1), weights)
    return r2_score(P, y, weights)
