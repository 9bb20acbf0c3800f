"""The bench's dense workloads on tiny data: standardised pixels, the synthetic tabular set, and
every contender taking the same float X. No time is asserted."""

from __future__ import annotations

import numpy as np
import pytest
from bench_helpers import N_IN, missing_peer, tiny_data

from fastnn.backends import get_backend
from fastnn.bench import data, peers
from fastnn.bench.workloads import (
    DENSE_INPUT,
    INPUT_FORMS,
    PEER_WORKLOADS,
    WORKLOADS,
    backend_contender,
    flops_per_sample,
    prepare,
    workload,
)

DENSE = ("mnist-std-h128", "mnist-std-h512", "tabular-h512")


def test_the_dense_workloads_are_issue_28s() -> None:
    assert [w.name for w in WORKLOADS if w.dense and w.output == "softmax"] == list(DENSE)
    for name, hidden in zip(DENSE, (128, 512, 512), strict=True):
        w = workload(name)
        assert (w.hidden, w.batch_size, w.dtype, w.solver) == ((hidden,), 128, "float32", "sgd")
        assert w.learning_rate == 0.05 and name in PEER_WORKLOADS
    assert workload("mnist-std-h128").standardise and workload("mnist-std-h128").dataset == "mnist"
    assert workload("tabular-h512").dataset == data.TABULAR
    assert not workload("tabular-h512").standardise  # its features are floats already
    assert workload("mnist-std-h512").label() == (
        "MNIST standardised, hidden 512, batch 128, float32, sgd lr 0.05"
    )
    assert workload("tabular-h512").network_label() == "synthetic tabular, hidden 512, float32"


