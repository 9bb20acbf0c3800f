"""python -m fastnn.serve: a local page to draw a digit on and watch a saved model read it.

The page (fastnn/serve/static/: plain HTML, CSS and JavaScript, no external requests) posts the
drawing as a PNG to ``POST /predict`` while the person draws, and shows the predicted class, the
probabilities and the 28x28 image the network received. The server and its endpoint are
`http`'s; this module is the command and `create_server`.

Exit status: 1 when the model cannot be used, 2 for wrong arguments (including a port that is
in use or an address that cannot be bound), 130 when Ctrl-C stopped it.
"""

from __future__ import annotations

import argparse
import errno
import socket
import sys

import numpy as np

from fastnn.backends import BACKENDS, get_backend
from fastnn.core import interrupt
from fastnn.estimator import MLPClassifier
from fastnn.files.persist import ModelFileError
from fastnn.saved import load_classifier
from fastnn.serve.answers import N_PIXELS, Predictor
from fastnn.serve.http import DigitServer
from fastnn.tools import add_version

EXIT_MODEL, EXIT_ARGUMENTS = 1, 2


def create_server(model: MLPClassifier, host: str = "127.0.0.1", port: int = 8000) -> DigitServer:
    """A server for `model`, bound (port 0: to a free port, see `.url`) but not yet serving:
    call `serve_forever()`, and `shutdown()` from another thread to stop it.

    Raises ValueError if the model does not take 28x28 images; OSError if the address cannot
    be bound.
    """
    n_features = getattr(model, "n_features_in_", None)
    if n_features != N_PIXELS:
        raise ValueError(
            f"the model takes {n_features} features; fastnn.serve needs one trained on 28x28 "
            f"images ({N_PIXELS} features)"
        )
    # fastnn.predict.images imports its image reader on first use: now, rather than in the first
    # visitor's first stroke (half a second).
    import matplotlib.image  # noqa: F401

    return DigitServer((host, port), Predictor(model))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fastnn.serve",
        description="Serve a page on which to draw a digit and see a saved model's prediction "
        "as you draw; POST /predict takes an image or 784 pixel values as JSON.",
        epilog="Exit status: 1 unusable model, 2 bad arguments (or a port in use), 130 Ctrl-C.",
    )
    add_version(p)
    p.add_argument(
        "model", help="a model file written by MLPClassifier.save or fastnn.train --save"
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default: %(default)s, this machine only; "
                   "0.0.0.0 lets other machines reach the page)")  # fmt: skip
    p.add_argument("--port", type=int, default=8000,
                   help="the port (default: %(default)s; 0 picks a free one)")  # fmt: skip
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="backend for the forward pass (default: %(default)s, which needs no "
                   "compilation)")  # fmt: skip
    return p


@interrupt.handles_sigterm  # SIGTERM stops it as Ctrl-C does, exit status 143
def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: give a port from 0 to 65535")
    try:
        return run(args)
    except KeyboardInterrupt:  # raised in plain Python: serve_forever's loop, or loading
        print("fastnn.serve: stopped", file=sys.stderr)
        return interrupt.EXIT_INTERRUPTED


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    try:
        model = load_classifier(args.model)
        backend = get_backend(args.backend)
        model.set_params(backend=args.backend)
        # One forward pass now, so that a backend that compiles does it before the first
        # visitor rather than during their first stroke.
        with backend.compilation(_say):
            model.predict_proba(np.zeros((1, model.n_features_in_), dtype=np.uint8))
        server = create_server(model, args.host, args.port)
    except (ModelFileError, ValueError) as exc:
        _say(f"fastnn.serve: error: {exc}")
        return EXIT_MODEL
    except OSError as exc:
        _say(f"fastnn.serve: error: {_bind_problem(args.host, args.port, exc)}")
        return EXIT_ARGUMENTS
    with server:
        # Printed (and flushed) once listening, so a script can read the port from it.
        print(f"fastnn.serve: serving {args.model} at {server.url} (Ctrl-C to stop)", flush=True)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            _say(f"fastnn.serve: note: {_listening_on(args.host)}: other machines can reach it")
        server.serve_forever()
    return 0


def _listening_on(host: str) -> str:
    """Where the server listens, in words: "", 0.0.0.0 and :: are every interface."""
    if host in ("", "0.0.0.0", "::"):
        given = host or "''"
        return f"listening on every interface (--host {given})"
    return f"listening on {host}"


def _bind_problem(host: str, port: int, exc: OSError) -> str:
    """One line on why (host, port) could not be bound, and what to do."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is in use (another fastnn.serve?); "
            "choose another with --port, or --port 0 for a free one"
        )
    if exc.errno == errno.EACCES:
        return f"no permission to listen on port {port}; use a port above 1023"
    if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
        return f"cannot listen on {host!r}: not an address of this machine ({exc.strerror})"
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"
