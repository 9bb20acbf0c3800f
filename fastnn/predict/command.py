"""python -m fastnn.predict: classify digit images, or a Kaggle test.csv, with a saved model.

Each PNG/JPEG is converted to an MNIST-style 28x28 digit (fastnn.predict.images.load_digit) and its
predicted class and top-3 probabilities are printed; --json prints a JSON list instead. A .csv
input is read as a Kaggle digit-recognizer test.csv and its predictions are written to --output
as ImageId,Label rows.

Exit status: 0 when every input was predicted; 1 when the model cannot be used (bad file,
backend unavailable); 2 for wrong arguments (including an --output that cannot be written, or
an existing submission.csv that --output does not name); 3 when some inputs failed (each one is
reported, on stderr or as an {"file", "error"} entry with --json, and the others are still
predicted); 130 when Ctrl-C stopped it (one line, nothing written).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.backends import BACKENDS, get_backend
from fastnn.core import interrupt
from fastnn.estimator import MLPClassifier
from fastnn.files.atomic import check_writable
from fastnn.files.persist import ModelFileError
from fastnn.predict.images import ImageError, load_digit
from fastnn.saved import load_classifier
from fastnn.tools import add_version

EXIT_MODEL, EXIT_INPUTS = 1, 3
TOP_K = 3
DEFAULT_OUTPUT = "submission.csv"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.predict",
        description="Predict digits in images (PNG/JPEG) or a Kaggle test.csv with a saved model.",
        epilog="Exit status: 0 all inputs predicted, 1 unusable model, 2 bad arguments, "
        "3 some inputs failed (the others are still predicted), 130 Ctrl-C.",
    )
    add_version(p)
    p.add_argument(
        "model", help="a model file written by MLPClassifier.save or fastnn.train --save"
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, or one Kaggle test.csv")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="backend for the forward pass (default: %(default)s, which needs no "
                   "compilation)")  # fmt: skip
    p.add_argument("--output",
                   help=f"where a .csv input's predictions go (default: {DEFAULT_OUTPUT}, which "
                   "is not overwritten unless named here)")  # fmt: skip
    return p


def _plain(label: Any) -> Any:
    """A label as a JSON-able Python value."""
    return label.item() if isinstance(label, np.generic) else label


def _error(path: str, exc: Exception | str) -> dict[str, str]:
    message = str(exc)
    return {"file": path, "error": message if path in message else f"{path}: {message}"}


def predict_images(model: MLPClassifier, paths: list[str]) -> list[dict[str, Any]]:
    """One result per path, in order: {file, prediction, top3} or {file, error}."""
    results: dict[str, dict[str, Any]] = {}
    rows, good = [], []
    for path in paths:
        try:
            rows.append(load_digit(path))
            good.append(path)
        except ImageError as exc:
            results[path] = _error(path, exc)
    if good:
        try:
            proba = model.predict_proba(np.stack(rows))
        except ValueError as exc:  # e.g. a model trained on other than 784 features
            results.update({path: _error(path, exc) for path in good})
        else:
            for path, p in zip(good, proba, strict=True):
                top = np.argsort(-p, kind="stable")[:TOP_K]
                results[path] = {
                    "file": path,
                    "prediction": _plain(model.classes_[top[0]]),
                    "top3": [[_plain(model.classes_[i]), float(p[i])] for i in top],
                }
    return [results[path] for path in paths]


def predict_csv(model: MLPClassifier, path: str, output: str) -> dict[str, Any]:
    """Predict every row of a Kaggle test.csv and write the submission to `output`."""
    # Imported here: only a CSV input needs pandas.
    from fastnn.data import DataError, read_kaggle_csv, write_kaggle_submission

    try:
        X, _ = read_kaggle_csv(path)
        labels = model.predict(X)
    except (DataError, ValueError) as exc:
        return _error(path, exc)
    try:
        write_kaggle_submission(output, labels)
    except OSError as exc:  # e.g. the disk filled up: the checks before could not tell
        return _error(path, f"could not write the predictions to {output}: {exc.strerror or exc}")
    return {"file": path, "submission": output, "rows": len(labels)}


def _print_text(result: dict[str, Any]) -> None:
    if "error" in result:
        print(f"fastnn.predict: error: {result['error']}", file=sys.stderr)
    elif "submission" in result:
        print(f"{result['file']}: wrote {result['rows']} predictions to {result['submission']}")
    else:
        top = ", ".join(f"{label} {prob:.3f}" for label, prob in result["top3"])
        print(f"{result['file']}: {result['prediction']}  (top 3: {top})")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return run(parser, args)
    except KeyboardInterrupt:  # raised in plain Python, after any compiled call returned
        print("fastnn.predict: interrupted; nothing was written", file=sys.stderr)
        return interrupt.EXIT_INTERRUPTED


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    csvs = [path for path in args.inputs if Path(path).suffix.lower() == ".csv"]
    if len(csvs) > 1:
        parser.error("give at most one .csv input per run (--output names one submission file)")
    output = args.output or DEFAULT_OUTPUT
    if csvs:
        try:
            check_writable(output, "--output", replace=args.output is not None)
        except ValueError as exc:
            parser.error(str(exc))
    try:
        model = load_classifier(args.model)
        backend = get_backend(args.backend)  # fail now, not once per input, if unavailable
        model.set_params(backend=args.backend)
    except (ModelFileError, ValueError) as exc:
        print(f"fastnn.predict: error: {exc}", file=sys.stderr)
        return EXIT_MODEL
    images = [path for path in args.inputs if path not in csvs]
    with backend.compilation(lambda notice: print(notice, file=sys.stderr)):
        by_path = dict(zip(images, predict_images(model, images), strict=True))
        if csvs:
            by_path[csvs[0]] = predict_csv(model, csvs[0], output)
    results = [by_path[path] for path in args.inputs]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for result in results:
            _print_text(result)
    return EXIT_INPUTS if any("error" in r for r in results) else 0
