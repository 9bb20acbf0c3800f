"""The search space of a sweep: which estimator parameters take which values (a grid, or ranges
to draw from), read from the command line (`name=v1,v2`) or a JSON/TOML file; the
configurations it gives; and the rungs of successive halving."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.core.augment import KINDS as AUGMENT_KINDS
from fastnn.core.hyperparameters import SCHEMA, SHORT_NAMES, Hyperparameter
from fastnn.core.model import DTYPES

# How a sweep reads each kind of value (fastnn.core.hyperparameters.Hyperparameter.kind).
SWEEP_KINDS = {
    "sizes": "sizes", "number": "float", "rate": "optional_float", "count": "int",
    "batch": "batch", "rates": "rates", "augment": "augment", "bool": "bool",
}  # fmt: skip


def _kind(p: Hyperparameter) -> str | tuple[str, ...]:
    if p.kind == "choice":
        return p.choices
    if p.kind == "dtype":
        return DTYPES
    return "optional_float" if p.kind == "number" and p.default is None else SWEEP_KINDS[p.kind]


# Every parameter a sweep can vary, by MLPClassifier's name: those that shape a run and that
# python -m fastnn.train also has, so that every trial is a command line (and the best one is
# printed as one). The seed has --seeds; the backend and the threads say how a trial runs, not
# what it is.
KINDS: dict[str, str | tuple[str, ...]] = {
    p.name: _kind(p) for p in SCHEMA if p.command and p.shapes_run and p.kind != "seed"
}
DISTRIBUTIONS = ("uniform", "loguniform", "randint")
SIGNIFICANT_DIGITS = 3  # of a float drawn at random: readable tables and command lines


class SpaceError(ValueError):
    """A search space that cannot be used, with what to write instead."""


def canonical_name(name: str) -> str:
    key = name.strip().replace("-", "_")
    key = SHORT_NAMES.get(key, key)  # the command's short names are taken too
    if key in ("random_state", "seed"):
        raise SpaceError("the seed is not a grid parameter: give the seeds with --seeds 0 1 2")
    if key not in KINDS:
        raise SpaceError(f"cannot sweep {name!r}: choose among {', '.join(KINDS)}")
    return key


def parse_value(name: str, text: str) -> Any:
    """One value of parameter `name` (canonical) written as on the command line: 256x128 for two
    hidden layers, none, true/false, elastic:alpha=16 for an augmentation with a strength."""
    kind = KINDS[name]
    text = text.strip()
    try:
        if kind in ("sizes", "rates"):
            return coerce_value(name, text.split("x"))
        if kind == "optional_float" and text.lower() == "none":
            return None
        if kind == "bool":
            if text.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(text)
            return text.lower() in ("true", "yes", "1")
        if kind == "augment":
            if text.lower() == "none":
                return None
            label, *pairs = text.split(":")
            if not pairs:
                return coerce_value(name, label)
            strengths = dict(pair.split("=", 1) for pair in pairs)
            return coerce_value(name, {"kind": label, **strengths})
        return coerce_value(name, text)
    except (ValueError, TypeError):
        raise SpaceError(f"{name}={text!r}: {describe_kind(name)}") from None


def coerce_value(name: str, value: Any) -> Any:
    """A value of parameter `name` (from a file, or split from text) in its canonical form:
    tuples for layer sizes and dropout rates, floats, a sorted dict for an augmentation."""
    kind = KINDS[name]
    if isinstance(kind, tuple):
        if value not in kind:
            raise ValueError(value)
        return value
    if kind == "sizes":
        sizes = tuple(_whole(v) for v in (value if isinstance(value, list | tuple) else [value]))
        if not sizes or min(sizes) < 1:
            raise ValueError(value)
        return sizes
    if kind == "rates":
        rates = tuple(float(v) for v in (value if isinstance(value, list | tuple) else [value]))
        if not rates or not all(0 <= r < 1 for r in rates):
            raise ValueError(value)
        return rates
    if kind == "int":
        number = _whole(value)
        if number < 1:
            raise ValueError(value)
        return number
    if kind == "batch":
        return "full" if value == "full" else coerce_value("max_iter", value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(value)
        return value
    if kind == "optional_float" and value is None:
        return None
    if kind == "augment":
        if value is None or value in AUGMENT_KINDS:
            return value
        if not isinstance(value, Mapping) or value.get("kind") not in AUGMENT_KINDS:
            raise ValueError(value)
        strengths = {k: float(v) for k, v in value.items() if k != "kind"}
        return {"kind": value["kind"], **dict(sorted(strengths.items()))}
    if isinstance(value, bool):  # json's true is an int to Python: not a number here
        raise ValueError(value)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


def _whole(value: Any) -> int:
    if isinstance(value, bool) or float(value) != int(float(value)):
        raise ValueError(value)
    return int(float(value))


def describe_kind(name: str) -> str:
    kind = KINDS[name]
    if isinstance(kind, tuple):
        return f"must be one of {', '.join(kind)}"
    return {
        "sizes": "must be layer sizes such as 128 or 256x128",
        "rates": "must be dropout rates from 0 to below 1, such as 0.2 or 0.2x0.1",
        "int": "must be a positive whole number",
        "batch": "must be a positive whole number or full",
        "bool": "must be true or false",
        "optional_float": "must be a number or none",
        "augment": f"must be none, one of {', '.join(AUGMENT_KINDS)}, or e.g. elastic:alpha=16",
        "float": "must be a finite number",
    }[kind]


def format_value(value: Any) -> str:
    """A parameter value as the sweep writes it (and reads it back): 256x128, 0.05, none."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return "x".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:.12g}"
    if isinstance(value, Mapping):
        return ":".join([value["kind"], *(f"{k}={v:g}" for k, v in value.items() if k != "kind")])
    return str(value)


