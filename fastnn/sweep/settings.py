"""A sweep's settings, every one checked before anything starts: what it trains (`Settings`:
the space, seeds, epochs, data; saved as sweep.json), how it runs (`check_run`: the scheduler,
workers, threads, retries) and, once the data is read, its rows (`Settings.check_rows`).

The same checks serve fastnn.sweep(), the command's options, a --space file and the sweep.json
that --resume reads. A refusal is a SettingError, which keeps the names of the settings apart
from its text: the library's message says `train_rows`, the command's `--train-rows`, and one
about a file `train_rows in FILE`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from fastnn.core.checks import is_int
from fastnn.sweep import results, trial
from fastnn.sweep.space import SpaceError, check_space, configurations

SETTINGS_VERSION = 1  # of sweep.json
SHOWN_CHARACTERS = 80  # of a refused value in a message: one line, whatever was given
DEFAULT_SCHEDULER_PORT = 8786  # Dask's, for an address without a port


class SettingError(SpaceError):
    """A setting the sweep refuses. `template` has {0}, {1}, ... where the settings `names`
    go, and {name} for `values` (already text): `spelled` writes the names as the caller's
    user knows them."""

    def __init__(self, template: str, *names: str, **values: str) -> None:
        self.template, self.names, self.values = template, names, values
        super().__init__(self.spelled(str))

    def spelled(self, spell: Callable[[str], str]) -> str:
        return self.template.format(*(spell(name) for name in self.names), **self.values)

    def respelled(self, spell: Callable[[str], str]) -> SettingError:
        """This error, its message naming the settings by `spell`."""
        self.args = (self.spelled(spell),)
        return self


def shown(value: Any) -> str:
    """A refused value as a message shows it: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def whole(name: str, value: Any, low: int, why: str = "") -> int:
    """`value` as an int, if it is a whole number >= `low` (not a bool, not 2.0)."""
    if not is_int(value) or value < low:
        wanted = "a positive whole number" if low == 1 else f"a whole number >= {low}"
        raise SettingError(f"{{0}} must be {wanted}{why}; got {{value}}", name, value=shown(value))
    return int(value)


def choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
        wanted = ", ".join(choices)
        raise SettingError(
            f"{{0}} must be one of {wanted}; got {{value}}", name, value=shown(value)
        )
    return value


def flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise SettingError("{0} must be True or False; got {value}", name, value=shown(value))
    return bool(value)


