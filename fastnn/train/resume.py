"""python -m fastnn.train --resume FILE: go on training a run the command saved, exactly where it
stopped.

The saved run decides everything that shapes the training (data, split, network, update rule,
schedule, seed); the command line may add epochs and change where it runs (backend, threads)
and what it writes. 3 epochs and then --resume for 2 more give the same bits as 5 in one go:
the weights, the optimizer's state, the schedule's position and the generator that shuffles each
epoch all come from the file.

Before any of it is used, the saved options are checked as fastnn.load checks a saved
configuration (by the same function, fastnn.saved.checked_model), those only the command has as
the command takes them, and all against the saved network: a header damaged or edited by hand is
one line naming the file and the field.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from fastnn.core.augment import check_augment
from fastnn.core.checks import is_int
from fastnn.core.hyperparameters import PRESETS, SCHEMA, SHORT_NAMES
from fastnn.core.model import Params
from fastnn.core.optim import OptimizerState
from fastnn.data import DATASET_NAMES
from fastnn.estimator import MLPClassifier
from fastnn.files.history import History
from fastnn.files.npz_members import short
from fastnn.files.persist import ModelFileError, SavedModel, read_model
from fastnn.saved import checked_model, single_label
from fastnn.train.options import IMAGE_PIXELS, RUN_OPTIONS, augment_spec
from fastnn.train.outputs import N_CLASSES

# The options a resumed run takes from the saved one. Any other (epochs, logging, outputs,
# downloading) is this invocation's own; where it runs (backend, threads) too, by default as
# the saved run did.
DECIDED_BY_THE_RUN = (
    *RUN_OPTIONS,
    *(p.dest for p in SCHEMA if p.command and p.shapes_run and p.dest != "epochs"),
)
# What a run saved before an option existed did without it.
ADDED_LATER = {"augment": None}


def _is_whole(least: int) -> Callable[[Any], bool]:
    return lambda value: is_int(value) and value >= least


# What the saved options must be that MLPClassifier's checks do not see, or see under another
# name, or allow where the command does not (a batch size "auto", a random_state None).
COMMAND_OPTIONS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "preset": (lambda v: isinstance(v, str) and v in PRESETS, f"one of {', '.join(PRESETS)}"),
    "dataset": (lambda v: v in DATASET_NAMES, f"one of {', '.join(DATASET_NAMES)}"),
    "data": (lambda v: v is None or isinstance(v, str), "a path (a string) or null"),
    "dev_size": (_is_whole(0), "a whole number >= 0"),
    "seed": (_is_whole(0), "a whole number >= 0"),
    "hidden": (lambda v: isinstance(v, list), "a list of layer sizes"),
    "batch_size": (lambda v: v == "full" or _is_whole(1)(v), "a positive whole number or 'full'"),
}


class Resumed(NamedTuple):
    params: Params
    state: OptimizerState | None
    history: History


def resume_from(args: argparse.Namespace) -> Resumed:
    """Fill args from the run saved in args.resume and return where it stopped; ValueError
    (with what to do) for a file that is not a resumable run or options that contradict it."""
    path = args.resume
    saved = read_model(path)
    single_label(saved, path)
    config, history = saved.config, History.from_json(saved.history, path)
    config = {**ADDED_LATER, **config}
    missing = [name for name in (*DECIDED_BY_THE_RUN, "max_iter", "backend") if name not in config]
    if history is None or missing:
        raise ValueError(
            f"{path} cannot be resumed: it was not saved by this version of python -m "
            "fastnn.train --save (no training history or options). A model saved by "
            "MLPClassifier.save goes on training with fastnn.load(path).partial_fit(X, y)"
        )
    _check_run(saved, config, path)
    for name in DECIDED_BY_THE_RUN:
        given, theirs = getattr(args, name), config[name]
        if name == "augment":  # the command's words, as the saved run recorded them
            given = augment_spec(given)
        if given is not None and given != theirs and name != "preset":
            option = "--" + name.replace("_", "-")
            raise ValueError(
                f"--resume goes on with the saved run's options, but {option} {given} differs "
                f"from its {theirs}: leave {option} out, or start a new run without --resume"
            )
        setattr(args, name, theirs)
    for name in ("backend", "threads"):
        if getattr(args, name) is None:
            setattr(args, name, config.get(name))
    if args.epochs is None:
        args.epochs = config["max_iter"] - history.epochs
        if args.epochs < 1:
            raise ValueError(
                f"{path} finished all its {history.epochs} epochs: give --epochs N to train N more"
            )
    state = saved.state
    # The file's arrays may be read-only; training updates its own copies.
    return Resumed(saved.params.copy(), None if state is None else state.copy(), history)


def _check_run(saved: SavedModel, config: dict[str, Any], path: str | os.PathLike) -> None:
    """Raise ModelFileError, naming the file and the field, unless --resume can go on with the
    saved run: its options checked as fastnn.load checks a saved configuration (the same
    function), those only the command has as the command takes them, and the network they
    describe against the saved weights."""

    def unusable(problem: str) -> ModelFileError:
        return ModelFileError(f"{path}: the saved configuration is not usable: {problem}")

    for name, (ok, wanted) in COMMAND_OPTIONS.items():
        if not ok(config[name]):
            raise unusable(f"{name} must be {wanted}; got {short(config[name])}")
    # The command records the options that MLPClassifier names otherwise under both names
    # (for fastnn.load); --resume reads the command's, so both must say the same.
    for option, name in SHORT_NAMES.items():
        if option != "epochs" and name in config and config[name] != config.get(option):
            raise unusable(
                f"{option} {short(config.get(option))} differs from {name} {short(config[name])}"
            )
    names = MLPClassifier._param_names()
    params = {
        SHORT_NAMES.get(k, k): config[k] for k in (*DECIDED_BY_THE_RUN, "max_iter", "backend")
    }
    params = {k: v for k, v in params.items() if k in names}
    checked_model(saved, {**params, "n_threads": config.get("threads")}, path)
    try:
        check_augment(config["augment"], IMAGE_PIXELS, None, 0)
    except ValueError as exc:
        raise unusable(str(exc)) from None
    network = saved.params
    for name, theirs in (
        ("hidden", list(network.hidden_sizes)),
        ("dtype", network.dtype.name),
        ("activation", saved.activation),
    ):
        if config[name] != theirs:
            raise unusable(
                f"{name} {short(config[name])} does not match the saved network's {theirs}"
            )
    if network.n_in != IMAGE_PIXELS or not np.array_equal(saved.classes, np.arange(N_CLASSES)):
        raise ModelFileError(
            f"{path}: the saved network maps {network.n_in} features to the classes "
            f"{short(saved.classes.tolist())}, not a run of this command, which trains on "
            f"{IMAGE_PIXELS} pixels and the classes 0 to {N_CLASSES - 1}"
        )
