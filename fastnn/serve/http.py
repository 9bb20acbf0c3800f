"""The server behind python -m fastnn.serve: its routes, its limits, its connections.

``GET /`` and the page's files (fastnn/serve/static/, read from the installed package, from a fixed
list: no path from a request reaches the disk); ``POST /predict``, whose body (an image file,
or JSON pixels) `answers.Predictor` answers with ``{"class", "probabilities",
"classes", "image"}``. A bad request gets ``{"error": "..."}`` with a 4xx status, and the
server goes on serving. Only the standard library serves it.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from fastnn.serve.answers import Predictor, RequestError

# A canvas drawing is a few kB and a phone photo a few MB; more than this is refused from the
# Content-Length header, before a byte of the body is read.
MAX_BODY = 2 * 1024 * 1024
# Seconds a client may take to send a body, and to send each piece of the rest of a request: no
# thread waits forever.
READ_TIMEOUT = 30.0
LINGER_SECONDS = 2.0  # after refusing a body unread, how long to take in what still arrives
CLOSE_WAIT_SECONDS = 3.0  # how long closing the server waits for its connections' threads
WRITE_BUFFER = 64 * 1024  # a reply up to this size (any page file, an answer) is one write
# Connections the kernel holds for the server to accept. A burst of clients (a class opening
# the page at once) overflows a short queue (the standard library's is 5), and the kernel resets
# the connections that do not fit, or drops them for the client to retry a second later.
LISTEN_BACKLOG = 1024
RETRY_AFTER_SECONDS = 5  # what a 503 (the server busy decoding images) tells the client to wait

# The page's files, served from a fixed list: no path from a request ever reaches the disk.
STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
}
# The browser enforces what the page promises: it loads and sends nothing beyond this server.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def static_files() -> dict[str, bytes]:
    """The page's files by name, read from the installed package (works from a wheel)."""
    folder = resources.files("fastnn.serve") / "static"
    names = {name for name, _ in STATIC_FILES.values()}
    return {name: (folder / name).read_bytes() for name in names}


