"""PNG figures of a training run: loss and accuracy curves, and a grid of test digits."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fastnn.atomic import atomic_path  # noqa: E402


def _save(fig: plt.Figure, path: Path) -> Path:
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    return path


def plot_curves(history: list[dict], out_dir: str | os.PathLike) -> list[Path]:
    """loss.png (training loss per epoch) and accuracy.png (train and dev accuracy)."""
    out = Path(out_dir)
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["loss"] for h in history], marker=".")
    ax.set(xlabel="epoch", ylabel="mean cross-entropy", title="Training loss")
    ax.grid(alpha=0.3)
    paths = [_save(fig, out / "loss.png")]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_accuracy"] for h in history], marker=".", label="train")
    dev = [h["dev_accuracy"] for h in history]
    if any(d is not None for d in dev):
        ax.plot(epochs, [np.nan if d is None else d for d in dev], marker=".", label="dev")
    ax.set(xlabel="epoch", ylabel="accuracy", title="Accuracy")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(_save(fig, out / "accuracy.png"))
    return paths


def plot_samples(
    images: np.ndarray,
    predicted: np.ndarray,
    true: np.ndarray | None,
    out_dir: str | os.PathLike,
    count: int = 16,
) -> Path:
    """samples.png: the first `count` images with predicted (and true) labels, wrong ones in red."""
    count = min(count, len(images))
    cols = min(count, 8)
    rows = -(-count // cols)
    side = int(round(np.sqrt(images.shape[1])))
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.6 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= count:
            continue
        if side * side == images.shape[1]:
            ax.imshow(images[k].reshape(side, side), cmap="gray_r")
        label = f"pred {predicted[k]}"
        wrong = true is not None and predicted[k] != true[k]
        if true is not None:
            label += f"\ntrue {true[k]}"
        ax.set_title(label, fontsize=8, color="red" if wrong else "black")
    return _save(fig, Path(out_dir) / "samples.png")