@dataclass
class Settings:
    """What a sweep trains: the space, the seeds, the epoch budget, the data; saved beside
    the results so that --resume runs the very same trials. Made only if every setting is
    usable, else SettingError."""

    space: dict[str, Any]
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int | None = None  # None: the preset's
    random: int | None = None  # draw this many configurations instead of the whole grid
    random_seed: int = 0
    halving: bool = False
    min_epochs: int = 1
    factor: int = 3
    metric: str = "dev_accuracy"
    preset: str = "default"
    dataset: str = "mnist"
    data: str | None = None
    download: bool = True
    dev_size: int | None = None  # None: the preset's
    train_rows: int | None = None  # train on the first N rows after the dev split
    backend: str = "numba"

    def __post_init__(self) -> None:
        from fastnn.backends import BACKENDS
        from fastnn.core.hyperparameters import PRESETS
        from fastnn.data import DATASET_NAMES

        self.preset = choice("preset", self.preset, PRESETS)
        self.space = _space(self.space)
        self.seeds = _seeds(self.seeds)
        if self.epochs is None:
            self.epochs = PRESETS[self.preset]["epochs"]
        self.epochs = whole("epochs", self.epochs, 1)
        if self.random is not None:
            self.random = whole("random", self.random, 1)
        self.random_seed = whole("random_seed", self.random_seed, 0)
        self.halving = flag("halving", self.halving)
        self.min_epochs = whole("min_epochs", self.min_epochs, 1)
        self.factor = whole("factor", self.factor, 2)
        self.metric = choice("metric", self.metric, results.METRICS)
        self.dataset = choice("dataset", self.dataset, DATASET_NAMES)
        if self.data is not None:
            if not isinstance(self.data, str | os.PathLike) or not os.fspath(self.data):
                raise SettingError(
                    "{0} must be the path of a folder of IDX files or of a "
                    "Kaggle train.csv; got {value}",
                    "data",
                    value=shown(self.data),
                )
            self.data = os.fspath(self.data)
        self.download = flag("download", self.download)
        if self.dev_size is not None:  # the sweep ranks by the dev set: it cannot be empty
            self.dev_size = whole("dev_size", self.dev_size, 1, " (the sweep ranks by the dev set)")
        if self.train_rows is not None:
            self.train_rows = whole("train_rows", self.train_rows, 1)
        self.backend = choice("backend", self.backend, BACKENDS)
        self._check_together()

    def _check_together(self) -> None:
        """What is refused only in combination: settings that would be ignored, and every
        configuration's training command."""
        if self.random is None and self.random_seed != 0:
            raise SettingError("{0} seeds the draws of {1}: give {1} too, or leave {0} out",
                               "random_seed", "random")  # fmt: skip
        if not self.halving and (self.min_epochs, self.factor) != (1, 3):
            raise SettingError("{0} and {1} are successive halving's: give {2} too, or leave "
                               "them out", "min_epochs", "factor", "halving")  # fmt: skip
        if self.halving and "max_iter" in self.space:
            raise SettingError("with {0} the epochs are the rungs': do not sweep max_iter in {1}",
                               "halving", "space")  # fmt: skip
        if self.halving and self.min_epochs > self.epochs:
            raise SettingError(f"{{0}} must be at most {{1}}; got {self.min_epochs} and "
                               f"{self.epochs}", "min_epochs", "epochs")  # fmt: skip
        try:
            configs = configurations(self.space, self.random, self.random_seed)
        except SpaceError as exc:  # a range without random draws
            raise SettingError("{0}: {problem}", "space", problem=str(exc)) from None
        for config in configs:  # each is a command line python -m fastnn.train must take
            try:
                trial.check_spec(self.spec(config, self.seeds[0], 0, self.epochs, 1))
            except ValueError as exc:
                raise SettingError("{0}: {problem}", "space", problem=str(exc)) from None

    def check_rows(self, rows: int, source: str) -> None:
        """SettingError unless the dev set and the training rows fit in the data's `rows`."""
        from fastnn.core.hyperparameters import PRESETS

        dev = self.dev_size if self.dev_size is not None else PRESETS[self.preset]["dev_size"]
        dev_text = f"{dev}" + ("" if self.dev_size is not None else " (the preset's)")
        if dev >= rows:
            raise SettingError("{0} must leave rows to train on: {source} has {rows} training "
                               "rows; got {dev}", "dev_size", source=source, rows=str(rows),
                               dev=dev_text)  # fmt: skip
        if self.train_rows is not None and dev + self.train_rows > rows:
            raise SettingError("{0} and {1} together must be at most the {rows} training rows "
                               "of {source}; got {train} and {dev}: give {0} {most} or fewer",
                               "train_rows", "dev_size", rows=str(rows), source=source,
                               train=str(self.train_rows), dev=dev_text,
                               most=str(rows - dev))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"version": SETTINGS_VERSION, **asdict(self)}

    def names(self) -> list[str]:
        """The parameters that vary (a one-value grid entry is fixed, not shown)."""
        return [n for n, v in self.space.items() if isinstance(v, dict) or len(v) > 1]

    def spec(self, config: dict[str, Any], seed: int, rung: int, epochs: int, threads: int):
        config = dict(config)
        epochs = config.pop("max_iter", epochs)
        spec = dict(
            preset=self.preset,
            backend=self.backend,
            dataset=self.dataset,
            data=self.data,
            download=self.download,
            dev_size=self.dev_size,
            train_rows=self.train_rows,
            params=config,
            seed=seed,
            epochs=epochs,
            threads=threads,
            rung=rung,
        )
        spec["trial"] = trial.trial_id(spec)
        return spec


FIELDS = tuple(f.name for f in fields(Settings))


