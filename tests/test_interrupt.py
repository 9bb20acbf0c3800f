"""Ctrl-C (and, in the commands, SIGTERM): the first stops training cleanly at an epoch boundary
and keeps what it has, the second quits at once; never a segfault or a SystemError from inside
the compiled kernels."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import COLD_PACKAGE, COLD_USER_CACHE, COLD_VARIABLE

import fastnn
from fastnn.backends import get_backend
from fastnn.core import interrupt
from fastnn.files import persist
from fastnn.files.history import History

PACKAGE = Path(fastnn.__file__).parent


def press_ctrl_c() -> None:
    """What the terminal does on Ctrl-C. A Python handler runs at the next bytecode; inside
    `stop_requests` the watcher thread records it, and this waits until it has, however busy
    the machine: a fixed 10 ms was once not enough in a whole-suite run with other processes on
    both cores (the stop came an epoch late)."""
    watched = signal.getsignal(signal.SIGINT) is interrupt._ignore and interrupt._active
    os.kill(os.getpid(), signal.SIGINT)
    if not watched:
        time.sleep(0.01)
        return
    deadline = time.monotonic() + 30
    while not interrupt._active.requested and time.monotonic() < deadline:
        time.sleep(0.001)


def test_first_ctrl_c_is_recorded_and_everything_restored():
    threads = set(threading.enumerate())
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    with interrupt.stop_requests() as stop:
        press_ctrl_c()
        assert stop.requested  # the second press would end the process: see below
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.set_wakeup_fd(wakeup) == wakeup
    assert set(threading.enumerate()) <= threads  # none left behind (others may end)


def test_nested_blocks_share_one_request():
    with interrupt.stop_requests() as outer:
        with interrupt.deferred_keyboard_interrupt():  # a kernel call during training
            press_ctrl_c()
        with interrupt.stop_requests() as inner:
            assert inner is outer
    assert outer.requested  # no KeyboardInterrupt escaped: the training loop acts on it


def test_a_kernel_call_outside_training_raises_after_it_returns():
    reached_the_end = False
    with pytest.raises(KeyboardInterrupt):
        with interrupt.deferred_keyboard_interrupt():
            press_ctrl_c()
            reached_the_end = True
    assert reached_the_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_handler_of_the_users_is_left_alone():
    seen = []
    previous = signal.signal(signal.SIGINT, lambda *_: seen.append(1))
    try:
        with interrupt.stop_requests() as stop:
            press_ctrl_c()
        assert seen == [1] and not stop.requested
    finally:
        signal.signal(signal.SIGINT, previous)


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    return X, (X[:, :392].mean(axis=1) > X[:, 392:].mean(axis=1)).astype(int)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_fit_stops_after_the_epoch_in_which_ctrl_c_came(backend, monkeypatch):
    X, y = _data()
    # A constant rate: the schedule does not depend on max_iter, so 2 of 5 epochs are 2 epochs.
    model = fastnn.MLPClassifier(
        hidden_layer_sizes=8, max_iter=5, random_state=0, batch_size=64, backend=backend,
        solver="sgd", learning_rate="constant", learning_rate_init=0.1,
    )  # fmt: skip
    engine = get_backend(backend)
    real_epoch = engine.train_epoch
    calls = []

    def epoch_with_ctrl_c(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            press_ctrl_c()
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(engine, "train_epoch", epoch_with_ctrl_c)
    with pytest.warns(UserWarning, match="Training interrupted by user .* after epoch 2"):
        assert model.fit(X, y) is model
    monkeypatch.undo()
    assert model.n_iter_ == 2 and len(model.loss_curve_) == 2
    two_epochs = fastnn.MLPClassifier(
        hidden_layer_sizes=8, max_iter=2, random_state=0, batch_size=64, backend=backend,
        solver="sgd", learning_rate="constant", learning_rate_init=0.1,
    ).fit(X, y)  # fmt: skip
    for got, want in zip(model.coefs_, two_epochs.coefs_, strict=True):
        np.testing.assert_array_equal(got, want)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _train_command(tmp_path, *extra, env=None):
    """The training command on MNIST (numba, hidden 16 unless `extra` says otherwise: the last
    of a repeated option counts)."""
    command = [
        sys.executable, "-m", "fastnn.train", "--backend", "numba", "--hidden", "16",
        "--dev-size", "1000",
        "--save", str(tmp_path / "model.npz"), "--metrics", str(tmp_path / "metrics.json"),
        *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},  # lines arrive as printed
    )  # fmt: skip


def _wait_for(process, text, timeout=120, stream="stdout"):
    """Read lines of the process's `stream` until one holds `text`; returns what was read."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = getattr(process, stream).readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    process.kill()
    raise AssertionError(f"never printed {text!r} on {stream}; printed:\n{''.join(seen)}")


def _assert_no_crash(code, err, what):
    assert code != -signal.SIGSEGV, f"{what}: segmentation fault\n{err}"
    assert "SystemError" not in err and "Traceback" not in err, f"{what}:\n{err}"


