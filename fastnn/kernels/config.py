"""Every Numba option of the kernels, decided in one place.

Options (`SERIAL`: the helpers, made by `helper`; `entry`: the entries of `epoch`, the
functions called from Python, each run by a team of threads: see `team`; `FROM_PYTHON`: those
and any other function that Python calls):

- cache, on the entries only: their compiled code, which includes every kernel they call, is
  stored beside the sources (`__pycache__`), so a second process loads it instead of compiling.
  Numba checks a cached function against its own file only, so the helpers are not cached on
  their own: a stale cached helper would be linked into a fresh entry. Instead the entries'
  cache (`cache.SourcesCache`) is stamped with a digest of every kernel source as well, so
  that an edit to any of them makes Numba compile the entries again. Where the package folder
  is not writable Numba falls back to the user-wide cache (`~/.cache/numba`, or
  `NUMBA_CACHE_DIR` when set); where no location is writable at all, caching is switched off
  rather than letting Numba raise at import time (`_can_cache`).
- fastmath: off. The kernels need none of it to vectorise: their inner loops run across the
  hidden units (a*x + y over contiguous rows), never a reduction, so "reassoc" would buy
  nothing, while "nnan"/"ninf" would hide the NaN loss of a diverging run and "arcp" would turn
  the exact x / 255 of pixel scaling into x * (1 / 255). Where fused multiply-adds pay, in the
  dense products' register tiles, `dense` asks for them explicitly (llvm.fmuladd), so that
  everything else stays rounded as written, like NumPy's.
- error_model "numpy": division by zero gives inf/nan like NumPy instead of a Python exception
  check inside every loop.
- nogil: the members of a team (and any other Python threads) run the kernels at once.
- No reference counts in the helpers (Numba's `_nrt` off, made by `helper`): with them, every
  call of a helper counted a reference on every array it was given, those in a Chunk, Net or
  Layout too, on entry and again on return, and every view it made, each a call into Numba's
  runtime, whose code is far from the kernels' (docs/design.md has the counts). The entries
  keep their arrays alive until every member has returned, so the helpers need not. A helper
  that allocates an array or returns a view (`counted_helper`) keeps Numba's counts, and its
  views are borrowed ones (`team.borrowed`): a view handed to a helper that counts nothing
  must not carry a count that no one gives back. One that makes a view from tuples of arrays
  is inlined instead (`inlined_helper`).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
from numba.core.codegen import get_host_cpu_features
from numba.core.registry import CPUDispatcher

from fastnn.kernels.cache import SourcesCache
from fastnn.kernels.linking import HelperCompiler


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


def _register_bytes() -> int:
    """The width of the vector registers of the CPU the kernels are compiled for: Numba's
    target (NUMBA_CPU_NAME / NUMBA_CPU_FEATURES when set, as for the portable path, else this
    machine's CPU)."""
    features = numba.core.config.CPU_FEATURES
    if features is None:
        features = get_host_cpu_features()
    flags = set(features.split(","))
    if "+avx512f" in flags:
        return 64
    return 32 if "+avx" in flags else 16


CACHE = _can_cache()
# The first layer's sums are kept in TILE_VECTORS vector registers of REGISTER_BYTES (see
# `tile`): half the registers there are (32 with AVX-512, 16 otherwise), the rest holding
# the loaded rows and products.
REGISTER_BYTES = _register_bytes()
TILE_VECTORS = 16 if REGISTER_BYTES == 64 else 8
# A dense product's tile (see `dense`): DENSE_ROWS rows of DENSE_VECTORS vectors, its sums in
# as many registers, with room beside them for a row of M's vectors and a broadcast: 16 of 32
# registers with AVX-512, 12 of 16 otherwise.
DENSE_ROWS, DENSE_VECTORS = (8, 2) if REGISTER_BYTES == 64 else (4, 3)
FASTMATH = False

SERIAL = {
    "fastmath": FASTMATH, "error_model": "numpy", "nogil": True,
    # Called from compiled code only: no wrapper for calls from Python or C, which Numba would
    # otherwise build and compile for every helper.
    "no_cpython_wrapper": True, "no_cfunc_wrapper": True,
}  # fmt: skip
# The functions that Python calls: the entries, and the bench tools' own serial loops.
FROM_PYTHON = {**SERIAL, "no_cpython_wrapper": False}


class Helper(CPUDispatcher):
    """A kernel compiled for calls from compiled code only (SERIAL). Called from Python, where
    the missing wrapper would crash the process, it raises instead."""

    def __call__(self, *args, **kwargs):
        function = self.py_func
        raise TypeError(
            f"{function.__module__}.{function.__qualname__} runs in compiled code only: call "
            f"it from a compiled function, or call its .py_func"
        )


def _helper(function: Callable, counts: bool, inline: str = "never") -> Helper:
    return Helper(
        py_func=function,
        locals={},
        # _nrt set either way: a callee left unset takes its caller's.
        targetoptions={**SERIAL, "nopython": True, "_nrt": counts, "inline": inline},
        pipeline_class=HelperCompiler,
    )


def helper(function: Callable) -> Helper:
    """@njit(**SERIAL) for a helper of the entries, as a Helper, compiled to LLVM IR only (the
    entries that call it optimise it and compile it to machine code: see `linking`), counting
    no references (see the module's docstring): it can neither allocate an array nor return
    one it was not given, and Numba refuses to compile one that does."""
    return _helper(function, counts=False)


def counted_helper(function: Callable) -> Helper:
    """`helper` with Numba's reference counts, for a helper that allocates an array or returns
    a view: a view it returns must be a borrowed one (`team.borrowed`), and a new array it
    may return only to a caller that counts (an entry, another counted helper, a function
    Python calls)."""
    return _helper(function, counts=True)


def inlined_helper(function: Callable) -> Helper:
    """`helper` whose Numba IR is put in place of each call (Numba's inline="always"), for a
    view made from a Chunk or Layout: made in its caller, it counts nothing there, where a
    counted helper would count every array of the tuples it was given."""
    return _helper(function, counts=False, inline="always")


def entry(function: Callable) -> Callable:
    """@njit(**FROM_PYTHON) for an entry of `epoch`, its compiled code cached on disk (see the
    module's docstring) where a cache can be written."""
    dispatcher = numba.njit(**FROM_PYTHON)(function)
    if CACHE:
        # What njit's cache=True does, with the cache that knows every kernel source.
        dispatcher._cache = SourcesCache(dispatcher.py_func)
    return dispatcher


def named(name: str):
    """A decorator that names a function made by a factory (before @helper): Numba links a
    compiled function by a name made of its module, its qualified name and a number counted
    per process, so two functions of one factory (the same qualified name, "...<locals>.f")
    with the same argument types, each in a cached entry compiled by another process, could
    take the same name, and either entry would then call the other's code."""

    def rename(function):
        function.__name__ = function.__qualname__ = name
        return function

    return rename
