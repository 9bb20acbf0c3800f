"""`python -m fastnn.bench --time-to-accuracy` (fastnn.bench.accuracy): the race loop on
scripted contenders, one real run of the `default` preset on a slice of MNIST through the
command, and the PyTorch and scikit-learn contenders where installed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time

import numpy as np
import pytest

from fastnn.backends import get_backend
from fastnn.bench import accuracy, cli
from fastnn.core import interrupt
from fastnn.data import Dataset, load_dataset
from fastnn.estimator import MLPClassifier
from fastnn.train.options import PRESETS

TRAIN_S, TEST_S = 0.01, 0.1  # a scripted contender's epoch and its (uncounted) evaluation


def tiny_data(n: int = 64) -> Dataset:
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    y = rng.integers(0, 10, n)
    return Dataset(X, y, X[: n // 2], y[: n // 2])


def scripted(accuracies: list[float], on_epoch: dict | None = None):
    """A contender factory whose test accuracy after epoch k is accuracies[k - 1]."""

    def make(data: Dataset, threads: int, seed: int) -> accuracy.Racer:
        done = []

        def train_epoch() -> None:
            done.append(1)
            time.sleep(TRAIN_S)
            (on_epoch or {}).get(len(done), lambda: None)()

        def score() -> float:
            time.sleep(TEST_S)
            return accuracies[len(done) - 1]

        return accuracy.Racer("scripted", "a script", len(accuracies), train_epoch, score)

    return make


@pytest.fixture
def scripted_peers(monkeypatch):
    """Race scripted contenders; returns the dict to fill."""
    peers: dict = {}
    monkeypatch.setattr(accuracy, "PEERS", peers)
    return peers


def press_ctrl_c() -> None:
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)  # the watcher thread records it


def test_the_mnist_presets_race_and_one_added_later_too(monkeypatch) -> None:
    raced = accuracy.fastnn_presets()
    assert raced[:2] == ["default", "best"] and not {"seeds", "fashion"} & set(raced)
    monkeypatch.setitem(PRESETS, "later", {**PRESETS["best"], "augment": "shift"})
    monkeypatch.setitem(PRESETS, "fashion-later", {**PRESETS["fashion"]})
    assert accuracy.fastnn_presets() == [*raced, "later"]
    assert accuracy.describe("later").endswith("--dropout 0.3 --augment shift`; numba, uint8 "
                                               "pixels as loaded")  # fmt: skip
    assert accuracy.describe("default").startswith("the defaults; ")
    args = cli.parse_args(["--time-to-accuracy"])
    assert args.contenders == [*raced, "later", "torch", "sklearn"]
    assert (args.json, args.png, args.targets, args.seed) == (
        "time-to-accuracy.json", "time-to-accuracy.png", [0.97, 0.98, 0.985], 0,
    )  # fmt: skip
    assert (cli.parse_args([]).json, cli.parse_args([]).png) == ("bench.json", "bench.png")


@pytest.mark.parametrize(
    "argv",
    [
        ["--time-to-accuracy", "--quick"],
        ["--time-to-accuracy", "--repeats", "3"],
        ["--targets", "0.9"],  # without --time-to-accuracy
        ["--time-to-accuracy", "--targets", "98"],  # a percentage, not a fraction
        ["--time-to-accuracy", "--contenders", "seeds"],
    ],
)
def test_options_of_the_other_mode_or_out_of_range_are_refused(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    assert exc.value.code == 2 and "error" in capsys.readouterr().err


def test_a_contender_stops_at_the_highest_target_and_tests_are_off_the_clock(
    scripted_peers,
) -> None:
    scripted_peers["fake"] = scripted([0.3, 0.6, 0.85, 0.95, 0.99])
    args = cli.parse_args(["--time-to-accuracy", "--contenders", "fake", "--targets", "0.8", "0.5"])
    result = accuracy.collect(args, tiny_data(), lambda _: None)
    [c] = result["contenders"]
    assert [p["epoch"] for p in c["points"]] == [1, 2, 3] and c["ended"] == "target"
    assert c["reached"]["0.5"]["epoch"] == 2 and c["reached"]["0.8"]["epoch"] == 3
    seconds = [p["seconds"] for p in c["points"]]
    assert all(b - a >= 0.9 * TRAIN_S for a, b in zip([0.0, *seconds], seconds, strict=False))
    assert seconds[-1] < 3 * TRAIN_S + TEST_S  # three tests would have added 3 * TEST_S
    assert (
        "| scripted | " in result["markdown"]
        and "(epoch 3) | 85.00% | 3 of 5 |" in (result["markdown"])
    )


def test_ctrl_c_ends_the_race_after_the_epoch_and_writes_what_was_measured(
    scripted_peers, monkeypatch, tmp_path
) -> None:
    scripted_peers["first"] = scripted([0.1, 0.2, 0.3, 0.4], on_epoch={2: press_ctrl_c})
    scripted_peers["second"] = scripted([0.9])
    monkeypatch.setattr(accuracy, "load_dataset", lambda *a, **k: tiny_data())
    out = tmp_path / "r.json"
    args = cli.parse_args(["--time-to-accuracy", "--contenders", "first", "second",
                           "--json", str(out), "--png", str(tmp_path / "r.png")])  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert accuracy.run(args) == interrupt.EXIT_INTERRUPTED
    saved = json.loads(out.read_text())
    assert saved["interrupted"] and saved["skipped"] == {"second": "not run (interrupted)"}
    [c] = saved["contenders"]
    assert c["epochs"] == 2 and c["ended"] == "interrupted" and c["reached"]["0.97"] is None
    assert "Interrupted (Ctrl-C)" in saved["markdown"]


def test_an_unwritable_output_stops_the_command_before_any_training(
    scripted_peers, tmp_path, capsys
) -> None:
    (tmp_path / "file").write_text("")
    args = cli.parse_args(["--time-to-accuracy", "--json", str(tmp_path / "file" / "r.json")])
    assert accuracy.run(args) == 1
    assert "--json" in capsys.readouterr().err


@pytest.fixture(scope="module")
def mnist(real_data_dir) -> Dataset:
    return load_dataset("mnist", data_dir=real_data_dir, download=False)


@pytest.fixture(scope="module")
def real_run(real_data_dir, tmp_path_factory) -> dict:
    """The command on 2,000 MNIST rows: the default preset for real, PyTorch and scikit-learn
    as if not installed, one target out of reach."""
    try:
        get_backend("numba")
    except ValueError as exc:
        pytest.skip(str(exc))
    out = tmp_path_factory.mktemp("time-to-accuracy")
    argv = ["--time-to-accuracy", "--data", str(real_data_dir), "--rows", "2000", "--threads",
            "2", "--contenders", "default", "torch", "sklearn", "--targets", "0.5", "0.8",
            "0.9999", "--json", str(out / "r.json"), "--png", str(out / "r.png"),
            "--markdown", str(out / "r.md")]  # fmt: skip
    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as m:
        for module in ("torch", "sklearn"):
            m.setitem(sys.modules, module, None)  # as if not installed: import fails
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = cli.main(argv)
    saved = json.loads((out / "r.json").read_text())
    return dict(code=code, out=out, json=saved, stdout=stdout.getvalue(), log=stderr.getvalue())


def test_the_command_reports_every_epoch_of_the_default_preset(real_run) -> None:
    assert real_run["code"] == 0
    saved = real_run["json"]
    assert (saved["train_rows"], saved["test_rows"], saved["threads"]) == (2000, 10_000, 2)
    [c] = saved["contenders"]
    assert c["name"] == "fastnn default" and c["recipe_epochs"] == PRESETS["default"]["epochs"]
    points = c["points"]
    assert [p["epoch"] for p in points] == list(range(1, 11))  # 0.9999 is out of reach
    seconds = [p["seconds"] for p in points]
    assert 0 < seconds[0] and all(a < b for a, b in zip(seconds, seconds[1:], strict=False))
    assert c["best_accuracy"] == max(p["accuracy"] for p in points) > 0.8
    for target, hit in c["reached"].items():
        first = next((p for p in points if p["accuracy"] >= float(target)), None)
        assert hit == first
    assert c["reached"]["0.9999"] is None and c["ended"] == "epochs"


def test_the_table_the_notes_and_the_files(real_run) -> None:
    saved, text = real_run["json"], real_run["json"]["markdown"]
    assert real_run["stdout"].strip() == text.strip()
    assert (real_run["out"] / "r.md").read_text() == text
    assert (real_run["out"] / "r.png").read_bytes()[:4] == b"\x89PNG"
    assert saved["machine"]["cpu"] in text and "2 threads" in text
    assert "| contender | s to 50% | s to 80% | s to 99.99% | best test accuracy | epochs |" in text
    [row] = [line for line in text.splitlines() if line.startswith("| fastnn default |")]
    assert row.endswith(f"| not reached | {100 * saved['contenders'][0]['best_accuracy']:.2f}% "
                        "| 10 of 10 |")  # fmt: skip
    assert saved["skipped"] == {"torch": "not installed", "sklearn": "not installed"}
    assert "- torch: not installed, skipped." in text and "- sklearn: not installed" in text
    assert "epoch 10:" in real_run["log"]


def test_partial_fit_epoch_by_epoch_gives_the_bits_of_fit_for_every_preset() -> None:
    """What the race relies on: the cosine schedule runs over max_iter across partial_fit
    calls, so its epochs are those of `python -m fastnn.train --preset NAME`."""
    try:
        get_backend("numba")
    except ValueError as exc:
        pytest.skip(str(exc))
    data = tiny_data(600)
    for name in accuracy.fastnn_presets():
        settings = dict(max_iter=3, random_state=1, n_threads=2)
        whole = MLPClassifier.from_preset(name, **settings).fit(data.X_train, data.y_train)
        stepped = MLPClassifier.from_preset(name, **settings)
        for _ in range(3):
            stepped.partial_fit(data.X_train, data.y_train, classes=accuracy.CLASSES)
        for a, b in zip(whole.coefs_ + whole.intercepts_, stepped.coefs_ + stepped.intercepts_,
                        strict=True):  # fmt: skip
            np.testing.assert_array_equal(a, b)


def peer_slice(mnist: Dataset) -> Dataset:
    return Dataset(mnist.X_train[:2000], mnist.y_train[:2000], mnist.X_test[:1000],
                   mnist.y_test[:1000])  # fmt: skip


def test_torch_trains_its_recipe(mnist) -> None:
    pytest.importorskip("torch")
    racer = accuracy.torch_racer(peer_slice(mnist), 2, 0)
    assert racer.name.startswith("pytorch ") and racer.epochs == accuracy.TORCH_RECIPE["epochs"]
    scores = []
    for _ in range(2):
        racer.train_epoch()
        scores.append(racer.accuracy())
    assert all(0.8 < score <= 1 for score in scores)


def test_sklearn_trains_its_recipe(mnist) -> None:
    pytest.importorskip("sklearn")
    racer = accuracy.sklearn_racer(peer_slice(mnist), 2, 0)
    assert racer.name.startswith("scikit-learn ") and "adam" in racer.recipe
    racer.train_epoch()
    assert 0.7 < racer.accuracy() <= 1
