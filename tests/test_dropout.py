"""Dropout: the masks against their written formula, the reference against the equations, the
Numba kernels against the reference tensor by tensor, and the same bits on 1 and 2 threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from test_numba_equivalence import check, make_data

import fastnn
from fastnn.backends import get_backend
from fastnn.backends.numpy_backend import activate, forward
from fastnn.backends.tolerance import ONE_PASS, TRAINED
from fastnn.core.dropout import Dropout, check_rates
from fastnn.core.model import init_params
from fastnn.train import options

numpy_backend = get_backend("numpy")
numba_backend = get_backend("numba")

M64 = 2**64 - 1


def splitmix_finaliser(z: int) -> int:
    """Written out from splitmix64's published finaliser, independently of fastnn.core.dropout."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def test_masks_follow_the_formula_of_the_docstring():
    dropout = Dropout((0.25, 0.5), seed=2**63 + 12345, epoch=7)
    rows = np.array([0, 5, 2**40 + 3])
    masks = dropout.masks(rows, [6, 3], np.dtype("float64"))
    for layer, rate in enumerate(dropout.rates):
        key = splitmix_finaliser(dropout.seed ^ 0x6A09E667F3BCC909)
        key = splitmix_finaliser(splitmix_finaliser(key ^ 7) ^ layer)
        for n, row in enumerate(rows.tolist()):
            sample = splitmix_finaliser(key ^ row)
            for j in range(masks[layer].shape[1]):
                draw = splitmix_finaliser((sample + (j + 1) * 0x9E3779B97F4A7C15) & M64) >> 11
                want = 1 / (1 - rate) if draw >= int(rate * 2**53) else 0.0
                assert masks[layer][n, j] == want, (layer, row, j)
    inputs = dropout._replace(input_rate=0.4).input_mask(rows, 9, np.dtype("float64"))
    key = splitmix_finaliser(splitmix_finaliser(dropout.seed ^ 0x6A09E667F3BCC909) ^ 7)
    key = splitmix_finaliser(key ^ 2**32)  # the inputs' layer number
    for n, row in enumerate(rows.tolist()):
        sample = splitmix_finaliser(key ^ row)
        for k in range(9):
            draw = splitmix_finaliser((sample + (k + 1) * 0x9E3779B97F4A7C15) & M64) >> 11
            assert inputs[n, k] == (1 / 0.6 if draw >= int(0.4 * 2**53) else 0.0), (row, k)
    assert dropout.input_mask(rows, 9, np.dtype("float64")) is None  # input_rate 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_masks_drop_the_rate_and_scale_the_rest(dtype):
    masks = Dropout((0.2, 0.5, 0.0), 1, 1).masks(np.arange(4000), [50, 50, 50], np.dtype(dtype))
    for rate, mask in zip((0.2, 0.5), masks, strict=False):
        dropped = float((mask == 0).mean())  # 200,000 draws: 5 sigma is under 0.006
        assert abs(dropped - rate) < 0.006, (rate, dropped)
        assert mask.dtype == dtype
        np.testing.assert_array_equal(np.unique(mask), np.array([0, 1 / (1 - rate)], dtype))
    assert masks[2] is None  # rate 0: no mask at all


def test_a_mask_depends_only_on_seed_epoch_layer_row_and_unit():
    d = Dropout((0.5,), 3, 2)
    everything = d.masks(np.arange(50), [40], np.dtype("float64"))[0]
    some = d.masks(np.array([41, 7, 7]), [40], np.dtype("float64"))[0]
    np.testing.assert_array_equal(some, everything[[41, 7, 7]])
    np.testing.assert_array_equal(
        d.masks(np.arange(50), [10], np.dtype("float64"))[0], everything[:, :10]
    )
    for other in (d._replace(epoch=3), d._replace(seed=4)):
        assert (other.masks(np.arange(50), [40], np.dtype("float64"))[0] != everything).any()


