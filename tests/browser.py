"""A small client for headless Chromium over the Chrome DevTools Protocol, for the page tests.

No Python dependency: Chromium started with ``--remote-debugging-pipe`` reads protocol
messages (JSON, each ended by a NUL byte) from its file descriptor 3 and writes replies and
events to its descriptor 4. Every wait has a timeout, and the browser (with every process it
started: it runs in a session of its own) is killed when the client closes, whatever happened.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# What the tests run in: no sandbox (root in CI), no GPU, and nothing that talks to the network
# on its own (updates, sync, field trials), which a machine without internet would only slow.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]
TIMEOUT = 20.0  # seconds for any one step; a healthy step takes well under one


# Run as the browser's parent: put the pipe at descriptors 3 and 4, then become the browser.
_MOVE_PIPE = """
import os, sys
commands, replies = int(sys.argv[1]), int(sys.argv[2])
os.dup2(commands, 3)
os.dup2(replies, 4)
os.close(commands)
os.close(replies)
os.execv(sys.argv[3], sys.argv[3:])
"""


def _pipe() -> tuple[int, int]:
    """os.pipe() at descriptors 5 or above: moving them to 3 and 4 then overwrites neither."""
    ends = []
    for fd in os.pipe():
        if fd < 5:
            moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 5)
            os.close(fd)
            fd = moved
        ends.append(fd)
    return ends[0], ends[1]


class BrowserError(RuntimeError):
    """The browser failed, answered with an error, or did not answer in time."""


def find_chromium() -> str | None:
    """The Chromium to drive: `chromium` (or `chromium-browser`) on PATH, or /usr/bin/chromium."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


