"""The figures of fastnn.report, each rendered to PNG bytes: the confusion matrix, the most
confident mistakes, the first layer's weights as images and the training curves.

Each is of bounded size whatever the classes: the confusion matrix of up to ANNOTATED_CLASSES
classes has every cell written in, that of more is a heat map of at most HEAT_CELLS rows and
columns, in a figure of fixed size, beside the most frequent confusions; names and titles are
cut short, and drawn as given (fastnn.report.plots.literal_text)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import PowerNorm

from fastnn.files.history import History
from fastnn.report.numbers import confusion_matrix
from fastnn.report.plots import (  # plots sets the Agg backend: files only
    draw_epochs,
    literal_text,
    plt,
)

DPI = 100
GRID_COLS = 6  # of the mistakes: 36 make a 6 x 6 grid
WEIGHT_COLS = 8  # of the weight images: 64 make an 8 x 8 grid
ANNOTATED_CLASSES = 20  # a figure 27 inches wide; more classes' numbers would not be read
HEAT_CELLS = 300  # rows and columns of the heat map: a few pixels each
MAX_TICKS = 20  # class names along each side of the heat map
NAME_CHARS = 16  # of a class name in a figure
TITLE_CHARS = 100  # of a title that holds a name given by the user (a file name, the config)


def short(text: str, chars: int = NAME_CHARS) -> str:
    """text, cut to `chars` characters with an ellipsis: a label of any length would widen the
    figure without bound."""
    return text if len(text) <= chars else text[: chars - 1] + "…"


def png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (pyplot would keep it alive)."""
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def _row_percentages(counts: np.ndarray) -> np.ndarray:
    """Each row as percentages of its total; NaN for a row of no images."""
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100 * counts / totals, np.nan)


def confusion(
    y: np.ndarray,
    predicted: np.ndarray,
    names: Sequence[str],
    pairs: np.ndarray,
    images: np.ndarray,
    set_name: str,
) -> bytes:
    """The confusion matrix of the true classes y and the predicted ones: every cell written in
    for up to ANNOTATED_CLASSES classes, else a heat map beside the most frequent confusions
    (`pairs` of true and predicted classes, with their `images`: numbers.confusions)."""
    k = len(names)
    if k <= ANNOTATED_CLASSES:
        return _annotated(confusion_matrix(y, predicted, k), names, set_name)
    per_cell = cells_of(k)
    counts = confusion_matrix(y, predicted, k, per_cell)
    return _heat_map(counts, per_cell, names, pairs, images, set_name)


def cells_of(k: int) -> int:
    """The classes in each row and column of the heat map of k classes."""
    return -(-k // HEAT_CELLS)


@literal_text()
def _annotated(counts: np.ndarray, names: Sequence[str], set_name: str) -> bytes:
    """Two panels: the counts, and each row as percentages of its true class (a class with no
    samples is left blank), each cell written in."""
    k = len(names)
    names = [short(name) for name in names]
    rows = _row_percentages(counts)
    side = max(5.0, 0.55 * k + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * side + 1, side))
    panels = (
        (axes[0], counts, "counts", "{:.0f}", counts.max(initial=0) or 1),
        (axes[1], rows, "% of each true class (row-normalised)", "{:.1f}", 100),
    )
    for ax, values, title, fmt, top in panels:
        ax.imshow(np.nan_to_num(values), cmap="Blues", vmin=0, vmax=top)
        for i in range(k):
            for j in range(k):
                if np.isfinite(values[i, j]) and (values[i, j] or i == j):
                    color = "white" if values[i, j] > 0.6 * top else "black"
                    ax.text(j, i, fmt.format(values[i, j]), ha="center", va="center",
                            fontsize=7 if k <= 12 else 5, color=color)  # fmt: skip
        ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0, ha="right")
        ax.set_yticks(range(k), names)
        ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.suptitle(f"Confusion matrix on the {short(set_name, TITLE_CHARS)} "
                 f"({int(counts.sum()):,} images)")  # fmt: skip
    return png(fig)


