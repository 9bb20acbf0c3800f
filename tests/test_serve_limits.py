"""python -m fastnn.serve under load and against what a careless client or an attacker sends: a
burst of clients on kept-alive connections, how long a kept-alive answer takes, images that are
large or declare too many pixels, and bodies that are JSON but not pixels."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time

import numpy as np
import pytest
from drawn_digits import paper_image, plumbing_model, ring
from serve_helpers import TIMEOUT, png_bytes, png_declaring, predict, request, serving

from fastnn.predict.images import digit_from_bytes
from fastnn.serve import answers as serve_answers


@pytest.fixture(scope="module")
def server():
    with serving(plumbing_model()) as server:
        yield server


@pytest.fixture(scope="module")
def drawing() -> bytes:
    """A PNG of a drawn 0, as the page posts it."""
    return png_bytes(paper_image(ring()))


def post(connection: http.client.HTTPConnection, body: bytes) -> tuple[int, dict]:
    """Status and JSON answer of a POST /predict on `connection`, kept open."""
    connection.request("POST", "/predict", body=body)
    response = connection.getresponse()
    return response.status, json.loads(response.read())


# A burst: this many clients open their connections at the same moment, then post this many
# requests each on them (a few seconds in all on two cores).
BURST_CLIENTS, BURST_REQUESTS = 50, 8


def test_a_burst_of_clients_on_kept_alive_connections_is_served_without_errors(server, drawing):
    """With the standard library's listen queue of 5, such a burst had connections reset (4 to
    97 of 50 clients x 20 requests) or waiting a second for the kernel's retry. The drawings
    and JSON pixels, in turn, also check that answers stay right when many are decoded at once."""
    row = digit_from_bytes(drawing)
    pixels = json.dumps(row.tolist()).encode()
    start = threading.Barrier(BURST_CLIENTS)
    errors, answers = [], []

    def client(number: int) -> None:
        connection = http.client.HTTPConnection(*server.server_address[:2], timeout=TIMEOUT)
        try:
            start.wait(TIMEOUT)
            for i in range(BURST_REQUESTS):  # the first request opens the connection
                answers.append(post(connection, drawing if (number + i) % 2 else pixels))
        except Exception as exc:  # a reset, a timeout: what the test counts
            errors.append(f"client {number}: {exc!r}")
        finally:
            connection.close()

    clients = [threading.Thread(target=client, args=(n,)) for n in range(BURST_CLIENTS)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(60)  # a guard against a hang, far above the few seconds it takes
    assert not any(thread.is_alive() for thread in clients)
    assert not errors, f"{len(errors)} connection errors: {errors[:3]}"
    assert len(answers) == BURST_CLIENTS * BURST_REQUESTS
    assert all(status == 200 and answer["image"] == row.tolist() for status, answer in answers)


def test_kept_alive_answers_take_under_5_ms_median(server):
    """The page posts several times a second on one connection. Headers and body written apart
    made each answer wait for the client's delayed acknowledgement, 40 ms; 5 ms is the bound the
    issue set for this machine. The median of 200 answers after 20 to warm up, of JSON pixels:
    the time measured is the connection's, not decoding's (the page's 280 x 280 PNG takes 3 to
    15 ms to decode here, on any connection)."""
    pixels = pixels_json("0")
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=TIMEOUT)
    try:
        for _ in range(20):
            assert post(connection, pixels)[0] == 200
        times = []
        for _ in range(200):
            started = time.perf_counter()
            post(connection, pixels)
            times.append(time.perf_counter() - started)
    finally:
        connection.close()
    median = statistics.median(times)
    assert median < 0.005, f"median {median * 1e3:.1f} ms over {len(times)} answers"


@pytest.mark.parametrize(
    ("width", "height", "reason"),
    [
        (5000, 4000, "5000 x 4000 pixels (20 megapixels); fastnn reads images of up to 16.8"),
        (4097, 4096, "4097 x 4096 pixels"),
        (20_000, 10_000, "more pixels than Pillow opens; fastnn reads images of up to 16.8"),
    ],
)
def test_an_image_declaring_too_many_pixels_is_a_413_before_decoding(
    server, drawing, width, height, reason
):
    status, answer = predict(server, png_declaring(width, height))
    assert status == 413 and list(answer) == ["error"] and reason in answer["error"], answer
    assert predict(server, drawing)[0] == 200


def test_an_image_at_the_pixel_bound_is_decoded(server):
    # 4096 x 4096 pixels declared, none there: past the bound, refused only by the decoder.
    status, answer = predict(server, png_declaring(4096, 4096))
    assert status == 400 and "cannot read as an image" in answer["error"], answer


@pytest.fixture(scope="module")
def large_image() -> bytes:
    """A PNG of a drawn 0 over serve_answers.LARGE_IMAGE_PIXELS (1.2 megapixels)."""
    ink = np.zeros((1000, 1200))
    ink[:, 100:1100] = ring(1000)
    return png_bytes((255 - 255 * ink).astype(np.uint8))


class HeldDecodes:
    """Makes the server's decoding of `body` wait, once begun, until `released` is set."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, body: bytes) -> None:
        self.begun = threading.Semaphore(0)  # released once by each decoding that began
        self.released = threading.Event()
        decode = serve_answers.digit_from_bytes

        def held(data: bytes, *args) -> np.ndarray:
            if data == body:
                self.begun.release()
                self.released.wait(TIMEOUT)
            return decode(data, *args)

        monkeypatch.setattr(serve_answers, "digit_from_bytes", held)


