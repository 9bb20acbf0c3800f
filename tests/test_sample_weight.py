"""sample_weight in fit and partial_fit, as scikit-learn's MLPs take it: each batch descends
sum(w_i * loss_i) / sum(w) plus the L2 penalty over sum(w). Integer weights train as repeated
rows, zero weights as removed ones, on both backends and every output kind; the kernels' weighted
gradients against the NumPy reference, tensor by tensor; bad weights refused."""

import numpy as np
import pytest

from fastnn import MLPClassifier, MLPRegressor
from fastnn.backends import get_backend
from fastnn.backends.tolerance import ONE_PASS, TRAINED_ADAPTIVE
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer, OptimizerState
from fastnn.kernels import epoch

numpy_backend = get_backend("numpy")
numba_backend = get_backend("numba")
BACKENDS = ["numpy", "numba"]
# Repeated rows and weights sum the same terms in another order (and the kernels' sparse
# first layer skips zero terms): float64 rounding, 1e-16 a sum, after a few Adam steps within
# this, relative to each tensor's largest magnitude.
REPEATED = 1e-9

rng = np.random.default_rng(0)
X = rng.normal(size=(24, 5))
LABELS = rng.integers(0, 3, 24)
INDICATORS = (X[:, :3] + rng.normal(0, 0.5, (24, 3)) > 0).astype(np.int64)
TARGETS = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
WEIGHTS = rng.integers(0, 4, 24)  # some 0: those rows drop out
WEIGHTS[:2] = (0, 3)
KINDS = {  # output kind: (estimator, y)
    "softmax": (MLPClassifier, LABELS),
    "logistic": (MLPClassifier, INDICATORS),
    "identity": (MLPRegressor, TARGETS),
}


def model(kind: str, backend: str, **params):
    """Full batches in float64, so one step sees every row whichever way they are given; a
    constant rate (invscaling counts rows, which repeating changes)."""
    defaults = dict(hidden_layer_sizes=7, backend=backend, batch_size="full", max_iter=6,
                    learning_rate="constant", learning_rate_init=0.05, alpha=0.01,
                    dtype="float64", random_state=0)  # fmt: skip
    return KINDS[kind][0](**{**defaults, **params})


