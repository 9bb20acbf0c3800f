"""The predict section of fastnn.bench (fastnn.bench.predict) on tiny data: which networks, which
contenders, the same probabilities from all of them, the ratios and the tables. No time is
asserted."""

from __future__ import annotations

import numpy as np
import pytest
from bench_helpers import tiny_data

from fastnn.backends import get_backend
from fastnn.backends.tolerance import ONE_PASS
from fastnn.bench import cli, predict
from fastnn.bench.peers import OURS
from fastnn.bench.workloads import WORKLOAD_NAMES, prepare, workload

CHOSEN = ["mnist-h128", "mnist-h128-adam", "mnist-std-h128", "tabular-h512"]


def measured(backends: list[str], names=CHOSEN, with_torch: bool = False) -> dict:
    return predict.measure_predict(
        names, tiny_data(), backends, threads=1, rows=50, calls=3, repeats=1,
        with_torch=with_torch, log=lambda _: None,
    )  # fmt: skip


def test_each_network_once_then_the_widest() -> None:
    assert [w.name for w in predict.networks(CHOSEN)] == [
        "mnist-h128",  # mnist-h128-adam: the same network, trained otherwise
        "mnist-std-h128",  # the same layers on other inputs
        "tabular-h512",
        "mnist-h800-800",
    ]
    assert predict.BEST_NETWORK.hidden == (800, 800)
    assert predict.ONE_ROW_HIDDEN == ((128,), (512,), (800, 800))


def test_the_default_workloads_give_the_networks_with_probabilities() -> None:
    """All workloads (the bench's default) include the regressor's and the sparse one's: the
    section times neither (no probabilities; no CSR prediction), and runs beside them."""
    assert [w.name for w in predict.networks(WORKLOAD_NAMES)] == [
        "mnist-h10", "mnist-h128", "mnist-h512", "mnist-full-h10", "fashion-h128",
        "mnist-h256-128", "mnist-std-h128", "mnist-std-h512", "tabular-h512", "mnist-h800-800",
    ]  # fmt: skip
    section = measured(["numpy"], names=["regression-h512", "tabular-h512", "sparse-h128"])
    assert [run["network"] for run in section["batch"]] == ["tabular-h512", "mnist-h800-800"]


def test_a_fastnn_contender_is_a_loaded_model_with_the_weights(tmp_path) -> None:
    X, y = tiny_data()["mnist"]
    p = prepare(workload("mnist-h128"), X, y, rows=50)
    f = predict.fastnn_predictor(p, "numpy", 1, tmp_path)
    model = f.predict.__self__  # MLPClassifier.predict_proba, bound to the loaded model
    assert (model.backend, model.n_threads) == ("numpy", 1)
    for mine, theirs in zip(model.coefs_, p.params0.coefs, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert f.X is p.scaled()  # numpy's input form, as in training
    np.testing.assert_allclose(f.predict(f.X).sum(axis=1), 1, rtol=1e-6)


def test_the_section_with_fastnn_numpy_alone() -> None:
    section = measured(["numpy"], with_torch=False)
    assert [run["network"] for run in section["batch"]] == [
        "mnist-h128", "mnist-std-h128", "tabular-h512", "mnist-h800-800",
    ]  # fmt: skip
    assert [run["network"] for run in section["one_row"]] == [
        "mnist-h128", "mnist-h512", "mnist-h800-800",
    ]  # fmt: skip
    assert all(run["rows"] == 50 for run in section["batch"])
    for run in section["batch"] + section["one_row"]:
        assert run["seconds"].keys() == {"fastnn numpy"} and run["seconds"]["fastnn numpy"] > 0
        assert run["over_numba"] == {"fastnn numpy": None}  # no numba to set it against
        assert run["max_difference"] == {"fastnn numpy": 0.0}
    assert section["skipped"] == {} and (section["calls"], section["repeats"]) == (3, 1)
    lines = predict.predict_lines(section)
    text = "\n".join(lines)
    assert "| network | fastnn numpy ms | largest difference from numpy's P |" in text
    assert "| network | fastnn numpy µs | largest difference from numpy's P |" in text
    assert "| MNIST standardised, hidden 128, float32, 50 rows |" in text
    assert "| MNIST, hidden 800-800, float32 |" in text  # one row: no row count


def test_numba_and_numpy_give_the_same_probabilities() -> None:
    """The real numba backend through the model file, on pixels and on dense floats."""
    get_backend("numba")
    section = measured(["numpy", "numba"], names=["mnist-h128", "mnist-std-h128"])
    for run in section["batch"] + section["one_row"]:
        assert list(run["seconds"]) == [OURS, "fastnn numpy"]  # ours first
        assert run["over_numba"][OURS] == 1.0
        ratio = run["seconds"]["fastnn numpy"] / run["seconds"][OURS]
        assert run["over_numba"]["fastnn numpy"] == pytest.approx(ratio)
        assert run["max_difference"][OURS] <= ONE_PASS["float32"]
    text = "\n".join(predict.predict_lines(section))
    assert "| network | fastnn numba ms | fastnn numpy ms | fastnn numpy / numba |" in text


def test_pytorch_gives_the_same_probabilities(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    for name in ("mnist-h128", "mnist-std-h128"):
        X, y = tiny_data()[workload(name).dataset]
        p = prepare(workload(name), X, y, rows=50)
        found, skipped = predict.predictors(p, ["numpy"], 1, True, tmp_path)
        assert skipped == {} and [f.name for f in found] == [
            "fastnn numpy", f"pytorch {torch.__version__}",
        ]  # fmt: skip
        assert max(predict.differences(found, 50).values()) <= ONE_PASS["float32"]


def test_missing_pytorch_is_said(monkeypatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # as if not installed
    section = measured(["numpy"], names=["mnist-h128"], with_torch=True)
    assert section["skipped"] == {"pytorch": "not installed"}
    assert "- pytorch (predict): not installed, skipped." in predict.predict_lines(section)


def test_the_bench_runs_the_section_and_reports_it() -> None:
    args = cli.parse_args(["--quick", "--no-peers", "--no-startup", "--rows", "40",
                           "--predict-calls", "2", "--workloads", "mnist-h10"])  # fmt: skip
    assert args.predict and args.layers
    result = cli.collect(args, tiny_data(), [get_backend("numpy")], "test", lambda _: None, 32)
    assert [run["network"] for run in result["predict"]["batch"]] == ["mnist-h10", "mnist-h800-800"]
    assert result["predict"]["calls"] == 2 and result["predict"]["batch_rows"] == 40
    assert f"**Prediction**, {args.threads} threads" in result["markdown"]
    assert "One row a call, the median of 2 calls" in result["markdown"]
    assert cli.parse_args(["--quick"]).predict_calls == predict.QUICK_ONE_ROW_CALLS
    assert cli.parse_args([]).predict_calls == predict.ONE_ROW_CALLS
    assert not cli.parse_args(["--no-predict"]).predict
