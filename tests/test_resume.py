"""Going on training where a saved model stopped: the optimizer's state, the schedule and the
sample order travel in the model file (format version 2), so 3 epochs, save, load and 2 more
give the same bits as 5 in one go; version 1 files still load and predict as before."""

import json

import numpy as np
import pytest

import fastnn
from fastnn.backends import BACKENDS
from fastnn.core.model import Params, init_params
from fastnn.files import persist
from fastnn.files.history import EPOCH_RECORDS, History
from fastnn.files.persist import ModelFileError
from fastnn.train import command as train
from tests.cli_helpers import run_main, write_kaggle

rng = np.random.default_rng(0)
X = rng.integers(0, 256, (120, 20)).astype(np.uint8)
y = (X[:, :10].sum(axis=1) > X[:, 10:].sum(axis=1)).astype(int) + 2 * (X[:, 0] > 128)
SOLVERS = [
    dict(solver="adam", learning_rate_init=0.01, alpha=1e-3),
    dict(solver="sgd", momentum=0.9, learning_rate="invscaling", power_t=0.3),
    dict(solver="rmsprop", learning_rate_init=0.005, learning_rate="cosine"),
    dict(solver="sgd", dropout=(0.3, 0.1)),  # masks drawn per epoch: the same after a load
]


def _model(backend, **params):
    defaults = dict(hidden_layer_sizes=(9, 7), batch_size=32, max_iter=5, random_state=3,
                    solver="sgd", learning_rate="constant", learning_rate_init=0.1)  # fmt: skip
    return fastnn.MLPClassifier(**{**defaults, "backend": backend, "dtype": "float64", **params})


def _same_bits(a, b):
    for name, x, z in zip(("coefs_", "intercepts_"), (a.coefs_, a.intercepts_),
                          (b.coefs_, b.intercepts_), strict=True):  # fmt: skip
        for layer, (u, v) in enumerate(zip(x, z, strict=True)):
            np.testing.assert_array_equal(u, v, err_msg=f"{name}[{layer}]")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "params", SOLVERS, ids=lambda p: p["solver"] + "-dropout" * ("dropout" in p)
)
def test_partial_fit_goes_on_after_save_and_load(tmp_path, backend, params):
    one_go = _model(backend, **params)
    for _ in range(5):
        one_go.partial_fit(X, y, classes=np.unique(y))
    split = _model(backend, **params)
    for _ in range(3):
        split.partial_fit(X, y, classes=np.unique(y))
    split.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    for _ in range(2):
        loaded.partial_fit(X, y)
    _same_bits(loaded, one_go)
    assert loaded.loss_curve_ == one_go.loss_curve_ and loaded.n_iter_ == 5
    assert loaded._optimizer_state.step == one_go._optimizer_state.step == 5 * 4


def test_fit_starts_a_fresh_optimizer_even_warm(tmp_path):
    """As scikit-learn: warm_start keeps the weights, not the optimizer's moments."""
    model = _model("numpy", solver="adam", learning_rate_init=0.01, warm_start=True, max_iter=2)
    model.fit(X, y)
    first_state = model._optimizer_state
    model.fit(X, y)
    assert model._optimizer_state is not first_state and model._optimizer_state.step == 2 * 4


