"""MLPClassifier: the scikit-learn contract, input checks, early stopping, divergence."""

import os
import re
import tracemalloc
import warnings

import numpy as np
import pandas as pd
import pytest

from fastnn import MLPClassifier, load
from fastnn.backends import get_backend
from fastnn.core.training import TrainingDiverged
from fastnn.estimator import NotFittedError


def numba_or_skip() -> str:
    try:
        get_backend("numba")
    except ValueError as exc:
        pytest.skip(str(exc))
    return "numba"


def blobs(n=200, d=20, k=3, spread=2.0, seed=0):
    """k Gaussian clusters in d dimensions; a small spread makes them overlap."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0.0, spread, (k, d))
    y = rng.integers(0, k, n)
    return centers[y] + rng.normal(size=(n, d)), y


def small(**params) -> MLPClassifier:
    """A fast model for synthetic data: the NumPy backend needs no compilation; plain SGD at a
    constant rate, whose steps these tests follow."""
    defaults = dict(hidden_layer_sizes=16, backend="numpy", batch_size=32, max_iter=5,
                    solver="sgd", learning_rate="constant", learning_rate_init=0.1)  # fmt: skip
    return MLPClassifier(**{**defaults, "random_state": 0, **params})


X, y = blobs()


def require_sklearn():
    """scikit-learn 1.6 or newer (check_estimator(on_fail=None)); skipped without it, except in
    CI, which installs the compat extra: it fails there."""
    try:
        return pytest.importorskip("sklearn", minversion="1.6")
    except pytest.skip.Exception:
        if os.environ.get("CI"):
            pytest.fail("CI must install the compat extra: pip install -e '.[dev,sweep,compat]'")
        raise


def same_weights(a: MLPClassifier, b: MLPClassifier) -> bool:
    return all(np.array_equal(u, v) for u, v in zip(a.coefs_, b.coefs_, strict=True))


def test_init_only_stores_parameters():
    model = MLPClassifier((7, 7, 7), activation="tanh", learning_rate_init=-1, backend="x")
    assert vars(model) == model.get_params()
    assert model.hidden_layer_sizes == (7, 7, 7) and model.learning_rate_init == -1


def test_get_set_params_and_repr():
    model = MLPClassifier()
    assert model.set_params(max_iter=3, activation="leaky_relu") is model
    assert model.get_params()["max_iter"] == 3
    assert repr(model) == "MLPClassifier(activation='leaky_relu', max_iter=3)"
    with pytest.raises(ValueError, match="Invalid parameter 'epochs' for estimator"):
        model.set_params(epochs=3)


def test_fit_returns_self_and_sets_attributes():
    model = small()
    assert model.fit(X, y) is model
    assert [w.shape for w in model.coefs_] == [(20, 16), (16, 3)]
    assert [b.shape for b in model.intercepts_] == [(16,), (3,)]
    assert all(a.dtype == np.float32 for a in model.coefs_ + model.intercepts_)
    assert model.classes_.tolist() == [0, 1, 2] and model.n_features_in_ == 20
    assert model.n_iter_ == 5 and len(model.loss_curve_) == 5
    assert model.loss_curve_[-1] < model.loss_curve_[0]
    assert model.validation_scores_ is None and model.best_validation_score_ is None
    assert model.validation_loss_curve_ is None
    assert not hasattr(model, "feature_names_in_")
    np.testing.assert_allclose(model.predict_proba(X).sum(axis=1), 1, rtol=1e-5)
    assert model.score(X, y) > 0.9


@pytest.mark.parametrize(
    "labels", [np.array(["emu", "cat", "dog"]), np.array([1000, -5, 10]), np.array([2.0, 0.0, 1.0])]
)
def test_any_labels_and_proba_columns_in_classes_order(labels):
    y_named = labels[y]
    model = small().fit(X, y_named)
    assert model.classes_.tolist() == sorted(labels.tolist())
    assert model.classes_.dtype.kind == labels.dtype.kind
    proba = model.predict_proba(X)
    np.testing.assert_array_equal(model.predict(X), model.classes_[proba.argmax(axis=1)])
    for column, label in enumerate(model.classes_):  # column j is the probability of classes_[j]
        assert proba[y_named == label, column].mean() > 0.8
    assert model.score(X, y_named) > 0.9


def test_dataframe_input_and_feature_names():
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    model = small().fit(frame, pd.Series(y))
    assert model.feature_names_in_.tolist() == list(frame.columns)
    np.testing.assert_array_equal(model.predict(frame), model.predict(X))
    with pytest.raises(ValueError, match="column names differ from those seen in fit"):
        model.predict(frame[frame.columns[::-1]])
    assert not hasattr(small().fit(frame.to_numpy(), y), "feature_names_in_")


def test_uint8_is_scaled_like_pixels():
    X8 = np.clip(X * 30 + 128, 0, 255).astype(np.uint8)
    from_uint8 = small().fit(X8, y)
    from_float = small().fit(X8.astype(np.float32) / np.float32(255), y)
    for a, b in zip(from_uint8.coefs_, from_float.coefs_, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(from_uint8.predict(X8), from_float.predict(X8 / 255))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"hidden_layer_sizes": (64, 0)},
            "hidden_layer_sizes must be a positive whole number or a tuple",
        ),
        (
            {"hidden_layer_sizes": (64, 2.5)},
            "hidden_layer_sizes must be a positive whole number or a tuple",
        ),
        ({"hidden_layer_sizes": ()}, "hidden_layer_sizes must be a positive whole number"),
        ({"hidden_layer_sizes": [[3]]}, "hidden_layer_sizes must be a positive whole number"),
        ({"hidden_layer_sizes": 0}, "hidden_layer_sizes must be a positive whole number"),
        ({"activation": "tanh"}, "activation must be one of relu, leaky_relu; got 'tanh'"),
        ({"backend": "torch"}, "backend must be one of numba, numpy"),
        ({"solver": "lbfgs"}, "solver must be one of sgd, adam, rmsprop; got 'lbfgs'"),
        ({"momentum": -0.1}, "momentum must be a number from 0 to 1"),
        ({"nesterovs_momentum": "no"}, "nesterovs_momentum must be True or False"),
        ({"beta_1": 1}, "beta_1 must be"),
        ({"epsilon": -1e-8}, "epsilon must be a positive number"),
        ({"rho": 1.5}, "rho must be"),
        ({"alpha": -0.1}, "alpha must be"),
        ({"learning_rate": "step"}, "learning_rate must be one of constant, invscaling"),
        ({"power_t": -1}, "power_t must be a number >= 0"),
        ({"dtype": "float16"}, "dtype must be float32 or float64"),
        ({"init": "zeros"}, "init must be one of uniform, he, xavier"),
        ({"batch_size": 0}, "batch_size must be a positive whole number, 'auto' or 'full'"),
        ({"batch_size": "half"}, "batch_size must be a positive whole number, 'auto' or 'full'"),
        ({"learning_rate_init": 0}, "learning_rate_init must be None or a positive number"),
        (
            {"learning_rate_init": float("nan")},
            "learning_rate_init must be None or a positive number",
        ),
        ({"max_iter": 0}, "max_iter must be a positive whole number"),
        ({"max_iter": 2.5}, "max_iter must be a positive whole number"),
        (
            {"validation_fraction": 1.0},
            "validation_fraction must be a number from 0 .exclusive. to less than 1",
        ),
        ({"n_iter_no_change": 0}, "n_iter_no_change must be a positive whole number"),
        ({"tol": -1}, "tol must be a number >= 0"),
        ({"random_state": "seed"}, "random_state must be None, a whole number"),
        ({"n_threads": 0}, "n_threads must be None or a positive whole number"),
        ({"shuffle": "yes"}, "shuffle must be True or False"),
    ],
)
def test_bad_hyperparameters_fail_in_fit(params, message):
    model = small(**params)  # constructing never fails
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)
    with pytest.raises(ValueError, match=message):
        model.partial_fit(X, y, classes=[0, 1, 2])


nan_X = X.copy()
nan_X[3, 4] = np.nan


@pytest.mark.parametrize(
    ("X_bad", "y_bad", "message"),
    [
        (X[:, 0], y, r"X must be 2-D .*got shape \(200,\)\. Reshape .*X.reshape\(-1, 1\)"),
        (X.reshape(200, 4, 5), y, r"X must be 2-D .*flatten each sample"),
        (nan_X, y, "X contains 1 NaN or infinite values"),
        (np.full((200, 20), np.inf), y, "X contains 4000 NaN or infinite values"),
        (np.zeros((0, 20)), y[:0], r"0 sample\(s\) \(shape=\(0, 20\)\) while a minimum of 1"),
        (np.zeros((200, 0)), y, r"0 feature\(s\) \(shape=\(200, 0\)\)"),
        (X + 1j, y, "Complex data not supported"),
        (X, y[:-1], "X has 200 samples but y has 199 labels"),
        (X, np.stack([y, y], axis=1), r"2-D y \(200, 2\) is a multilabel .* only 0 and 1"),
        (X, np.zeros((200, 2, 2)), r"y must be 1-D.*\(200, 2, 2\)"),
        (X, np.zeros(200), r"y has only one class \[0.0\]"),
        (X, None, "requires y to be passed, but the target y is None"),
        (X, y + 0.5, "Unknown label type: continuous.*not a regression target"),
        (X, np.where(y == 0, np.nan, y), "y contains NaN"),
        (X, np.array([1, "a"] * 100, dtype=object), "y mixes labels"),
        (np.full((200, 20), "a"), y, "X must hold numbers"),
        (pd.DataFrame({"a": ["x"] * 200}), y, "X must hold numbers"),
    ],
)
def test_bad_training_inputs(X_bad, y_bad, message):
    with pytest.raises(ValueError, match=message):
        small().fit(X_bad, y_bad)


def test_bad_prediction_inputs():
    with pytest.raises(NotFittedError, match="not fitted yet: call fit") as caught:
        small().predict(X)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, AttributeError)
    model = small().fit(X, y)
    with pytest.raises(ValueError, match="X has 19 features, but MLPClassifier is expecting 20"):
        model.predict(X[:, :19])
    with pytest.raises(ValueError, match="X must be 2-D"):
        model.predict_proba(X[0])
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.predict(nan_X)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("at", [(0, 0), (101, 7), (199, 19)])  # first block, a middle one, last
def test_a_non_finite_value_in_any_block_of_x_is_found(bad, at, monkeypatch):
    """X's bounds are read a block at a time (checks.BOUNDS_BLOCK_BYTES): 56 bytes here, so
    that X's 4,000 values make hundreds of blocks, the last one ragged (572 of float64, 286 of
    the model's float32)."""
    from fastnn.core import checks

    monkeypatch.setattr(checks, "BOUNDS_BLOCK_BYTES", 56)
    assert checks._value_bounds(X) == (X.min(), X.max())
    model = small(max_iter=1).fit(X, y)
    bad_X = X.copy()
    bad_X[at] = bad
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite values"):
        model.predict(bad_X)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_x_is_read_for_non_finite_values_once_a_fit_and_once_a_prediction(backend, monkeypatch):
    """Checking that X is finite reads every value: a fit does it once more after the
    estimator's own check, in the training loop (not in every epoch), a prediction does not
    do it again (not in each chunk, nor in the backend)."""
    from fastnn.backends import base, numba_backend, numpy_backend
    from fastnn.core import checks, training

    backend = numba_or_skip() if backend == "numba" else backend
    scans = []
    check_values, check_X = checks._check_values, base.check_X

    def counted_check_values(values):
        scans.append("estimator")
        check_values(values)

    def counted_check_X(params, X_, check_input=True):
        if check_input and len(X_) == len(X):  # not the loop's probe of a few rows
            scans.append("check_X")
        return check_X(params, X_, check_input)

    monkeypatch.setattr(checks, "_check_values", counted_check_values)
    for module in (training, numba_backend, numpy_backend):
        monkeypatch.setattr(module, "check_X", counted_check_X)
    monkeypatch.setattr(numpy_backend, "PREDICTION_ROWS", 64)  # the reference: 4 chunks
    model = small(backend=backend, max_iter=3).fit(X, y)
    assert model.n_iter_ == 3 and scans == ["estimator", "check_X"]
    scans.clear()
    model.predict_proba(X)
    assert scans == ["estimator"]
    with pytest.raises(ValueError, match="X contains 1 NaN or infinite values"):
        model.predict(nan_X)


