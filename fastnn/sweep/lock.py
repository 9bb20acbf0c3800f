"""One sweep at a time writes a results log (and, for the command, its folder): a lock file
beside the log, LOG.lock, held from before the log is read until the sweep ends.

The lock is the operating system's, on the open file: fcntl.flock where there is fcntl (Linux,
macOS, the BSDs), else (Windows) msvcrt.locking on one byte far past what the file holds, so
that its text stays readable to others. Either way the system lets go when the holder's process
ends, however it ends (kill -9 included; Windows may take a moment): a lock left behind by a
dead sweep is simply free, and the holder's details still in the file say whose it was. Those
details (process id, host, start time) are written once the lock is held, for the message that
refuses a second sweep, and emptied when the sweep lets go; the empty file stays (removing it
would let a third sweep lock a new file while a second still holds the old one). The file
descriptor is not inherited (PEP 446), so Dask's worker processes never hold the lock. On a
file system that cannot lock (some network mounts) the sweep goes on without it, with a note.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

SUFFIX = ".lock"
WINDOWS_LOCK_OFFSET = 1 << 30  # the byte msvcrt.locking locks: past any details written
# What flock or msvcrt.locking raise when another process holds the lock.
HELD = (errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES, errno.EDEADLK)
DETAILS_READ = 4096  # bytes of the holder's details read back: they are a short JSON object


class SweepLocked(OSError):
    """Another sweep, still running, holds the lock."""


@contextlib.contextmanager
def hold(log: str | os.PathLike) -> Iterator[str | None]:
    """Hold the lock of results log `log` through the block; SweepLocked at once if another
    sweep holds it. Yields a note for the user (a dead sweep's lock taken over, or a file
    system that cannot lock), or None."""
    path = Path(os.fspath(log) + SUFFIX)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
    try:
        try:
            _lock(fd)
        except OSError as exc:
            if exc.errno in HELD:
                raise SweepLocked(
                    f"another sweep is writing {log} ({_describe(_read(fd))}): wait for it "
                    "to end (or stop it), or give this sweep another folder"
                ) from None
            problem = exc.strerror or str(exc)
        else:
            problem = None
        if problem is not None:
            yield f"{path}: cannot lock it ({problem}); two sweeps at once would mix their results"
            return
        earlier = _read(fd)
        _write(fd, _details())
        try:
            if not earlier.strip():
                yield None
            else:
                yield (
                    f"took over the lock on {log} of a sweep that ended without letting go of "
                    f"it ({_describe(earlier)}); its finished trials are kept"
                )
        finally:
            _write(fd, b"")
            _unlock(fd)
    finally:
        os.close(fd)


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:
        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)


def _unlock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
    else:
        os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)


def _details() -> bytes:
    started = time.strftime("%Y-%m-%d %H:%M:%S %z")
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
    return json.dumps(holder).encode()


def _read(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    return os.read(fd, DETAILS_READ)


def _write(fd: int, details: bytes) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, details)


def _describe(details: bytes) -> str:
    """What the holder wrote, as "process 1234 on host, started 2026-12-06 10:00:00 +0000"."""
    try:
        holder = json.loads(details.decode("utf-8"))
        return f"process {holder['pid']} on {holder['host']}, started {holder['started']}"
    except (ValueError, TypeError, KeyError):  # not yet written, or not by a sweep
        return "its details cannot be read"
