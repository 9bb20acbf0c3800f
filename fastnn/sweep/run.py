"""The sweep's driver on Dask: the trials of each stage submitted to the cluster, each row
appended to the log the moment its trial finishes, failures recorded and passed over, and
successive halving's rungs one after another. `sweep` is the library's entry point."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import uuid
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from fastnn.core import interrupt
from fastnn.files.atomic import check_writable
from fastnn.sweep import lock, results, trial
from fastnn.sweep.settings import SettingError, Settings, check_run, shown
from fastnn.sweep.space import configurations, halving_rungs

INSTALL_ADVICE = "install it with: pip install 'fastnn-mlp[sweep]'"
RETRIES = 2  # a trial that raises is run again this often; a dying worker is Dask's count
CONNECT_TIMEOUT = "20s"  # for a scheduler given by its address
# Threads-per-trial variables for the worker processes: Numba's pool, and NumPy's BLAS (which
# Dask caps at 1 already) so that workers x threads stays within the cores.
THREAD_VARIABLES = (
    "NUMBA_NUM_THREADS",
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)


def require_dask() -> None:
    """ImportError with what to install, if dask.distributed is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"fastnn.sweep runs on Dask (dask.distributed), which is not installed; "
            f"{INSTALL_ADVICE}"
        ) from exc


def load_data(settings: Settings) -> trial.SweepData:
    """The command's data, read once here (and scattered to the workers); SettingError if the
    `data` given cannot be read, or if the dev set and training rows do not fit in it."""
    from fastnn.data import DataError
    from fastnn.train.command import load_data as command_data

    probe = settings.spec(configurations(settings.space, 1, 0)[0], 0, 0, 1, 1)
    args = trial.check_spec(probe)
    try:
        X, y, X_test, y_test = command_data(args)
    except DataError as exc:
        if settings.data is None:  # the dataset's own folders, or its download: not a setting
            raise
        raise SettingError("{0} {path}: {problem}", "data", path=settings.data,
                           problem=str(exc)) from None  # fmt: skip
    settings.check_rows(len(X), settings.data or settings.dataset)
    return trial.SweepData(f"{settings.dataset}:{settings.data}", X, y, X_test, y_test)


def open_client(scheduler: Any = None, workers: int | None = None, threads: int = 1):
    """(client, cluster): a Client of `scheduler` (an address, or a Client as it is), else of a
    LocalCluster of one-thread worker processes, as many as the cores allow at `threads`
    Numba threads per trial (workers x threads <= cores: each trial is one process's only
    work, so nothing waits for a core)."""
    require_dask()
    import dask
    from distributed import Client, LocalCluster

    if scheduler is not None and not isinstance(scheduler, str):
        return scheduler, None
    if scheduler is not None:
        try:
            return Client(scheduler, timeout=CONNECT_TIMEOUT), None
        except ValueError as exc:  # the address itself, e.g. without a port
            raise ValueError(
                f"scheduler address {scheduler!r}: {exc}; give one such as tcp://HOST:8786"
            ) from None
        except OSError as exc:  # nothing answered there in time
            raise OSError(
                f"no Dask scheduler answered at {scheduler} ({exc}); start one there (dask "
                f"scheduler --port PORT) or check the address"
            ) from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    n_workers = workers if workers is not None else max(1, (cores or 1) // threads)
    # No dashboard, so nothing would show what Dask's profiler gathers by sampling every worker
    # thread every 10 ms. Each nanny hands the configuration it was made under to the worker it
    # starts, and restarts.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
            env={name: str(threads) for name in THREAD_VARIABLES},
        )
    client = Client(cluster)
    _prepare_workers(client)
    return client, cluster


def _prepare_workers(client: Any) -> None:
    """Set up every worker of a local cluster, including one restarted after a crash (a plugin
    is run on each worker that joins):
    - It ignores Ctrl-C. The workers share the terminal's process group, so Ctrl-C reached
      them too: each died printing tracebacks, and the trial it ran was lost, while the driver
      stops the sweep in order anyway.
    - Its log leaves out the heartbeat that failed because the worker was closing its own
      connections under it (dask/distributed#7105): a traceback logged as an ERROR after every
      few stopped sweeps, though nothing went wrong."""
    from distributed.diagnostics.plugin import WorkerPlugin

    class SweepWorker(WorkerPlugin):  # sent by value: cloudpickle takes local classes
        name = "fastnn-sweep-worker"

        def setup(self, worker: Any) -> None:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker's main thread runs this
            logging.getLogger("distributed.worker").addFilter(ClosingHeartbeatFilter(worker))

    client.register_plugin(SweepWorker())


