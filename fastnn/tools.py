"""The command-line tools: the list that `python -m fastnn` prints, and the --version option
that every one of them takes."""

from __future__ import annotations

import argparse

from fastnn.version import __version__

VERSION = f"fastnn {__version__}"

# Each module run as `python -m MODULE`, and what it does in a line.
TOOLS = {
    "fastnn.train": "train the network, or go on training a saved run (--resume)",
    "fastnn.predict": "predict digits in images or a Kaggle test.csv with a saved model",
    "fastnn.report": "write an HTML report of a saved model on a test set",
    "fastnn.serve": "serve a page to draw digits on, with a saved model's predictions",
    "fastnn.export": "write a saved model as an ONNX file, for other runtimes (onnx extra)",
    "fastnn.sweep": "train a grid of hyperparameters over seeds on Dask (sweep extra)",
    "fastnn.bench": "time the backends' training epochs, or their time to accuracy",
    "fastnn.bench.profile": "time the stages of a Numba training epoch, thread by thread",
}


def add_version(parser: argparse.ArgumentParser) -> None:
    """Give the tool's parser --version, which prints e.g. "fastnn 0.1.0" and exits."""
    parser.add_argument("--version", action="version", version=VERSION)
