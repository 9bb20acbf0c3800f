"""python -m fastnn.report MODEL.npz --out DIR: how a saved model does on a test set, as one
self-contained page (DIR/report.html, every image embedded, no network access needed), each
figure as its own PNG beside it and per-class.csv: the confusion matrix, the most frequent
confusions and per-class precision, recall and F1, the most confident mistakes, the first
layer's weights, the training curves from the model's history, and its configuration and
scores. See fastnn.report.page for what each shows; each is of bounded size whatever the
number of classes.

The test set is that of --dataset, else of the dataset the model's saved config names, else
MNIST's; --data PATH reads it from a folder of IDX files, or takes every row of a labelled
Kaggle train.csv. `python -m fastnn.train --report DIR` writes the same at the end of a run.

Exit status: 0 written; 1 the model file or the data cannot be used, or a write failed; 2 wrong
arguments (including an --out that cannot be written); 130 Ctrl-C (nothing more written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fastnn.backends import BACKENDS, get_backend
from fastnn.core import interrupt
from fastnn.data import DATASET_NAMES, DataError, load_dataset, read_kaggle_csv
from fastnn.files import persist
from fastnn.files.atomic import check_writable
from fastnn.files.history import History
from fastnn.report.page import REPORT_FILE, ReportInput, write_report
from fastnn.saved import from_saved, single_label
from fastnn.tools import add_version

EXIT_UNUSABLE, EXIT_USAGE = 1, 2
DEFAULT_DATASET = "mnist"


class UsageError(ValueError):
    """The arguments cannot work (exit status 2)."""


def check_out(path: str) -> None:
    try:
        check_writable(path, "--out", folder=True)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.report",
        description="Write an HTML report (confusion matrix, per-class scores, confident "
        "mistakes, first-layer weights, training curves, configuration) of a saved model on "
        "a test set, with each figure as a PNG beside it.",
        epilog="Exit status: 0 written, 1 unusable model file or data or a failed write, "
        "2 bad arguments, 130 Ctrl-C.",
    )
    add_version(p)
    p.add_argument(
        "model", help="a model file written by fastnn.train --save or MLPClassifier.save"
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help=f"the folder for {REPORT_FILE} and the figures (made if missing)",
    )
    p.add_argument(
        "--dataset",
        choices=DATASET_NAMES,
        help=f"whose test set (default: the one the model's config names, else {DEFAULT_DATASET})",
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        help="a folder of IDX files (as fastnn.train --data), or a Kaggle train.csv whose "
        "labelled rows are all used",
    )
    p.add_argument("--no-download", action="store_true", help="never download the dataset")
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="numpy",
        help="backend for the predictions (default: %(default)s, which needs no compilation)",
    )
    return p


def choose_dataset(args: argparse.Namespace, config: dict) -> str:
    """--dataset, else the dataset the saved config names, else MNIST; a model trained on data
    fastnn does not know needs --data or --dataset."""
    if args.dataset is not None:
        return args.dataset
    named = config.get("dataset")
    if named is None or named in DATASET_NAMES:
        return named or DEFAULT_DATASET
    if args.data is None:
        raise UsageError(
            f"{args.model} was trained on {named!r}, which fastnn cannot load: give its "
            "labelled images with --data PATH, or a test set with --dataset"
        )
    return DEFAULT_DATASET


def load_test_set(
    args: argparse.Namespace, dataset: str
) -> tuple[np.ndarray, np.ndarray, str, str]:
    """(X, y, the data's name, which of its images) from the options, read as the training
    command reads its data."""
    path = Path(args.data) if args.data else None
    if path is not None and path.suffix.lower() == ".csv":
        X, y = read_kaggle_csv(path)
        if y is None:
            raise DataError(f"{path} has no 'label' column: a report needs the true labels")
        return X, y, path.name, "rows"
    data = load_dataset(dataset, data_dir=path, download=not args.no_download)
    return data.X_test, data.y_test, dataset, "test set"


def label_indices(y: np.ndarray, classes: np.ndarray, model: str) -> np.ndarray:
    """Each label of y as its index in the model's classes; DataError for one it lacks."""
    index = {label: i for i, label in enumerate(classes.tolist())}
    unknown = sorted({label for label in y.tolist() if label not in index})
    if unknown:
        raise DataError(
            f"the test set holds labels {unknown[:5]} that {model} does not predict (its "
            f"classes are {classes.tolist()[:10]})"
        )
    return np.array([index[label] for label in y.tolist()], dtype=np.int64)


def prepare(args: argparse.Namespace) -> ReportInput:
    """The model of args.model and its predictions on the test set the options choose."""
    saved = persist.read_model(args.model)
    single_label(saved, args.model)
    history = History.from_json(saved.history, args.model)  # checks it before any work
    model = from_saved(saved, args.model).set_params(backend=args.backend)
    dataset = choose_dataset(args, saved.config)
    X, y, shown, set_name = load_test_set(args, dataset)
    if X.shape[1] != saved.params.n_in:
        raise DataError(
            f"{args.model} takes {saved.params.n_in} features per image; the test set's "
            f"images have {X.shape[1]} pixels"
        )
    y_index = label_indices(y, saved.classes, args.model)
    backend = get_backend(args.backend)
    with backend.compilation(lambda notice: print(notice, file=sys.stderr)):
        proba = model.predict_proba(X)
    return ReportInput(
        saved.params, saved.classes, saved.config, saved.scores, history, X, y_index, proba,
        shown, set_name, args.backend,
    )  # fmt: skip


def error(message: str) -> None:
    print(f"fastnn.report: error: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_out(args.out)  # before any work
        report = prepare(args)
    except ValueError as exc:  # ModelFileError, DataError, an unusable model or backend
        error(str(exc))
        return EXIT_USAGE if isinstance(exc, UsageError) else EXIT_UNUSABLE
    except OSError as exc:  # reading the data (DataError covers what it foresees)
        error(f"{exc.filename or args.data}: {exc.strerror or exc}")
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        error("interrupted; nothing was written")
        return interrupt.EXIT_INTERRUPTED
    try:
        paths = write_report(args.out, report)
    except OSError as exc:  # e.g. a full disk: each file is written whole or not at all
        error(f"could not write the report to {args.out}: {exc.strerror or exc}")
        return EXIT_UNUSABLE
    except KeyboardInterrupt:
        error("interrupted; the report was not finished")
        return interrupt.EXIT_INTERRUPTED
    beside = ", ".join(p.name for p in paths[:-1])
    print(f"wrote {paths[-1]} (and {beside} beside it)")
    return 0
