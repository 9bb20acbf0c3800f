"""Two hidden layers and Adam on real MNIST: both backends train it and, in float64, predict
the same classes."""

import numpy as np
import pytest

import fastnn
from fastnn.backends.tolerance import TRAINED
from fastnn.data import load_dataset

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def mnist():
    X, y, X_test, y_test = load_dataset("mnist", download=False)
    return X[:6000], y[:6000], X_test[:2000], y_test[:2000]


def test_256_128_adam_float64_same_predictions_on_both_backends(mnist):
    X, y, X_test, y_test = mnist
    fitted = {}
    for backend in ("numpy", "numba"):
        fitted[backend] = fastnn.MLPClassifier(
            hidden_layer_sizes=(256, 128), solver="adam", learning_rate_init=1e-3, max_iter=2,
            dtype="float64", backend=backend, random_state=0,
        ).fit(X, y)  # fmt: skip
    numpy_model, numba_model = fitted["numpy"], fitted["numba"]
    np.testing.assert_allclose(
        numba_model.loss_curve_, numpy_model.loss_curve_, rtol=TRAINED["float64"]
    )
    predicted = numba_model.predict(X_test)
    np.testing.assert_array_equal(predicted, numpy_model.predict(X_test))
    assert (predicted == y_test).mean() > 0.8  # it learned: 88% here after 2 epochs on 6,000 rows
