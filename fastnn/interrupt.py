"""Ctrl-C while compiled kernels run: recorded, never raised inside them.

Python's own SIGINT handler raises KeyboardInterrupt at the next bytecode the main thread runs,
and that can be inside a Python callback that Numba's compiled code makes (it unpickles
constants that way). The compiled caller does not expect an exception there: the process then
ended in a chain of "SystemError: CPUDispatcher(...) returned a result with an exception set"
or a segmentation fault (27 and 4 of 60 interrupted training runs). So while fastnn trains or
runs its kernels, SIGINT gets a handler that raises nothing:

- `stop_requests`, around a training run: the first Ctrl-C sets `StopRequest.requested`
  (training then stops at the next epoch boundary, keeping what it has); the second ends the
  process at once with exit status 130. Both take effect when the key is pressed, even in the
  middle of a compiled epoch: Python's C-level handler writes each signal to a wakeup pipe,
  which a watcher thread reads while the kernel runs without the GIL.
- `deferred_keyboard_interrupt`, around one compiled call: a Ctrl-C during it is raised as
  KeyboardInterrupt once it has returned, in plain Python.

This applies only in the main thread and only while Python's default handler is installed: a
handler of the user's (or SIG_IGN / SIG_DFL) is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a process ended by Ctrl-C


class StopRequest:
    """Whether Ctrl-C was pressed while `stop_requests` was active."""

    def __init__(self) -> None:
        self.requested = False


_active: StopRequest | None = None  # the active `stop_requests`, if any


def _python_default_handler_active() -> bool:
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler while ours are active: the watcher or the block's end acts."""


def _watch(read_fd: int, stop: StopRequest, notice: str | None) -> None:
    """Read the signal numbers Python's C handler writes; act on SIGINT at once."""
    while signals := os.read(read_fd, 64):  # b"" once the block ends and closes the pipe
        for _ in range(signals.count(signal.SIGINT)):
            if stop.requested:
                os.write(2, b"\nCtrl-C again: stopped at once\n")
                os._exit(EXIT_INTERRUPTED)
            stop.requested = True
            if notice:
                os.write(2, f"\n{notice}\n".encode())


@contextlib.contextmanager
def stop_requests(notice: str | None = None) -> Iterator[StopRequest]:
    """Record the first Ctrl-C of the block (writing `notice` to stderr, if given) instead of
    raising KeyboardInterrupt; the second ends the process at once (exit status 130).
    Restores the handler.

    Inside another active `stop_requests` this yields that one's StopRequest: an inner block
    (training within the command's run) sees a Ctrl-C meant for the whole run.
    """
    global _active
    if _active is not None and threading.current_thread() is threading.main_thread():
        yield _active
        return
    stop = StopRequest()
    if not _python_default_handler_active():
        yield stop
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the C handler must never block
    watcher = threading.Thread(
        target=_watch, args=(read_fd, stop, notice), name="fastnn-ctrl-c", daemon=True
    )
    watcher.start()
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    signal.signal(signal.SIGINT, _ignore)
    _active = stop
    try:
        yield stop
    finally:
        _active = None
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # the watcher reads the end of the pipe and returns
        watcher.join()
        os.close(read_fd)


@contextlib.contextmanager
def deferred_keyboard_interrupt() -> Iterator[None]:
    """Run the block (one compiled call) with Ctrl-C recorded; then raise KeyboardInterrupt,
    in plain Python, if it was pressed. Inside `stop_requests`, that one acts instead."""
    if _active is not None or not _python_default_handler_active():
        yield
        return
    pressed = []
    signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt
