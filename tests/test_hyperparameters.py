"""The schema (fastnn.core.hyperparameters) is the only list of hyperparameters: the estimator, the
command, the sweep and the model file each have every one, under its name, with its default;
and the command and the estimator build the same run from the same settings."""

import inspect
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run_main, write_kaggle

import fastnn
from fastnn.core import hyperparameters as hp
from fastnn.data import load_dataset, read_kaggle_csv
from fastnn.sweep.space import KINDS, coerce_value
from fastnn.train import options

COMMAND = [p for p in hp.SCHEMA if p.command]
# A value other than the default for each of the command's hyperparameters, as its options
# write it and as the run gets it.
SAMPLES = {
    "hidden_layer_sizes": (["32", "16"], [32, 16]),
    "activation": (["leaky_relu"], "leaky_relu"),
    "init": (["xavier"], "xavier"),
    "backend": (["numpy"], "numpy"),
    "solver": (["rmsprop"], "rmsprop"),
    "learning_rate_init": (["0.02"], 0.02),
    "learning_rate": (["invscaling"], "invscaling"),
    "power_t": (["0.25"], 0.25),
    "momentum": (["0.5"], 0.5),
    "nesterovs_momentum": ([], False),  # --no-nesterovs-momentum
    "beta_1": (["0.8"], 0.8),
    "beta_2": (["0.99"], 0.99),
    "epsilon": (["1e-06"], 1e-6),
    "rho": (["0.9"], 0.9),
    "alpha": (["0.001"], 0.001),
    "batch_size": (["full"], "full"),
    "max_iter": (["3"], 3),
    "dropout": (["0.2"], [0.2]),
    "input_dropout": (["0.1"], 0.1),
    "max_norm": (["3"], 3.0),
    "augment": (["elastic", "alpha=8"], {"kind": "elastic", "alpha": 8.0}),
    "dtype": (["float64"], "float64"),
    "random_state": (["7"], 7),
    "n_threads": (["1"], 1),
}


def _same(kind: str, a, b) -> bool:
    if kind in ("sizes", "rates"):  # one value or a sequence of them
        return list(np.atleast_1d(a)) == list(np.atleast_1d(b))
    return a == b


@pytest.mark.parametrize("estimator", [fastnn.MLPClassifier, fastnn.MLPRegressor])
def test_each_estimator_takes_every_parameter_with_its_default(estimator):
    signature = inspect.signature(estimator.__init__).parameters
    assert sorted(n for n in signature if n != "self") == sorted(hp.BY_NAME)
    for p in hp.SCHEMA:
        assert signature[p.name].default == p.default, p.name
    assert estimator().get_params() == hp.DEFAULTS


def test_a_learning_rate_not_given_follows_the_solver_and_the_output_kind():
    values = {"learning_rate_init": None, "momentum": 0.9}
    for solver, classifier, regressor in [
        ("adam", hp.ADAPTIVE_RATE, hp.ADAPTIVE_RATE),
        ("rmsprop", hp.ADAPTIVE_RATE, hp.ADAPTIVE_RATE),
        ("sgd", hp.SGD_STEP * 0.1, hp.REGRESSION_SGD_STEP * 0.1),
    ]:
        values["solver"] = solver
        assert hp.resolved_learning_rate(values) == pytest.approx(classifier)
        assert hp.resolved_learning_rate(values, "logistic") == pytest.approx(classifier)
        assert hp.resolved_learning_rate(values, "identity") == pytest.approx(regressor)
    assert hp.resolved_learning_rate({**values, "learning_rate_init": 0.2}, "identity") == 0.2


def test_the_command_has_every_option_of_the_schema_and_its_defaults():
    parser = options.build_parser()
    dests = {flag: action.dest for action in parser._actions for flag in action.option_strings}
    for p in hp.SCHEMA:
        flags = p.flags if p.command else ["--" + p.name.replace("_", "-")]
        for flag in flags:
            assert dests.get(flag) == (p.dest if p.command else None), flag
    args = options.resolve(parser.parse_args([]))
    for p in COMMAND:
        wanted = {"random_state": 0, "learning_rate_init": hp.ADAPTIVE_RATE}.get(p.name, p.default)
        assert _same(p.kind, getattr(args, p.dest), wanted), p.name


