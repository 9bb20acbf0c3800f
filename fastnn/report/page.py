"""The page of fastnn.report: report.html, one self-contained page with every figure embedded,
written beside the figures' own PNG files and per-class.csv, every class's scores. What it
shows is computed by fastnn.report.numbers and drawn by fastnn.report.figures; the page and
each figure are of bounded size whatever the number of classes."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fastnn.core.metrics import cross_entropy
from fastnn.core.model import Params
from fastnn.data import CLASS_NAMES
from fastnn.files.atomic import atomic_path
from fastnn.files.history import EPOCH_RECORDS, History
from fastnn.report import figures, numbers

REPORT_FILE = "report.html"
FIGURE_FILES = ("confusion.png", "mistakes.png", "weights.png", "curves.png")
CLASS_FILE = "per-class.csv"
CLASS_ROWS = 30  # of the per-class table: beyond, those of lowest F1 (all are in CLASS_FILE)
DATASET_TITLES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}
NO_HISTORY = History(0, 0, [], None, None, None, None, None)  # draws "not recorded" panels


class ReportInput(NamedTuple):
    """A model and its predictions on labelled images: everything the report shows."""

    params: Params
    classes: np.ndarray  # the model's labels, in output order
    config: dict[str, Any]  # how it was trained (the saved config)
    scores: dict[str, float | None]  # the scores saved with it
    history: History | None  # None: the model file has no training history
    X: np.ndarray  # the images, one per row
    y: np.ndarray  # each image's true class, as an index into classes
    proba: np.ndarray  # the model's class probabilities for X
    dataset: str  # "mnist", "fashion-mnist", or the name of the data given
    set_name: str  # which of its images: "test set", "dev set", ...
    predicted_by: str  # the backend that computed proba


def class_names(dataset: str, classes: np.ndarray) -> list[str]:
    """Fashion-MNIST's articles for a model of its ten labels 0..9; the labels otherwise."""
    known = CLASS_NAMES.get(dataset)
    if known is not None and np.array_equal(classes, np.arange(len(known))):
        return list(known)
    return [str(label) for label in classes.tolist()]


def network(params: Params) -> str:
    return "-".join(map(str, [params.n_in, *params.hidden_sizes, params.n_out]))


def optimizer(config: dict[str, Any]) -> str:
    """The update rule in a few words, from the saved config (estimator names), e.g.
    "adam, lr 0.003 cosine"."""
    solver = config.get("solver")
    if solver is None:
        return "optimizer unknown"
    words = str(solver)
    if solver == "sgd" and config.get("momentum"):
        nesterov = " nesterov" * bool(config.get("nesterovs_momentum"))
        words += f" momentum {config['momentum']:g}{nesterov}"
    rate = config.get("learning_rate_init")
    if isinstance(rate, int | float):
        words += f", lr {rate:g}"
        schedule = config.get("learning_rate")
        words += f" {schedule}" if schedule not in (None, "constant") else ""
    return words


def title(r: ReportInput) -> str:
    backend = r.config.get("backend")
    return ", ".join([
        DATASET_TITLES.get(r.dataset, r.dataset), network(r.params), optimizer(r.config),
        f"{backend} backend" if backend else "backend unknown",
    ])  # fmt: skip


def write_report(out_dir: str | os.PathLike, r: ReportInput) -> list[Path]:
    """Write out_dir/report.html, each figure as its own PNG beside it and per-class.csv
    (every file written whole or not at all); returns the paths, the page last."""
    out = Path(out_dir)
    k = len(r.classes)
    side = math.isqrt(r.params.n_in)
    if side * side != r.params.n_in:
        raise ValueError(f"the report draws square images; the model takes {r.params.n_in} inputs")
    names = class_names(r.dataset, r.classes)
    predicted = r.proba.argmax(axis=1)
    scores = numbers.class_scores(r.y, predicted, k)
    confused = numbers.confusions(r.y, predicted)
    wrong = numbers.confident_mistakes(r.proba, r.y)
    units = numbers.strongest_units(r.params.coefs[0])
    history = r.history or NO_HISTORY
    images = {
        "confusion.png": figures.confusion(r.y, predicted, names, *confused, _set_text(r)),
        "mistakes.png": figures.mistakes(
            r.X[wrong],
            [names[i] for i in r.y[wrong]],
            [names[i] for i in predicted[wrong]],
            r.proba[wrong, predicted[wrong]],
            side,
        ),  # fmt: skip
        "weights.png": figures.weights(r.params.coefs[0], units, side),
        "curves.png": figures.curves(history, title(r)),
    }
    paths = [_write(out / name, data) for name, data in images.items()]
    paths.append(_write(out / CLASS_FILE, _class_csv(names, scores).encode("utf-8")))
    page = _page(r, names, scores, confused, len(wrong), len(units), images)
    paths.append(_write(out / REPORT_FILE, page.encode("utf-8")))
    return paths


