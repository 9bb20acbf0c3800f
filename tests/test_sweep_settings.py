"""Every setting of python -m fastnn.sweep and fastnn.sweep() is checked before anything starts:
a bad value of each is refused in one line naming the option (exit status 2) or a ValueError
naming the parameter, before the data is read (except where the limit is the data's rows), before
any file is written and before Dask is started."""

import json
import re
import subprocess
import sys

import pytest
from sweep_helpers import TINY, require_distributed

import fastnn
from fastnn.sweep import cli, run

GRID = ["--grid", "alpha=0,0.1"]


@pytest.fixture
def nothing_starts(monkeypatch):
    """Reaching the cluster fails the test; so does reading the data unless `data` is True."""

    def started(*args, **kwargs):
        raise AssertionError("a Dask cluster was started before the settings were checked")

    def read(*args, **kwargs):
        raise AssertionError("the data was read before the settings were checked")

    monkeypatch.setattr(run, "open_client", started)

    def arm(data: bool = False) -> None:
        if not data:
            monkeypatch.setattr(run, "load_data", read)

    return arm


def command(argv, capsys):
    """python -m fastnn.sweep in this process: (exit status, stderr)."""
    try:
        code = cli.main(argv)
    except SystemExit as exc:  # argparse's refusals
        code = exc.code
    return code, capsys.readouterr().err


def space_file(tmp_path, content) -> str:
    path = tmp_path / "space.json"
    path.write_text(json.dumps(content))
    return str(path)


