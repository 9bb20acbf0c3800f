"""The training command's options: their parsing, the presets that fill in what is not given,
and the estimator names they also go by."""

from __future__ import annotations

import argparse
import copy

import numpy as np

from fastnn.augment import KINDS, check_augment
from fastnn.backends import BACKENDS
from fastnn.dropout import check_rates
from fastnn.model import ACTIVATIONS, INIT_SCHEMES, check_dtype
from fastnn.optim import LEARNING_RATES, SOLVERS, Optimizer
from fastnn.tools import add_version

DEFAULT_SUBMISSION = "submission.csv"
IMAGE_PIXELS = 28 * 28  # every dataset the command reads: MNIST, Fashion-MNIST, Kaggle's CSV
# The command's short names of MLPClassifier's parameters. Both spellings are options, and a saved
# model records the estimator's names too, so that fastnn.load gives every one of them back.
ESTIMATOR_NAMES = {
    "hidden": "hidden_layer_sizes",
    "epochs": "max_iter",
    "lr": "learning_rate_init",
    "seed": "random_state",
    "threads": "n_threads",
}

# Every preset's: the backend, the data, the seed, and the update rule and schedule under
# MLPClassifier's names with its defaults (plain SGD at a constant rate).
COMMON_DEFAULTS = dict(
    backend="numba", dataset="mnist", seed=0, solver="sgd", momentum=0.0,
    nesterovs_momentum=True, beta_1=0.9, beta_2=0.999, epsilon=1e-8, rho=0.99, alpha=0.0,
    learning_rate="constant", power_t=0.5, dropout=[0.0], input_dropout=0.0, max_norm=None,
    augment=None,
)  # fmt: skip
# `seeds` is the tutorials' run exactly. `default` reaches 98% on MNIST in about 2.5 s of
# training (2 cores): chosen by dev accuracy among the recipes the README lists; until
# 2026-12-01 it was hidden 128, plain SGD at a constant lr 0.2 (97.7%).
DEFAULT_PRESET = {
    **COMMON_DEFAULTS,
    "hidden": [256],
    "activation": "relu",
    "init": "he",
    "epochs": 10,
    "batch_size": 128,
    "solver": "adam",
    "lr": 0.003,
    "learning_rate": "cosine",
    "dtype": "float32",
    "dev_size": 5000,
    "log_every": 1,
}
# MNIST without augmentation: 98.7% (1.3% error) in under two minutes (README's Results).
BEST_PRESET = {
    **DEFAULT_PRESET,
    "hidden": [800, 800],
    "epochs": 36,
    "lr": 0.001,
    "dropout": [0.3],
    "log_every": 4,
}
PRESETS = {
    "default": DEFAULT_PRESET,
    "best": BEST_PRESET,
    # MNIST with elastic distortions: 99.3% (0.7% error) in about 3 minutes (README's Results).
    "best-augmented": {
        **BEST_PRESET,
        "epochs": 60,
        "augment": {"kind": "elastic", "alpha": 16.0},
        "log_every": 5,
    },
    # Fashion-MNIST: 90.6% on its test set in under a minute (see the README's Results).
    "fashion": {
        **DEFAULT_PRESET,
        "dataset": "fashion-mnist",
        "hidden": [512, 256],
        "epochs": 40,
        "lr": 0.001,
        "dropout": [0.2],
        "log_every": 5,
    },
    "seeds": dict(
        hidden=[10],
        activation="relu",
        init="uniform",
        epochs=500,
        batch_size="full",
        lr=0.1,
        dtype="float64",
        dev_size=1000,
        log_every=10,
        **COMMON_DEFAULTS,
    ),
}


def estimator_params(name: str, valid: list[str]) -> dict[str, object]:
    """Preset `name` under MLPClassifier's parameter names: those of its options that are
    among `valid` (the estimator's parameters); what only the command has (the dataset, the
    dev rows, logging) is left out. Lists become tuples, as scikit-learn writes them; dicts
    are copies, so that changing a model's changes no preset."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")
    params = {}
    for key, value in PRESETS[name].items():
        key = ESTIMATOR_NAMES.get(key, key)
        if key in valid:
            params[key] = tuple(value) if isinstance(value, list) else copy.deepcopy(value)
    return params


def augment_spec(words: list[str] | str | dict | None) -> str | dict | None:
    """--augment's words (KIND [NAME=VALUE ...]) as MLPClassifier's augment: the kind alone,
    or a dict of the kind and its strengths; a preset's value as it is."""
    if not isinstance(words, list):
        return words
    kind, *pairs = words
    if not pairs:
        return kind
    spec: dict[str, object] = {"kind": kind}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise ValueError(f"--augment takes a kind then NAME=VALUE strengths; got {pair!r}")
        try:
            spec[name] = float(value)
        except ValueError:
            raise ValueError(f"--augment {name} must be a number; got {value!r}") from None
    return spec


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


