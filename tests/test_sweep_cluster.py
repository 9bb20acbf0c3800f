"""A sweep through --scheduler on a real multi-process Dask cluster on 127.0.0.1 (a `dask
scheduler` and two `dask worker` processes): one worker is killed in the middle of a trial, and
the sweep still completes with every trial recorded once."""

import os
import signal
import sys
import time

import pytest
from sweep_helpers import (
    TINY,
    free_port,
    require_distributed,
    rows,
    start,
    stop,
    sweep_command,
    wait_for_rows,
)

DASK = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
WORKER = [sys.executable, "-m", "distributed.cli.dask_worker"]


@pytest.fixture
def cluster(tmp_path, real_data_dir):
    """(scheduler address, {worker address: process}); every process killed at the end."""
    require_distributed()
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [
        start(
            [*DASK, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            tmp_path / "scheduler.log",
        )
    ]
    workers = {}
    try:
        for n in range(2):
            worker_port = free_port()
            # No nanny: killing the worker process is the worker's death, not a restart.
            # Each trial first waits a second, so that a worker can be killed in the middle.
            process = start(
                [
                    *WORKER,
                    address,
                    "--host",
                    "127.0.0.1",
                    "--worker-port",
                    str(worker_port),
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--no-dashboard",
                    "--death-timeout",
                    "60",
                ],
                tmp_path / f"worker{n}.log",
                FASTNN_SWEEP_TRIAL_DELAY="1",
                FASTNN_DATA_DIR=str(real_data_dir),
            )
            processes.append(process)
            workers[f"tcp://127.0.0.1:{worker_port}"] = process
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        for process in processes:
            stop(process)


def test_a_worker_killed_mid_sweep_costs_only_its_trial(cluster, tmp_path, real_data_dir):
    address, workers = cluster
    out = tmp_path / "sweep"
    command = sweep_command(
        "--scheduler",
        address,
        "--grid",
        "hidden_layer_sizes=8,16,12",
        "--seeds",
        "0",
        "1",
        "--out",
        str(out),
        *TINY,
    )
    sweep = start(command, tmp_path / "sweep.log", FASTNN_DATA_DIR=str(real_data_dir))
    try:
        first = wait_for_rows(out / "results.jsonl", 1, sweep, timeout=60)[0]
        # That worker has just taken its next trial, and waits a second before training it.
        victim = workers[first["worker"]]
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        assert sweep.wait(timeout=90) == 0, (tmp_path / "sweep.log").read_text()
    finally:
        stop(sweep)
    everything = rows(out / "results.jsonl")
    ids = [row["trial"] for row in everything]
    assert len(ids) == 6 and len(set(ids)) == 6, ids  # every trial, each once
    assert {row["status"] for row in everything} == {"finished"}
    survivor = next(a for a, p in workers.items() if p is not victim)
    after = [row for row in everything if row["worker"] == survivor]
    assert len(after) >= 6 - sum(row["worker"] == first["worker"] for row in everything)
    assert os.path.getmtime(out / "results.jsonl") > killed_at
    said = (tmp_path / "sweep.log").read_text()
    assert "best: python -m fastnn.train" in said and f"on {address}" in said
