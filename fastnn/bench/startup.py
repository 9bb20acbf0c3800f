"""The cost of starting over: wall time of a fresh `python -m fastnn.train --epochs 1` process
once Numba's cache is warm, all included: interpreter start, imports, reading the data (which
overlaps Numba's own start-up), loading the compiled kernels, the epoch and the evaluation.

The train command runs in subprocesses: the first may compile and fill the cache, the
WARM_RUNS after it are the ones reported, by their median (one process start on a shared
machine moves by a few tenths of a second from one run to the next). Data loading is also
timed on its own in another subprocess, to tell how much of the start it would take if
nothing overlapped it.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fastnn.bench.timing import settle

# Prints the seconds that load_dataset alone takes, inside a fresh interpreter.
LOAD_SNIPPET = (
    "import time; from fastnn.data import load_dataset; t = time.perf_counter(); "
    "load_dataset('mnist', data_dir={data_dir!r}, download=False); "
    "print(time.perf_counter() - t)"
)
LOAD_RUNS = 3
WARM_RUNS = 5
TIMEOUT_S = 600


def train_options(threads: int | None, data_dir: str | None) -> list[str]:
    options = ["--backend", "numba", "--epochs", "1", "--dev-size", "0", "--no-download"]
    options += [] if threads is None else ["--threads", str(threads)]
    return options + ([] if data_dir is None else ["--data", data_dir])


def _timed(cmd: list[str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    return time.perf_counter() - start, done


def _check(what: str, done: subprocess.CompletedProcess) -> None:
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{what} exited with {done.returncode}: " + " | ".join(tail))


def measure_startup(threads: int | None = None, data_dir: str | None = None) -> dict:
    """Times of two train runs and of data loading, JSON-ready; a failed or hung run is
    reported in the result, not raised."""
    options = train_options(threads, data_dir)
    shown = "python -m fastnn.train " + " ".join(options)
    try:
        return dict(command=shown, **_measure(options, data_dir))
    except subprocess.TimeoutExpired as exc:
        return dict(command=shown, error=f"a subprocess timed out after {exc.timeout:g} s")
    except RuntimeError as exc:
        return dict(command=shown, error=str(exc))


def _measure(options: list[str], data_dir: str | None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "metrics.json"
        cmd = [sys.executable, "-m", "fastnn.train", *options, "--metrics", str(metrics)]
        walls, epochs = [], []
        for _ in range(1 + WARM_RUNS):
            settle()  # as the epochs: none pays for what the last one left running
            wall, done = _timed(cmd)
            _check("the train command", done)
            walls.append(wall)
            epochs.append(json.loads(metrics.read_text()).get("first_epoch_seconds"))
    loads = []
    for _ in range(LOAD_RUNS):
        _, done = _timed([sys.executable, "-c", LOAD_SNIPPET.format(data_dir=data_dir)])
        _check("loading the data", done)
        loads.append(float(done.stdout.strip().splitlines()[-1]))
    data_load = min(loads)  # the warm train runs also found the files in the page cache
    warm_epochs = [s for s in epochs[1:] if s is not None]
    return dict(
        first_wall_s=walls[0],
        warm_wall_s=statistics.median(walls[1:]),  # what the target is about
        warm_walls_s=walls[1:],
        warm_epoch_s=statistics.median(warm_epochs) if warm_epochs else None,
        data_load_s=data_load,
        target_s=1.3,
    )


def startup_line(startup: dict) -> str:
    if "skipped" in startup:
        return f"Startup not measured: {startup['skipped']}."
    if "error" in startup:
        return f"Startup (`{startup['command']}`) failed: {startup['error']}"
    walls = startup["warm_walls_s"]
    return (
        f"A process started with a warm Numba cache, `{startup['command']}`: "
        f"{startup['warm_wall_s']:.2f} s wall, all included, the median of {len(walls)} "
        f"({min(walls):.2f}-{max(walls):.2f} s; target: at most {startup['target_s']:g} s; "
        f"its epoch took {startup['warm_epoch_s']:.2f} s; loading the data alone takes "
        f"{startup['data_load_s']:.2f} s, overlapped with Numba's start-up; the first, "
        f"cache-filling run took {startup['first_wall_s']:.2f} s)."
    )
