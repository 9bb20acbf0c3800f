"""The Numba kernels against the NumPy reference, tensor by tensor (llm.c style).

Every intermediate of the forward pass, the loss, every gradient, and the parameters after
training steps and whole epochs are compared on the same inputs, each check naming its tensor
and reporting the largest difference.

Every case runs with the first layer on each of its paths, sparse (over each sample's list of
non-zero features) and dense (register tiles over every feature). The bounds are
fastnn.backends.tolerance's, the one statement of how closely the backends agree; `pytest -s`
prints every difference.
"""

from __future__ import annotations

import numpy as np
import pytest

from fastnn.backends import get_backend
from fastnn.backends.tolerance import ONE_PASS, TRAINED, TRAINED_ADAPTIVE
from fastnn.core.dropout import Dropout
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer, OptimizerState
from fastnn.kernels.epoch import CHUNK

numpy_backend = get_backend("numpy")
numba_backend = get_backend("numba")

pytestmark = pytest.mark.usefixtures("first_layer")  # every test on both paths: see conftest


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
    # update jobs of several blocks and a shorter last one (update.blocks_per_job)
    "many-blocks-a-job": (300, 10, 4, 19, 6, 0.7),  # float32 and float64: 8 blocks a job
    "some-blocks-a-job": (200, 100, 3, 11, 11, 0.6),  # float32 5, float64 2
    "batches-over-chunks": (40, 8, 5, 2 * CHUNK + 60, CHUNK + 30, 0.8),  # chunks 256+30, 256+...
    "depth-2": (60, (33, 7), 5, 23, 7, 0.7),  # last batch of 2
    "depth-2-wide-batch-1": (20, (300, 1), 3, 6, 1, 0.5),
    "depth-3": (30, (7, 33, 1), 4, 15, 15, 0.5),  # full batch
    "depth-3-wide": (25, (33, 300, 7), 3, 17, 7, 0.6),  # last batch of 3
}


def make_data(case: str, dtype: str, kind: str, seed: int = 0, cases: dict | None = None):
    n_in, hidden, n_out, n, batch, zeros = (cases or CASES)[case]
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
        check(name, a, b, ONE_PASS[dtype])
    check("predict_proba", numba_backend.predict_proba(params, X, activation), got.P, 0.0)


@cases
@combinations
def test_loss_and_each_gradient(case, dtype, kind, activation):
    params, X, y, _ = make_data(case, dtype, kind)
    loss, grads = numba_backend.loss_and_grads(params, X, y, activation)
    want_loss, want_grads = numpy_backend.loss_and_grads(params, X, y, activation)
    assert isinstance(loss, float)
    check("loss", loss, want_loss, ONE_PASS[dtype])
    names = ["d" + name for name in params.names()]
    for name, a, b in zip(names, grads.arrays(), want_grads.arrays(), strict=True):
        check(name, a, b, ONE_PASS[dtype])


def train_both(params, X, y, order, batch, activation):
    """The same epoch with each backend from the same start; their results and parameters."""
    ours, theirs = params.copy(), params.copy()
    got = numba_backend.train_epoch(ours, X, y, order, batch, 0.5, activation)
    want = numpy_backend.train_epoch(theirs, X, y, order, batch, 0.5, activation)
    return got, want, ours, theirs


def check_training(got, want, ours, theirs, dtype, n):
    tol = TRAINED[dtype]
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


@cases
@pytest.mark.parametrize("kind", ["uint8", "float"])
def test_losses_of_several_epochs_and_float64_predictions(case, kind):
    """Each epoch's loss within TRAINED after three epochs, and the float64 predictions the
    same class for every sample."""
    params, X, y, batch = make_data(case, "float64", kind)
    ours, theirs = params.copy(), params.copy()
    for epoch in range(3):
        order = np.random.default_rng(epoch).permutation(len(X))
        got = numba_backend.train_epoch(ours, X, y, order, batch, 0.5)
        want = numpy_backend.train_epoch(theirs, X, y, order, batch, 0.5)
        check(f"epoch {epoch + 1} loss", got[0], want[0], TRAINED["float64"])
    predicted = numba_backend.predict_proba(ours, X).argmax(axis=1)
    np.testing.assert_array_equal(predicted, numpy_backend.predict_proba(theirs, X).argmax(axis=1))


# -- the other output kinds: logistic (multilabel) and identity (regression) ----------------------

