"""The sweep's figures: dev accuracy against each swept parameter, and against the seconds of
training each trial took. PNGs, each written whole or not at all."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from fastnn.report.plots import (  # plots sets the Agg backend: files only
    literal_text,
    plt,
    save_png,
)
from fastnn.sweep.results import DONE

PANELS_PER_ROW = 3


def _epochs_colours(table: pd.DataFrame) -> tuple[list[int], dict[int, tuple]]:
    epochs = sorted(int(e) for e in table["epochs"].unique())
    cmap = plt.get_cmap("viridis")
    colours = {e: cmap(i / max(1, len(epochs) - 1)) for i, e in enumerate(epochs)}
    return epochs, colours


@literal_text()
def write_figures(table: pd.DataFrame, names: list[str], out: Path) -> list[Path]:
    """accuracy-by-parameter.png (a panel per swept parameter: each trial's dev accuracy at
    its value, the mean over seeds joined) and accuracy-vs-seconds.png. Colour: the epochs."""
    ok = table[table["status"].isin(DONE) & table["dev_accuracy"].notna()]
    epochs, colours = _epochs_colours(ok)
    written = []
    if names:
        columns = min(PANELS_PER_ROW, len(names))
        rows = math.ceil(len(names) / columns)
        fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.2 * rows), squeeze=False)
        for ax, name in zip(axes.flat, names, strict=False):
            _parameter_panel(ax, ok, name, epochs, colours)
        for ax in list(axes.flat)[len(names) :]:
            ax.set_visible(False)
        axes[0][0].set_ylabel("dev accuracy (%)")
        _legend(fig, epochs, colours)
        fig.suptitle("Dev accuracy of each trial by parameter (line: mean over seeds)")
        written.append(save_png(fig, out / "accuracy-by-parameter.png", dpi=80))
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for e in epochs:
        part = ok[ok["epochs"] == e]
        ax.scatter(part["seconds"], 100 * part["dev_accuracy"], s=18, color=colours[e])
    best = ok.loc[ok["dev_accuracy"].idxmax()] if len(ok) else None
    if best is not None:
        ax.scatter(
            [best["seconds"]],
            [100 * best["dev_accuracy"]],
            s=90,
            facecolors="none",
            edgecolors="crimson",
            label="best trial",
        )
    ax.set_xlabel("seconds of training (per trial)")
    ax.set_ylabel("dev accuracy (%)")
    ax.grid(alpha=0.3)
    _legend(fig, epochs, colours)
    ax.set_title("Dev accuracy against training time")
    written.append(save_png(fig, out / "accuracy-vs-seconds.png", dpi=80))
    return written


def _parameter_panel(ax, ok: pd.DataFrame, name: str, epochs: list[int], colours: dict) -> None:
    values = ok[name]
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        x = values.astype(float).to_numpy()
        positive = x[x > 0]
        if len(positive) == len(x) and len(x) and positive.max() / positive.min() >= 10:
            ax.set_xscale("log")  # learning rates and penalties: decades apart
    else:
        labels = list(dict.fromkeys(str(v) for v in values))  # the grid's order
        x = np.array([labels.index(str(v)) for v in values], dtype=float)
        ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0)
    for e in epochs:
        mask = (ok["epochs"] == e).to_numpy()
        ax.scatter(x[mask], 100 * ok["dev_accuracy"][mask], s=14, color=colours[e], alpha=0.8)
    top = max(epochs) if epochs else None
    if top is not None:
        mask = (ok["epochs"] == top).to_numpy()
        means = pd.Series(100 * ok["dev_accuracy"][mask].to_numpy()).groupby(x[mask]).mean()
        ax.plot(means.index, means.to_numpy(), color=colours[top], linewidth=1)
    ax.set_xlabel(name)
    ax.grid(alpha=0.3)


def _legend(fig: plt.Figure, epochs: list[int], colours: dict) -> None:
    if len(epochs) > 1:
        handles = [plt.Line2D([], [], marker="o", linestyle="", color=colours[e]) for e in epochs]
        fig.legend(handles, [f"{e} epochs" for e in epochs], loc="lower right", fontsize=8)
