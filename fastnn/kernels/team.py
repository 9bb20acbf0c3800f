"""A team of threads running one compiled entry together, in place of Numba's parallel loops.

The backend calls an entry once per member of the team, each call in a thread of its own
(`fastnn.backends.numba_team`), all on the same buffers. A member takes every size-th job of a
pass, starting at its own index (`my_jobs`), or in the one pass of a prediction the next job
nobody has taken (`next_job`), and the members meet at a barrier (`meet`) where
one pass must be complete before the next reads it: once or twice per chunk of an epoch (see
`epoch.train_batches`), where Numba's parallel loops launched two parallel regions.

Why not prange: every parallel loop costs Numba about 6 s of compiling per specialisation (a
first fit and predict, uint8 pixels and float32 parameters, compiled in 47-50 s with the three
of them, 31-33 s without, on an AVX2 AMD EPYC), and brings an OpenMP pool that a forked
process cannot use and whose threads spin between regions, holding a core that other
processes need. A team member spins only inside an entry, waiting at a barrier, briefly: then it
yields the core, then naps (`meet`); no thread is left once the entry returns. With another
process keeping one of 2 cores busy, an MNIST epoch at hidden 10 took 0.17-0.25 s this way
against 0.38-0.54 s with the OpenMP loops (quiet: 0.11-0.12 s against 0.14-0.16 s).

The jobs are the same whoever runs them, and every number is computed by one job in a fixed
order, so results are the same bits for any team size.
"""

from __future__ import annotations

import platform
import sys
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from fastnn.kernels.config import helper
from fastnn.kernels.sparse import item_address

ARRIVED, ABORTED, TAKEN = 0, 1, 2  # the slots of Team.sync
SYNC_SLOTS = 3
# A waiting member pauses (x86's pause instruction) PAUSES times (2 µs on a Xeon whose pause
# takes 10 ns, up to 40 µs where it takes 140 cycles), then yields its core YIELDS times (0.18
# µs a yield there, when no other thread wants the core: about 0.35 ms), then naps until the
# team is there: FIRST_NAP_US, then each nap twice the last, up to LONGEST_NAP_US. Yielding
# gives the core to any thread that wants it, so it costs others nothing, and it sees the team
# arrive at once: members of an epoch wait 50-100 µs a batch for each other, and a nap would
# overshoot that (with 50 yields, napping after 11 µs, a two-thread epoch of the tabular
# workload took 16% longer; with another process busy on one of the two cores, the same).
# Short naps end short waits soon (the backend makes Linux keep them short:
# `numba_team.precise_naps`); long ones keep a member whose team is off its cores from taking
# a core back every few microseconds.
PAUSES, YIELDS, FIRST_NAP_US, LONGEST_NAP_US = 200, 2000, 20, 320
X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")
WINDOWS = sys.platform == "win32"
YIELD = "SwitchToThread" if WINDOWS else "sched_yield"


class Team(NamedTuple):
    member: int  # this thread's index, 0 .. size - 1
    size: int  # the number of members
    # (SYNC_SLOTS,) int64, shared by the team, zero at the start: ARRIVED counts the arrivals
    # at barriers so far; ABORTED is set (by the backend) when a member failed; TAKEN counts
    # the jobs `next_job` has handed out.
    sync: np.ndarray


@intrinsic
def _fetch_add(typingctx, array, i, value):
    """array[i] += value as one atomic step (sequentially consistent); returns the old value."""

    def codegen(context, builder, signature, args):
        address = item_address(context, builder, signature.args[:2], args[:2])
        return builder.atomic_rmw("add", address, args[2], "seq_cst")

    return types.int64(array, i, types.int64), codegen


@intrinsic
def _load_acquire(typingctx, array, i):
    """array[i], read atomically: what other threads wrote before they changed it is visible
    after this read sees the change."""

    def codegen(context, builder, signature, args):
        address = item_address(context, builder, signature.args, args)
        return builder.load_atomic(address, "acquire", 8)

    return types.int64(array, i), codegen