# Small odd shapes, one and two hidden layers (name: as CASES).
KIND_CASES = {
    "kind-one-hidden": (13, 7, 3, 11, 4, 0.5),  # last batch of 3
    "kind-two-hidden": (21, (9, 5), 4, 17, 6, 0.6),  # last batch of 5
}
output_kinds = pytest.mark.parametrize("output", ["logistic", "identity"])
kind_cases = pytest.mark.parametrize("case", list(KIND_CASES))


def make_kind_data(case: str, dtype: str, kind: str, output: str):
    """As make_data, with y the targets of the output kind: an indicator matrix for
    "logistic", numbers of about unit size for "identity"."""
    params, X, _, batch = make_data(case, dtype, kind, cases=KIND_CASES)
    rng = np.random.default_rng(7)
    shape = (len(X), params.n_out)
    y = (rng.random(shape) < 0.4).astype(int) if output == "logistic" else rng.normal(0, 1, shape)
    return params, X, y, batch


def kind_dropout(params, epoch: int = 1, active: bool = True) -> Dropout | None:
    if not active:
        return None
    return Dropout((0.3,) * len(params.hidden_sizes), 99, epoch, 0.2)


@kind_cases
@combinations
@output_kinds
def test_forward_of_each_output_kind_stage_by_stage(case, dtype, kind, activation, output):
    params, X, _, _ = make_kind_data(case, dtype, kind, output)
    got = numba_backend.forward(params, X, activation, output)
    want = numpy_backend.forward(params, X, activation, output)
    pairs = zip(forward_tensors(got), forward_tensors(want), strict=True)
    for (name, a), (_, b) in pairs:
        check(name, a, b, ONE_PASS[dtype])
    if output == "identity":
        np.testing.assert_array_equal(got.P, got.Z[-1])
    else:
        assert ((got.P > 0) & (got.P < 1)).all()
    check("predict_proba", numba_backend.predict_proba(params, X, activation, output), got.P, 0.0)


@kind_cases
@combinations
@output_kinds
@pytest.mark.parametrize("dropped", [False, True], ids=["no-dropout", "dropout"])
def test_loss_and_each_gradient_of_each_output_kind(case, dtype, kind, activation, output, dropped):
    params, X, y, _ = make_kind_data(case, dtype, kind, output)
    dropout = kind_dropout(params, active=dropped)
    loss, grads = numba_backend.loss_and_grads(params, X, y, activation, dropout, output)
    want_loss, want_grads = numpy_backend.loss_and_grads(params, X, y, activation, dropout, output)
    check("loss", loss, want_loss, ONE_PASS[dtype])
    names = ["d" + name for name in params.names()]
    for name, a, b in zip(names, grads.arrays(), want_grads.arrays(), strict=True):
        check(name, a, b, ONE_PASS[dtype])


OPTIMIZERS = {
    "sgd": (Optimizer(), 0.1),
    "momentum": (Optimizer(momentum=0.9), 0.05),
    "adam": (Optimizer(solver="adam"), 0.01),
    "rmsprop": (Optimizer(solver="rmsprop", alpha=0.01), 0.003),
}


@kind_cases
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@output_kinds
@pytest.mark.parametrize("solver", list(OPTIMIZERS))
@pytest.mark.parametrize("dropped", [False, True], ids=["no-dropout", "dropout"])
def test_losses_of_several_epochs_of_each_output_kind(case, dtype, output, solver, dropped):
    """Three epochs of each update rule from the same start: each epoch's loss and accuracy,
    and the parameters after them, within TRAINED (TRAINED_ADAPTIVE for Adam and RMSprop)."""
    params, X, y, batch = make_kind_data(case, dtype, "uint8", output)
    optimizer, lr = OPTIMIZERS[solver]
    tol = (TRAINED_ADAPTIVE if optimizer.solver in ("adam", "rmsprop") else TRAINED)[dtype]
    ours, theirs = params.copy(), params.copy()
    states = [None, None]
    for epoch in (1, 2, 3):
        order = np.random.default_rng(epoch).permutation(len(X))
        dropout = kind_dropout(params, epoch, dropped)
        results = []
        for b, (backend, p) in enumerate(((numba_backend, ours), (numpy_backend, theirs))):
            states[b] = states[b] or OptimizerState.fresh(optimizer, p)
            results.append(
                backend.train_epoch(
                    p, X, y, order, batch, lr, "relu", optimizer, states[b], dropout, output
                )
            )
        (got_loss, got_hits), (want_loss, want_hits) = results
        check(f"epoch {epoch} loss", got_loss, want_loss, tol)
        if output == "identity":
            assert np.isnan(got_hits) and np.isnan(want_hits)
        else:  # a float32 near-tie at 0.5 may go either way: one sample of slack there
            assert abs(got_hits - want_hits) <= (0 if dtype == "float64" else 1 / len(X))
    for name, a, b in zip(ours.names(), ours.arrays(), theirs.arrays(), strict=True):
        check(name, a, b, tol)


