"""A deadline for a whole HTTP(S) download, whatever it waits for: connecting, TLS, the status
line, the headers or the body. urllib's timeout applies to each socket operation only, so a
server sending a byte every few seconds is never timed out by it."""

from __future__ import annotations

import functools
import http.client
import socket
import threading
import time
import urllib.request

__all__ = ["Watchdog"]


class Watchdog:
    """Ends a download at a deadline, whatever it is waiting for.

    A context manager: on entry it starts a timer thread that, at the deadline,
    shuts down every connection opened through :meth:`open`, so that a read
    blocked on a server sending its status line, headers or body a byte at a time
    (each within the socket timeout) returns at once; on exit it stops the timer
    and lets go of the connections. Connecting is given at most the time left,
    and a connection made after the deadline is closed at once. The DNS lookup is
    not covered (it cannot be interrupted).
    """

    def __init__(self, end: float) -> None:
        self._end = end  # on the time.monotonic() clock
        self._lock = threading.Lock()
        self._fired = False
        # Duplicates of the connected sockets: shutting one down shuts the connection down,
        # even once the original has been wrapped for TLS (which takes over its descriptor).
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(0.0, self._fire)
        self._timer.daemon = True
        self._timer.name = "fastnn download deadline"

    def __enter__(self) -> Watchdog:
        self._timer.interval = max(0.0, self._end - time.monotonic())
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        self._timer.join()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()

    def expired(self) -> bool:
        """Whether the deadline has passed (and the connections, if any, been shut down)."""
        return self._fired or time.monotonic() >= self._end

    def open(self, url: str, timeout: float):
        """urllib.request.urlopen(url, timeout=timeout), with every HTTP(S) connection watched."""
        handlers: list[urllib.request.BaseHandler] = [_WatchedHTTPHandler(self)]
        if hasattr(urllib.request, "HTTPSHandler"):  # absent if Python has no ssl module
            handlers.append(_WatchedHTTPSHandler(self))
        return urllib.request.build_opener(*handlers).open(url, timeout=timeout)

    def connection_factory(self, http_class: type[http.client.HTTPConnection]):
        """A factory making ``http_class`` connections whose sockets are watched."""

        def make(*args, **kwargs) -> http.client.HTTPConnection:
            conn = http_class(*args, **kwargs)
            # http.client opens every socket (to the server, or to a proxy before a CONNECT
            # tunnel and TLS) through this attribute, there for tests to replace.
            conn._create_connection = functools.partial(self._connect, conn._create_connection)
            return conn

        return make

    def _connect(self, create, address, timeout=None, *args, **kwargs) -> socket.socket:
        left = self._end - time.monotonic()
        if self._fired or left <= 0:
            raise TimeoutError("the download deadline passed before connecting")
        # Connect within the time left, then wait the usual timeout for each read.
        per_read = timeout if isinstance(timeout, int | float) else socket.getdefaulttimeout()
        sock = create(address, left if per_read is None else min(per_read, left), *args, **kwargs)
        try:
            sock.settimeout(per_read)
            with self._lock:
                if self._fired:
                    raise TimeoutError("the download deadline passed while connecting")
                self._sockets.append(sock.dup())
        except BaseException:
            sock.close()
            raise
        return sock

    def _fire(self) -> None:
        with self._lock:
            self._fired = True
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass  # already closed by the server


class _WatchedHandlerMixin:
    """Makes an urllib HTTP(S) handler open its connections through a Watchdog."""

    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def do_open(self, http_class, req, **http_conn_args):
        factory = self._watchdog.connection_factory(http_class)
        return super().do_open(factory, req, **http_conn_args)


class _WatchedHTTPHandler(_WatchedHandlerMixin, urllib.request.HTTPHandler):
    pass


if hasattr(urllib.request, "HTTPSHandler"):

    class _WatchedHTTPSHandler(_WatchedHandlerMixin, urllib.request.HTTPSHandler):
        pass