@intrinsic
def _spin_pause(typingctx):
    """x86's pause between two reads of a flag (easier on the other hyperthread and on power);
    nothing elsewhere."""

    def codegen(context, builder, signature, args):
        if X86:
            pause = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause"
            )
            builder.call(pause, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _yield_core(typingctx):
    """Gives the core to another runnable thread, if any (sched_yield, or Windows'
    SwitchToThread)."""

    def codegen(context, builder, signature, args):
        call = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), []), YIELD
        )
        builder.call(call, [])
        return context.get_dummy_value()

    return types.void(), codegen


@intrinsic
def _nap(typingctx, microseconds):
    """Sleeps about `microseconds` (usleep; Windows: Sleep(0), a yield)."""

    def codegen(context, builder, signature, args):
        i32 = ir.IntType(32)
        call = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i32, [i32]), "Sleep" if WINDOWS else "usleep"
        )
        argument = i32(0) if WINDOWS else builder.trunc(args[0], i32)
        builder.call(call, [argument])
        return context.get_dummy_value()

    return types.void(types.int64), codegen


def _unowned(context, builder, typ, value):
    """value (of Numba type typ) with the owner of every array in it set to none."""
    if isinstance(typ, types.Array):
        array = context.make_array(typ)(context, builder, value=value)
        array.meminfo = ir.Constant(array.meminfo.type, None)
        array.parent = ir.Constant(array.parent.type, None)
        return array._getvalue()
    if isinstance(typ, types.BaseTuple):
        for i, member in enumerate(typ):
            item = _unowned(context, builder, member, builder.extract_value(value, i))
            value = builder.insert_value(value, item, i)
    return value


@intrinsic
def borrowed(typingctx, value):
    """value, with every array in it (value itself, or in a tuple, at any depth) made a borrowed
    one: with no owner, so that a view made of it, or a call passing it, counts no reference.
    Each count is an atomic add to the owner, which all members share: made per sample, in the
    views and calls of the per-sample helpers, members fought over those cache lines. For an
    entry's arguments, which the caller keeps alive until every member has returned, and for
    the views that counted helpers return (see config): whoever gave the helper the array
    keeps it alive."""

    def codegen(context, builder, signature, args):
        return _unowned(context, builder, signature.args[0], args[0])

    return value(value), codegen


@intrinsic
def clock(typingctx):
    """x86's time stamp counter (rdtsc: ticks at a constant rate, readable by any program);
    0 elsewhere, where reading a cycle counter may not be allowed."""

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        if not X86:
            return i64(0)
        read = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(i64, []), "llvm.readcyclecounter"
        )
        return builder.call(read, [])

    return types.int64(), codegen


@helper
def meet(team, passed):
    """Waits until every member has arrived here, at the team's barrier number passed + 1
    (each member counts the barriers it has passed). Returns whether the team may go on:
    False when a member failed, which ends the wait at once."""
    _fetch_add(team.sync, ARRIVED, 1)
    everyone = (passed + 1) * team.size
    spins = 0
    nap = FIRST_NAP_US
    while _load_acquire(team.sync, ARRIVED) < everyone:
        if _load_acquire(team.sync, ABORTED):
            return False
        spins += 1
        if spins < PAUSES:
            _spin_pause()
        elif spins < PAUSES + YIELDS:
            _yield_core()
        else:  # a member is kept waiting, probably off its core: give the core up for real
            _nap(nap)
            nap = min(2 * nap, LONGEST_NAP_US)
    return _load_acquire(team.sync, ABORTED) == 0


@helper
def my_jobs(team, n):
    """The jobs 0..n-1 of a pass this member does: every size-th, from its own index (the jobs
    j with `is_mine(team, j)`)."""
    return range(team.member, n, team.size)


@helper
def next_job(team):
    """The next job of the entry's one pass of independent jobs that no member has taken: 0, 1,
    ... in the order the members ask, for as long as they ask (n or more: none left). A
    member whose thread starts late or loses its core (as both start slow after the machine
    idled, between a served model's calls) takes fewer jobs, where with every size-th job the
    call would wait for it. Which member does a job changes none of its numbers."""
    return _fetch_add(team.sync, TAKEN, 1)


@helper
def is_mine(team, job):
    """Whether `my_jobs` gives this member the job."""
    return job % team.size == team.member
