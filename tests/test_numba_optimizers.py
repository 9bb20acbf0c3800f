"""The Numba kernels' optimizer steps against the NumPy reference, and their determinism.

Every solver (sgd, sgd with momentum, Nesterov's, adam, rmsprop), each with and without the L2
penalty, at a learning rate that changes every batch, over a few epochs of small data and
networks of one to three hidden layers: the parameters, the optimizer's state and each epoch's
loss are compared after every epoch, and the same training must give the same bits on 1 and 2
threads and run after run.

Each on both paths of the first layer (sparse and dense), within fastnn.backends.tolerance's
bounds (relative to the largest magnitude of a tensor): TRAINED, and TRAINED_ADAPTIVE for Adam
and RMSprop, whose float32 steps pass rounding differences in tiny gradients on undamped.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

from fastnn.backends import get_backend
from fastnn.backends.tolerance import TRAINED, TRAINED_ADAPTIVE
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer, OptimizerState

numpy_backend = get_backend("numpy")
numba_backend = get_backend("numba")

OPTIMIZERS = {
    "sgd": Optimizer(),
    "momentum": Optimizer(momentum=0.9, nesterovs_momentum=False),
    "nesterov": Optimizer(momentum=0.9),
    "adam": Optimizer("adam"),
    "rmsprop": Optimizer("rmsprop"),
    "max-norm": Optimizer(max_norm=0.3),  # uniform init: incoming norms about 1.8, capped
    "adam-max-norm": Optimizer("adam", max_norm=0.5),
}
RATE = {"sgd": 0.3, "adam": 0.01, "rmsprop": 0.003}
DEPTHS = {1: (9,), 2: (33, 7), 3: (7, 1, 5)}


def optimizer_of(name: str, alpha: float) -> Optimizer:
    return OPTIMIZERS[name]._replace(alpha=alpha)


def make_data(depth: int, dtype: str, n: int = 37, n_in: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.integers(1, 256, (n, n_in)).astype(np.uint8)
    X[rng.random(X.shape) < 0.7] = 0
    X[:, :16] = 0  # a block of features no sample touches, ever
    y = rng.integers(0, 4, n)
    params = init_params(n_in, DEPTHS[depth], 4, scheme="uniform", seed=seed, dtype=dtype)
    return params, X, y


def train(backend, params, X, y, optimizer, epochs=3, batch=16):
    """`epochs` epochs from params (changed in place), a rate per batch; each epoch's result
    and a copy of the state after it."""
    rng = np.random.default_rng(1)
    rate = RATE.get(optimizer.solver, 0.3)
    state = OptimizerState.fresh(optimizer, params)
    history = []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        rates = rate * rng.uniform(0.5, 1.5, -(-len(X) // batch))
        result = backend.train_epoch(
            params, X, y, order, batch, rates, "leaky_relu", optimizer, state
        )
        history.append((result, state.copy()))
    return history


def check(name: str, got, want, tol: float) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, name
    diff = float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0))
    scale = float(max(np.max(np.abs(got), initial=0.0), np.max(np.abs(want), initial=0.0)))
    rel = diff / scale if scale else diff
    print(f"{name}: largest difference {diff:.3g} ({rel:.3g} relative)")
    assert rel <= tol, f"{name}: largest difference {diff:.3g} = {rel:.3g} relative > {tol:.0e}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("alpha", [0.0, 0.05])
@pytest.mark.parametrize("solver", list(OPTIMIZERS))
def test_steps_match_the_reference(solver, alpha, depth, dtype, first_layer):
    optimizer = optimizer_of(solver, alpha)
    params, X, y = make_data(depth, dtype)
    ours, theirs = params.copy(), params.copy()
    got = train(numba_backend, ours, X, y, optimizer)
    want = train(numpy_backend, theirs, X, y, optimizer)
    tol = (TRAINED_ADAPTIVE if optimizer.solver in ("adam", "rmsprop") else TRAINED)[dtype]
    names = params.names()
    for epoch, ((result, state), (expected, expected_state)) in enumerate(
        zip(got, want, strict=True)
    ):
        check(f"epoch {epoch} loss", result[0], expected[0], tol)
        assert state.step == expected_state.step == 3 * (epoch + 1), "state.step"
        for kind in ("first", "second"):
            arrays, expected_arrays = getattr(state, kind), getattr(expected_state, kind)
            assert len(arrays) == len(expected_arrays) in (0, len(names)), kind
            for name, a, b in zip(names[: len(arrays)], arrays, expected_arrays, strict=True):
                check(f"epoch {epoch} {kind} moment of {name}", a, b, tol)
    for name, a, b in zip(names, ours.arrays(), theirs.arrays(), strict=True):
        check(name, a, b, tol)


def test_untouched_features_keep_their_weights_only_without_alpha():
    """A block of input features that is zero in every sample has zero gradients: only the
    penalty can move its weights, whatever the solver (its moments stay zero)."""
    params, X, y = make_data(2, "float32")
    for solver in [name for name, o in OPTIMIZERS.items() if o.max_norm is None]:
        for alpha in (0.0, 0.05):
            trained = params.copy()
            train(numba_backend, trained, X, y, optimizer_of(solver, alpha))
            unchanged = np.array_equal(trained.coefs[0][:16], params.coefs[0][:16])
            assert unchanged == (alpha == 0), f"{solver}, alpha {alpha}"


def fingerprint(history, params) -> bytes:
    """Every bit of a training: each epoch's loss and accuracy, state and the parameters."""
    parts = [repr([result for result, _ in history]).encode(), str(history[-1][1].step).encode()]
    state = history[-1][1]
    parts += [a.tobytes() for a in [*state.first, *state.second, *params.arrays()]]
    return b"".join(parts)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("solver", list(OPTIMIZERS))