# -- a sparse X (scipy.sparse CSR): the kernels' lists from its arrays, the reference's products
# scipy's; the same numbers as the dense cases (integers within 0..255 are pixels there too) ------

SPARSE_CASES = {
    "sparse-one-hidden": (37, 9, 4, 23, 6, 0.85),  # last batch of 5
    "sparse-two-hidden": (45, (11, 5), 3, 19, 19, 0.9),  # full batch
}
sparse_outputs = pytest.mark.parametrize("output", ["softmax", "logistic", "identity"])


def make_sparse_data(case: str, dtype: str, kind: str, output: str):
    """As make_data, X as a CSR matrix (of uint8 pixels or of floats), y of the output kind.
    Seed 1: seed 0's pixels put a hidden unit's z within float32 rounding of relu's kink in
    the second epoch of momentum on "identity", where either side is right (float64 agrees to
    1e-13), as it does with the same pixels passed dense."""
    sparse = pytest.importorskip("scipy.sparse")
    params, X, labels, batch = make_data(case, dtype, kind, seed=1, cases=SPARSE_CASES)
    rng = np.random.default_rng(8)
    shape = (len(X), params.n_out)
    if output == "softmax":
        y = labels
    elif output == "logistic":
        y = (rng.random(shape) < 0.4).astype(int)
    else:
        y = rng.normal(0, 1, shape)
    return params, sparse.csr_matrix(X), y, batch


@pytest.mark.parametrize("case", list(SPARSE_CASES))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["uint8", "float"])
@sparse_outputs
def test_sparse_forward_loss_and_each_gradient(case, dtype, kind, output):
    """Every forward tensor without dropout; the loss and every gradient with dropout on the
    inputs and the hidden units."""
    params, X, y, _ = make_sparse_data(case, dtype, kind, output)
    got = numba_backend.forward(params, X, "relu", output)
    want = numpy_backend.forward(params, X, "relu", output)
    for (name, a), (_, b) in zip(forward_tensors(got), forward_tensors(want), strict=True):
        check(name, a, b, ONE_PASS[dtype])
    check("predict_proba", numba_backend.predict_proba(params, X, "relu", output), got.P, 0.0)
    dropout = kind_dropout(params)
    loss, grads = numba_backend.loss_and_grads(params, X, y, "leaky_relu", dropout, output)
    want_loss, want_grads = numpy_backend.loss_and_grads(
        params, X, y, "leaky_relu", dropout, output
    )
    check("loss", loss, want_loss, ONE_PASS[dtype])
    names = ["d" + name for name in params.names()]
    for name, a, b in zip(names, grads.arrays(), want_grads.arrays(), strict=True):
        check(name, a, b, ONE_PASS[dtype])


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@sparse_outputs
@pytest.mark.parametrize("solver", list(OPTIMIZERS))
def test_sparse_epochs_of_each_update_rule(dtype, output, solver):
    """Three epochs with input dropout from the same start, X integer pixels in CSR: each
    epoch's loss, and the parameters and optimizer state after them, within TRAINED
    (TRAINED_ADAPTIVE)."""
    params, X, y, batch = make_sparse_data("sparse-one-hidden", dtype, "uint8", output)
    optimizer, lr = OPTIMIZERS[solver]
    tol = (TRAINED_ADAPTIVE if optimizer.solver in ("adam", "rmsprop") else TRAINED)[dtype]
    ours, theirs = params.copy(), params.copy()
    states = [OptimizerState.fresh(optimizer, p) for p in (ours, theirs)]
    for epoch in (1, 2, 3):
        order = np.random.default_rng(epoch).permutation(X.shape[0])
        dropout = kind_dropout(params, epoch)
        got, want = (
            backend.train_epoch(
                p, X, y, order, batch, lr, "relu", optimizer, state, dropout, output
            )
            for backend, p, state in zip(
                (numba_backend, numpy_backend), (ours, theirs), states, strict=True
            )
        )
        check(f"epoch {epoch} loss", got[0], want[0], tol)
    for name, a, b in zip(ours.names(), ours.arrays(), theirs.arrays(), strict=True):
        check(name, a, b, tol)
    for p, (a, b) in enumerate(zip(states[0].first, states[1].first, strict=True)):
        check(f"first moment {p}", a, b, tol)