def relative(got, want) -> float:
    """The largest difference relative to the largest magnitude."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = max(np.abs(got).max(initial=0.0), np.abs(want).max(initial=0.0)) or 1.0
    return float(np.abs(got - want).max(initial=0.0) / scale)


def assert_same_training(got, want, tol: float) -> None:
    """The same weights and loss curve, within tol."""
    pairs = ((got.coefs_, want.coefs_), (got.intercepts_, want.intercepts_))
    for name, (a, b) in zip(("coefs_", "intercepts_"), pairs, strict=True):
        for layer, (p, q) in enumerate(zip(a, b, strict=True)):
            assert relative(p, q) <= tol, f"{name}[{layer}]: {relative(p, q):.3g}"
    assert relative(got.loss_curve_, want.loss_curve_) <= tol, "loss_curve_"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("solver", ["sgd", "adam"])
def test_integer_weights_train_as_the_rows_repeated(backend, kind, solver):
    y = KINDS[kind][1]
    weighted = model(kind, backend, solver=solver).fit(X, y, sample_weight=WEIGHTS)
    repeated = model(kind, backend, solver=solver).fit(
        X.repeat(WEIGHTS, axis=0), y.repeat(WEIGHTS, axis=0)
    )
    assert_same_training(weighted, repeated, REPEATED)
    plain = model(kind, backend, solver=solver).fit(X, y)  # the weights do matter
    assert relative(weighted.coefs_[0], plain.coefs_[0]) > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", list(KINDS))
def test_zero_weights_drop_their_rows(backend, kind):
    """Weights of 0 and 1: the training of the rows of weight 1 alone, to rounding (the
    zeros' terms add exact zeros; the rest are summed in blocks that depend on the rows)."""
    y = KINDS[kind][1]
    kept = WEIGHTS > 0
    weighted = model(kind, backend).fit(X, y, sample_weight=kept.astype(float))
    removed = model(kind, backend).fit(X[kept], y[kept])
    assert_same_training(weighted, removed, 1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_partial_fit_with_weights(backend):
    """Each partial_fit call as the rows repeated, and the weights checked there too."""
    weighted, repeated = model("softmax", backend), model("softmax", backend)
    for _ in range(3):
        weighted.partial_fit(X, LABELS, classes=[0, 1, 2], sample_weight=WEIGHTS)
        repeated.partial_fit(X.repeat(WEIGHTS, axis=0), LABELS.repeat(WEIGHTS), [0, 1, 2])
    assert_same_training(weighted, repeated, REPEATED)
    regressor, regressor_repeated = model("identity", backend), model("identity", backend)
    regressor.partial_fit(X, TARGETS, sample_weight=WEIGHTS)
    regressor_repeated.partial_fit(X.repeat(WEIGHTS, axis=0), TARGETS.repeat(WEIGHTS, axis=0))
    assert_same_training(regressor, regressor_repeated, REPEATED)
    with pytest.raises(ValueError, match="sample_weight has 3 weights but X has 24 samples"):
        regressor.partial_fit(X, TARGETS, sample_weight=[1, 2, 3])


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_batch_weighing_nothing_makes_no_update(backend):
    """Batches of 8 in order, the first of weight 0: plain SGD steps as on the other rows alone
    (to rounding), and that batch adds 0 to the loss, which still counts its rows."""
    weights = np.r_[np.zeros(8), np.ones(16)]
    settings = dict(solver="sgd", batch_size=8, shuffle=False, max_iter=3)
    weighted = model("softmax", backend, **settings).fit(X, LABELS, sample_weight=weights)
    alone = model("softmax", backend, **settings).fit(X[8:], LABELS[8:])
    assert np.isfinite(weighted.loss_curve_).all()
    np.testing.assert_allclose(np.array(weighted.loss_curve_) * 24 / 16, alone.loss_curve_)
    alone.loss_curve_ = weighted.loss_curve_
    assert_same_training(weighted, alone, 1e-12)


def network_and_data(dtype: str, kind: str, output: str, n: int = 29, n_in: int = 40):
    """Pixels (some rows all 0) or signed floats, y of the output kind, and weights with
    zeros and fractions."""
    r = np.random.default_rng(3)
    Xs = r.integers(1, 256, (n, n_in)).astype(np.uint8)
    Xs[r.random(Xs.shape) < 0.6] = 0
    Xs[5] = 0
    if kind == "float":
        Xs = (Xs * r.normal(0, 0.02, Xs.shape)).astype(dtype)
    n_out = 4
    if output == "softmax":
        ys = r.integers(0, n_out, n)
    elif output == "logistic":
        ys = (r.random((n, n_out)) < 0.4).astype(int)
    else:
        ys = r.normal(size=(n, n_out))
    params = init_params(n_in, (9, 5), n_out, scheme="uniform", seed=4, dtype=dtype)
    weights = r.choice([0.0, 0.5, 1.0, 2.5, 4.0], n)
    return params, Xs, ys, weights


def check(name: str, got, want, tol: float) -> None:
    """As tests/test_numba_equivalence.py's: within tol of the largest magnitude, named."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype, name
    rel = relative(got, want)
    print(f"{name}: {rel:.3g} of the largest magnitude")
    assert rel <= tol, f"{name}: largest difference {rel:.3g} relative > {tol:.0e}"


combinations = pytest.mark.parametrize(
    ("dtype", "kind", "output"),
    [
        (dtype, kind, output)
        for dtype in ("float64", "float32")
        for kind in ("uint8", "float")
        for output in ("softmax", "logistic", "identity")
    ],
)


@combinations
def test_weighted_loss_and_each_gradient_match_the_reference(dtype, kind, output):
    params, Xs, ys, weights = network_and_data(dtype, kind, output)
    loss, grads = numba_backend.loss_and_grads(params, Xs, ys, output=output, sample_weight=weights)
    want_loss, want_grads = numpy_backend.loss_and_grads(
        params, Xs, ys, output=output, sample_weight=weights
    )
    check("loss", loss, want_loss, ONE_PASS[dtype])
    names = ["d" + name for name in params.names()]
    for name, a, b in zip(names, grads.arrays(), want_grads.arrays(), strict=True):
        check(name, a, b, ONE_PASS[dtype])
    _, plain = numpy_backend.loss_and_grads(params, Xs, ys, output=output)
    assert relative(want_grads.dW[0], plain.dW[0]) > 1e-3  # the weights do change them


@combinations
def test_weighted_epochs_match_the_reference(dtype, kind, output):
    """Two epochs of Adam with L2 in batches of 6 (the last of 5) and a batch of weight 0:
    losses, parameters and moments within TRAINED_ADAPTIVE."""
    params, Xs, ys, weights = network_and_data(dtype, kind, output)
    weights[:6] = 0
    optimizer = Optimizer(solver="adam", alpha=0.01)
    tol = TRAINED_ADAPTIVE[dtype]
    ours, theirs = params.copy(), params.copy()
    states = [OptimizerState.fresh(optimizer, p) for p in (ours, theirs)]
    for n_epoch in (1, 2):
        order = np.arange(29) if n_epoch == 1 else np.random.default_rng(n_epoch).permutation(29)
        results = [
            backend.train_epoch(
                p,
                Xs,
                ys,
                order,
                6,
                0.01,
                optimizer=optimizer,
                state=state,
                output=output,
                sample_weight=weights,
            )  # fmt: skip
            for backend, p, state in zip(
                (numba_backend, numpy_backend), (ours, theirs), states, strict=True
            )
        ]
        check(f"epoch {n_epoch} loss", results[0][0], results[1][0], tol)
    for name, a, b in zip(params.names(), ours.arrays(), theirs.arrays(), strict=True):
        check(name, a, b, tol)
    for p, (a, b) in enumerate(zip(states[0].first, states[1].first, strict=True)):
        check(f"m[{p}]", a, b, tol)
    assert states[0].step == states[1].step == 10


def test_weights_compile_nothing_new():
    """The weights reach the kernels as one float64 array, empty without them: a weighted fit
    after unweighted ones of the same dtypes uses the kernel those compiled."""
    MLPClassifier(hidden_layer_sizes=5, max_iter=1, backend="numba").fit(X, LABELS)
    MLPRegressor(hidden_layer_sizes=5, max_iter=1, backend="numba").fit(X, TARGETS)
    compiled = len(epoch.train_batches.signatures)
    MLPClassifier(hidden_layer_sizes=5, max_iter=1, backend="numba").fit(X, LABELS, WEIGHTS)
    MLPRegressor(hidden_layer_sizes=5, max_iter=1, backend="numba").fit(
        X, TARGETS, sample_weight=WEIGHTS / 3
    )
    assert len(epoch.train_batches.signatures) == compiled


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.ones((24, 1)), "sample_weight must be 1-D, one weight per sample; got shape"),
        (np.ones(23), "sample_weight has 23 weights but X has 24 samples"),
        (np.r_[np.ones(23), np.nan], "sample_weight contains NaN or infinite values"),
        (np.r_[np.ones(23), np.inf], "sample_weight contains NaN or infinite values"),
        (np.r_[np.ones(23), -1.0], "Negative values in data passed to sample_weight"),
        (np.array(["a"] * 24), "sample_weight must hold numbers; got dtype"),
        (np.zeros(24), "sample_weight holds only zero weights"),
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_weights_are_refused(backend, weights, message):
    for kind in ("softmax", "identity"):
        estimator = model(kind, backend)
        with pytest.raises(ValueError, match=message):
            estimator.fit(X, KINDS[kind][1], sample_weight=weights)
        assert not hasattr(estimator, "coefs_")
    params, Xs, ys, _ = network_and_data("float64", "float", "softmax", n=24)
    with pytest.raises(ValueError, match=message):
        get_backend(backend).loss_and_grads(params, Xs, ys, sample_weight=weights)


@pytest.mark.parametrize("backend", BACKENDS)
def test_early_stopping_scores_the_validation_rows_by_their_weights(backend):
    n, fraction = len(X), 0.25
    estimator = model("softmax", backend, early_stopping=True, validation_fraction=fraction,
                      max_iter=1, learning_rate_init=0.01)  # fmt: skip
    weights = np.arange(n) % 5
    estimator.fit(X, LABELS, sample_weight=weights)
    held = np.random.default_rng(0).permutation(n)[: int(np.ceil(fraction * n))]  # Seeds.split
    want = estimator.score(X[held], LABELS[held], sample_weight=weights[held])
    assert estimator.validation_scores_ == [pytest.approx(want, abs=1e-12)]
    assert want != pytest.approx(estimator.score(X[held], LABELS[held]))
    with pytest.raises(ValueError, match="validation rows .* sum to 0"):
        estimator.fit(X, LABELS, sample_weight=np.where(np.isin(np.arange(n), held), 0, 1))