@pytest.mark.real_data
def test_ctrl_c_at_random_moments_of_numba_training(tmp_path):
    """A bounded stress test: each try interrupts a fresh process at a random moment of its
    training; none may crash, and every one that trained keeps and writes its epochs."""
    rng = random.Random(20261130)
    for attempt in range(6):
        folder = tmp_path / str(attempt)
        folder.mkdir()
        process = _train_command(folder, "--epochs", "200")
        _wait_for(process, "| backend numba |")  # the data are loaded: training starts
        time.sleep(rng.uniform(0.0, 1.2))
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
        what = f"attempt {attempt}"
        _assert_no_crash(process.returncode, err, what)
        assert process.returncode == 130, f"{what}: exit {process.returncode}\n{out}\n{err}"
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["status"] == "interrupted", what
        done = metrics["epochs_completed"]
        assert done == len(metrics["epochs"]) < 200, what
        assert f"training interrupted after {done} of 200 epochs" in out, what
        saved = fastnn.load(folder / "model.npz")
        assert saved.predict(np.zeros((1, 784), np.uint8)).shape == (1,)
        assert not [p for p in folder.glob(".*") if p.is_file()], f"{what}: temporary files"


@pytest.mark.real_data
def test_a_second_ctrl_c_quits_at_once(tmp_path):
    """Even within one compiled epoch (hidden 512: about 0.5 s each): the second press is seen
    when it happens, not when the kernel returns. It is sent once the first was acknowledged:
    Linux keeps at most one SIGINT pending, so two sent back to back can arrive as one (a run
    on CI did exactly that), which no program can tell apart from a single press."""
    process = _train_command(tmp_path, "--hidden", "512", "--epochs", "200")
    _wait_for(process, "epoch    1/200")
    process.send_signal(signal.SIGINT)
    _wait_for(process, "Ctrl-C: stopping after this epoch", stream="stderr")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    _assert_no_crash(process.returncode, err, "second Ctrl-C")
    assert process.returncode == 130, (out, err)
    assert "Ctrl-C again: stopped at once" in err
    assert "epoch    2/200" not in out and not (tmp_path / "metrics.json").exists()


def read_only_copy(root: Path) -> Path:
    """The package copied under root, its kernels' __pycache__ impossible to create: a file
    takes its name (chmod alone does not stop root) and the folders are read-only."""
    copy = root / COLD_PACKAGE / "fastnn"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "kernels" / "__pycache__").write_text("not a folder")
    for folder in [copy, *[p for p in copy.rglob("*") if p.is_dir()]]:
        folder.chmod(0o555)
    return copy


@pytest.mark.real_data
def test_first_run_compiles_into_the_user_cache_says_so_and_ctrl_c_waits_for_it(
    tmp_path, background, real_data_dir
):
    """One cold compile (about 30 s of one core) serves three checks. The package folder is
    read-only, so Numba falls back to the user's cache without a traceback. The command says
    it is compiling; Ctrl-C meanwhile lets compilation finish, trains one epoch, writes the
    outputs and exits 130. A second run loads the kernels from the cache and claims no
    compiling. In a whole-suite run this test runs in the background (see conftest.py), and
    here it reports that run; there the copy and its cache are in COLD_VARIABLE's folder, for
    the portable run to load the kernels that it compiled."""
    if background is not None:
        background.check("cold-compile")
        return
    root = Path(os.environ.get(COLD_VARIABLE) or tmp_path)
    copy = read_only_copy(root)
    # The data named, as fastnn's own cache moves with XDG_CACHE_HOME.
    env = {"PYTHONPATH": str(copy.parent), "NUMBA_CACHE_DIR": "",
           "XDG_CACHE_HOME": str(root / COLD_USER_CACHE),
           "FASTNN_DATA_DIR": str(real_data_dir)}  # fmt: skip
    try:
        cold = tmp_path / "cold"
        cold.mkdir()
        process = _train_command(cold, "--epochs", "3", env=env)
        _wait_for(process, "compiling the Numba kernels once")
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=300)
        _assert_no_crash(process.returncode, err, "Ctrl-C while compiling")
        assert "Error" not in err, err
        assert process.returncode == 130, (out, err)
        assert "epoch    1/3" in out and "epoch    2/3" not in out
        assert "compiled the kernels in " in out
        assert json.loads((cold / "metrics.json").read_text())["epochs_completed"] == 1
        # The copy ran (the installed package would have used its own __pycache__).
        assert list((root / COLD_USER_CACHE).rglob("*.nbi")), (
            "nothing cached in the user's cache folder"
        )

        warm = tmp_path / "warm"
        warm.mkdir()
        process = _train_command(warm, "--epochs", "1", env=env)
        out, err = process.communicate(timeout=120)
    finally:
        for folder in [copy, *[p for p in copy.rglob("*") if p.is_dir()]]:
            folder.chmod(0o755)
    assert process.returncode == 0, err
    assert "compiling the" not in out + err
    assert json.loads((warm / "metrics.json").read_text())["compile_seconds"] is None