def _space(space: Any) -> dict[str, Any]:
    if not isinstance(space, Mapping):
        example = '{"hidden_layer_sizes": [64, 128]}'
        raise SettingError(
            "{0} must map parameter names to lists of values, e.g. {example}; got {value}",
            "space",
            example=example,
            value=shown(space),
        )
    try:
        return check_space(space)
    except SpaceError as exc:
        raise SettingError("{0}: {problem}", "space", problem=str(exc)) from None


def _seeds(seeds: Any) -> list[int]:
    if isinstance(seeds, str | bytes | Mapping) or not isinstance(seeds, Iterable):
        raise SettingError(
            "{0} must be a list of whole numbers >= 0, e.g. [0, 1, 2]; got {value}",
            "seeds",
            value=shown(seeds),
        )
    checked = []
    for seed in seeds:
        if not is_int(seed) or seed < 0:
            raise SettingError(
                "{0} must be whole numbers >= 0; got {value}", "seeds", value=shown(seed)
            )
        checked.append(int(seed))
    if not checked:
        raise SettingError("{0} must hold at least one seed, e.g. [0]", "seeds")
    return list(dict.fromkeys(checked))


def check_run(scheduler: Any, workers: Any, threads: Any, retries: Any) -> None:
    """SettingError unless the sweep can run this way: on `scheduler` (None: a local cluster of
    `workers` processes, None: as many as the cores allow), `threads` per trial, a trial that
    raised run again `retries` times."""
    if scheduler is not None:
        if isinstance(scheduler, str):
            _check_address(scheduler)
        elif not hasattr(scheduler, "submit"):
            raise SettingError(
                "{0} must be a Dask scheduler's address, e.g. "
                "tcp://127.0.0.1:8786, or a distributed.Client; got {value}",
                "scheduler",
                value=shown(scheduler),
            )
        if workers is not None:
            raise SettingError(
                "{0} is for a local cluster: {1}'s workers run the trials; leave {0} out",
                "workers",
                "scheduler",
            )
    if workers is not None:
        whole("workers", workers, 1)
    whole("threads", threads, 1)
    whole("retries", retries, 0)


def _check_address(address: str) -> None:
    """Dask's own reading of a scheduler address, so that a typo is refused now and not
    after the settings are written."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, location = parse_address(address)
        get_backend(scheme)
        if scheme != "inproc":
            host, port = parse_host_port(location, DEFAULT_SCHEDULER_PORT)
            if not host.strip() or not 0 < port < 65536:
                raise ValueError("a host and port are needed")
    except ValueError as exc:
        raise SettingError(
            "{0} must be a Dask scheduler's address such as "
            "tcp://127.0.0.1:8786; got {value} ({problem})",
            "scheduler",
            value=shown(address),
            problem=str(exc),
        ) from None


def read_settings(path: Path) -> Settings:
    """The Settings of sweep.json at `path`, as the sweep wrote them; SweepFileError naming the
    file if it is damaged or was edited into something the sweep cannot use."""

    def damaged(problem: str) -> results.SweepFileError:
        return results.SweepFileError(
            f"{path}: {problem}; put back the file the sweep wrote, or start the sweep anew "
            "in another folder"
        )

    try:
        content = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise damaged("not text (not UTF-8)") from None
    except (ValueError, RecursionError) as exc:  # a 5,000-digit number, 100,000 [s
        raise damaged(f"not JSON ({results.json_problem(exc)})") from None
    if not isinstance(content, dict):
        raise damaged(f"holds {results.json_kind(content)}, not the sweep's settings (an object)")
    unknown = [key for key in content if key not in ("version", *FIELDS)]
    missing = [key for key in ("version", *FIELDS) if key not in content]
    if unknown or missing:
        what = [f"unknown key(s) {', '.join(map(repr, unknown))}"] if unknown else []
        what += [f"no {', '.join(missing)}"] if missing else []
        raise damaged("; ".join(what))
    if content["version"] != SETTINGS_VERSION:
        raise damaged(
            f"version {shown(content['version'])}: this fastnn reads version {SETTINGS_VERSION}"
        )
    try:
        return Settings(**{key: content[key] for key in FIELDS})
    except SpaceError as exc:
        raise damaged(str(exc)) from None


__all__ = ["SettingError", "Settings", "check_run", "read_settings"]