def test_the_reference_multiplies_each_activation_by_its_factor():
    params = init_params(12, (9, 5), 3, seed=0, dtype="float64")
    X = np.random.default_rng(0).normal(size=(8, 12))
    masks = Dropout((0.5, 0.3), 9, 1).masks(np.arange(8), [9, 5], np.dtype("float64"))
    fwd = forward(params, X, "leaky_relu", masks)
    A1 = activate(X @ params.coefs[0] + params.intercepts[0], "leaky_relu") * masks[0]
    A2 = activate(A1 @ params.coefs[1] + params.intercepts[1], "leaky_relu") * masks[1]
    np.testing.assert_array_equal(fwd.A[0], A1)
    np.testing.assert_array_equal(fwd.A[1], A2)
    # rate 0 everywhere: the network without dropout, bit for bit
    loss, grads = numpy_backend.loss_and_grads(
        params, X, np.arange(8) % 3, "relu", Dropout((0.0, 0.0), 9, 1)
    )
    want_loss, want_grads = numpy_backend.loss_and_grads(params, X, np.arange(8) % 3, "relu")
    assert loss == want_loss
    for a, b in zip(grads.arrays(), want_grads.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_input_dropout_multiplies_each_input_by_its_factor():
    params = init_params(12, (9,), 3, seed=0, dtype="float64")
    X = np.random.default_rng(2).integers(0, 256, (8, 12)).astype(np.uint8)
    y = np.arange(8) % 3
    dropout = Dropout((0.0,), 4, 2, input_rate=0.3)
    mask = dropout.input_mask(np.arange(8), 12, np.dtype("float64"))
    assert (mask == 0).any() and (mask != 0).any()
    loss, grads = numpy_backend.loss_and_grads(params, X, y, "relu", dropout)
    want_loss, want_grads = numpy_backend.loss_and_grads(params, X / 255 * mask, y, "relu")
    assert loss == want_loss
    for a, b in zip(grads.arrays(), want_grads.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_dropped_units_get_no_gradient():
    """A unit dropped for every sample (all rows share its mask only by chance, so use one row)
    passes nothing back: the weights into it get zero gradient from that row."""
    params = init_params(6, (20,), 3, seed=0, dtype="float64")
    X = np.random.default_rng(1).normal(size=(1, 6))
    dropout = Dropout((0.5,), 5, 1)
    mask = dropout.masks(np.arange(1), [20], np.dtype("float64"))[0][0]
    _, grads = numpy_backend.loss_and_grads(params, X, np.array([2]), "leaky_relu", dropout)
    assert (mask == 0).any() and (mask != 0).any()
    assert (grads.dW[0][:, mask == 0] == 0).all() and (grads.db[0][mask == 0] == 0).all()
    assert (grads.dW[1][mask == 0, :] == 0).all()  # a dropped unit's output was 0


RATES = {1: (0.5,), 2: (0.3, 0.6), 3: (0.2, 0.0, 0.5)}
DROPOUT_CASES = [
    "mnist-like",
    "no-zeros",
    "hidden-300",
    "depth-2",
    "depth-3-wide",
    "batches-over-chunks",
]


def dropout_of(params, epoch=1, input_rate=0.25):
    return Dropout(RATES[len(params.hidden_sizes)], 12345, epoch, input_rate)


@pytest.mark.parametrize("case", DROPOUT_CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("kind", ["uint8", "float"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("input_rate", [0.0, 0.25])
def test_numba_gradients_equal_the_reference(
    case, dtype, kind, activation, input_rate, first_layer
):
    params, X, y, _ = make_data(case, dtype, kind)
    dropout = dropout_of(params, input_rate=input_rate)
    loss, grads = numba_backend.loss_and_grads(params, X, y, activation, dropout)
    want_loss, want_grads = numpy_backend.loss_and_grads(params, X, y, activation, dropout)
    check("loss", loss, want_loss, ONE_PASS[dtype])
    for name, a, b in zip(params.names(), grads.arrays(), want_grads.arrays(), strict=True):
        check("d" + name, a, b, ONE_PASS[dtype])


@pytest.mark.parametrize("case", DROPOUT_CASES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_numba_epochs_equal_the_reference(case, dtype, activation, first_layer):
    params, X, y, batch = make_data(case, dtype, "uint8")
    ours, theirs = params.copy(), params.copy()
    for epoch in (1, 2):
        order = np.random.default_rng(epoch).permutation(len(X))
        dropout = dropout_of(params, epoch)
        got = numba_backend.train_epoch(ours, X, y, order, batch, 0.5, activation, dropout=dropout)
        want = numpy_backend.train_epoch(
            theirs, X, y, order, batch, 0.5, activation, dropout=dropout
        )
        check(f"epoch {epoch} loss", got[0], want[0], TRAINED[dtype])
    for name, a, b in zip(ours.names(), ours.arrays(), theirs.arrays(), strict=True):
        check(name, a, b, TRAINED[dtype])


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs at least 2 Numba threads")
@pytest.mark.parametrize("case", ["depth-2", "batches-over-chunks"])
def test_same_bits_with_one_and_two_threads_and_run_after_run(case, first_layer):
    results = []
    for threads in (1, 2, 2):
        params, X, y, batch = make_data(case, "float32", "uint8")
        order = np.random.default_rng(0).permutation(len(X))
        with numba_backend.threads(threads):
            loss = numba_backend.train_epoch(
                params, X, y, order, batch, 0.5, dropout=dropout_of(params)
            )
        results.append((loss, b"".join(a.tobytes() for a in params.arrays())))
    assert results[0] == results[1], "1 and 2 threads differ"
    assert results[1] == results[2], "two runs differ"


def test_bad_dropout_is_refused_clearly():
    with pytest.raises(ValueError, match="dropout rates must be numbers from 0 to less than 1"):
        check_rates(1.0, 1)
    with pytest.raises(ValueError, match="one rate or one per hidden layer \\(2\\)"):
        check_rates((0.1, 0.2, 0.3), 2)
    assert check_rates(0.25, 3) == (0.25, 0.25, 0.25) and check_rates([0, 0.5], 2) == (0.0, 0.5)
    X, y = np.random.default_rng(0).normal(size=(30, 4)), np.arange(30) % 2
    for bad in (-0.1, 1, "half", (0.1, 0.2)):
        with pytest.raises(ValueError, match="dropout"):
            fastnn.MLPClassifier(hidden_layer_sizes=5, dropout=bad, backend="numpy").fit(X, y)
    for bad in (-0.1, 1.0, "0.2"):
        with pytest.raises(ValueError, match="input_dropout must be a number from 0 to less"):
            fastnn.MLPClassifier(hidden_layer_sizes=5, input_dropout=bad).fit(X, y)
    parse = options.build_parser().parse_args
    with pytest.raises(ValueError, match="--input-dropout must be a number from 0 to less than 1"):
        options.resolve(parse(["--input-dropout", "1"]))
    with pytest.raises(ValueError, match="dropout must be one rate or one per hidden layer"):
        options.resolve(parse(["--hidden", "8", "4", "--dropout", "0.1", "0.1", "0.1"]))
    params = init_params(4, (5,), 2, seed=0)
    with pytest.raises(ValueError, match="one rate per hidden layer"):
        numpy_backend.train_epoch(
            params, X, y, np.arange(30), 8, 0.1, dropout=Dropout((0.1, 0.1), 0, 1)
        )


def test_the_estimator_drops_in_training_only_and_both_backends_agree():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 30)).astype(np.uint8)
    y = (X[:, :15].sum(axis=1) > X[:, 15:].sum(axis=1)).astype(int)
    fitted = {
        backend: fastnn.MLPClassifier(
            hidden_layer_sizes=(24, 12), dropout=(0.3, 0.2), input_dropout=0.2, max_iter=4,
            batch_size=32, learning_rate_init=0.05, dtype="float64", backend=backend,
            random_state=1,
        ).fit(X, y)
        for backend in ("numpy", "numba")
    }  # fmt: skip
    numpy_model, numba_model = fitted["numpy"], fitted["numba"]
    np.testing.assert_allclose(
        numba_model.loss_curve_, numpy_model.loss_curve_, rtol=TRAINED["float64"]
    )
    np.testing.assert_array_equal(numba_model.predict(X), numpy_model.predict(X))
    # Prediction drops nothing: the plain forward pass of the trained weights.
    plain = forward(numba_model._params(), X / 255.0, "relu").P
    np.testing.assert_allclose(numba_model.predict_proba(X), plain, rtol=ONE_PASS["float64"])
    # And dropout changed the training: without it, other weights.
    without = fastnn.MLPClassifier(
        hidden_layer_sizes=(24, 12), max_iter=4, batch_size=32, learning_rate_init=0.05,
        dtype="float64", backend="numpy", random_state=1,
    ).fit(X, y)  # fmt: skip
    assert not np.array_equal(without.coefs_[0], numpy_model.coefs_[0])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_max_norm_bounds_each_hidden_units_incoming_weights(backend):
    """The constraint the dropout paper trains with: after every step no hidden unit's incoming
    weight vector is longer than max_norm; the output layer is not constrained."""
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (200, 30)).astype(np.uint8)
    y = (X[:, :15].sum(axis=1) > X[:, 15:].sum(axis=1)).astype(int)
    model = fastnn.MLPClassifier(
        hidden_layer_sizes=(16, 8), max_norm=0.5, dropout=0.2, max_iter=3, batch_size=20,
        solver="sgd", learning_rate_init=0.5, init="uniform", backend=backend, random_state=0,
    ).fit(X, y)  # fmt: skip
    for W in model.coefs_[:-1]:
        norms = np.sqrt((W.astype(np.float64) ** 2).sum(axis=0))
        assert norms.max() <= 0.5 * (1 + 1e-6) and norms.max() > 0.49  # the bound was reached
    assert np.sqrt((model.coefs_[-1].astype(np.float64) ** 2).sum(axis=0)).max() > 0.5
    with pytest.raises(ValueError, match="max_norm must be None or a positive number"):
        fastnn.MLPClassifier(max_norm=-1.0, backend=backend).fit(X, y)
