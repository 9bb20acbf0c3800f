"""One trial of a sweep: `python -m fastnn.train` with a configuration, a seed and an epoch
budget, trained in this process (a Dask worker's) on data it already holds; its scores.

A trial is the training command's own run, built from its options as the command builds it
(fastnn.train.options.settings, then train.start): the command line it is printed as gives the same
bits on the same backend, and so does MLPClassifier with the same parameters on the same rows.
`run_trial` is a plain top-level function, so that workers import it rather than unpickle it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnn.core.hyperparameters import BY_NAME
from fastnn.sweep.space import KINDS, coerce_value, format_value

# What makes two trials the same trial: everything that changes what is trained (not the
# threads, which give the same bits, nor which rung of a halving asked for it).
IDENTITY_KEYS = (
    "preset", "backend", "dataset", "data", "dev_size", "train_rows", "params", "seed", "epochs",
)  # fmt: skip
# For the tests: seconds each trial waits before it trains, so that one can be caught running.
DELAY_VARIABLE = "FASTNN_SWEEP_TRIAL_DELAY"
SPLITS_KEPT = 2  # splits (one per seed) a worker keeps: each is a copy of the training data


@dataclass
class SweepData:
    """The arrays every trial of a sweep reads: the command's training rows (before the dev
    split) and test rows (None for a Kaggle train.csv). Scattered once to every worker."""

    key: str  # names the data, for each worker's cache of splits
    X: np.ndarray
    y: np.ndarray
    X_test: np.ndarray | None
    y_test: np.ndarray | None


def trial_id(spec: dict[str, Any]) -> str:
    """A stable name for the trial: a hash of what it trains (see IDENTITY_KEYS)."""
    token = json.dumps({k: spec.get(k) for k in IDENTITY_KEYS}, sort_keys=True)
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def option_words(name: str, value: Any) -> list[str]:
    """Parameter `name` = `value` as options of python -m fastnn.train; [] for None, which is
    then the preset's (check_spec makes sure that is what was asked for)."""
    option = BY_NAME[name].flags[0]
    if value is None:
        return []
    if isinstance(value, bool):
        return [option if value else "--no-" + option[2:]]
    if isinstance(value, dict):
        strengths = [f"{k}={v:g}" for k, v in value.items() if k != "kind"]
        return [option, value["kind"], *strengths]
    if isinstance(value, list | tuple):
        return [option, *(format_value(v) for v in value)]
    return [option, repr(value) if isinstance(value, float) else str(value)]


def command_args(spec: dict[str, Any], *, shown: bool = False) -> list[str]:
    """The trial as python -m fastnn.train's arguments. `shown`: for people, leaving out what
    is the command's default anyway (and the threads, which change no bits)."""
    words = ["--preset", spec["preset"], "--backend", spec["backend"]]
    words += ["--dataset", spec["dataset"]]
    if shown:
        defaults = {"--preset": "default", "--backend": "numba", "--dataset": "mnist"}
        words = [w for pair in zip(words[::2], words[1::2], strict=True)
                 if defaults[pair[0]] != pair[1] for w in pair]  # fmt: skip
    if spec.get("data"):
        words += ["--data", str(spec["data"])]
    if not spec.get("download", True):
        words.append("--no-download")
    if spec.get("dev_size") is not None:
        words += ["--dev-size", str(spec["dev_size"])]
    words += ["--epochs", str(spec["epochs"]), "--seed", str(spec["seed"])]
    for name, value in spec["params"].items():
        words += option_words(name, coerce_value(name, value))
    if not shown and spec.get("threads"):
        words += ["--threads", str(spec["threads"])]
    return words


