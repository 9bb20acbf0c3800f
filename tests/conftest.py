"""Fixtures shared across the test suite."""

import os

# One BLAS thread in the tests' processes, and in the commands they start, unless the variable
# is set: OpenBLAS's threads spin for a while after each product, taking the core from the
# run's other processes (a whole-suite run keeps both busy). Set here, before NumPy loads
# OpenBLAS, which reads it once. The tests time nothing, and compare NumPy's results within
# tolerances.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import compileall
import importlib.util
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import fastnn
from fastnn.data import DATASET_NAMES, DataError, find_dataset_files

# The tests that need the real datasets find them where the library does with no folder given:
# under FASTNN_DATA_DIR, else in its user cache. They take the fixture real_data_dir, or carry
# the marker real_data (@pytest.mark.real_data("mnist", "fashion-mnist") for both sets), and
# are skipped without them, with one note at the end of the run on how to get them.
NO_DATA = "no real data"  # how the reason of each of those skips starts
GET_DATA = (
    "set FASTNN_DATA_DIR to a folder holding mnist/ and fashion-mnist/, or download them into "
    "fastnn's cache once: python -m fastnn.train --backend numpy --epochs 1 (MNIST), and the "
    "same with --dataset fashion-mnist"
)


def _data_root(name: str) -> Path | None:
    """The folder holding <name>/ where fastnn finds the dataset `name` on its own, or None."""
    try:
        found = find_dataset_files(name)
    except DataError:  # FASTNN_DATA_DIR is not a folder
        return None
    if found is None:
        return None
    folder = next(iter(found.values())).parent
    # Absolute: the tests' commands run in folders of their own.
    return folder.parent.resolve() if folder.name == name else None  # not Debian's copy


# Looked up once, at import, before any test's monkeypatch can move FASTNN_DATA_DIR or the cache.
_DATA_ROOTS = {name: _data_root(name) for name in DATASET_NAMES}


def _real_data(*names: str) -> Path:
    """The one folder holding the real datasets `names` as subfolders; skips the test without."""
    names = tuple(dict.fromkeys(names))
    roots = {_DATA_ROOTS[name] for name in names}
    if None in roots or len(roots) > 1:
        pytest.skip(f"{NO_DATA} ({' and '.join(names)}): see the note at the end of the run")
    return roots.pop()


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The folder holding the real mnist/ (and fashion-mnist/, for the tests marked so)."""
    return _real_data("mnist")


def pytest_configure(config: pytest.Config) -> None:
    # A run started as a background job of a script (`python -m pytest &` in a non-interactive
    # shell) inherits SIGINT ignored, and so would the commands it starts; the tests of Ctrl-C
    # need Python's own handling of it, which a terminal's run has.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    config.addinivalue_line(
        "markers",
        "real_data(*names): needs the real datasets (default: mnist), as fastnn finds them; "
        "skipped without",
    )


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures are set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    marker = item.get_closest_marker("real_data")
    if marker is not None:
        _real_data(*(marker.args or ("mnist",)))


def pytest_terminal_summary(terminalreporter) -> None:
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and NO_DATA in report.longrepr[2]
    ]
    if skipped:
        missing = " or ".join(name for name, root in _DATA_ROOTS.items() if root is None)
        terminalreporter.write_sep("-", "real data")
        terminalreporter.write_line(
            f"{len(skipped)} tests skipped: fastnn finds no {missing or 'one folder of both'} "
            f"where it looks (FASTNN_DATA_DIR, then its cache). To run them, {GET_DATA}."
        )


@pytest.fixture(autouse=True)
def _no_settling_in_the_benchmarks_tests(request: pytest.FixtureRequest) -> None:
    """The benchmarks wait SETTLE_S before each timed run, for the threads the last one left
    spinning; their tests assert no time, and those waits were most of their wall time."""
    if request.path.name.startswith("test_bench"):
        from fastnn.bench import timing

        request.getfixturevalue("monkeypatch").setattr(timing, "SETTLE_S", 0.0)


@pytest.fixture(params=["sparse", "dense"])
def first_layer(request) -> str:
    """The test runs once with each path of the numba backend's first layer forced: over each
    sample's list of non-zero features, and as dense products over all of them."""
    from fastnn.backends import get_backend

    with get_backend("numba").first_layer(request.param):
        yield request.param


