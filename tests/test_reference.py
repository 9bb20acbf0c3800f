"""The NumPy reference against finite differences, and its interface contract."""

import numpy as np
import pytest

from fastnn.backends import Grads, get_backend
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer

numpy_backend = get_backend("numpy")


def numerical_grad(loss_of, array: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(array)
    for idx in np.ndindex(array.shape):
        saved = array[idx]
        array[idx] = saved + eps
        up = loss_of()
        array[idx] = saved - eps
        down = loss_of()
        array[idx] = saved
        grad[idx] = (up - down) / (2 * eps)
    return grad


def penalised_loss_and_grads(params, X, y, activation, alpha):
    """The batch's mean loss and gradients with the L2 penalty as the optimizer step adds it
    (fastnn.core.optim): alpha / 2 * sum(W * W) / n, and alpha * W / n."""
    loss, grads = numpy_backend.loss_and_grads(params, X, y, activation)
    n = len(X)
    loss += sum(0.5 * alpha * float((W * W).sum()) for W in params.coefs) / n
    dW = [g + alpha / n * W for g, W in zip(grads.dW, params.coefs, strict=True)]
    return loss, Grads(dW, grads.db)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize(
    ("hidden", "scheme", "alpha"),
    [(7, "uniform", 0.0), (7, "he", 0.0), (7, "xavier", 0.0), ((6, 5), "he", 0.3),
     ((6, 4, 5), "xavier", 0.3), ((5, 3, 4), "uniform", 1e-2)],
)  # fmt: skip
def test_gradients_match_finite_differences(activation, hidden, scheme, alpha):
    rng = np.random.default_rng(3)
    params = init_params(13, hidden, 5, scheme=scheme, seed=4, dtype="float64")
    for b in params.intercepts:
        b[:] = rng.normal(0, 0.5, b.shape)  # he/xavier start at zero: exercise the biases
    X = rng.normal(size=(9, 13))
    y = rng.integers(0, 5, 9)
    _, grads = penalised_loss_and_grads(params, X, y, activation, alpha)

    def loss_of():
        return penalised_loss_and_grads(params, X, y, activation, alpha)[0]

    assert_finite_differences(params, grads, loss_of)


def assert_finite_differences(params, grads, loss_of) -> None:
    """Every gradient of `grads` matches the central differences of loss_of() over its
    parameter array."""
    names = ["d" + name for name in params.names()]
    for name, array, analytic in zip(names, params.arrays(), grads.arrays(), strict=True):
        numeric = numerical_grad(loss_of, array)
        scale = np.abs(numeric).max() + np.abs(analytic).max()
        rel = np.abs(numeric - analytic).max() / scale
        assert rel < 1e-6, f"{name}: relative error {rel:.2e}"


def targets_of(output: str, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """An indicator matrix for "logistic", numbers of about unit size for "identity"."""
    if output == "logistic":
        return (rng.random(shape) < 0.5).astype(np.int64)
    return rng.normal(size=shape)


@pytest.mark.parametrize("output", ["logistic", "identity"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("hidden", [7, (6, 5)])
def test_gradients_of_logistic_and_identity_outputs_match_finite_differences(
    output, activation, hidden
):
    """For "identity" the gradients are, as scikit-learn's, those of half the squared error
    summed over the outputs, while the loss reported (scikit-learn's squared_loss) averages
    over them too: the gradients are n_out times the reported loss's."""
    rng = np.random.default_rng(5)
    params = init_params(13, hidden, 4, scheme="he", seed=4, dtype="float64")
    for b in params.intercepts:
        b[:] = rng.normal(0, 0.5, b.shape)
    X = rng.normal(size=(9, 13))
    y = targets_of(output, rng, (9, 4))
    descended = params.n_out if output == "identity" else 1
    _, grads = numpy_backend.loss_and_grads(params, X, y, activation, None, output)

    def loss_of():
        return descended * numpy_backend.loss_and_grads(params, X, y, activation, None, output)[0]

    assert_finite_differences(params, grads, loss_of)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("output", ["logistic", "identity"])
def test_the_losses_are_scikit_learns(dtype, output):
    """The reported loss is scikit-learn's binary_log_loss (probabilities clipped to the dtype's
    eps: some outputs here saturate) or squared_loss of the outputs, and the epoch loss adds
    its L2 penalty, alpha / 2 * sum(W * W) / n."""
    pytest.importorskip("sklearn")
    from sklearn.neural_network._base import binary_log_loss, squared_loss

    rng = np.random.default_rng(2)
    params = init_params(6, (5, 4), 3, seed=2, dtype=dtype)
    params.intercepts[-1][:] = np.array([60.0, -60.0, 0.0], dtype)  # sigmoid 1 and 0
    X = rng.normal(size=(8, 6)).astype(dtype)
    y = targets_of(output, rng, (8, 3))
    P = numpy_backend.predict_proba(params, X, "relu", output)
    want = (binary_log_loss if output == "logistic" else squared_loss)(y, P)
    loss, _ = numpy_backend.loss_and_grads(params, X, y, "relu", None, output)
    assert loss == pytest.approx(float(want), rel=1e-6 if dtype == "float32" else 1e-13)
    penalty = 0.35 * sum(float((W.astype(np.float64) ** 2).sum()) for W in params.coefs) / 8
    epoch_loss, _ = numpy_backend.train_epoch(
        params, X, y, np.arange(8), 8, 0.1, "relu", Optimizer(alpha=0.7), None, None, output
    )
    assert epoch_loss == pytest.approx(loss + penalty, rel=1e-6 if dtype == "float32" else 1e-13)


def test_bad_targets_for_each_output_kind():
    params = init_params(3, 2, 2, seed=0)
    X = np.zeros((4, 3))
    cases = [
        ("logistic", np.zeros(4), r"y must be 2-D with a row of 2 targets per row of X"),
        ("logistic", np.full((4, 2), 2), "indicator matrix of 0 and 1"),
        ("identity", np.full((4, 2), np.nan), "NaN or infinite targets"),
        ("identity", np.full((4, 2), "a"), "y must hold numbers"),
        ("identity", np.zeros((3, 2)), r"per row of X \(4, 2\); got \(3, 2\)"),
        ("sigmoid", np.zeros((4, 2)), "output must be one of softmax, logistic, identity"),
    ]
    for output, y, message in cases:
        with pytest.raises(ValueError, match=message):
            numpy_backend.loss_and_grads(params, X, y, "relu", None, output)


def test_the_penalty_in_the_epoch_loss_is_scikit_learns():
    """The epoch loss of one full batch with alpha: the mean cross-entropy plus
    alpha / 2 * sum(W * W) / n, measured before the update."""
    params = init_params(6, (5, 4), 3, seed=2, dtype="float64")
    X = np.random.default_rng(1).normal(size=(8, 6))
    y = np.arange(8) % 3
    want, _ = penalised_loss_and_grads(params, X, y, "relu", 0.7)
    got, _ = numpy_backend.train_epoch(
        params, X, y, np.arange(8), 8, 0.1, "relu", Optimizer(alpha=0.7)
    )
    assert got == pytest.approx(want, rel=1e-13)


def test_bias_gradient_sums_over_batch_only():
    params = init_params(4, (3, 5), 2, scheme="uniform", seed=0, dtype="float64")
    X = np.random.default_rng(0).normal(size=(6, 4))
    _, grads = numpy_backend.loss_and_grads(params, X, np.array([0, 1, 1, 0, 1, 0]))
    assert [b.shape for b in grads.db] == [(3,), (5,), (2,)]
    # softmax gradients sum to zero per sample, so the output bias's must too; a sum over
    # everything hides this.
    np.testing.assert_allclose(grads.db[-1].sum(), 0, atol=1e-15)


def test_uint8_input_is_scaled_like_pixels():
    params = init_params(5, 4, 3, seed=1, dtype="float32")
    X8 = np.array([[0, 255, 17, 128, 3]], dtype=np.uint8)
    from_uint8 = numpy_backend.forward(params, X8).Z[-1]
    from_float = numpy_backend.forward(params, X8.astype(np.float32) / np.float32(255)).Z[-1]
    np.testing.assert_array_equal(from_uint8, from_float)


def test_float32_stays_float32():
    params = init_params(6, 4, 3, seed=1, dtype="float32")
    X = np.random.default_rng(0).integers(0, 256, (5, 6), dtype=np.uint8)
    fwd = numpy_backend.forward(params, X)
    assert all(a.dtype == np.float32 for a in [*fwd.Z, *fwd.A, fwd.P])
    numpy_backend.train_epoch(params, X, np.array([0, 1, 2, 0, 1]), np.arange(5), 2, 0.1)
    assert all(a.dtype == np.float32 for a in params.arrays())


def test_a_prediction_is_the_forward_pass_a_chunk_of_rows_at_a_time(monkeypatch):
    """The reference predicts PREDICTION_ROWS rows at a time, to bound its memory; every
    chunk's rows, the last one's shorter too, come out as in one forward pass of all."""
    from fastnn.backends import numpy_backend as module

    params = init_params(7, (5,), 3, seed=2, dtype="float64")
    X = np.random.default_rng(3).integers(0, 256, (10, 7), dtype=np.uint8)
    whole = numpy_backend.forward(params, X).P
    monkeypatch.setattr(module, "PREDICTION_ROWS", 4)
    passes = []
    forward = module.NumpyBackend.forward
    monkeypatch.setattr(
        module.NumpyBackend,
        "forward",
        lambda self, p, X, *a, **k: passes.append(len(X)) or forward(self, p, X, *a, **k),
    )
    np.testing.assert_allclose(numpy_backend.predict_proba(params, X), whole, rtol=1e-15)
    assert passes == [4, 4, 2]
    assert numpy_backend.predict_proba(params, X[:0]).shape == (0, 3)


def test_full_batch_epoch_is_one_gradient_step():
    params = init_params(6, 4, 3, seed=2, dtype="float64")
    X = np.random.default_rng(1).normal(size=(8, 6))
    y = np.arange(8) % 3
    loss, grads = numpy_backend.loss_and_grads(params, X, y)
    expected = [p - 0.5 * g for p, g in zip(params.arrays(), grads.arrays(), strict=True)]
    epoch_loss, _ = numpy_backend.train_epoch(params, X, y, np.arange(8), 8, 0.5)
    assert epoch_loss == pytest.approx(loss, rel=1e-12)
    for name, got, want in zip(params.names(), params.arrays(), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, err_msg=name)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive"),
        ({"lr": -1.0}, "learning rate must be a positive"),
        ({"lr": float("nan")}, "learning rate must be a positive"),
        ({"activation": "tanh"}, "activation must be one of"),
        ({"order": np.array([0, 9])}, "order holds indices outside"),
    ],
)
def test_bad_epoch_arguments(kwargs, message):
    params = init_params(3, 2, 2, seed=0)
    args = {"order": np.arange(4), "batch_size": 2, "lr": 0.1, "activation": "relu"}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        numpy_backend.train_epoch(params, np.zeros((4, 3)), np.zeros(4, dtype=int), **args)


@pytest.mark.parametrize(
    ("X", "y", "message"),
    [
        (np.zeros((4, 5)), np.zeros(4, dtype=int), "X has 5 features but the network expects 3"),
        (np.zeros(3), np.zeros(1, dtype=int), "X must be 2-D"),
        (np.full((4, 3), np.nan), np.zeros(4, dtype=int), "NaN or infinite"),
        (np.zeros((4, 3)), np.zeros(3, dtype=int), "one label per row"),
        (np.zeros((4, 3)), np.array([0, 1, 2, 0]), r"labels must be in 0\.\.1"),
        (np.zeros((4, 3)), np.zeros(4), "integer class indices"),
    ],
)
def test_bad_arrays(X, y, message):
    params = init_params(3, 2, 2, seed=0)
    with pytest.raises(ValueError, match=message):
        numpy_backend.loss_and_grads(params, X, y)


def test_unknown_backend_lists_choices():
    with pytest.raises(ValueError, match="unknown backend 'torch'; choose one of numba, numpy"):
        get_backend("torch")
