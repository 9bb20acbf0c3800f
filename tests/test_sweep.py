"""python -m fastnn.sweep and fastnn.sweep: the search space, halving's rungs, the results log,
a LocalCluster sweep against the same trials run here one by one, Ctrl-C and --resume, and
what happens without Dask."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sweep_helpers import (
    TINY,
    press_ctrl_c,
    require_distributed,
    rows,
    start,
    stop,
    sweep_command,
    trial_row,
    wait_for_rows,
)

from fastnn.sweep import cli, results, trial
from fastnn.sweep.space import (
    SpaceError,
    check_space,
    configurations,
    halving_rungs,
    parse_assignment,
    read_space_file,
)


def test_grid_values_are_parsed_in_canonical_form():
    assert parse_assignment("hidden_layer_sizes=128,256x128") == (
        "hidden_layer_sizes",
        [(128,), (256, 128)],
    )
    assert parse_assignment("lr=0.05,0.1,0.05") == ("learning_rate_init", [0.05, 0.1])
    assert parse_assignment("max-norm=none,3")[1] == [None, 3.0]
    assert parse_assignment("nesterovs_momentum=true,false")[1] == [True, False]
    assert parse_assignment("augment=none,elastic:alpha=16")[1] == [
        None,
        {"kind": "elastic", "alpha": 16.0},
    ]
    assert parse_assignment("learning_rate_init=loguniform:1e-4:1e-1")[1] == {
        "distribution": "loguniform",
        "low": 1e-4,
        "high": 1e-1,
    }
    for bad, words in (
        ("hidden=0", "layer sizes"),
        ("solver=lbfgs", "one of"),
        ("seed=1,2", "--seeds"),
        ("colour=red", "cannot sweep"),
        ("dropout=uniform:0:0.5", "does not fit"),
    ):
        with pytest.raises(SpaceError, match=words):
            parse_assignment(bad)


def test_the_grid_is_every_combination_and_random_draws_repeat_with_their_seed():
    space = check_space({"hidden": [16, [32, 16]], "lr": [0.1, 0.2, 0.3]})
    grid = configurations(space)
    assert len(grid) == 6 and grid[0] == {"hidden_layer_sizes": (16,), "learning_rate_init": 0.1}
    drawn = configurations(space, random=4, random_seed=7)
    assert drawn == configurations(space, random=4, random_seed=7)
    assert len({json.dumps(c) for c in drawn}) == 4  # a finite grid: no repeats
    assert len(configurations(space, random=50)) == 6
    ranged = check_space({"lr": {"distribution": "loguniform", "low": 1e-3, "high": 1e-1}})
    values = [c["learning_rate_init"] for c in configurations(ranged, random=20, random_seed=1)]
    assert all(1e-3 <= v <= 1e-1 for v in values) and len(set(values)) > 10
    assert values == [float(f"{v:.3g}") for v in values]  # three significant digits
    with pytest.raises(SpaceError, match="--random"):
        configurations(ranged)


def test_space_files(tmp_path):
    content = {"grid": {"hidden_layer_sizes": [[64], [128]], "alpha": [0, 1e-4]}, "seeds": [0, 1]}
    (tmp_path / "space.json").write_text(json.dumps(content))
    assert read_space_file(tmp_path / "space.json") == content
    toml = "seeds = [0, 1]\n[grid]\nhidden_layer_sizes = [[64], [128]]\nalpha = [0, 1e-4]\n"
    (tmp_path / "space.toml").write_text(toml)
    if sys.version_info >= (3, 11):  # tomllib; on 3.10 a TOML file is refused with advice
        assert read_space_file(tmp_path / "space.toml") == content
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SpaceError, match="not valid JSON"):
        read_space_file(tmp_path / "bad.json")


def test_halving_rungs():
    assert halving_rungs(27, 9) == [(1, 27), (3, 9), (9, 3)]
    assert halving_rungs(12, 10) == [(1, 12), (3, 4), (10, 2)]
    assert halving_rungs(3, 9) == [(3, 3), (9, 1)]  # the configurations run out first
    assert halving_rungs(100, 4) == [(1, 100), (4, 34)]  # the epochs run out first
    assert halving_rungs(1, 5) == [(5, 1)]
    assert halving_rungs(16, 8, min_epochs=2, factor=2) == [(2, 16), (4, 8), (8, 4)]
    with pytest.raises(SpaceError):
        halving_rungs(4, 2, min_epochs=3)


def test_results_log_drops_a_cut_line_and_knows_what_is_done(tmp_path):
    path = tmp_path / "results.jsonl"
    log = results.ResultsLog(path)
    log.append(trial_row("a"))
    log.append(trial_row("b", "failed", error="KilledWorker"))
    with open(path, "a") as f:
        f.write('{"trial": "c", "sta')  # a crash in the middle of a write
    again = results.ResultsLog(path)
    assert list(again.done()) == ["a"]  # the failed trial runs again on resume
    again.append(trial_row("c", "diverged"))
    assert [r["trial"] for r in rows(path)] == ["a", "b", "c"]


def test_an_unsweepable_value_is_refused_before_training():
    spec = dict(
        preset="best-augmented",
        backend="numpy",
        dataset="mnist",
        data=None,
        dev_size=None,
        train_rows=None,
        params={"augment": None},
        seed=0,
        epochs=1,
    )
    with pytest.raises(ValueError, match="augment=none cannot be given"):
        trial.check_spec(spec)


def test_an_out_folder_that_cannot_be_written_is_refused_in_one_line(tmp_path, capsys):
    require_distributed()
    (tmp_path / "a-file").write_text("")
    for out, problem in ((tmp_path / "a-file", "is a file, not a folder"),
                         (tmp_path / "a-file" / "sweep", "is a file, so no folder")):  # fmt: skip
        assert cli.main(["--grid", "alpha=0.1,0.2", "--out", str(out)]) == cli.EXIT_ERROR
        said = capsys.readouterr().err
        assert said.count("\n") == 1 and f"--out {out}: " in said and problem in said, said


def test_without_dask_the_command_says_what_to_install(tmp_path):
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "import fastnn\n"
        "try:\n"
        "    fastnn.sweep({'lr': [0.1]})\n"
        "except ImportError as exc:\n"
        "    print('library:', exc)\n"
        "from fastnn.sweep.cli import main\n"
        "sys.exit(main(['--grid', 'lr=0.1,0.2', '--out', sys.argv[1]]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "s")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "library:" in result.stdout and "pip install 'fastnn-mlp[sweep]'" in result.stdout
    assert result.stderr.count("\n") == 1
    assert "install it with: pip install 'fastnn-mlp[sweep]'" in result.stderr


def test_importing_fastnn_imports_no_dask():
    code = (
        "import sys, fastnn\n"
        "assert 'distributed' not in sys.modules and 'dask' not in sys.modules\n"
        "import fastnn.sweep\n"
        "assert callable(fastnn.sweep) and 'distributed' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# The trials one by one, outside Dask, with NumPy's BLAS on one thread as in Dask's workers:
# the NumPy reference's float32 matrix products round differently on 1 and 2 BLAS threads.
ONE_BY_ONE = """
import json, sys
from fastnn.sweep import trial
from fastnn.sweep.run import Settings, load_data
grid, options, configs = json.loads(sys.argv[1])
settings = Settings(grid, **options)
data = load_data(settings)
for config, seed in configs:
    print(json.dumps(trial.run_trial(data, settings.spec(config, seed, 0, 1, 1))))
