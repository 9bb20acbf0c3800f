"""python -m fastnn.train: runs end to end on real MNIST, writes what it says, fails clearly."""

import json
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from cli_helpers import run_main, write_kaggle

import fastnn
from fastnn.backends import get_backend
from fastnn.core import training
from fastnn.core.model import init_params
from fastnn.data import CLASS_NAMES
from fastnn.report import plots
from fastnn.train import command as train
from fastnn.train import options


@pytest.mark.real_data
def test_short_run_writes_metrics_and_plots(tmp_path, capsys):
    metrics = tmp_path / "out" / "metrics.json"
    plots = tmp_path / "plots"
    code, out, err = run_main(
        [
            "--backend",
            "numpy",
            "--hidden",
            "16",
            "--epochs",
            "2",
            "--dev-size",
            "2000",
            "--metrics",
            str(metrics),
            "--plots",
            str(plots),
        ],
        capsys,
    )
    assert code == 0, err
    assert "epoch    1/2 | loss" in out and "epoch    2/2 | loss" in out
    assert "first epoch" in out and "later epochs median" in out
    result = json.loads(metrics.read_text())
    assert result["config"]["hidden"] == [16] and result["config"]["backend"] == "numpy"
    assert [e["epoch"] for e in result["epochs"]] == [1, 2]
    assert result["epochs"][1]["loss"] < result["epochs"][0]["loss"]
    assert 0.85 < result["test_accuracy"] <= 1 and 0.85 < result["dev_accuracy"] <= 1
    dev_losses = [e["dev_loss"] for e in result["epochs"]]
    assert all(0 < loss < 0.6 for loss in dev_losses), dev_losses  # 0.31 and 0.32 here
    assert all(e["learning_rate"] > 0 for e in result["epochs"])  # the epoch's mean rate
    for name in ("loss.png", "accuracy.png", "samples.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "temporary files left behind"


def test_evaluate_gives_the_mean_cross_entropy_and_the_accuracy():
    params = init_params(5, 4, 3, seed=1, dtype="float64")
    X = np.random.default_rng(0).standard_normal((9, 5))
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    P = get_backend("numpy").predict_proba(params, X)
    loss, accuracy = training.evaluate(get_backend("numpy"), params, X, y, "relu")
    assert loss == pytest.approx(-np.mean([np.log(P[i, y[i]]) for i in range(9)]), rel=1e-12)
    assert accuracy == np.mean([P[i].argmax() == y[i] for i in range(9)])
    assert all(np.isnan(training.evaluate(get_backend("numpy"), params, X[:0], y[:0], "relu")))


@pytest.mark.parametrize("with_dev", [True, False])
def test_the_curves_show_dev_loss_and_accuracy_where_measured(with_dev):
    history = [
        {"epoch": e, "loss": 1 / e, "train_accuracy": 1 - 1 / (e + 1),
         "dev_loss": 1.1 / e if with_dev else None, "dev_accuracy": 0.9 if with_dev else None}
        for e in (1, 2, 3)
    ]  # fmt: skip
    for key in ("loss", "accuracy"):
        fig, ax = plt.subplots()
        plots._plot_train_and_dev(ax, history, key)
        lines = {line.get_label(): list(line.get_ydata()) for line in ax.get_lines()}
        plt.close(fig)
        train_key = "loss" if key == "loss" else "train_accuracy"
        scale = 100 if key == "accuracy" else 1  # in percent, as the console prints it
        assert lines.pop("train") == pytest.approx([scale * h[train_key] for h in history])
        want = [scale * h[f"dev_{key}"] for h in history] if with_dev else None
        assert lines == ({"dev": pytest.approx(want)} if with_dev else {})


def test_one_epoch_curves_are_readable():
    """Not a lone dot on an axis running 0.96 to 1.04: whole-epoch ticks, room around the
    point, an axis from 0, and the values in the legend."""
    history = [{"epoch": 1, "loss": 0.38, "train_accuracy": 0.89, "dev_loss": 0.28,
                "dev_accuracy": 0.92}]  # fmt: skip
    for key, top in (("loss", 0.38 * 1.3), ("accuracy", 100)):
        fig, ax = plt.subplots()
        plots._plot_train_and_dev(ax, history, key)
        fig.canvas.draw()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        plt.close(fig)
        assert ticks == [1.0] and ax.get_xlim() == (0.5, 1.5)
        assert ax.get_ylim() == pytest.approx((0, top))
        assert legend == (["train: 0.3800", "dev: 0.2800"] if key == "loss"
                          else ["train: 89.00%", "dev: 92.00%"])  # fmt: skip


def test_samples_show_mistakes_first_with_fashion_names(tmp_path):
    predicted = np.array([0, 1, 2, 3, 9, 5])
    true = np.array([0, 7, 2, 3, 4, 5])
    shown = plots.mistakes_first(predicted, true, 4)
    assert shown.tolist() == [1, 4, 0, 2]
    images = np.zeros((6, 784), np.uint8)
    names = CLASS_NAMES["fashion-mnist"]
    titles = []
    real_save = plots.save_png

    def keep_titles(fig, path):
        titles.extend(ax.get_title() for ax in fig.axes if ax.get_title())
        return real_save(fig, path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "save_png", keep_titles)
        plots.plot_samples(images[shown], predicted[shown], true[shown], tmp_path, 4, names)
    assert titles[:2] == ["pred Trouser\ntrue Sneaker", "pred Ankle boot\ntrue Coat"]
    assert (tmp_path / "samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.real_data
def test_full_batch_logs_every_nth_step(capsys):
    code, out, _ = run_main(
        ["--backend", "numpy", "--preset", "seeds", "--epochs", "5", "--log-every", "2"], capsys
    )
    assert code == 0
    logged = [
        line.split("|")[0].split()[1] for line in out.splitlines() if line.startswith("epoch")
    ]
    assert logged == ["1/5", "2/5", "4/5", "5/5"]  # the first, every 2nd, the last
    assert "batch 59000" in out and "float64" in out and "uniform init" in out


@pytest.mark.parametrize(
    ("preset", "recipe"),
    [  # what the README measured: 98.7% on MNIST in under 2 minutes, 90.5% on Fashion in 1
        ("best", ("mnist", [800, 800], "adam", 0.001, "cosine", [0.3], 36)),
        ("fashion", ("fashion-mnist", [512, 256], "adam", 0.001, "cosine", [0.2], 40)),
    ],
)
def test_the_accuracy_presets_are_their_measured_recipes(preset, recipe):
    args = options.resolve(options.build_parser().parse_args(["--preset", preset]))
    assert recipe == (
        args.dataset, args.hidden, args.solver, args.lr, args.learning_rate, args.dropout,
        args.epochs,
    )  # fmt: skip
    assert (args.batch_size, args.dtype, args.init, args.seed) == (128, "float32", "he", 0)


def test_presets_hold_the_tutorial_recipe():
    args = options.resolve(options.build_parser().parse_args(["--preset", "seeds", "--lr", "0.5"]))
    assert (args.hidden, args.init, args.dtype, args.batch_size) == (
        [10],
        "uniform",
        "float64",
        "full",
    )
    assert (args.epochs, args.dev_size, args.lr) == (500, 1000, 0.5)  # a given flag wins


def test_kaggle_csv_trains_and_writes_submission(tmp_path, capsys):
    write_kaggle(tmp_path / "train.csv", 300, with_labels=True)
    write_kaggle(tmp_path / "test.csv", 25, with_labels=False, seed=1)
    submission = tmp_path / "submission.csv"
    code, out, err = run_main(
        [
            "--backend",
            "numpy",
            "--data",
            str(tmp_path / "train.csv"),
            "--epochs",
            "2",
            "--dev-size",
            "50",
            "--predict-csv",
            str(tmp_path / "test.csv"),
            "--submission",
            str(submission),
        ],
        capsys,
    )
    assert code == 0, err
    table = pd.read_csv(submission)
    assert list(table.columns) == ["ImageId", "Label"]
    assert table["ImageId"].tolist() == list(range(1, 26))
    assert table["Label"].between(0, 9).all()
    assert "test accuracy n/a" in out


def test_no_test_set_and_no_dev_set_leaves_out_samples_and_refuses_a_report(tmp_path, capsys):
    """A Kaggle train.csv has no test set: with --dev-size 0 there are no rows to show."""
    write_kaggle(tmp_path / "train.csv", 200, with_labels=True)
    common = ["--backend", "numpy", "--data", str(tmp_path / "train.csv"), "--dev-size", "0"]
    plots = tmp_path / "plots"
    code, out, err = run_main([*common, "--epochs", "1", "--plots", str(plots)], capsys)
    assert code == 0, err
    assert sorted(p.name for p in plots.iterdir()) == ["accuracy.png", "loss.png"]
    report = tmp_path / "report"
    code, out, err = run_main([*common, "--report", str(report)], capsys)
    assert code == 1 and "with --dev-size 0 there is neither: keep a dev set" in err
    assert "epoch" not in out and not report.exists()  # refused before training


def test_test_csv_given_as_training_data_is_explained(tmp_path, capsys):
    write_kaggle(tmp_path / "test.csv", 10, with_labels=False)
    code, _, err = run_main(["--backend", "numpy", "--data", str(tmp_path / "test.csv")], capsys)
    assert code == 1
    assert "has no 'label' column" in err and "--predict-csv" in err


def test_divergence_is_a_clear_error(tmp_path, capsys):
    write_kaggle(tmp_path / "train.csv", 200, with_labels=True)
    code, _, err = run_main(
        [
            "--backend",
            "numpy",
            "--data",
            str(tmp_path / "train.csv"),
            "--dev-size",
            "0",
            "--lr",
            "1e30",
            "--epochs",
            "3",
            "--init",
            "uniform",
        ],
        capsys,
    )
    assert code == 1
    assert "training diverged in epoch 1" in err and "try a smaller one" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--batch-size", "0", "must be a positive whole number"),
        ("--lr", "-0.1", "must be a positive number"),
        ("--backend", "torch", "invalid choice: 'torch'"),
        ("--activation", "tanh", "invalid choice: 'tanh'"),
    ],
)
def test_bad_flags_are_usage_errors(flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main([flag, value])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--momentum", "1.5"], "--momentum must be a number from 0 to 1; got 1.5"),
        (["--solver", "adam", "--beta-2", "1"], "--beta-2 must be a number from 0 to less than 1"),
        (["--epsilon", "0"], "--epsilon must be a positive number"),
        (["--alpha", "-1"], "alpha must be"),
        (["--power-t", "-0.5"], "--power-t must be a number >= 0"),
    ],
)
def test_optimizer_options_out_of_range_stop_before_any_work(tmp_path, capsys, flags, message):
    """Checked with the others before the data are read (the --data here does not exist)."""
    code, _, err = run_main(["--data", str(tmp_path / "missing.csv"), *flags], capsys)
    assert code == 1 and message in err and "missing.csv" not in err


