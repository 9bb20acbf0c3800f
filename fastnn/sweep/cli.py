"""python -m fastnn.sweep: a hyperparameter sweep of the training command on Dask, on this
machine's cores or a cluster's (--scheduler); the ranked table, the best configuration as a
command line, the results as CSV and figures. Interrupted, it goes on with --resume DIR."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from fastnn.core import interrupt
from fastnn.core.hyperparameters import PRESETS
from fastnn.files.atomic import check_writable, write_text
from fastnn.sweep import lock, results
from fastnn.sweep.results import METRICS
from fastnn.sweep.settings import FIELDS, SettingError, Settings, check_run, read_settings
from fastnn.sweep.space import SpaceError, format_value, parse_assignment, read_space_file
from fastnn.sweep.trial import SweepData
from fastnn.tools import add_version
from fastnn.train.options import positive_int

EXIT_ERROR, EXIT_USAGE = 1, 2
SETTINGS_FILE, LOG_FILE = "sweep.json", "results.jsonl"
# What --resume takes from the sweep's folder rather than the command line: the trials.
SPACE_OPTIONS = (
    "grid",
    "space",
    "seeds",
    "epochs",
    "random",
    "random_seed",
    "halving",
    "min_epochs",
    "factor",
    "metric",
    "preset",
    "dataset",
    "data",
    "no_download",
    "dev_size",
    "train_rows",
    "backend",
)
OPTIONS = {"space": "--grid", "download": "--no-download"}  # settings named otherwise there
FILE_KEYS = ("grid", *(name for name in FIELDS if name != "space"))  # what --space FILE holds


class UsageError(ValueError):
    """The command was asked for something it cannot do as given (exit status 2)."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, its refusals one line (no usage block): the option and what is wrong."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="python -m fastnn.sweep",
        description="Train python -m fastnn.train over a grid (or random draws) of MLPClassifier "
        "parameters and seeds on Dask, and rank the configurations by dev accuracy.",
    )
    add_version(p)
    p.add_argument(
        "--grid",
        nargs="+",
        default=[],
        metavar="NAME=VALUES",
        help="values of an estimator parameter, e.g. hidden_layer_sizes=128,256x128 "
        "learning_rate_init=0.05,0.1; with --random also loguniform:LOW:HIGH, "
        "uniform:LOW:HIGH or randint:LOW:HIGH",
    )
    p.add_argument(
        "--space",
        metavar="FILE",
        help='a JSON (or TOML) file: {"grid": {"name": [values]}} and any other of '
        "these settings by their long names (seeds, epochs, random, ...)",
    )
    p.add_argument("--seeds", nargs="+", type=int, metavar="N", help="default: 0")
    p.add_argument("--epochs", type=int, help="epochs per trial (with --halving: the last rung's)")
    p.add_argument(
        "--random",
        type=int,
        metavar="N",
        help="draw N configurations from the space instead of the whole grid",
    )
    p.add_argument("--random-seed", type=int, help="seed of those draws (default: 0)")
    p.add_argument(
        "--halving",
        action="store_true",
        default=None,
        help="successive halving: every configuration for a few epochs, the best "
        "1/factor go on for factor times as many, up to --epochs",
    )
    p.add_argument("--min-epochs", type=int, help="the first rung's epochs (default: 1)")
    p.add_argument("--factor", type=int, help="halving's factor (default: 3)")
    p.add_argument("--metric", choices=METRICS, help="what ranks (default: dev_accuracy)")
    p.add_argument(
        "--preset", choices=PRESETS, help="every other option's value (default: default)"
    )
    p.add_argument("--dataset", choices=("mnist", "fashion-mnist"), help="default: mnist")
    p.add_argument("--data", metavar="PATH", help="as python -m fastnn.train --data")
    p.add_argument("--no-download", action="store_true", default=None, help="never download")
    p.add_argument("--dev-size", type=int, help="dev rows (default: the preset's)")
    p.add_argument(
        "--train-rows",
        type=int,
        metavar="N",
        help="train on the first N training rows only: quicker, rougher sweeps",
    )
    p.add_argument("--backend", choices=("numba", "numpy"), help="default: numba")
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="a running Dask scheduler, e.g. tcp://HOST:8786 (default: a local "
        "cluster of this machine's cores)",
    )
    p.add_argument("--workers", type=int, help="local worker processes (default: cores // threads)")
    p.add_argument("--threads", type=int, default=1, help="Numba threads per trial (default: 1)")
    p.add_argument("--retries", type=int, default=2, help="runs again of a trial that raised")
    p.add_argument("--out", metavar="DIR", help="the sweep's folder (default: sweep)")
    p.add_argument(
        "--resume", metavar="DIR", help="go on with the sweep in DIR, skipping what is done"
    )
    p.add_argument(
        "--top", type=positive_int, default=10, help="configurations in the table (default: 10)"
    )
    p.add_argument("--no-figures", action="store_true", help="write no PNGs")
    return p


