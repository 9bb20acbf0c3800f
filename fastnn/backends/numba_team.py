"""Running a compiled entry as a team of threads (see `fastnn.kernels.team`).

The calling thread is member 0 and starts one thread for each other member; every member
calls the entry, which releases the GIL, so they run at once. Threads are started per call and
gone when it returns: no pool to keep, to fork or to spin between calls (starting one costs
about 0.1 ms, against an epoch's tens of milliseconds).
"""

from __future__ import annotations

import contextlib
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


def run_team(entry: Callable, args: tuple, size: int) -> object:
    """entry(Team(member, size, sync), *args) for every member at once; returns member 0's
    result. A member that fails makes the others stop at their next barrier; its exception is
    raised here once every member has returned."""
    sync = np.zeros(SYNC_SLOTS, np.int64)
    teams = [Team(member, size, sync) for member in range(size)]
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
