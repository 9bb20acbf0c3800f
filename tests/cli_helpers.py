"""Test helpers for the training command: Kaggle-style CSV files and in-process runs."""

import numpy as np
import pandas as pd

from fastnn.train import command as train


def write_kaggle(path, n, with_labels, seed=0):
    """A digit-recognizer CSV of n random images (with a label column for a train.csv)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (n, 784))
    table = pd.DataFrame(pixels, columns=[f"pixel{i}" for i in range(784)])
    if with_labels:
        table.insert(0, "label", rng.integers(0, 10, n))
    table.to_csv(path, index=False)


def run_main(args, capsys):
    """python -m fastnn.train in this process: (exit status, stdout, stderr)."""
    code = train.main(args)
    out, err = capsys.readouterr()
    return code, out, err
