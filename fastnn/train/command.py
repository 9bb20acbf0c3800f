"""python -m fastnn.train: train the network on MNIST, Fashion-MNIST or a Kaggle CSV, or go on
training a saved run (--resume)."""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fastnn.backends import get_backend, start_loading
from fastnn.core import interrupt, training
from fastnn.core.hyperparameters import DEFAULTS
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer, OptimizerState, Schedule
from fastnn.data import (
    DataError,
    load_dataset,
    read_kaggle_csv,
    train_dev_split,
)
from fastnn.train.options import build_parser, resolve
from fastnn.train.outputs import N_CLASSES, check_outputs, planned_outputs
from fastnn.train.resume import Resumed, resume_from
from fastnn.train.run import Run
from fastnn.version import __version__

EXIT_ERROR = 1
# --learning-rate adaptive divides the rate by 5 after this many epochs in a row in which the
# training loss fell by no more than ADAPTIVE_TOL: MLPClassifier's n_iter_no_change and tol.
ADAPTIVE_PATIENCE = DEFAULTS["n_iter_no_change"]
ADAPTIVE_TOL = DEFAULTS["tol"]
# The status that the model and the metrics record for a run stopped early by a signal.
STOPPED = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated"}


def load_data(args: argparse.Namespace):
    """(X_train, y_train, X_test, y_test); the test pair is None for a Kaggle train.csv."""
    path = Path(args.data) if args.data else None
    if path is not None and path.suffix.lower() == ".csv":
        X, y = read_kaggle_csv(path)
        if y is None:
            raise DataError(
                f"{path} has no 'label' column, so it cannot be trained on: give the Kaggle "
                "train.csv with --data and the test.csv with --predict-csv"
            )
        return X, y, None, None
    return load_dataset(args.dataset, data_dir=path, download=not args.no_download)


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def error(message: str) -> None:
    tqdm.write(f"fastnn.train: error: {message}", file=sys.stderr)


def start(args: argparse.Namespace, X: np.ndarray, resumed: Resumed | None) -> tuple:
    """(params, how, order_rng, first_epoch) for a new run or a resumed one."""
    batch_size = training.batch_rows(args.batch_size, len(X))
    optimizer = Optimizer.of(args)
    seeds = training.Seeds.of(args.seed)
    if resumed is None:
        params = init_params(X.shape[1], args.hidden, N_CLASSES, args.init, seeds.init, args.dtype)
        state = OptimizerState.fresh(optimizer, params)
        order_rng = np.random.default_rng(seeds.order)
        done, samples_seen, rate = 0, 0, None
    else:
        params = resumed.params
        state = resumed.state or OptimizerState.fresh(optimizer, params)
        order_rng = resumed.history.order_generator()
        done, samples_seen = resumed.history.epochs, resumed.history.samples_seen
        rate = resumed.history.rate
    schedule = Schedule(args.learning_rate, args.lr, args.power_t, done + args.epochs)
    schedule.samples_seen = samples_seen
    if rate is not None:
        schedule.current = rate
    how = training.Training.of(
        args, state=state, schedule=schedule, batch_size=batch_size,
        n_hidden=len(params.hidden_sizes), n_features=X.shape[1], seed=seeds.dropout,
    )  # fmt: skip
    return params, how, order_rng, done + 1


def run(args: argparse.Namespace, started: float, resumed: Resumed | None) -> int:
    """Train, then write every output asked for, even after Ctrl-C, SIGTERM or divergence
    (marked as such); returns the exit status."""
    start_loading(args.backend)  # while the data loads
    X_all, y_all, X_test, y_test = load_data(args)
    backend = get_backend(args.backend)
    X_new = read_kaggle_csv(args.predict_csv)[0] if args.predict_csv else None
    split_seed = training.Seeds.of(args.seed).split
    X, y, X_dev, y_dev = train_dev_split(X_all, y_all, args.dev_size, seed=split_seed)
    if args.report and X_test is None and not len(X_dev):
        raise ValueError(
            "--report evaluates the model on the test set, or the dev set where there is none "
            "(a Kaggle train.csv); with --dev-size 0 there is neither: keep a dev set"
        )
    params, how, order_rng, first = start(args, X, resumed)
    earlier = None if resumed is None else resumed.history
    r = Run(
        args=args, backend=backend, params=params, X=X, y=y, X_dev=X_dev, y_dev=y_dev,
        X_test=X_test, y_test=y_test, X_new=X_new, how=how, order_rng=order_rng,
        first_epoch=first, planned=first - 1 + args.epochs, earlier=earlier,
    )  # fmt: skip
    # From here on a Ctrl-C or SIGTERM ends training at an epoch boundary and the outputs are
    # still written; a second one quits at once.
    with interrupt.stop_requests(training.STOP_NOTICE) as stop, backend.threads(args.threads):
        print(
            f"fastnn {__version__} | backend {backend.name} | {len(X)} train, "
            f"{len(X_dev)} dev{'' if X_test is None else f', {len(X_test)} test'} rows | hidden "
            f"{' '.join(map(str, args.hidden))} {args.activation} | {args.init} init | "
            f"{args.dtype} | batch {how.batch_size} | {describe(args)}"
            + ("" if resumed is None else f" | resuming after epoch {first - 1}")
        )
        history, outcome = train_epochs(r)
        if outcome.diverged:
            error(outcome.diverged)
        status = "diverged" if outcome.diverged else STOPPED.get(outcome.interrupted, "finished")
        if status != "finished":
            last = first - 1 + outcome.epochs_run
            print(f"training {status} after {outcome.epochs_run} of {args.epochs} epochs; "
                  f"the outputs hold the weights after epoch {last}")  # fmt: skip
        stopped = {"status": status, "epochs_completed": outcome.epochs_run}
        summary = summarise(r, history, outcome)
        failed = write_outputs(planned_outputs(r, history, stopped, summary, started))
    if stop.requested:  # in training, or while the outputs were written
        return interrupt.exit_status(stop.signal)
    return EXIT_ERROR if outcome.diverged or failed else 0