def test_too_large_dev_set_is_explained(tmp_path, capsys):
    write_kaggle(tmp_path / "train.csv", 30, with_labels=True)
    code, _, err = run_main(
        ["--backend", "numpy", "--data", str(tmp_path / "train.csv"), "--dev-size", "30"], capsys
    )
    assert code == 1 and "dev" in err and "Traceback" not in err


def test_runs_as_a_module(tmp_path):
    write_kaggle(tmp_path / "train.csv", 100, with_labels=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fastnn.train",
            "--backend",
            "numpy",
            "--data",
            str(tmp_path / "train.csv"),
            "--epochs",
            "1",
            "--dev-size",
            "20",
            "--hidden",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "dev accuracy" in result.stdout


def test_saved_model_loads_and_predicts_alike_on_both_backends(tmp_path, capsys):
    write_kaggle(tmp_path / "train.csv", 200, with_labels=True)
    model_path = tmp_path / "model.npz"
    code, out, err = run_main(
        [
            "--backend",
            "numpy",
            "--data",
            str(tmp_path / "train.csv"),
            "--epochs",
            "2",
            "--dev-size",
            "40",
            "--hidden",
            "12",
            "--save",
            str(model_path),
        ],
        capsys,
    )
    assert code == 0, err
    assert f"wrote the model to {model_path}" in out
    model = fastnn.load(model_path)
    assert model.n_features_in_ == 784 and list(model.classes_) == list(range(10))
    assert model.coefs_[0].shape == (784, 12)
    X = np.random.default_rng(5).integers(0, 256, (50, 784), dtype=np.uint8)
    by_numpy = model.set_params(backend="numpy").predict_proba(X)
    by_numba = model.set_params(backend="numba").predict_proba(X)
    np.testing.assert_allclose(by_numba, by_numpy, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(by_numba.argmax(1), by_numpy.argmax(1))


def test_estimator_names_are_options_and_come_back_from_the_saved_model(tmp_path, capsys):
    write_kaggle(tmp_path / "train.csv", 200, with_labels=True)
    common = ["--backend", "numpy", "--data", str(tmp_path / "train.csv"), "--dev-size", "40"]
    rule = ["--solver", "rmsprop", "--rho", "0.9", "--alpha", "0.01", "--learning-rate",
            "invscaling", "--power-t", "0.25"]  # fmt: skip
    short = ["--hidden", "12", "9", "--epochs", "2", "--lr", "0.001", "--seed", "5", "--threads",
             "1", *rule]  # fmt: skip
    long = ["--hidden-layer-sizes", "12", "9", "--max-iter", "2", "--learning-rate-init", "0.001",
            "--random-state", "5", "--n-threads", "1", *rule]  # fmt: skip
    saved = []
    for i, spelling in enumerate((short, long)):
        path = tmp_path / f"{i}.npz"
        code, _, err = run_main([*common, *spelling, "--save", str(path)], capsys)
        assert code == 0, err
        saved.append(fastnn.load(path))
    for model in saved:
        assert {
            k: model.get_params()[k]
            for k in ("hidden_layer_sizes", "max_iter", "learning_rate_init", "random_state",
                      "n_threads", "batch_size", "init", "activation", "backend", "dtype",
                      "solver", "rho", "alpha", "learning_rate", "power_t", "momentum")
        } == {
            "hidden_layer_sizes": (12, 9), "max_iter": 2, "learning_rate_init": 0.001,
            "random_state": 5, "n_threads": 1, "batch_size": 128, "init": "he",
            "activation": "relu", "backend": "numpy", "dtype": "float32", "solver": "rmsprop",
            "rho": 0.9, "alpha": 0.01, "learning_rate": "invscaling", "power_t": 0.25,
            "momentum": 0.0,
        }  # fmt: skip
        assert model._optimizer_state.step == 2 * 2 and model.n_iter_ == 2
    np.testing.assert_array_equal(saved[0].coefs_[0], saved[1].coefs_[0])


def test_a_network_too_large_for_memory_is_one_line(tmp_path, capsys):
    write_kaggle(tmp_path / "train.csv", 60, with_labels=True)
    metrics = tmp_path / "metrics.json"
    args = ["--backend", "numpy", "--data", str(tmp_path / "train.csv"), "--dev-size", "10",
            "--hidden", str(10**14), "--metrics", str(metrics)]  # fmt: skip
    code, out, err = run_main(args, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "not enough memory" in lines[0] and "--hidden" in lines[0], err
    assert "float32" in lines[0] and "Traceback" not in err
    assert not metrics.exists()