def test_batch_size_auto_and_larger_than_data():
    assert small(batch_size="auto").fit(X, y).score(X, y) > 0.9
    assert small(batch_size=10_000, learning_rate_init=0.5).fit(X, y).n_iter_ == 5


def test_score_weights():
    model = small(max_iter=1).fit(X, y)
    right = model.predict(X) == y
    weights = np.random.default_rng(0).uniform(size=len(y))
    assert model.score(X, y, sample_weight=weights) == pytest.approx(
        weights[right].sum() / weights.sum()
    )


def test_partial_fit():
    with pytest.raises(ValueError, match="partial_fit needs classes on its first call"):
        small().partial_fit(X, y)
    with pytest.raises(ValueError, match=r"y holds labels not in classes: \[2\]"):
        small().partial_fit(X, y, classes=[0, 1])
    model = small()
    for epoch in range(1, 4):
        assert model.partial_fit(X, y, classes=[0, 1, 2] if epoch == 1 else None) is model
        assert model.n_iter_ == epoch and len(model.loss_curve_) == epoch
    with pytest.raises(ValueError, match=r"classes differ from the earlier calls' \[0, 1, 2\]"):
        model.partial_fit(X, y, classes=[0, 1, 2, 3])
    # Three single epochs are the same training as fit with max_iter=3.
    fitted = small(max_iter=3).fit(X, y)
    for a, b in zip(
        model.coefs_ + model.intercepts_, fitted.coefs_ + fitted.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert fitted.partial_fit(X, y).n_iter_ == 4  # continues after fit, classes known


def test_early_stopping_stops_after_patience_runs_out():
    model = small(early_stopping=True, max_iter=50, n_iter_no_change=2, tol=1.0).fit(X, y)
    # Epoch 1 sets the best; no later epoch can beat it by more than tol=1.
    assert model.n_iter_ == 3 and len(model.validation_scores_) == 3
    assert model.best_validation_score_ == model.validation_scores_[0]
    assert len(model.validation_loss_curve_) == 3
    assert all(0 < loss < np.log(3) for loss in model.validation_loss_curve_)  # it learned


def test_early_stopping_keeps_the_best_weights():
    # Overlapping classes and a large step make the validation score go up and down.
    X_noisy, y_noisy = blobs(n=300, spread=0.4, seed=1)
    params = dict(early_stopping=True, learning_rate_init=2.0, n_iter_no_change=100)
    model = small(max_iter=15, **params).fit(X_noisy, y_noisy)
    scores = model.validation_scores_
    best_epoch = int(np.argmax(scores)) + 1
    assert model.best_validation_score_ == max(scores)
    assert best_epoch < model.n_iter_ == 15, "the test needs a score that peaks early"
    # The same run cut off at the best epoch ends with the weights the long run kept.
    short = small(max_iter=best_epoch, **params).fit(X_noisy, y_noisy)
    assert short.validation_scores_ == scores[:best_epoch]
    assert short.validation_loss_curve_ == model.validation_loss_curve_[:best_epoch]
    for kept, at_best in zip(
        model.coefs_ + model.intercepts_, short.coefs_ + short.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(kept, at_best)


def test_early_stopping_needs_training_samples():
    with pytest.raises(ValueError, match="leaves none to train on"):
        small(early_stopping=True, validation_fraction=0.9).fit(X[:5], y[:5])


def test_divergence_keeps_the_last_good_weights():
    model = small().partial_fit(X, y, classes=[0, 1, 2])
    good = [a.copy() for a in model.coefs_ + model.intercepts_]
    model.set_params(learning_rate_init=1e30)  # far too high: the weights overflow to inf
    with pytest.raises(TrainingDiverged, match=r"diverged.*try a smaller one.*learning_rate_init"):
        model.partial_fit(X, y)
    for now, before in zip(model.coefs_ + model.intercepts_, good, strict=True):
        np.testing.assert_array_equal(now, before)
    assert model.n_iter_ == 1 and np.isfinite(model.predict_proba(X)).all()


def test_verbose_prints_one_line_per_epoch(capsys):
    model = small(verbose=True, early_stopping=True, max_iter=3).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for epoch, line in enumerate(lines, 1):
        pattern = (
            rf"epoch {epoch}: loss \d+\.\d+, \d+\.\d ms, validation loss (\d+\.\d+), "
            r"accuracy \d\.\d+"
        )
        match = re.fullmatch(pattern, line)
        assert match, line
        assert float(match[1]) == pytest.approx(model.validation_loss_curve_[epoch - 1], abs=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_same_random_state_same_model(backend):
    if backend == "numba":
        numba_or_skip()
    X8 = np.clip(X * 30 + 128, 0, 255).astype(np.uint8)  # uint8, as the MNIST tests compile
    runs = [small(backend=backend, random_state=seed, n_threads=2).fit(X8, y) for seed in (7, 7, 8)]
    for a, b, c in zip(*(r.coefs_ + r.intercepts_ for r in runs), strict=True):
        np.testing.assert_array_equal(a, b)
        assert not np.array_equal(a, c)
    assert runs[0].loss_curve_ == runs[1].loss_curve_


def test_random_state_takes_a_random_state_or_a_generator_as_scikit_learn_does(tmp_path):

    for make in (np.random.RandomState, np.random.default_rng):
        shared = make(0)
        first, second = small(random_state=shared).fit(X, y), small(random_state=shared).fit(X, y)
        again = small(random_state=make(0)).fit(X, y)
        assert same_weights(first, again), "a generator in the same state gives the same model"
        assert not same_weights(first, second), "each fit draws from it: the next differs"
        assert first.get_params()["random_state"] is shared
    first.save(tmp_path / "model.npz")
    loaded = load(tmp_path / "model.npz")
    assert loaded.random_state is None  # a generator's state is not a setting to record
    np.testing.assert_array_equal(loaded.predict_proba(X), first.predict_proba(X))


@pytest.mark.parametrize("init", ["he", "uniform", "xavier"])
def test_the_weights_take_the_memory_of_the_models_dtype(init):
    """The memory fit's first weights ask for (hidden_layer_sizes=10**7 asked for 58 GiB in
    float64 for a float32 model): a float32 network's is half a float64 one's, and the
    numbers are those of one float64 draw, converted."""
    from fastnn.core.model import init_params

    def peak(dtype):
        tracemalloc.start()  # NumPy reports its arrays' memory to tracemalloc
        try:
            params = init_params(784, 4000, 10, init, seed=1, dtype=dtype)
            return tracemalloc.get_traced_memory()[1], params
        finally:
            tracemalloc.stop()

    (peak32, params32), (peak64, params64) = peak("float32"), peak("float64")
    assert peak32 < 0.55 * peak64, (peak32, peak64)
    for W32, W64 in zip(params32.coefs, params64.coefs, strict=True):
        np.testing.assert_array_equal(W32, W64.astype(np.float32))


def test_a_network_too_large_asks_for_the_memory_of_its_dtype():
    # 784 x 10**14 weights: more than any address space, so refused whatever the machine.
    model = small(hidden_layer_sizes=10**14, dtype="float32")
    with pytest.raises(MemoryError, match=r"shape \(20, 100000000000000\) and data type float32"):
        model.fit(X, y)


def test_scikit_learn_compatibility():
    sklearn = require_sklearn()
    from sklearn.base import clone, is_classifier
    from sklearn.model_selection import GridSearchCV, cross_val_score

    assert sklearn.__version__ and is_classifier(small())
    fitted = small(max_iter=2).fit(X, y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params() and not hasattr(copy, "coefs_")
    seeded = clone(small(random_state=np.random.RandomState(3)))  # a copy in the same state
    assert same_weights(seeded.fit(X, y), small(random_state=np.random.RandomState(3)).fit(X, y))
    names = np.array(["a", "b", "c"])[y]
    scores = cross_val_score(small(), X, names, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    grid = GridSearchCV(small(), {"hidden_layer_sizes": [(4,), (16,)], "max_iter": [1, 5]}, cv=3)
    grid.fit(X, names)
    assert set(grid.best_params_) == {"hidden_layer_sizes", "max_iter"}
    assert grid.best_estimator_.score(X, names) > 0.9


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_scikit_learn_estimator_checks(backend):
    """Every check of scikit-learn's, on the estimator with its default parameters."""
    require_sklearn()
    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. "does not inherit from BaseEstimator"
        estimator = MLPClassifier(backend=backend)
        expected = estimator._expected_failed_checks()  # float32's: see there
        results = check_estimator(estimator, on_fail=None, expected_failed_checks=expected)
        in_float64 = check_estimator(MLPClassifier(backend=backend, dtype="float64"), on_fail=None)
    failed = {r["check_name"]: r["exception"] for r in results if r["status"] == "failed"}
    assert not failed, failed
    assert len(results) > 40  # the checks ran
    ran = {r["check_name"]: r["status"] for r in in_float64}
    assert ran["check_sample_weight_equivalence_on_dense_data"] == "passed"
    # sparse X accepted (input_tags.sparse), so these run on the sparse path
    assert ran["check_sample_weight_equivalence_on_sparse_data"] == "passed"
    assert ran["check_estimator_sparse_array"] == ran["check_estimator_sparse_matrix"] == "passed"
    assert "failed" not in ran.values(), ran


def test_a_column_of_labels_is_used_with_scikit_learns_warning():
    from fastnn.core.checks import DataConversionWarning

    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        column = small().fit(X, y[:, None])
    np.testing.assert_array_equal(column.coefs_[0], small().fit(X, y).coefs_[0])


def test_not_fitted_is_also_scikit_learns_error_when_it_is_loaded():
    require_sklearn()
    import sklearn.exceptions as sklearn_exceptions

    with pytest.raises(sklearn_exceptions.NotFittedError) as caught:
        small().predict(X)
    assert isinstance(caught.value, NotFittedError)


# --- inputs a new user meets -------------------------------------------------------------------


def pixel_table(n=200, seed=0):
    """MNIST-like rows as pandas reads a CSV of pixels: int64 columns in 0..255."""
    rng = np.random.default_rng(seed)
    X8 = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    labels = (X8[:, :392].mean(axis=1) > X8[:, 392:].mean(axis=1)).astype(int)
    return X8, pd.DataFrame(X8.astype(np.int64), columns=[f"pixel{i}" for i in range(784)]), labels


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_integer_pixels_of_any_type_are_scaled_like_uint8(backend):
    X8, table, labels = pixel_table()
    as_uint8 = small(backend=backend).fit(X8, labels)
    as_int64 = small(backend=backend).fit(table, labels)  # pd.read_csv gives int64
    for a, b in zip(as_uint8.coefs_, as_int64.coefs_, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(as_uint8.predict_proba(X8), as_int64.predict_proba(table))
    np.testing.assert_array_equal(
        as_uint8.predict_proba(X8), as_uint8.predict_proba(X8.astype(np.uint16))
    )


def test_integers_beyond_pixels_are_numbers_and_floats_that_look_like_pixels_warn():
    X8, table, labels = pixel_table()
    counts = X8.astype(np.int64) * 4  # 0..1020: not pixels
    slow = dict(learning_rate_init=1e-6)  # unscaled inputs this large blow up at 0.1
    np.testing.assert_array_equal(
        small(**slow).fit(counts, labels).coefs_[0],
        small(**slow).fit(counts.astype(float), labels).coefs_[0],
    )
    with pytest.warns(UserWarning, match=r"look like pixels.*X.astype\(np.uint8\)"):
        small(**slow).fit(table.astype(float), labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small().fit(X8 / 255, labels)  # scaled floats: nothing to say
        small().fit(X, y)  # ordinary features


@pytest.mark.parametrize("dtype", [np.float64, np.dtype("float64"), "f8", "double", "float64"])
def test_a_dtype_given_the_numpy_way(dtype):
    model = small(dtype=dtype).fit(X, y)
    assert model.coefs_[0].dtype == np.float64 and model.get_params()["dtype"] is dtype
    from fastnn.core.model import init_params

    assert init_params(5, 3, 2, dtype=dtype).coefs[0].dtype == np.float64
    assert init_params(5, 3, 2, dtype=np.float32).coefs[0].dtype == np.float32


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_read_only_weights_predict_and_train_from_copies(backend, tmp_path):
    fitted = small(backend=backend).fit(X, y)
    expected = fitted.predict_proba(X)
    for i, array in enumerate(fitted.coefs_ + fitted.intercepts_):  # as joblib's mmap_mode="r"
        np.save(tmp_path / f"{i}.npy", array)
    mapped = [np.load(tmp_path / f"{i}.npy", mmap_mode="r") for i in range(4)]
    fitted.coefs_, fitted.intercepts_ = mapped[:2], mapped[2:]
    assert not fitted.coefs_[0].flags.writeable
    np.testing.assert_array_equal(fitted.predict_proba(X), expected)
    fitted.partial_fit(X, y)  # continues from copies of its own; the files are untouched
    assert fitted.coefs_[0].base is None and not fitted.coefs_[0].flags.writeable
    np.testing.assert_array_equal(np.load(tmp_path / "0.npy"), mapped[0])

    engine = get_backend(backend)
    frozen = fitted._params()
    for array in frozen.arrays():
        array.flags.writeable = False
    with pytest.raises(ValueError, match="W1, b1, W2, b2 are read-only.*writable copy"):
        engine.train_epoch(frozen, X, np.asarray(y), np.arange(len(X)), 32, 0.1)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fitted_weights_are_read_only_and_new_ones_are_used_at_once(backend):
    """A backend may prepare a fitted model's weights once for its predictions: a change must
    come as new arrays, which the next prediction uses."""
    fitted = small(backend=backend).fit(X, y)
    with pytest.raises(ValueError, match="read-only"):
        fitted.coefs_[0][0, 0] = 1.0
    before = fitted.predict_proba(X)
    other = small(backend=backend, random_state=9).fit(X, y)
    for _ in range(2):  # each model its own weights, whatever was predicted before
        np.testing.assert_array_equal(fitted.predict_proba(X), before)
        assert not np.array_equal(other.predict_proba(X), before)
    fitted.coefs_ = [W * 0 for W in fitted.coefs_]  # new, writable arrays
    uniform = fitted.predict_proba(X)
    np.testing.assert_allclose(uniform, softmax_of(fitted.intercepts_[-1], len(X)), rtol=1e-6)
    fitted.coefs_[-1][...] = other.coefs_[-1]  # writable weights are read afresh each time
    assert not np.array_equal(fitted.predict_proba(X), uniform)


def softmax_of(bias: np.ndarray, n: int) -> np.ndarray:
    e = np.exp(bias - bias.max())
    return np.tile(e / e.sum(), (n, 1))


# --- models loaded from files ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("backend", "evil", "backend must be one of numba, numpy; got 'evil'"),
        ("n_threads", -3, "n_threads must be None or a positive whole number"),
        ("n_threads", "8", "n_threads must be None or a positive whole number"),
        ("learning_rate_init", -1, "learning_rate_init must be None or a positive number"),
        ("shuffle", "no", "shuffle must be True or False"),
    ],
)
def test_a_saved_configuration_is_checked_at_load(field, value, message, tmp_path):
    from fastnn import load
    from fastnn.files.persist import ModelFileError, save_model

    fitted = small().fit(X, y)
    path = tmp_path / "model.npz"
    save_model(path, fitted._params(), activation="relu", classes=fitted.classes_,
               config={**fitted.get_params(), field: value})  # fmt: skip
    with pytest.raises(ModelFileError, match=f"{path}: the saved configuration.*{message}"):
        load(path)


def test_a_thread_count_from_a_bigger_machine_loads_and_predicts(tmp_path):
    from fastnn import load

    fitted = small(n_threads=1).fit(X, y)
    fitted.n_threads = 10**6
    fitted.save(tmp_path / "model.npz")
    with pytest.warns(UserWarning, match="n_threads=1000000, more than this machine"):
        loaded = load(tmp_path / "model.npz")
    assert loaded.n_threads is None
    loaded.set_params(backend=numba_or_skip())
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))


# --- warm start --------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_warm_start_goes_on_from_the_previous_fit(backend):
    X8 = np.clip(X * 30 + 128, 0, 255).astype(np.uint8)
    in_one_go = small(backend=backend, max_iter=5).fit(X8, y)
    warm = small(backend=backend, max_iter=2, warm_start=True).fit(X8, y)
    warm.set_params(max_iter=3).fit(X8, y)
    assert warm.n_iter_ == 5 and warm.loss_curve_ == in_one_go.loss_curve_
    for a, b in zip(warm.coefs_ + warm.intercepts_, in_one_go.coefs_ + in_one_go.intercepts_,
                    strict=True):  # fmt: skip
        np.testing.assert_array_equal(a, b)
    cold = small(backend=backend, max_iter=2).fit(X8, y).set_params(max_iter=3).fit(X8, y)
    assert cold.n_iter_ == 3  # without warm_start each fit starts anew


def test_warm_start_needs_the_same_classes_and_network():
    model = small(warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match=r"warm_start=True needs y with the classes .*\[0, 1, 2\]"):
        model.fit(X, y % 2)
    with pytest.raises(ValueError, match=r"network of the previous fit \(hidden layers \(16,\)"):
        model.set_params(hidden_layer_sizes=8).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but MLPClassifier is expecting 20"):
        model.set_params(hidden_layer_sizes=16).fit(X[:, :5], y)


def test_the_commands_presets_as_estimators():
    default = MLPClassifier.from_preset()
    # The command's default preset is the estimator's defaults, with the command's seed.
    assert default.get_params() == MLPClassifier(random_state=0).get_params()
    seeds = MLPClassifier.from_preset("seeds", max_iter=3, backend="numpy")
    assert (seeds.hidden_layer_sizes, seeds.init, seeds.dtype, seeds.batch_size) == (
        (10,), "uniform", "float64", "full",
    )  # fmt: skip
    assert seeds.max_iter == 3 and seeds.learning_rate_init == 0.1  # an override wins
    # A full batch: one step per epoch over every sample.
    assert seeds.fit(X, y).t_ == 3 * len(X) and seeds._optimizer_state.step == 3
    fashion = MLPClassifier.from_preset("fashion")
    assert (fashion.hidden_layer_sizes, fashion.dropout, fashion.max_iter) == (
        (512, 256),
        0.2,
        40,
    )
    augmented = MLPClassifier.from_preset("best-augmented")
    assert (augmented.hidden_layer_sizes, augmented.augment, augmented.max_iter) == (
        (800, 800),
        {"kind": "elastic", "alpha": 16.0},
        60,
    )
    with pytest.raises(ValueError, match="one of default, best, best-augmented, fashion, seeds"):
        MLPClassifier.from_preset("b")


def test_a_loaded_models_weights_are_read_only(tmp_path):
    small().fit(X, y).save(tmp_path / "m.npz")
    loaded = load(tmp_path / "m.npz")
    assert not any(a.flags.writeable for a in loaded.coefs_ + loaded.intercepts_)
    loaded.partial_fit(X, y)  # trains on copies of its own
    assert not any(a.flags.writeable for a in loaded.coefs_ + loaded.intercepts_)