class ClosingHeartbeatFilter(logging.Filter):
    """Drops the record of a failed heartbeat while `worker` is closing; keeps every other
    record, and that one while the worker runs (then the scheduler is out of reach)."""

    MESSAGE = "Failed to communicate with scheduler during heartbeat"

    def __init__(self, worker: Any) -> None:
        from distributed.core import Status

        super().__init__()
        self.worker = weakref.ref(worker)  # the filter outlives the worker in the process
        self.closing = (Status.closing, Status.closed)

    def filter(self, record: logging.LogRecord) -> bool:
        worker = self.worker()
        closing = worker is not None and worker.status in self.closing
        return not (closing and record.getMessage().startswith(self.MESSAGE))


class ClusterNeeded(Exception):
    """A Driver without a client came to a trial that its log does not hold."""


def logged_rows(
    settings: Settings, log: results.ResultsLog, data: trial.SweepData, threads: int = 1
) -> list[dict[str, Any]] | None:
    """Every trial's row if the log holds every trial the sweep would run (a finished sweep
    asked again: no cluster to start, no worker process to wait for), else None."""
    try:
        return Driver(settings, None, log, data, threads=threads).run()
    except ClusterNeeded:
        return None


class Driver:
    """Runs the sweep's stages on a client, writing each row to the log as it arrives; with
    no client, only as far as the log holds the stages' trials (see `logged_rows`)."""

    def __init__(
        self,
        settings: Settings,
        client: Any,
        log: results.ResultsLog,
        data: trial.SweepData,
        *,
        threads: int = 1,
        retries: int = RETRIES,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings, self.client, self.log = settings, client, log
        self.threads, self.retries, self.progress = threads, retries, progress
        self.done = log.done()
        self.data, self.data_future = data, None
        self.ran: list[dict[str, Any]] = []  # rows of the trials run by this call

    def run(self) -> list[dict[str, Any]]:
        """Every trial's row, those found in the log included."""
        s = self.settings
        configs = configurations(s.space, s.random, s.random_seed)
        if not s.halving:
            specs = [
                s.spec(c, seed, 0, s.epochs, self.threads) for c in configs for seed in s.seeds
            ]
            return self.stage(specs)
        rows: list[dict[str, Any]] = []
        for rung, (epochs, count) in enumerate(
            halving_rungs(len(configs), s.epochs, s.min_epochs, s.factor)
        ):
            configs = configs[:count]  # ranked best first by the rung before
            trials = [
                [s.spec(c, seed, rung, epochs, self.threads) for seed in s.seeds] for c in configs
            ]
            by_trial = {row["trial"]: row for row in self.stage([sp for t in trials for sp in t])}
            rows += [by_trial[sp["trial"]] for t in trials for sp in t]
            order = sorted(range(len(configs)), key=lambda i: self.score(trials[i], by_trial))
            configs = [configs[i] for i in order]
        return rows

    def score(self, specs: list[dict[str, Any]], by_trial: dict[str, dict]) -> float:
        """A configuration's rank key over its seeds' trials: smaller is better; failed,
        diverged-without-a-score trials leave it out, and one with none ranks last."""
        metric = self.settings.metric
        values = [
            by_trial[sp["trial"]][metric]
            for sp in specs
            if by_trial[sp["trial"]]["status"] in results.DONE
            and by_trial[sp["trial"]].get(metric) is not None
        ]
        if not values:
            return float("inf")
        mean = sum(values) / len(values)
        return -mean if results.METRICS[metric] == "max" else mean

    def stage(self, specs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run the trials of `specs` not already done; all their rows, in `specs` order."""
        from distributed import as_completed

        rows = {sp["trial"]: self.done[sp["trial"]] for sp in specs if sp["trial"] in self.done}
        todo = [sp for sp in specs if sp["trial"] not in rows]
        if not todo:
            return [rows[sp["trial"]] for sp in specs]
        if self.client is None:
            raise ClusterNeeded
        if self.data_future is None:
            # Once to every worker; a worker that joins later gets it from a peer.
            self.data_future = self.client.scatter(self.data, broadcast=True, hash=False)
        pending = {
            self.client.submit(
                trial.run_trial,
                self.data_future,
                sp,
                retries=self.retries,
                pure=False,
                key=f"fastnn-trial-{sp['trial']}-{uuid.uuid4().hex[:8]}",
            ): sp
            for sp in todo
        }
        try:
            for future in as_completed(list(pending)):
                row = self.row(future, pending.pop(future))
                rows[row["trial"]] = row
                # Let go of its result: were its worker to die now, Dask would recompute a
                # trial that is already in the log.
                future.release()
        except KeyboardInterrupt:
            # A second Ctrl-C while the cluster is told to stop quits at once.
            signal.signal(signal.SIGINT, lambda *_: os._exit(interrupt.EXIT_INTERRUPTED))
            for future, sp in list(pending.items()):
                if future.status == "finished":  # done, just not read yet: keep it
                    self.row(future, sp)
            self.client.cancel(list(pending))
            raise
        return [rows[sp["trial"]] for sp in specs]

    def row(self, future: Any, spec: dict[str, Any]) -> dict[str, Any]:
        """The trial's row, appended to the log before anything else happens."""
        base = {k: spec[k] for k in ("trial", "rung", "params", "seed", "epochs")}
        if future.status == "finished":
            row = {**base, **future.result()}
        elif future.status == "error":  # raised every retry, or its workers kept dying
            exc = future.exception()
            row = {**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
        else:
            raise ConnectionError(
                f"trial {spec['trial']} was {future.status}: the scheduler was lost"
            )
        self.log.append(row)
        self.ran.append(row)
        if self.progress is not None:
            self.progress(row)
        return row


def sweep(
    grid: Mapping[str, Sequence[Any] | Mapping[str, Any]],
    *,
    seeds: Sequence[int] = (0,),
    epochs: int | None = None,
    random: int | None = None,
    random_seed: int = 0,
    halving: bool = False,
    min_epochs: int = 1,
    factor: int = 3,
    metric: str = "dev_accuracy",
    preset: str = "default",
    dataset: str = "mnist",
    data: str | os.PathLike | None = None,
    download: bool = True,
    dev_size: int | None = None,
    train_rows: int | None = None,
    backend: str = "numba",
    scheduler: Any = None,
    workers: int | None = None,
    threads: int = 1,
    retries: int = RETRIES,
    results_file: str | os.PathLike | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> pd.DataFrame:
    """Train every configuration of `grid` ({parameter: [values]}, MLPClassifier's names; or
    ranges such as {"distribution": "loguniform", "low": 1e-4, "high": 1e-1} with `random`)
    with each of `seeds` for `epochs` epochs, as python -m fastnn.train would, on a Dask
    cluster: `scheduler` (an address or a Client), else a LocalCluster of `workers` processes
    (default: the cores // `threads`). With `halving`, successive halving over the epochs.
    Returns one row per trial: the parameters, seed, epochs, status, dev and test accuracy,
    seconds and worker. With `results_file`, each finished trial is appended to that JSON-lines
    file at once, and trials already in it are not run again (a resumed sweep); another sweep
    of that file meanwhile is refused (lock.SweepLocked, an OSError).

    Every setting is checked before the data is read and the cluster started (ValueError
    naming it), and the dev and training rows against the data before the cluster starts."""
    require_dask()
    try:
        settings = Settings(
            grid, seeds, epochs, random, random_seed, halving, min_epochs, factor, metric,
            preset, dataset, data, download, dev_size, train_rows, backend,
        )  # fmt: skip
        check_run(scheduler, workers, threads, retries)
        if results_file is not None:
            if not isinstance(results_file, str | os.PathLike):
                raise SettingError("{0} must be None or a file's path; got {value}",
                                   "results_file", value=shown(results_file))  # fmt: skip
            check_writable(results_file, "results_file")
        if progress is not None and not callable(progress):
            raise SettingError("{0} must be None or a function of a row; got {value}",
                               "progress", value=shown(progress))  # fmt: skip
        sweep_data = load_data(settings)
    except SettingError as exc:
        raise exc.respelled(lambda name: "grid" if name == "space" else name) from None
    with contextlib.ExitStack() as held:
        if results_file is not None:
            _warn(held.enter_context(lock.hold(results_file)))
        log = results.ResultsLog(results_file)
        for note in log.notes:
            _warn(note)
        rows = logged_rows(settings, log, sweep_data, threads)
        if rows is None:
            client, cluster = open_client(scheduler, workers, threads)
            try:
                rows = Driver(
                    settings, client, log, sweep_data, threads=threads, retries=retries,
                    progress=progress,
                ).run()  # fmt: skip
            finally:
                if cluster is not None:
                    client.close()
                    cluster.close()
    return results.frame(rows, list(settings.space))


def _warn(note: str | None) -> None:
    if note:
        warnings.warn(note, UserWarning, stacklevel=3)


__all__ = [
    "ClusterNeeded",
    "Driver",
    "Settings",
    "logged_rows",
    "open_client",
    "require_dask",
    "sweep",
]
