"""Write files so that a reader never sees half of one: write a temporary file beside the
target, then rename it over the target in one step.

A symbolic link is followed (the file it names is replaced, the link kept), and a target that
is not a regular file (a device such as /dev/stdout or /dev/null, a named pipe) is written
directly: renaming over it would replace the device or pipe with a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o644)  # mkstemp makes 0600; the result is an ordinary file, readable as usual
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


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
