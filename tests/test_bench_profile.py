"""python -m fastnn.bench.profile on tiny synthetic data: every stage runs and is reported, and
the scan counts exactly the non-zero pixels. No time is asserted."""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.bench import profile


@pytest.mark.parametrize("hidden", [13, (13, 7)])
def test_stages_run_and_count_the_non_zero_pixels(hidden) -> None:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 48), dtype=np.uint8)
    X[rng.random(X.shape) < 0.7] = 0  # mostly zeros, as MNIST
    y = rng.integers(0, 10, 300)
    result = profile.profile(X, y, hidden=hidden, dtype="float32", batch_size=50, repeats=1)
    assert result["nonzeros"] == np.count_nonzero(X)
    assert len(result["stage_s"]) == len(profile.STAGES)
    assert result["epoch_s"] > 0
    table = profile.render(result, "tiny")
    for stage in profile.STAGES:
        assert f"| {stage} |" in table
    assert f"{np.count_nonzero(X):,} non-zero pixels" in table


def test_bad_arguments_are_reported(capsys) -> None:
    assert profile.main(["--dtype", "float16", "--data", "/nonexistent"]) == 1
    assert "fastnn.bench.profile: error: dtype" in capsys.readouterr().err
