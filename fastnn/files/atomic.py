"""Write files so that a reader never sees half of one: write a temporary file beside the
target, then rename it over the target in one step.

A symbolic link is followed (the file it names is replaced, the link kept), and a target that
is not a regular file (a device such as /dev/stdout or /dev/null, a named pipe) is written
directly: renaming over it would replace the device or pipe with a file.

A writer killed outright (kill -9, the kernel's out-of-memory killer, a crash) leaves its
temporary file, as large as the target, behind; nothing in the process can remove it then. So
each temporary file's name says which process on which machine writes it, and the next write
to the same target removes those whose process has ended.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

# After the target's name: the writer's PID and machine, then mkstemp's random part.
_WRITER = re.compile(r"(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to `path`.

    `suffix` keeps the extension that some writers (numpy, matplotlib) insist on. On any error
    the temporary file is removed and the target is left as it was.
    """
    if _is_special(path):
        yield Path(path)
        return
    target = Path(path).resolve()  # a symbolic link stays; the file it names is replaced
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target)
    writer = f"{os.getpid()}@{_host()}"
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.{writer}.", suffix=suffix
    )
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o644)  # mkstemp makes 0600; the result is an ordinary file, readable as usual
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _host() -> str:
    """This machine's name as it can stand in a file name (and in _WRITER)."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "-"


def _remove_leftovers(target: Path) -> None:
    """Remove the temporary files of earlier writes to `target` whose writer has ended without
    removing its own. Those of a running process (another write to the target going on now)
    stay, and so do those of another machine (in a shared folder), whose processes cannot be
    checked from here. A PID that a new process has taken keeps its leftover: never one too
    many removed."""
    prefix, host = f".{target.name}.", _host()
    with contextlib.suppress(OSError), os.scandir(target.parent) as entries:
        for entry in entries:
            if not entry.name.startswith(prefix) or not entry.is_file(follow_symlinks=False):
                continue
            writer = _WRITER.match(entry.name, len(prefix))
            if writer and writer["host"] == host and not _running(int(writer["pid"])):
                with contextlib.suppress(OSError):  # e.g. removed by another writer just now
                    os.unlink(entry.path)


def _running(pid: int) -> bool:
    """Whether a process with this PID exists on this machine (a zombie counts)."""
    try:
        os.kill(pid, 0)  # signal 0: only asks whether it could be sent
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def check_writable(
    path: str | os.PathLike, option: str, *, folder: bool = False, replace: bool = True
) -> None:
    """Raise ValueError, naming the `option` that gave `path`, if atomic writes to it (as a
    file, or with `folder` as a folder of files) would fail for a reason that shows now: it is
    a folder (a file), a parent is a file, or the nearest existing folder refuses a new file.
    `replace=False` also refuses an existing file. A full disk shows only when writing."""

    def refuse(problem: str) -> ValueError:
        return ValueError(f"{option} {path}: {problem}")

    if not folder and _is_special(path):
        if not os.access(path, os.W_OK):
            raise refuse("cannot be written (permission denied)")
        return
    target = Path(path).resolve()
    if folder and target.exists() and not target.is_dir():
        raise refuse("is a file, not a folder; give a folder for the files")
    if not folder and target.is_dir():
        raise refuse("is a folder; give a file name")
    if not replace and target.exists():
        raise refuse(f"exists already; to replace it, say so: {option} {path}")
    existing = target if folder else target.parent
    while not existing.exists():  # ends at "." or "/", which exist
        existing = existing.parent
    if not existing.is_dir():
        raise refuse(f"{existing} is a file, so no folder can be made inside it")
    try:  # the one sure test of permissions, read-only mounts and the like: make a file
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".fastnn-write-test-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise refuse(
            f"cannot write in {existing} ({exc.strerror or exc}); choose a folder you can write to"
        ) from None


def _is_special(path: str | os.PathLike) -> bool:
    """Whether `path` (through links) exists as something other than a regular file or a
    folder: /dev/stdout (a terminal or a pipe), /dev/null, a named pipe."""
    target = Path(path)
    return target.exists() and not target.is_file() and not target.is_dir()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