def _train_args(folder, *extra):
    """A small run; plain SGD at a constant rate unless `extra` says otherwise (the default
    preset's cosine schedule is planned over the run's epochs: see the README)."""
    return ["--backend", "numpy", "--data", str(folder / "train.csv"), "--dev-size", "40",
            "--hidden", "12", "7", "--batch-size", "32", "--solver", "sgd", "--lr", "0.1",
            "--learning-rate", "constant", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("kaggle")
    write_kaggle(folder / "train.csv", 200, with_labels=True)
    return folder


@pytest.mark.parametrize("solver", ["sgd", "adam", "dropout", "augment"])
def test_resume_three_plus_two_is_five(tmp_path, kaggle, capsys, solver):
    dropout, augment = solver == "dropout", solver == "augment"
    solver = "adam" if dropout or augment else solver
    options = ["--solver", solver, "--lr", "0.05" if solver == "sgd" else "0.003"]
    if dropout:
        options += ["--dropout", "0.3", "0.1"]
    if augment:
        options += ["--augment", "elastic", "alpha=8"]
    if solver == "sgd":
        options += ["--momentum", "0.9"]
    five, three, resumed = (tmp_path / name for name in ("5.npz", "3.npz", "3+2.npz"))
    assert (
        run_main(_train_args(kaggle, *options, "--epochs", "5", "--save", str(five)), capsys)[0]
        == 0
    )
    assert (
        run_main(_train_args(kaggle, *options, "--epochs", "3", "--save", str(three)), capsys)[0]
        == 0
    )
    code, out, err = run_main(
        ["--resume", str(three), "--epochs", "2", "--save", str(resumed),
         "--metrics", str(tmp_path / "m.json")], capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "resuming after epoch 3" in out and "epoch    5/5" in out
    _same_bits(fastnn.load(resumed), fastnn.load(five))
    assert [e["epoch"] for e in json.loads((tmp_path / "m.json").read_text())["epochs"]] == [4, 5]
    model = fastnn.load(resumed)
    assert model.n_iter_ == 5 and model.max_iter == 5 and model.solver == solver
    assert model.loss_curve_ == fastnn.load(five).loss_curve_


def test_an_interrupted_run_resumes_to_its_planned_end(tmp_path, kaggle, capsys):
    saved = tmp_path / "m.npz"
    run_main(_train_args(kaggle, "--epochs", "2", "--save", str(saved)), capsys)
    code, _, err = run_main(["--resume", str(saved)], capsys)
    assert code == 1 and "finished all its 2 epochs: give --epochs N to train N more" in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--hidden", "30"], "--hidden [30] differs from its [12, 7]: leave --hidden out"),
        (["--solver", "adam"], "--solver adam differs from its sgd"),
        (["--lr", "0.5"], "--lr 0.5 differs from its 0.1"),
        (["--augment", "shift"], "--augment shift differs from its None"),
    ],
)
def test_resume_refuses_options_that_change_the_run(tmp_path, kaggle, capsys, extra, message):
    saved = tmp_path / "m.npz"
    run_main(_train_args(kaggle, "--epochs", "1", "--lr", "0.1", "--save", str(saved)), capsys)
    code, _, err = run_main(["--resume", str(saved), "--epochs", "1", *extra], capsys)
    assert code == 1 and message in err and "Traceback" not in err


def test_a_model_the_estimator_saved_is_not_a_command_run(tmp_path, capsys):
    path = tmp_path / "m.npz"
    _model("numpy", max_iter=1).fit(X, y).save(path)
    code, _, err = run_main(["--resume", str(path), "--epochs", "1"], capsys)
    assert code == 1 and "cannot be resumed" in err and "partial_fit" in err


def _write_version_1(path, params, config):
    """A model file as fastnn wrote it before format version 2 (one hidden layer)."""
    header = {
        "format": "fastnn-model", "format_version": 1, "fastnn_version": "0.1.0",
        "architecture": {"n_in": params.n_in, "hidden": params.hidden_sizes[0], "n_out": 3},
        "activation": "relu", "dtype": "float32",
        "classes": {"kind": "int", "values": [0, 1, 2]}, "config": config, "scores": {},
    }  # fmt: skip
    arrays = dict(zip(("W1", "b1", "W2", "b2"), params.arrays(), strict=True))
    text = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, header=text, **arrays)


@pytest.mark.parametrize("backend", BACKENDS)
def test_version_1_files_load_and_predict_as_before(tmp_path, backend):
    params = init_params(20, 6, 3, seed=2)
    _write_version_1(tmp_path / "v1.npz", params, {"learning_rate_init": 0.3})
    model = fastnn.load(tmp_path / "v1.npz").set_params(backend=backend)
    assert model.hidden_layer_sizes == (6,) and model.learning_rate_init == 0.3
    assert model.n_iter_ == 0 and model._optimizer_state is None
    want = fastnn.backends.get_backend("numpy").predict_proba(params, X)
    np.testing.assert_allclose(model.predict_proba(X), want, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(X), want.argmax(axis=1))
    model.partial_fit(X, y % 3)  # and trains on
    assert model.n_iter_ == 1


def test_the_validation_curves_are_saved_and_files_from_before_them_load(tmp_path):
    path = tmp_path / "m.npz"
    fitted = _model("numpy", max_iter=3, early_stopping=True, n_iter_no_change=10).fit(X, y)
    fitted.save(path)
    loaded = fastnn.load(path)
    assert len(fitted.validation_loss_curve_) == 3
    assert loaded.validation_loss_curve_ == fitted.validation_loss_curve_
    assert loaded.validation_scores_ == fitted.validation_scores_
    # A file saved before validation_losses existed: the same history without it.
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(arrays.pop("header").tobytes())
    del header["history"]["validation_losses"]
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    older = fastnn.load(path)
    assert older.validation_loss_curve_ is None and older.n_iter_ == 3
    assert older.validation_scores_ == fitted.validation_scores_


