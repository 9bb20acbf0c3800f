"""python -m fastnn.bench: the backends side by side in one process, on every workload.

For each workload numpy and numba take turns (numpy, numba, numpy, numba, ...) after one
untimed warm-up round, and the medians are compared, as is each non-SGD workload's epoch with
its plain-SGD twin's; numba's epoch is also split layer by layer (fastnn.bench.layers). Then,
optionally, the same epochs in other libraries, prediction (fastnn.bench.predict), and the
start-up time of a fresh train process. With --time-to-accuracy, instead, the seconds of
training each contender takes to reach given test accuracies (fastnn.bench.accuracy).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import os
import shlex
import sys
from collections.abc import Sequence

from fastnn.backends import Backend, get_backend
from fastnn.bench import accuracy, report
from fastnn.bench.data import load
from fastnn.bench.epochs import Data, Log, optimizer_costs, run_peers_on, run_workloads
from fastnn.bench.machine import machine
from fastnn.bench.peak import ROUNDS as FMA_ROUNDS
from fastnn.bench.peak import fma_peaks, set_against_fma_peak
from fastnn.bench.predict import ONE_ROW_CALLS, QUICK_ONE_ROW_CALLS, measure_predict
from fastnn.bench.startup import WARM_RUNS, measure_startup
from fastnn.bench.timing import MATMUL_SIZE, MATMUL_TRIES, SETTLE_S, blas_threads, matmul_gflops
from fastnn.bench.workloads import (
    DENSE_INPUT,
    FLOP_FORMULA,
    INPUT_FORMS,
    PEER_WORKLOADS,
    SPARSE_INPUT,
    WORKLOAD_NAMES,
    workload,
)
from fastnn.core import interrupt
from fastnn.data import DataError
from fastnn.files.atomic import check_writable, write_text
from fastnn.tools import add_version
from fastnn.train.options import positive_int
from fastnn.version import __version__

DEFAULT_REPEATS = 5
DEFAULT_FULL_BATCH_ITERS = 5
QUICK_ROWS = 6000  # a tenth of an epoch: enough to exercise every path in seconds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.bench",
        description="Time one training epoch of the numpy and numba backends side by side; "
        "or, with --time-to-accuracy, the seconds of training to given MNIST test accuracies.",
    )
    add_version(p)
    p.add_argument(
        "--workloads",
        nargs="+",
        choices=WORKLOAD_NAMES,
        metavar="NAME",
        help=f"any of {', '.join(WORKLOAD_NAMES)} (default: all; without scipy, all but the "
        "sparse one)",
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        help=f"timed runs per backend and workload (default {DEFAULT_REPEATS})",
    )
    p.add_argument(
        "--full-batch-iters",
        type=positive_int,
        help=f"full-batch steps per timed run (default {DEFAULT_FULL_BATCH_ITERS})",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="threads for numba, BLAS and the peers (default: all cores, %(default)s)",
    )
    p.add_argument("--rows", type=positive_int, help="use only the first N training rows")
    p.add_argument(
        "--data",
        metavar="DIR",
        help="folder with mnist/ and fashion-mnist/ (default: where load_dataset looks, "
        "e.g. $FASTNN_DATA_DIR)",
    )
    p.add_argument(
        "--peers",
        action=argparse.BooleanOptionalAction,
        help="also time PyTorch, JAX and scikit-learn where installed, on those of the chosen "
        f"workloads that they run: {', '.join(PEER_WORKLOADS)}; and PyTorch's prediction "
        "(default: on)",
    )
    p.add_argument(
        "--layers",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time each layer of numba's epoch alone, on one thread, for its share of the "
        "epoch (default: on)",
    )
    p.add_argument(
        "--memory",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the peak memory of numba's training on the sparse workload, in a "
        "child process of its own (default: on)",
    )
    p.add_argument(
        "--predict",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time predict_proba: 10,000 rows through each chosen classifier's network "
        "(dense inputs) and (800, 800), and one row at a time at hidden 128, 512 and (800, 800) "
        "(default: on)",
    )
    p.add_argument(
        "--predict-calls",
        type=positive_int,
        help=f"one-row predict calls per contender and round (default {ONE_ROW_CALLS})",
    )
    p.add_argument(
        "--startup",
        action=argparse.BooleanOptionalAction,
        help=f"also time {WARM_RUNS} warm-cache `python -m fastnn.train` processes, by their "
        "median (default: on)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke test: 1 repeat, 1 full-batch step, {QUICK_ROWS} rows, "
        f"{QUICK_ONE_ROW_CALLS} one-row predict calls, no peers or startup unless asked for",
    )
    for name in ("json", "png"):  # the default depends on the mode (resolve fills it in)
        p.add_argument(f"--{name}", metavar="FILE",
                       help=f"default: bench.{name}, or time-to-accuracy.{name}")  # fmt: skip
    p.add_argument("--markdown", metavar="FILE", help="also write the printed report here")
    accuracy.add_arguments(p)
    return p


def resolve(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the options left unset from --quick or the full defaults."""
    quick = args.quick
    for key, full, short in (
        ("repeats", DEFAULT_REPEATS, 1),
        ("full_batch_iters", DEFAULT_FULL_BATCH_ITERS, 1),
        ("rows", None, QUICK_ROWS),
        ("predict_calls", ONE_ROW_CALLS, QUICK_ONE_ROW_CALLS),
        ("peers", True, False),
        ("startup", True, False),
        ("json", "bench.json", "bench.json"),
        ("png", "bench.png", "bench.png"),
    ):
        if getattr(args, key) is None:
            setattr(args, key, short if quick else full)
    if args.workloads is None:
        args.workloads = default_workloads()
    return args


