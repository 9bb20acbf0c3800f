"""python -m fastnn.bench.profile on tiny synthetic data: every stage runs and is reported, and
the scan counts exactly the non-zero pixels. No time is asserted."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.bench import profile
from fastnn.bench.data import standardise


@pytest.mark.parametrize("hidden", [13, (13, 7)])
def test_stages_run_and_count_the_non_zero_pixels(hidden) -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 48), dtype=np.uint8)
    X[rng.random(X.shape) < 0.7] = 0  # mostly zeros, as MNIST
    y = rng.integers(0, 10, 300)
    result = profile.profile(X, y, hidden=hidden, dtype="float32", batch_size=50, repeats=1)
    assert result["path"] == "sparse"  # numba's choice on such data
    assert result["inputs"] == result["nonzeros"] == np.count_nonzero(X)  # what the scan saw
    assert result["stages"] == profile.STAGES
    assert len(result["stage_s"]) == len(profile.STAGES)
    assert result["epoch_s"] > 0
    table = profile.render(result, "tiny")
    for stage in profile.STAGES:
        assert f"| {stage} |" in table
    assert f"{np.count_nonzero(X):,} non-zero inputs" in table
    assert "ns per non-zero input |" in table and "the first layer ran sparse" in table


@pytest.mark.parametrize("forced", ["dense", "auto"])
def test_the_dense_first_layer_goes_over_every_input(forced) -> None:
    """Forced on sparse pixels, or chosen by numba on standardised (dense) ones."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 48), dtype=np.uint8)
    X[rng.random(X.shape) < 0.7] = 0
    if forced == "auto":
        X = standardise(X)
    y = rng.integers(0, 10, 300)
    result = profile.profile(X, y, (13, 7), "float32", 50, repeats=1, first_layer=forced)
    assert result["path"] == "dense" and result["stages"] == profile.DENSE_STAGES
    assert result["inputs"] == X.size and result["nonzeros"] == np.count_nonzero(X)
    table = profile.render(result, "tiny")
    for stage in profile.DENSE_STAGES:
        assert f"| {stage} |" in table
    assert "ns per input |" in table and "the first layer ran dense, over every input" in table
    assert [team["threads"] for team in result["teams"]] == [1]


def test_sparse_can_be_forced_on_dense_data() -> None:
    rng = np.random.default_rng(0)
    X = standardise(rng.integers(0, 256, (200, 48), dtype=np.uint8))
    result = profile.profile(X, rng.integers(0, 10, 200), 9, "float32", 50, 1, 1, "sparse")
    assert result["path"] == "sparse" and result["inputs"] == np.count_nonzero(X)


def test_the_command_profiles_the_tabular_set_and_says_the_path(capsys) -> None:
    argv = ["--dataset", "tabular", "--rows", "200", "--hidden", "9", "--repeats", "1",
            "--threads", "1", "--batch-size", "50"]  # fmt: skip
    assert profile.main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("tabular, hidden 9, batch 50, float32, first layer dense (chosen by")
    assert "read X's rows in the params' dtype (read_row)" in out
    assert profile.main([*argv, "--first-layer", "sparse"]) == 0
    assert "first layer sparse (forced)" in capsys.readouterr().out


def test_each_members_passes_are_reported_on_one_and_two_threads() -> None:
    rng = np.random.default_rng(1)
    X = rng.integers(0, 256, (700, 40), dtype=np.uint8)
    X[rng.random(X.shape) < 0.7] = 0
    y = rng.integers(0, 10, 700)
    result = profile.profile(X, y, 11, "float32", 64, repeats=2, threads=2)
    teams = result["teams"]
    assert [team["threads"] for team in teams] == [1, 2]
    table = profile.render(result, "tiny")
    for team in teams:
        passes = team["passes_s"]
        if passes is None:  # no time stamp counter on this CPU: said so
            assert "not measured" in table
            continue
        assert passes.shape == (team["threads"], len(profile.PASSES))
        assert (passes >= 0).all() and (passes[:, 0] > 0).all()  # every member took samples
        # Each run's four times add up to its epoch; the medians of two runs are their means.
        np.testing.assert_allclose(passes.sum(axis=1), team["epoch_s"], rtol=1e-9)
    if teams[1]["passes_s"] is not None:
        assert f"| 2 | {teams[1]['epoch_s']:.4f} | 1 |" in table  # the second member's row


def test_bad_arguments_are_reported(capsys) -> None:
    assert profile.main(["--dtype", "float16", "--data", "/nonexistent"]) == 1
    assert "fastnn.bench.profile: error: dtype" in capsys.readouterr().err
    assert profile.main(["--dataset", "tabular", "--standardise"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fastnn.bench.profile: error: --standardise is for the image data")
    assert err.endswith("leave it out\n") and err.count("\n") == 1


def test_images_are_profiled_as_the_bench_gives_them() -> None:
    """uint8 pixels as loaded (a float copy of 0..255 would take the float path's scan and
    products: another epoch than training's); standardised or tabular features as floats."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 48), dtype=np.uint8)
    assert profile.profiled_inputs(pixels, False, "float32") is pixels
    standardised = profile.profiled_inputs(pixels, True, "float64")
    assert standardised.dtype == np.float64 and np.array_equal(
        standardised, standardise(pixels, "float64")
    )
    features = rng.normal(size=(20, 5))
    assert profile.profiled_inputs(features, False, "float32").dtype == np.float32