class Handler(BaseHTTPRequestHandler):
    """The routes: GET / and the page's files; POST /predict. Everything else is a JSON error."""

    server: DigitServer
    server_version = "fastnn.serve"
    protocol_version = "HTTP/1.1"  # keep-alive: the page posts many times a second
    timeout = READ_TIMEOUT
    # A reply leaves in one write (buffered until the request is answered), sent at once
    # (TCP_NODELAY). Headers and body written apart leave as two packets, and Nagle's algorithm
    # holds the second until the first is acknowledged, which clients delay by up to 40 ms:
    # every answer on a kept-alive connection would wait that long.
    wbufsize = WRITE_BUFFER
    disable_nagle_algorithm = True
    _body_read = False
    _body_left = False  # a refused body is still arriving: linger before closing

    def parse_request(self) -> bool:
        self._body_read = False  # per request: a connection carries many
        return super().parse_request()

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except ConnectionError:  # reset or broken pipe: the client went away (a closed tab)
            self.close_connection = True  # nobody to answer: no error report either

    def handle_expect_100(self) -> bool:
        answer = super().handle_expect_100()
        self.wfile.flush()  # "100 Continue" now: the client waits for it to send its body
        return answer

    def finish(self) -> None:
        super().finish()
        if self._body_left:
            _linger(self.connection)

    def do_GET(self) -> None:
        self._static(body=True)

    def do_HEAD(self) -> None:
        self._static(body=False)

    def do_POST(self) -> None:
        try:
            path = self.path.split("?", 1)[0]
            if path in STATIC_FILES:
                raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes GET, not POST")
            if path != "/predict":
                raise RequestError(HTTPStatus.NOT_FOUND, f"no such page: {path}")
            body = self._read_body()
            answer = self.server.predictor.answer(body, self.headers.get("Content-Type", ""))
            self._send_json(HTTPStatus.OK, answer)
        except RequestError as exc:
            self._send_error(exc)
        except ConnectionError:  # the client went away while answered: see handle_one_request
            raise
        except Exception:  # a bug: say so, log it, and keep serving
            traceback.print_exc(file=sys.stderr)
            self._send_error(RequestError(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error"))

    def _other_method(self) -> None:
        self._send_error(
            RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not supported here")
        )

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other_method

    def _static(self, body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/predict":
            message = "/predict takes POST: an image, or JSON pixels"
            self._send_error(RequestError(HTTPStatus.METHOD_NOT_ALLOWED, message))
            return
        if path not in STATIC_FILES:
            self._send_error(RequestError(HTTPStatus.NOT_FOUND, f"no such page: {path}"))
            return
        name, content_type = STATIC_FILES[path]
        content = self.server.files[name]
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if body:
            self.wfile.write(content)

    def _read_body(self) -> bytes:
        """The request's body, if it announced its length and it is not too long."""
        length_header = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding") or length_header is None:
            self.close_connection = True  # a body of unknown length cannot be skipped
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length")
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"bad Content-Length: {length_header!r}"
            ) from None
        if length > MAX_BODY:
            # The body is left unread, so this connection cannot carry another request.
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body is {length:,} bytes; at most {MAX_BODY:,} are accepted",
            )
        try:
            body = self._read_within(length, self.timeout)
        except TimeoutError:  # the client stopped sending, or sends too slowly
            self.close_connection = True
            raise RequestError(
                HTTPStatus.REQUEST_TIMEOUT, f"the body did not arrive within {self.timeout:g} s"
            ) from None
        self._body_read = True
        if len(body) < length:
            self.close_connection = True
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body ended before its Content-Length")
        if not body:
            raise RequestError(HTTPStatus.BAD_REQUEST, "the body is empty: send an image")
        return body

    def _read_within(self, length: int, seconds: float) -> bytes:
        """`length` bytes of the body (fewer if the client closes), all within `seconds`: the
        socket's timeout bounds each read only, and a client sending a byte now and then would
        hold this thread for as long as it liked. TimeoutError when the time is up."""
        deadline = time.monotonic() + seconds
        pieces, left = [], length
        while left > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.connection.settimeout(remaining)
            piece = self.rfile.read1(left)
            if not piece:
                break
            pieces.append(piece)
            left -= len(piece)
        self.connection.settimeout(self.timeout)  # each read of the next request: its own timeout
        return b"".join(pieces)

    def _send_error(self, exc: RequestError) -> None:
        announced = self.headers.get("Transfer-Encoding") or self.headers.get("Content-Length")
        if announced not in (None, "0") and not self._body_read:
            # The body is still in the connection, where it would be read as the next request.
            self.close_connection = self._body_left = True
        headers = {}
        if exc.status == HTTPStatus.METHOD_NOT_ALLOWED:
            path = self.path.split("?", 1)[0]
            headers["Allow"] = "POST" if path == "/predict" else "GET, HEAD"
        if exc.status == HTTPStatus.SERVICE_UNAVAILABLE:
            headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        self._send_json(exc.status, {"error": str(exc)}, headers)

    def _send_json(
        self, status: HTTPStatus, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        content = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The page posts several times a second while someone draws: log only what went wrong.
        if isinstance(code, int) and code >= 400:
            super().log_request(code, size)


def _linger(connection: socket.socket) -> None:
    """Ends our side of the connection, then reads and drops what the client still sends, for at
    most LINGER_SECONDS. Closing a socket with unread data in it makes the kernel reset the
    connection, and a client still sending its body then gets "broken pipe" or "connection
    reset" instead of the refusal it was sent."""
    try:
        connection.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            connection.settimeout(left)
            if not connection.recv(65536):
                return  # the client closed its side
    except OSError:  # a timeout or a reset: nothing more to save
        pass


class DigitServer(ThreadingHTTPServer):
    """The HTTP server with the model and the page's files it serves, a thread a connection.

    Closing it ends the open connections too and waits (at most CLOSE_WAIT_SECONDS) for their
    threads, so that none is stopped halfway through what it writes when the process exits
    (one cut its error report short under "fastnn.serve: stopped")."""

    request_queue_size = LISTEN_BACKLOG

    def __init__(self, address: tuple[str, int], predictor: Predictor) -> None:
        if ":" in address[0]:  # an IPv6 address such as ::1
            self.address_family = socket.AF_INET6
        self.predictor = predictor
        self.files = static_files()
        self._open: dict[socket.socket, threading.Thread] = {}  # connection: its thread
        self._open_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        # A daemon thread: one that outlasts CLOSE_WAIT_SECONDS does not keep the process alive.
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._open_lock:
            self._open[request] = thread
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._open_lock:
                self._open.pop(request, None)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            still_open = dict(self._open)
        for connection in still_open:  # a thread waiting for the next request sees the end
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        for thread in still_open.values():
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def url(self) -> str:
        """Where to open the page on this machine (the port is the bound one, for port 0)."""
        host, port = self.server_address[:2]
        # Listening on every address: this machine reaches it through its loopback address.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(str(host), str(host))
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"
