"""Ctrl-C while compiled kernels run: recorded, never raised inside them.

Python's own SIGINT handler raises KeyboardInterrupt at the next bytecode the main thread runs,
and that can be inside a Python callback that Numba's compiled code makes (it unpickles
constants that way). The compiled caller does not expect an exception there: the process then
ends in a chain of "SystemError: CPUDispatcher(...) returned a result with an exception set"
or a segmentation fault (27 and 4 of 60 interrupted training runs). So while fastnn trains or
runs its kernels, a handler that only records the request takes SIGINT's place:

- the first Ctrl-C sets `StopRequest.requested` (training then stops at the next epoch
  boundary, keeping what it has);
- the second ends the process at once, as SIGINT does by default (exit status 130 in a shell).

This applies only in the main thread and only while Python's default handler is installed: a
handler of the user's (or SIG_IGN / SIG_DFL) is left alone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator


class StopRequest:
    """Whether Ctrl-C was pressed while `stop_requests` was active."""

    def __init__(self) -> None:
        self.requested = False


_active: StopRequest | None = None  # the outermost active `stop_requests` (main thread only)


def _python_default_handler_active() -> bool:
    return (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )


@contextlib.contextmanager
def stop_requests(notice: str | None = None) -> Iterator[StopRequest]:
    """Record the first Ctrl-C of the block (writing `notice` to stderr, if given) instead of
    raising KeyboardInterrupt; the second stops the process at once. Restores the handler.

    Inside another active `stop_requests` this yields that one's StopRequest: an inner block
    (training, or one kernel call) sees a Ctrl-C meant for the whole run.
    """
    global _active
    if _active is not None and threading.current_thread() is threading.main_thread():
        yield _active
        return
    stop = StopRequest()
    if not _python_default_handler_active():
        yield stop
        return

    def record(signum: int, frame: object) -> None:
        stop.requested = True
        # The next Ctrl-C gets the operating system's default action: the process ends at once,
        # even inside compiled code.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if notice:
            os.write(2, f"\n{notice}\n".encode())  # not print: this may interrupt a print

    signal.signal(signal.SIGINT, record)
    _active = stop
    try:
        yield stop
    finally:
        _active = None
        signal.signal(signal.SIGINT, signal.default_int_handler)


@contextlib.contextmanager
def deferred_keyboard_interrupt() -> Iterator[None]:
    """Run the block (a compiled call) with Ctrl-C recorded; then, unless an enclosing
    `stop_requests` will act on it, raise KeyboardInterrupt in plain Python if it was pressed."""
    enclosing = _active
    with stop_requests() as stop:
        yield
    if stop.requested and stop is not enclosing:
        raise KeyboardInterrupt
