"""python -m fastnn.train: train the two-layer network on MNIST, Fashion-MNIST or a Kaggle CSV."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

import fastnn
from fastnn import interrupt, training
from fastnn.atomic import check_writable, write_text
from fastnn.backends import BACKENDS, Backend, get_backend
from fastnn.data import (
    DataError,
    load_dataset,
    read_kaggle_csv,
    train_dev_split,
    write_kaggle_submission,
)
from fastnn.model import ACTIVATIONS, INIT_SCHEMES, Params, check_dtype, init_params
from fastnn.persist import save_model

N_CLASSES = 10
DEFAULT_SUBMISSION = "submission.csv"
# The command's short names of MLPClassifier's parameters. Both spellings are options, and a saved
# model records the estimator's names too, so that fastnn.load gives every one of them back.
ESTIMATOR_NAMES = {
    "hidden": "hidden_layer_sizes",
    "epochs": "max_iter",
    "lr": "learning_rate_init",
    "seed": "random_state",
    "threads": "n_threads",
}
EXIT_ERROR = 1

# `seeds` is the tutorials' run exactly; `default` is a modern recipe that reaches 97%+ on MNIST.
PRESETS = {
    "default": dict(
        hidden=128,
        activation="relu",
        init="he",
        epochs=10,
        batch_size=128,
        lr=0.2,
        dtype="float32",
        dev_size=5000,
        log_every=1,
    ),
    "seeds": dict(
        hidden=10,
        activation="relu",
        init="uniform",
        epochs=500,
        batch_size="full",
        lr=0.1,
        dtype="float64",
        dev_size=1000,
        log_every=10,
    ),
}


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not np.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def batch_size_arg(text: str) -> int | str:
    return "full" if text == "full" else positive_int(text)


def dtype_arg(text: str) -> str:
    try:
        return check_dtype(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be float32 or float64, not {text}") from None


def spellings(dest: str) -> list[str]:
    """The option strings of `dest`: its own, and the estimator's name where that differs."""
    names = [dest, *([ESTIMATOR_NAMES[dest]] if dest in ESTIMATOR_NAMES else [])]
    return ["--" + name.replace("_", "-") for name in names]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.train",
        description="Train the two-layer network (one hidden layer, softmax output).",
    )
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="starting values for every option below (default: %(default)s); "
        "'seeds' reproduces the from-scratch tutorials",
    )
    p.add_argument("--backend", choices=BACKENDS, default="numba")
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), default="mnist")
    p.add_argument(
        "--data",
        metavar="PATH",
        help="a folder of IDX files, or a Kaggle digit-recognizer train.csv",
    )
    p.add_argument("--no-download", action="store_true", help="never download the dataset")
    p.add_argument(*spellings("hidden"), dest="hidden", type=positive_int, help="hidden units")
    p.add_argument("--activation", choices=ACTIVATIONS)
    p.add_argument("--init", choices=INIT_SCHEMES)
    p.add_argument(
        *spellings("epochs"),
        dest="epochs",
        type=positive_int,
        help="passes over the data (with a full batch, gradient steps)",
    )
    p.add_argument("--batch-size", type=batch_size_arg, help="rows per step, or 'full'")
    p.add_argument(*spellings("lr"), dest="lr", type=positive_float, help="learning rate")
    p.add_argument("--dtype", type=dtype_arg, help="float32 or float64 (or f4, f8, double)")
    p.add_argument(*spellings("seed"), dest="seed", type=int, default=0)
    p.add_argument("--dev-size", type=int, help="training rows held out as the dev set")
    p.add_argument(*spellings("threads"), dest="threads", type=positive_int,
                   help="threads for the numba backend")  # fmt: skip
    p.add_argument("--log-every", type=positive_int, help="print every Nth epoch")
    p.add_argument("--metrics", metavar="FILE", help="write config and per-epoch results as JSON")
    p.add_argument("--plots", metavar="DIR", help="write loss, accuracy and sample-digit PNGs")
    p.add_argument("--save", metavar="FILE", help="write the trained model (.npz)")
    p.add_argument("--predict-csv", metavar="FILE", help="a Kaggle test.csv to predict")
    p.add_argument(
        "--submission",
        metavar="FILE",
        help=f"where --predict-csv writes ImageId,Label (default: {DEFAULT_SUBMISSION}, "
        "which is not overwritten unless named here)",
    )
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every option the user did not give from the preset."""
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse, before any training, output paths that cannot be written."""
    for option, path in (("--save", args.save), ("--metrics", args.metrics)):
        if path:
            check_writable(path, option)
    if args.plots:
        check_writable(args.plots, "--plots", folder=True)
    if args.predict_csv:
        explicit = args.submission is not None
        args.submission = args.submission or DEFAULT_SUBMISSION
        check_writable(args.submission, "--submission", replace=explicit)


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


