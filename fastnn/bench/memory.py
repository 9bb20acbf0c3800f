"""The peak memory of fastnn's training on a workload, in a child process of its own: neither the
peers, nor the workloads timed before, nor the generation of the data count in it.

The parent writes the prepared rows and labels to a temporary folder and starts
`python -m fastnn.bench.memory FOLDER WORKLOAD BACKEND THREADS`. The child loads them, prepares
the workload as the parent did, trains a few rows of a few features through a small network of
the same types (which compiles or loads the kernels: compilation takes far more memory than
training), and resets the high-water mark of its resident memory (Linux: 5 written to
/proc/self/clear_refs). Its resident memory then, with fastnn, the backend and the matrix
loaded, is the baseline. It trains one epoch from fresh parameters and optimizer state, as a
timed run does, and prints as JSON its resident high-water mark over that baseline. Resident
memory counts what Numba's kernels allocate, which tracemalloc does not see.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from fastnn.bench.workloads import Prepared, backend_contender, prepare, workload
from fastnn.core.sparse import is_sparse

MB = 2**20
HEADROOM_MB = 200  # the target's allowance over the matrix and the model (issue 30)
TIMEOUT_S = 900  # a first run compiles the kernels (about half a minute each dtype); far above it
WARM_ROWS, WARM_FEATURES = 256, 64  # the compiling run: the epoch's types, a few of its rows
CLEAR_REFS = Path("/proc/self/clear_refs")
STATUS = Path("/proc/self/status")


def _status_bytes(field: str) -> int:
    """A "kB" field of /proc/self/status (VmRSS, VmHWM) in bytes."""
    for line in STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise OSError(f"no {field} in {STATUS}")


def matrix_bytes(X: object) -> int:
    """The bytes of X's own arrays: a CSR matrix's values, column indices and row pointers."""
    if is_sparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return np.asarray(X).nbytes


def train_and_measure(p: Prepared, backend_name: str, threads: int) -> dict:
    """In this process: compile, reset the high-water mark, train one epoch; JSON-ready."""
    from fastnn.backends import get_backend

    backend = get_backend(backend_name)
    X = p.X
    with backend.threads(threads):
        small = prepare(p.workload, X[:WARM_ROWS, :WARM_FEATURES], p.y[:WARM_ROWS])
        warm = backend_contender(backend, small)
        warm.run(warm.setup())
        del small, warm
        contender = backend_contender(backend, p)
        CLEAR_REFS.write_text("5")  # the high-water mark is now the resident memory
        baseline = _status_bytes("VmRSS")
        training = contender.setup()
        contender.run(training)
        peak = _status_bytes("VmHWM")
    model = sum(a.nbytes for a in training.params.arrays())
    model += sum(a.nbytes for a in (*training.state.first, *training.state.second))
    return dict(
        backend=backend_name, threads=threads, rows=len(p.order), baseline_mb=baseline / MB,
        peak_mb=peak / MB, training_mb=(peak - baseline) / MB, matrix_mb=matrix_bytes(X) / MB,
        model_mb=model / MB,
    )  # fmt: skip


# The child's program: `main` of this module. Not `python -m`: that is for the tools, which
# `python -m fastnn` lists, and this is no tool.
CHILD = "import sys; from fastnn.bench.memory import main; sys.exit(main(sys.argv[1:]))"


def measure_memory(p: Prepared, backend_name: str, threads: int) -> dict:
    """The peak memory of `backend_name`'s training on p, in a child process: JSON-ready, with
    the target (the matrix's bytes plus the model's plus HEADROOM_MB) and whether it was met;
    or why it could not be measured."""
    if not CLEAR_REFS.exists():
        return dict(skipped="needs Linux's /proc/self/clear_refs to reset the high-water mark")
    with tempfile.TemporaryDirectory(prefix="fastnn-bench-memory-") as folder:
        save(Path(folder), p)
        command = [sys.executable, "-c", CHILD, folder, p.workload.name, backend_name,
                   str(threads)]  # fmt: skip
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return dict(skipped=f"the child process took more than {TIMEOUT_S} s")
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return dict(skipped=f"the child process failed: {lines[-1]}")
    measured = json.loads(done.stdout)
    used = measured["matrix_mb"] + measured["training_mb"]
    target = measured["matrix_mb"] + measured["model_mb"] + HEADROOM_MB
    measured.update(used_mb=used, target_mb=target, within_target=used < target)
    return measured


def save(folder: Path, p: Prepared) -> None:
    """p's rows and labels, as the child loads them."""
    if is_sparse(p.X):
        from scipy.sparse import save_npz

        save_npz(folder / "X.npz", p.X, compressed=False)
    else:
        np.save(folder / "X.npy", p.X)
    np.save(folder / "y.npy", p.y)


def load_saved(folder: Path) -> tuple[object, np.ndarray]:
    if (folder / "X.npz").exists():
        from scipy.sparse import load_npz

        X = load_npz(folder / "X.npz")
    else:
        X = np.load(folder / "X.npy")
    return X, np.load(folder / "y.npy")


def main(argv: list[str]) -> int:
    folder, name, backend_name, threads = argv
    w = workload(name)
    X, y = load_saved(Path(folder))
    # The rows are the parent's prepared ones: prepare again gives the same order and weights.
    y = y.ravel() if w.output == "identity" else y
    p = prepare(w, X, y)
    print(json.dumps(train_and_measure(p, backend_name, int(threads))))
    return 0