def check_spec(spec: dict[str, Any]) -> argparse.Namespace:
    """The training command's resolved options for the trial, built as the command builds
    them from its options (fastnn.train.options.settings, no command line in between); ValueError
    if the command refuses them, or if they do not say what the trial asks (a value the
    command cannot take over the preset, such as max_norm none over a preset that has one)."""
    from fastnn.train.options import settings

    params = {name: coerce_value(name, value) for name, value in spec["params"].items()}
    run = dict(backend=spec["backend"], random_state=spec["seed"], max_iter=spec["epochs"],
               n_threads=spec.get("threads"))  # fmt: skip
    args = settings(
        spec["preset"], {**params, **run}, dataset=spec["dataset"], data=spec.get("data"),
        dev_size=spec.get("dev_size"), no_download=not spec.get("download", True),
    )  # fmt: skip
    for name, wanted in spec["params"].items():
        got = getattr(args, BY_NAME[name].dest)
        if _canonical(name, got) != _canonical(name, wanted):
            raise ValueError(
                f"{name}={format_value(wanted)} cannot be given to python -m fastnn.train over "
                f"preset {spec['preset']!r} (it gives {format_value(got)}); choose another preset"
            )
    return args


def _canonical(name: str, value: Any) -> Any:
    if KINDS[name] == "rates" and isinstance(value, list | tuple) and len(set(value)) == 1:
        value = value[:1]  # one rate for every layer, however many times it is written
    return coerce_value(name, value)


_splits: OrderedDict[tuple, tuple[np.ndarray, ...]] = OrderedDict()


def _split(data: SweepData, seed: int, dev_size: int, train_rows: int | None) -> tuple:
    """The command's seeded train/dev split, kept for the next trials of the same seed."""
    from fastnn.data import train_dev_split

    key = (data.key, seed, dev_size, train_rows)
    if key not in _splits:
        X, y, X_dev, y_dev = train_dev_split(data.X, data.y, dev_size, seed=seed)
        if train_rows is not None:
            X, y = X[:train_rows], y[:train_rows]
        _splits[key] = (X, y, X_dev, y_dev)
        while len(_splits) > SPLITS_KEPT:
            _splits.popitem(last=False)
    _splits.move_to_end(key)
    return _splits[key]


def worker_name() -> str:
    """The Dask worker's address, or host:pid outside one."""
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_trial(data: SweepData, spec: dict[str, Any]) -> dict[str, Any]:
    """Train the trial `spec` and return its row: scores, seconds, where it ran."""
    from fastnn.backends import get_backend
    from fastnn.core import training
    from fastnn.train.command import ADAPTIVE_PATIENCE, ADAPTIVE_TOL, start

    started = time.perf_counter()
    delay = float(os.environ.get(DELAY_VARIABLE) or 0)
    if delay:
        time.sleep(delay)
    args = check_spec(spec)
    X, y, X_dev, y_dev = _split(data, args.seed, args.dev_size, spec.get("train_rows"))
    backend = get_backend(args.backend)
    params, how, order_rng, first = start(args, X, None)
    stalls = training.Stalls(ADAPTIVE_TOL, ADAPTIVE_PATIENCE)
    losses: list[float] = []
    seconds: list[float] = []

    def after_epoch(result: training.EpochResult) -> bool:
        # As the command's own loop: only the adaptive schedule ends a run early.
        losses.append(result.loss)
        seconds.append(result.seconds)
        if args.learning_rate != "adaptive" or not stalls.add(-result.loss):
            return False
        return how.schedule.stalled()

    outcome = training.run_epochs(
        backend, params, X, y, how, epochs=args.epochs, first_epoch=first, rng=order_rng,
        n_threads=args.threads, after_epoch=after_epoch,
    )  # fmt: skip
    with backend.threads(args.threads):
        dev = training.evaluate(backend, params, X_dev, y_dev, args.activation)
        test = None
        if data.X_test is not None:
            test = training.evaluate(backend, params, data.X_test, data.y_test, args.activation)
    digest = hashlib.sha256()
    for array in params.arrays():
        digest.update(np.ascontiguousarray(array).tobytes())
    return {
        "trial": trial_id(spec),
        "status": "diverged" if outcome.diverged else "finished",
        "epochs_completed": outcome.epochs_run,
        "dev_accuracy": _number(dev.score),
        "dev_loss": _number(dev.loss),
        "test_accuracy": None if test is None else _number(test.score),
        "train_loss": losses[-1] if losses else None,
        "seconds": sum(seconds),
        "wall_seconds": time.perf_counter() - started,
        "compile_seconds": outcome.compile_seconds,
        "weights_sha256": digest.hexdigest()[:16],
        "worker": worker_name(),
        "error": outcome.diverged,
    }


def _number(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