def option(name: str) -> str:
    """A setting's command-line option: train_rows -> --train-rows."""
    return OPTIONS.get(name, "--" + name.replace("_", "-"))


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """(the sweep's Settings, how to spell a setting's name to the user): from DIR/sweep.json
    with --resume, else from the --space file and the options."""
    if args.resume:
        given = [
            f"--{n.replace('_', '-')}"
            for n in (*SPACE_OPTIONS, "out")
            if getattr(args, n) not in (None, [])
        ]
        if given:
            parser.error(
                f"--resume takes the trials from {args.resume}/{SETTINGS_FILE}; "
                f"leave out {' '.join(given)}"
            )
        path = Path(args.resume) / SETTINGS_FILE
        if not path.is_file():
            raise UsageError(
                f"--resume {args.resume}: no {SETTINGS_FILE} there: not a sweep folder"
            )
        return read_settings(path), lambda n: f"{n} in {path}" if n in FIELDS else option(n)
    content = read_space_file(args.space) if args.space else {}
    unknown = [key for key in content if key not in FILE_KEYS]
    if unknown:
        raise UsageError(
            f"--space {args.space}: unknown key(s) {', '.join(map(repr, unknown))}; it may "
            f"hold {', '.join(FILE_KEYS)}"
        )
    content["space"] = dict(content.pop("grid", {}))
    from_file = {n for n in content if n != "space" or content["space"]}
    for text in args.grid:
        name, values = parse_assignment(text)
        content["space"][name] = values
        from_file.discard("space")
    for name in SPACE_OPTIONS[2:]:
        value = getattr(args, name)
        if name == "no_download" and value:
            content["download"] = False
            from_file.discard("download")
        elif name != "no_download" and value is not None:
            content[name] = value
            from_file.discard(name)

    def spell(name: str) -> str:
        if name in from_file:
            return f"{'grid' if name == 'space' else name} in {args.space}"
        return option(name)

    try:
        settings = Settings(**content)
    except SettingError as exc:
        raise exc.respelled(spell) from None
    if not settings.space and len(settings.seeds) < 2:
        parser.error("nothing to sweep: give --grid NAME=VALUES (or --space FILE) or --seeds")
    return settings, spell


@interrupt.handles_sigterm  # SIGTERM stops it as Ctrl-C does, exit status 143
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from fastnn.sweep.run import load_data, require_dask

        require_dask()
    except ImportError as exc:
        print(f"python -m fastnn.sweep: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = Path(args.resume or args.out or "sweep")
    log = None  # the sweep's log, once this sweep holds the folder
    try:
        settings, spell = settings_from(args, parser)
        try:
            check_run(args.scheduler, args.workers, args.threads, args.retries)
            check_writable(out, "--resume" if args.resume else "--out", folder=True)
            data = load_data(settings)  # its rows are checked against the settings
        except SettingError as exc:
            raise exc.respelled(spell) from None
        # Nothing is written before here: from here on the folder is this sweep's alone.
        with lock.hold(out / LOG_FILE) as note:
            say(note)
            if not args.resume and any((out / f).exists() for f in (SETTINGS_FILE, LOG_FILE)):
                raise UsageError(
                    f"{out} holds a sweep already: go on with it with --resume {out}, "
                    f"or give another --out"
                )
            log = results.ResultsLog(out / LOG_FILE)
            for note in log.notes:
                say(note)
            return run(settings, args, out, log, data)
    except (SpaceError, UsageError) as exc:  # a setting
        error(str(exc))
        return EXIT_USAGE
    except (ValueError, OSError) as exc:  # a file, the data, the folder, the cluster
        error(str(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        if log is None or not (out / SETTINGS_FILE).exists():
            error("interrupted before the sweep began; no trial ran")
        else:
            print(
                f"\nsweep interrupted: {len(log.done())} trials are in {out / LOG_FILE}; go on "
                f"with: python -m fastnn.sweep --resume {shlex.quote(str(out))}",
                file=sys.stderr,
                flush=True,
            )
        return interrupt.EXIT_INTERRUPTED


def error(message: str) -> None:
    print(f"python -m fastnn.sweep: error: {message}", file=sys.stderr, flush=True)


def say(note: str | None) -> None:
    if note:
        print(f"python -m fastnn.sweep: note: {note}", file=sys.stderr, flush=True)


def run(
    settings: Settings,
    args: argparse.Namespace,
    out: Path,
    log: results.ResultsLog,
    data: SweepData,
) -> int:
    from fastnn.sweep import report
    from fastnn.sweep.run import Driver, logged_rows, open_client

    started = time.perf_counter()
    logged = logged_rows(settings, log, data, args.threads) if args.resume else None
    if logged is not None:  # a finished sweep asked again
        print(
            f"fastnn sweep | {report.plan(settings)} | all {len(logged)} trials done already, "
            f"no cluster started | results in {out}",
            flush=True,
        )
        wall = time.perf_counter() - started
        return report.finish(settings, logged, [], out, wall, args.top, not args.no_figures)
    client, cluster = open_client(args.scheduler, args.workers, args.threads)
    try:
        if not args.resume:  # once the cluster is there: a sweep that cannot start leaves none
            write_text(out / SETTINGS_FILE, json.dumps(settings.to_json(), indent=2) + "\n")
        where = args.scheduler or f"a local cluster of {len(cluster.workers)} worker processes"
        print(
            f"fastnn sweep | {report.plan(settings)} | on {where}, {args.threads} thread(s) "
            f"per trial | {len(log.done())} trials done already | results in {out}",
            flush=True,
        )
        driver = Driver(
            settings,
            client,
            log,
            data,
            threads=args.threads,
            retries=args.retries,
            progress=lambda row: print(report.progress(row, settings), flush=True),
        )
        try:
            rows = driver.run()
        except ConnectionError as exc:
            print(
                f"python -m fastnn.sweep: error: {exc}; the finished trials are in {out}; go "
                f"on with --resume {shlex.quote(str(out))}",
                file=sys.stderr,
            )
            return EXIT_ERROR
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    wall = time.perf_counter() - started
    return report.finish(settings, rows, driver.ran, out, wall, args.top, not args.no_figures)


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in params.items())
