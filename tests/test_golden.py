"""Golden runs: the one-hidden-layer network gives the same bits as when these were recorded.

The `seeds` preset (the tutorials' recipe, float64, full batch) and the default preset as it
was when these runs were first recorded (float32, mini-batch) through the training command, and
the estimator with both activations and dtypes, on both backends; a few epochs' losses and a
SHA-256 of the weights. First recorded before the engine was generalised (commit 26bab3e);
recorded again (2026-12-06, AMD EPYC, AVX2 and FMA, by `python tests/test_golden.py --record`)
when the numba backend's dense products began fusing their multiply-adds, which changed its
bits within fastnn.backends.tolerance's bounds (the numpy cases' bits did not change); and
again the same day on the same machine when MLPClassifier took the training command's seeds
(fastnn.core.training.Seeds), which changed the estimator cases only.

Bits depend on the machine as well as the code (BLAS kernels, SIMD exp/log in NumPy and libm,
FMA or not, differ between AVX2 and AVX-512 parts), so they are compared exactly only on a
machine like the one that recorded them (same CPU features and library versions); elsewhere the
losses and a few weight statistics are compared to float64 1e-10 / float32 2e-5 relative, far
below what any change to the maths would move them. To record anew (only on the commit before
a change to the engine, or for a change meant to move the bits, saying so in its commit):
`FASTNN_DATA_DIR=... python tests/test_golden.py --record`.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import fastnn
from fastnn import MLPClassifier
from fastnn.train import command as train

GOLDEN = Path(__file__).with_name("golden.json")
TOLERANCE = {"float32": 2e-5, "float64": 1e-10}


def machine() -> dict[str, object]:
    """What besides the code decides the bits."""
    flags: set[str] = set()
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name" and not model:
                model = value.strip()
    return {
        "cpu": model,
        "simd": sorted(flags & {"avx2", "avx512f", "fma"}),
        "machine": platform.machine(),
        "libc": " ".join(platform.libc_ver()),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
    }


def summary(losses: list[float], arrays: list[np.ndarray]) -> dict[str, object]:
    digest = hashlib.sha256()
    for a in arrays:
        digest.update(np.ascontiguousarray(a).tobytes())
    flat = np.abs(np.concatenate([a.ravel() for a in arrays]).astype(np.float64))
    return {
        "losses": losses,
        "sha256": digest.hexdigest(),
        "stats": [float(flat.sum()), float((flat**2).sum()), float(flat.max())],
    }


# The default preset as it was when the runs were recorded (it has since moved to Adam).
RECORDED_DEFAULT = [
    "--hidden",
    "128",
    "--solver",
    "sgd",
    "--lr",
    "0.2",
    "--learning-rate",
    "constant",
]


def command_run(preset: str, backend: str, epochs: int, folder: Path) -> dict[str, object]:
    metrics, model = folder / f"{preset}-{backend}.json", folder / f"{preset}-{backend}.npz"
    args = ["--preset", preset, "--backend", backend, "--epochs", str(epochs),
            "--metrics", str(metrics), "--save", str(model),
            *(RECORDED_DEFAULT if preset == "default" else [])]  # fmt: skip
    assert train.main(args) == 0
    losses = [e["loss"] for e in json.loads(metrics.read_text())["epochs"]]
    loaded = fastnn.load(model)
    return summary(losses, loaded.coefs_ + loaded.intercepts_)


def estimator_run(dtype: str, activation: str, backend: str) -> dict[str, object]:
    rng = np.random.default_rng(7)
    X = rng.integers(0, 256, (300, 50)).astype(np.uint8)
    X[rng.random(X.shape) < 0.7] = 0
    y = (X[:, :25].sum(1) > X[:, 25:].sum(1)).astype(int) + 2 * (X[:, 0] > 0)
    model = MLPClassifier(
        hidden_layer_sizes=7, activation=activation, dtype=dtype, batch_size=32, solver="sgd",
        learning_rate="constant", learning_rate_init=0.1, max_iter=3, random_state=3,
        backend=backend,
    ).fit(X, y)  # fmt: skip
    return summary(list(model.loss_curve_), model.coefs_ + model.intercepts_)


CASES = {
    **{
        f"train --preset {preset} --backend {backend}{extra}": (
            TOLERANCE[dtype],
            lambda folder, p=preset, b=backend, e=epochs: command_run(p, b, e, folder),
        )
        for preset, epochs, dtype, extra in (
            ("seeds", 3, "float64", ""),
            ("default", 1, "float32", " " + " ".join(RECORDED_DEFAULT)),
        )
        for backend in ("numpy", "numba")
    },
    **{
        f"MLPClassifier {dtype} {activation} {backend}": (
            TOLERANCE[dtype],
            lambda folder, d=dtype, a=activation, b=backend: estimator_run(d, a, b),
        )
        for dtype, activation in (("float32", "relu"), ("float64", "leaky_relu"))
        for backend in ("numpy", "numba")
    },
}


@pytest.fixture(scope="module")
def golden() -> dict:
    return json.loads(GOLDEN.read_text())


@pytest.mark.real_data
@pytest.mark.parametrize("name", CASES)
def test_golden_run(name, golden, tmp_path, capsys):
    tolerance, run = CASES[name]
    got, want = run(tmp_path), golden["cases"][name]
    capsys.readouterr()  # the command's own output
    if machine() == golden["machine"]:
        assert got["losses"] == want["losses"], f"{name}: losses changed"
        assert got["sha256"] == want["sha256"], f"{name}: the weights are not the same bits"
    else:
        for what in ("losses", "stats"):
            np.testing.assert_allclose(
                got[what], want[what], rtol=tolerance, err_msg=f"{name}: {what} (other machine)"
            )


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        cases = {name: run(Path(folder)) for name, (_, run) in CASES.items()}
    GOLDEN.write_text(json.dumps({"machine": machine(), "cases": cases}, indent=1) + "\n")
    print(f"recorded {len(cases)} golden runs in {GOLDEN}")