"""


def test_a_local_cluster_sweep_gives_the_bits_of_the_trials_run_one_by_one(
    real_data_dir, tmp_path, monkeypatch
):
    require_distributed()
    import fastnn
    from fastnn.sweep import run

    grid = {"hidden_layer_sizes": [8, 16], "learning_rate_init": [0.01, 0.03]}
    options = dict(
        seeds=[0, 1],
        epochs=1,
        backend="numpy",
        train_rows=3000,
        dev_size=1000,
        download=False,
        data=str(real_data_dir / "mnist"),
    )
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            log = tmp_path / "results.jsonl"
            table = fastnn.sweep(grid, scheduler=client, results_file=log, **options)
            halved = fastnn.sweep(grid, scheduler=client, halving=True, **{**options, "epochs": 3})
    assert len(table) == 8 and set(table["status"]) == {"finished"}
    # The same sweep again, its log complete: read from the log, no cluster started.
    monkeypatch.setattr(run, "open_client", lambda *_: pytest.fail("a cluster was started"))
    again = fastnn.sweep(grid, results_file=log, **options)
    assert again.equals(table)
    # Halving: the 4 configurations for 1 epoch (the trials above), the best 2 for 3.
    first, second = halved[halved["rung"] == 0], halved[halved["rung"] == 1]
    assert sorted(first["trial"]) == sorted(table["trial"]) and len(second) == 4
    means = first.groupby(["hidden_layer_sizes", "learning_rate_init"])["dev_accuracy"].mean()
    best_two = set(means.sort_values(ascending=False).index[:2])
    pairs = zip(second["hidden_layer_sizes"], second["learning_rate_init"], strict=True)
    assert set(pairs) == best_two
    assert set(second["epochs"]) == {3}
    assert table["worker"].nunique() == 2  # both workers trained
    configs = [
        (
            {
                "hidden_layer_sizes": [int(row.hidden_layer_sizes)],
                "learning_rate_init": row.learning_rate_init,
            },
            row.seed,
        )
        for row in table.itertuples()
    ]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", ONE_BY_ONE, json.dumps([grid, options, configs])],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=True,
    )
    here = [json.loads(line) for line in result.stdout.splitlines()]
    for row, alone in zip(table.itertuples(), here, strict=True):
        assert alone["trial"] == row.trial
        assert (alone["weights_sha256"], alone["dev_accuracy"], alone["test_accuracy"]) == (
            row.weights_sha256,
            row.dev_accuracy,
            row.test_accuracy,
        )
        assert 0.3 < row.dev_accuracy < 1  # chance: 0.1


def test_a_trial_is_its_training_command(real_data_dir, monkeypatch, tmp_path):
    """The best configuration is printed as a python -m fastnn.train line: it gives the bits."""
    from fastnn.sweep.run import Settings, load_data
    from fastnn.train import command as train

    monkeypatch.setenv("FASTNN_DATA_DIR", str(real_data_dir))
    settings = Settings({"hidden": [8], "lr": [0.01]}, epochs=1, backend="numpy", dev_size=1000)
    spec = settings.spec({"hidden_layer_sizes": (8,), "learning_rate_init": 0.01}, 3, 0, 1, 1)
    row = trial.run_trial(load_data(settings), spec)
    metrics = tmp_path / "m.json"
    args = trial.command_args(spec, shown=True)
    assert args == [
        "--backend",
        "numpy",
        "--dev-size",
        "1000",
        "--epochs",
        "1",
        "--seed",
        "3",
        "--hidden",
        "8",
        "--lr",
        "0.01",
    ]
    assert train.main([*args, "--metrics", str(metrics)]) == 0
    command = json.loads(metrics.read_text())
    assert (command["dev_accuracy"], command["test_accuracy"]) == (
        row["dev_accuracy"],
        row["test_accuracy"],
    )


def test_ctrl_c_then_resume_runs_every_trial_once(real_data_dir, tmp_path):
    require_distributed()
    out = tmp_path / "sweep"
    grid = ["--grid", "hidden_layer_sizes=8,16,12", "--seeds", "0", "1", "--out", str(out)]
    env = dict(FASTNN_DATA_DIR=str(real_data_dir), FASTNN_SWEEP_TRIAL_DELAY="0.7")
    first = start(sweep_command(*grid, *TINY, "--workers", "2"), tmp_path / "first.log", **env)
    try:
        wait_for_rows(out / "results.jsonl", 1, first, timeout=60)
        press_ctrl_c(first)  # the workers get it too: they leave stopping to the driver
        assert first.wait(timeout=30) == 130, (tmp_path / "first.log").read_text()
    finally:
        stop(first)
    said = (tmp_path / "first.log").read_text()
    assert f"python -m fastnn.sweep --resume {out}" in said
    assert "Traceback" not in said and "ERROR" not in said, said
    done = [r["trial"] for r in rows(out / "results.jsonl")]
    assert 1 <= len(done) < 6 and len(set(done)) == len(done)
    again = start(
        sweep_command("--resume", str(out), "--workers", "2"), tmp_path / "again.log", **env
    )
    try:
        assert again.wait(timeout=90) == 0, (tmp_path / "again.log").read_text()
    finally:
        stop(again)
    everything = rows(out / "results.jsonl")
    ids = [r["trial"] for r in everything]
    assert len(ids) == 6 and len(set(ids)) == 6  # none twice, none lost
    assert ids[: len(done)] == done and {r["status"] for r in everything} == {"finished"}
    said = (tmp_path / "again.log").read_text()
    assert f"{len(done)} trials done already" in said and "best: python -m fastnn.train" in said
    written = {p.name for p in Path(out).iterdir()}
    assert {"results.csv", "ranked.csv", "accuracy-vs-seconds.png"} <= written
    # Once more, finished: every trial is read from the log, and no cluster is started.
    log_before = (out / "results.jsonl").read_bytes()
    finished = subprocess.run(
        sweep_command("--resume", str(out)), capture_output=True, text=True, timeout=90,
        env={**os.environ, **env},
    )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert "all 6 trials done already, no cluster started" in finished.stdout
    assert (
        "best: python -m fastnn.train" in finished.stdout and " trials in " not in finished.stdout
    )
    assert (out / "results.jsonl").read_bytes() == log_before