def _class_csv(names: list[str], s: numbers.ClassScores) -> str:
    """Every class's images, precision, recall and F1 (empty where n/a), one a row."""
    text = io.StringIO()
    rows = csv.writer(text, lineterminator="\n")
    rows.writerow(["class", "images", "precision", "recall", "f1"])
    for c, name in enumerate(names):
        scores = (s.precision[c], s.recall[c], s.f1[c])
        rows.writerow([name, s.support[c], *("" if np.isnan(v) else f"{v:.6f}" for v in scores)])
    return text.getvalue()


def _set_text(r: ReportInput) -> str:
    """Which images, e.g. "MNIST test set"."""
    return f"{DATASET_TITLES.get(r.dataset, r.dataset)} {r.set_name}"


def _write(path: Path, data: bytes) -> Path:
    with atomic_path(path, suffix=path.suffix) as tmp:
        tmp.write_bytes(data)
    return path


def _percent(value: float | None) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{100 * value:.2f}%"


def _table(headers: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    attribute = f' class="{cls}"' if cls else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(images: dict[str, bytes], name: str, alt: str) -> str:
    data = base64.b64encode(images[name]).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
        f"<figcaption>{html.escape(name)}</figcaption></figure>"
    )


def _value(value: Any) -> str:
    """A config value as text: JSON for lists and dicts (the augmentation), as saved."""
    if isinstance(value, str):
        return value
    if isinstance(value, list | dict | bool) or value is None:
        return json.dumps(value)
    return str(value)


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em;
       color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { padding: 0.2em 0.7em; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.config td { text-align: left; font-family: monospace; }
img { max-width: 100%; height: auto; } figure { margin: 0.5em 0; }
figcaption, .note { color: #666; font-size: 0.9em; }
"""


def _page(
    r: ReportInput,
    names: list[str],
    s: numbers.ClassScores,
    confused: tuple[np.ndarray, np.ndarray],
    n_mistakes: int,
    n_units: int,
    images: dict[str, bytes],
) -> str:
    """report.html: plain HTML with inline CSS and the figures as data URIs, so that it opens
    from disk anywhere, with no network access."""
    n = len(r.y)
    predicted = r.proba.argmax(axis=1)
    accuracy = float((predicted == r.y).mean()) if n else None
    loss = cross_entropy(r.proba, r.y) if n else None
    set_text = _set_text(r)
    scores = [
        [f"accuracy on the {set_text}", _percent(accuracy)],
        [f"errors on the {set_text}", f"{int((predicted != r.y).sum()):,} of {n:,}"],
        [f"mean cross-entropy on the {set_text}", "n/a" if loss is None else f"{loss:.4f}"],
    ]
    scores += [
        [f"{name} (from training)", _percent(v) if "accuracy" in name or v is None else f"{v:.4g}"]
        for name, v in r.scores.items()
    ]
    h = r.history
    config = [
        ["network", network(r.params)], ["activation", r.config.get("activation", "n/a")],
        ["dtype", r.params.dtype.name],
        ["epochs trained", "unknown" if h is None else str(h.epochs)],
        ["samples trained on", "unknown" if h is None else f"{h.samples_seen:,}"],
        ["predictions by", f"the {r.predicted_by} backend"],
    ]  # fmt: skip
    shown = {row[0] for row in config}
    config += [[str(k), _value(v)] for k, v in r.config.items() if str(k) not in shown]
    esc = html.escape
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>fastnn report: {esc(title(r))}</title><style>{STYLE}</style></head><body>",
        f"<h1>fastnn report: {esc(title(r))}</h1>",
        f"<p>{esc(_percent(accuracy))} accuracy on the {n:,} images of the {esc(set_text)}, "
        f"predicted with the {esc(r.predicted_by)} backend.</p>",
        "<h2>Scores</h2>", _table(["score", "value"], scores),
        "<h2>Confusion matrix</h2>", *_confusion_notes(len(names)),
        _figure(images, "confusion.png", "confusion matrix"),
        "<h2>Most frequent confusions</h2>", _confusions_table(names, s, *confused),
        "<h2>Precision, recall and F1 per class</h2>", *_class_table(names, s, n),
        "<h2>Most confident mistakes</h2>",
        f"<p>{n_mistakes} wrong predictions, those given the highest probability first.</p>"
        if n_mistakes else "<p>No mistakes.</p>",
        _figure(images, "mistakes.png", "most confident mistakes"),
        "<h2>First-layer weights</h2>",
        f"<p>The incoming weights of the {n_units} hidden units (of {r.params.hidden_sizes[0]})"
        " with the largest weight norms, as images on one colour scale centred at zero: red "
        "pixels raise the unit's input, blue ones lower it.</p>",
        _figure(images, "weights.png", "first-layer weights"),
        "<h2>Training curves</h2>", *_curve_notes(h),
        _figure(images, "curves.png", "training curves"),
        "<h2>Configuration</h2>", _table(["setting", "value"], config, "config"),
        "</body></html>",
    ]  # fmt: skip
    return "\n".join(parts) + "\n"


def _confusion_notes(k: int) -> list[str]:
    """How the confusion matrix of k classes is drawn, where it is not every cell written in."""
    if k <= figures.ANNOTATED_CLASSES:
        return []
    per_cell = figures.cells_of(k)
    cells = "" if per_cell == 1 else f", each cell {per_cell} consecutive classes"
    return [
        f"<p class='note'>Of {k:,} classes, as a heat map without numbers{cells}: each row as "
        "percentages of its true classes' images; beside it the most frequent confusions, "
        "which the table below lists.</p>"
    ]


def _confusions_table(
    names: list[str], s: numbers.ClassScores, pairs: np.ndarray, images: np.ndarray
) -> str:
    """The most frequent wrong (true, predicted) pairs, with the share of the true class."""
    if not len(images):
        return "<p>No mistakes.</p>"
    rows = [
        [names[t], names[p], f"{count:,}", _percent(count / s.support[t])]
        for (t, p), count in zip(pairs.tolist(), images.tolist(), strict=True)
    ]
    return _table(["true class", "predicted as", "images", "of the true class"], rows)


def _class_table(names: list[str], s: numbers.ClassScores, n: int) -> list[str]:
    """Each class's scores, or those of the CLASS_ROWS of lowest F1 (all are in CLASS_FILE),
    and their macro average."""
    k = len(names)
    shown = range(k) if k <= CLASS_ROWS else numbers.weakest_classes(s, CLASS_ROWS).tolist()
    rows = [
        [names[c], f"{s.support[c]:,}", _percent(s.precision[c]), _percent(s.recall[c]),
         _percent(s.f1[c])]
        for c in shown
    ]  # fmt: skip
    with np.errstate(invalid="ignore"):
        rows.append(
            ["macro average", f"{n:,}", *(_percent(np.nanmean(v)) if np.isfinite(v).any()
                                          else "n/a" for v in (s.precision, s.recall, s.f1))]
        )  # fmt: skip
    which = (
        f"Every class's scores are also in {CLASS_FILE} beside this page."
        if k <= CLASS_ROWS
        else f"The {len(shown)} classes of lowest F1 of {k:,} (those whose F1 is n/a last), "
        f"and the macro average over all; every class's scores are in {CLASS_FILE} beside "
        "this page."
    )
    return [
        f"<p>{html.escape(which)}</p>",
        _table(["class", "images", "precision", "recall", "F1"], rows),
        "<p class='note'>Precision: of the images predicted as the class, the share that are; "
        "recall: of the images of the class, the share predicted as it; F1: their harmonic "
        "mean. n/a: the class was never predicted (precision) or has no images (recall).</p>",
    ]


def _curve_notes(h: History | None) -> list[str]:
    """What the curves leave out, and why."""
    if h is None:
        note = (
            "This model file has no training history (it was saved without one, or in format "
            "version 1), so there are no curves to draw."
        )
        return [f"<p class='note'>{note}</p>"]
    notes = []
    lacking = [name for name in EPOCH_RECORDS if not getattr(h, name)]
    if lacking:
        notes.append(f"{', '.join(lacking)}: not in this model file (saved before fastnn "
                     "recorded them).")  # fmt: skip
    short = [name for name in EPOCH_RECORDS
             if getattr(h, name) and len(getattr(h, name)) < len(h.loss_curve)]  # fmt: skip
    if short:
        notes.append(f"{', '.join(short)}: recorded for the last epochs only (the model went on "
                     "training from a file saved before they were).")  # fmt: skip
    scores, _ = figures.validation_curves(h)
    if h.validation_scores and scores is None:
        notes.append("Validation scores: not drawn, as they cover only some of the epochs (the "
                     "estimator records them in early-stopping fits only).")  # fmt: skip
    if scores is not None:
        notes.append("Validation: the training command's dev rows, or the estimator's "
                     "early-stopping split.")  # fmt: skip
    if h.train_scores:
        notes.append("Train accuracy is measured during each epoch, as the console prints it.")
    return [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
