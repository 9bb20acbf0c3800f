"""The training command's options: its own (data, outputs) and one for each hyperparameter of
the schema (fastnn.core.hyperparameters), filled in from a preset and checked by `resolve`."""

from __future__ import annotations

import argparse
import copy
from typing import Any

import numpy as np

from fastnn.core.hyperparameters import (
    ADAPTIVE_RATE,
    BY_NAME,
    DEFAULT_PRESET,
    PRESETS,
    SCHEMA,
    SGD_STEP,
    Hyperparameter,
    HyperparameterError,
    check,
    resolved_learning_rate,
)
from fastnn.core.model import check_dtype
from fastnn.data import DATASET_NAMES
from fastnn.tools import add_version

DEFAULT_SUBMISSION = "submission.csv"
IMAGE_PIXELS = 28 * 28  # every dataset the command reads: MNIST, Fashion-MNIST, Kaggle's CSV
# The command's own options that decide what a run trains (beside the hyperparameters that do,
# fastnn.core.hyperparameters.Hyperparameter.shapes_run): --resume keeps the saved run's.
RUN_OPTIONS = ("preset", "dataset", "data", "dev_size")


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
    """A finite number; its range is checked with the others' in `resolve`."""
    value = float(text)
    if not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text}")
    return value


def batch_size_arg(text: str) -> int | str:
    return text if text in ("auto", "full") else positive_int(text)


def dtype_arg(text: str) -> str:
    try:
        return check_dtype(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be float32 or float64, not {text}") from None


def shown_default(p: Hyperparameter) -> str:
    """The default preset's value of `p` as --help shows it."""
    if p.name == "learning_rate_init":
        return (f"the solver's: {ADAPTIVE_RATE:g} for adam and rmsprop, "
                f"{SGD_STEP:g} * (1 - momentum) for sgd")  # fmt: skip
    value = DEFAULT_PRESET[p.dest]
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    if value is None or isinstance(value, bool):
        return {None: "none", True: "yes", False: "no"}[value]
    return f"{value:g}" if isinstance(value, float) else str(value)


HYPERPARAMETER_DESTS = {p.dest for p in SCHEMA}  # the hyperparameters among the options
# How the command reads each kind of value (fastnn.core.hyperparameters.Hyperparameter.kind); the
# ranges are checked with the others' by fastnn.core.hyperparameters.check, in `resolve`.
READERS: dict[str, dict[str, Any]] = {
    "sizes": dict(type=positive_int, nargs="+", metavar="UNITS"),
    "number": dict(type=number),
    "rate": dict(type=positive_float),
    "count": dict(type=positive_int),
    "batch": dict(type=batch_size_arg),
    "rates": dict(type=number, nargs="+", metavar="RATE"),
    "augment": dict(nargs="+", metavar="KIND [NAME=VALUE]"),
    "dtype": dict(type=dtype_arg),
    "seed": dict(type=int),
    "threads": dict(type=positive_int),
    "bool": dict(action=argparse.BooleanOptionalAction),
}


def add_hyperparameters(p: argparse.ArgumentParser) -> None:
    """An option for each hyperparameter the command has, from the schema, under its name and
    its short name; every default is the preset's, so each is None until `resolve`."""
    group = p.add_argument_group("hyperparameters (MLPClassifier's parameters, same names)")
    for param in SCHEMA:
        if not param.command:
            continue
        how = dict(choices=param.choices) if param.kind == "choice" else READERS[param.kind]
        group.add_argument(*param.flags, dest=param.dest, **how,
                           help=f"{param.help} (default: {shown_default(param)})")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.train",
        description="Train the network (hidden layers, softmax output) by mini-batch gradient "
        "descent; options take MLPClassifier's names, with short ones for the common few. "
        "Defaults are the 'default' preset's; another --preset changes them.",
    )
    add_version(p)
    p.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="starting values for every option below (default: %(default)s); "
        "'seeds' reproduces the from-scratch tutorials",
    )
    p.add_argument("--dataset", choices=DATASET_NAMES, help="default: mnist")
    p.add_argument(
        "--data",
        metavar="PATH",
        help="a folder of IDX files, or a Kaggle digit-recognizer train.csv",
    )
    p.add_argument("--no-download", action="store_true", help="never download the dataset")
    p.add_argument("--dev-size", type=int, help="training rows held out as the dev set "
                   f"(default: {DEFAULT_PRESET['dev_size']})")  # fmt: skip
    p.add_argument("--log-every", type=positive_int, help="print every Nth epoch (default: 1)")
    add_hyperparameters(p)
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
    """Fill every option the user did not give from the preset and check the hyperparameters
    (ValueError naming the option of the first unusable one); a learning rate not given
    becomes the solver's."""
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, copy.deepcopy(value))
    args.augment = augment_spec(args.augment)
    values = {p.name: getattr(args, p.dest) for p in SCHEMA if p.command}
    try:
        check(values)
    except HyperparameterError as exc:
        option = BY_NAME[exc.name].flags[0]
        raise ValueError(f"{option} must be {exc.wanted}; got {exc.value!r}") from None
    args.lr = resolved_learning_rate(values)
    # The command's own forms: lists, as its options give them and its files record them.
    args.hidden = [args.hidden] if np.ndim(args.hidden) == 0 else list(args.hidden)
    args.dropout = [args.dropout] if np.ndim(args.dropout) == 0 else list(args.dropout)
    return args


def settings(preset: str, params: dict[str, Any], **options: Any) -> argparse.Namespace:
    """The command's resolved options for `preset` with MLPClassifier's `params` and the
    command's own `options` (by their names there) over it: a run of the command without a
    command line, as sweep trials build theirs."""
    args = build_parser().parse_args([])
    args.preset = preset
    for name, value in params.items():
        setattr(args, BY_NAME[name].dest, value)
    for name, value in options.items():
        setattr(args, name, value)
    return resolve(args)


def preset_options(name: str) -> list[str]:
    """Preset `name` as the options that differ from the defaults' (the default preset's),
    the command's own first, e.g. ["--hidden", "800", "800", "--epochs", "36", ...]."""
    words = []
    items = sorted(PRESETS[name].items(), key=lambda item: item[0] in HYPERPARAMETER_DESTS)
    for key, value in items:
        if DEFAULT_PRESET.get(key, ...) == value:
            continue
        if isinstance(value, dict):  # augment: the kind, then its strengths
            value = [value["kind"], *(f"{k}={v:g}" for k, v in value.items() if k != "kind")]
        words += [f"--{key.replace('_', '-')}", *map(str, np.atleast_1d(value))]
    return words


def reference() -> str:
    """The options reference (docs/options.md's tables) in Markdown, from the schema."""
    lines = [
        "| command option | MLPClassifier | default | what it does; what it takes |",
        "|---|---|---|---|",
    ]
    for p in SCHEMA:
        flags = " ".join(f"`{flag}`" for flag in p.flags) if p.command else "(library only)"
        default = shown_default(p) if p.command else repr(p.default)
        if p.command and p.kind != "rate" and DEFAULT_PRESET[p.dest] != p.default:
            default += f" (MLPClassifier: {p.default!r})"
        lines.append(f"| {flags} | `{p.name}` | {default} | {p.help}; {p.wanted} |")
    lines += ["", "| preset | its options over the defaults |", "|---|---|"]
    for name in PRESETS:
        words = " ".join(preset_options(name))
        lines.append(f"| `{name}` | {f'`{words}`' if words else 'the defaults'} |")
    return "\n".join(lines) + "\n"
