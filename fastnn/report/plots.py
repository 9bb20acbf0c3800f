"""PNG figures of a training run: loss and accuracy curves, and a grid of test digits; and what
fastnn.report.figures shares: the per-epoch drawing, and text drawn as given."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display is needed or assumed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from fastnn.files.atomic import atomic_path  # noqa: E402

# matplotlib would read text between two "$" as mathematics (and fail on "price_$5_and_$6.csv"),
# or hand it all to LaTeX under a user's text.usetex: a file name or a class label is drawn as
# the characters it is.
LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}


def literal_text() -> contextlib.AbstractContextManager:
    """A context, or a decorator of a function that makes and saves figures, in which every
    text is drawn as given. A text takes the setting when it is made, and tick labels are made
    as the figure is drawn: the figure must be made and saved within."""
    return matplotlib.rc_context(LITERAL_TEXT)


def save_png(fig: plt.Figure, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Writes the figure to path as a PNG, whole or not at all (see fastnn.files.atomic), and closes
    it. Every PNG fastnn writes goes through here."""
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


@literal_text()
def plot_curves(history: list[dict], out_dir: str | os.PathLike) -> list[Path]:
    """loss.png and accuracy.png: per epoch, on the training set and (where there is one) the
    dev set. The training loss of an epoch is the mean over its batches, each measured before
    its update (with the L2 penalty, if any); the dev loss is measured after the epoch.
    Accuracy is in percent, as the console prints it."""
    out = Path(out_dir)
    paths = []
    for key, ylabel, title in (
        ("loss", "mean cross-entropy", "Loss"),
        ("accuracy", "accuracy (%)", "Accuracy"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        _plot_train_and_dev(ax, history, key)
        ax.set(ylabel=ylabel, title=title)
        paths.append(save_png(fig, out / f"{key}.png"))
    return paths


def _plot_train_and_dev(ax: plt.Axes, history: list[dict], key: str) -> None:
    """The training curve of `key` ("loss" or "accuracy", the latter in percent), and the dev
    one where measured."""
    epochs = [h["epoch"] for h in history]
    scale = 100 if key == "accuracy" else 1
    train = "loss" if key == "loss" else "train_accuracy"
    series = [("train", epochs, [scale * h[train] for h in history])]
    dev = [h.get(f"dev_{key}") for h in history]
    if any(d is not None for d in dev):
        series.append(("dev", epochs, [np.nan if d is None else scale * d for d in dev]))
    draw_epochs(ax, series, "{:.2f}%" if key == "accuracy" else "{:.4f}")


def draw_epochs(
    ax: plt.Axes, series: Sequence[tuple[str, Sequence[int], Sequence[float]]], value_format: str
) -> None:
    """Draw each (label, epochs, values) as a line with a marker at every epoch, on an axis of
    whole epochs, with a legend when there is more than one.

    A run of one epoch would otherwise be a lone dot on an axis running 0.96 to 1.04 with its
    value unreadable: it gets an axis from epoch 0.5 to 1.5 and from 0 to above its value (to
    100 for a percentage: a `value_format` ending in %), and its value in the legend."""
    epochs = sorted({e for _, xs, _ in series for e in xs})
    one = len(epochs) == 1
    for label, xs, ys in series:
        if one:
            label += ": " + ", ".join(value_format.format(y) for y in ys if np.isfinite(y))
        ax.plot(xs, ys, marker="o" if len(xs) < 30 else ".", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    if len(series) > 1 or one:
        ax.legend()
    if one:
        values = [y for _, _, ys in series for y in ys if np.isfinite(y)]
        ax.set_xlim(epochs[0] - 0.5, epochs[0] + 0.5)
        ax.set_ylim(0, 100 if value_format.endswith("%") else 1.3 * max(values, default=1) or 1)


def mistakes_first(predicted: np.ndarray, true: np.ndarray, count: int) -> np.ndarray:
    """The indices of `count` samples to show: the wrong predictions first (in data order),
    then right ones, so that the grid shows what the network gets wrong."""
    wrong = predicted != true
    return np.concatenate([np.flatnonzero(wrong), np.flatnonzero(~wrong)])[:count]


@literal_text()
def plot_samples(
    images: np.ndarray,
    predicted: np.ndarray,
    true: np.ndarray | None,
    out_dir: str | os.PathLike,
    count: int = 16,
    names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """samples.png: the first `count` images with predicted (and true) labels, wrong ones in red;
    labels are shown as names[label] if `names` is given (Fashion-MNIST's articles). Pass the
    images in the order to show them (mistakes_first puts the wrong ones first)."""

    def shown(label: object) -> object:
        return label if names is None else names[int(label)]

    count = min(count, len(images))
    cols = min(count, 8)
    rows = -(-count // cols)
    side = int(round(np.sqrt(images.shape[1])))
    wide = 1.6 if names is not None and max(map(len, names)) > 6 else 1.3  # room for "Ankle boot"
    fig, axes = plt.subplots(rows, cols, figsize=(wide * cols, 1.6 * rows), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k >= count:
            continue
        if side * side == images.shape[1]:
            ax.imshow(images[k].reshape(side, side), cmap="gray_r")
        label = f"pred {shown(predicted[k])}"
        wrong = true is not None and predicted[k] != true[k]
        if true is not None:
            label += f"\ntrue {shown(true[k])}"
        ax.set_title(label, fontsize=8, color="red" if wrong else "black")
    if title:
        fig.suptitle(title, fontsize=10, y=1.0, va="bottom")  # above the top row's labels
    return save_png(fig, Path(out_dir) / "samples.png")


@literal_text()
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
    return save_png(fig, Path(out_dir) / "augment.png")
