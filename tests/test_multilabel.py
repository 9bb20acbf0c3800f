"""MLPClassifier on a multilabel indicator matrix: scikit-learn's conventions (classes_, the
shapes and types of predict and predict_proba, subset accuracy), on both backends."""

import numpy as np
import pytest
from test_estimator import require_sklearn

from fastnn import MLPClassifier
from fastnn.backends.tolerance import TRAINED


def multilabel_data(n=300, d=8, labels=4, seed=0):
    """Standardised features; label j is on where a linear function of them is positive."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = (X @ rng.normal(size=(d, labels)) > 0.3).astype(np.int64)
    return X, Y


X, Y = multilabel_data()


def small(**params) -> MLPClassifier:
    defaults = dict(hidden_layer_sizes=16, backend="numpy", batch_size=32, max_iter=30,
                    learning_rate_init=0.01, random_state=0)  # fmt: skip
    return MLPClassifier(**{**defaults, **params})


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_predictions_follow_scikit_learns_conventions(backend):
    require_sklearn()
    from sklearn.datasets import make_multilabel_classification
    from sklearn.metrics import accuracy_score
    from sklearn.neural_network import MLPClassifier as Theirs

    counts, Y_small = make_multilabel_classification(60, 7, n_classes=3, random_state=1)
    X_small = (counts - counts.mean(axis=0)) / counts.std(axis=0)
    ours = small(backend=backend).fit(X_small, Y_small)
    theirs = Theirs(hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    with pytest.warns(UserWarning):  # theirs has not converged in 30 epochs
        theirs.fit(X_small, Y_small)
    for name in ("classes_", "out_activation_", "n_outputs_"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
    predicted, want = ours.predict(X_small), theirs.predict(X_small)
    assert predicted.shape == want.shape and predicted.dtype == want.dtype
    assert set(np.unique(predicted)) <= {0, 1}
    proba = ours.predict_proba(X_small)
    assert proba.shape == theirs.predict_proba(X_small).shape
    np.testing.assert_array_equal(predicted, (proba > 0.5).astype(int))
    assert ours.score(X_small, Y_small) == accuracy_score(Y_small, predicted)  # subset accuracy
    assert ours.score(X_small, Y_small) == np.mean((predicted == Y_small).all(axis=1))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("hidden", [16, (16, 8)])
def test_multilabel_learns_on_both_backends_alike(backend, hidden):
    model = small(backend=backend, hidden_layer_sizes=hidden).fit(X, Y)
    assert model.out_activation_ == "logistic" and model.classes_.tolist() == [0, 1, 2, 3]
    chance = np.mean((Y == np.round(Y.mean(axis=0))).all(axis=1))  # each label's majority
    assert model.score(X, Y) > chance + 0.4, (model.score(X, Y), chance)
    reference = small(hidden_layer_sizes=hidden, dtype="float64").fit(X, Y)
    ours = small(backend=backend, hidden_layer_sizes=hidden, dtype="float64").fit(X, Y)
    np.testing.assert_allclose(ours.loss_curve_, reference.loss_curve_, rtol=TRAINED["float64"])
    np.testing.assert_array_equal(ours.predict(X), reference.predict(X))


def test_the_loss_is_binary_cross_entropy_summed_over_the_labels():
    """loss_ is scikit-learn's binary_log_loss of the epoch: at the start, with outputs near
    0.5, about ln 2 for each label."""
    model = small(max_iter=1, learning_rate_init=1e-9, hidden_layer_sizes=4, init="xavier")
    model.fit(X * 1e-3, Y)
    assert model.loss_ == pytest.approx(4 * np.log(2), rel=1e-3)


def test_early_stopping_scores_subset_accuracy():
    model = small(early_stopping=True, max_iter=60, n_iter_no_change=5).fit(X, Y)
    assert len(model.validation_scores_) == model.n_iter_
    assert all(0 <= s <= 1 for s in model.validation_scores_)
    assert model.best_validation_score_ == max(model.validation_scores_)


def test_partial_fit_needs_no_classes_and_keeps_the_labels():
    model = small()
    for _ in range(2):
        model.partial_fit(X, Y)
    assert model.n_iter_ == 2 and model.classes_.tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="y has 3 label columns; .* indicator matrix of 4"):
        model.partial_fit(X, Y[:, :3])
    with pytest.raises(ValueError, match="one label a sample; .* indicator matrix of 4 labels"):
        model.partial_fit(X, Y[:, 0])


@pytest.mark.parametrize(
    ("y_bad", "message"),
    [
        (np.where(Y == 1, 2, 0), r"2-D y \(300, 4\) is a multilabel indicator .* only 0 and 1"),
        (np.full((300, 4), "a"), r"only 0 and 1"),
        (Y[:-1], "X has 300 samples but y has 299 rows of labels"),
    ],
)
def test_bad_indicator_matrices(y_bad, message):
    with pytest.raises(ValueError, match=message):
        small().fit(X, y_bad)


def test_warm_start_needs_the_same_kind_of_y():
    model = small(max_iter=2, warm_start=True).fit(X, Y)
    with pytest.raises(ValueError, match="warm_start=True needs y with the labels"):
        model.fit(X, Y[:, 0])
    assert model.fit(X, Y).n_iter_ == 4
