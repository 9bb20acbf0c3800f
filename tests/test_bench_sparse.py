"""The bench's sparse workload on tiny shapes: the synthetic text-like CSR matrix, the workload's
accounting, the bench's report and memory measurement, and the peers on a CSR matrix. No time
is asserted.

The two-backend paths run on the numpy backend under both names (bench_helpers.NumpyAsNumba):
nothing is compiled for them.
"""

from __future__ import annotations

import json
import os
import sys
import tracemalloc
import types

import numpy as np
import pytest
from bench_helpers import SPARSE_FEATURES, NumpyAsNumba, fake_peer, missing_peer, tiny_data
from scipy.sparse import csr_matrix

from fastnn.backends import get_backend
from fastnn.bench import cli, data, memory, peers, report
from fastnn.bench.epochs import numba_first_layer
from fastnn.bench.workloads import (
    PEER_WORKLOADS,
    SPARSE_INPUT,
    WORKLOAD_NAMES,
    backend_contender,
    flops_per_sample,
    prepare,
    workload,
)

SPARSE = "sparse-h128"
HIDDEN, CLASSES = 128, 20


@pytest.fixture(scope="module")
def tiny() -> dict[str, tuple]:
    return tiny_data()


def prepared(tiny: dict, rows: int = 300):
    return prepare(workload(SPARSE), *tiny[data.SPARSE], rows=rows)


