"""The numbers fastnn.report shows, computed from a model's predictions on labelled images: the
confusion matrix, the most frequent confusions, per-class precision, recall and F1, the most
confident mistakes and the strongest hidden units.

Each costs memory and time in proportion to the images and the classes, never to the classes
squared (a model may have thousands): the confusion matrix of many classes is binned."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

MISTAKES = 36
MAX_UNITS = 64
CONFUSIONS = 20  # of the most frequent (true, predicted) pairs


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, k: int, per_cell: int = 1) -> np.ndarray:
    """counts[i, j]: the images of class i predicted as class j; with per_cell > 1, of the
    classes i * per_cell ... (i + 1) * per_cell - 1 predicted as one of j * per_cell ..., a
    matrix of ceil(k / per_cell) rows and columns."""
    cells = -(-k // per_cell)
    # In int64: a product of uint8 labels would wrap round.
    true, guessed = (np.asarray(a, dtype=np.int64) // per_cell for a in (y, predicted))
    return np.bincount(true * cells + guessed, minlength=cells * cells).reshape(cells, cells)


def confusions(
    y: np.ndarray, predicted: np.ndarray, count: int = CONFUSIONS
) -> tuple[np.ndarray, np.ndarray]:
    """The `count` most frequent wrong (true, predicted) pairs of classes, as rows of a (m, 2)
    array, most images first (ties: by true class, then predicted), and the images of each."""
    wrong = predicted != y
    pairs = np.stack([y[wrong], predicted[wrong]], axis=1)
    pairs, images = np.unique(pairs, axis=0, return_counts=True)
    order = np.argsort(-images, kind="stable")[:count]  # np.unique sorted the pairs
    return pairs[order], images[order]


class ClassScores(NamedTuple):
    precision: np.ndarray  # per class; NaN for a class never predicted
    recall: np.ndarray  # NaN for a class with no images
    f1: np.ndarray  # their harmonic mean; 0 when both are 0, NaN when either is NaN
    support: np.ndarray  # images of each class


def class_scores(y: np.ndarray, predicted: np.ndarray, k: int) -> ClassScores:
    hits = np.bincount(y[predicted == y], minlength=k).astype(np.float64)
    guessed, support = np.bincount(predicted, minlength=k), np.bincount(y, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(guessed > 0, hits / guessed, np.nan)
        recall = np.where(support > 0, hits / support, np.nan)
        total = precision + recall  # NaN if either is
        f1 = np.where(total > 0, 2 * precision * recall / total, np.where(total == 0, 0, np.nan))
    return ClassScores(precision, recall, f1, support)


def weakest_classes(s: ClassScores, count: int) -> np.ndarray:
    """Up to `count` classes, the lowest F1 first (ties: more images first, then the class
    order); those whose F1 is n/a last."""
    f1 = np.where(np.isnan(s.f1), np.inf, s.f1)
    return np.lexsort((-s.support, f1))[:count]


def confident_mistakes(proba: np.ndarray, y: np.ndarray, count: int = MISTAKES) -> np.ndarray:
    """The rows of up to `count` wrong predictions, those given the highest probability first
    (ties in row order)."""
    predicted = proba.argmax(axis=1)
    wrong = np.flatnonzero(predicted != y)
    confidence = proba[wrong, predicted[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")[:count]]


def strongest_units(W: np.ndarray, count: int = MAX_UNITS) -> np.ndarray:
    """The first layer's hidden units (columns of W) with the longest incoming weight vectors,
    longest first: those that react most strongly to their input."""
    return np.argsort(-np.linalg.norm(W, axis=0), kind="stable")[:count]
