"""What ``POST /predict`` of python -m fastnn.serve answers: the request's body read as an
image file or as JSON pixels, through the model; or a RequestError with the HTTP status and the
one-line message for the client."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import numpy as np

from fastnn.estimator import MLPClassifier
from fastnn.predict.images import SIDE, ImageError, ImageTooLarge, declared_size, digit_from_bytes

N_PIXELS = SIDE * SIDE
# An image may declare at most this many pixels (checked from its header, before decoding; a
# 413 over it): 4096 x 4096, which a phone's 12-megapixel photo (4032 x 3024) fits, and more
# than a body of 2 MB (MAX_BODY) holds in a photo. Decoding takes 19 (grey) to 32 (colour PNG)
# bytes a pixel, Pillow's own included: an image at the bound, up to about 540 MB and a second.
MAX_IMAGE_PIXELS = 4096 * 4096
# Images over this many pixels are decoded one at a time, apart from the smaller ones: the
# page's drawings (280 x 280, milliseconds each) never wait behind a photo, and a few uploaders
# of large images take the memory of one decode, not of one each.
LARGE_IMAGE_PIXELS = 1024 * 1024
SMALL_DECODES = 4  # smaller images decoded at once (2 cores; each up to about 34 MB)
DECODE_WAIT = 10.0  # seconds an image waits for its turn to be decoded before a 503


class RequestError(Exception):
    """A request that cannot be answered: its HTTP status and a one-line message."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def pixels_from_json(body: bytes) -> np.ndarray:
    """A JSON ``[784 numbers]`` or ``{"pixels": [...]}`` as a uint8 row, or RequestError."""
    bad = HTTPStatus.BAD_REQUEST
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestError(bad, f"the body is not valid JSON ({exc})") from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise RequestError(bad, "the body's JSON has a number with too many digits") from None
    except RecursionError:
        raise RequestError(bad, "the body's JSON is nested too deeply") from None
    if isinstance(data, dict):
        if "pixels" not in data:
            raise RequestError(bad, 'a JSON object needs a "pixels" list of 784 values')
        data = data["pixels"]
    if not isinstance(data, list):
        raise RequestError(bad, "expected a JSON list of 784 pixel values (28x28, row by row)")
    if len(data) != N_PIXELS:
        raise RequestError(
            bad, f"expected {N_PIXELS} pixel values (28x28, row by row), got {len(data)}"
        )
    for i, value in enumerate(data):
        # bool is an int to Python, but `true` is no pixel value.
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RequestError(
                bad, f"every pixel value must be a number; value {i} is {_shown(value)}"
            )
        # Compared as they are: a 400-digit integer has no float, and NaN fails every test.
        # Whole numbers only: values in [0, 1] (a scaled image) would otherwise pass as
        # near-black.
        if not (0 <= value <= 255 and value == int(value)):
            raise RequestError(
                bad,
                f"pixel values must be whole numbers from 0 to 255; value {i} is {_shown(value)}",
            )
    row = np.array(data, dtype=np.uint8)
    if not row.any():
        raise RequestError(bad, "no digit found: the image is blank (every pixel is 0)")
    return row


def _shown(value: Any) -> str:
    """A JSON value for a message: at most 40 characters of it, or what it is."""
    if isinstance(value, (list, dict)):  # possibly nested hundreds deep: not written out
        return "a list" if isinstance(value, list) else "an object"
    text = json.dumps(value)
    return text if len(text) <= 40 else f"{text[:30]}... ({len(text):,} characters)"


def looks_like_json(body: bytes, content_type: str) -> bool:
    """JSON by its Content-Type, or by its first character (no image format starts so)."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        return True
    return body.lstrip()[:1] in (b"[", b"{")


class Predictor:
    """A loaded model, and the answers to /predict. The forward pass takes one request at a
    time (a drawing's takes well under a millisecond, and no backend then needs to be safe to
    call from several threads at once); reading the body, which for an image can take a second,
    happens before, outside that lock, in turns that bound the memory decoding takes."""

    def __init__(self, model: MLPClassifier) -> None:
        self.model = model
        self._lock = threading.Lock()
        self._small_decodes = threading.BoundedSemaphore(SMALL_DECODES)
        self._large_decodes = threading.BoundedSemaphore(1)
        self.classes = [_plain(label) for label in model.classes_]

    def answer(self, body: bytes, content_type: str) -> dict[str, Any]:
        """The answer to /predict for a request's body: an image file or JSON pixels."""
        if looks_like_json(body, content_type):
            row = pixels_from_json(body)
        else:
            row = self.digit(body)
        with self._lock:
            return self.predict(row)

    def digit(self, body: bytes) -> np.ndarray:
        """An image file's bytes as the 784 pixels the network takes, or RequestError."""
        try:
            width, height = declared_size(body, "the image", MAX_IMAGE_PIXELS)
            large = width * height > LARGE_IMAGE_PIXELS
            with _turn(self._large_decodes if large else self._small_decodes, large):
                return digit_from_bytes(body, "the image", MAX_IMAGE_PIXELS)
        except ImageTooLarge as exc:
            raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, str(exc)) from None
        except ImageError as exc:
            raise RequestError(HTTPStatus.BAD_REQUEST, str(exc)) from None

    def predict(self, row: np.ndarray) -> dict[str, Any]:
        """The answer for one uint8 row of 784 pixels."""
        proba = self.model.predict_proba(row[None, :])[0]
        # argmax takes the first of equal maxima, as fastnn.predict's stable sort does.
        best = int(np.argmax(proba))
        return {
            "class": self.classes[best],
            "probabilities": [float(p) for p in proba],
            "classes": self.classes,
            "image": row.tolist(),
        }


@contextlib.contextmanager
def _turn(turns: threading.BoundedSemaphore, large: bool) -> Iterator[None]:
    """Holds one of `turns` while decoding, or refuses after DECODE_WAIT s without one."""
    if not turns.acquire(timeout=DECODE_WAIT):
        what = f"images over {LARGE_IMAGE_PIXELS / 1e6:.3g} megapixels" if large else "images"
        raise RequestError(
            HTTPStatus.SERVICE_UNAVAILABLE,
            f"the server is busy decoding other {what}; try again in a few seconds",
        )
    try:
        yield
    finally:
        turns.release()


def _plain(label: Any) -> Any:
    """A label as a JSON-able Python value."""
    return label.item() if isinstance(label, np.generic) else label
