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
from typing import Any

from fastnn import interrupt
from fastnn.atomic import check_writable, write_text
from fastnn.options import PRESETS
from fastnn.sweep.results import METRICS
from fastnn.sweep.space import SpaceError, format_value, parse_assignment, read_space_file

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.sweep",
        description="Train python -m fastnn.train over a grid (or random draws) of MLPClassifier "
        "parameters and seeds on Dask, and rank the configurations by dev accuracy.",
    )
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
    p.add_argument("--top", type=int, default=10, help="configurations in the table (default: 10)")
    p.add_argument("--no-figures", action="store_true", help="write no PNGs")
    return p


def settings_from(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """The sweep's Settings: from DIR/sweep.json with --resume, else the file and options."""
    from fastnn.sweep.run import Settings

    if args.resume:
        given = [
            f"--{n.replace('_', '-')}" for n in SPACE_OPTIONS if getattr(args, n) not in (None, [])
        ]
        if given:
            parser.error(
                f"--resume takes the trials from {args.resume}/{SETTINGS_FILE}; "
                f"leave out {' '.join(given)}"
            )
        path = Path(args.resume) / SETTINGS_FILE
        if not path.is_file():
            raise SpaceError(
                f"--resume {args.resume}: no {SETTINGS_FILE} there: not a sweep folder"
            )
        return Settings.from_json(json.loads(path.read_text(encoding="utf-8")))
    content = read_space_file(args.space) if args.space else {}
    space = dict(content.pop("grid", {}))
    for text in args.grid:
        name, values = parse_assignment(text)
        space[name] = values
    for name in SPACE_OPTIONS[2:]:
        value = getattr(args, name)
        if name == "no_download":
            if value:
                content["download"] = False
        elif value is not None:
            content[name] = value
    if not space and len(content.get("seeds", [0])) < 2:
        parser.error("nothing to sweep: give --grid NAME=VALUES (or --space FILE) or --seeds")
    return Settings(space, **content)


@interrupt.handles_sigterm  # SIGTERM stops it as Ctrl-C does, exit status 143
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from fastnn.sweep.run import require_dask

        require_dask()
    except ImportError as exc:
        print(f"python -m fastnn.sweep: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = settings_from(args, parser)
        out = Path(args.resume or args.out or "sweep")
        if not args.resume and (out / LOG_FILE).exists():
            raise SpaceError(
                f"{out} holds a sweep already: go on with it with --resume {out}, "
                f"or give another --out"
            )
        check_writable(out, "--resume" if args.resume else "--out", folder=True)
        if not args.resume:
            write_text(out / SETTINGS_FILE, json.dumps(settings.to_json(), indent=2) + "\n")
        return run(settings, args, out)
    except (SpaceError, ValueError, OSError) as exc:
        print(f"python -m fastnn.sweep: error: {exc}", file=sys.stderr)
        return EXIT_ERROR


def run(settings: Any, args: argparse.Namespace, out: Path) -> int:
    from fastnn.sweep import report, results
    from fastnn.sweep.run import Driver, open_client

    log = results.ResultsLog(out / LOG_FILE)
    started = time.perf_counter()
    client, cluster = open_client(args.scheduler, args.workers, args.threads)
    try:
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
            threads=args.threads,
            retries=args.retries,
            progress=lambda row: print(report.progress(row, settings), flush=True),
        )
        try:
            rows = driver.run()
        except KeyboardInterrupt:
            print(
                f"\nsweep interrupted: {len(log.done())} trials are in {out / LOG_FILE}; go on "
                f"with: python -m fastnn.sweep --resume {shlex.quote(str(out))}",
                file=sys.stderr,
                flush=True,
            )
            return interrupt.EXIT_INTERRUPTED
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
