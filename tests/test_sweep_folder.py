"""A sweep's folder: one sweep at a time writes it (a second is refused at once, naming the
first; the lock of a sweep that died is taken over, with a note), and its files read back at
--resume: a damaged sweep.json or results.jsonl is one line naming the file (and the line), and
a last line cut short by a kill is removed, with a note."""

import json
import os
import subprocess
import sys

import pytest
from sweep_helpers import (
    TINY,
    require_distributed,
    rows,
    start,
    stop,
    sweep_command,
    trial_row,
    wait_for_text,
)

from fastnn.sweep import cli, results, run

SETTINGS = {
    "version": 1, "space": {"alpha": [0.0, 0.1]}, "seeds": [0], "epochs": 1, "random": None,
    "random_seed": 0, "halving": False, "min_epochs": 1, "factor": 3, "metric": "dev_accuracy",
    "preset": "default", "dataset": "mnist", "data": None, "download": False, "dev_size": 1000,
    "train_rows": 3000, "backend": "numpy",
}  # fmt: skip
GOOD_ROW = json.dumps(trial_row("a"))


def _settings(**changes):
    return json.dumps({**SETTINGS, **changes}).encode()


def _without(key):
    return json.dumps({k: v for k, v in SETTINGS.items() if k != key}).encode()


def _log(bad_line: bytes) -> bytes:
    """results.jsonl with a damaged second line of three."""
    return b"\n".join([GOOD_ROW.encode(), bad_line, json.dumps(trial_row("b")).encode(), b""])


# (test id, the file, its damaged content, what the one line must say)
DAMAGE = [
    ("settings-not-json", "sweep.json", b"{", "sweep.json: not JSON"),
    ("settings-not-utf8", "sweep.json", b'{"space": "\xff"}', "sweep.json: not text"),
    ("settings-a-list", "sweep.json", b"[1, 2]", "sweep.json: holds a list"),
    ("settings-unknown-key", "sweep.json", _settings(colour="red"), "unknown key(s) 'colour'"),
    ("settings-missing-key", "sweep.json", _without("seeds"), "sweep.json: no seeds"),
    ("settings-seeds-null", "sweep.json", _settings(seeds=None), "seeds must be a list"),
    ("settings-space-a-string", "sweep.json", _settings(space="alpha"), "space must map"),
    ("settings-bad-parameter", "sweep.json", _settings(space={"colour": [1]}),
     "cannot sweep 'colour'"),
    ("settings-epochs-a-string", "sweep.json", _settings(epochs="ten"), "epochs must be a"),
    ("settings-halving-a-string", "sweep.json", _settings(halving="yes"), "halving must be"),
    ("settings-huge-number", "sweep.json", b'{"epochs": ' + b"9" * 5000 + b"}", "not JSON"),
    ("settings-version", "sweep.json", _settings(version=2), "version 2"),
    ("log-not-json", "results.jsonl", _log(b"garbage"), "line 2: not JSON"),
    ("log-not-utf8", "results.jsonl", _log(b'{"trial": "\xff"}'), "line 2: not JSON"),
    ("log-a-list", "results.jsonl", _log(b"[1, 2]"), "line 2: a list, not a trial's row"),
    ("log-a-number", "results.jsonl", _log(b"42"), "line 2: a number, not a trial's row"),
    ("log-null", "results.jsonl", _log(b"null"), "line 2: null, not a trial's row"),
    ("log-nested-deep", "results.jsonl", _log(b"[" * 100_000), "line 2: not JSON"),
    ("log-missing-keys", "results.jsonl", _log(b'{"trial": "c"}'), "line 2: a row without"),
    ("log-seed-a-string", "results.jsonl", _log(json.dumps(trial_row("c", seed="0")).encode()),
     "line 2: seed must be a whole number"),
    ("log-unknown-status", "results.jsonl", _log(json.dumps(trial_row("c", "done")).encode()),
     "line 2: status must be one of"),
    ("log-score-a-string", "results.jsonl",
     _log(json.dumps(trial_row("c", dev_accuracy="high")).encode()),
     "line 2: dev_accuracy must be a number or null"),
    ("log-bad-params", "results.jsonl",
     _log(json.dumps({**trial_row("c"), "params": {"colour": 1}}).encode()), "line 2: params"),
]  # fmt: skip