def number(text: str) -> float:
    """A finite number; its range is checked with the others' (Optimizer.validate)."""
    value = float(text)
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
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
        description="Train the network (hidden layers, softmax output) by mini-batch gradient "
        "descent; options take MLPClassifier's names, with short ones for the common few.",
    )
    add_version(p)
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="starting values for every option below (default: %(default)s); "
        "'seeds' reproduces the from-scratch tutorials",
    )
    p.add_argument("--backend", choices=BACKENDS, help="default: numba")
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), help="default: mnist")
    p.add_argument(
        "--data",
        metavar="PATH",
        help="a folder of IDX files, or a Kaggle digit-recognizer train.csv",
    )
    p.add_argument("--no-download", action="store_true", help="never download the dataset")
    p.add_argument(*spellings("hidden"), dest="hidden", type=positive_int, nargs="+",
                   metavar="UNITS", help="units of each hidden layer, e.g. 256 128")  # fmt: skip
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
    p.add_argument("--solver", choices=SOLVERS, help="the update rule (default: sgd)")
    p.add_argument("--momentum", type=number, help="sgd's momentum (default: 0)")
    p.add_argument("--nesterovs-momentum", action=argparse.BooleanOptionalAction,
                   help="Nesterov's momentum for sgd when momentum > 0 (default: yes)")  # fmt: skip
    for name, default in (("beta-1", 0.9), ("beta-2", 0.999), ("epsilon", 1e-8)):
        p.add_argument(f"--{name}", type=number, help=f"adam's (default: {default})")
    p.add_argument("--rho", type=number, help="rmsprop's decay (default: 0.99)")
    p.add_argument("--alpha", type=number, help="L2 penalty on the weights (default: 0)")
    p.add_argument("--dropout", type=number, nargs="+", metavar="RATE",
                   help="probability of dropping a hidden unit in training: one rate for "
                   "every hidden layer or one per layer (default: 0)")  # fmt: skip
    p.add_argument(
        "--input-dropout",
        type=number,
        metavar="RATE",
        help="probability of dropping an input feature in training (default: 0)",
    )
    p.add_argument("--max-norm", type=number,
                   help="longest a hidden unit's incoming weight vector may get "
                   "(default: no limit)")  # fmt: skip
    p.add_argument("--augment", nargs="+", metavar="KIND [NAME=VALUE]",
                   help=f"transform every training image afresh each epoch: one of "
                   f"{', '.join(KINDS)}, then any strengths, e.g. --augment elastic alpha=8 "
                   "sigma=3 (see fastnn.augment for each kind's; default: none)")  # fmt: skip
    p.add_argument("--learning-rate", choices=LEARNING_RATES,
                   help="the schedule (default: constant)")  # fmt: skip
    p.add_argument("--power-t", type=number, help="invscaling's exponent (default: 0.5)")
    p.add_argument("--dtype", type=dtype_arg, help="float32 or float64 (or f4, f8, double)")
    p.add_argument(*spellings("seed"), dest="seed", type=int, help="default: 0")
    p.add_argument("--dev-size", type=int, help="training rows held out as the dev set")
    p.add_argument(*spellings("threads"), dest="threads", type=positive_int,
                   help="threads for the numba backend")  # fmt: skip
    p.add_argument("--log-every", type=positive_int, help="print every Nth epoch")
    p.add_argument(
        "--resume",
        metavar="FILE",
        help="go on training the run saved in FILE (by --save) where it stopped: with its "
        "options, weights, optimizer state and sample order; --epochs says how many more "
        "(default: those it had left)",
    )
    p.add_argument("--metrics", metavar="FILE", help="write config and per-epoch results as JSON")
    p.add_argument(
        "--plots",
        metavar="DIR",
        help="write loss, accuracy and sample-digit PNGs (and augment.png with --augment)",
    )
    p.add_argument(
        "--report",
        metavar="DIR",
        help="write report.html (one self-contained page) and its figures as PNGs at the end: "
        "confusion matrix, per-class scores, confident mistakes, first-layer weights, curves",
    )
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
    """Fill every option the user did not give from the preset, and check the update rule's
    options together (ValueError naming the first out of range)."""
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    Optimizer.of(args).validate()
    check_rates(args.dropout, len(args.hidden))
    if not 0 <= args.input_dropout < 1:
        raise ValueError(f"--input-dropout must be from 0 to less than 1; got {args.input_dropout}")
    args.augment = augment_spec(args.augment)
    check_augment(args.augment, IMAGE_PIXELS, None, 0)
    if args.power_t < 0:
        raise ValueError(f"--power-t must be a number >= 0; got {args.power_t}")
    return args
