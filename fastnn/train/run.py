"""One run of python -m fastnn.train, as the command and the outputs it writes (outputs)
both take it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np

from fastnn.backends import Backend
from fastnn.core import training
from fastnn.core.model import Params
from fastnn.files.history import History


@dataclass
class Run:
    """One run of the command: its options, data, network and how it trains."""

    args: argparse.Namespace
    backend: Backend
    params: Params
    X: np.ndarray  # training rows
    y: np.ndarray
    X_dev: np.ndarray
    y_dev: np.ndarray
    X_test: np.ndarray | None  # None for a Kaggle train.csv
    y_test: np.ndarray | None
    X_new: np.ndarray | None  # the rows of --predict-csv
    how: training.Training
    order_rng: np.random.Generator | None  # None: every epoch in row order
    first_epoch: int  # 1, or the next epoch of a resumed run
    planned: int  # the epoch this run ends at, if nothing stops it first
    earlier: History | None  # a resumed run's record of the epochs before first_epoch
