"""SIGTERM (what kill, timeout, job schedulers and container runtimes send) stops the server and
sweeps as Ctrl-C does, with exit status 143. Training's case is in test_interrupt.py."""

from __future__ import annotations

import gc
import inspect
import logging
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from drawn_digits import plumbing_model
from sweep_helpers import TINY, require_distributed, rows, start, stop, sweep_command, wait_for_rows

TIMEOUT = 30  # seconds: a bound against a hang, far above what each step takes


def test_the_server_stops_on_sigterm(tmp_path):
    plumbing_model().save(tmp_path / "model.npz")
    command = [sys.executable, "-m", "fastnn.serve", str(tmp_path / "model.npz"), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([process.stdout], [], [], TIMEOUT)  # the URL, once it listens
        line = process.stdout.readline() if ready else ""
        assert re.search(r"http://127\.0\.0\.1:\d+/", line), line
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 143, err
    assert err == "fastnn.serve: stopped\n" and out == ""


def _running_in_group(group: int) -> list[str]:
    """The processes of the process group that still run (not zombies): their command lines."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != group or fields[0] in "ZX":  # pgrp, state: zombie or dead
                continue
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # ended meanwhile
            continue
        # A process that is exiting has released its memory, and with it its command line,
        # a moment before it becomes a zombie: it has stopped running.
        if command:
            found.append(command.replace(b"\0", b" ").decode())
    return found


def test_a_sweep_stops_on_sigterm_keeping_its_trials_and_its_cluster_shut_down(
    real_data_dir, tmp_path
):
    """SIGTERM to the driver alone (kill PID): the local cluster's workers do not get it, and
    the driver stops them as after Ctrl-C."""
    require_distributed()
    out = tmp_path / "sweep"
    grid = ["--grid", "hidden_layer_sizes=8,16,12", "--seeds", "0", "1", "--out", str(out)]
    env = dict(FASTNN_DATA_DIR=str(real_data_dir), FASTNN_SWEEP_TRIAL_DELAY="0.7")
    log = tmp_path / "sweep.log"
    process = start(sweep_command(*grid, *TINY, "--workers", "2"), log, **env)
    try:
        wait_for_rows(out / "results.jsonl", 1, process, timeout=60)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=TIMEOUT) == 143, log.read_text()
        # The driver stopped them before it ended (were it killed, they would notice that
        # their parent is gone only a while later). Multiprocessing's resource tracker ends
        # when it reads the end of the driver's pipe, just after the driver: it gets 10 s.
        tracker = "multiprocessing.resource_tracker"
        running = _running_in_group(process.pid)
        assert not [c for c in running if tracker not in c], "the cluster's processes still run"
        deadline = time.monotonic() + 10
        while _running_in_group(process.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running_in_group(process.pid), "the resource tracker outlived the driver"
    finally:
        stop(process)
    said = log.read_text()
    assert f"python -m fastnn.sweep --resume {out}" in said
    assert "Traceback" not in said and "ERROR" not in said, said
    done = [r["trial"] for r in rows(out / "results.jsonl")]
    assert 1 <= len(done) < 6 and len(set(done)) == len(done)


# A heartbeat in flight when the worker closes: the scheduler (in this process, as with every
# local cluster) answers heartbeats 3 s late, and the cluster closes while one waits.
CUT_OFF_HEARTBEAT = """
import asyncio, time
from fastnn.sweep.run import open_client

if __name__ == "__main__":
    client, cluster = open_client(workers=1)
    answer = cluster.scheduler.handlers["heartbeat_worker"]

    async def late(**kwargs):
        await asyncio.sleep(3)
        return answer(**kwargs)

    cluster.scheduler.handlers["heartbeat_worker"] = late
    time.sleep(1.5)  # the worker heartbeats every 0.5 s
    client.close()
    cluster.close()
    print("closed")
"""


def test_a_heartbeat_cut_off_by_the_closing_worker_is_not_logged(tmp_path):
    """A local worker closing its connections under a heartbeat in flight logged that as an
    ERROR with a traceback (dask/distributed#7105): the sweep test above failed on it once in
    a few dozen runs. Made to happen every time here, it is left out of the sweep's log."""
    require_distributed()
    script = tmp_path / "cut_off.py"  # a file: the workers' processes import the main module
    script.write_text(CUT_OFF_HEARTBEAT)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout == "closed\n", result.stderr
    assert "heartbeat" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_the_closing_workers_filter_leaves_out_that_record_alone():
    """Only the failed heartbeat, and only while the worker closes: a running worker's failed
    heartbeat means the scheduler is out of reach, which the log should say."""
    require_distributed()
    from distributed.core import Status
    from distributed.worker import Worker

    from fastnn.sweep.run import ClosingHeartbeatFilter

    assert ClosingHeartbeatFilter.MESSAGE in inspect.getsource(Worker.heartbeat)

    class StubWorker:
        status = Status.running

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord(
            "distributed.worker", logging.ERROR, __file__, 1, message, (), None
        )

    heartbeat = record("Failed to communicate with scheduler during heartbeat.")
    other = record("Worker stream died during communication: tcp://127.0.0.1:1")
    worker = StubWorker()
    quiet = ClosingHeartbeatFilter(worker)
    assert quiet.filter(heartbeat) and quiet.filter(other)
    for status in (Status.closing, Status.closed):
        worker.status = status
        assert not quiet.filter(heartbeat) and quiet.filter(other)
    del worker
    gc.collect()
    assert quiet.filter(heartbeat)  # the worker is gone: the filter keeps everything