def _saved_parts(tmp_path):
    path = tmp_path / "m.npz"
    _model("numpy", solver="adam", max_iter=1).fit(X, y).save(path)
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return path, json.loads(arrays.pop("header").tobytes()), arrays


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda h, a: h["history"].update(epochs=-1), "epochs must be a whole number >= 0"),
        (lambda h, a: h["history"].update(loss_curve="x"), "loss_curve must be a list"),
        (lambda h, a: h["history"].update(validation_losses=[1.0, "x"]),
         "validation_losses must be a list"),
        (lambda h, a: h["history"].update(rate=0), "rate must be a positive number"),
        (lambda h, a: h["history"].update(order_state={"bit_generator": "MT19937"}),
         "not the state of a NumPy PCG64 generator"),
        (lambda h, a: h["history"].update(evil=1), "its fields are"),
        (lambda h, a: h["history"].update(train_scores=[1.5]),
         "train_scores must be a list of numbers from 0 to 1"),
        (lambda h, a: h["history"].update(epoch_seconds=[0.1, 0.1]),
         "epoch_seconds must be a list of numbers >= 0, no longer than loss_curve"),
        (lambda h, a: h["history"].update(learning_rates=[-0.1]), "learning_rates must be"),
        (lambda h, a: h["optimizer"].update(step=-3), "'step' must be a whole number >= 0"),
        (lambda h, a: a.pop("second_W2"), r"missing array\(s\) \['second_W2'\]"),
        (lambda h, a: a.update(first_b1=a["first_b1"][:2]), "'first_b1' is float64 with shape"),
        (lambda h, a: a.update(first_W1=a["first_W1"] * np.nan), "'first_W1' holds NaN"),
        (lambda h, a: h["config"].update(solver="rmsprop"),
         "optimizer state does not fit the saved solver 'rmsprop'"),
    ],
)  # fmt: skip
def test_tampered_training_state_is_a_model_file_error(tmp_path, tamper, message):
    path, header, arrays = _saved_parts(tmp_path)
    tamper(header, arrays)
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    with pytest.raises(ModelFileError, match=message):
        fastnn.load(path)


def _records(path):
    history = json.loads(np.load(path)["header"].tobytes())["history"]
    return {name: history[name] for name in EPOCH_RECORDS}


def test_the_epoch_records_go_on_after_save_load_and_partial_fit(tmp_path):
    """Each epoch's training accuracy, mean learning rate and seconds, for the report's
    curves: kept with the model and continued, as the loss curve is."""
    model = _model("numpy", solver="sgd", learning_rate="invscaling", max_iter=2).fit(X, y)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz").partial_fit(X, y)
    loaded.save(tmp_path / "m3.npz")
    before, after = _records(tmp_path / "m.npz"), _records(tmp_path / "m3.npz")
    for name in EPOCH_RECORDS:
        assert len(before[name]) == 2 and after[name][:2] == before[name] and len(after[name]) == 3
    assert all(0 <= a <= 1 for a in after["train_scores"]) and min(after["epoch_seconds"]) > 0
    rates = after["learning_rates"]  # invscaling: lr / (t + 1) ** power_t, t before the epoch
    assert rates == pytest.approx([0.1 / (t * 120 + 1) ** 0.5 for t in range(3)])


def test_a_file_saved_before_the_epoch_records_loads_and_records_from_then_on(tmp_path):
    path = tmp_path / "m.npz"
    _model("numpy", max_iter=2).fit(X, y).save(path)
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(arrays.pop("header").tobytes())
    for name in EPOCH_RECORDS:
        del header["history"][name]
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    history = History.from_json(persist.read_model(path).history, path)
    assert history.train_scores is None and history.loss_curve and history.epochs == 2
    fastnn.load(path).partial_fit(X, y).save(tmp_path / "m3.npz")
    records = _records(tmp_path / "m3.npz")
    assert all(len(values) == 1 for values in records.values())  # the third epoch's
    later = History.from_json(persist.read_model(tmp_path / "m3.npz").history, path)
    assert later.epochs_of(later.train_scores) == [3]


def test_the_dataset_given_to_save_is_kept_through_load(tmp_path):
    model = _model("numpy", max_iter=1).fit(X, y)
    model.save(tmp_path / "a.npz", dataset="my digits")
    fastnn.load(tmp_path / "a.npz").save(tmp_path / "b.npz")
    assert persist.read_model(tmp_path / "b.npz").config["dataset"] == "my digits"
    model.save(tmp_path / "c.npz")
    assert "dataset" not in persist.read_model(tmp_path / "c.npz").config
    with pytest.raises(ValueError, match="dataset must be a name"):
        model.save(tmp_path / "d.npz", dataset=7)