@pytest.mark.parametrize("held", ["large", "small"])
def test_images_are_decoded_in_turns_apart_from_the_forward_pass(
    server, drawing, large_image, monkeypatch, held
):
    """Decoding held the lock every prediction takes: one upload declaring 16 megapixels (18 kB
    of PNG, a second of decoding) stalled every drawer, four of them by 1.4 s, and the memory
    they took was not bounded by count. Now large images are decoded one at a time, smaller
    ones SMALL_DECODES at a time, both outside that lock: with every turn of one kind taken,
    another of that kind is refused after DECODE_WAIT (503, Retry-After) while the other kind
    is answered."""
    monkeypatch.setattr(serve_answers, "DECODE_WAIT", 0.3)
    body, other = (large_image, drawing) if held == "large" else (drawing, large_image)
    turns = 1 if held == "large" else serve_answers.SMALL_DECODES
    decodes = HeldDecodes(monkeypatch, body)
    answers = []
    holders = [
        threading.Thread(target=lambda: answers.append(predict(server, body))) for _ in range(turns)
    ]
    for thread in holders:
        thread.start()
    try:
        for _ in range(turns):
            assert decodes.begun.acquire(timeout=TIMEOUT), "a held decoding did not begin"
        status, headers, content = request(server, "POST", "/predict", body)
        assert status == 503 and headers["Retry-After"] == "5", (status, content)
        assert "busy decoding other images" in json.loads(content)["error"]
        assert predict(server, other)[0] == 200
    finally:
        decodes.released.set()
        for thread in holders:
            thread.join(TIMEOUT)
    assert [status for status, _ in answers] == [200] * turns


def pixels_json(first: str) -> bytes:
    """784 pixel values in JSON, the first written as `first`, the rest a valid drawing."""
    return f"[{first}, {', '.join(['0'] * 782)}, 200]".encode()


# Each a 400 with the reason. The first four were a 500 ("internal error"); the others were
# refused already, and their messages now say which value is wrong and what it is.
MALFORMED_JSON = {
    "a 400-digit integer": (pixels_json("9" * 400), "value 0 is 9999"),
    "a 5,000-digit integer": (pixels_json("9" * 5000), "a number with too many digits"),
    "100,000 nested [": (b"[" * 100_000, "nested too deeply"),
    "100,000 nested objects": (b'{"pixels": ' * 100_000, "nested too deeply"),
    "NaN": (pixels_json("NaN"), "value 0 is NaN"),
    "Infinity": (pixels_json("Infinity"), "value 0 is Infinity"),
    "-Infinity": (pixels_json("-Infinity"), "value 0 is -Infinity"),
    "a float too large": (pixels_json("1e400"), "value 0 is Infinity"),
    "a huge float": (pixels_json("1e308"), "value 0 is 1e+308"),
    "null": (pixels_json("null"), "must be a number; value 0 is null"),
    "a string": (pixels_json('"255"'), 'must be a number; value 0 is "255"'),
    "a list": (pixels_json("[1]"), "must be a number; value 0 is a list"),
    "an object": (pixels_json("{}"), "must be a number; value 0 is an object"),
    "pixels not a list": (b'{"pixels": 5}', "expected a JSON list"),
    "not UTF-8": (b'["\xff"]', "not valid JSON"),
    "a lone top-level number": (b"5", "expected a JSON list"),
}


@pytest.mark.parametrize("case", list(MALFORMED_JSON))
def test_malformed_json_is_a_400_with_its_reason(server, drawing, case):
    body, reason = MALFORMED_JSON[case]
    status, answer = predict(server, body, "application/json")
    assert status == 400 and list(answer) == ["error"] and reason in answer["error"], answer
    assert len(answer["error"]) < 200  # one line, whatever the body held
    assert predict(server, drawing)[0] == 200
