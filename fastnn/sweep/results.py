"""A sweep's results: the log every finished trial is appended to at once (one JSON line each,
flushed to disk before the next), read back to resume; and the table made from it (ranked by
configuration, and as CSV).

Reading the log back, every line must be a trial's row; the first that is not stops the sweep
with one line naming the file and the line, and nothing in it is changed. One exception: a last
line without its newline that is not JSON is what a sweep killed while writing a row leaves (a
row is one write, its newline last). That row was never reported, so the line is removed (the
file cut back to the newline before it) and its trial runs again, with a note saying so. A last
line that is a whole row and lacks only the newline is kept, and the newline added.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from fastnn.files.atomic import atomic_path
from fastnn.sweep.space import coerce_value, format_value

# Rows of these statuses are results: a resumed sweep does not run them again. A "failed" trial
# (its worker kept dying, or it raised) is run again by --resume.
DONE = ("finished", "diverged")
STATUSES = (*DONE, "failed")
METRICS = {"dev_accuracy": "max", "dev_loss": "min"}  # what a sweep may choose by, and how
COLUMNS = (
    "trial", "rung", "seed", "epochs", "status", "dev_accuracy", "dev_loss", "test_accuracy",
    "train_loss", "seconds", "wall_seconds", "compile_seconds", "weights_sha256", "worker",
    "error",
)  # fmt: skip
# What every row has, and the kind of value; the scores may also be null.
ROW_KEYS = {
    "trial": (str, "a string"), "rung": (int, "a whole number"), "params": (dict, "an object"),
    "seed": (int, "a whole number"), "epochs": (int, "a whole number"),
    "status": (str, "a string"),
}  # fmt: skip
SCORES = (
    "dev_accuracy", "dev_loss", "test_accuracy", "train_loss", "seconds", "wall_seconds",
    "compile_seconds",
)  # fmt: skip


class SweepFileError(ValueError):
    """One of a sweep's own files (sweep.json, results.jsonl) cannot be read back: the message
    names the file (and line) and what to do."""


def json_kind(value: Any) -> str:
    """What a JSON value is, in words: "a list", "a number", ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    kinds = ((dict, "an object"), (list, "a list"), (str, "a string"), (int | float, "a number"))
    return next(word for kind, word in kinds if isinstance(value, kind))


def json_problem(exc: BaseException) -> str:
    """Why json.loads refused a text, in a few words."""
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def row_problem(row: Any) -> str | None:
    """What makes `row` (as JSON gave it) no trial's row, or None."""
    if not isinstance(row, dict):
        return f"{json_kind(row)}, not a trial's row (an object)"
    missing = [key for key in ROW_KEYS if key not in row]
    if missing:
        return f"a row without {', '.join(missing)}"
    for key, (kind, words) in ROW_KEYS.items():
        if not isinstance(row[key], kind) or isinstance(row[key], bool):
            return f"{key} must be {words}; got {json_kind(row[key])}"
    if row["status"] not in STATUSES:
        return f"status must be one of {', '.join(STATUSES)}; got {row['status']!r:.40}"
    for key in SCORES:
        value = row.get(key)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            return f"{key} must be a number or null; got {json_kind(value)}"
    for name, value in row["params"].items():
        try:
            coerce_value(name, value)
        except (KeyError, ValueError, TypeError):
            return f"params: {name!r:.40} = {value!r:.40} is no value a sweep gives"
    return None


class ResultsLog:
    """The append-only JSON-lines file of finished trials. A line is written whole and synced
    to disk before the call returns, so a sweep killed at any moment loses no finished trial.
    Read back as the module's docstring says; `notes` tells what was repaired."""

    def __init__(self, path: str | os.PathLike | None) -> None:
        """`path` None: rows are kept in memory only. SweepFileError if a line is no row."""
        self.path = None if path is None else Path(path)
        self.rows: list[dict[str, Any]] = []
        self.notes: list[str] = []
        if self.path is None or not self.path.exists():
            return
        data = self.path.read_bytes()
        *lines, last = data.split(b"\n")  # last: what follows the last newline
        cut = bool(last.strip()) and _json(last) is NOT_JSON
        for number, line in enumerate(lines if cut else [*lines, last], 1):
            if line.strip():
                self.rows.append(self._row(line, number))
        if cut:
            with open(self.path, "r+b") as f:
                f.truncate(len(data) - len(last))
            self.notes.append(
                f"{self.path}: its last line was cut short (a sweep stopped while writing it): "
                f"removed it; that trial runs again"
            )
        elif last.strip():  # a whole row; the next one goes on a line of its own
            with open(self.path, "ab") as f:
                f.write(b"\n")

    def _row(self, line: bytes, number: int) -> dict[str, Any]:
        row = _json(line)
        problem = "not JSON" if row is NOT_JSON else row_problem(row)
        if problem is not None:
            raise SweepFileError(
                f"{self.path}, line {number}: {problem}; it is not as the sweep wrote it: "
                "delete that line (its trial then runs again) or put back the file"
            )
        return row

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


NOT_JSON = object()  # what _json gives for a line that is not JSON (None is JSON's null)


def _json(line: bytes) -> Any:
    try:
        return json.loads(line.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, a 5,000-digit number, [[[[...
        return NOT_JSON


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