def test_resume_continues_the_curves(tmp_path, kaggle, capsys):
    two, three = tmp_path / "2.npz", tmp_path / "3.npz"
    assert run_main(_train_args(kaggle, "--epochs", "2", "--save", str(two)), capsys)[0] == 0
    code, _, err = run_main(["--resume", str(two), "--epochs", "1", "--save", str(three)], capsys)
    assert code == 0, err
    first, later = (History.from_json(persist.read_model(p).history, p) for p in (two, three))
    for name in ("loss_curve", "validation_scores", "validation_losses", *EPOCH_RECORDS):
        values = getattr(later, name)
        assert len(values) == 3 and values[:2] == getattr(first, name), name
    assert later.learning_rates == [0.1, 0.1, 0.1]  # --lr 0.1, constant
    assert all(0 <= a <= 1 for a in later.validation_scores + later.train_scores)


@pytest.fixture(scope="module")
def saved_run(kaggle, tmp_path_factory):
    """A run of the command saved after 1 of its 2 epochs: sgd, hidden 12 7, float32."""
    path = tmp_path_factory.mktemp("run") / "run.npz"
    assert train.main(_train_args(kaggle, "--epochs", "1", "--save", str(path))) == 0
    return path


def _different_features(saved, path):
    """The saved run with a first layer of 20 inputs instead of 784 (a header and arrays
    that agree with each other, not with the command)."""
    run = persist.read_model(saved)
    params = Params([np.ones((20, 12), np.float32), *run.params.coefs[1:]], run.params.intercepts)
    persist.save_model(path, params, activation="relu", classes=run.classes, config=run.config,
                       history=run.history)  # fmt: skip


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ({"max_iter": "ten"}, "max_iter must be a positive whole number; got 'ten'"),
        ({"max_iter": 2.5}, "max_iter must be a positive whole number; got 2.5"),
        ({"batch_size": 0}, "batch_size must be a positive whole number or 'full'; got 0"),
        ({"batch_size": "big"}, "batch_size must be a positive whole number or 'full'; got 'big'"),
        ({"batch_size": "auto"}, "batch_size must be a positive whole number or 'full'"),
        ({"seed": "x"}, "seed must be a whole number >= 0; got 'x'"),
        ({"learning_rate": "weird"}, "learning_rate must be one of constant, invscaling, "
                                     "adaptive, cosine; got 'weird'"),
        ({"hidden": [32], "hidden_layer_sizes": [32]},
         "hidden [32] does not match the saved network's [12, 7]"),
        ({"hidden": 12, "hidden_layer_sizes": 12}, "hidden must be a list of layer sizes"),
        ({"dtype": "float64"}, "dtype 'float64' does not match the saved network's float32"),
        ({"activation": "leaky_relu"},
         "activation 'leaky_relu' does not match the saved network's relu"),
        ({"lr": 0.5}, "lr 0.5 differs from learning_rate_init 0.1"),
        ({"lr": -1, "learning_rate_init": -1},
         "learning_rate_init must be None or a positive number"),
        ({"momentum": "x"}, "momentum must be"),
        ({"preset": "nope"}, "preset must be one of default, best"),
        ({"dataset": ["mnist"]}, "dataset must be one of mnist, fashion-mnist; got ['mnist']"),
        ({"data": 7}, "data must be a path (a string) or null; got 7"),
        ({"dev_size": -3}, "dev_size must be a whole number >= 0; got -3"),
        ({"augment": "spin"}, "augment must be None, one of shift, affine, elastic"),
        ({"backend": "gpu"}, "backend must be one of numba, numpy; got 'gpu'"),
        ({"threads": 0, "n_threads": 0}, "n_threads must be None or a positive whole number"),
        ({"solver": "adam"}, "the saved optimizer state does not fit the saved solver 'adam'"),
        (_different_features, "the saved network maps 20 features to the classes [0, 1, 2"),
    ],
    ids=lambda v: v.__name__ if callable(v) else "+".join(v) if isinstance(v, dict) else None,
)  # fmt: skip
def test_resume_checks_the_saved_configuration_as_load_does(
    tmp_path, saved_run, capsys, damage, message
):
    """A header edited by hand or damaged: one line naming the file and the field, exit
    status 1 as for any unusable model file, never a traceback or a run with it."""
    path = tmp_path / "damaged.npz"
    if callable(damage):
        damage(saved_run, path)
    else:
        with np.load(saved_run) as npz:
            arrays = {name: npz[name] for name in npz.files}
        header = json.loads(arrays.pop("header").tobytes())
        header["config"].update(damage)
        np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    code, out, err = run_main(["--resume", str(path), "--epochs", "1"], capsys)
    assert code == 1 and "epoch" not in out, out
    assert err.startswith(f"fastnn.train: error: {path}: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err, err
