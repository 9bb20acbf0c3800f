"""Digits drawn on paper, as a photo or a scan of one shows them, and a model to feed them to
in the tests of fastnn.predict and fastnn.serve."""

from __future__ import annotations

import numpy as np

from fastnn import MLPClassifier


def paper_image(ink: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] -> RGB uint8: dark blue ink on cream paper."""
    paper, pen = np.array([245.0, 238.0, 220.0]), np.array([25.0, 35.0, 110.0])
    return (paper * (1 - ink[..., None]) + pen * ink[..., None]).round().astype(np.uint8)


def ring(size: int = 120) -> np.ndarray:
    """The ink of a drawn 0."""
    r = np.hypot(*np.meshgrid(np.arange(size) - size / 2, np.arange(size) - size / 2))
    return ((r > size * 0.25) & (r < size * 0.35)).astype(float)


def bar(size: int = 120) -> np.ndarray:
    """The ink of a drawn 1."""
    ink = np.zeros((size, size))
    ink[15:-15, size // 2 - 8 : size // 2 + 8] = 1.0
    return ink


def plumbing_model() -> MLPClassifier:
    """A model on 784 features with meaningless weights, for tests of the plumbing."""
    X = np.random.default_rng(0).integers(0, 256, (300, 784), dtype=np.uint8)
    model = MLPClassifier(16, backend="numpy", max_iter=1, random_state=0)
    return model.fit(X, X[:, 300:400].argmax(axis=1) % 10)
