"""The README's examples run as written: every Python block, and the commands of the sections
that use the library, predict, report, serve, export and sweep. The blocks of the other sections
(installing, the training command's longer runs, the benchmark and the test command) are named in
NOT_RUN, and a test checks that no other section has a block that nothing runs."""

import json
import re
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx_helpers
import pandas as pd
import pytest
import sweep_helpers
from conftest import one_member_teams
from PIL import Image

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def blocks(language: str, section: str | None = None) -> list[str]:
    text = README.read_text(encoding="utf-8")
    if section is not None:
        text = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [code for lang, code in BLOCK.findall(text) if lang == language]


needs_data = pytest.mark.real_data  # MNIST, where fastnn finds it (see conftest.py)


def run(command: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=cwd, env=one_member_teams(), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (
        f"{shlex.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    )
    return result


LIBRARY = "Use as a library"
DEEPER = "Networks and optimizers"
PREDICT = "Predict"
REPORT = "Report"
TRAIN = "python -m fastnn.train --save model.npz"  # the model of the sections below
SERVE = "Serve: draw digits in the browser"
EXPORT = "Export to ONNX"
SWEEPS = "Sweep hyperparameters"
DEVELOPMENT = "Development"
# The sections whose blocks no test runs, and why.
NOT_RUN = {
    "Install": "it installs packages",
    "Train": "the preset runs take minutes; the lines that say an accuracy run in "
    "test_train_examples_reach_the_accuracy_they_say",
    "Benchmark": "each run takes minutes",
    DEVELOPMENT: "the test command itself: .ci/run runs it as written (checked below)",
}
CI_RUN = README.parent / ".ci" / "run"


def test_readme_has_the_examples_this_file_runs():
    assert len(blocks("python", LIBRARY)) == 2
    assert len(blocks("bash", PREDICT)) == 1
    assert len(blocks("bash", REPORT)) == 1
    assert len(blocks("bash", SERVE)) == 2
    assert len(blocks("bash", EXPORT)) == 1
    assert len(blocks("bash", SWEEPS)) == 2 and len(blocks("python", SWEEPS)) == 1
    assert len(blocks("python", DEEPER)) == 1 and len(blocks("bash", DEEPER)) == 1


def test_every_block_of_the_readme_runs_or_is_named_as_not_run():
    tested = {LIBRARY, DEEPER, PREDICT, REPORT, SERVE, EXPORT, SWEEPS}
    text = README.read_text(encoding="utf-8")
    untested = []
    for part in text.split("\n## ")[1:]:
        section = part.split("\n", 1)[0]
        languages = {lang for lang, _ in BLOCK.findall(part)}
        if languages & {"bash", "sh", "shell", "python", "py"} and section not in tested:
            untested.append(section)
    assert sorted(untested) == sorted(NOT_RUN), "a README section has a block no test runs"


def test_readme_test_command_is_the_one_ci_runs():
    """.ci/run runs the README's test command as written: the same line."""
    lines = CI_RUN.read_text(encoding="utf-8").splitlines()
    [command] = [line for line in lines if line.endswith("python -m pytest")]
    assert command == 'pip install -e ".[dev,sweep,compat,onnx]" && python -m pytest'
    assert blocks("bash", DEVELOPMENT) == [command + "\n"]


@needs_data
def test_train_examples_reach_the_accuracy_they_say(tmp_path, trained_run):
    """Each line of the Train section that ends in an accuracy reaches it: the bits, and so the
    last digit, may differ on another CPU (AVX-512 or not), hence 0.2 points either way. The
    first, the default configuration, is the run that also saves the other sections' model
    (TRAIN: the same command with --save, which changes nothing of the training); it reaches
    the 98% that the README's opening promises (98.1-98.2% on AVX2 and AVX-512 machines)."""
    lines = [line for line in blocks("bash", "Train")[0].splitlines() if line.endswith("%")]
    assert len(lines) == 2 and "--solver sgd --momentum 0.9 " in lines[1]  # no --lr
    assert [*_command(lines[0]), "--save", "model.npz"] == _command(TRAIN)
    default = trained_run[1]
    assert "hidden 256 relu" in default and "adam, lr 0.003 cosine" in default
    assert float(default.split("test accuracy ")[1].split("%")[0]) >= 98.0
    for line in lines:
        said = float(line.rsplit(" ", 1)[1].rstrip("%"))
        out = default if line is lines[0] else run(_command(line), tmp_path).stdout
        printed = out.split("test accuracy ")[1].split("%")[0]
        assert abs(float(printed) - said) <= 0.2, (line, printed)


def test_readme_is_at_most_300_lines():
    assert len(README.read_text(encoding="utf-8").splitlines()) <= 300


@needs_data
@pytest.mark.parametrize("index", [0, 1])
def test_library_example_runs(index, tmp_path):
    code = blocks("python", LIBRARY)[index]
    result = run([sys.executable, "-c", code], tmp_path)
    if index == 0:
        accuracy = float(result.stdout.split("test accuracy")[1])
        assert accuracy > 0.96
        assert (tmp_path / "mnist-model.npz").exists()


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, str]:
    """The first command of these sections, run once: the folder holding the model.npz it
    makes, and what it printed."""
    folder = tmp_path_factory.mktemp("readme")
    assert blocks("bash", PREDICT)[0].splitlines()[0].startswith(TRAIN)
    assert blocks("bash", REPORT)[0].startswith(TRAIN + " && ")
    assert blocks("bash", EXPORT)[0].startswith(TRAIN + " && ")
    assert blocks("bash", SERVE)[0].splitlines()[0] == TRAIN
    return folder, run(_command(TRAIN), folder).stdout


@pytest.fixture(scope="module")
def trained(trained_run) -> Path:
    """A folder holding the model.npz that the first command of these sections makes."""
    return trained_run[0]


@needs_data
def test_report_command_runs(trained):
    report = blocks("bash", REPORT)[0].strip().split(" && ", 1)[1]
    run(_command(report), trained)
    assert (trained / "report" / "report.html").stat().st_size > 10_000


@needs_data
def test_export_command_runs(trained):
    """The file it writes gives the saved model's labels in onnxruntime."""
    import fastnn
    from fastnn.data import load_dataset

    onnxruntime = onnx_helpers.require_runtime()
    export = blocks("bash", EXPORT)[0].strip().split(" && ", 1)[1]
    run(_command(export), trained)
    _, _, X_test, _ = load_dataset("mnist", download=False)
    session = onnxruntime.InferenceSession(str(trained / "model.onnx"))
    [label] = session.run(["label"], {"X": X_test[:500]})
    expected = fastnn.load(trained / "model.npz").set_params(backend="numpy").predict(X_test[:500])
    assert (label == expected).all()


@needs_data
def test_prediction_commands_run(trained):
    from fastnn.data import load_dataset

    tmp_path = trained

    _, _, X_test, _ = load_dataset("mnist", download=False)
    digit = X_test[0].reshape(28, 28)
    big = np.kron(255 - digit, np.ones((8, 8), dtype=np.uint8))  # dark on light, 224 px
    Image.fromarray(big).save(tmp_path / "my-digit.png")
    Image.fromarray(np.stack([big, big, big // 2], axis=2)).save(tmp_path / "another.jpg")
    columns = [f"pixel{i}" for i in range(784)]
    pd.DataFrame(X_test[:20], columns=columns).to_csv(tmp_path / "test.csv", index=False)
    for line in blocks("bash", PREDICT)[0].splitlines()[1:]:  # trained: the first
        run(_command(line), tmp_path)
    assert len(pd.read_csv(tmp_path / "submission.csv")) == 20


@needs_data
def test_deeper_network_examples_run(tmp_path):
    result = run([sys.executable, "-c", blocks("python", DEEPER)[0]], tmp_path)
    accuracy_line, counts = result.stdout.strip().splitlines()[-2:]
    assert float(accuracy_line.split("test accuracy")[1]) > 0.96
    assert counts == "3 3"
    outputs = [
        run(_command(line), tmp_path).stdout for line in blocks("bash", DEEPER)[0].splitlines()
    ]
    assert "resuming after epoch 2" in outputs[1] and "epoch    3/3" in outputs[1]


def _command(line: str) -> list[str]:
    command = shlex.split(line.split("#")[0])
    return [sys.executable if command[0] == "python" else command[0], *command[1:]]


@needs_data
def test_serve_command_and_its_curl_examples_run(trained):
    """The section's server, started as written (port 8000), answers the curl lines as
    written; Ctrl-C stops it with status 130."""
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8000)) == 0:
            pytest.skip("something on this machine already listens on port 8000")
    from fastnn.data import load_dataset

    _, _, X_test, y_test = load_dataset("mnist", download=False)
    Image.fromarray(255 - X_test[0].reshape(28, 28)).save(trained / "my-digit.png")
    (trained / "pixels.json").write_text(json.dumps(X_test[1].tolist()))
    serve_line = blocks("bash", SERVE)[0].splitlines()[1]
    server = subprocess.Popen(
        _command(serve_line), cwd=trained, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert "http://127.0.0.1:8000/" in server.stdout.readline()  # printed once it listens
        answers = []
        for line in blocks("bash", SERVE)[1].splitlines():
            answers.append(json.loads(run(shlex.split(line), trained).stdout))
        assert [a["class"] for a in answers] == y_test[:2].tolist()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            _, err = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:  # never left behind holding the port
            server.kill()
            _, err = server.communicate()
            err = f"still serving 30 s after Ctrl-C:\n{err}"
    assert server.returncode == 130, err


def _lines(block: str) -> list[str]:
    """A bash block's commands, continuation lines joined."""
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


@needs_data
def test_sweep_examples_run(tmp_path):
    """The local sweep as written, then the library's (which finds every trial in the
    command's log and runs none), then the same sweep through a scheduler and two workers
    started as written. (docs/sweep.md has the GridSearchCV example: see test_docs.)"""
    sweep_helpers.require_distributed()
    install, local = _lines(blocks("bash", SWEEPS)[0])
    assert install == 'pip install -e ".[sweep]"'  # installed: pip install -e ".[dev,sweep]"
    out = run(_command(local), tmp_path).stdout
    assert "8 trials in" in out and "best: python -m fastnn.train" in out
    out = run([sys.executable, "-c", blocks("python", SWEEPS)[0]], tmp_path).stdout
    assert len(out.strip().splitlines()) == 6, out  # a header line, a title and 4 means
    *services, cluster = _lines(blocks("bash", SWEEPS)[1])
    started = []
    try:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", 8786)) == 0:
                pytest.skip("something on this machine already listens on port 8786")
        for line in services:
            assert line.endswith(" &")
            started.append(
                subprocess.Popen(
                    shlex.split(line[:-2]),
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
        out = run(_command(cluster), tmp_path).stdout
        assert "8 trials in" in out and "best: python -m fastnn.train" in out
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