@dataclass
class Run:
    """One run of the command: its options, data and network."""

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
    batch_size: int


def run(args: argparse.Namespace, started: float) -> int:
    """Train, then write every output asked for, even after Ctrl-C or divergence (marked as
    such); returns the exit status."""
    backend = get_backend(args.backend)
    X_all, y_all, X_test, y_test = load_data(args)
    X_new = read_kaggle_csv(args.predict_csv)[0] if args.predict_csv else None
    X, y, X_dev, y_dev = train_dev_split(X_all, y_all, args.dev_size, seed=args.seed)
    batch_size = len(X) if args.batch_size == "full" else args.batch_size
    params = init_params(X.shape[1], args.hidden, N_CLASSES, args.init, args.seed, args.dtype)
    r = Run(args, backend, params, X, y, X_dev, y_dev, X_test, y_test, X_new, batch_size)
    # From here on a Ctrl-C ends training at an epoch boundary and the outputs are still
    # written; a second one quits at once.
    with interrupt.stop_requests(training.STOP_NOTICE), backend.threads(args.threads):
        print(
            f"fastnn {fastnn.__version__} | backend {backend.name} | {len(X)} train, "
            f"{len(X_dev)} dev{'' if X_test is None else f', {len(X_test)} test'} rows | hidden "
            f"{args.hidden} {args.activation} | {args.init} init | {args.dtype} | batch "
            f"{batch_size} | lr {args.lr:g}"
        )
        history, outcome = train_epochs(r)
        if outcome.diverged:
            error(outcome.diverged)
        status = (
            "diverged" if outcome.diverged else "interrupted" if outcome.interrupted else "finished"
        )
        if status != "finished":
            print(f"training {status} after {outcome.epochs_run} of {args.epochs} epochs; "
                  f"the outputs hold the weights after epoch {outcome.epochs_run}")  # fmt: skip
        stopped = {"status": status, "epochs_completed": outcome.epochs_run}
        summary = summarise(r, history, outcome)
        failed = write_outputs(planned_outputs(r, history, stopped, summary, started))
    if outcome.interrupted:
        return interrupt.EXIT_INTERRUPTED
    return EXIT_ERROR if outcome.diverged or failed else 0


def train_epochs(r: Run) -> tuple[list[dict], training.Outcome]:
    """Train r.params in place; the per-epoch record, and how training ended."""
    args = r.args
    history: list[dict] = []
    # A full batch has nothing to shuffle: every epoch is one step over the same rows.
    order_rng = None if r.batch_size >= len(r.X) else np.random.default_rng(args.seed + 1)
    bar = tqdm(total=args.epochs, desc="training", unit="epoch", disable=None)

    def after_epoch(result: training.EpochResult) -> bool:
        dev_acc = training.accuracy(r.backend, r.params, r.X_dev, r.y_dev, args.activation)
        dev_acc = None if np.isnan(dev_acc) else dev_acc
        history.append(dict(result._asdict(), dev_accuracy=dev_acc))
        bar.update()
        if result.epoch % args.log_every == 0 or result.epoch in (1, args.epochs):
            tqdm.write(
                f"epoch {result.epoch:4d}/{args.epochs} | loss {result.loss:.4f} | train acc "
                f"{percent(result.train_accuracy)} | dev acc {percent(dev_acc)} | "
                f"{1000 * result.seconds:8.1f} ms"
            )
        return False

    try:
        outcome = training.run_epochs(
            r.backend, r.params, r.X, r.y, epochs=args.epochs, first_epoch=1,
            batch_size=r.batch_size, lr=args.lr, activation=args.activation, rng=order_rng,
            n_threads=None, after_epoch=after_epoch, say=tqdm.write,
        )  # fmt: skip
    finally:
        bar.close()
    return history, outcome