class Browser:
    """One headless Chromium with one page (a tab) of `width` x `height` CSS pixels.

    Use as a context manager, or call `close()`: either way the browser is gone afterwards.
    """

    def __init__(
        self,
        width: int = 1000,
        height: int = 700,
        executable: str | None = None,
        timeout: float = TIMEOUT,
    ) -> None:
        executable = executable or find_chromium()
        if executable is None:
            raise BrowserError("no Chromium found (install Debian's package `chromium`)")
        self.timeout = timeout
        self._profile = Path(tempfile.mkdtemp(prefix="fastnn-chromium-"))
        self._log_path = self._profile / "chromium.log"
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self._events: list[dict[str, Any]] = []
        self._changed = threading.Condition()
        self._ended = False  # the browser's end of the pipe closed
        self._process: subprocess.Popen | None = None
        self._to_browser = self._from_browser = -1
        try:
            self._start(executable, width, height)
            self.session = self._open_page(width, height)
        except BaseException:
            self.close()
            raise

    # -- the process and the pipe ---------------------------------------------------------

    def _start(self, executable: str, width: int, height: int) -> None:
        commands_read, self._to_browser = _pipe()
        self._from_browser, replies_write = _pipe()
        flags = [*FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}"]
        # The browser must find the pipe at descriptors 3 and 4. subprocess keeps descriptors
        # at their numbers, so a small Python program moves them there and becomes the browser
        # (exec): no preexec_fn, which is unsafe in a process with threads (the tests run a
        # server), and no shell, whose redirections take single-digit descriptors only.
        try:
            with open(self._log_path, "wb") as log:
                self._process = subprocess.Popen(
                    [sys.executable, "-c", _MOVE_PIPE, str(commands_read), str(replies_write)]
                    + [executable, *flags, "about:blank"],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    pass_fds=(commands_read, replies_write),
                    start_new_session=True,  # one process group: closing kills all of it
                )
        finally:
            # The browser holds its own copies; ours closed, its exit ends our reads.
            os.close(commands_read)
            os.close(replies_write)
        threading.Thread(target=self._read, name="chromium-pipe", daemon=True).start()

    def _read(self) -> None:
        """Collect the browser's messages: replies by id, events in order of arrival."""
        buffer = b""
        try:
            while chunk := os.read(self._from_browser, 1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                with self._changed:
                    for raw in messages:
                        message = json.loads(raw)
                        if "id" in message:
                            self._replies[message["id"]] = message
                        else:
                            self._events.append(message)
                    self._changed.notify_all()
        except (OSError, ValueError):
            pass  # closed by close(), or garbage from a dying browser: both end the session
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def close(self) -> None:
        """Ask the browser to quit, then kill what is left of it, and remove its profile."""
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None and not self._ended:
                try:
                    self._post("Browser.close", {}, None)
                    process.wait(timeout=3)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            # The renderer and other helpers live in the browser's process group: give them a
            # moment to follow the browser out, then kill whatever is left.
            deadline = time.monotonic() + 2.0
            while _group_alive(process.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait(timeout=10)
        for fd in (self._to_browser, self._from_browser):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._to_browser = self._from_browser = -1
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log(self) -> str:
        """What the browser wrote on stdout and stderr (for a failing test's message)."""
        try:
            return self._log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    # -- the protocol -----------------------------------------------------------------------

    def _post(self, method: str, params: dict[str, Any], session: str | None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:  # a screenshot's command is small, but a write may still be partial
            data = data[os.write(self._to_browser, data) :]
        return self._next_id

    def command(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        session: str | None | bool = True,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one command (to the page's session unless `session` is None or another id)
        and return its result; BrowserError on an error reply, a dead browser or a timeout."""
        target = self.session if session is True else session or None
        try:
            message_id = self._post(method, params or {}, target)
        except OSError as exc:  # the pipe is closed: the browser is gone
            raise BrowserError(
                f"{method}: cannot reach the browser ({exc})\n{self.log()}"
            ) from None
        reply = self._wait_for(
            lambda: self._replies.pop(message_id, None), method, f"{method}: no answer", timeout
        )
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
        return reply.get("result", {})

    def event_count(self) -> int:
        with self._changed:
            return len(self._events)

    def wait_event(self, method: str, since: int, timeout: float | None = None) -> dict:
        """The first event `method` of the page's session after the first `since` events."""

        def found() -> dict[str, Any] | None:
            for event in self._events[since:]:
                if event["method"] == method and event.get("sessionId") == self.session:
                    return event.get("params", {})
            return None

        return self._wait_for(found, f"waiting for {method}", f"no {method}", timeout)

    def _wait_for(
        self, found: Callable[[], Any], doing: str, missing: str, timeout: float | None
    ) -> Any:
        """found()'s first answer other than None, asked under the lock at every change;
        BrowserError if the browser quits or `timeout` (default self.timeout) passes first."""
        limit = timeout or self.timeout
        deadline = time.monotonic() + limit
        with self._changed:
            while (answer := found()) is None:
                left = deadline - time.monotonic()
                if self._ended:
                    raise BrowserError(f"{doing}: the browser quit\n{self.log()}")
                if left <= 0:
                    raise BrowserError(f"{missing} in {limit} s")
                self._changed.wait(left)
            return answer

    def _open_page(self, width: int, height: int) -> str:
        target = self.command("Target.createTarget", {"url": "about:blank"}, session=None)
        attached = self.command(
            "Target.attachToTarget",
            {"targetId": target["targetId"], "flatten": True},
            session=None,
        )
        session = attached["sessionId"]
        self.command("Page.enable", session=session)
        self.command("Runtime.enable", session=session)
        # The viewport exactly, whatever the window decoration: screenshots of a known size.
        self.command(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        return session

    # -- what the tests do ------------------------------------------------------------------

    def navigate(self, url: str, timeout: float | None = None) -> None:
        """Open `url` in the page and wait until it has loaded (its load event)."""
        since = self.event_count()
        result = self.command("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise BrowserError(f"cannot open {url}: {result['errorText']}")
        self.wait_event("Page.loadEventFired", since, timeout)

    def evaluate(self, expression: str, await_promise: bool = False) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.command(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": await_promise},
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{expression[:80]!r} raised: {text}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float | None = None, every: float = 0.05) -> Any:
        """Evaluate `expression` until it is truthy and return that value; BrowserError once
        `timeout` passes."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"{expression!r} still false after {timeout or self.timeout} s")
            time.sleep(every)

    def mouse(self, kind: str, x: float, y: float, pressed: bool) -> None:
        """One mouse event at (x, y) CSS pixels: kind is mousePressed, mouseMoved or
        mouseReleased; `pressed` says whether the left button is down (during a drag)."""
        self.command(
            "Input.dispatchMouseEvent",
            {
                "type": kind,
                "x": x,
                "y": y,
                "button": "left" if pressed or kind != "mouseMoved" else "none",
                "buttons": 1 if pressed else 0,
                "clickCount": 1 if kind != "mouseMoved" else 0,
            },
        )

    def drag(self, points: list[tuple[float, float]]) -> None:
        """Press the left button at the first point, move through the others, release."""
        (x, y), rest = points[0], points[1:]
        self.mouse("mousePressed", x, y, True)
        for x, y in rest:
            self.mouse("mouseMoved", x, y, True)
        self.mouse("mouseReleased", x, y, False)

    def touch_drag(self, points: list[tuple[float, float]]) -> None:
        """One finger down at the first point, through the others, and up (the page needs
        touch emulation: `command("Emulation.setTouchEmulationEnabled", {"enabled": True})`)."""
        (x, y), rest = points[0], points[1:]
        self.command(
            "Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]}
        )
        for x, y in rest:
            self.command(
                "Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]}
            )
        self.command("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})

    def screenshot(self, out_png: str | os.PathLike, full_page: bool = False) -> Path:
        """Save the page as a PNG (the viewport, or with `full_page` the whole page)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.command("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": size["height"],
                "scale": 1,
            }
            params["captureBeyondViewport"] = True
        data = self.command("Page.captureScreenshot", params)["data"]
        out = Path(out_png)
        out.write_bytes(base64.b64decode(data))
        return out


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid`, other than a zombie, remains."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    if not Path("/proc/self/stat").exists():
        return True  # not Linux: cannot tell zombies apart, so wait out the grace period
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the process ended meanwhile
            continue
        # Zombies count for killpg, not here. "pid (comm) state ppid pgrp ...": split after
        # the command name, which may hold spaces.
        fields = text.rpartition(")")[2].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def screenshot(
    path_or_url: str | os.PathLike,
    out_png: str | os.PathLike,
    width: int = 1000,
    height: int = 700,
    full_page: bool = False,
) -> Path:
    """Open a local HTML file (a path) or a URL in a fresh headless Chromium and save a PNG of
    it, `width` x `height` CSS pixels (taller with `full_page`). Raises BrowserError."""
    text = str(path_or_url)
    url = text if "://" in text else Path(text).resolve().as_uri()
    with Browser(width, height) as browser:
        browser.navigate(url)
        return browser.screenshot(out_png, full_page)
