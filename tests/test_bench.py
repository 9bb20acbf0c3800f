"""The pure parts of fastnn.bench on tiny synthetic data: FLOP counts, the alternating timer,
medians and ratios, the table, and the JSON and PNG files. No time is asserted."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from fastnn.backends import get_backend
from fastnn.bench import cli, peers, report
from fastnn.bench.timing import speedup, summarize, time_alternating
from fastnn.bench.workloads import (
    FULL_BATCH_HELD_OUT,
    SEED,
    WORKLOAD_NAMES,
    Contender,
    backend_contender,
    flops_per_sample,
    prepare,
    workload,
)
from fastnn.model import init_params

N_IN = 16  # tiny images keep every workload, even hidden 512, down to milliseconds


@pytest.fixture
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(1)
    n = FULL_BATCH_HELD_OUT + 100  # the full-batch workload holds out the first rows
    X = rng.integers(0, 256, (n, N_IN), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    return {"mnist": (X, y), "fashion-mnist": (X[::-1].copy(), y[::-1].copy())}


class NumpyAsNumba:
    """The numpy backend under the name "numba": the two-backend paths without compiling."""

    name = "numba"

    def __init__(self) -> None:
        self._numpy = get_backend("numpy")

    def train_epoch(self, *args: object, **kwargs: object) -> tuple[float, float]:
        return self._numpy.train_epoch(*args, **kwargs)

    def threads(self, n: int | None):
        return self._numpy.threads(n)


def counting_contender(name: str, log: list[str], samples: int = 100) -> Contender:
    return Contender(
        name=name,
        input_form="test",
        setup=lambda: log.append(f"setup {name}"),
        run=lambda _: log.append(f"run {name}"),
        samples_per_run=samples,
    )


def test_flops_per_sample_is_the_documented_formula() -> None:
    # forward 2*(784*128 + 128*10), backward 2*128*10 + 2*128*10 + 2*784*128
    assert flops_per_sample(784, 128, 10) == 4 * 784 * 128 + 6 * 128 * 10 == 409_088


def test_contenders_take_turns_and_warmup_is_not_recorded() -> None:
    log: list[str] = []
    ticks = iter(range(100))
    times = time_alternating(
        [counting_contender("a", log), counting_contender("b", log)],
        repeats=2,
        warmup_rounds=1,
        clock=lambda: float(next(ticks)),
        settle_s=0.0,
    )
    assert log == ["setup a", "run a", "setup b", "run b"] * 3
    assert times == {"a": [1.0, 1.0], "b": [1.0, 1.0]}


def test_median_ratio_and_rates() -> None:
    c = replace(counting_contender("a", []), samples_per_run=1000, epochs_per_run=2)
    r = summarize([3.0, 1.0, 2.0], c, flops_per_sample=1_000_000, peak_gflops=2.0)
    assert r["median_epoch_s"] == 1.0  # the median run (2 s) holds two epochs
    assert r["samples_per_s"] == 500.0
    assert r["gflops"] == pytest.approx(0.5)
    assert r["pct_of_peak"] == pytest.approx(25.0)
    assert speedup(3.0, 1.5) == 2.0
    assert speedup(None, 1.0) is None and speedup(1.0, None) is None


def test_every_round_trains_from_the_same_parameters(data) -> None:
    p = prepare(workload("mnist-h10"), *data["mnist"], rows=50)
    c = backend_contender(get_backend("numpy"), p)
    first, second = c.setup(), c.setup()
    c.run(first)
    c.run(second)
    for a, b in zip(first.arrays(), second.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.W1, p.params0.W1)  # trained a copy ...
    np.testing.assert_array_equal(p.params0.W1, init_params(N_IN, 10, 10, "he", SEED).W1)  # only


def test_inputs_and_full_batch_shape(data) -> None:
    X, y = data["mnist"]
    p = prepare(workload("mnist-full-h10"), X, y, full_batch_iters=3)
    assert len(p.order) == p.batch_size == len(X) - FULL_BATCH_HELD_OUT
    np.testing.assert_array_equal(p.X, X[FULL_BATCH_HELD_OUT:])
    assert p.samples_per_run == 3 * len(p.order)
    numpy_in = backend_contender(get_backend("numpy"), p)
    numba_in = backend_contender(NumpyAsNumba(), p)
    assert p.scaled().dtype == np.float64 and p.scaled().max() <= 1.0
    assert numpy_in.input_form != numba_in.input_form


def test_markdown_table_layout() -> None:
    table = report.markdown_table(("a", "b"), [("x", "1.0"), ("y", "2.0")])
    assert table == "| a | b |\n|:---|---:|\n| x | 1.0 |\n| y | 2.0 |"
    assert report.times(3.14159) == "3.1×" and report.seconds(None) == "n/a"
    assert report.count(1234567.8) == "1,234,568"


def test_missing_peers_are_reported_and_skipped(monkeypatch) -> None:
    def missing(p, threads):
        raise peers.PeerUnavailable("not installed")

    monkeypatch.setattr(peers, "PEERS", {"somelib": missing})
    found, skipped = peers.peer_contenders(None, 2, names=("somelib",))
    assert found == [] and skipped == {"somelib": "not installed"}


@pytest.mark.parametrize("with_numba", [False, True])
def test_whole_bench_on_tiny_data_writes_json_and_png(data, tmp_path, with_numba) -> None:
    args = cli.parse_args(["--quick", "--no-peers", "--no-startup", "--rows", "40"])
    backends = [get_backend("numpy")] + ([NumpyAsNumba()] if with_numba else [])
    missing = None if with_numba else "not available in this test"
    result = cli.collect(args, data, backends, missing, lambda _: None, matmul_size=32)
    report.write_json(tmp_path / "b.json", result)
    report.write_png(tmp_path / "b.png", result)
    saved = json.loads((tmp_path / "b.json").read_text())
    assert [w["name"] for w in saved["workloads"]] == list(WORKLOAD_NAMES)
    assert saved["markdown"] == result["markdown"]
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["inputs"].keys() == ({"numpy", "numba"} if with_numba else {"numpy"})
    ratios = [w["numpy_over_numba"] for w in saved["workloads"]]
    rows = [line for line in result["markdown"].splitlines() if line.startswith("| MNIST")]
    assert len(rows) == 4  # one per MNIST workload
    for cores, warned in ((1.5, True), (0.0, False)):
        for entry in result["workloads"]:
            entry["others_cores"] = cores
        assert ("Busy machine" in report.markdown(result)) == warned
    if with_numba:
        assert all(r > 0 for r in ratios) and "×" in rows[0]
    else:
        assert ratios == [None] * len(WORKLOAD_NAMES) and "n/a" in rows[0]


def test_startup_line_says_what_was_measured() -> None:
    line = report.startup_line(
        dict(
            command="python -m fastnn.train --epochs 1",
            first_wall_s=9.0,
            second_wall_s=3.5,
            second_epoch_s=0.5,
            data_load_s=1.25,
            second_beyond_data_s=2.25,
            target_s=3.0,
        )
    )
    assert "3.50 s wall" in line and "1.25 s" in line and "2.25 s beyond" in line
    assert report.startup_line(dict(skipped="no numba")) == "Startup not measured: no numba."