@pytest.mark.parametrize("name, content, said", [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_a_damaged_sweep_file_is_one_line_naming_it_at_resume(
    name, content, said, tmp_path, capsys, monkeypatch
):
    require_distributed()

    def started(*args, **kwargs):
        raise AssertionError("the damaged sweep was started")

    monkeypatch.setattr(run, "open_client", started)
    monkeypatch.setattr(run, "load_data", lambda settings: None)  # not what is tested here
    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "sweep.json").write_bytes(_settings())
    (folder / "results.jsonl").write_text(GOOD_ROW + "\n")
    (folder / name).write_bytes(content)
    code = cli.main(["--resume", str(folder)])
    err = capsys.readouterr().err
    assert code == cli.EXIT_ERROR, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{folder / name}" in err and said in err, err
    assert (folder / name).read_bytes() == content  # left as it was


def test_a_last_line_cut_short_is_removed_with_a_note_and_a_whole_one_kept(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(GOOD_ROW + "\n" + GOOD_ROW[:25])  # killed while writing the second row
    log = results.ResultsLog(path)
    assert [r["trial"] for r in log.rows] == ["a"] and path.read_text() == GOOD_ROW + "\n"
    assert len(log.notes) == 1 and "last line was cut short" in log.notes[0], log.notes
    whole = json.dumps(trial_row("b"))
    path.write_text(GOOD_ROW + "\n" + whole)  # a whole row, only its newline missing
    log = results.ResultsLog(path)
    assert [r["trial"] for r in log.rows] == ["a", "b"] and log.notes == []
    log.append(trial_row("c"))
    assert [r["trial"] for r in rows(path)] == ["a", "b", "c"]


HOLD = """
import os, sys, time
from fastnn.sweep import lock
with lock.hold(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_the_lock_names_its_holder_and_a_dead_holders_lock_is_taken_over(tmp_path):
    from fastnn.sweep import lock

    log = tmp_path / "results.jsonl"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(log)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(lock.SweepLocked, match=f"another sweep is writing {log} "):
            with lock.hold(log):
                pass
        with pytest.raises(lock.SweepLocked, match=f"process {holder.pid} on "):
            with lock.hold(log):
                pass
        holder.kill()  # as kill -9: no chance to let go
        holder.wait(timeout=10)
        with lock.hold(log) as note:
            assert f"of a sweep that ended without letting go of it (process {holder.pid}" in note
        with lock.hold(log) as note:  # let go in order last time: nothing to say
            assert note is None
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_a_second_sweep_is_refused_at_once_and_a_killed_ones_folder_resumed(
    real_data_dir, tmp_path
):
    """The first sweep's trials wait long enough to be caught running; a second sweep into its
    folder, new or resumed, is refused naming it; killed (-9), its folder goes on with
    --resume, which takes the lock over and removes the row the kill cut short."""
    require_distributed()
    out = tmp_path / "sweep"
    env = dict(FASTNN_DATA_DIR=str(real_data_dir))
    first = start(
        sweep_command("--grid", "alpha=0,0.1", *TINY, "--workers", "1", "--out", str(out)),
        tmp_path / "first.log",
        FASTNN_SWEEP_TRIAL_DELAY="60",
        **env,
    )
    try:
        wait_for_text(tmp_path / "first.log", "fastnn sweep |", first, timeout=60)
        settings = (out / "sweep.json").read_text()
        new = ["--grid", "alpha=0.5,0.6", *TINY, "--out", str(out)]
        for second in (new, ["--resume", str(out)]):
            refused = subprocess.run(
                sweep_command(*second), capture_output=True, text=True, timeout=60,
                env={**os.environ, **env},
            )  # fmt: skip
            assert refused.returncode == cli.EXIT_ERROR, refused.stderr
            assert refused.stderr.count("\n") == 1, refused.stderr
            assert f"another sweep is writing {out}" in refused.stderr, refused.stderr
            assert f"process {first.pid} on " in refused.stderr, refused.stderr
        assert (out / "sweep.json").read_text() == settings
        assert first.poll() is None
    finally:
        stop(first)  # SIGKILL to it and its workers
    with open(out / "results.jsonl", "a") as f:
        f.write('{"trial": "cut sh')  # as if killed in the middle of a row
    again = start(sweep_command("--resume", str(out)), tmp_path / "again.log", **env)
    try:
        assert again.wait(timeout=90) == 0, (tmp_path / "again.log").read_text()
    finally:
        stop(again)
    said = (tmp_path / "again.log").read_text()
    assert f"took over the lock on {out}" in said and f"(process {first.pid} on " in said, said
    assert "its last line was cut short" in said and "Traceback" not in said, said
    assert sorted(r["params"]["alpha"] for r in rows(out / "results.jsonl")) == [0.0, 0.1]