def describe(args: argparse.Namespace) -> str:
    """The update rule and rate in a few words, e.g. "adam, lr 0.001" or "sgd, lr 0.2"."""
    words = [args.solver]
    if args.solver == "sgd" and args.momentum:
        words[0] += f" momentum {args.momentum:g}" + (" nesterov" * args.nesterovs_momentum)
    if args.alpha:
        words.append(f"alpha {args.alpha:g}")
    if any(args.dropout):
        words.append("dropout " + " ".join(f"{rate:g}" for rate in args.dropout))
    if args.input_dropout:
        words.append(f"input dropout {args.input_dropout:g}")
    if args.max_norm is not None:
        words.append(f"max-norm {args.max_norm:g}")
    if args.augment is not None:
        words.append(f"augment {args.augment}")
    schedule = "" if args.learning_rate == "constant" else f" {args.learning_rate}"
    return ", ".join([*words, f"lr {args.lr:g}{schedule}"])


def train_epochs(r: Run) -> tuple[list[dict], training.Outcome]:
    """Train r.params in place; the per-epoch record, and how training ended."""
    args = r.args
    history: list[dict] = []
    bar = tqdm(total=args.epochs, desc="training", unit="epoch", disable=None)

    def after_epoch(result: training.EpochResult) -> bool:
        dev = training.evaluate(r.backend, r.params, r.X_dev, r.y_dev, args.activation)
        dev_acc = None if np.isnan(dev.score) else dev.score
        dev_loss = None if np.isnan(dev.loss) else dev.loss
        history.append(dict(result._asdict(), dev_accuracy=dev_acc, dev_loss=dev_loss))
        bar.update()
        if result.epoch % args.log_every == 0 or result.epoch in (r.first_epoch, r.planned):
            tqdm.write(
                f"epoch {result.epoch:4d}/{r.planned} | loss {result.loss:.4f} | train acc "
                f"{percent(result.train_accuracy)} | dev acc {percent(dev_acc)} | "
                f"{1000 * result.seconds:8.1f} ms"
            )
        if args.learning_rate != "adaptive" or not stalls.add(-result.loss):
            return False
        return r.how.schedule.stalled()

    stalls = training.Stalls(ADAPTIVE_TOL, ADAPTIVE_PATIENCE)
    try:
        outcome = training.run_epochs(
            r.backend, r.params, r.X, r.y, r.how, epochs=args.epochs, first_epoch=r.first_epoch,
            rng=r.order_rng, n_threads=None, after_epoch=after_epoch, say=tqdm.write,
        )  # fmt: skip
    finally:
        bar.close()
    return history, outcome


def summarise(r: Run, history: list[dict], outcome: training.Outcome) -> dict:
    """Timings and final accuracies; printed, and returned for the metrics."""
    test_acc = None
    if r.X_test is not None:
        test = training.evaluate(r.backend, r.params, r.X_test, r.y_test, r.args.activation)
        test_acc = test.score
    later = [h["seconds"] for h in history[1:]]
    summary = dict(
        first_epoch_seconds=history[0]["seconds"] if history else None,
        median_epoch_seconds=statistics.median(later) if later else None,
        compile_seconds=outcome.compile_seconds,
        dev_accuracy=history[-1]["dev_accuracy"] if history else None,
        test_accuracy=test_acc,
    )
    print_summary(summary)
    return summary


def print_summary(summary: dict) -> None:
    if summary["first_epoch_seconds"] is not None:
        line = f"first epoch {1000 * summary['first_epoch_seconds']:.1f} ms"
        if summary["median_epoch_seconds"] is not None:
            line += f"; later epochs median {1000 * summary['median_epoch_seconds']:.1f} ms"
        print(line)
    if summary["compile_seconds"] is not None:
        # Not "of which": the kernels that evaluate compile before the first epoch starts.
        print(f"compiled the kernels in {summary['compile_seconds']:.1f} s (later runs load them)")
    print(
        f"dev accuracy {percent(summary['dev_accuracy'])} | "
        f"test accuracy {percent(summary['test_accuracy'])}"
    )


def write_outputs(writes: list[tuple[str, str, Callable[[], None]]]) -> bool:
    """Write each output; one that fails is one line and the others are still written.
    Returns whether any failed."""
    failed = False
    for what, path, write in writes:
        try:
            write()
        except OSError as exc:
            failed = True
            error(f"could not write {what} to {path}: {exc.strerror or exc}")
        except Exception as exc:  # not foreseen (a bug): named, and the other outputs written
            failed = True
            error(f"could not write {what} to {path}: {type(exc).__name__}: {exc}")
        else:
            print(f"wrote {what} to {path}")
    return failed


@interrupt.handles_sigterm
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        resumed = resume_from(args) if args.resume else None
        check_outputs(resolve(args))
        return run(args, started, resumed)
    except (DataError, ValueError) as exc:
        error(str(exc))
        return EXIT_ERROR
    except MemoryError as exc:  # NumPy's says how much, for what shape and dtype
        error(f"not enough memory: {exc}; choose fewer or smaller hidden layers (--hidden)")
        return EXIT_ERROR
    except KeyboardInterrupt:  # before training began: nothing to keep
        error("interrupted before training began; nothing was written")
        return interrupt.EXIT_INTERRUPTED