def parse_distribution(name: str, text: str) -> dict[str, Any]:
    """`loguniform:1e-4:1e-1`, `uniform:0:0.5` or `randint:64:512` (both ends included)."""
    kind, *ends = text.split(":")
    try:
        low, high = (float(end) for end in ends)
    except ValueError:
        raise SpaceError(f"{name}={text!r}: write {kind}:LOW:HIGH") from None
    return check_distribution(name, {"distribution": kind, "low": low, "high": high})


def check_distribution(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    kind, low, high = spec.get("distribution"), spec.get("low"), spec.get("high")
    numeric = KINDS[name] in ("float", "optional_float")
    whole = name in ("max_iter", "batch_size", "hidden_layer_sizes")
    if (
        kind not in DISTRIBUTIONS
        or (kind == "randint" and not whole)
        or (kind != "randint" and not numeric)
    ):
        allowed = "randint" if whole else "uniform or loguniform" if numeric else "none"
        raise SpaceError(f"{name}: distribution {kind!r} does not fit; allowed: {allowed}")
    if not (isinstance(low, int | float) and isinstance(high, int | float) and low <= high):
        raise SpaceError(f"{name}: a distribution needs numbers low <= high; got {low}, {high}")
    if kind == "loguniform" and low <= 0:
        raise SpaceError(f"{name}: loguniform needs low > 0; got {low}")
    return {"distribution": kind, "low": low, "high": high}


def is_distribution(values: Any) -> bool:
    return isinstance(values, Mapping)


def parse_assignment(text: str) -> tuple[str, list[Any] | dict[str, Any]]:
    """`name=v1,v2,...` (a list of values) or `name=loguniform:LOW:HIGH` (a range to draw
    from with --random), as --grid takes them."""
    name, sep, values = text.partition("=")
    if not sep or not values:
        raise SpaceError(f"--grid takes NAME=VALUE[,VALUE...]; got {text!r}")
    key = canonical_name(name)
    if values.split(":", 1)[0] in DISTRIBUTIONS:
        return key, parse_distribution(key, values)
    return key, _unique([parse_value(key, v) for v in values.split(",")])


def _unique(values: list[Any]) -> list[Any]:
    seen, kept = set(), []
    for value in values:
        token = json.dumps(value, sort_keys=True)
        if token not in seen:
            seen.add(token)
            kept.append(value)
    return kept


def check_space(space: Mapping[str, Any]) -> dict[str, list[Any] | dict[str, Any]]:
    """A space from the library or a file ({name: [values] or {"distribution", "low",
    "high"}}) in canonical form; raises SpaceError naming what is wrong."""
    checked: dict[str, list[Any] | dict[str, Any]] = {}
    for name, values in space.items():
        key = canonical_name(name)
        if key in checked:
            raise SpaceError(f"{name} is given twice")
        if is_distribution(values):
            checked[key] = check_distribution(key, values)
            continue
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            values = [values]  # one value: fixed for every trial
        try:
            checked[key] = _unique([coerce_value(key, v) for v in values])
        except (ValueError, TypeError):
            raise SpaceError(f"{name}: {values!r} {describe_kind(key)}") from None
    return checked


def read_space_file(path: str | Path) -> dict[str, Any]:
    """A JSON (or, where Python has tomllib, TOML) file: {"grid": {name: values}} and any of
    the sweep's other settings by their library names (seeds, epochs, random, ...)."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SpaceError(f"--space {path}: cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SpaceError(f"{path}: not text (not UTF-8)") from None
    if path.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:  # Python 3.10
            raise SpaceError(f"{path}: TOML needs Python 3.11 or newer; write it as JSON") from None
        try:
            content = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise SpaceError(f"{path}: {exc}") from None
    else:
        try:
            content = json.loads(text)
        except RecursionError:
            raise SpaceError(f"{path}: not valid JSON: nested too deeply") from None
        except ValueError as exc:  # not JSON, or a number of thousands of digits
            raise SpaceError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(content, dict) or not isinstance(content.get("grid", {}), dict):
        raise SpaceError(f'{path}: expected {{"grid": {{"name": [values], ...}}, ...}}')
    return content


def configurations(
    space: Mapping[str, Any], random: int | None = None, random_seed: int = 0
) -> list[dict[str, Any]]:
    """The configurations to try: every combination of the grid in order, or with `random`,
    that many drawn (with `random_seed`, so the same draws every time: a resumed sweep finds
    its trials), without repeats when every parameter is a list."""
    names = list(space)
    if random is None:
        if any(is_distribution(space[n]) for n in names):
            raise SpaceError("a range (uniform, loguniform, randint) needs --random N")
        return [dict(zip(names, combo, strict=True)) for combo in _product(space, names)]
    rng = np.random.default_rng(random_seed)
    if not any(is_distribution(space[n]) for n in names):
        total = math.prod(len(space[n]) for n in names)
        picks = rng.choice(total, size=min(random, total), replace=False)
        combos = list(_product(space, names))
        return [dict(zip(names, combos[i], strict=True)) for i in picks]
    drawn = [{n: _draw(n, space[n], rng) for n in names} for _ in range(random)]
    return _dedupe(drawn)


def _dedupe(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept: dict[str, dict[str, Any]] = {}
    for config in configs:
        kept.setdefault(json.dumps(config, sort_keys=True), config)
    return list(kept.values())


def _product(space: Mapping[str, Any], names: list[str]):
    return itertools.product(*(space[n] for n in names))


def _draw(name: str, values: Any, rng: np.random.Generator) -> Any:
    if not is_distribution(values):
        return values[int(rng.integers(len(values)))]
    low, high = values["low"], values["high"]
    if values["distribution"] == "randint":
        number = int(rng.integers(int(low), int(high) + 1))
        return (number,) if name == "hidden_layer_sizes" else number
    if values["distribution"] == "loguniform":
        number = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        number = rng.uniform(low, high)
    return float(f"{number:.{SIGNIFICANT_DIGITS}g}")


def halving_rungs(
    n_configs: int, max_epochs: int, min_epochs: int = 1, factor: int = 3
) -> list[tuple[int, int]]:
    """Successive halving's rungs as (epochs, configurations run): every configuration for the
    fewest epochs, then the best 1/factor of them for `factor` times as many, and so on, the
    last rung at `max_epochs`. As many rungs as both the epochs (min_epochs * factor**k up to
    max_epochs) and the configurations (down to one) allow; as scikit-learn's
    HalvingGridSearchCV does with min_resources="exhaust"."""
    if n_configs < 1 or min_epochs < 1 or max_epochs < min_epochs or factor < 2:
        raise SpaceError(
            f"halving needs configurations, 1 <= min epochs <= epochs and a factor >= 2; got "
            f"{n_configs} configurations, epochs {min_epochs} to {max_epochs}, factor {factor}"
        )
    by_epochs = 1 + int(math.floor(math.log(max_epochs / min_epochs) / math.log(factor) + 1e-9))
    by_configs = 1 + int(math.ceil(math.log(n_configs) / math.log(factor) - 1e-9))
    count = max(1, min(by_epochs, by_configs))
    rungs = []
    for k in range(count):
        epochs = max(min_epochs, round(max_epochs / factor ** (count - 1 - k)))
        rungs.append((epochs, -(-n_configs // factor**k)))
    return rungs
