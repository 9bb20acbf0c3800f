"""Runaway training (a blow-up, a loss that is not a number, or a collapse to one output) is
caught after the epoch that did it, the same way in both backends and both front ends, and the
weights from before that epoch are kept."""

import json
import re

import numpy as np
import pytest

import fastnn
from fastnn.backends import get_backend
from fastnn.core import training
from fastnn.core.model import init_params
from fastnn.core.optim import Optimizer, OptimizerState, Schedule
from fastnn.data import load_dataset
from fastnn.train import command as train

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def mnist():
    X, y, _, _ = load_dataset("mnist", download=False)
    return X[:3000], y[:3000]


def model(backend, lr, **kwargs):
    return fastnn.MLPClassifier(
        hidden_layer_sizes=32, solver="sgd", learning_rate="constant", learning_rate_init=lr,
        max_iter=3, random_state=0, backend=backend, **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize(
    "lr, what",
    [
        (1e7, "diverged in epoch 1"),
        (1e6, "diverged in epoch 1"),
        (1e3, "blew up"),
    ],
)
def test_runaway_training_is_caught_alike_in_both_backends(backend, lr, what, mnist):
    with pytest.raises(training.TrainingDiverged, match=what) as caught:
        model(backend, lr).fit(*mnist)
    message = str(caught.value)
    assert f"try a smaller one, e.g. {lr / 10:g}" in message and "learning_rate_init" in message
    assert "The inputs reach" not in message  # pixels: the kernels scale them


def test_a_run_diverging_on_unscaled_inputs_says_to_scale_them(mnist):
    """Features in the thousands, dense and sparse, and float pixels of 0-255 (not / 255): a
    smaller rate alone is not the advice a careful user needs."""
    import scipy.sparse

    y = mnist[1][:500]
    features = np.random.default_rng(0).normal(size=(500, 50)) * 1000
    said = re.escape(
        "in absolute value: scaling them to about unit size first (pixels / 255, or each "
        "feature to mean 0 and variance 1) matters more."
    )
    for inputs in (features, scipy.sparse.csr_matrix(features)):
        with pytest.raises(
            training.TrainingDiverged, match=r"The inputs reach \d\.\d+e\+03 " + said
        ):
            model("numpy", 1.0).fit(inputs, y)
    pixels = mnist[0][:500].astype(np.float32)
    with (
        pytest.warns(UserWarning, match="look like pixels"),
        pytest.raises(training.TrainingDiverged, match="The inputs reach 255 " + said),
    ):
        model("numpy", 1.0).fit(pixels, y)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_collapse_to_one_output_stops_training_with_a_warning(backend, mnist):
    """lr 4 kills every hidden unit in the second epoch: the loss stays finite, but the model
    would predict one class for everything."""
    with pytest.warns(training.TrainingCollapsedWarning, match="collapsed: it gives the same") as w:
        fitted = model(backend, 4.0).fit(*mnist)
    kept = fitted.n_iter_  # the epoch that collapsed was undone
    assert kept < 3 and len(fitted.loss_curve_) == kept
    assert f"diverged in epoch {kept + 1}" in str(w[0].message)
    P = fitted.predict_proba(mnist[0])
    assert not (P == P[0]).all()  # the kept weights still respond to their input


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_healthy_run_is_not_flagged(backend, mnist):
    fitted = model(backend, 0.5).fit(*mnist)
    assert fitted.n_iter_ == 3 and fitted.score(*mnist) > 0.85


def test_numba_training_judges_its_health_without_numpy_matmuls(mnist, monkeypatch):
    """The checks after each epoch run on the training backend: a NumPy matmul there would
    leave OpenBLAS's threads spinning into the next numba epoch (see training._Probe)."""
    numpy_backend = type(get_backend("numpy"))

    def refuse(*args, **kwargs):
        raise AssertionError("the numpy backend ran during a numba fit")

    monkeypatch.setattr(numpy_backend, "forward", refuse)
    monkeypatch.setattr(numpy_backend, "predict_proba", refuse)
    fitted = model("numba", 0.5).fit(*mnist)
    assert fitted.n_iter_ == 3
    with pytest.warns(training.TrainingCollapsedWarning):  # the collapse check still runs
        model("numba", 4.0).fit(*mnist)


@pytest.mark.parametrize(
    ("backend", "optimizer"),
    [("numpy", Optimizer()), ("numba", Optimizer()), ("numpy", Optimizer("adam")),
     ("numba", Optimizer("adam")), ("numpy", Optimizer(momentum=0.9))],
)  # fmt: skip
def test_the_weights_from_before_the_diverging_epoch_are_kept(backend, optimizer, mnist):
    """...and the optimizer's state and the schedule's count of samples, so that training can
    go on from there as if the diverging epoch had never run."""
    X, y = mnist
    engine = get_backend(backend)
    params = init_params(784, 32, 10, "he", 0, "float32")
    state = OptimizerState.fresh(optimizer, params)
    start = params.copy()
    seen = []

    def run(lr, epochs):
        how = training.Training(optimizer, state, Schedule("constant", lr, 0.5, 10), 128, "relu")
        how.schedule.samples_seen = len(seen) * len(X)
        outcome = training.run_epochs(
            engine, params, X, y, how, epochs=epochs, first_epoch=len(seen) + 1,
            rng=np.random.default_rng(1), n_threads=None,
            after_epoch=lambda r: seen.append(r) and False,
        )  # fmt: skip
        assert how.schedule.samples_seen == len(seen) * len(X)
        return outcome

    outcome = run(1e6, 2)
    assert outcome.diverged and outcome.epochs_run == 0 and not seen
    for got, want in zip(params.arrays(), start.arrays(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert state.step == 0 and not any(a.any() for a in state.first + state.second)
    assert run(0.1 if optimizer.solver == "sgd" else 1e-3, 1).diverged is None
    after_one, state_after_one = params.copy(), state.copy()
    outcome = run(1e6, 1)
    assert "diverged in epoch 2" in outcome.diverged
    for got, want in zip(params.arrays(), after_one.arrays(), strict=True):
        np.testing.assert_array_equal(got, want)
    assert state.step == state_after_one.step > 0
    for got, want in zip(
        state.first + state.second, state_after_one.first + state_after_one.second, strict=True
    ):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_the_command_saves_the_kept_weights_and_the_metrics(backend, tmp_path, capsys):
    saved, metrics = tmp_path / "model.npz", tmp_path / "metrics.json"
    args = ["--backend", backend, "--hidden", "16", "--epochs", "3", "--lr", "1e6",
            "--save", str(saved), "--metrics", str(metrics)]  # fmt: skip
    code = train.main(args)
    out, err = capsys.readouterr()
    assert code == 1
    assert "fastnn.train: error: training diverged in epoch 1" in err and "Traceback" not in err
    assert "training diverged after 0 of 3 epochs" in out
    record = json.loads(metrics.read_text())
    assert record["status"] == "diverged" and record["epochs_completed"] == 0
    loaded = fastnn.load(saved)
    initial = init_params(784, 16, 10, "he", 0, "float32")
    np.testing.assert_array_equal(loaded.coefs_[0], initial.coefs[0])  # the weights before epoch 1
