"""Output paths: what can be checked is checked before training; a write that fails anyway at
the end is one clear line, and the other outputs are still written."""

import json
import os
import resource
import stat
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import run_main, write_kaggle

import fastnn
from fastnn.files.atomic import check_writable
from fastnn.predict import command as predict


def _read_only_folder() -> Path:
    """A folder that even root cannot write in (sysfs), or skip."""
    folder = Path("/sys")
    try:
        fd, probe = tempfile.mkstemp(dir=folder)
    except OSError:
        return folder
    os.close(fd)
    os.unlink(probe)
    pytest.skip("no read-only folder on this machine")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_kaggle(folder / "train.csv", 200, with_labels=True)
    write_kaggle(folder / "test.csv", 20, with_labels=False, seed=1)
    return folder


def train_args(data, *extra):
    return ["--backend", "numpy", "--data", str(data / "train.csv"), "--epochs", "1",
            "--dev-size", "40", "--hidden", "8", *extra]  # fmt: skip


def bad_paths(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    read_only = _read_only_folder()
    return a_file, a_folder, read_only


@pytest.mark.parametrize(
    "case",
    [
        ("--save", "{read_only}/sub/model.npz", "cannot write in /sys"),
        ("--save", "{a_file}/model.npz", "is a file, so no folder can be made inside it"),
        ("--save", "{a_folder}", "is a folder; give a file name"),
        ("--metrics", "{read_only}/metrics.json", "cannot write in /sys"),
        ("--metrics", "{a_folder}", "is a folder; give a file name"),
        ("--plots", "{a_file}", "is a file, not a folder"),
        ("--plots", "{a_file}/plots", "is a file, so no folder can be made inside it"),
    ],
)
def test_train_refuses_unwritable_outputs_before_training(case, data, tmp_path, capsys):
    option, template, message = case
    a_file, a_folder, read_only = bad_paths(tmp_path)
    path = template.format(a_file=a_file, a_folder=a_folder, read_only=read_only)
    code, out, err = run_main(train_args(data, option, path), capsys)
    assert code == 1
    assert f"fastnn.train: error: {option} {path}: " in err and message in err
    assert "epoch" not in out, "it trained before refusing the path"
    assert "Traceback" not in err


def test_train_and_predict_do_not_overwrite_a_default_submission(
    data, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    Path("submission.csv").write_text("precious\n")
    code, out, err = run_main(train_args(data, "--predict-csv", str(data / "test.csv")), capsys)
    assert code == 1 and "--submission submission.csv: exists already" in err
    assert "epoch" not in out
    code, out, err = run_main(
        train_args(data, "--predict-csv", str(data / "test.csv"), "--save", "model.npz"), capsys
    )
    assert code == 1 and not Path("model.npz").exists()
    assert Path("submission.csv").read_text() == "precious\n"

    # Named explicitly, it is replaced.
    args = train_args(data, "--predict-csv", str(data / "test.csv"), "--submission")
    code, out, err = run_main([*args, "submission.csv", "--save", "model.npz"], capsys)
    assert code == 0, err
    assert len(pd.read_csv("submission.csv")) == 20

    # fastnn.predict: the same rule for --output.
    Path("submission.csv").write_text("precious\n")
    with pytest.raises(SystemExit) as stop:
        predict.main(["model.npz", str(data / "test.csv")])
    assert stop.value.code == 2
    assert "--output submission.csv: exists already" in capsys.readouterr().err
    assert Path("submission.csv").read_text() == "precious\n"
    assert predict.main(["model.npz", str(data / "test.csv"), "--output", "submission.csv"]) == 0
    assert len(pd.read_csv("submission.csv")) == 20


def test_predict_refuses_an_unwritable_output_before_loading(data, tmp_path, capsys):
    read_only = _read_only_folder()
    with pytest.raises(SystemExit) as stop:
        predict.main(["no-model.npz", str(data / "test.csv"), "--output", f"{read_only}/s.csv"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "cannot write in /sys" in err and "no-model.npz" not in err


def test_a_write_that_fails_at_the_end_is_one_line_and_the_rest_is_written(data, tmp_path):
    """Files may not grow past 100 kB (as on a nearly full disk): the 200 kB model cannot be
    written, the metrics and the submission can."""

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    outputs = ["--save", "model.npz", "--metrics", "m.json", "--submission", "s.csv"]
    args = train_args(data, "--hidden", "64", "--predict-csv", str(data / "test.csv"), *outputs)
    command = [sys.executable, "-m", "fastnn.train", *args]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=120,
        preexec_fn=limit_file_size,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "could not write the model to model.npz: File too large" in errors[0]
    assert not (tmp_path / "model.npz").exists()
    assert not [p for p in tmp_path.glob(".*") if p.is_file()], "temporary files left behind"
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["status"] == "finished" and metrics["epochs_completed"] == 1
    assert len(pd.read_csv(tmp_path / "s.csv")) == 20


def test_check_writable_accepts_what_can_be_written(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "model.npz", "--save")
    check_writable(tmp_path / "plots", "--plots", folder=True)
    (tmp_path / "old.json").write_text("{}")
    check_writable(tmp_path / "old.json", "--metrics")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # nothing was made


def test_a_model_saved_after_the_check_still_loads(data, tmp_path, capsys):
    code, _, err = run_main(train_args(data, "--save", str(tmp_path / "m" / "model.npz")), capsys)
    assert code == 0, err
    assert fastnn.load(tmp_path / "m" / "model.npz").n_features_in_ == 784


@pytest.mark.parametrize("option", ["--json", "--png", "--markdown"])
def test_bench_refuses_unwritable_outputs_before_timing(option, tmp_path, capsys, monkeypatch):
    from fastnn.bench import cli

    monkeypatch.setattr(cli, "load", lambda *a, **k: pytest.fail("it went on to time"))
    assert cli.main(["--quick", option, str(tmp_path)]) == 1
    assert f"fastnn.bench: error: {option} {tmp_path}: is a folder" in capsys.readouterr().err


def test_predict_ctrl_c_is_one_line_and_exit_130(data, tmp_path, capsys, monkeypatch):
    fastnn.MLPClassifier(hidden_layer_sizes=16, max_iter=1, backend="numpy", random_state=0).fit(
        *pd.read_csv(data / "train.csv").pipe(lambda t: (t.drop(columns="label"), t.label))
    ).save(tmp_path / "model.npz")

    def ctrl_c(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(predict, "load_digit", ctrl_c)
    code = predict.main([str(tmp_path / "model.npz"), "digit.png"])
    assert code == 130
    assert capsys.readouterr().err == "fastnn.predict: interrupted; nothing was written\n"


def test_outputs_through_a_link_and_into_a_pipe(data, tmp_path, capsys):
    """A symbolic link is kept and the file it names replaced; a named pipe (like /dev/stdout
    in a pipeline) is written into, not replaced by a file."""
    (tmp_path / "real").mkdir()
    link = tmp_path / "model.npz"
    link.symlink_to(tmp_path / "real" / "model.npz")
    pipe = tmp_path / "metrics.pipe"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()), daemon=True)
    reader.start()
    code, _, err = run_main(train_args(data, "--save", str(link), "--metrics", str(pipe)), capsys)
    reader.join(timeout=60)
    assert code == 0, err
    assert link.is_symlink() and fastnn.load(link).n_features_in_ == 784
    assert stat.S_ISFIFO(os.stat(pipe).st_mode)
    assert json.loads(received[0])["status"] == "finished"


def test_a_data_file_named_with_dollars_gives_the_report_and_the_metrics(data, tmp_path, capsys):
    """matplotlib would read "$5_and_$" as mathematics, and fail on it."""
    named = tmp_path / "price_$5_and_$6.csv"
    named.write_bytes((data / "train.csv").read_bytes())
    outputs = ["--report", str(tmp_path / "report"), "--metrics", str(tmp_path / "m.json")]
    code, out, err = run_main(
        ["--backend", "numpy", "--data", str(named), "--epochs", "1", "--dev-size", "40",
         "--hidden", "8", *outputs],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<td>accuracy on the price_$5_and_$6.csv dev set</td>" in page
    assert json.loads((tmp_path / "m.json").read_text())["status"] == "finished"


def test_a_report_that_fails_is_one_line_and_the_other_outputs_are_written(
    data, tmp_path, capsys, monkeypatch
):
    """A failure no check foresees (here a figure that raises, as matplotlib did on "$" in a
    name) loses the report only."""
    from fastnn.report import figures as report_figures

    def fails(*args, **kwargs):
        raise ValueError("cannot draw this")

    monkeypatch.setattr(report_figures, "weights", fails)
    report = tmp_path / "report"
    outputs = ["--report", str(report), "--metrics", str(tmp_path / "m.json"), "--save",
               str(tmp_path / "model.npz")]  # fmt: skip
    code, out, err = run_main(train_args(data, *outputs), capsys)
    assert code == 1
    assert json.loads((tmp_path / "m.json").read_text())["status"] == "finished"
    assert fastnn.load(tmp_path / "model.npz").n_features_in_ == 784
    assert err == (
        f"fastnn.train: error: could not write the report (report.html and its figures) to "
        f"{report}: ValueError: cannot draw this\n"
    )
    assert not (report / "report.html").exists()
    assert f"wrote metrics to {tmp_path / 'm.json'}" in out