# Background work of a whole-suite run (WHOLE_SUITE or more tests collected), on the core the
# tests mostly leave idle: lanes, each a thread running its jobs one after another.
# 1. Compiling the Numba kernels for one (X dtype, parameters dtype) pair takes 25-35 s, most of
#    the suite's time. WARM_UP compiles the two pairs of a parameters' dtype into the package's
#    cache, uint8 X first, a lane each, both at once, while the test files that never compile
#    the kernels (NUMBA_FREE, about a minute, a third of it waiting on test servers) run first:
#    the others wait for it (`_compiled_by_the_warm_up`), then load the kernels.
# 2. Then, in the first lane, COLD_COMPILE_TEST, which compiles the kernels from nothing in a
#    process of its own (30 s of one core), in a pytest of its own; in the run itself, moved
#    to the end, it waits for that run and reports it. It compiles them for a generic x86-64
#    CPU (NUMBA_CPU_NAME=generic: SSE2, none of AVX2's or AVX-512's instructions), into the
#    cache of its read-only copy of the package, in COLD_VARIABLE's folder, for:
# 3. the portable path: the equivalence and determinism suites again in a pytest of their own,
#    on that copy with those kernels, as a machine without AVX2 would run them (loaded from that
#    cache, not compiled again: 11 CPU-s instead of 45). test_portable.py (moved to the end of
#    the run) waits for it and reports. For one (inputs' dtype, parameters' dtype) pair only,
#    PORTABLE_PAIR (the tests of others are left out by PORTABLE_SELECTION). The code the
#    generic target changes, the vectors and the register tiles (kernels.config), is the same
#    code in every pair; float32 has the most lanes a vector, and uint8 inputs take the
#    pixels' table (float inputs differ from them only in that table: kernels.sparse). The
#    run's last test checks that nothing else was compiled, so that a test added with another
#    pair cannot double the run's time unnoticed, as the sparse tests once did.
# 4. Last in each lane, the test files of its set in BESIDE_FILES, taken out of the run itself
#    to run in a pytest of their own; BESIDE_TEST reports them. They are the files that use
#    the run's cores least or want nothing of its state: the benchmarks' tests (nearly all
#    their time is compiling the bench's own kernels, which nothing else uses) and the
#    examples of the README and docs/, the tests of Ctrl-C and of sweeps (nearly all their time
#    is commands in processes of their own, loading the data and the cached kernels), and the
#    reports' tests, moved here only to balance: without them the run itself ended last, well
#    after the lanes, alone on one core. The groups balance the lanes, and the lanes the run
#    itself: the first has the portable run and the cold compile before it. A third lane,
#    from the start, runs test_data_load.py, whose tests mostly wait for the deadlines of their
#    test servers: in the run itself it held the other tests back by 40 s for 11 s of CPU.
WHOLE_SUITE = 500
WARM_UP = """
import numpy as np
from fastnn import MLPClassifier
pixels = np.random.default_rng(0).integers(0, 256, (64, 784)).astype(np.uint8)
for X in (pixels, (pixels / 255.0).astype({dtype!r})):
    model = MLPClassifier(
        hidden_layer_sizes=(4,), max_iter=1, learning_rate_init=0.01, dtype={dtype!r},
        augment="shift" if X.dtype != np.float64 else None,  # no test augments float64 X
    )
    model.fit(X, np.arange(64) % 3).predict(X)
"""
WARM_UP_DTYPES = ("float32", "float64")  # a lane each
# Test files that never call the compiled kernels, each timed with an empty Numba cache.
NUMBA_FREE = {
    "test_backends.py", "test_data_idx.py", "test_data_kaggle.py", "test_data_load.py",
    "test_data_preprocess.py", "test_images.py", "test_optim.py", "test_outputs.py",
    "test_persist_fuzz.py", "test_reference.py", "test_report.py", "test_serve.py",
    "test_serve_limits.py", "test_sigterm.py", "test_sweep_folder.py", "test_sweep_settings.py",
}  # fmt: skip
PORTABLE_TESTS = [
    "tests/test_numba_equivalence.py",
    "tests/test_numba_optimizers.py",
    "tests/test_numba_backend.py::test_same_bits_with_one_and_two_threads",
    "tests/test_numba_backend.py::test_same_bits_run_after_run",
    "tests/test_dropout.py::test_same_bits_with_one_and_two_threads_and_run_after_run",
    "tests/test_portable.py::test_the_portable_run_compiled_one_pair",  # last
]
PORTABLE_PAIR = ("uint8", "float32")
# Float inputs (a sparse matrix travels as floats), float64 parameters.
PORTABLE_SELECTION = ["-k", "not float- and not float64 and not test_sparse_"]
PORTABLE_TEST = "test_portable.py"
COLD_COMPILE_TEST = (
    "tests/test_interrupt.py::"
    "test_first_run_compiles_into_the_user_cache_says_so_and_ctrl_c_waits_for_it"
)
# Where the cold compile copies the package read-only (COLD_PACKAGE/fastnn) and where Numba
# caches the copy's kernels instead (COLD_USER_CACHE, as XDG_CACHE_HOME): the test's own
# tmp_path, unless COLD_VARIABLE names a folder, as the background run does for the portable
# run to load those kernels.
COLD_VARIABLE = "FASTNN_TEST_COLD_DIR"
COLD_PACKAGE, COLD_USER_CACHE = "pkg", "user-cache"
# In each lane's run, its files in this order: those that mostly wait (for Dask clusters to start
# and stop, for the moments of Ctrl-C) first, so that the run ends on work that keeps both cores
# busy.
BESIDE_FILES = (
    ("test_interrupt.py", "test_sweep.py", "test_sweep_cluster.py", "test_docs.py"),
    ("test_readme.py", "test_bench.py", "test_bench_layers.py", "test_bench_profile.py",
     "test_bench_predict.py", "test_report.py"),
    ("test_data_load.py",),
)  # fmt: skip
BESIDE_TEST = "test_beside.py"
BESIDE_VARIABLE = "FASTNN_TEST_BESIDE"  # "1" in their run: its teams have one member, as here
WAIT_S = 900  # for a background job, from when the test asks: they take 30-70 s on their own


