"""Every hyperparameter, once: its name, what values it takes, its default and what it does.

This is the one list. MLPClassifier's parameters, the training command's options (and their
--help), the checks of a saved model's configuration, --resume's and the sweep's parameters
all come from SCHEMA; tests/test_hyperparameters.py holds each of them to it. Names are
scikit-learn's where it has the parameter; the command also takes a short name for a few
(--hidden for --hidden-layer-sizes).

The defaults are one configuration, the best we know for MNIST-like data (the command's
`default` preset is exactly these): Adam on a cosine schedule, one hidden layer of 256 ReLUs,
10 epochs of batches of 128, float32. A learning rate that is not given follows the solver
(`learning_rate_for`), where scikit-learn's is 0.001 whatever the solver.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from fastnn.core.augment import KINDS as AUGMENT_KINDS
from fastnn.core.augment import MNIST_SHAPE, check_augment
from fastnn.core.dropout import check_rates
from fastnn.core.model import ACTIVATIONS, INIT_SCHEMES, check_dtype

BACKENDS = ("numba", "numpy")  # the registry's names (fastnn.backends)
SOLVERS = ("sgd", "adam", "rmsprop")
LEARNING_RATES = ("constant", "invscaling", "adaptive", "cosine")
# A learning rate not given: Adam and RMSprop take 0.003; SGD 0.5 * (1 - momentum), the step
# of plain SGD at 0.5 whatever the momentum (a velocity sums about 1 / (1 - momentum)
# gradients). Chosen on MNIST's dev rows with the default network and schedule: each is within
# 0.4 points of the best rate tried for it, and none diverged, on raw pixels and standardised
# features alike (one rule for every momentum, rather than the best rate for each).
ADAPTIVE_RATE = 0.003
SGD_STEP = 0.5
# Regression (MLPRegressor, squared error) takes the same rate for Adam and RMSprop, but SGD a far
# smaller step: the squared error's gradient grows with the width of the last hidden layer, and
# on standardised data (sklearn's make_regression and make_friedman1, 200 to 5,000 rows) plain
# SGD with the default schedule diverged at 0.03 with 256 hidden units and at 0.005 with
# (800, 800), not at 0.003 (R^2 0.55 to 0.78 there, against Adam's 0.60 to 0.98).
REGRESSION_SGD_STEP = 0.003


def learning_rate_for(solver: str, momentum: float, output: str = "softmax") -> float:
    """The learning rate of `solver` when none is given (see ADAPTIVE_RATE), for the output kind
    (fastnn.core.model.OUTPUTS: "identity" is regression)."""
    if solver != "sgd":
        return ADAPTIVE_RATE
    return (REGRESSION_SGD_STEP if output == "identity" else SGD_STEP) * (1 - momentum)


class HyperparameterError(ValueError):
    """A value a hyperparameter cannot take; `name` is the parameter's."""

    def __init__(self, name: str, wanted: str, value: Any) -> None:
        super().__init__(f"{name} must be {wanted}; got {value!r}")
        self.name, self.wanted, self.value = name, wanted, value


def is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite real number, not a bool (True is an int to Python, not a rate)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _number(low: float, high: float = math.inf, ends: str = "[)") -> tuple[Callable, str]:
    """A check of a number from low to high, `ends` saying which are allowed: "[)" etc."""

    def ok(value: Any) -> bool:
        if not is_number(value):
            return False
        above = value >= low if ends[0] == "[" else value > low
        below = value <= high if ends[1] == "]" else value < high
        return above and below

    if high == math.inf:
        wanted = f"a number >= {low:g}" if ends[0] == "[" else f"a number > {low:g}"
        wanted = "a positive number" if wanted == "a number > 0" else wanted
    else:
        wanted = (
            f"a number from {low:g}{'' if ends[0] == '[' else ' (exclusive)'} to "
            f"{'' if ends[1] == ']' else 'less than '}{high:g}"
        )
    return ok, wanted


def _whole(least: int) -> tuple[Callable, str]:
    wanted = "a positive whole number" if least == 1 else f"a whole number >= {least}"
    return (lambda v: is_int(v) and v >= least), wanted


def _sizes(value: Any) -> bool:
    sizes = (value,) if is_int(value) else value
    return (
        isinstance(sizes, tuple | list | np.ndarray)
        and len(sizes) > 0
        and np.ndim(sizes) == 1
        and all(is_int(size) and size >= 1 for size in sizes)
    )


def _batch(value: Any) -> bool:
    return value in ("auto", "full") if isinstance(value, str) else is_int(value) and value >= 1


def _rates(value: Any) -> bool:
    """One rate or a sequence of them; their ranges are check_rates' to say (see `check`)."""
    return np.ndim(value) == 0 or isinstance(value, tuple | list | np.ndarray)


def _dtype(value: Any) -> bool:
    try:
        check_dtype(value)
    except ValueError:
        return False
    return True


def _random_state(value: Any) -> bool:
    generator = isinstance(value, np.random.RandomState | np.random.Generator)
    return value is None or generator or is_int(value) and value >= 0


