"""The registry of backends: start_loading's background import, and its errors left for
get_backend to raise."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from fastnn import backends

FAKE_BACKEND = """
WARMED = []


def warm_up():
    WARMED.append(True)


class FakeBackend:
    name = "fake"
"""


def _join_loaders() -> None:
    for thread in threading.enumerate():
        if thread.name.startswith("fastnn-load-"):
            thread.join(timeout=60)
            assert not thread.is_alive(), "the background load did not finish in 60 s"


def test_start_loading_imports_and_warms_the_backend_in_the_background(tmp_path, monkeypatch):
    (tmp_path / "fastnn_fake_backend.py").write_text(FAKE_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backends._REGISTRY, "fake", ("fastnn_fake_backend", "FakeBackend"))
    monkeypatch.delitem(sys.modules, "fastnn_fake_backend", raising=False)
    backends.start_loading("fake")
    _join_loaders()
    assert sys.modules["fastnn_fake_backend"].WARMED == [True]
    monkeypatch.delitem(backends._instances, "fake", raising=False)
    assert backends.get_backend("fake").name == "fake"
    backends._instances.pop("fake", None)


SLOW_BACKEND = """
import time

WARMED = []


def warm_up():
    time.sleep(0.5)
    WARMED.append(True)


class SlowBackend:
    name = "slow"
"""


def test_get_backend_waits_for_the_background_load(tmp_path, monkeypatch):
    """Numba's typing tables are filled by the load: a kernel called while it runs could read
    them half-filled."""
    (tmp_path / "fastnn_slow_backend.py").write_text(SLOW_BACKEND)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(backends._REGISTRY, "slow", ("fastnn_slow_backend", "SlowBackend"))
    monkeypatch.delitem(sys.modules, "fastnn_slow_backend", raising=False)
    backends.start_loading("slow")
    try:
        assert backends.get_backend("slow").name == "slow"
        assert sys.modules["fastnn_slow_backend"].WARMED == [True]
    finally:
        _join_loaders()
        backends._instances.pop("slow", None)


def test_a_failed_background_load_is_raised_by_get_backend_not_the_thread(monkeypatch):
    monkeypatch.setitem(backends._REGISTRY, "missing", ("fastnn_no_such_backend", "Nothing"))
    failures = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    backends.start_loading("missing")
    backends.start_loading("no-such-name")  # not a backend: nothing to start
    _join_loaders()
    assert failures == []
    with pytest.raises(ValueError, match="'missing' is not available"):
        backends.get_backend("missing")


def test_numba_warm_up_fills_numbas_tables_before_any_kernel_call():
    """In a fresh process: Numba fills its implementation tables (target_context.refresh) at the
    first compiled function it loads; warm_up does it beforehand."""
    pytest.importorskip("numba")
    probe = (
        "import fastnn.backends.numba_backend as nb; "
        "from numba.core.registry import cpu_target; "
        "before = len(cpu_target.target_context._registries); nb.warm_up(); "
        "print(before, len(cpu_target.target_context._registries))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    before, after = map(int, done.stdout.split())
    assert before == 0 and after > 0, (before, after)