def test_the_sparse_set_is_seeded_shaped_and_sorted() -> None:
    X, y = data.synthetic_sparse(600, 3000, 40)
    again, labels = data.synthetic_sparse(600, 3000, 40)
    assert isinstance(X, csr_matrix) and X.shape == (600, 3000) and X.dtype == np.float32
    for a, b in ((X.data, again.data), (X.indices, again.indices), (X.indptr, again.indptr)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(y, labels)
    other = data.synthetic_sparse(600, 3000, 40, seed=1)[0]
    assert other.nnz != X.nnz or not np.array_equal(other.indices, X.indices)
    assert y.dtype == np.int64 and np.bincount(y).tolist() == [30] * CLASSES
    # About 40 non-zeros a row, each row's columns strictly increasing, no explicit zeros.
    assert 38 <= X.nnz / 600 <= 42
    rows = zip(X.indptr[:-1], X.indptr[1:], strict=True)
    assert all((np.diff(X.indices[start:end]) > 0).all() for start, end in rows)
    assert X.has_sorted_indices
    assert (X.data > 0).all() and X.count_nonzero() == X.nnz
    np.testing.assert_allclose(np.sqrt(X.multiply(X).sum(axis=1)).A1, 1, rtol=1e-5)  # tf-idf
    # Zipf-like frequencies: the commonest feature is in far more rows than the median one.
    frequency = np.bincount(X.indices, minlength=3000)
    assert frequency.max() > 20 * max(np.median(frequency), 1)


def test_the_sparse_set_has_a_planted_signal() -> None:
    """Class means of half the rows classify the other half far above chance (1 in 20; 30.5%
    here: 100 rows a class make noisy means, 25,000 rows of the full set 85%)."""
    X, y = data.synthetic_sparse(4000, 5000)
    half = slice(0, 2000)
    means = np.stack([X[half][y[half] == c].mean(axis=0).A1 for c in range(CLASSES)])
    nearest = (X[2000:] @ means.T).argmax(axis=1)
    assert np.mean(nearest == y[2000:]) > 0.2


def test_the_generator_never_builds_a_dense_matrix() -> None:
    rows, features = 2000, 500_000  # dense float32: 4 GB
    tracemalloc.start()
    try:
        X, _ = data.synthetic_sparse(rows, features)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert X.shape == (rows, features)
    # The per-feature arrays (frequencies, idf: a few of 500,000 float64) and the tokens.
    assert peak < 0.02 * rows * features * 4


def test_tokens_per_row_gives_the_asked_non_zeros() -> None:
    p = np.full(1000, 1e-3)
    tokens = data.tokens_per_row(p, 100)
    assert 1000 * (1 - (1 - 1e-3) ** tokens) >= 100 > 1000 * (1 - (1 - 1e-3) ** (tokens - 1))
    with pytest.raises(ValueError, match="need more than 1000 features"):
        data.tokens_per_row(p, 1000)


def test_the_sparse_workload_is_issue_30s(monkeypatch) -> None:
    w = workload(SPARSE)
    assert (w.dataset, w.hidden, w.batch_size, w.dtype, w.solver) == (
        data.SPARSE, (HIDDEN,), 128, "float32", "sgd",
    )  # fmt: skip
    assert w.sparse and not w.dense and w.n_out == CLASSES and w.output == "softmax"
    assert SPARSE in PEER_WORKLOADS
    assert (data.SPARSE_ROWS, data.SPARSE_FEATURES, data.SPARSE_NON_ZEROS) == (100_000, 50_000, 80)
    assert w.label().startswith("synthetic sparse text, hidden 128, batch 128, float32, sgd lr")
    monkeypatch.setattr(data, "synthetic_sparse", lambda: "generated")
    assert data.load(data.SPARSE) == "generated"


def test_the_sparse_workload_counts_the_work_over_the_non_zeros(tiny) -> None:
    p = prepared(tiny)
    X = tiny[data.SPARSE][0]
    assert isinstance(p.X, csr_matrix) and p.X.shape == (300, SPARSE_FEATURES)
    assert (p.X != X[:300]).nnz == 0  # the first rows as generated, not densified
    assert p.scaled() is p.X and p.params0.coefs[-1].shape == (HIDDEN, CLASSES)
    non_zeros = X[:300].nnz / 300
    assert p.sparse_flops_per_sample == pytest.approx(4 * non_zeros * HIDDEN + 6 * HIDDEN * CLASSES)
    assert p.flops_per_sample == flops_per_sample(SPARSE_FEATURES, (HIDDEN,), CLASSES)
    assert p.counted_flops_per_sample is None  # dense-equivalent: n/a
    assert p.work_flops_per_sample(numba_first_layer(p.X) == "dense") == p.sparse_flops_per_sample
    assert {p.input_form(c) for c in ("numpy", "numba", "pytorch")} == {SPARSE_INPUT}


def bench_args(*more: str):
    return cli.parse_args(["--quick", "--no-peers", "--no-startup", "--rows", "300", "--no-layers",
                           "--no-predict", "--workloads", SPARSE, *more])  # fmt: skip


def test_the_report_of_the_sparse_workload_says_what_it_counts(tiny, tmp_path) -> None:
    """The bench's paths for the sparse workload, the CSR matrix given to both backends."""
    backends = [get_backend("numpy"), NumpyAsNumba()]
    result = cli.collect(bench_args("--no-memory"), tiny, backends, None, lambda _: None,
                         matmul_size=32, fma_rounds=1000)  # fmt: skip
    report.write_json(tmp_path / "b.json", result)
    [entry] = json.loads((tmp_path / "b.json").read_text())["workloads"]
    assert entry["sparse"] and entry["numba_first_layer"] == "sparse"
    assert entry["work_flops_per_sample"] == entry["sparse_flops_per_sample"]
    numba = entry["results"]["numba"]
    assert numba["gflops"] is None and numba["pct_of_peak"] is None
    assert numba["work_gflops"] == pytest.approx(
        numba["samples_per_s"] * entry["sparse_flops_per_sample"] / 1e9
    )
    assert entry["memory"] is None
    [row] = [line for line in result["markdown"].splitlines() if line.startswith("| synthetic")]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[5:7] == ["n/a", "n/a"] and cells[7] != "n/a" and cells[-1] == "sparse"
    assert f"- Input to both on the sparse workload: {SPARSE_INPUT}." in result["markdown"]
    assert "on the pixels" not in result["markdown"]


def test_the_sparse_workload_runs_through_the_bench(tiny) -> None:
    """The real numpy backend on the CSR matrix, and its memory in a child process."""
    result = cli.collect(bench_args(), tiny, [get_backend("numpy")], "test", lambda _: None,
                         matmul_size=32)  # fmt: skip
    [entry] = result["workloads"]
    assert entry["results"]["numpy"]["median_epoch_s"] > 0
    m = entry["memory"]
    assert "skipped" not in m, m
    assert (m["backend"], m["rows"], m["threads"]) == ("numpy", 300, os.cpu_count())
    X = tiny[data.SPARSE][0][:300]
    assert m["matrix_mb"] == pytest.approx(memory.matrix_bytes(X) / memory.MB)
    assert m["target_mb"] == pytest.approx(m["matrix_mb"] + m["model_mb"] + 200)
    assert m["within_target"] and 0 <= m["training_mb"] < m["model_mb"] + 200
    assert "- Memory, sparse-h128 (fastnn numpy, one epoch of 300 rows" in result["markdown"]


def test_memory_is_measured_in_a_child_process_against_its_target(tiny) -> None:
    """The child process's whole path, on a dense workload the backends take today."""
    p = prepare(workload("tabular-h512"), *tiny[data.TABULAR], rows=300)
    m = memory.measure_memory(p, "numpy", 1)
    model = sum(a.nbytes for a in p.params0.arrays())  # plain SGD keeps no state
    assert m["model_mb"] == pytest.approx(model / memory.MB)
    assert m["matrix_mb"] == pytest.approx(p.X.nbytes / memory.MB)
    assert m["used_mb"] == pytest.approx(m["matrix_mb"] + m["training_mb"])
    assert m["target_mb"] == pytest.approx(m["matrix_mb"] + m["model_mb"] + 200)
    assert m["baseline_mb"] > 0 and m["peak_mb"] >= m["baseline_mb"] and m["within_target"]
    # What the report says, and what it says when a child cannot measure.
    line = report.memory_line(dict(name="tabular-h512", memory=m))
    assert f"the resident high-water mark rose {m['training_mb']:.1f} MB" in line
    assert line.endswith(": within it.")
    over = report.memory_line(dict(name="tabular-h512", memory={**m, "within_target": False}))
    assert over.endswith(": **over it**.")
    failed = memory.measure_memory(p, "nosuchbackend", 1)
    assert failed["skipped"].startswith("the child process failed: ValueError: ")


def test_the_peers_on_the_sparse_workload_count_its_work(tiny, monkeypatch) -> None:
    monkeypatch.setattr(peers, "PEERS", {"scikit-learn": fake_peer, "pytorch": missing_peer})
    p = prepared(tiny)
    run = peers.run_peers(p, None, 1, 1, 1.0, lambda _: None)
    r = run["results"]["fakelib 1.0"]
    assert r["gflops"] == pytest.approx(r["samples_per_s"] * p.sparse_flops_per_sample / 1e9)
    assert run["notes"][0] == f"Input to all, {peers.OURS} included: {SPARSE_INPUT}."
    assert peers.SPARSE_FLOPS in run["notes"]
    assert any("MLPClassifier" in note and "comes out dense" in note for note in run["notes"])
    assert not any(note.startswith("PyTorch") for note in run["notes"])  # it was skipped


def test_jax_says_why_it_skips_the_sparse_workload(tiny, monkeypatch) -> None:
    fake_jax = types.ModuleType("jax")
    fake_jax.numpy = types.ModuleType("jax.numpy")
    monkeypatch.setitem(sys.modules, "jax", fake_jax)  # installed or not: the same answer
    monkeypatch.setitem(sys.modules, "jax.numpy", fake_jax.numpy)
    with pytest.raises(peers.PeerUnavailable, match="not set up for a CSR matrix"):
        peers.jax_contender(prepared(tiny), 1)


def test_sklearn_trains_on_the_csr_matrix(tiny) -> None:
    pytest.importorskip("sklearn")
    p = prepared(tiny)
    c = peers.sklearn_contender(p, 1)
    model = c.setup()
    c.run(model)
    assert model.n_iter_ == 1 and len(model.classes_) == CLASSES
    assert [W.shape for W in model.coefs_] == [(SPARSE_FEATURES, HIDDEN), (HIDDEN, CLASSES)]


def test_torch_sparse_trains_as_the_numpy_backend_does(tiny) -> None:
    """Same weights, order and plain SGD: torch's sparse products give the numbers of the
    numpy backend on the same CSR rows."""
    pytest.importorskip("torch")
    p = prepared(tiny, rows=256)
    ours = backend_contender(get_backend("numpy"), p)
    theirs = peers.torch_contender(p, 1)
    mine, (model, optimizer) = ours.setup(), theirs.setup()
    ours.run(mine)
    theirs.run((model, optimizer))
    weights = [model[0].weight.detach().numpy()]  # held as (inputs, units), as fastnn's
    weights.append(model[2].weight.detach().numpy().T)
    for W, theirs_W in zip(mine.params.coefs, weights, strict=True):
        np.testing.assert_allclose(theirs_W, W, rtol=1e-4, atol=1e-5)
    assert not np.allclose(mine.params.coefs[0], p.params0.coefs[0])  # it trained


def test_without_scipy_the_bench_says_what_to_do(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "scipy.sparse", None)  # as if not installed
    monkeypatch.chdir(tmp_path)
    assert cli.main(["--workloads", SPARSE, "--no-startup", "--no-predict"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "fastnn.bench: error: the sparse workload needs scipy: pip install scipy, or leave "
        "sparse-h128 out of --workloads\n"
    )
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_without_scipy_the_default_workloads_leave_the_sparse_one_out(monkeypatch, capsys) -> None:
    assert SPARSE in cli.parse_args([]).workloads
    monkeypatch.setitem(sys.modules, "scipy", None)  # as if not installed
    workloads = cli.parse_args([]).workloads
    assert SPARSE not in workloads and workloads == [n for n in WORKLOAD_NAMES if n != SPARSE]
    assert capsys.readouterr().err == f"fastnn.bench: {SPARSE} left out: it needs scipy\n"
