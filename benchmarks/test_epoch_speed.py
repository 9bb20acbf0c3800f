"""Epoch time of each backend on each workload of fastnn.bench, with pytest-benchmark.

Not part of the normal test run (pyproject's testpaths is tests/). On the real data:

    FASTNN_DATA_DIR=/path/to/data python -m pytest benchmarks --benchmark-autosave
    pytest-benchmark compare 0001 0002          # two saved runs, from .benchmarks/

One untimed warm-up epoch keeps JIT compilation out of the statistics; `--epoch-rounds N`
sets the timed epochs (default 5). Benchmarks are grouped by workload, so numpy and numba
sit side by side; `python -m fastnn.bench` alternates them in one process instead, which is
fairer on a busy machine.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fastnn.backends import BACKENDS, get_backend
from fastnn.bench.timing import others_cpu
from fastnn.bench.workloads import WORKLOAD_NAMES, Prepared, backend_contender


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("name", WORKLOAD_NAMES)
def test_epoch(
    benchmark,
    prepared: Callable[[str], Prepared],
    rounds: int,
    name: str,
    backend_name: str,
) -> None:
    try:
        backend = get_backend(backend_name)
    except ValueError as exc:
        pytest.skip(str(exc))
    p = prepared(name)
    contender = backend_contender(backend, p)
    benchmark.group = name
    benchmark.extra_info.update(
        input=contender.input_form,
        rows=len(p.order),
        batch_size=p.batch_size,
        dtype=p.workload.dtype,
        hidden=list(p.workload.hidden),
        solver=p.workload.solver,
        learning_rate=p.workload.learning_rate,
        flops_per_sample=p.counted_flops_per_sample,  # None on a CSR matrix (see Prepared)
    )
    # Training updates the parameters and the optimizer's state in place: setup hands every
    # round fresh copies of both.
    with others_cpu() as others:  # other processes' load, to tell contended runs apart
        benchmark.pedantic(
            contender.run,
            setup=lambda: ((contender.setup(),), {}),
            rounds=rounds,
            warmup_rounds=1,
        )
    benchmark.extra_info["others_cores"] = others["cores"]
    if benchmark.stats is not None:  # None under --benchmark-disable
        median = benchmark.stats.stats.median
        benchmark.extra_info["samples_per_s"] = contender.samples_per_run / median
        if p.counted_flops_per_sample is not None:
            benchmark.extra_info["dense_gflops"] = (
                contender.samples_per_run * p.counted_flops_per_sample / median / 1e9
            )
