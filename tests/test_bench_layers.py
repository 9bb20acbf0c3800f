"""Numba's epoch layer by layer (fastnn.bench.layers) on tiny data: every product of every layer
is timed, on the path the first layer takes; the timed passes compute the products they stand
for, on both paths; the shares add up; the report shows them. No time is asserted."""

from __future__ import annotations

import numpy as np
import pytest
from bench_helpers import N_IN, NumpyAsNumba, tiny_data

from fastnn.backends import get_backend
from fastnn.bench import cli, epochs, layers
from fastnn.bench.workloads import prepare, workload
from fastnn.data import scale

ROWS = 300  # batches of 128: chunks of 128, 128 and 44 samples


def prepared(name: str):
    X, y = tiny_data()[workload(name).dataset]
    return prepare(workload(name), X, y, rows=ROWS)


@pytest.mark.parametrize(
    ("name", "forced", "path"),
    [
        ("mnist-h256-128", "auto", "sparse"),  # pixels, 70% zeros
        ("mnist-h256-128", "dense", "dense"),
        ("mnist-std-h128", "auto", "dense"),  # standardised: floats, nearly all non-zero
    ],
)
def test_every_layer_is_timed_on_the_first_layers_path(name, forced, path) -> None:
    p = prepared(name)
    with get_backend("numba").first_layer(forced):
        assert epochs.numba_first_layer(p.X) == path
    shares = layers.layer_shares(p, path, repeats=1, epoch_s=1.0, threads=2)
    sizes = [N_IN, *p.workload.hidden, 10]
    fans = [(layer["fan_in"], layer["fan_out"]) for layer in shares["layers"]]
    assert fans == list(zip(sizes[:-1], sizes[1:], strict=True))
    first, *later = shares["layers"]
    assert first["path"] == shares["path"] == path
    assert first["seconds"].keys() == {"inputs", "forward", "dW"}  # no dA below the inputs
    assert first["seconds"]["inputs"] > 0  # it ran
    visited = N_IN if path == "dense" else np.count_nonzero(p.X) / len(p.X)
    assert first["flops"] == pytest.approx(2 * visited * sizes[1] * ROWS * 2)
    for layer in later:
        assert layer["path"] == "dense"
        assert layer["seconds"].keys() == {"forward", "dA", "dW"}
        assert all(seconds > 0 for seconds in layer["seconds"].values())
        assert layer["flops"] == 2 * layer["fan_in"] * layer["fan_out"] * ROWS * 3
        products = sum(layer["seconds"].values())
        assert layer["gflops"] == pytest.approx(layer["flops"] / products / 1e9)
    # Against an epoch of 1 s on 2 threads: each layer's share is its seconds over 2 s.
    for layer in shares["layers"]:
        assert layer["share"] == pytest.approx(100 * sum(layer["seconds"].values()) / 2)
    rest = 100 - sum(layer["share"] for layer in shares["layers"])
    assert shares["rest_share"] == pytest.approx(rest)


@pytest.mark.parametrize("dense", [False, True])
def test_the_first_layers_passes_compute_its_products(dense) -> None:
    p = prepared("mnist-h256-128")
    first, _ = layers.operands(p, dense)
    x = scale(p.X, "float32")
    chunks = [p.order[start : start + 128] for start in range(0, ROWS, 128)]
    dZ = first.Z.copy()
    layers.first_layer_pass(layers.DW, first)
    expected = sum(x[rows].T.astype(np.float64) @ dZ[: len(rows)] for rows in chunks)
    np.testing.assert_allclose(first.dW1, expected, rtol=1e-4, atol=1e-4)
    layers.first_layer_pass(layers.FORWARD, first)  # the last chunk's 44 rows are on top
    expected = x[chunks[-1]] @ first.W1 + first.b1
    np.testing.assert_allclose(first.Z[:44], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.Z[44:], (x[chunks[1]] @ first.W1 + first.b1)[44:], rtol=1e-4,
                               atol=1e-5)  # fmt: skip


def test_the_later_layers_passes_compute_their_products() -> None:
    p = prepared("mnist-h256-128")
    _, later = layers.operands(p, dense=False)
    s = later[0]  # 256 -> 128
    A, G = s.A.astype(np.float64), s.G.astype(np.float64)
    layers.later_layer_pass(layers.FORWARD, s)
    np.testing.assert_allclose(s.Z, A @ s.WT.T + s.b, rtol=1e-4, atol=1e-4)
    layers.later_layer_pass(layers.DA, s)
    np.testing.assert_allclose(s.D, (G @ s.WT) * (A > 0), rtol=1e-4, atol=1e-4)
    layers.later_layer_pass(layers.DW, s)  # chunks of 128, 128, 44 rows of the same A and G
    expected = 2 * G.T @ A + G[:44].T @ A[:44]
    np.testing.assert_allclose(s.dWT, expected, rtol=1e-4, atol=1e-3)


def test_the_report_shows_each_layers_share(tmp_path) -> None:
    args = cli.parse_args(["--quick", "--no-peers", "--no-startup", "--no-predict", "--rows",
                           "300", "--workloads", "mnist-h256-128", "mnist-std-h128"])  # fmt: skip
    backends = [get_backend("numpy"), NumpyAsNumba()]
    data = tiny_data()
    result = cli.collect(args, data, backends, None, lambda _: None, 32, fma_rounds=1000)
    deep, dense = result["workloads"]
    assert (deep["layers"]["path"], dense["layers"]["path"]) == ("sparse", "dense")
    one = result["fma_peak_one_thread"]
    assert one.keys() == {"float32", "float64"} and one["float32"]["gflops"] > 0
    for entry in (deep, dense):
        epoch_s = entry["results"]["numba"]["median_epoch_s"]
        assert entry["layers"]["epoch_s"] == epoch_s and entry["layers"]["threads"] == args.threads
        for layer in entry["layers"]["layers"]:
            if layer["gflops"] is None:  # its products' time, a difference of medians, came
                # out at 0 or below: on shapes this small it can (seen in a clean-clone run)
                assert layer["pct_of_one_thread_fma_peak"] is None
                continue
            pct = 100 * layer["gflops"] / one["float32"]["gflops"]
            assert layer["pct_of_one_thread_fma_peak"] == pytest.approx(pct)
    text = result["markdown"]
    assert "Where numba's epoch goes, layer by layer:" in text
    rows = [line for line in text.splitlines() if line.startswith("| mnist-")]
    assert [row.split(" | ")[1] for row in rows] == [
        "1: 16→256, sparse", "2: 256→128, dense", "3: 128→10, dense", "rest",
        "1: 16→128, dense", "2: 128→10, dense", "rest",
    ]  # fmt: skip
    assert " · – · " in rows[0] and rows[1].split(" | ")[2].startswith("– · ")  # no dA, no input
    share = f"{deep['layers']['rest_share']:.1f}%"
    assert rows[3].endswith(f"| {share} |")
    assert "against one thread's FMA peak (float32 " in text
