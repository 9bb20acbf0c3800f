"""The pure parts of fastnn.bench on tiny synthetic data: FLOP counts, the alternating timer,
medians and ratios, the table, the peers, and the JSON and PNG files. No time is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from bench_helpers import N_IN, NumpyAsNumba, fake_peer, missing_peer, tiny_data

from fastnn.backends import get_backend
from fastnn.bench import cli, peers, report, startup
from fastnn.bench.text import count, markdown_table, seconds, times
from fastnn.bench.timing import speedup, summarize, time_alternating
from fastnn.bench.workloads import (
    FULL_BATCH_HELD_OUT,
    PEER_WORKLOADS,
    SEED,
    WORKLOAD_NAMES,
    WORKLOADS,
    Contender,
    Training,
    backend_contender,
    flops_per_sample,
    prepare,
    workload,
)
from fastnn.core.model import init_params

NEW_WORKLOADS = ("mnist-h256-128", "mnist-h128-adam")
# The peer workloads on dense arrays: the sparse one has its own tests (test_bench_sparse.py).
DENSE_PEER_WORKLOADS = [name for name in PEER_WORKLOADS if not workload(name).sparse]
# The whole bench on dense arrays; the sparse workload's CSR matrix goes to the backends only
# once they take it (test_bench_sparse.py).
ARRAY_WORKLOADS = [name for name in WORKLOAD_NAMES if not workload(name).sparse]


@pytest.fixture
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return tiny_data()


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
    assert flops_per_sample(784, (128,), 10) == 409_088


def test_flops_per_sample_of_two_hidden_layers_by_hand() -> None:
    # 784 -> 256 -> 128 -> 10: forward 2*(200,704 + 32,768 + 1,280) = 469,504; dW of all
    # three layers the same again; dA into the 256 and 128 units 2*(32,768 + 1,280) = 68,096.
    assert flops_per_sample(784, (256, 128), 10) == 469_504 + 469_504 + 68_096 == 1_007_104


def test_workloads_say_their_depth_and_solver() -> None:
    deep, adam = workload("mnist-h256-128"), workload("mnist-h128-adam")
    assert deep.hidden == (256, 128) and deep.solver == "sgd" and deep.optimizer.plain
    assert "hidden 256-128" in deep.label() and "sgd lr 0.1" in deep.label()
    assert adam.solver == "adam" and adam.learning_rate == 0.001
    assert "adam lr 0.001" in adam.label()
    # The twin differs only in the optimizer, so the ratio of their epochs is its cost.
    twin = workload(adam.sgd_twin)
    assert replace(adam, name=twin.name, solver="sgd", learning_rate=0.1, sgd_twin=None) == twin
    # The image workloads keep the bench's rate; the dense ones issue 28's.
    pixels = [w for w in WORKLOADS if not (w.dense or w.sparse)]
    assert all(w.learning_rate == 0.1 for w in pixels if w.solver == "sgd")
    assert all(w.learning_rate == 0.05 for w in WORKLOADS if w.dense and w.output == "softmax")
    assert set(PEER_WORKLOADS) <= set(WORKLOAD_NAMES)


def test_contenders_take_turns_and_warmup_is_not_recorded() -> None:
    log: list[str] = []
    ticks = iter(range(100))
    times = time_alternating(
        [counting_contender("a", log), counting_contender("b", log)],
        repeats=2,
        warmup_rounds=1,
        clock=lambda: float(next(ticks)),
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


def trained_arrays(t: Training) -> list[np.ndarray]:
    """Everything a run changes: the parameters and the optimizer's moments."""
    return [*t.params.arrays(), *t.state.first, *t.state.second]


