"""Ctrl-C and SIGTERM while compiled kernels run: recorded, never raised inside them.

Python's own SIGINT handler raises KeyboardInterrupt at the next bytecode the main thread runs,
and that can be inside a Python callback that Numba's compiled code makes (it unpickles
constants that way). The compiled caller does not expect an exception there: the process then
ended in a chain of "SystemError: CPUDispatcher(...) returned a result with an exception set"
or a segmentation fault (27 and 4 of 60 interrupted training runs). So while fastnn trains or
runs its kernels, SIGINT gets a handler that raises nothing:

- `stop_requests`, around a training run: the first Ctrl-C is recorded in a `StopRequest`
  (training then stops at the next epoch boundary, keeping what it has); the second ends the
  process at once with exit status 130. Both take effect when the key is pressed, even in the
  middle of a compiled epoch: Python's C-level handler writes each signal to a wakeup pipe,
  which a watcher thread reads while the kernel runs without the GIL.
- `deferred_keyboard_interrupt`, around one compiled call: a Ctrl-C during it is raised as
  KeyboardInterrupt once it has returned, in plain Python.

A command's `main` decorated with `handles_sigterm` gives SIGTERM (what `kill`, `timeout`, job
schedulers and container runtimes send) the path Ctrl-C takes: in plain Python the first of
either raises KeyboardInterrupt, within the two blocks above it is recorded or deferred as
Ctrl-C is, and a second of either quits at once; the exit status is 143 (128 + SIGTERM) where
Ctrl-C's is 130. Elsewhere (a program that imports fastnn and fits) SIGTERM keeps its default
action, ending the process, as a program that did not ask expects.

This applies only in the main thread and only while a signal has its default handler (for
SIGINT Python's; for SIGTERM the system's, taken over by `handles_sigterm`): a handler of the
user's (or SIG_IGN) is left alone.
"""

from __future__ import annotations

import _signal
import contextlib
import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a process ended by Ctrl-C
NAMES = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM"}  # the signals that stop fastnn


def exit_status(signum: int) -> int:
    """The exit status of a process ended by signal `signum`, as shells report it."""
    return 128 + signum


class StopRequest:
    """The first signal that asked to stop (SIGINT, as Ctrl-C sends, or SIGTERM) while it was
    active; the second ends the process at once."""

    def __init__(self) -> None:
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def receive(self, signum: int, notice: str | None = None) -> None:
        """Record the first signal, writing `notice` (its "{signal}" replaced by the
        signal's name) to stderr; a second ends the process at once."""
        name = NAMES[signum]
        if self.signal is not None:
            again = "again" if signum == self.signal else f"after {NAMES[self.signal]}"
            os.write(2, f"\n{name} {again}: stopped at once\n".encode())
            os._exit(exit_status(signum))
        self.signal = signum
        if notice:
            os.write(2, f"\n{notice.format(signal=name)}\n".encode())


_active: StopRequest | None = None  # the active `stop_requests`, if any
_command: StopRequest | None = None  # the command that `handles_sigterm` runs, if any


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    """The handler of SIGINT and SIGTERM in plain Python while `handles_sigterm` runs a
    command: the first raises KeyboardInterrupt, as Python's SIGINT handler does."""
    assert _command is not None  # installed only while it is set
    _command.receive(signum)
    raise KeyboardInterrupt


def _ours() -> list[int]:
    """The stop signals that fastnn may handle here: in the main thread, those whose handler
    is Python's SIGINT handler or, under `handles_sigterm`, the command's."""
    if threading.current_thread() is not threading.main_thread():
        return []
    defaults = (signal.default_int_handler, _raise_keyboard_interrupt)
    return [signum for signum in NAMES if _signal.getsignal(signum) in defaults]


def _ignore(signum: int, frame: object) -> None:
    """The Python-level handler while ours are active: the watcher or the block's end acts."""


