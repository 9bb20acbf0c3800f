"""python -m fastnn.serve against what a careless client or an attacker sends: bodies that are
JSON but not pixels (each a 400 with a JSON reason, and the server goes on)."""

from __future__ import annotations

import pytest
from drawn_digits import paper_image, plumbing_model, ring
from serve_helpers import png_bytes, predict, serving


@pytest.fixture(scope="module")
def server():
    with serving(plumbing_model()) as server:
        yield server


@pytest.fixture(scope="module")
def drawing() -> bytes:
    """A PNG of a drawn 0, as the page posts it."""
    return png_bytes(paper_image(ring()))


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