def test_standardise_is_the_formula_per_feature() -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (500, 6), dtype=np.uint8)
    X[:, 2] = 0  # never written, as MNIST's border pixels
    X[:, 4] = 37  # a constant that is not 0
    got = data.standardise(X)
    scaled = X / 255.0
    # float64's mean of a constant column may miss the constant by a rounding, and its std
    # come out a rounding above 0: such a column is 0 by the formula's own definition.
    constant = X.min(axis=0) == X.max(axis=0)
    std = np.where(constant, 1.0, scaled.std(axis=0))
    expected = np.where(constant, 0.0, (scaled - scaled.mean(axis=0)) / std)
    assert got.dtype == np.float32 and got.shape == X.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    assert not got[:, [2, 4]].any()  # a constant feature becomes 0, not nan
    kept = [0, 1, 3, 5]
    np.testing.assert_allclose(got[:, kept].mean(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(got[:, kept].std(axis=0), 1, rtol=1e-5)
    assert data.standardise(X, "float64").dtype == np.float64


def test_standardise_takes_pixels_only() -> None:
    with pytest.raises(ValueError, match="2-D uint8 pixels"):
        data.standardise(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="with rows"):
        data.standardise(np.zeros((0, 4), np.uint8))


def test_the_tabular_set_is_seeded_balanced_and_learnable() -> None:
    X, y = data.synthetic_tabular(2000, 32)
    again, labels = data.synthetic_tabular(2000, 32)
    np.testing.assert_array_equal(X, again)
    np.testing.assert_array_equal(y, labels)
    assert not np.array_equal(X, data.synthetic_tabular(2000, 32, seed=1)[0])
    assert X.dtype == np.float32 and X.shape == (2000, 32) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [200] * 10
    assert np.count_nonzero(X) == X.size  # dense: nothing to skip
    # The planted signal: class means learnt on half the rows classify the other half far
    # above chance (1 in 10); the features themselves are about standard.
    means = np.stack([X[:1000][y[:1000] == c].mean(axis=0) for c in range(10)])
    nearest = ((X[1000:, None, :] - means) ** 2).sum(axis=2).argmin(axis=1)
    assert np.mean(nearest == y[1000:]) > 0.7
    assert abs(float(X.mean())) < 0.1 and 0.9 < float(X.std()) < 1.2


def test_load_generates_the_tabular_set_and_reads_the_images(real_data_dir) -> None:
    X, y = data.load(data.TABULAR)
    assert X.shape == (data.TABULAR_ROWS, data.TABULAR_FEATURES) and len(y) == len(X)
    pixels, labels = data.load("mnist", str(real_data_dir))
    assert pixels.dtype == np.uint8 and pixels.shape[1] == 784 and len(labels) == len(pixels)


@pytest.mark.parametrize("name", DENSE)
def test_every_contender_takes_the_same_float_x(name) -> None:
    X, y = tiny_data()[workload(name).dataset]
    p = prepare(workload(name), X, y, rows=300)
    assert p.X.dtype == np.float32 and p.X.shape == (300, N_IN)
    if p.workload.standardise:
        np.testing.assert_allclose(p.X, data.standardise(X[:300]))  # over the rows trained on
    assert p.scaled() is p.X  # numpy's and the peers' input: the very same array
    numpy_backend = get_backend("numpy")
    assert backend_contender(numpy_backend, p).input_form == DENSE_INPUT
    assert {p.input_form(c) for c in ("numpy", "numba", "pytorch")} == {DENSE_INPUT}
    assert peers.scaled_input(p) == DENSE_INPUT
    # Numba's kernels go over every input of dense data: its work is the dense FLOPs.
    assert (
        p.work_flops_per_sample(True)
        == p.flops_per_sample
        == flops_per_sample(N_IN, p.workload.hidden)
    )
    c = backend_contender(numpy_backend, p)
    trained = c.setup()
    c.run(trained)
    assert np.isfinite(trained.params.coefs[0]).all()


def test_pixel_workloads_keep_their_input_forms() -> None:
    X, y = tiny_data()["mnist"]
    p = prepare(workload("mnist-h128"), X, y, rows=300)
    assert p.X.dtype == np.uint8 and p.scaled().dtype == np.float32
    assert p.input_form("numba") == INPUT_FORMS["numba"]
    assert peers.scaled_input(p) == INPUT_FORMS["numpy"]
    assert p.work_flops_per_sample(False) == p.sparse_flops_per_sample < p.flops_per_sample


def test_the_peer_notes_say_that_all_take_the_same_x(monkeypatch) -> None:
    monkeypatch.setattr(peers, "PEERS", {"somelib": missing_peer})
    X, y = tiny_data()[data.TABULAR]
    p = prepare(workload("tabular-h512"), X, y, rows=300)
    run = peers.run_peers(p, None, 1, 1, 1.0, lambda _: None)
    assert run["notes"][0] == f"Input to all, {peers.OURS} included: {DENSE_INPUT}."
    assert "synthetic tabular, hidden 512, batch 128" in run["title"]


def test_the_regression_workload_is_issue_30s() -> None:
    """Seeded dense 100,000 x 256, one target, hidden 512, plain SGD at the library's default
    rate for regression; its targets are a signal a network can learn."""
    w = workload("regression-h512")
    assert (w.dataset, w.hidden, w.batch_size, w.output, w.n_out) == (
        data.REGRESSION,
        (512,),
        128,
        "identity",
        1,
    )
    assert w.dense and w.name in PEER_WORKLOADS
    X, y = data.synthetic_regression(2000, 8)
    assert X.dtype == y.dtype == np.float32 and X.shape == (2000, 8) and y.shape == (2000,)
    assert abs(float(y.mean())) < 1e-6 and abs(float(y.std()) - 1) < 1e-5
    again = data.synthetic_regression(2000, 8)
    assert (X == again[0]).all() and (y == again[1]).all()
    linear = np.linalg.lstsq(np.c_[X, np.ones(len(X))], y, rcond=None)[0]
    unexplained = np.var(y - np.c_[X, np.ones(len(X))] @ linear)
    assert 0.3 < unexplained < 0.99  # more than a line can fit, yet a signal


def test_the_regression_workload_trains_alike_on_both_backends() -> None:
    tiny = tiny_data()
    p = prepare(workload("regression-h512"), *tiny[data.REGRESSION], rows=256)
    assert p.y.shape == (256, 1) and p.y.dtype == np.float32
    assert p.flops_per_sample == flops_per_sample(N_IN, (512,), 1)
    results = []
    for name in ("numpy", "numba"):
        contender = backend_contender(get_backend(name), p)
        training = contender.setup()
        contender.run(training)
        results.append(training.params)
    for ours, reference in zip(results[1].arrays(), results[0].arrays(), strict=True):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-6)
    assert not np.allclose(results[0].coefs[-1], p.params0.coefs[-1])  # it trained