def _watch(read_fd: int, stop: StopRequest, signals: list[int], notice: str | None) -> None:
    """Read the signal numbers Python's C handler writes; act on the stop signals at once."""
    while received := os.read(read_fd, 64):  # b"" once the block ends and closes the pipe
        for signum in received:
            if signum in signals:
                stop.receive(signum, notice)


@contextlib.contextmanager
def stop_requests(notice: str | None = None) -> Iterator[StopRequest]:
    """Record the first Ctrl-C (or SIGTERM, under `handles_sigterm`) of the block, writing
    `notice` to stderr if given ("{signal}" in it is replaced by the signal's name), instead of
    raising KeyboardInterrupt; the second ends the process at once (exit status 130 for Ctrl-C,
    143 for SIGTERM). Restores the handlers.

    Inside another active `stop_requests` this yields that one's StopRequest: an inner block
    (training within the command's run) sees a signal meant for the whole run. Under
    `handles_sigterm` it yields the command's, so that a signal after the block (while the
    command ends) counts as a second one.
    """
    global _active
    if _active is not None and threading.current_thread() is threading.main_thread():
        yield _active
        return
    signals = _ours()
    if not signals:
        yield StopRequest()
        return
    stop = _command or StopRequest()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the C handler must never block
    watcher = threading.Thread(
        target=_watch, args=(read_fd, stop, signals, notice), name="fastnn-stop", daemon=True
    )
    watcher.start()
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    previous = {signum: signal.signal(signum, _ignore) for signum in signals}
    _active = stop
    try:
        yield stop
    finally:
        _active = None
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_fd)  # the watcher reads the end of the pipe and returns
        watcher.join()
        os.close(read_fd)


@contextlib.contextmanager
def deferred_keyboard_interrupt() -> Iterator[None]:
    """Run the block (one compiled call) with Ctrl-C (and SIGTERM, under `handles_sigterm`)
    recorded; once it has returned, in plain Python, each goes to the handler it would have
    reached, which raises KeyboardInterrupt. Inside `stop_requests`, that one acts instead."""
    signals = [] if _active is not None else _ours()
    if not signals:
        yield
        return
    received: list[int] = []

    def record(signum: int, frame: object) -> None:
        received.append(signum)

    # The C module's functions, not signal's wrappers of them, which convert every number and
    # handler to an enum: around a one-row prediction (tens of microseconds) that was a third.
    previous = {signum: _signal.signal(signum, record) for signum in signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            _signal.signal(signum, handler)
    interrupted = False
    for signum in received:  # in order: a second one quits at once, as it would have
        try:
            previous[signum](signum, None)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        raise KeyboardInterrupt


def handles_sigterm(main: Callable[..., int]) -> Callable[..., int]:
    """Decorate a command's `main`, which stops cleanly on Ctrl-C (its KeyboardInterrupt path,
    `stop_requests`) and then returns EXIT_INTERRUPTED, so that SIGTERM takes the same path;
    it then returns 143 instead. While it runs, a second Ctrl-C or SIGTERM quits at once. A
    signal that does not have its default handler (SIG_IGN, a handler of the program's) is left
    alone, and so is everything outside the main thread."""

    @functools.wraps(main)
    def command(*args: object, **kwargs: object) -> int:
        global _command
        if _command is not None or threading.current_thread() is not threading.main_thread():
            return main(*args, **kwargs)
        defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
        signals = [
            signum for signum, default in defaults.items() if signal.getsignal(signum) is default
        ]
        stop = _command = StopRequest()
        previous = {signum: signal.signal(signum, _raise_keyboard_interrupt) for signum in signals}
        try:
            status = main(*args, **kwargs)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            _command = None  # after: _raise_keyboard_interrupt needs it while installed
        if status == EXIT_INTERRUPTED and stop.signal is not None:
            return exit_status(stop.signal)  # 143 when SIGTERM came first
        return status

    return command
