"""Every Numba option of the kernels, and the threading layer they run on, decided in one place.

Options (`SERIAL`: the per-row helpers; `PARALLEL`: the `prange` passes; `ENTRY`: the entries
of `epoch`, the functions called from Python):

- cache, on the entries only: their compiled code, which includes every kernel they call, is
  stored beside the sources (`__pycache__`), so a second process loads it instead of compiling.
  Numba checks a
  cached function against its own file only, so the helpers are not cached on their own: a
  stale cached helper would be linked into a fresh entry. Instead `epoch.KERNEL_SOURCES_DIGEST`
  ties the entries' file to all the others. Where the package folder is not writable Numba falls
  back to the user-wide cache (`~/.cache/numba`, or `NUMBA_CACHE_DIR` when set); where no
  location is writable at all, caching is switched off rather than letting Numba raise at import
  time (`_can_cache`).
- fastmath: off. The kernels need none of it to vectorise: their inner loops run across the
  hidden units (a*x + y over contiguous rows), never a reduction, so "reassoc" would buy
  nothing, while "nnan"/"ninf" would hide the NaN loss of a diverging run and "arcp" would turn
  the exact x / 255 of pixel scaling into x * (1 / 255). {"contract"} (FMA) was measured: no
  gain, the kernels being bound by memory and loop overhead rather than arithmetic, so every
  operation is kept rounded as written, like NumPy's.
- error_model "numpy": division by zero gives inf/nan like NumPy instead of a Python exception
  check inside every loop.
- nogil: two Python threads can each run a kernel at the same time.

Threading layer: parallel launches from two Python threads at once abort the process under
`workqueue`, so the thread-safe layers go first: tbb, then omp (GNU OpenMP here), then workqueue.
A layer named by the user through NUMBA_THREADING_LAYER(_PRIORITY) is respected. The layer is
started at import so it is known before the first launch; if it turns out to be workqueue,
`launch_guard` serialises the backend's kernel calls with a lock. GNU OpenMP is not fork-safe: a
process that forks after training must not train in the child (use the "spawn" start method).

OpenMP spinning: an epoch launches two parallel regions per mini-batch, about a thousand per
MNIST epoch. Between regions GNU OpenMP threads spin (300,000 rounds by default) before they
sleep; when another process competes for the cores, a spinning thread holds a core that the
thread it waits for needs. Measured on this 2-core machine, MNIST, hidden 10, batch 128, one
epoch: idle 0.13 s, under a second busy process 7.5 s. Sleeping at once (OMP_WAIT_POLICY=
passive) gives 0.24 s under load but 0.16 s idle (each region then waits for a wake-up). A short
spin, GOMP_SPINCOUNT=1000, keeps the idle 0.13 s and gives 0.28 s under load: that is the
default set here, before OpenMP starts and only if the user has set neither variable, so an
explicit choice wins. It also applies to other GNU OpenMP code in the process and its children.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numba

THREAD_SAFE_LAYERS = ("tbb", "omp")


def _choose_threading_layer() -> str:
    user_choice = "NUMBA_THREADING_LAYER" in os.environ or (
        "NUMBA_THREADING_LAYER_PRIORITY" in os.environ
    )
    try:
        return numba.threading_layer()  # already started by someone else: too late to choose
    except ValueError:
        pass
    if not user_choice:
        numba.config.THREADING_LAYER = "default"  # the first of the priority list that loads
        numba.config.THREADING_LAYER_PRIORITY = ["tbb", "omp", "workqueue"]
    if "OMP_WAIT_POLICY" not in os.environ:
        os.environ.setdefault("GOMP_SPINCOUNT", "1000")
    numba.get_num_threads()  # starts the layer now, not at the first kernel launch
    return numba.threading_layer()


THREADING_LAYER = _choose_threading_layer()
_launch_lock = threading.Lock()


def launch_guard() -> contextlib.AbstractContextManager:
    """What to hold around a call that launches parallel kernels: nothing on a thread-safe
    layer, a process-wide lock on workqueue."""
    if THREADING_LAYER in THREAD_SAFE_LAYERS:
        return contextlib.nullcontext()
    return _launch_lock


def _can_cache() -> bool:
    """Whether Numba finds a writable cache location for this folder's modules; asking it about
    a function of this module answers for the kernel modules beside it."""

    def probe() -> int:
        return 0

    try:
        numba.njit(cache=True)(probe)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return False
    return True


CACHE = _can_cache()
FASTMATH = False

SERIAL = {"fastmath": FASTMATH, "error_model": "numpy", "nogil": True}
PARALLEL = {**SERIAL, "parallel": True}
ENTRY = {**SERIAL, "cache": CACHE}
