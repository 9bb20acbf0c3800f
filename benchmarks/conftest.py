"""Shared pieces of the epoch benchmarks: the rounds option and the prepared workloads."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fastnn.bench.data import load
from fastnn.bench.workloads import Prepared, prepare, workload
from fastnn.data import DataError

DEFAULT_ROUNDS = 5


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--epoch-rounds",
        type=int,
        default=DEFAULT_ROUNDS,
        help=f"timed epochs per benchmark, after one warm-up epoch (default {DEFAULT_ROUNDS})",
    )


@pytest.fixture(scope="session")
def rounds(request: pytest.FixtureRequest) -> int:
    return request.config.getoption("--epoch-rounds")


@pytest.fixture(scope="session")
def prepared() -> Callable[[str], Prepared]:
    """Workload name -> its Prepared, built once per session so both backends share the data,
    the sample order and the float copy of X."""
    datasets: dict[str, tuple] = {}
    cache: dict[str, Prepared] = {}

    def get(name: str) -> Prepared:
        if name not in cache:
            w = workload(name)
            if w.dataset not in datasets:
                try:
                    datasets[w.dataset] = load(w.dataset)  # the tabular set: generated
                except DataError as exc:
                    pytest.skip(f"{w.dataset} not found (set FASTNN_DATA_DIR): {exc}")
            # One full-batch step per round: pytest-benchmark's rounds are the repeats.
            cache[name] = prepare(w, *datasets[w.dataset], full_batch_iters=1)
        return cache[name]

    return get
