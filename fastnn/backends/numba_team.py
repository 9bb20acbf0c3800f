"""Running a compiled entry as a team of threads (see `fastnn.kernels.team`).

The calling thread is member 0 and starts one thread for each other member; every member
calls the entry, which releases the GIL, so they run at once. Threads are started per call and
gone when it returns: no pool to keep, to fork or to spin between calls (starting one costs
about 0.1 ms, against an epoch's tens of milliseconds).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numba
import numpy as np

from fastnn.kernels.team import ABORTED, SYNC_SLOTS, Team


def team_size(jobs: int | None = None) -> int:
    """Numba's thread count in this thread (numba.set_num_threads), or fewer where a call has
    fewer jobs to share."""
    size = numba.get_num_threads()
    return size if jobs is None else max(1, min(size, jobs))


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