def test_no_warning_when_fit_is_not_interrupted():
    X, y = _data(100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fastnn.MLPClassifier(
            hidden_layer_sizes=16, max_iter=2, backend="numpy", random_state=0
        ).fit(X, y)


@pytest.mark.real_data
def test_a_cosine_run_stopped_by_ctrl_c_resumes_to_the_bits_of_the_whole_run(tmp_path):
    """The cosine schedule is planned over the run's epochs: resumed to that end after Ctrl-C,
    the run takes the rates (and samples, and Adam's moments) it would have taken anyway."""
    options = ["--epochs", "4", "--solver", "adam", "--lr", "0.003", "--learning-rate", "cosine"]
    whole, stopped = tmp_path / "whole", tmp_path / "stopped"
    whole.mkdir()
    stopped.mkdir()
    out, err = _train_command(whole, *options).communicate(timeout=300)
    assert "epoch    4/4" in out, err
    process = _train_command(stopped, *options)
    _wait_for(process, "epoch    2/4")
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 130, (out, err)
    completed = json.loads((stopped / "metrics.json").read_text())["epochs_completed"]
    assert 2 <= completed < 4, completed
    resumed = subprocess.run(
        [sys.executable, "-m", "fastnn.train", "--resume", str(stopped / "model.npz"),
         "--save", str(stopped / "resumed.npz")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert resumed.returncode == 0 and "epoch    4/4" in resumed.stdout, resumed.stderr
    a, b = fastnn.load(stopped / "resumed.npz"), fastnn.load(whole / "model.npz")
    for x, z in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True):
        np.testing.assert_array_equal(x, z)


def send_sigterm() -> None:
    """What kill, timeout, job schedulers and container runtimes send."""
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)


def test_a_command_takes_sigterm_as_a_first_ctrl_c_and_exits_143():
    """Under handles_sigterm (a command's main), in all three places: recorded in training,
    deferred past a kernel call, raised as KeyboardInterrupt in plain Python. Outside it (a
    program that fits), SIGTERM keeps its default: ending the process."""
    seen = []

    @interrupt.handles_sigterm
    def train() -> int:
        with interrupt.stop_requests() as stop:
            with interrupt.deferred_keyboard_interrupt():  # a kernel call during training
                send_sigterm()
            seen.append(stop.signal)
        return interrupt.EXIT_INTERRUPTED if stop.requested else 0

    @interrupt.handles_sigterm
    def serve() -> int:
        try:
            with interrupt.deferred_keyboard_interrupt():  # a kernel call: raised after it
                send_sigterm()
                seen.append("the call ended")
            time.sleep(30)  # never reached: KeyboardInterrupt above
        except KeyboardInterrupt:
            return interrupt.EXIT_INTERRUPTED
        return 0

    assert train() == 143 and serve() == 143
    assert seen == [signal.SIGTERM, "the call ended"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with interrupt.stop_requests(), interrupt.deferred_keyboard_interrupt():
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


@pytest.mark.real_data
def test_sigterm_stops_training_as_the_first_ctrl_c_does(tmp_path):
    """The epoch ends and every output asked for is written, with the status "terminated";
    exit status 143."""
    process = _train_command(tmp_path, "--epochs", "200", "--plots", str(tmp_path / "plots"))
    _wait_for(process, "epoch    1/200")
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=120)
    _assert_no_crash(process.returncode, err, "SIGTERM")
    assert process.returncode == 143, (out, err)
    assert "SIGTERM: stopping after this epoch and keeping its weights" in err
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    done = metrics["epochs_completed"]
    assert metrics["status"] == "terminated" and 1 <= done == len(metrics["epochs"]) < 200
    assert f"training terminated after {done} of 200 epochs" in out
    saved = persist.read_model(tmp_path / "model.npz")
    assert saved.config["status"] == "terminated" and saved.config["epochs_completed"] == done
    assert History.from_json(saved.history, "model.npz").epochs == done
    assert {"loss.png", "accuracy.png", "samples.png"} <= set(os.listdir(tmp_path / "plots"))
    assert not [p for p in tmp_path.rglob(".*") if p.is_file()], "temporary files"


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("second", "status", "said"),
    [(signal.SIGTERM, 143, "SIGTERM again"), (signal.SIGINT, 130, "Ctrl-C after SIGTERM")],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_a_second_signal_after_sigterm_quits_at_once(tmp_path, second, status, said):
    """As a second Ctrl-C does, within one compiled epoch (hidden 512: about 0.5 s each);
    sent once the first was acknowledged (see test_a_second_ctrl_c_quits_at_once)."""
    process = _train_command(tmp_path, "--hidden", "512", "--epochs", "200")
    _wait_for(process, "epoch    1/200")
    process.send_signal(signal.SIGTERM)
    _wait_for(process, "SIGTERM: stopping after this epoch", stream="stderr")
    process.send_signal(second)
    out, err = process.communicate(timeout=30)
    _assert_no_crash(process.returncode, err, "second signal")
    assert process.returncode == status, (out, err)
    assert f"{said}: stopped at once" in err
    assert "epoch    2/200" not in out and not (tmp_path / "metrics.json").exists()
