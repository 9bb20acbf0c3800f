"""A sweep's results: the log every finished trial is appended to at once (one JSON line each,
flushed to disk before the next), read back to resume; and the table made from it (ranked by
configuration, and as CSV)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fastnn.atomic import atomic_path
from fastnn.sweep.space import format_value

# Rows of these statuses are results: a resumed sweep does not run them again. A "failed" trial
# (its worker kept dying, or it raised) is run again by --resume.
DONE = ("finished", "diverged")
METRICS = {"dev_accuracy": "max", "dev_loss": "min"}  # what a sweep may choose by, and how
COLUMNS = (
    "trial", "rung", "seed", "epochs", "status", "dev_accuracy", "dev_loss", "test_accuracy",
    "train_loss", "seconds", "wall_seconds", "compile_seconds", "weights_sha256", "worker",
    "error",
)  # fmt: skip


class ResultsLog:
    """The append-only JSON-lines file of finished trials. A line is written whole and synced
    to disk before the call returns, so a sweep killed at any moment loses no finished trial;
    a last line cut short by a crash (no newline) is dropped on opening."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        """`path` None: rows are kept in memory only."""
        self.path = None if path is None else Path(path)
        self.rows: list[dict[str, Any]] = []
        if self.path is None or not self.path.exists():
            return
        data = self.path.read_bytes()
        whole = data[: data.rfind(b"\n") + 1]
        if len(whole) != len(data):  # a line the crash cut short: never reported, so dropped
            with open(self.path, "r+b") as f:
                f.truncate(len(whole))
        for number, line in enumerate(whole.decode("utf-8").splitlines(), 1):
            if line.strip():
                try:
                    self.rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise ValueError(f"{self.path}, line {number}: not a results row") from None

    def done(self) -> dict[str, dict[str, Any]]:
        """The latest row of each trial whose result is known (not failed), by trial id."""
        return {row["trial"]: row for row in self.rows if row.get("status") in DONE}

    def append(self, row: dict[str, Any]) -> None:
        line = json.dumps(row, sort_keys=True, allow_nan=False) + "\n"
        if self.path is None:
            self.rows.append(row)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        self.rows.append(row)


def frame(rows: list[dict[str, Any]], names: list[str]) -> pd.DataFrame:
    """One row per trial (the latest row of each), a column per swept parameter `names` (as
    the sweep writes them: 256x128, 0.05) and the COLUMNS."""
    latest = {row["trial"]: row for row in rows}
    records = []
    for row in latest.values():
        # Layer sizes and augmentations as the sweep writes them (256x128), so that they group
        # and sort; numbers and words as they are.
        params = {**row["params"], "max_iter": row["epochs"]}  # a swept max_iter is the epochs
        record = {name: cell(params.get(name)) for name in names}
        record.update({key: row.get(key) for key in COLUMNS})
        records.append(record)
    return pd.DataFrame.from_records(records, columns=[*names, *COLUMNS])


def cell(value: Any) -> Any:
    return format_value(value) if isinstance(value, list | tuple | dict) else value


def ranked(table: pd.DataFrame, names: list[str], metric: str) -> pd.DataFrame:
    """One row per configuration at its highest rung (epochs), the mean and spread over its
    seeds; ranked by the highest rung reached, then by `metric` (best first). Failed trials
    count as trials but not in the means."""
    if table.empty:
        return pd.DataFrame()
    scored = table.assign(_ok=table["status"].isin(DONE))
    if names:
        top = scored.groupby(names, sort=False, dropna=False)["epochs"].transform("max")
    else:  # only seeds were swept: one configuration
        top = scored["epochs"].max()
    scored = scored[scored["epochs"] == top]
    kept = scored[scored["_ok"]]
    groups = kept.groupby([*names, "epochs"], sort=False, dropna=False)
    summary = groups.agg(
        seeds=("seed", "count"),
        dev_accuracy=("dev_accuracy", "mean"),
        dev_accuracy_sd=("dev_accuracy", "std"),
        dev_loss=("dev_loss", "mean"),
        test_accuracy=("test_accuracy", "mean"),
        seconds=("seconds", "mean"),
    ).reset_index()
    failed = scored[~scored["_ok"]].groupby([*names, "epochs"], dropna=False).size()
    summary["failed"] = [
        int(failed.get(tuple(key), 0)) for key in summary[[*names, "epochs"]].itertuples(False)
    ]
    best_first = METRICS[metric] == "min"
    summary = summary.sort_values(
        ["epochs", metric], ascending=[False, best_first], kind="stable", na_position="last"
    )
    return summary.reset_index(drop=True)


def write_csv(table: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        table.to_csv(tmp, index=False)