@dataclass(frozen=True)
class Hyperparameter:
    name: str  # MLPClassifier's parameter; the command's --option with "-" for "_"
    # The form of its values, by which the command (options.READERS) and the sweep
    # (space.SWEEP_KINDS) read them.
    kind: str
    default: Any
    ok: Callable[[Any], bool]  # whether a value is one it takes
    wanted: str  # what it takes, in words: "... must be <wanted>; got <value>"
    help: str  # what it does, for --help and the options reference
    short: str | None = None  # the command's own name for it, also an option
    command: bool = True  # an option of python -m fastnn.train
    # Whether it changes what is trained: --resume keeps the saved run's, and sweeps vary it.
    shapes_run: bool = True
    choices: tuple[str, ...] = ()  # of a "choice"

    @property
    def dest(self) -> str:
        """Its name among the command's options (and in its presets and metrics)."""
        return self.short or self.name

    @property
    def flags(self) -> list[str]:
        names = [self.short] if self.short else []
        return ["--" + name.replace("_", "-") for name in [*names, self.name]]

    def check(self, value: Any) -> Any:
        if not self.ok(value):
            raise HyperparameterError(self.name, self.wanted, value)
        return value


def _choice(name: str, default: str, choices: tuple[str, ...], help: str, **kw) -> Hyperparameter:
    return Hyperparameter(name, "choice", default, choices.__contains__,
                          f"one of {', '.join(choices)}", help, choices=choices,
                          **kw)  # fmt: skip


def _numeric(name: str, default: Any, check: tuple[Callable, str], help: str, **kw):
    return Hyperparameter(name, "number", default, *check, help, **kw)


def _bool(name: str, default: bool, help: str, **kw) -> Hyperparameter:
    return Hyperparameter(name, "bool", default, lambda v: isinstance(v, bool | np.bool_),
                          "True or False", help, **kw)  # fmt: skip


_unit = _number(0, 1, "[)")
SCHEMA: tuple[Hyperparameter, ...] = (
    Hyperparameter("hidden_layer_sizes", "sizes", (256,), _sizes,
                   "a positive whole number or a tuple of them like (256, 128)",
                   "units of each hidden layer, e.g. 256 128", short="hidden"),
    _choice("activation", "relu", ACTIVATIONS, "the hidden layers' activation"),
    _choice("init", "he", INIT_SCHEMES, "how the first weights are drawn"),
    _choice("backend", "numba", BACKENDS, "the engine: fused Numba kernels or the NumPy "
            "reference (same results within the stated tolerance)", shapes_run=False),
    _choice("solver", "adam", SOLVERS, "the update rule"),
    Hyperparameter("learning_rate_init", "rate", None,
                   lambda v: v is None or is_number(v) and v > 0, "None or a positive number",
                   "the learning rate",
                   short="lr"),
    _choice("learning_rate", "cosine", LEARNING_RATES, "the schedule of the learning rate"),
    _numeric("power_t", 0.5, _number(0), "invscaling's exponent"),
    _numeric("momentum", 0.0, _number(0, 1, "[]"), "sgd's momentum"),
    _bool("nesterovs_momentum", True, "Nesterov's momentum for sgd when momentum > 0"),
    _numeric("beta_1", 0.9, _unit, "adam's decay of the mean gradient"),
    _numeric("beta_2", 0.999, _unit, "adam's decay of the mean squared gradient"),
    _numeric("epsilon", 1e-8, _number(0, ends="()"), "adam's and rmsprop's guard"),
    _numeric("rho", 0.99, _unit, "rmsprop's decay of the mean squared gradient"),
    _numeric("alpha", 0.0, _number(0), "L2 penalty on the weights"),
    Hyperparameter("batch_size", "batch", 128, _batch,
                   "a positive whole number, 'auto' or 'full'",
                   "rows per step; 'auto' is min(200, rows), 'full' every row"),
    Hyperparameter("max_iter", "count", 10, *_whole(1),
                   "epochs: passes over the data (with a full batch, steps)", short="epochs"),
    Hyperparameter("dropout", "rates", 0.0, _rates,
                   "a rate from 0 to less than 1, or one per hidden layer",
                   "probability of dropping a hidden unit in training: one rate for every "
                   "hidden layer or one per layer"),
    _numeric("input_dropout", 0.0, _unit, "probability of dropping an input in training"),
    Hyperparameter("max_norm", "number", None,
                   lambda v: v is None or is_number(v) and v > 0, "None or a positive number",
                   "longest a hidden unit's incoming weight vector may get (none: no limit)"),
    Hyperparameter("augment", "augment", None,
                   lambda v: v is None or isinstance(v, str | Mapping),
                   f"None, one of {', '.join(AUGMENT_KINDS)}, or a dict with 'kind' and "
                   "strengths, e.g. {'kind': 'elastic', 'alpha': 8}",
                   "transform every training image afresh each epoch (fastnn.core.augment)"),
    Hyperparameter("dtype", "dtype", "float32", _dtype, "float32 or float64",
                   "the weights' and the arithmetic's precision"),
    Hyperparameter("random_state", "seed", None, _random_state,
                   "None, a whole number >= 0, or a np.random.RandomState or Generator",
                   "seeds the weights, the epochs' order, dropout and augmentation",
                   short="seed"),
    Hyperparameter("n_threads", "threads", None, lambda v: v is None or is_int(v) and v >= 1,
                   "None or a positive whole number",
                   "threads of the numba backend (none: Numba's default); the results do "
                   "not change", short="threads", shapes_run=False),
    _bool("shuffle", True, "a new order of the samples each epoch", command=False),
    _bool("early_stopping", False, "stop when the held-out score stops improving",
          command=False),
    _numeric("validation_fraction", 0.1, _number(0, 1, "()"),
             "share of fit's rows held out for early stopping", command=False),
    _numeric("n_iter_no_change", 10, _whole(1), "epochs without a gain of tol before the "
             "adaptive schedule divides the rate, or early stopping stops", command=False),
    _numeric("tol", 1e-4, _number(0), "the least gain that counts", command=False),
    _bool("verbose", False, "print each epoch's loss", command=False),
    _bool("warm_start", False, "fit goes on from the fitted weights", command=False),
    Hyperparameter("image_shape", "shape", None,
                   lambda v: v is None or isinstance(v, tuple | list) and len(v) == 2
                   and all(is_int(s) and s >= 1 for s in v),
                   "None or (height, width)", "the shape of each row's image for augment "
                   "(None: 28 x 28)", command=False),
)  # fmt: skip
BY_NAME: dict[str, Hyperparameter] = {p.name: p for p in SCHEMA}
DEFAULTS: dict[str, Any] = {p.name: p.default for p in SCHEMA}
# The command's short names: {"hidden": "hidden_layer_sizes", ...}.
SHORT_NAMES: dict[str, str] = {p.short: p.name for p in SCHEMA if p.short}


