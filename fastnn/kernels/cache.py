"""Numba's on-disk cache of the entries (see `config`), kept fresh by every source that their
compiled code comes from.

Numba stamps a cached function with its own file only, yet an entry's compiled code includes
every kernel it calls, in the modules of this folder, and the constants of fastnn/core/dropout.py
that they read: an edit to any of them must make the cached code stale. `SourcesCache` is
Numba's cache of a function with that stamp, and a digest of all those sources beside it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core.caching import FunctionCache

PACKAGE = Path(__file__).resolve().parent.parent
# The modules of fastnn outside kernels/ that the kernels import.
OUTSIDE = ("core/dropout.py",)


def sources(package: Path = PACKAGE) -> list[Path]:
    """The files the entries' compiled code comes from: kernels/*.py, and OUTSIDE."""
    return sorted((package / "kernels").glob("*.py")) + [package / name for name in OUTSIDE]


def sources_digest(package: Path = PACKAGE) -> str:
    """sha256 over the names and contents of `sources(package)`."""
    digest = hashlib.sha256()
    for path in sources(package):
        name = path.relative_to(package).as_posix()
        digest.update(f"{name}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\0".encode())
    return digest.hexdigest()


SOURCES_DIGEST = sources_digest()


class _Stamped:
    """A Numba cache locator (wrapped) whose source stamp also holds SOURCES_DIGEST."""

    def __init__(self, locator) -> None:
        self._locator = locator

    def __getattr__(self, name: str):
        return getattr(self._locator, name)

    def get_source_stamp(self) -> tuple:
        return self._locator.get_source_stamp(), SOURCES_DIGEST


class _SourcesImpl(FunctionCache._impl_class):
    # Numba asks this property for the locator it found wherever it needs one: for the cache's
    # folder, for the stamp written into the cache's index and compared with on every load.
    @property
    def locator(self) -> _Stamped:
        return _Stamped(super().locator)


class SourcesCache(FunctionCache):
    """Numba's cache of a compiled function (what njit's cache=True gives it), stale after an
    edit to any of `sources()`, not only to the function's own file."""

    _impl_class = _SourcesImpl
