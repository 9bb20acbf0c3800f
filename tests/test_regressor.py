"""MLPRegressor: scikit-learn's contract and conventions, its targets, every update rule, schedule,
depth, dropout and early stopping on both backends."""

import math
import warnings

import numpy as np
import pytest
from test_estimator import require_sklearn

from fastnn import MLPRegressor
from fastnn.backends.tolerance import TRAINED
from fastnn.core.checks import DataConversionWarning
from fastnn.core.hyperparameters import REGRESSION_SGD_STEP
from fastnn.core.training import Seeds, TrainingDiverged


def standardised(X: np.ndarray) -> np.ndarray:
    return (X - X.mean(axis=0)) / X.std(axis=0)


def smooth_data(n=400, d=6, k=2, seed=0):
    """Standardised features and k standardised targets, smooth functions of the features."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.stack([np.sin(X[:, 0]) + X[:, 1] * X[:, 2], X[:, 3] - 0.5 * X[:, 4] ** 2], axis=1)
    Y = Y[:, :k] + 0.05 * rng.normal(size=(n, k))
    return X, standardised(Y)


X, Y = smooth_data()


def small(**params) -> MLPRegressor:
    defaults = dict(hidden_layer_sizes=16, backend="numpy", batch_size=32, max_iter=30,
                    learning_rate="constant", random_state=0)  # fmt: skip
    return MLPRegressor(**{**defaults, **params})


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_scikit_learn_estimator_checks(backend):
    """Every check of scikit-learn's, on the estimator with its default parameters. One may
    fail on the NumPy reference in float32: BLAS sums a product's terms in an order that
    depends on the number of rows, so a row predicted alone differs from the same row in a
    batch by float32 rounding (3.6e-7 on an AVX2 EPYC, above the check's 1e-7); the numba
    backend gives a row the same bits alone as in a batch, and so does float64 within the
    check's bound. Whether float32's roundings cross a check's bound depends on the CPU's
    BLAS kernels (on an AVX-512 EPYC the reference passes the dense sample-weight check), so
    those checks may fail or pass; in float64 every one of them must pass."""
    require_sklearn()
    from sklearn.utils.estimator_checks import check_estimator

    row_order = "check_methods_subset_invariance"
    estimator = MLPRegressor(backend=backend)
    expected = estimator._expected_failed_checks()  # float32's sample weights: see there
    if backend == "numpy":
        expected[row_order] = "float32 BLAS sums depend on the rows"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None, expected_failed_checks=expected)
        in_float64 = check_estimator(MLPRegressor(backend=backend, dtype="float64"), on_fail=None)
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    assert not failed, failed
    assert len(results) > 40  # the checks ran
    assert {r["check_name"] for r in results if r["status"] == "xfail"} <= set(expected)
    ran = {r["check_name"]: r["status"] for r in in_float64}
    assert ran[row_order] == ran["check_sample_weight_equivalence_on_dense_data"] == "passed"
    # sparse X accepted (input_tags.sparse), so these run on the sparse path
    assert ran["check_sample_weight_equivalence_on_sparse_data"] == "passed"
    assert ran["check_estimator_sparse_array"] == ran["check_estimator_sparse_matrix"] == "passed"
    assert "failed" not in ran.values(), ran


def test_fit_sets_scikit_learns_attributes_and_predict_answers_in_ys_shape():
    model = small(max_iter=4, hidden_layer_sizes=(8, 5)).fit(X, Y)
    assert model.out_activation_ == "identity" and model.n_outputs_ == 2
    assert model.n_layers_ == 4 and model.n_iter_ == 4 and model.n_features_in_ == 6
    assert [W.shape for W in model.coefs_] == [(6, 8), (8, 5), (5, 2)]
    assert len(model.loss_curve_) == 4 and model.loss_ == model.loss_curve_[-1]
    assert model.best_loss_ == min(model.loss_curve_) and model.validation_scores_ is None
    assert not hasattr(model, "classes_") and model._estimator_type == "regressor"
    predicted = model.predict(X)
    assert predicted.shape == (len(X), 2) and predicted.dtype == np.float64
    one = small(max_iter=2).fit(X, Y[:, 0])
    assert one.n_outputs_ == 1 and one.predict(X).shape == (len(X),)
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        column = small(max_iter=2).fit(X, Y[:, :1])
    np.testing.assert_array_equal(column.predict(X), one.predict(X))  # as scikit-learn does


@pytest.mark.parametrize("weighted", [False, True])
def test_score_is_scikit_learns_r2(weighted):
    sklearn = require_sklearn()
    from sklearn.metrics import r2_score

    assert sklearn
    model = small(max_iter=5).fit(X, Y)
    weights = np.random.default_rng(1).random(len(X)) if weighted else None
    want = r2_score(Y, model.predict(X), sample_weight=weights)
    assert model.score(X, Y, sample_weight=weights) == pytest.approx(want, rel=1e-12)
    flat = np.ones(len(X))  # targets all equal: 1 if predicted exactly, else 0
    assert small(max_iter=1).fit(X, flat).score(X, flat) == r2_score(flat, flat + 1e-3)


SOLVERS = {
    "sgd": dict(solver="sgd"),
    "momentum": dict(solver="sgd", momentum=0.9),
    "adam": dict(solver="adam"),
    "rmsprop": dict(solver="rmsprop"),
}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("solver", list(SOLVERS))
def test_every_solver_learns_at_its_default_rate_on_both_backends(backend, solver):
    """Each update rule at its default learning rate (sgd: REGRESSION_SGD_STEP) fits the
    standardised targets; the backends agree on the losses."""
    params = dict(SOLVERS[solver], learning_rate_init=None, max_iter=100, hidden_layer_sizes=32)
    model = small(backend=backend, **params).fit(X, Y)
    assert model.score(X, Y) > 0.7, model.score(X, Y)
    assert model.loss_curve_[-1] < 0.1 * model.loss_curve_[0]
    reference = small(**params, dtype="float64").fit(X, Y)
    ours = small(backend=backend, **params, dtype="float64").fit(X, Y)
    np.testing.assert_allclose(ours.loss_curve_, reference.loss_curve_, rtol=TRAINED["float64"])


# invscaling divides the rate by (samples seen) ** power_t, as scikit-learn counts them: it
# starts higher and decays more gently here.
SCHEDULES = {
    "constant": {},
    "invscaling": dict(learning_rate_init=0.05, power_t=0.25),
    "adaptive": {},
    "cosine": {},
}


@pytest.mark.parametrize("schedule", list(SCHEDULES))
@pytest.mark.parametrize(("hidden", "dropout"), [(24, 0.0), ((24, 12), 0.2), ((16, 8, 8), 0.1)])
def test_every_schedule_depth_and_dropout(schedule, hidden, dropout):
    params = dict(solver="adam", learning_rate_init=0.01) | SCHEDULES[schedule]
    model = small(learning_rate=schedule, hidden_layer_sizes=hidden, dropout=dropout,
                  input_dropout=dropout / 2, **params)  # fmt: skip
    model.fit(X, Y)
    assert model.score(X, Y) > 0.5, model.score(X, Y)


def test_the_default_rates_do_not_diverge_on_standardised_data():
    """The defaults (10 epochs, batches of 128, the cosine schedule) on standardised data, each
    solver, a wide and a deep network: no divergence, and the targets are fitted."""
    X_big, Y_big = smooth_data(n=2000, d=10, k=2, seed=3)
    for solver, params in SOLVERS.items():
        for hidden in ((256,), (256, 128)):
            model = MLPRegressor(hidden_layer_sizes=hidden, random_state=0, **params)
            model.fit(X_big, Y_big)  # raises TrainingDiverged if it diverges
            assert model.score(X_big, Y_big) > 0.3, (solver, hidden, model.score(X_big, Y_big))
    assert REGRESSION_SGD_STEP < 0.01
    with pytest.raises(TrainingDiverged):  # the classifier's step: too long for this loss
        MLPRegressor(solver="sgd", learning_rate_init=0.5, random_state=0).fit(X_big, Y_big)


def test_early_stopping_scores_the_held_out_rows_by_r2():
    model = small(early_stopping=True, max_iter=200, n_iter_no_change=3, tol=1e-3)
    model.fit(X, Y)
    assert model.n_iter_ < 200 and model.best_loss_ is None
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)
    n_val = math.ceil(0.1 * len(X))  # the rows held out (see MultilayerPerceptron.fit)
    held = np.random.default_rng(Seeds.of(0).split).permutation(len(X))[:n_val]
    # The model ends with the best weights seen: its R^2 on the held-out rows is the best.
    assert model.score(X[held], Y[held]) == pytest.approx(model.best_validation_score_, 1e-12)


@pytest.mark.parametrize(
    ("y_bad", "message"),
    [
        (None, "MLPRegressor requires y to be passed, but the target y is None"),
        (Y[:-1], "X has 400 samples but y has 399 targets; they must match"),
        (np.zeros((400, 2, 2)), r"y must be 1-D .* or 2-D .*; got shape \(400, 2, 2\)"),
        (np.zeros((400, 0)), r"got shape \(400, 0\)"),
        (np.where(Y > 2, np.nan, Y), r"Input y contains \d+ NaN or infinite values"),
        (np.full(400, np.inf), "Input y contains 400 NaN or infinite values"),
        (np.array(["a", "b"] * 200), "Unknown label type: y must hold numbers.*MLPClassifier"),
        (np.array([1, "a"] * 200, dtype=object), "Unknown label type: y must hold numbers"),
    ],
)
def test_bad_targets_are_refused_with_one_clear_message(y_bad, message):
    with pytest.raises(ValueError, match=message):
        small().fit(X, y_bad)


def test_partial_fit_and_warm_start_keep_the_outputs():
    model = small(max_iter=2)
    for _ in range(3):
        model.partial_fit(X, Y)
    assert model.n_iter_ == 3 and model.n_outputs_ == 2
    with pytest.raises(ValueError, match="y has 1 output.* fitted on 2"):
        model.partial_fit(X, Y[:, 0])
    warm = small(max_iter=2, warm_start=True).fit(X, Y)
    with pytest.raises(ValueError, match="y has 1 output.* fitted on 2"):
        warm.fit(X, Y[:, 0])
    assert warm.fit(X, Y).n_iter_ == 4