def default_workloads() -> list[str]:
    """Every workload, but the sparse ones where scipy, which only they need, is missing (said
    on stderr): named, they are refused with what to do."""
    if importlib.util.find_spec("scipy") is not None:
        return list(WORKLOAD_NAMES)
    left_out = [name for name in WORKLOAD_NAMES if workload(name).sparse]
    print(f"fastnn.bench: {', '.join(left_out)} left out: it needs scipy", file=sys.stderr)
    return [name for name in WORKLOAD_NAMES if name not in left_out]


def collect(
    args: argparse.Namespace,
    data: Data,
    backends: Sequence[Backend],
    numba_unavailable: str | None,
    log: Log,
    matmul_size: int = MATMUL_SIZE,
    fma_rounds: int = FMA_ROUNDS,
) -> dict:
    """Run everything the options ask for; the JSON-ready result, its markdown included."""
    numba = next((b for b in backends if b.name == "numba"), None)
    with contextlib.ExitStack() as stack:
        blas_limited = stack.enter_context(blas_threads(args.threads))
        for b in backends:
            stack.enter_context(b.threads(args.threads))
        peak = {dtype: matmul_gflops(dtype, matmul_size) for dtype in ("float32", "float64")}
        log(f"matmul peak: {', '.join(f'{d} {g:.1f} GFLOP/s' for d, g in peak.items())}")
        workloads = [workload(name) for name in args.workloads]
        entries = run_workloads(workloads, data, backends, args, peak, log)
        peers = run_peers_on(args.workloads, data, numba, args, peak, log) if args.peers else None
        predict = None
        if args.predict:
            names = [b.name for b in backends]
            predict = measure_predict(
                args.workloads, data, names, args.threads, args.rows, args.predict_calls,
                args.repeats, args.peers, log,
            )  # fmt: skip
        fma = None if numba is None else fma_peaks(args.threads, fma_rounds)
        layered = any(entry["layers"] for entry in entries)
        # What one thread can do, for the layers timed alone on one thread.
        fma_one = fma_peaks(1, fma_rounds) if layered and args.threads > 1 else fma
        # Again: whether the machine ran as fast at the end as at the start (see speed_note).
        peak_after = {dtype: matmul_gflops(dtype, matmul_size) for dtype in peak}
    if fma is not None:
        rates = (f"{dtype} {f['gflops']:.1f} GFLOP/s" for dtype, f in fma.items())
        log(f"FMA peak: {', '.join(rates)}")
        set_against_fma_peak(entries, fma, fma_one if layered else None)
    if not args.startup:
        startup = None
    elif numba is None:
        startup = dict(skipped="the numba backend is not available")
    else:
        log(
            f"startup: `python -m fastnn.train`, once to fill the cache, {WARM_RUNS} times warm ..."
        )
        startup = measure_startup(args.threads, args.data)
    result = dict(
        fastnn_version=__version__,
        date=datetime.date.today().isoformat(),
        command=args.command,
        machine=machine(),
        settings=dict(
            repeats=args.repeats,
            warmup_rounds=1,
            settle_s=SETTLE_S,
            threads=args.threads,
            blas_threads_limited=blas_limited,
            full_batch_iters=args.full_batch_iters,
            rows=args.rows,
            matmul_size=matmul_size,
            matmul_tries=MATMUL_TRIES,
        ),
        inputs={b.name: INPUT_FORMS[b.name] for b in backends},
        dense_input=DENSE_INPUT if any(workload(n).dense for n in args.workloads) else None,
        sparse_input=SPARSE_INPUT if any(workload(n).sparse for n in args.workloads) else None,
        numba_available=numba is not None,
        numba_unavailable=numba_unavailable,
        flop_formula=FLOP_FORMULA,
        matmul_peak_gflops=peak,
        matmul_peak_after_gflops=peak_after,
        fma_peak=fma,
        fma_peak_one_thread=fma_one if layered else None,
        workloads=entries,
        optimizer_costs=optimizer_costs(entries),
        peers=peers,
        predict=predict,
        startup=startup,
    )
    result["markdown"] = report.markdown(result)
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if not accuracy.resolve(parser, args):  # the epoch timing
        resolve(args)
    args.command = shlex.join(["python", "-m", "fastnn.bench", *argv])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return accuracy.run(args) if args.time_to_accuracy else run(args)
    except KeyboardInterrupt:
        print("fastnn.bench: interrupted; nothing was written", file=sys.stderr)
        return interrupt.EXIT_INTERRUPTED


def run(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    outputs = [("--json", args.json), ("--png", args.png), ("--markdown", args.markdown)]
    needed = {workload(name).dataset for name in args.workloads}  # the peers' too
    if args.predict:
        needed.add("mnist")  # the one-row networks take its rows
    data = {}
    try:
        for option, path in outputs:  # before minutes of timing, not after
            if path:
                check_writable(path, option)
        for name in sorted(needed):
            data[name] = load(name, args.data)
    except (DataError, ValueError) as exc:
        print(f"fastnn.bench: error: {exc}", file=sys.stderr)
        return 1
    backends = [get_backend("numpy")]
    numba_unavailable = None
    try:
        backends.append(get_backend("numba"))
    except ValueError as exc:  # the numba backend is not there yet: time numpy alone
        numba_unavailable = str(exc)
        log(f"numba: {exc}; timing numpy alone")
    result = collect(args, data, backends, numba_unavailable, log)
    print(result["markdown"])
    writers = [
        ("--json", args.json, lambda: report.write_json(args.json, result)),
        ("--png", args.png, lambda: report.write_png(args.png, result)),
        ("--markdown", args.markdown, lambda: write_text(args.markdown, result["markdown"])),
    ]
    return 0 if report.write_outputs(writers, log) else 1
