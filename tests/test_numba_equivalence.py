"""The Numba kernels against the NumPy reference, tensor by tensor (llm.c style).

Every intermediate of the forward pass, the loss, every gradient, and the parameters after
training steps and whole epochs are compared on the same inputs, each check naming its tensor
and reporting the largest difference.

Tolerances are relative to the largest magnitude in the tensor (elementwise relative error is
meaningless for entries that cancel to nearly zero):

- float64: 1e-10. Both sides compute the same sums in different orders (OpenBLAS blocks and
  vectorises them, the kernels add features in ascending order and skip zeros), so they differ
  by a few units of 2**-53 times the length of the sums; 1e-10 leaves room for a few hundred
  training steps of that.
- float32: 2e-5 for one pass, 5e-5 after training. A dot product of length n (n_in = 784 at
  most here) in float32 carries a rounding error of about sqrt(n) units of 2**-24 (6e-8) of the
  sum of its terms' magnitudes, n units at worst: 784 * 6e-8 = 4.7e-5. Two implementations
  differ by about as much, so 2e-5 (~340 ulps) covers the typical case with room to spare yet
  is far below what a wrong index, a missing term or a lost update would cause (promotion to
  float64 is caught by test_numba_backend instead). Training feeds each step's rounding into
  the next; 5e-5 allows for that growth over the few dozen steps below. Measured (pytest -s
  prints every difference): float64 at most 1e-14, float32 at most 3e-6 (P and the trained
  W1, W2), so both bounds hold with a margin of 7x or more.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.backends import get_backend
from fastnn.kernels.epoch import CHUNK
from fastnn.model import init_params

numpy_backend = get_backend("numpy")
numba_backend = get_backend("numba")

TOLERANCE = {"float64": 1e-10, "float32": 2e-5}
TRAINED_TOLERANCE = {"float64": 1e-10, "float32": 5e-5}


def check(name: str, got, want, tol: float) -> None:
    """got == want within tol times the largest magnitude of either; prints the difference."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    diff = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
    scale = float(max(np.max(np.abs(got), initial=0.0), np.max(np.abs(want), initial=0.0)))
    rel = diff / scale if scale else diff
    print(f"{name}: largest difference {diff:.3g} ({rel:.3g} of the largest magnitude)")
    assert rel <= tol, f"{name}: largest difference {diff:.3g} = {rel:.3g} relative > {tol:.0e}"


# name: (n_in, hidden widths, n_out, n_samples, batch_size, fraction of zero inputs)
CASES = {
    "mnist-like": (784, 128, 10, 37, 16, 0.8),  # last batch of 5
    "odd-n_in-below-block": (13, 3, 4, 7, 7, 0.5),  # full batch
    "hidden-1-batch-1": (20, 1, 2, 9, 1, 0.7),
    "no-zeros": (31, 10, 10, 20, 7, 0.0),  # last batch of 6
    "hidden-300": (50, 300, 3, 12, 5, 0.6),
    # update jobs of several blocks and a shorter last one (backward.blocks_per_job)
    "many-blocks-a-job": (300, 10, 4, 19, 6, 0.7),  # float32 and float64: 8 blocks a job
    "some-blocks-a-job": (200, 100, 3, 11, 11, 0.6),  # float32 5, float64 2
    "batches-over-chunks": (40, 8, 5, 2 * CHUNK + 60, CHUNK + 30, 0.8),  # chunks 256+30, 256+...
    "depth-2": (60, (33, 7), 5, 23, 7, 0.7),  # last batch of 2
    "depth-2-wide-batch-1": (20, (300, 1), 3, 6, 1, 0.5),
    "depth-3": (30, (7, 33, 1), 4, 15, 15, 0.5),  # full batch
    "depth-3-wide": (25, (33, 300, 7), 3, 17, 7, 0.6),  # last batch of 3
}


