"""python -m fastnn.train: train the two-layer network on MNIST, Fashion-MNIST or a Kaggle CSV."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import fastnn
from fastnn import plots, training
from fastnn.atomic import write_text
from fastnn.backends import BACKENDS, get_backend
from fastnn.data import (
    DataError,
    load_dataset,
    read_kaggle_csv,
    train_dev_split,
    write_kaggle_submission,
)
from fastnn.model import ACTIVATIONS, DTYPES, INIT_SCHEMES, init_params
from fastnn.persist import save_model

N_CLASSES = 10

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
    p.add_argument("--hidden", type=positive_int, help="hidden units")
    p.add_argument("--activation", choices=ACTIVATIONS)
    p.add_argument("--init", choices=INIT_SCHEMES)
    p.add_argument(
        "--epochs",
        type=positive_int,
        help="passes over the data (with a full batch, gradient steps)",
    )
    p.add_argument("--batch-size", type=batch_size_arg, help="rows per step, or 'full'")
    p.add_argument("--lr", type=positive_float, help="learning rate")
    p.add_argument("--dtype", choices=DTYPES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dev-size", type=int, help="training rows held out as the dev set")
    p.add_argument("--threads", type=positive_int, help="threads for the numba backend")
    p.add_argument("--log-every", type=positive_int, help="print every Nth epoch")
    p.add_argument("--metrics", metavar="FILE", help="write config and per-epoch results as JSON")
    p.add_argument("--plots", metavar="DIR", help="write loss, accuracy and sample-digit PNGs")
    p.add_argument("--save", metavar="FILE", help="write the trained model (.npz)")
    p.add_argument("--predict-csv", metavar="FILE", help="a Kaggle test.csv to predict")
    p.add_argument(
        "--submission",
        metavar="FILE",
        default="submission.csv",
        help="where --predict-csv writes ImageId,Label (default: %(default)s)",
    )
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill every option the user did not give from the preset."""
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


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


def run(args: argparse.Namespace) -> dict:
    backend = get_backend(args.backend)
    X_all, y_all, X_test, y_test = load_data(args)
    X, y, X_dev, y_dev = train_dev_split(X_all, y_all, args.dev_size, seed=args.seed)
    batch_size = len(X) if args.batch_size == "full" else args.batch_size
    params = init_params(X.shape[1], args.hidden, N_CLASSES, args.init, args.seed, args.dtype)
    # A full batch has nothing to shuffle: every epoch is one step over the same rows.
    order_rng = None if batch_size >= len(X) else np.random.default_rng(args.seed + 1)
    print(
        f"fastnn {fastnn.__version__} | backend {backend.name} | {len(X)} train, {len(X_dev)} dev"
        f"{'' if X_test is None else f', {len(X_test)} test'} rows | hidden {args.hidden} "
        f"{args.activation} | {args.init} init | {args.dtype} | batch {batch_size} | lr {args.lr:g}"
    )
    history = []
    with backend.threads(args.threads):
        for epoch in tqdm(range(1, args.epochs + 1), desc="training", unit="epoch", disable=None):
            order = training.epoch_order(order_rng, len(X))
            loss, train_acc, seconds = training.guarded_epoch(
                backend, params, X, y, order, batch_size, args.lr, args.activation, epoch
            )
            dev_acc = training.accuracy(backend, params, X_dev, y_dev, args.activation)
            dev_acc = None if np.isnan(dev_acc) else dev_acc
            history.append(
                dict(
                    epoch=epoch,
                    loss=loss,
                    train_accuracy=train_acc,
                    dev_accuracy=dev_acc,
                    seconds=seconds,
                )
            )
            if epoch % args.log_every == 0 or epoch in (1, args.epochs):
                tqdm.write(
                    f"epoch {epoch:4d}/{args.epochs} | loss {loss:.4f} | train acc "
                    f"{percent(train_acc)} | dev acc {percent(dev_acc)} | {1000 * seconds:8.1f} ms"
                )
        test_acc = None
        if X_test is not None:
            test_acc = training.accuracy(backend, params, X_test, y_test, args.activation)
        later = [h["seconds"] for h in history[1:]]
        summary = dict(
            first_epoch_seconds=history[0]["seconds"],
            median_epoch_seconds=statistics.median(later) if later else None,
            dev_accuracy=history[-1]["dev_accuracy"],
            test_accuracy=test_acc,
        )
        compiled = " (includes JIT compilation)" if backend.name == "numba" else ""
        print(f"first epoch {1000 * summary['first_epoch_seconds']:.1f} ms{compiled}", end="")
        if later:
            print(f"; later epochs median {1000 * summary['median_epoch_seconds']:.1f} ms", end="")
        print(
            f"\ndev accuracy {percent(summary['dev_accuracy'])} | test accuracy {percent(test_acc)}"
        )
        if args.plots:
            X_show, y_show = (X_dev, y_dev) if X_test is None else (X_test, y_test)
            shown = X_show[:16]
            predicted = training.predict_proba(backend, params, shown, args.activation).argmax(1)
            plots.plot_curves(history, args.plots)
            plots.plot_samples(shown, predicted, y_show[:16], args.plots)
            print(f"wrote loss.png, accuracy.png and samples.png to {args.plots}")
        if args.predict_csv:
            X_new, _ = read_kaggle_csv(args.predict_csv)
            labels = training.predict_proba(backend, params, X_new, args.activation).argmax(axis=1)
            write_kaggle_submission(args.submission, labels)
            print(f"wrote {len(labels)} predictions to {args.submission}")
    config = {k: v for k, v in vars(args).items() if k not in ("metrics", "plots", "save")}
    if args.save:
        # The batch size actually used, so that a loaded model can go on training as it was.
        saved_config = dict(config, batch_size=batch_size)
        scores = {"dev_accuracy": summary["dev_accuracy"], "test_accuracy": test_acc}
        save_model(
            args.save,
            params,
            activation=args.activation,
            classes=np.arange(N_CLASSES),
            config=saved_config,
            scores=scores,
        )
        print(f"saved the model to {args.save}")
    return dict(fastnn_version=fastnn.__version__, config=config, epochs=history, **summary)


def main(argv: list[str] | None = None) -> int:
    args = resolve(build_parser().parse_args(argv))
    started = time.perf_counter()
    try:
        metrics = run(args)
    except (DataError, training.TrainingDiverged, ValueError) as exc:
        print(f"fastnn.train: error: {exc}", file=sys.stderr)
        return 1
    metrics["wall_seconds"] = time.perf_counter() - started
    if args.metrics:
        write_text(args.metrics, json.dumps(metrics, indent=2) + "\n")
        print(f"wrote metrics to {args.metrics}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
