"""Helpers for the fastnn.serve tests: a server running in a thread and requests to it, a small
MNIST model, and image files that declare more pixels than they hold."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import struct
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

import fastnn
from fastnn import MLPClassifier
from fastnn.data import Dataset, load_dataset
from fastnn.serve.command import create_server
from fastnn.serve.http import DigitServer

TIMEOUT = 10  # seconds for any one request


def request(
    server, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request on a fresh connection."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def predict(server, body: bytes, content_type: str = "image/png") -> tuple[int, dict]:
    status, headers, content = request(
        server, "POST", "/predict", body, {"Content-Type": content_type}
    )
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(content)


def png_bytes(image: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG")
    return out.getvalue()


@contextlib.contextmanager
def serving(model: MLPClassifier) -> Iterator[DigitServer]:
    """A server for `model` on 127.0.0.1 at a free port, answering in a thread; stopped after."""
    server = create_server(model, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True  # a test that fails badly must not keep the run from ending
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()  # returns once serve_forever has (it polls every 0.05 s)
        server.server_close()
        thread.join(timeout=10)


# Run in a child process with one BLAS thread: on two cores that other work shares, OpenBLAS's
# threads wait on each other and the same training took 14 s in-process against 1 s here.
_TRAIN = """
import sys
from fastnn import MLPClassifier
from fastnn.data import load_dataset

X, y, _, _ = load_dataset("mnist", data_dir=sys.argv[1], download=False)
model = MLPClassifier(64, backend="numpy", max_iter=3, learning_rate_init=0.2, random_state=0)
model.fit(X, y).save(sys.argv[2])
"""


def train_mnist_model(data_dir: Path, model_file: Path) -> tuple[MLPClassifier, Dataset]:
    """A small model trained on real MNIST, saved to `model_file`, and the dataset.

    Hidden 64, numpy backend (no Numba compilation), 3 epochs: about 96% on the test set, in
    about a second.
    """
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-c", _TRAIN, str(data_dir), str(model_file)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return fastnn.load(model_file), load_dataset("mnist", data_dir=data_dir, download=False)


def png_declaring(width: int, height: int) -> bytes:
    """A PNG of a few dozen bytes whose header declares `width` x `height` grey pixels (the
    pixels themselves are missing): an upload that is cheap to send and dear to decode."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey, no interlace
    pixels = zlib.compress(b"\0" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )
