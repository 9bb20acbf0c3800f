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
    """loss.png and accuracy.png: per epoch, on the training set and (where there is one) the
    dev set. The training loss of an epoch is the mean over its batches, each measured before
    its update (with the L2 penalty, if any); the dev loss is measured after the epoch."""
    out = Path(out_dir)
    paths = []
    for key, ylabel, title in (
        ("loss", "mean cross-entropy", "Loss"),
        ("accuracy", "accuracy", "Accuracy"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        _plot_train_and_dev(ax, history, key)
        ax.set(xlabel="epoch", ylabel=ylabel, title=title)
        ax.grid(alpha=0.3)
        paths.append(_save(fig, out / f"{key}.png"))
    return paths


def _plot_train_and_dev(ax: plt.Axes, history: list[dict], key: str) -> None:
    """The training curve of `key` ("loss" or "accuracy"), and the dev one where measured."""
    epochs = [h["epoch"] for h in history]
    train = "loss" if key == "loss" else "train_accuracy"
    ax.plot(epochs, [h[train] for h in history], marker=".", label="train")
    dev = [h.get(f"dev_{key}") for h in history]
    if any(d is not None for d in dev):
        ax.plot(epochs, [np.nan if d is None else d for d in dev], marker=".", label="dev")
        ax.legend()


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


def plot_augmentations(draws: np.ndarray, image: np.ndarray, out_dir: str | os.PathLike) -> Path:
    """augment.png: one image (height, width) as it is, beside `draws` (n, height, width), the
    same image under n random draws of the augmentation: what the network sees in training."""
    cols = 6
    rows = -(-(len(draws) + 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k <= len(draws):
            ax.imshow(image if k == 0 else draws[k - 1], cmap="gray_r")
            ax.set_title("original" if k == 0 else f"draw {k}", fontsize=8)
    return _save(fig, Path(out_dir) / "augment.png")
