"""Helpers of the sweep tests: Dask or not, tiny trials, subprocesses that never outlive a test."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Tiny trials: the NumPy reference (no Numba compiling), a few thousand rows, one epoch.
TINY = [
    "--backend", "numpy", "--train-rows", "3000", "--dev-size", "1000", "--epochs", "1",
    "--no-download", "--no-figures",
]  # fmt: skip


def require_distributed() -> None:
    """Skip without dask.distributed, except in CI, which installs the sweep extra: fail there."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("CI must install the sweep extra: pip install -e '.[dev,sweep]'")
        pytest.skip("dask.distributed is not installed (pip install 'fastnn-mlp[sweep]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sweep_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastnn.sweep", *args]


def start(command: list[str], log: Path, **env: str) -> subprocess.Popen:
    """A process whose output goes to `log` (read when a test fails), leading a process group
    of its own, as a command started from a terminal does (see `press_ctrl_c`)."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env},
            start_new_session=True,
        )  # fmt: skip


def press_ctrl_c(process: subprocess.Popen) -> None:
    """SIGINT to the process and every process it started (a local cluster's workers), as a
    terminal's Ctrl-C reaches its whole foreground process group."""
    os.killpg(process.pid, signal.SIGINT)


def stop(process: subprocess.Popen) -> None:
    """Kill the process and its group if it still runs, and reap it."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


def trial_row(trial: str, status: str = "finished", **keys) -> dict:
    """A results row as a sweep writes one: the keys every row has, and `keys`."""
    base = dict(trial=trial, rung=0, params={"alpha": 0.0}, seed=0, epochs=1, status=status)
    return {**base, **keys}


def rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for_rows(path: Path, count: int, process: subprocess.Popen, timeout: float) -> list:
    """The log's rows once it has `count`; fails on timeout or if the process ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rows(path)
        if len(found) >= count:
            return found
        if process.poll() is not None:
            pytest.fail(f"the sweep ended (status {process.returncode}) with {len(found)} rows")
        time.sleep(0.05)
    pytest.fail(f"no {count} rows in {path} within {timeout} s")


def wait_for_text(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    """Once `text` is in the process's output `log`; fails on timeout or if it ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            pytest.fail(f"it ended (status {process.returncode}): {log.read_text()}")
        time.sleep(0.05)
    pytest.fail(f"no {text!r} in {log} within {timeout} s")