# (test id, the arguments after a good sweep's, what the message must name). Every option of
# the command: --grid, --space, --seeds, --epochs, --random, --random-seed, --halving,
# --min-epochs, --factor, --metric, --preset, --dataset, --data, --no-download, --dev-size,
# --train-rows, --backend, --scheduler, --workers, --threads, --retries, --out, --resume, --top,
# --no-figures.
COMMAND_CASES = [
    ("grid-unknown", ["--grid", "colour=red"], "cannot sweep 'colour'"),
    ("grid-value", ["--grid", "hidden=0"], "hidden_layer_sizes='0'"),
    ("grid-no-equals", ["--grid", "alpha"], "--grid takes NAME=VALUE"),
    ("space-missing", ["--space", "{tmp}/missing.json"], "--space {tmp}/missing.json"),
    ("space-unknown-key", ["--space", "{space:colour}"], "unknown key(s) 'colour'"),
    ("space-seeds-null", ["--space", "{space:seeds}"], "seeds in {tmp}/space.json must be"),
    ("seeds-negative", ["--seeds", "-1"], "--seeds must be whole numbers >= 0"),
    ("seeds-not-a-number", ["--seeds", "one"], "argument --seeds"),
    ("epochs-0", ["--epochs", "0"], "--epochs must be a positive whole number"),
    ("random-0", ["--random", "0"], "--random must be a positive whole number"),
    ("random-seed-negative", ["--random", "1", "--random-seed", "-1"], "--random-seed must be"),
    ("random-seed-alone", ["--random-seed", "5"], "--random-seed seeds the draws of --random"),
    ("halving-max-iter", ["--grid", "max_iter=1,2", "--halving"], "with --halving the epochs"),
    ("halving-flag-value", ["--halving=yes"], "argument --halving"),
    ("min-epochs-0", ["--halving", "--min-epochs", "0"], "--min-epochs must be a positive"),
    ("min-epochs-over-epochs", ["--halving", "--min-epochs", "5"], "--min-epochs must be at most"),
    ("factor-1", ["--halving", "--factor", "1"], "--factor must be a whole number >= 2"),
    ("factor-alone", ["--factor", "2"], "--min-epochs and --factor are successive halving's"),
    ("metric", ["--metric", "accuracy"], "argument --metric: invalid choice"),
    ("preset", ["--preset", "fast"], "argument --preset: invalid choice"),
    ("dataset", ["--dataset", "cifar"], "argument --dataset: invalid choice"),
    ("data-empty", ["--data", ""], "--data must be the path"),
    ("no-download-value", ["--no-download=yes"], "argument --no-download"),
    ("dev-size-0", ["--dev-size", "0"], "--dev-size must be a positive whole number"),
    ("dev-size-negative", ["--dev-size", "-1"], "--dev-size must be a positive whole number"),
    ("train-rows-0", ["--train-rows", "0"], "--train-rows must be a positive whole number"),
    ("train-rows-negative", ["--train-rows", "-5"], "--train-rows must be a positive whole"),
    ("backend", ["--backend", "torch"], "argument --backend: invalid choice"),
    ("scheduler-scheme", ["--scheduler", "foo://127.0.0.1:1"], "--scheduler must be a Dask"),
    ("scheduler-port", ["--scheduler", "tcp://host:port"], "--scheduler must be a Dask"),
    ("scheduler-and-workers", ["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
     "--workers is for a local cluster"),
    ("workers-0", ["--workers", "0"], "--workers must be a positive whole number"),
    ("workers-negative", ["--workers", "-1"], "--workers must be a positive whole number"),
    ("threads-0", ["--threads", "0"], "--threads must be a positive whole number"),
    ("retries-negative", ["--retries", "-1"], "--retries must be a whole number >= 0"),
    ("top-0", ["--top", "0"], "argument --top: must be a positive whole number"),
    ("no-figures-value", ["--no-figures=yes"], "argument --no-figures"),
    ("resume-not-a-sweep", ["--resume", "{tmp}"], "--resume {tmp}: no sweep.json there"),
    ("resume-and-grid", ["--resume", "{tmp}", "--grid", "alpha=1"], "leave out --grid"),
    ("resume-and-out", ["--resume", "{tmp}", "--out", "{tmp}/o"], "leave out --out"),
    ("nothing-to-sweep", ["--space", "{space:empty}"], "nothing to sweep"),
]  # fmt: skip
SPACE_FILES = {
    "colour": {"grid": {"alpha": [0, 1]}, "colour": "red"},
    "seeds": {"grid": {"alpha": [0, 1]}, "seeds": None},
    "empty": {"seeds": [0]},
}


@pytest.mark.parametrize(
    "given, named", [c[1:] for c in COMMAND_CASES], ids=[c[0] for c in COMMAND_CASES]
)
def test_a_bad_option_is_one_line_naming_it_before_anything_starts(
    given, named, tmp_path, capsys, nothing_starts
):
    require_distributed()
    nothing_starts()

    def fill(word: str) -> str:
        if word.startswith("{space:"):
            return space_file(tmp_path, SPACE_FILES[word[7:-1]])
        return word.replace("{tmp}", str(tmp_path))

    argv = [fill(word) for word in given]
    if "--resume" not in argv:
        grid = [] if "--grid" in argv or "--space" in argv else GRID
        argv = [*grid, *TINY, *argv, "--out", str(tmp_path / "out")]
    before = sorted(tmp_path.rglob("*"))
    code, said = command(argv, capsys)
    assert code == cli.EXIT_USAGE, said
    assert said.count("\n") == 1 and "Traceback" not in said, said
    assert fill(named) in said, said
    assert sorted(tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize(
    "given, named",
    [
        (["--dev-size", "70000"], "--dev-size must leave rows to train on: mnist has 60000"),
        (["--train-rows", "59500"], "--train-rows and --dev-size together must be at most"),
        (["--data", "{tmp}/nowhere"], "--data {tmp}/nowhere: "),
    ],
    ids=["dev-size-over-the-rows", "train-rows-over-the-rows", "data-missing"],
)
def test_a_limit_of_the_data_is_checked_once_it_is_read_before_dask(
    given, named, tmp_path, capsys, monkeypatch, real_data_dir, nothing_starts
):
    """The rows are known once the data is read: still before any file or the cluster."""
    require_distributed()
    nothing_starts(data=True)
    monkeypatch.setenv("FASTNN_DATA_DIR", str(real_data_dir))
    argv = [w.replace("{tmp}", str(tmp_path)) for w in given]
    code, said = command([*GRID, *TINY, *argv, "--out", str(tmp_path / "out")], capsys)
    assert code == cli.EXIT_USAGE and said.count("\n") == 1, said
    assert named.replace("{tmp}", str(tmp_path)) in said, said
    assert not (tmp_path / "out").exists()


# (parameter, a bad value, what the message shows of it) for every parameter of fastnn.sweep().
LIBRARY_CASES = [
    ("grid", "hidden=64", "got 'hidden=64'"), ("grid", {"colour": [1]}, "cannot sweep 'colour'"),
    ("seeds", [-1], "got -1"), ("seeds", 5, "got 5"), ("seeds", [], "at least one seed"),
    ("epochs", 0, "got 0"), ("random", 0, "got 0"), ("random_seed", -1, "got -1"),
    ("halving", "yes", "got 'yes'"), ("min_epochs", 0, "got 0"), ("factor", 1, "got 1"),
    ("metric", "accuracy", "got 'accuracy'"), ("preset", "fast", "got 'fast'"),
    ("dataset", "cifar", "got 'cifar'"), ("data", 5, "got 5"), ("download", "no", "got 'no'"),
    ("dev_size", 0, "got 0"), ("train_rows", -5, "got -5"), ("backend", "torch", "got 'torch'"),
    ("scheduler", 5, "got 5"), ("scheduler", "foo://x:1", "got 'foo://x:1'"),
    ("workers", -1, "got -1"), ("threads", 0, "got 0"), ("retries", -1, "got -1"),
    ("results_file", 5, "got 5"), ("progress", 5, "got 5"),
]  # fmt: skip


@pytest.mark.parametrize(
    "parameter, value, shown", LIBRARY_CASES, ids=[f"{p}={v!r}" for p, v, _ in LIBRARY_CASES]
)
def test_a_bad_parameter_is_a_value_error_naming_it_before_anything_starts(
    parameter, value, shown, nothing_starts
):
    require_distributed()
    nothing_starts()
    kwargs = dict(epochs=1, backend="numpy", train_rows=3000, dev_size=1000, download=False)
    grid = {"alpha": [0.0, 0.1]}
    if parameter == "grid":
        grid = value
    else:
        kwargs[parameter] = value
    with pytest.raises(ValueError) as refused:
        fastnn.sweep(grid, **kwargs)
    message = str(refused.value)
    assert message.split()[0] in (parameter, f"{parameter}:") and "\n" not in message, message
    assert shown in message, message


def test_the_data_limits_of_the_library(real_data_dir, tmp_path, nothing_starts):
    require_distributed()
    nothing_starts(data=True)
    kwargs = dict(epochs=1, backend="numpy", download=False, data=str(real_data_dir / "mnist"))
    with pytest.raises(ValueError, match="dev_size must leave rows to train on"):
        fastnn.sweep({"alpha": [0.0, 0.1]}, dev_size=60000, **kwargs)
    with pytest.raises(ValueError, match="give train_rows 55000 or fewer"):
        fastnn.sweep({"alpha": [0.0, 0.1]}, train_rows=55001, **kwargs)  # the preset's 5000
    with pytest.raises(ValueError, match=f"data {tmp_path / 'nowhere'}: "):
        fastnn.sweep({"alpha": [0.0, 0.1]}, **{**kwargs, "data": tmp_path / "nowhere"})


def test_the_local_clusters_workers_run_without_dasks_profiler(monkeypatch):
    """The sweep's local cluster has no dashboard to show what Dask's profiler gathers: its
    workers are made with the profiler off, and this process's configuration is left as it
    was."""
    require_distributed()
    import dask
    import distributed

    made_with = []

    def cluster(**options):
        made_with.append(dask.config.get("distributed.worker.profile.enabled"))
        return "cluster"

    monkeypatch.setattr(distributed, "LocalCluster", cluster)
    monkeypatch.setattr(distributed, "Client", lambda cluster: f"client of {cluster}")
    monkeypatch.setattr(run, "_prepare_workers", lambda client: None)
    assert run.open_client(workers=1) == ("client of cluster", "cluster")
    assert made_with == [False]
    assert dask.config.get("distributed.worker.profile.enabled") is True


# In a process of its own: Dask's Client leaves its event loop's thread behind when it fails.
WRONG_SCHEDULERS = """
import socket, sys
from fastnn.sweep import run
run.CONNECT_TIMEOUT = "0.5s"
with socket.socket() as probe:  # a port of this machine that nothing listens on
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
for address in ("nonsense", f"tcp://127.0.0.1:{port}"):
    try:
        run.open_client(address)
    except (ValueError, OSError) as exc:
        print(f"{type(exc).__name__}: {exc}")
"""


def test_a_wrong_or_silent_scheduler_address_says_what_to_do():
    """Dask's own words ("missing port number in address", "Timed out trying to connect")
    named the problem but not what to do about it."""
    require_distributed()
    result = subprocess.run(
        [sys.executable, "-c", WRONG_SCHEDULERS], capture_output=True, text=True, timeout=60
    )
    wrong, silent = result.stdout.splitlines()
    assert re.fullmatch(
        r"ValueError: scheduler address 'nonsense': .*port.*; give one such as tcp://HOST:8786",
        wrong,
    ), wrong
    assert re.fullmatch(
        r"OSError: no Dask scheduler answered at tcp://127\.0\.0\.1:\d+ \(.*\); start one there "
        r"\(dask scheduler --port PORT\) or check the address",
        silent,
    ), silent