@pytest.mark.parametrize("batch", [16, 300])  # mini-batches; a full batch over two chunks
def test_same_bits_with_one_and_two_threads_and_run_after_run(solver, depth, batch, first_layer):
    prints = []
    for threads in (1, 2, 2):
        params, X, y = make_data(depth, "float32", n=300, n_in=100)
        with numba_backend.threads(threads):
            history = train(numba_backend, params, X, y, optimizer_of(solver, 0.05), 2, batch)
        prints.append(fingerprint(history, params))
    assert prints[0] == prints[1], "1 and 2 threads differ"
    assert prints[1] == prints[2], "two runs differ"


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("output", ["softmax", "logistic", "identity"])
def test_each_output_kind_and_weights_give_the_same_bits_on_1_and_2_threads(
    output, weighted, first_layer
):
    """Regression (identity outputs), multilabel (logistic) and weighted training, two hidden
    layers, momentum and the L2 penalty (whose sum the update's jobs group): the same bits on
    1 and 2 threads and run after run."""
    rng = np.random.default_rng(2)
    n = 300
    y = {
        "softmax": rng.integers(0, 4, n),
        "logistic": (rng.random((n, 4)) < 0.4).astype(np.int64),
        "identity": rng.normal(size=(n, 4)),
    }[output]
    weights = rng.uniform(0, 2, n) if weighted else None
    optimizer = optimizer_of("momentum", 0.05)
    prints = []
    for threads in (1, 2, 2):
        params, X, _ = make_data(2, "float32", n=n, n_in=100)
        state = OptimizerState.fresh(optimizer, params)
        order_rng = np.random.default_rng(1)
        history = []
        with numba_backend.threads(threads):
            for _ in range(2):
                result = numba_backend.train_epoch(
                    params, X, y, order_rng.permutation(n), 16, 0.05, "relu", optimizer,
                    state, output=output, sample_weight=weights,
                )  # fmt: skip
                history.append((result, state.copy()))
        assert np.isfinite(history[-1][0][0]), "the loss went non-finite: a test of nothing"
        prints.append(fingerprint(history, params))
    assert prints[0] == prints[1], "1 and 2 threads differ"
    assert prints[1] == prints[2], "two runs differ"