def check(values: Mapping[str, Any]) -> None:
    """Raise HyperparameterError for the first value of `values` (by parameter name) that its
    parameter does not take, then for combinations that do not go together."""
    for name, value in values.items():
        BY_NAME[name].check(value)
    if "dropout" in values:
        sizes = values.get("hidden_layer_sizes", values["dropout"])
        check_rates(values["dropout"], 1 if np.ndim(sizes) == 0 else len(sizes))
    if values.get("augment") is not None:
        shape = values.get("image_shape") or MNIST_SHAPE
        check_augment(values["augment"], shape[0] * shape[1], shape, 0)


def resolved_learning_rate(values: Mapping[str, Any], output: str = "softmax") -> float:
    """learning_rate_init of `values`, or the solver's for the output kind when it is None."""
    rate = values["learning_rate_init"]
    if rate is None:
        return learning_rate_for(values["solver"], values["momentum"], output)
    return rate


# The command's presets: a value for every option of python -m fastnn.train, by its name
# there. `default` is the defaults above with what only the command has; `seeds` is the
# tutorials' run exactly.
COMMAND_DEFAULTS: dict[str, Any] = {
    **{p.dest: p.default for p in SCHEMA if p.command},
    "dataset": "mnist",
    "seed": 0,
    "dev_size": 5000,
    "log_every": 1,
}
DEFAULT_PRESET = {**COMMAND_DEFAULTS}
# MNIST without augmentation: 98.7% (1.3% error) in under two minutes.
BEST_PRESET = {
    **DEFAULT_PRESET,
    "hidden": (800, 800),
    "epochs": 36,
    "lr": 0.001,
    "dropout": 0.3,
    "log_every": 4,
}
PRESETS: dict[str, dict[str, Any]] = {
    "default": DEFAULT_PRESET,
    "best": BEST_PRESET,
    # MNIST with elastic distortions: 99.3% (0.7% error) in about 3 minutes.
    "best-augmented": {
        **BEST_PRESET,
        "epochs": 60,
        "augment": {"kind": "elastic", "alpha": 16.0},
        "log_every": 5,
    },
    # Fashion-MNIST: 90.5% on its test set in under a minute.
    "fashion": {
        **DEFAULT_PRESET,
        "dataset": "fashion-mnist",
        "hidden": (512, 256),
        "epochs": 40,
        "lr": 0.001,
        "dropout": 0.2,
        "log_every": 5,
    },
    "seeds": {
        **COMMAND_DEFAULTS,
        "hidden": (10,),
        "init": "uniform",
        "solver": "sgd",
        "learning_rate": "constant",
        "epochs": 500,
        "batch_size": "full",
        "lr": 0.1,
        "dtype": "float64",
        "dev_size": 1000,
        "log_every": 10,
    },
}


def preset_params(name: str) -> dict[str, Any]:
    """Preset `name` as MLPClassifier's parameters: what only the command has (the data, the
    dev rows, logging) is left out."""
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}; got {name!r}")
    preset = PRESETS[name]
    return {p.name: preset[p.dest] for p in SCHEMA if p.command}