Job = tuple[str, list[str], dict[str, str]]  # name, command, environment variables


class Background:
    """Lanes of commands: the commands of a lane run one after another in a thread of their own,
    the lanes at once; each command's output is kept."""

    def __init__(self, lanes: list[list[Job]], folder: Path) -> None:
        self.results: dict[str, tuple[int, str]] = {}  # name: (exit status, output)
        self.names = {name for jobs in lanes for name, _, _ in jobs}
        self._folder = folder
        # As it is now, before the tests: some take variables out for a while (monkeypatch).
        self._environ = dict(os.environ)
        self._processes: list[subprocess.Popen | None] = [None] * len(lanes)
        self._stopped = False
        self._threads = [
            threading.Thread(
                target=self._run, args=(lane, jobs), name=f"fastnn-tests-background-{lane}",
                daemon=True,
            )
            for lane, jobs in enumerate(lanes)
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def _run(self, lane: int, jobs: list[Job]) -> None:
        for name, command, env in jobs:
            if self._stopped:
                return
            log = self._folder / f"{name}.log"
            # The job opens its log itself: a file held open here for the job's length would
            # change this process's count of open descriptors under the tests that check it.
            redirected = ["sh", "-c", 'exec "$@" > "$0" 2>&1', str(log), *command]
            process = subprocess.Popen(
                redirected, env={**self._environ, **env}, cwd=Path(__file__).resolve().parent.parent
            )
            self._processes[lane] = process
            status = process.wait()
            self.results[name] = (status, log.read_text(errors="replace"))

    def wait(self, name: str) -> None:
        """Until job `name` has ended (or no lane runs any more)."""
        deadline = time.monotonic() + WAIT_S
        while name not in self.results and any(t.is_alive() for t in self._threads):
            assert time.monotonic() < deadline, f"the background job {name} took over {WAIT_S} s"
            time.sleep(0.2)

    def check(self, name: str) -> None:
        """Fail unless job `name`, a pytest run, has ended and passed."""
        self.wait(name)
        assert name in self.results, f"the background job {name} did not run"
        status, output = self.results[name]
        tail = "\n".join(output.strip().splitlines()[-30:])
        assert status == 0, f"the background job {name} failed:\n{tail}"
        assert " passed" in tail and " failed" not in tail, tail

    def stop(self) -> None:
        self._stopped = True
        for process in self._processes:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
        for thread in self._threads:
            thread.join(60)
        shutil.rmtree(self._folder, ignore_errors=True)  # the logs and the generic code cache


_background: Background | None = None


# Per lane, the node ids of the tests taken out of the run to run beside it.
_beside: list[list[str]] = [[] for _ in BESIDE_FILES]


def _reports_a_job(item: pytest.Item) -> bool:
    return item.path.name in (PORTABLE_TEST, BESIDE_TEST) or item.nodeid == COLD_COMPILE_TEST


def _runs_background(items: list) -> bool:
    return (
        len(items) >= WHOLE_SUITE
        and os.environ.get("FASTNN_TEST_BACKGROUND") != "0"
        and importlib.util.find_spec("numba") is not None
    )


def pytest_collection_modifyitems(session: pytest.Session, config, items: list) -> None:
    """NUMBA_FREE first, while the background compiles; the tests that report background jobs
    last: by then the jobs have had the whole suite's time. In a whole-suite run that reports
    them, BESIDE_FILES' tests are taken out, to run in the background."""
    if _runs_background(items) and any(item.path.name == BESIDE_TEST for item in items):
        files = set().union(*BESIDE_FILES)
        # The cold compile stays: it reports its own job.
        beside = [item for item in items if item.path.name in files and not _reports_a_job(item)]
        for lane, names in enumerate(BESIDE_FILES):
            mine = [item for item in beside if item.path.name in names]
            mine.sort(key=lambda item: names.index(item.path.name))  # stable: in file order
            _beside[lane] = [item.nodeid for item in mine]
        items[:] = [item for item in items if item not in beside]
        config.hook.pytest_deselected(items=beside)
    items.sort(key=lambda item: (_reports_a_job(item), item.path.name not in NUMBA_FREE))


def pytest_collection_finish(session: pytest.Session) -> None:
    global _background
    if not _runs_background(session.items):
        return
    # Most of the suite's 140 processes import the package; where Python writes no bytecode
    # (PYTHONDONTWRITEBYTECODE, set on this project's machines), each compiled every module of
    # it again, 0.1 s of CPU a process. Written once here, the bytecode is read by them all.
    compileall.compile_dir(Path(fastnn.__file__).parent, quiet=1)
    folder = Path(tempfile.mkdtemp(prefix="fastnn-tests-"))
    quiet = {"FASTNN_TEST_BACKGROUND": "0"}
    generic = {**quiet, "NUMBA_CPU_NAME": "generic"}
    portable = {**generic, "NUMBA_CACHE_DIR": str(folder / "cache")}
    pytest_command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    lanes: list[list[Job]] = [
        [(f"warm-up-{dtype}", [sys.executable, "-c", WARM_UP.format(dtype=dtype)], quiet)]
        for dtype in WARM_UP_DTYPES
    ] + [[] for _ in BESIDE_FILES[len(WARM_UP_DTYPES) :]]
    if any(item.nodeid == COLD_COMPILE_TEST for item in session.items):
        # For the generic CPU: the portable run then loads what it compiled, from the copy of
        # the package it made (PYTHONSAFEPATH: not the checkout, which `-m` would put first).
        cold = folder / "cold"
        cold_env = {**generic, COLD_VARIABLE: str(cold)}
        lanes[0].append(("cold-compile", [*pytest_command, COLD_COMPILE_TEST], cold_env))
        portable = {
            **generic, "PYTHONPATH": str(cold / COLD_PACKAGE), "PYTHONSAFEPATH": "1",
            "NUMBA_CACHE_DIR": "", "XDG_CACHE_HOME": str(cold / COLD_USER_CACHE),
        }  # fmt: skip
    if any(item.path.name == PORTABLE_TEST for item in session.items):
        lanes[0].append(
            ("portable", [*pytest_command, *PORTABLE_TESTS, *PORTABLE_SELECTION], portable)
        )
    for lane, nodeids in enumerate(_beside):
        if nodeids:
            beside = {**quiet, BESIDE_VARIABLE: "1"}
            lanes[lane].append((f"beside-{lane}", [*pytest_command, *nodeids], beside))
    _background = Background(lanes, folder)


@pytest.fixture(scope="session")
def background() -> Background | None:
    """The whole-suite run's background jobs, or None in a run of a few tests."""
    return _background


@pytest.fixture(autouse=True)
def _compiled_by_the_warm_up(request: pytest.FixtureRequest) -> None:
    """In a whole-suite run, the first test outside NUMBA_FREE waits for the warm-up jobs
    instead of compiling a pair beside them: a pair compiled twice at once costs both cores
    (test_bench_dense's first float32 fit took 84 s so, in the run that showed it)."""
    if _background is None or request.path.name in NUMBA_FREE:
        return
    for dtype in WARM_UP_DTYPES:
        _background.wait(f"warm-up-{dtype}")


@pytest.fixture(scope="session", autouse=True)
def _one_member_teams_beside_the_background() -> Iterator[None]:
    """In a whole-suite run, the kernels' teams in the run itself, and in the run of the tests
    beside it, have one member unless a test asks for more (`backend.threads(n)`). The lanes
    keep both cores busy, so a team of two spends most of each barrier waiting for the member
    that is off its core:
    test_numba_equivalence.py took 43 s (31 CPU seconds) with teams of two on a loaded machine,
    15 s (14) with one. The results do not depend on the team's size: the tests that run 1 and
    2 threads compare their bits, and the portable run (a lane's own pytest) runs the
    equivalence and determinism suites with the default team."""
    if _background is None and os.environ.get(BESIDE_VARIABLE) != "1":
        yield
        return
    from fastnn.backends.numba_team import team_threads

    with team_threads(1):
        yield


def one_member_teams() -> dict[str, str]:
    """This process's environment for a command that a test runs only for what it prints and
    writes (the examples of the README and docs/), its kernels' teams of one thread: what they
    give does not depend on the team's size, and in a whole-suite run the other core is busy,
    where a team of two took twice the time (a README example: 49 s against 24 s beside two
    busy processes) and 45% more CPU time, its members waiting for each other."""
    return {**os.environ, "NUMBA_NUM_THREADS": "1"}


def pytest_sessionfinish(session: pytest.Session) -> None:
    if _background is not None:
        _background.stop()