def make_data(case: str, dtype: str, kind: str, seed: int = 0):
    n_in, hidden, n_out, n, batch, zeros = CASES[case]
    rng = np.random.default_rng(seed)
    X = rng.integers(1, 256, (n, n_in)).astype(np.uint8)
    X[rng.random((n, n_in)) < zeros] = 0
    if zeros:
        X[n // 2] = 0  # a sample with no non-zero input at all
    if kind == "float":  # floats are used as they are: signed, not in [0, 1]
        X = (X * rng.normal(0, 0.02, X.shape)).astype(dtype)
    y = rng.integers(0, n_out, n)
    params = init_params(n_in, hidden, n_out, scheme="uniform", seed=seed + 1, dtype=dtype)
    for b in params.intercepts[:-1]:  # some hidden units negative, some not
        b[:] = rng.uniform(-0.5, 0.5, b.shape)
    return params, X, y, batch


def forward_tensors(fwd):
    """(name, array) of Z1, A1, Z2, A2, ..., P: each layer's tensors in the equations' names."""
    pairs = []
    for i, Z in enumerate(fwd.Z):
        pairs.append((f"Z{i + 1}", Z))
        if i < len(fwd.A):
            pairs.append((f"A{i + 1}", fwd.A[i]))
    return [*pairs, ("P", fwd.P)]


combinations = pytest.mark.parametrize(
    ("dtype", "kind", "activation"),
    [
        (dtype, kind, activation)
        for dtype in ("float64", "float32")
        for kind in ("uint8", "float")
        for activation in ("relu", "leaky_relu")
    ],
)
cases = pytest.mark.parametrize("case", list(CASES))


@cases
@combinations
def test_forward_stage_by_stage(case, dtype, kind, activation):
    params, X, _, _ = make_data(case, dtype, kind)
    got = numba_backend.forward(params, X, activation)
    want = numpy_backend.forward(params, X, activation)
    pairs = zip(forward_tensors(got), forward_tensors(want), strict=True)
    for (name, a), (_, b) in pairs:
        check(name, a, b, TOLERANCE[dtype])
    check("predict_proba", numba_backend.predict_proba(params, X, activation), got.P, 0.0)


@cases
@combinations
def test_loss_and_each_gradient(case, dtype, kind, activation):
    params, X, y, _ = make_data(case, dtype, kind)
    loss, grads = numba_backend.loss_and_grads(params, X, y, activation)
    want_loss, want_grads = numpy_backend.loss_and_grads(params, X, y, activation)
    assert isinstance(loss, float)
    check("loss", loss, want_loss, TOLERANCE[dtype])
    names = ["d" + name for name in params.names()]
    for name, a, b in zip(names, grads.arrays(), want_grads.arrays(), strict=True):
        check(name, a, b, TOLERANCE[dtype])


def train_both(params, X, y, order, batch, activation):
    """The same epoch with each backend from the same start; their results and parameters."""
    ours, theirs = params.copy(), params.copy()
    got = numba_backend.train_epoch(ours, X, y, order, batch, 0.5, activation)
    want = numpy_backend.train_epoch(theirs, X, y, order, batch, 0.5, activation)
    return got, want, ours, theirs


def check_training(got, want, ours, theirs, dtype, n):
    tol = TRAINED_TOLERANCE[dtype]
    check("epoch loss", got[0], want[0], tol)
    # A float32 near-tie between two logits may go either way: one sample of slack there.
    assert abs(got[1] - want[1]) <= (0 if dtype == "float64" else 1 / n), "epoch accuracy"
    for name, a, b in zip(ours.names(), ours.arrays(), theirs.arrays(), strict=True):
        check(name, a, b, tol)


@cases
@combinations
def test_whole_epoch_with_partial_last_batch(case, dtype, kind, activation):
    params, X, y, batch = make_data(case, dtype, kind)
    order = np.random.default_rng(5).permutation(len(X))
    check_training(*train_both(params, X, y, order, batch, activation), dtype, len(order))


@pytest.mark.parametrize("steps", [1, 3, 12])
@combinations
def test_n_steps_with_repeated_samples(steps, dtype, kind, activation):
    params, X, y, batch = make_data("mnist-like", dtype, kind)
    order = np.random.default_rng(steps).integers(0, len(X), steps * batch)  # with repeats
    check_training(*train_both(params, X, y, order, batch, activation), dtype, len(order))
