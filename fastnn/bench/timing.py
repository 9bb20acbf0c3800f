"""How things are timed: contenders alternated round by round, medians, ratios, and the
machine's dense matmul rate that the achieved FLOP rates are measured against."""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from fastnn.bench.workloads import Contender

MATMUL_SIZE = 2048
MATMUL_TRIES = 5
# OpenBLAS's worker threads spin for about 0.1 s after numpy's last matmul before they sleep,
# holding a core the next contender needs. Measured here (MNIST, hidden 10, 2 threads): numba's
# epoch 0.115 s alone, 0.176 s when it starts right after numpy's, 0.149 s after a 0.05 s
# pause, 0.115 s after 0.1 s. So every timed run starts after SETTLE_S of quiet.
SETTLE_S = 0.25


def settle() -> None:
    """Wait SETTLE_S, read at each call: the tests set it to 0, where nothing is timed for real."""
    time.sleep(SETTLE_S)


def time_alternating(
    contenders: Sequence[Contender],
    repeats: int,
    warmup_rounds: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[float]]:
    """Seconds of each contender's timed run, `repeats` per contender.

    Contenders take turns within every round (a, b, a, b, ...), so a noisy neighbour on a
    shared machine slows all of them alike rather than one. The warm-up rounds run everything
    once untimed: JIT compilation, caches and page faults stay out of the statistics. Each run
    starts SETTLE_S after the previous one ended, so that no contender pays for the threads
    its predecessor left spinning.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1; got {repeats}")
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for round_ in range(warmup_rounds + repeats):
        for c in contenders:
            state = c.setup()
            settle()
            # As timeit does: a full collection of the whole heap (large once torch or jax is
            # loaded) would land on whichever run happens to cross the threshold.
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                start = clock()
                c.run(state)
                elapsed = clock() - start
            finally:
                if gc_was_enabled:
                    gc.enable()
            if round_ >= warmup_rounds:
                times[c.name].append(elapsed)
        if on_round is not None:
            on_round(round_)
    return times


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    """The median seconds of `repeats` calls of run, after one untimed call (which compiles
    and warms the caches): for work timed alone, with nothing to take turns with."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speedup(reference_s: float | None, candidate_s: float | None) -> float | None:
    """How many times faster the candidate is than the reference (None if either is missing)."""
    if reference_s is None or candidate_s is None or candidate_s <= 0:
        return None
    return reference_s / candidate_s


def summarize(
    times_s: Sequence[float],
    contender: Contender,
    flops_per_sample: float | None,
    peak_gflops: float,
) -> dict:
    """The medians and rates of one contender's runs, JSON-ready.

    GFLOP/s is the given FLOPs of every sample over the time taken (the callers' dense ones
    are dense-equivalent, even though a kernel may skip zero pixels and do less work); None
    where no count is given.
    """
    median_run = statistics.median(times_s)
    samples_per_s = contender.samples_per_run / median_run
    gflops = None if flops_per_sample is None else samples_per_s * flops_per_sample / 1e9
    return dict(
        input=contender.input_form,
        run_seconds=list(times_s),
        epochs_per_run=contender.epochs_per_run,
        samples_per_run=contender.samples_per_run,
        median_epoch_s=median_run / contender.epochs_per_run,
        samples_per_s=samples_per_s,
        gflops=gflops,
        pct_of_peak=None if gflops is None else 100 * gflops / peak_gflops,
    )


def measure(
    contenders: Sequence[Contender],
    repeats: int,
    flops_per_sample: float | None,
    peak_gflops: float,
) -> dict[str, dict]:
    """Time the contenders taking turns and summarize each one's runs, by contender name."""
    runs = time_alternating(contenders, repeats)
    return {c.name: summarize(runs[c.name], c, flops_per_sample, peak_gflops) for c in contenders}


def matmul_gflops(dtype: str, n: int = MATMUL_SIZE, tries: int = MATMUL_TRIES) -> float:
    """The best rate of numpy's matmul of two n x n matrices: the machine's practical ceiling
    for dense arithmetic in that dtype with the current BLAS threads."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype)
    np.matmul(a, b, out=out)  # first call pays for thread start-up and page faults
    best = float("inf")
    for _ in range(tries):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


@contextlib.contextmanager
def blas_threads(n: int) -> Iterator[bool]:
    """Limit numpy's BLAS to n threads if threadpoolctl is installed; yields whether it was.

    threadpoolctl is optional: without it BLAS keeps its own count (all cores, unless
    OPENBLAS_NUM_THREADS or similar was set before start).
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield False
        return
    with threadpool_limits(limits=n, user_api="blas"):
        yield True


def _machine_busy_s() -> float | None:
    """CPU seconds all cores have spent busy since boot, including time the hypervisor stole
    for other guests; None where /proc/stat is missing (not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


@contextlib.contextmanager
def others_cpu() -> Iterator[dict]:
    """On exit the yielded dict holds "cores": how many cores other processes (and other
    guests of the host) kept busy on average during the block, or None if unknown.

    The load average cannot say this, as it counts this process's own threads too; on a
    shared machine it tells which rows of the table were measured under contention.
    """
    found: dict = {}
    busy, own, start = _machine_busy_s(), _own_cpu_s(), time.perf_counter()
    yield found
    busy_after = _machine_busy_s()
    elapsed = time.perf_counter() - start
    if busy is None or busy_after is None or elapsed <= 0:
        found["cores"] = None
    else:
        others = (busy_after - busy) - (_own_cpu_s() - own)
        found["cores"] = max(0.0, others) / elapsed
