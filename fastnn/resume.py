"""python -m fastnn.train --resume FILE: go on training a run the command saved, exactly where it
stopped.

The saved run decides everything that shapes the training (data, split, network, update rule,
schedule, seed); the command line may add epochs and change where it runs (backend, threads)
and what it writes. 3 epochs and then --resume for 2 more give the same bits as 5 in one go:
the weights, the optimizer's state, the schedule's position and the generator that shuffles each
epoch all come from the file.
"""

from __future__ import annotations

import argparse
from typing import NamedTuple

from fastnn.history import History
from fastnn.model import Params
from fastnn.optim import Optimizer, OptimizerState
from fastnn.options import augment_spec
from fastnn.persist import read_model

# The options a resumed run takes from the saved one. Any other (epochs, logging, outputs,
# downloading) is this invocation's own; where it runs (backend, threads) too, by default as
# the saved run did.
DECIDED_BY_THE_RUN = (
    "preset", "dataset", "data", "hidden", "activation", "init", "batch_size", "lr", "dtype",
    "seed", "dev_size", "solver", "momentum", "nesterovs_momentum", "beta_1", "beta_2",
    "epsilon", "rho", "alpha", "learning_rate", "power_t", "dropout", "input_dropout", "max_norm",
    "augment",
)  # fmt: skip
# What a run saved before an option existed did without it.
ADDED_LATER = {"augment": None}


class Resumed(NamedTuple):
    params: Params
    state: OptimizerState | None
    history: History


def resume_from(args: argparse.Namespace) -> Resumed:
    """Fill args from the run saved in args.resume and return where it stopped; ValueError
    (with what to do) for a file that is not a resumable run or options that contradict it."""
    path = args.resume
    saved = read_model(path)
    config, history = saved.config, History.from_json(saved.history, path)
    config = {**ADDED_LATER, **config}
    missing = [name for name in (*DECIDED_BY_THE_RUN, "max_iter", "backend") if name not in config]
    if history is None or missing:
        raise ValueError(
            f"{path} cannot be resumed: it was not saved by this version of python -m "
            "fastnn.train --save (no training history or options). A model saved by "
            "MLPClassifier.save goes on training with fastnn.load(path).partial_fit(X, y)"
        )
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
    if state is not None and not state.fits(Optimizer.of(args), saved.params):
        raise ValueError(f"{path}: the saved optimizer state does not fit its solver")
    # The file's arrays may be read-only; training updates its own copies.
    return Resumed(saved.params.copy(), None if state is None else state.copy(), history)