def summarise(r: Run, history: list[dict], outcome: training.Outcome) -> dict:
    """Timings and final accuracies; printed, and returned for the metrics."""
    test_acc = None
    if r.X_test is not None:
        test_acc = training.accuracy(r.backend, r.params, r.X_test, r.y_test, r.args.activation)
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


def planned_outputs(
    r: Run, history: list[dict], stopped: dict, summary: dict, started: float
) -> list[tuple[str, str, Callable[[], None]]]:
    """(what, where, how) for each output asked for; the metrics last, to time everything."""
    args = r.args
    config = {k: v for k, v in vars(args).items() if k not in ("metrics", "plots", "save")}
    writes = []
    if args.save:
        # Under the estimator's names as well, with the batch size actually used, so that
        # fastnn.load gives an estimator with every hyperparameter of this run.
        as_estimator = {name: config[short] for short, name in ESTIMATOR_NAMES.items()}
        as_estimator["hidden_layer_sizes"] = [args.hidden]
        saved_config = dict(config, **as_estimator, batch_size=r.batch_size, **stopped)
        scores = {k: summary[k] for k in ("dev_accuracy", "test_accuracy")}
        writes.append(("the model", args.save, lambda: save_model(
            args.save, r.params, activation=args.activation, classes=np.arange(N_CLASSES),
            config=saved_config, scores=scores,
        )))  # fmt: skip
    if args.plots:
        X_show, y_show = (r.X_dev, r.y_dev) if r.X_test is None else (r.X_test, r.y_test)

        def write_plots() -> None:
            from fastnn import plots  # matplotlib takes a while to import: only when asked

            shown = X_show[:16]
            predicted = training.predict_proba(r.backend, r.params, shown, args.activation)
            plots.plot_curves(history, args.plots)
            plots.plot_samples(shown, predicted.argmax(1), y_show[:16], args.plots)

        writes.append(("loss.png, accuracy.png and samples.png", args.plots, write_plots))
    if r.X_new is not None:
        proba = training.predict_proba(r.backend, r.params, r.X_new, args.activation)
        labels = proba.argmax(axis=1)
        writes.append((f"{len(labels)} predictions", args.submission,
                       lambda: write_kaggle_submission(args.submission, labels)))  # fmt: skip
    if args.metrics:

        def write_metrics() -> None:
            metrics = dict(fastnn_version=fastnn.__version__, config=config, **stopped,
                           epochs=history, **summary)  # fmt: skip
            metrics["wall_seconds"] = time.perf_counter() - started
            write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")

        writes.append(("metrics", args.metrics, write_metrics))
    return writes


def print_summary(summary: dict) -> None:
    if summary["first_epoch_seconds"] is not None:
        line = f"first epoch {1000 * summary['first_epoch_seconds']:.1f} ms"
        if summary["compile_seconds"] is not None:
            line += f" (of which {summary['compile_seconds']:.1f} s compiling the kernels)"
        if summary["median_epoch_seconds"] is not None:
            line += f"; later epochs median {1000 * summary['median_epoch_seconds']:.1f} ms"
        print(line)
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
        else:
            print(f"wrote {what} to {path}")
    return failed


def main(argv: list[str] | None = None) -> int:
    args = resolve(build_parser().parse_args(argv))
    started = time.perf_counter()
    try:
        check_outputs(args)
        return run(args, started)
    except (DataError, ValueError) as exc:
        error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:  # before training began: nothing to keep
        error("interrupted before training began; nothing was written")
        return interrupt.EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
