"""Running a compiled entry as a team of threads (see `fastnn.kernels.team`).

The calling thread is member 0 and starts one thread for each other member; every member
calls the entry, which releases the GIL, so they run at once. Threads are started per call and
gone when it returns: no pool to keep, to fork or to spin between calls (starting one costs
about 0.1 ms, against an epoch's tens of milliseconds).
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
import threading
from collections.abc import Callable, Iterator

import numba
import numpy as np

from fastnn.kernels.team import ABORTED, SYNC_SLOTS, Team

# This thread's team size while `team_threads` says one. Not numba.get_num_threads(): asking
# Numba starts its OpenMP thread pool (40 ms of every process's start), which the teams never use.
_chosen = threading.local()


def team_size(jobs: int | None = None) -> int:
    """The team size set for this thread by `team_threads`, else numba.config.NUMBA_NUM_THREADS
    (the cores this process may use, unless the NUMBA_NUM_THREADS variable says fewer); fewer
    where a call has fewer jobs to share."""
    size = getattr(_chosen, "size", None) or numba.config.NUMBA_NUM_THREADS
    return size if jobs is None else max(1, min(size, jobs))


@contextlib.contextmanager
def team_threads(n: int) -> Iterator[None]:
    """Teams of n threads for the calls this thread makes in the block (validated by the
    caller); the size before it is restored afterwards, even after an error."""
    previous = getattr(_chosen, "size", None)
    _chosen.size = n
    try:
        yield
    finally:
        _chosen.size = previous


def _find_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()
PR_SET_TIMERSLACK, PR_GET_TIMERSLACK = 29, 30
TIMER_SLACK_NS = 1000


@contextlib.contextmanager
def precise_naps() -> Iterator[None]:
    """Linux lengthens a sleep by the thread's timer slack, 50 µs unless set: a team member's
    20 µs nap (`kernels.team.meet`) lasted about 70. For the block this thread's slack is 1 µs,
    and so is that of the threads it starts (a new thread takes its creator's); then it is
    restored. Elsewhere nothing changes. With these naps (and their doubling, see `meet`),
    MNIST epochs on 2 threads, batch 128, Zen 4, processes taking turns with the 70 µs naps
    before: hidden 10 0.102 s against 0.125, hidden 128 0.171 against 0.252, hidden 512 0.371
    against 0.420, a full-batch float64 step 0.081 against 0.099; beside a busy process hidden
    10 0.160 against 0.147 and hidden 128 0.241 against 0.246 (medians of 3-5 processes)."""
    if _PRCTL is None:
        yield
        return
    previous = _PRCTL(PR_GET_TIMERSLACK, 0, 0, 0, 0)
    _PRCTL(PR_SET_TIMERSLACK, TIMER_SLACK_NS, 0, 0, 0)
    try:
        yield
    finally:
        if previous > 0:
            _PRCTL(PR_SET_TIMERSLACK, previous, 0, 0, 0)


def run_team(entry: Callable, args: tuple, size: int) -> object:
    """entry(Team(member, size, sync), *args) for every member at once; returns member 0's
    result. entry: a Numba dispatcher, or one of its compiled functions. A member that fails
    makes the others stop at their next barrier; its exception is raised here once every
    member has returned."""
    sync = np.zeros(SYNC_SLOTS, np.int64)
    if size == 1:  # no thread to start, nor to keep from compiling
        return entry(Team(0, 1, sync), *args)
    teams = [Team(member, size, sync) for member in range(size)]
    if hasattr(entry, "typeof_pyval"):  # a dispatcher, not a compiled function
        # Compiled (or loaded from the cache) here first, so that only this thread compiles.
        entry.compile(tuple(entry.typeof_pyval(a) for a in (teams[0], *args)))
    failures: list[BaseException] = []

    def member(team: Team) -> None:
        try:
            entry(team, *args)
        except BaseException as error:  # handed to the calling thread
            failures.append(error)
            sync[ABORTED] = 1

    helpers = [
        threading.Thread(target=member, args=(team,), name=f"fastnn-team-{team.member}")
        for team in teams[1:]
    ]
    with precise_naps():
        try:
            for helper in helpers:
                helper.start()  # may fail (RuntimeError: can't start new thread)
            result = entry(teams[0], *args)
        except BaseException:
            sync[ABORTED] = 1
            raise
        finally:
            for helper in helpers:
                if helper.ident is not None:  # started
                    helper.join()
    if failures:
        raise failures[0]
    return result
