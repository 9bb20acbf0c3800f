"""The team of threads that runs a compiled entry (fastnn.kernels.team, backends.numba_team):
every member does its share, the barrier orders the passes, a failing member stops the team
instead of hanging it, and no thread outlives a call."""

from __future__ import annotations

import ctypes
import sys
import threading

import numpy as np
import pytest
from numba import njit

from fastnn.backends.numba_team import precise_naps, run_team
from fastnn.kernels.team import borrowed, meet, my_jobs

ROUNDS = 50


@njit(nogil=True)
def relay(team, cells, totals, failing):
    """Each round, the members fill cells (every job writes its own) and meet; then each
    member sums all of them, which is right only if every member's writes of the round were
    done before anyone read."""
    passed = 0
    for r in range(ROUNDS):
        if team.member == failing and r == 3:
            raise ValueError("member failed on purpose")
        for job in my_jobs(team, cells.shape[0]):
            cells[job] = r * cells.shape[0] + job
        if not meet(team, passed):
            return -1
        passed += 1
        total = 0
        for job in range(cells.shape[0]):
            total += cells[job]
        totals[team.member, r] = total
        if not meet(team, passed):  # nobody writes the next round's cells before all have read
            return -1
        passed += 1
    return passed


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_members_share_the_jobs_and_meet_at_each_barrier(size):
    cells = np.zeros(37, np.int64)
    totals = np.zeros((size, ROUNDS), np.int64)
    before = set(threading.enumerate())
    assert run_team(relay, (cells, totals, -1), size) == 2 * ROUNDS
    n = cells.shape[0]
    expected = [r * n * n + n * (n - 1) // 2 for r in range(ROUNDS)]
    for member in range(size):
        assert totals[member].tolist() == expected, f"member {member} of {size}"
    assert set(threading.enumerate()) <= before, "a team thread outlived the call"


@pytest.mark.parametrize("failing", [0, 1])
def test_a_failing_member_stops_the_team_and_its_error_is_raised(failing):
    cells = np.zeros(8, np.int64)
    totals = np.zeros((2, ROUNDS), np.int64)
    before = set(threading.enumerate())
    with pytest.raises(ValueError, match="member failed on purpose"):
        run_team(relay, (cells, totals, failing), 2)
    assert set(threading.enumerate()) <= before, "a team thread outlived the call"
    assert not totals[:, 4:].any(), "the other member went on past the failure"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the timer slack is Linux's")
def test_a_team_naps_with_a_timer_slack_of_one_microsecond_then_restores_it():
    def slack() -> int:
        return ctypes.CDLL(None).prctl(30, 0, 0, 0, 0)  # PR_GET_TIMERSLACK, in ns

    before = slack()
    seen = []
    with precise_naps():
        seen.append(slack())
        helper = threading.Thread(target=lambda: seen.append(slack()))  # as a team member's
        helper.start()
        helper.join()
    assert seen == [1000, 1000] and before != 1000
    assert slack() == before


@njit
def write_through_borrowed(pair):
    """Through borrowed arrays (a nested tuple of them), views made and written to."""
    a, (b, k) = borrowed(pair)
    for i in range(a.shape[0]):
        row = a[i]
        for j in range(row.shape[0]):  # not row[:] = ...: its check compiles string code
            row[j] = row[j] * k
    b[0] = a.sum()
    return b[0], k


def test_borrowed_arrays_are_the_callers_arrays():
    a = np.arange(12.0).reshape(3, 4)
    b = np.zeros(2, np.int64)
    total, k = write_through_borrowed((a, (b, 3)))
    assert k == 3
    np.testing.assert_array_equal(a, 3 * np.arange(12.0).reshape(3, 4))
    assert total == b[0] == 3 * 66