def assert_same_bits(a: Training, b: Training) -> None:
    assert a.state.step == b.state.step
    for x, y in zip(trained_arrays(a), trained_arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", ["mnist-h10", *NEW_WORKLOADS])
def test_every_round_trains_from_the_same_parameters_and_state(data, name) -> None:
    p = prepare(workload(name), *data["mnist"], rows=300)
    c = backend_contender(get_backend("numpy"), p)
    first, second = c.setup(), c.setup()
    c.run(first)
    c.run(second)
    assert_same_bits(first, second)
    assert first.state.step == 3  # 300 rows in batches of 128
    assert not np.array_equal(first.params.coefs[0], p.params0.coefs[0])  # trained a copy ...
    fresh = init_params(N_IN, p.workload.hidden, 10, "he", SEED)
    np.testing.assert_array_equal(p.params0.coefs[0], fresh.coefs[0])  # only


def test_a_used_adam_state_would_change_the_run(data) -> None:
    """Why setup hands out a fresh state: Adam's moments and step count steer every update."""
    p = prepare(workload("mnist-h128-adam"), *data["mnist"], rows=300)
    c = backend_contender(get_backend("numpy"), p)
    fresh, used = c.setup(), c.setup()
    c.run(used)
    stale = Training(p.params0.copy(), used.state)  # fresh weights, the state left as it was
    c.run(fresh)
    c.run(stale)
    assert any(m.any() for m in fresh.state.first)
    assert not np.array_equal(fresh.params.coefs[0], stale.params.coefs[0])


@pytest.mark.parametrize("name", NEW_WORKLOADS)
def test_new_workloads_run_on_both_backends(data, name) -> None:
    p = prepare(workload(name), *data["mnist"], rows=300)
    try:
        numba = get_backend("numba")
    except ValueError as exc:
        pytest.skip(str(exc))
    trained = {}
    for backend in (get_backend("numpy"), numba):
        c = backend_contender(backend, p)
        trained[backend.name] = c.setup()
        c.run(trained[backend.name])
    assert trained["numba"].params.hidden_sizes == p.workload.hidden
    assert trained["numba"].state.step == trained["numpy"].state.step == 3
    for x, y in zip(*map(trained_arrays, trained.values()), strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-4)


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
    table = markdown_table(("a", "b"), [("x", "1.0"), ("y", "2.0")])
    assert table == "| a | b |\n|:---|---:|\n| x | 1.0 |\n| y | 2.0 |"
    assert times(3.14159) == "3.1×" and seconds(None) == "n/a"
    assert count(1234567.8) == "1,234,568"


def test_missing_peers_are_reported_and_skipped(monkeypatch) -> None:
    monkeypatch.setattr(peers, "PEERS", {"somelib": missing_peer})
    found, skipped = peers.peer_contenders(None, 2, names=("somelib",))
    assert found == [] and skipped == {"somelib": "not installed"}


@pytest.mark.parametrize("name", PEER_WORKLOADS)
def test_peers_that_are_not_installed_are_skipped(data, monkeypatch, name) -> None:
    for module in ("torch", "jax", "sklearn"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed: import fails
    p = prepare(workload(name), *data[workload(name).dataset], rows=300)
    found, skipped = peers.peer_contenders(p, 2)
    assert found == []
    assert skipped == dict.fromkeys(peers.PEERS, "not installed")


@pytest.mark.parametrize("name", PEER_WORKLOADS)
def test_sklearn_runs_the_workload(data, name) -> None:
    pytest.importorskip("sklearn")
    w = workload(name)
    p = prepare(w, *data[w.dataset], rows=300)
    c = peers.sklearn_contender(p, 1)
    model = c.setup()
    c.run(model)
    assert model.solver == w.solver and model.learning_rate_init == w.learning_rate
    assert [W.shape for W in model.coefs_] == [W.shape for W in p.params0.coefs]
    assert model.n_iter_ == 1 and model.alpha == 0


@pytest.mark.parametrize("name", DENSE_PEER_WORKLOADS)
def test_jax_trains_as_the_numpy_backend_does(data, name) -> None:
    """Same weights, order and formulas: the hand-written SGD and Adam agree with fastnn's."""
    pytest.importorskip("jax")
    p = prepare(workload(name), *data["mnist"], rows=256)  # whole batches: none dropped
    ours = backend_contender(get_backend("numpy"), p)
    theirs = peers.jax_contender(p, 1)
    mine = ours.setup()
    ours.run(mine)
    (params, _), _ = theirs.run(theirs.setup())
    for x, y in zip(mine.params.arrays(), params, strict=True):
        np.testing.assert_allclose(np.asarray(y), x, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", [n for n in DENSE_PEER_WORKLOADS if workload(n).solver == "sgd"])
def test_torch_trains_as_the_numpy_backend_does(data, name) -> None:
    """Same weights, order and plain SGD: the same numbers. (The Adam workload is the same work
    but not the same numbers: torch adds epsilon after the bias correction, scikit-learn and
    fastnn before it, which shows at 1e-3 relative in float32 here; tests/test_torch_compat.py
    converts between the two and checks Adam exactly.)"""
    torch = pytest.importorskip("torch")
    p = prepare(workload(name), *data["mnist"], rows=256)
    ours = backend_contender(get_backend("numpy"), p)
    theirs = peers.torch_contender(p, 1)
    mine, (model, optimizer) = ours.setup(), theirs.setup()
    ours.run(mine)
    theirs.run((model, optimizer))
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    for W, b, linear in zip(mine.params.coefs, mine.params.intercepts, linears, strict=True):
        np.testing.assert_allclose(linear.weight.detach().numpy().T, W, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(linear.bias.detach().numpy(), b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("with_numba", [False, True])
def test_whole_bench_on_tiny_data_writes_json_and_png(data, tmp_path, with_numba) -> None:
    # The layers (which run the real kernels, not the stand-in's) and prediction are tested
    # on their own: test_bench_layers.py, test_bench_predict.py.
    args = cli.parse_args(["--quick", "--no-peers", "--no-startup", "--rows", "40", "--no-layers",
                           "--no-predict", "--workloads", *ARRAY_WORKLOADS])  # fmt: skip
    backends = [get_backend("numpy")] + ([NumpyAsNumba()] if with_numba else [])
    missing = None if with_numba else "not available in this test"
    result = cli.collect(
        args, data, backends, missing, lambda _: None, matmul_size=32, fma_rounds=1000
    )
    report.write_json(tmp_path / "b.json", result)
    report.write_png(tmp_path / "b.png", result)
    saved = json.loads((tmp_path / "b.json").read_text())
    assert [w["name"] for w in saved["workloads"]] == ARRAY_WORKLOADS
    assert saved["markdown"] == result["markdown"]
    assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["inputs"].keys() == ({"numpy", "numba"} if with_numba else {"numpy"})
    ratios = [w["numpy_over_numba"] for w in saved["workloads"]]
    lines = result["markdown"].splitlines()
    rows = [line for line in lines if line.startswith("| MNIST") and " lr " in line]
    assert len(rows) == 8  # one per MNIST workload, standardised or not
    assert sum(line.startswith("| synthetic tabular, hidden 512, batch 128") for line in lines) == 1
    deep = saved["workloads"][WORKLOAD_NAMES.index("mnist-h256-128")]
    assert (deep["hidden"], deep["depth"], deep["solver"]) == ([256, 128], 2, "sgd")
    h10 = saved["workloads"][WORKLOAD_NAMES.index("mnist-h10")]
    X = data["mnist"][0]
    trained = X[:40] if not h10["full_batch"] else X[FULL_BATCH_HELD_OUT:][:40]
    non_zero = np.count_nonzero(trained) / len(trained)  # of N_IN pixels, most of them here
    expected = 4 * non_zero * 10 + 6 * 10 * 10  # FLOP_FORMULA with non-zero inputs only
    assert h10["sparse_flops_per_sample"] == pytest.approx(expected)
    assert all(w["sparse_flops_per_sample"] <= w["flops_per_sample"] for w in saved["workloads"])
    if with_numba:
        assert {d: f["gflops"] > 0 for d, f in saved["fma_peak"].items()} == {
            "float32": True,
            "float64": True,
        }
        # numba's first layer went over every input of the dense workloads, over the
        # non-zero ones of the others (ZEROS of the pixels): its work counts so.
        paths = {w["name"]: w["numba_first_layer"] for w in saved["workloads"]}
        assert paths == {n: "dense" if workload(n).dense else "sparse" for n in ARRAY_WORKLOADS}
        for w in saved["workloads"]:
            numba = w["results"]["numba"]
            work = w["flops_per_sample" if w["dense"] else "sparse_flops_per_sample"]
            assert w["work_flops_per_sample"] == work
            expected = numba["samples_per_s"] * work / 1e9
            assert numba["work_gflops"] == pytest.approx(expected)
            peak = saved["fma_peak"][w["dtype"]]["gflops"]
            assert numba["pct_of_fma_peak"] == pytest.approx(100 * expected / peak)
        assert "- FMA peak (measured: " in result["markdown"]
        assert "Where numba's epoch goes" not in result["markdown"]  # --no-layers
    else:
        assert saved["fma_peak"] is None and "- FMA peak" not in result["markdown"]
        assert all(w["numba_first_layer"] is None for w in saved["workloads"])
    assert saved["predict"] is None and "**Prediction**" not in result["markdown"]
    assert deep["flops_per_sample"] == flops_per_sample(N_IN, (256, 128))
    assert "- Input to numpy on the pixels: float X/255" in result["markdown"]
    assert "- Input to both on the dense workloads: the workload's float32 X" in result["markdown"]
    adam = saved["workloads"][WORKLOAD_NAMES.index("mnist-h128-adam")]
    assert (adam["solver"], adam["learning_rate"], adam["sgd_twin"]) == (
        "adam",
        0.001,
        "mnist-h128",
    )
    [cost] = saved["optimizer_costs"]
    assert (cost["workload"], cost["sgd_twin"]) == ("mnist-h128-adam", "mnist-h128")
    assert cost["over_sgd"].keys() == saved["inputs"].keys() and cost["over_sgd"]["numpy"] > 0
    assert (
        "- adam epoch over plain SGD's (mnist-h128-adam / mnist-h128): numpy " in saved["markdown"]
    )
    for cores, warned in ((1.5, True), (0.0, False)):
        for entry in result["workloads"]:
            entry["others_cores"] = cores
        assert ("Busy machine" in report.markdown(result)) == warned
    assert saved["matmul_peak_after_gflops"].keys() == saved["matmul_peak_gflops"].keys()
    start = result["matmul_peak_gflops"]["float32"]
    for after, warned in ((0.5 * start, True), (0.9 * start, False), (1.2 * start, True)):
        result["matmul_peak_after_gflops"]["float32"] = after
        text = report.markdown(result)
        assert ("The machine's speed changed during the run" in text) == warned
        assert (f"{start:.1f} GFLOP/s before the workloads and {after:.1f} after" in text) == warned
    if with_numba:
        assert all(r > 0 for r in ratios) and "×" in rows[0]
    else:
        assert ratios == [None] * len(ARRAY_WORKLOADS) and "n/a" in rows[0]


def test_no_optimizer_cost_without_the_sgd_twin(data) -> None:
    args = cli.parse_args(["--quick", "--no-peers", "--no-startup", "--rows", "40",
                           "--no-predict", "--workloads", "mnist-h128-adam"])  # fmt: skip
    result = cli.collect(args, data, [get_backend("numpy")], "test", lambda _: None, 32)
    assert result["optimizer_costs"] == [] and "over plain SGD" not in result["markdown"]


def test_peers_run_on_each_chosen_peer_workload(data, monkeypatch) -> None:
    monkeypatch.setattr(peers, "PEERS", {"jax": fake_peer, "pytorch": missing_peer})
    chosen = ["mnist-h10", "mnist-h256-128", "mnist-h128-adam"]
    args = cli.parse_args(["--quick", "--peers", "--no-startup", "--rows", "200",
                           "--no-layers", "--no-predict", "--workloads", *chosen])  # fmt: skip
    backends = [get_backend("numpy"), NumpyAsNumba()]
    result = cli.collect(
        args, data, backends, None, lambda _: None, matmul_size=32, fma_rounds=1000
    )
    assert [run["workload"] for run in result["peers"]] == ["mnist-h256-128", "mnist-h128-adam"]
    for run in result["peers"]:
        assert run["results"].keys() == {peers.OURS, "fakelib 1.0"}
        assert run["title"].startswith(f"Other libraries, {workload(run['workload']).label()}")
    text = result["markdown"]
    assert text.count("hidden 256-128, batch 128, float32, sgd lr 0.1") == 2  # table, peers
    assert "hidden 128, batch 128, float32, adam lr 0.001, one epoch of 200 rows" in text
    # Notes the same for both workloads are said once; those of a missing peer not at all.
    assert text.count("- Input to all:") == 1 and text.count("- JAX:") == 1
    assert "PyTorch: nn.Linear" not in text and text.count("- pytorch: not installed") == 1
    assert "(72 of 200 rows)" in text  # JAX's dropped partial batch, counted from the data


def test_startup_line_says_what_was_measured() -> None:
    line = startup.startup_line(
        dict(
            command="python -m fastnn.train --epochs 1",
            first_wall_s=9.0,
            warm_wall_s=3.5,
            warm_walls_s=[3.5, 4.0, 3.25],
            warm_epoch_s=0.5,
            data_load_s=1.25,
            target_s=1.3,
        )
    )
    assert "3.50 s wall, all included, the median of 3 (3.25-4.00 s; target: at most 1.3 s" in line
    assert "epoch took 0.50 s" in line and "data alone takes 1.25 s" in line
    assert startup.startup_line(dict(skipped="no numba")) == "Startup not measured: no numba."


def test_startup_reports_the_median_of_the_warm_processes(monkeypatch) -> None:
    """The first (cache-filling) train process is not counted; the warm ones are, by median."""
    walls = iter([9.0, 1.4, 1.1, 2.5, 1.2, 1.3, 0.0, 0.0, 0.0])  # 1 + WARM_RUNS, then LOAD_RUNS
    loads = iter(["0.3", "0.25", "0.4"])

    def fake_timed(cmd):
        wall = next(walls)
        if "fastnn.train" in cmd:
            metrics = cmd[cmd.index("--metrics") + 1]
            with open(metrics, "w") as f:
                json.dump({"first_epoch_seconds": wall / 10}, f)
            return wall, subprocess.CompletedProcess(cmd, 0, "", "")
        return wall, subprocess.CompletedProcess(cmd, 0, next(loads) + "\n", "")

    monkeypatch.setattr(startup, "_timed", fake_timed)
    measured = startup.measure_startup(threads=2, data_dir="somewhere")
    assert startup.WARM_RUNS == 5
    assert measured["first_wall_s"] == 9.0 and measured["warm_walls_s"] == [1.4, 1.1, 2.5, 1.2, 1.3]
    assert measured["warm_wall_s"] == 1.3 and measured["warm_epoch_s"] == pytest.approx(0.13)
    assert measured["data_load_s"] == 0.25
    assert "--threads 2 --data somewhere" in measured["command"]


def test_the_chart_shows_the_peers_and_says_when_the_machine_was_busy() -> None:
    def timed(**medians: float) -> dict:
        return {name: {"median_epoch_s": s} for name, s in medians.items()}

    result = {
        "date": "2026-12-01",
        "settings": {"threads": 2},
        "workloads": [
            {"name": "mnist-h10", "results": timed(numpy=0.16, numba=0.1), "others_cores": 0.1},
            {"name": "mnist-h128", "results": timed(numpy=0.37, numba=0.17), "others_cores": 0.1},
        ],
        "peers": [
            {"workload": "mnist-h128", "others_cores": 0.05,
             "results": {peers.OURS: {"median_epoch_s": 0.2}, "pytorch 2.13": {"median_epoch_s":
                         0.5}, "jax 0.10": {"median_epoch_s": 0.25}}},
        ],
    }  # fmt: skip

    def drawn() -> tuple[list[str], str, int, int]:
        fig = report.figure(result)
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        text = " ".join(t.get_text() for t in fig.texts)
        bars = fig.axes[0].patches
        hatched = sum(bool(bar.get_hatch()) for bar in bars)
        report._pyplot().close(fig)
        return legend, text, len(bars), hatched

    legend, text, bars, hatched = drawn()
    assert legend == ["numpy", "numba", "pytorch 2.13", "jax 0.10"]  # fastnn numba's peer row out
    assert bars == 6 and hatched == 0
    assert "A quiet machine: other processes kept at most 0.10 cores busy" in text
    result["workloads"][1]["others_cores"] = 1.5  # mnist-h128's numpy and numba bars
    legend, text, bars, hatched = drawn()
    assert "Busy machine" in text and "up to 1.5 cores" in text and hatched == 2


def test_fma_chains_compute_what_they_say():
    """a = a * 0.5 + 0.5 from a = 0.5 * (k + 1) on chain k: before any round the lanes sum to
    lanes * 0.5 * (1 + ... + CHAINS); after enough rounds every lane is exactly 1."""
    from numba import njit

    from fastnn.bench.peak import CHAINS, fma_peak_gflops, fma_rounds
    from fastnn.kernels import config

    @njit
    def chains(rounds, b):
        return fma_rounds(rounds, b, 256), fma_rounds(rounds, b, 512)

    for dtype, lanes in ((np.float32, 8), (np.float64, 4)):
        start = 0.5 * CHAINS * (CHAINS + 1) / 2
        assert chains(0, dtype(0.5)) == (lanes * start, 2 * lanes * start)
        assert chains(200, dtype(0.5)) == (lanes * CHAINS, 2 * lanes * CHAINS)
    peak = fma_peak_gflops("float32", threads=1, rounds=1000)
    assert peak["gflops"] > 0 and peak["vector_bits"] in (256, 512)
    assert peak["register_bits"] == min(peak["vector_bits"], 8 * config.REGISTER_BYTES)