def test_every_option_reads_what_its_parameter_takes():
    assert set(SAMPLES) == {p.name for p in COMMAND}
    for p in COMMAND:
        words, value = SAMPLES[p.name]
        flag = "--no-nesterovs-momentum" if p.kind == "bool" else p.flags[-1]
        for argv in ([flag, *words], [p.flags[0], *words] if p.kind != "bool" else [flag]):
            args = options.resolve(options.build_parser().parse_args(argv))
            assert _same(p.kind, getattr(args, p.dest), value), (argv, getattr(args, p.dest))
            p.check(value)  # and the estimator takes it


def test_the_batch_size_option_reads_every_form_its_help_names():
    for word, value in [("auto", "auto"), ("full", "full"), ("64", 64)]:
        args = options.resolve(options.build_parser().parse_args(["--batch-size", word]))
        assert args.batch_size == value, word
        hp.BY_NAME["batch_size"].check(value)


def test_the_sweep_varies_what_shapes_a_run_with_the_schemas_values():
    shaping = {p.name for p in COMMAND if p.shapes_run and p.kind != "seed"}
    assert set(KINDS) == shaping
    for name in shaping:
        p = hp.BY_NAME[name]
        if p.default is not None:
            assert _same(p.kind, coerce_value(name, p.default), p.default), name
        assert _same(p.kind, coerce_value(name, SAMPLES[name][1]), SAMPLES[name][1]), name


def test_a_model_file_records_every_parameter_under_its_name(tmp_path, capsys):
    write_kaggle(tmp_path / "train.csv", 60, with_labels=True)
    argv = ["--data", str(tmp_path / "train.csv"), "--dev-size", "10", "--hidden", "8"]
    argv += ["--epochs", "1", "--backend", "numpy", "--save", str(tmp_path / "m.npz")]
    assert run_main(argv, capsys)[0] == 0
    loaded = fastnn.load(tmp_path / "m.npz")
    assert sorted(loaded.get_params()) == sorted(hp.BY_NAME)
    config = fastnn.files.persist.read_model(tmp_path / "m.npz").config
    for p in COMMAND:
        assert p.name in config and p.dest in config, p.name
        assert _same(p.kind, config[p.name], config[p.dest]), p.name


# -- one run builder --------------------------------------------------------------------------

RUNS = {
    "plain sgd": ["--solver", "sgd", "--learning-rate", "constant", "--lr", "0.05"],
    "adam, cosine": [],  # the defaults
    "dropout": ["--dropout", "0.3", "--input-dropout", "0.1"],
    "two hidden layers": ["--hidden", "24", "12", "--solver", "sgd", "--momentum", "0.9"],
}


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("run", list(RUNS))
def test_the_command_and_the_estimator_train_the_same_bits(tmp_path, capsys, backend, run):
    """`python -m fastnn.train ... --dev-size 0 --save m.npz` gives exactly the weights of
    MLPClassifier(**fastnn.load("m.npz").get_params()).fit(X, y) on the same rows."""
    csv = tmp_path / "train.csv"
    write_kaggle(csv, 300, with_labels=True)
    argv = ["--data", str(csv), "--hidden", "16", "--epochs", "2", "--seed", "3"]
    argv += ["--dev-size", "0", "--backend", backend, "--save", str(tmp_path / "m.npz")]
    assert run_main([*argv, *RUNS[run]], capsys)[0] == 0
    command = fastnn.load(tmp_path / "m.npz")
    X, y = read_kaggle_csv(csv)
    estimator = fastnn.MLPClassifier(**command.get_params()).fit(X, y)
    for a, b in zip(
        command.coefs_ + command.intercepts_, estimator.coefs_ + estimator.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert command.loss_curve_ == estimator.loss_curve_


def test_the_issues_command_line_on_mnist_is_the_estimators_fit(
    tmp_path, capsys, monkeypatch, real_data_dir
):
    monkeypatch.setenv("FASTNN_DATA_DIR", str(real_data_dir))
    argv = ["--hidden", "64", "--epochs", "2", "--seed", "3", "--dev-size", "0"]
    assert run_main([*argv, "--save", str(tmp_path / "m.npz")], capsys)[0] == 0
    command = fastnn.load(tmp_path / "m.npz")
    X, y, _, _ = load_dataset("mnist", download=False)
    estimator = fastnn.MLPClassifier(**command.get_params()).fit(X, y)
    for a, b in zip(
        command.coefs_ + command.intercepts_, estimator.coefs_ + estimator.intercepts_, strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_the_options_reference_is_the_schemas():
    """docs/options.md's tables are generated from the schema; after a change to it, write
    them again with fastnn.train.options.reference()."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "options.md").read_text()
    generated = text.split("<!-- generated: fastnn.train.options.reference() -->\n")[1]
    assert generated.split("<!-- end generated -->")[0] == options.reference()