@literal_text()
def _heat_map(
    counts: np.ndarray,
    per_cell: int,
    names: Sequence[str],
    pairs: np.ndarray,
    images: np.ndarray,
    set_name: str,
) -> bytes:
    """In a figure of fixed size: a heat map of the confusion matrix, each row as percentages
    of its true classes' images, with no numbers in the cells (`counts` holds per_cell
    consecutive classes a row and a column), and a bar for each of the most frequent
    confusions."""
    k = len(names)
    fig, (heat, bars) = plt.subplots(1, 2, figsize=(15, 7))
    cmap = plt.get_cmap("Blues").with_extremes(bad="#eeeeee")
    edge = len(counts) * per_cell - 0.5  # the cells in class coordinates: ticks name classes
    drawn = heat.imshow(
        _row_percentages(counts), cmap=cmap, norm=PowerNorm(0.5, vmin=0, vmax=100),
        interpolation="nearest", extent=(-0.5, edge, edge, -0.5),
    )  # fmt: skip
    heat.set(xlim=(-0.5, k - 0.5), ylim=(k - 0.5, -0.5), xlabel="predicted", ylabel="true")
    ticks = list(range(0, k, -(-k // MAX_TICKS)))
    labels = [short(names[c]) for c in ticks]
    heat.set_xticks(ticks, labels, rotation=90)
    heat.set_yticks(ticks, labels)
    cells = "" if per_cell == 1 else f"; a cell holds {per_cell} consecutive classes"
    heat.set_title(f"% of each true class's images (grey: no images{cells})", fontsize=10)
    fig.colorbar(drawn, ax=heat, shrink=0.8, label="% of the row's images")
    if len(images):
        rows = np.arange(len(images))
        bar_labels = [f"{short(names[t])} → {short(names[p])}" for t, p in pairs]
        bars.bar_label(bars.barh(rows, images, color="tab:blue"), fontsize=8, padding=2)
        bars.set_yticks(rows, bar_labels, fontsize=8)
        bars.invert_yaxis()  # the most frequent on top
        title = f"The {len(images)} most frequent confusions (true → predicted)"
        bars.set(xlabel="images", title=title)
        bars.margins(x=0.1)
    else:
        bars.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
        bars.axis("off")
    total = int(counts.sum())
    fig.suptitle(f"Confusion matrix on the {short(set_name, TITLE_CHARS)} ({total:,} images, "
                 f"{k:,} classes)")  # fmt: skip
    fig.tight_layout()
    return png(fig)


def _mosaic(tiles: np.ndarray, cols: int, gap: tuple[int, int]) -> np.ndarray:
    """The (n, side, side) tiles in rows of `cols`, NaN between them (gap: rows above each
    tile, for its caption, and columns beside it). One image drawn once is ten times faster
    than a subplot per tile (1.8 s for 36)."""
    n, side = len(tiles), tiles.shape[1]
    rows = max(1, -(-n // cols))
    above, beside = gap
    mosaic = np.full((rows * (side + above), cols * (side + beside) - beside), np.nan)
    for k in range(n):
        top, left = (k // cols) * (side + above) + above, (k % cols) * (side + beside)
        mosaic[top : top + side, left : left + side] = tiles[k]
    return mosaic


def _captioned(
    tiles: np.ndarray, captions: Sequence[str], cols: int, width: float, **imshow: object
) -> tuple[plt.Figure, plt.Axes, object]:
    """A figure `width` inches wide of the tiles in a grid, each captioned above."""
    side, above, beside = tiles.shape[1], 11, 6
    mosaic = _mosaic(tiles, cols, (above, beside))
    fig = plt.figure(figsize=(width, width * mosaic.shape[0] / mosaic.shape[1]))
    ax = fig.add_axes((0, 0, 1, 1))  # the whole figure: no margins around the grid
    image = ax.imshow(mosaic, interpolation="nearest", **imshow)
    for k, caption in enumerate(captions):
        x = (k % cols) * (side + beside) + side / 2
        y = (k // cols) * (side + above) + above - 1
        ax.text(x, y, caption, ha="center", va="bottom", fontsize=8)
    ax.axis("off")
    return fig, ax, image


@literal_text()
def mistakes(
    images: np.ndarray,
    true: Sequence[str],
    predicted: Sequence[str],
    probability: np.ndarray,
    side: int,
) -> bytes:
    """A grid of the given wrong predictions, each with its true label, the predicted one and
    the probability the network gave it."""
    count = len(images)
    if count == 0:
        fig, ax = plt.subplots(figsize=(6, 1))
        ax.axis("off")
        ax.text(0.5, 0.5, "no mistakes", ha="center", va="center", fontsize=14)
        return png(fig)
    captions = [
        f"true {short(t)}\npred {short(p)} ({q:.1%})"
        for t, p, q in zip(true, predicted, probability, strict=True)
    ]
    cmap = plt.get_cmap("gray_r").with_extremes(bad="white")
    tiles = images.reshape(count, side, side).astype(np.float64)
    fig, _, _ = _captioned(
        tiles, captions, min(GRID_COLS, count), 1.9 * min(GRID_COLS, count), cmap=cmap,
        vmin=0, vmax=max(float(tiles.max()), 1.0),
    )  # fmt: skip
    fig.suptitle(f"The {count} most confident mistakes, most confident first", y=1.0, va="bottom")
    return png(fig)


@literal_text()
def weights(W: np.ndarray, units: np.ndarray, side: int) -> bytes:
    """Each given hidden unit's incoming weights (a column of the first layer's W) as a
    side x side image, on one diverging colour scale centred at zero, so that strengths
    compare across units: red pixels excite the unit, blue ones inhibit it."""
    shown = W[:, units].T.reshape(len(units), side, side).astype(np.float64)
    # The 99.5th percentile rather than the maximum: one extreme weight would wash out the rest.
    limit = float(np.percentile(np.abs(shown), 99.5)) if shown.size else 1.0
    limit = limit or 1.0
    cols = min(WEIGHT_COLS, max(1, len(units)))
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="white")
    fig, _, image = _captioned(
        shown, [f"unit {u}" for u in units], cols, 1.35 * cols, cmap=cmap, vmin=-limit, vmax=limit
    )
    fig.colorbar(image, cax=fig.add_axes((1.03, 0.15, 0.025, 0.7)), extend="both", label="weight")
    fig.suptitle(
        f"First-layer weights of the {len(units)} hidden units with the largest weight norms",
        y=1.0,
        va="bottom",
    )
    return png(fig)


def validation_curves(history: History) -> tuple[list[float] | None, list[float] | None]:
    """The validation (scores, losses) that can be drawn: those with one value per epoch of the
    loss curve. The estimator records them only in early-stopping fits, so after a partial_fit
    they cover some epochs only, and which ones is not recorded: such are left out."""

    def aligned(values: list[float] | None) -> list[float] | None:
        return values if values and len(values) == len(history.loss_curve) else None

    return aligned(history.validation_scores), aligned(history.validation_losses)


@literal_text()
def curves(history: History, title: str) -> bytes:
    """Four panels, per epoch: the loss and the accuracy (percent) on the training data and on
    the validation data (see validation_curves); the learning rate; the seconds.

    The per-epoch records cover the model's last epochs (fastnn.files.history.EPOCH_RECORDS);
    a panel whose record the file lacks says so."""
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    epochs = history.epochs_of(history.loss_curve)
    scores, losses = validation_curves(history)

    def series(label: str, values: list[float] | None, scale: float = 1) -> list[tuple]:
        if not values:
            return []
        return [(label, history.epochs_of(values), [scale * v for v in values])]

    panels = (
        ("loss (mean cross-entropy)", "{:.4f}",
         [("train", epochs, history.loss_curve), *series("validation", losses)]),
        ("accuracy (%)", "{:.2f}%",
         series("train", history.train_scores, 100) + series("validation", scores, 100)),
        ("learning rate (mean over the epoch)", "{:.3g}", series("rate", history.learning_rates)),
        ("seconds per epoch", "{:.2f} s", series("seconds", history.epoch_seconds)),
    )  # fmt: skip
    for ax, (label, fmt, drawn) in zip(axes.flat, panels, strict=True):
        ax.set_title(label)
        drawn = [s for s in drawn if len(s[2])]
        if drawn:
            draw_epochs(ax, drawn, fmt)
        else:
            ax.text(0.5, 0.5, "not recorded in this model file", ha="center", va="center",
                    transform=ax.transAxes, color="gray")  # fmt: skip
            ax.set(xticks=[], yticks=[])
    fig.suptitle(short(title, TITLE_CHARS))
    fig.tight_layout()
    return png(fig)
