"""fastnn.serve's page in a real browser: headless Chromium, driven over the DevTools protocol
(tests/browser.py), draws MNIST test digits stroke by stroke with the mouse, and the class the
page shows must be the one `python -m fastnn.predict` gives for the same drawing.

Chromium is Debian's package `chromium` (`.ci/run` installs it). Without it these tests are
skipped, except where the variable CI is set: there they fail, so CI cannot skip them quietly.

The screenshots go to the tests' temporary folders. To refresh the README's pictures, name a
folder in FASTNN_SCREENSHOTS and the tests copy them there too:

    FASTNN_SCREENSHOTS=docs python -m pytest tests/test_serve_browser.py
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import browser
import numpy as np
import pytest
from PIL import Image
from serve_helpers import serving, train_mnist_model

from fastnn.predict.command import main as predict_main
from fastnn.predict.images import load_digit

WIDTH, HEIGHT = 960, 520  # the page's viewport, and the screenshot's size
INK_LEVEL = 128  # MNIST pixels at least this bright are drawn over
MAX_SCREENSHOT_BYTES = 150_000  # the README's copy stays small


@pytest.fixture(scope="module")
def chromium() -> str:
    found = browser.find_chromium()
    if found is None:
        reason = "no Chromium: install Debian's package `chromium` (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the browser tests, not skip them")
        pytest.skip(reason)
    return found


@pytest.fixture(scope="module")
def mnist(real_data_dir, tmp_path_factory):
    """A small model trained on real MNIST, its file, and the test digits and labels."""
    model_file = tmp_path_factory.mktemp("serve-browser") / "model.npz"
    model, (_, _, X_test, y_test) = train_mnist_model(real_data_dir, model_file)
    return model, model_file, X_test, y_test


def keep_screenshot(path: Path) -> None:
    """Copy a screenshot to the folder FASTNN_SCREENSHOTS names, if it names one."""
    folder = os.environ.get("FASTNN_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, Path(folder) / path.name)


def strokes(digit: np.ndarray, left: float, top: float, scale: float) -> list[list[tuple]]:
    """The digit (28x28) as mouse drags: one along each row's run of inked pixels, through
    every pixel centre, scaled by `scale` and placed at (left, top) in the page."""
    drags = []
    for row, pixels in enumerate(digit.reshape(28, 28) >= INK_LEVEL):
        columns = np.flatnonzero(pixels)
        for run in np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1):
            if run.size:
                y = top + (row + 0.5) * scale
                drags.append([(left + (c + 0.5) * scale, y) for c in range(run[0], run[-1] + 1)])
    return drags


# The page's state, read in one evaluation: the drawing's version and the version the shown
# prediction answers (equal once the answer to the finished drawing is in), and what it shows.
PAGE_STATE = """(() => {
  const pad = document.getElementById("pad");
  const prediction = document.getElementById("prediction");
  const view = document.getElementById("received").getContext("2d");
  const seen = view.getImageData(0, 0, 28, 28).data.filter((_, i) => i % 4 === 0);
  return {
    drawn: pad.dataset.version,
    answered: prediction.dataset.version,
    prediction: prediction.textContent,
    status: document.getElementById("status").textContent,
    top: document.querySelector("#bars li.top .value")?.textContent ?? null,
    received: Array.from(seen),
  };
})()"""
SETTLED = f"(() => {{ const s = {PAGE_STATE}; return s.drawn === s.answered && s; }})()"
PAD_BOX = """(() => {
  const pad = document.getElementById("pad"), box = pad.getBoundingClientRect();
  return [box.left + pad.clientLeft, box.top + pad.clientTop, pad.clientWidth];
})()"""
CANVAS_PNG = 'document.getElementById("pad").toDataURL("image/png")'


def predict_command(page: browser.Browser, model_file: Path, png: Path, capsys) -> dict:
    """Save the page's drawing as the PNG it posts, and return what
    `python -m fastnn.predict MODEL PNG --json` says about it."""
    png.write_bytes(base64.b64decode(page.evaluate(CANVAS_PNG).split(",", 1)[1]))
    assert predict_main([str(model_file), str(png), "--json"]) == 0
    return json.loads(capsys.readouterr().out)[0]


def test_digits_drawn_in_the_page_are_predicted_as_fastnn_predict_does(
    chromium, mnist, tmp_path, capsys
):
    model, model_file, X_test, y_test = mnist
    # Two digits of different classes that the model reads surely in MNIST's own form.
    proba = model.predict_proba(X_test[:50])
    sure = [i for i in range(50) if proba[i].argmax() == y_test[i] and proba[i].max() > 0.99]
    chosen = [sure[0], next(i for i in sure if y_test[i] != y_test[sure[0]])]

    with serving(model) as server, browser.Browser(WIDTH, HEIGHT, chromium) as page:
        posts = []  # the page's requests to /predict, counted at the server
        answer = server.predictor.answer
        server.predictor.answer = lambda *args: posts.append(1) or answer(*args)
        page.navigate(server.url)
        assert page.evaluate(PAGE_STATE)["prediction"] == "\u2013"  # nothing drawn yet
        left, top, size = page.evaluate(PAD_BOX)
        for n, index in enumerate(chosen):
            if n:
                page.evaluate('document.getElementById("clear").click()')
                cleared = page.wait_for(SETTLED)
                assert cleared["prediction"] == "\u2013" and not any(cleared["received"])
            drags = strokes(X_test[index], left, top, size / 28)
            posted = len(posts)
            for drag in drags:
                page.drag(drag)
            shown = page.wait_for(SETTLED, timeout=15)
            # Predictions came while drawing, not only at the end, and not one per mouse event.
            mouse_events = sum(len(drag) + 1 for drag in drags)
            assert 2 <= len(posts) - posted < mouse_events

            # The same drawing through fastnn.predict: the canvas as the PNG the page posts.
            png = tmp_path / f"drawn-{n}.png"
            expected = predict_command(page, model_file, png, capsys)
            assert shown["prediction"] == str(expected["prediction"]), (index, shown["status"])
            assert shown["top"] == f"{100 * expected['top3'][0][1]:.1f}%"
            # ... the 28x28 the page shows is the one fastnn.predict gives the network ...
            assert shown["received"] == load_digit(png).tolist()
            # ... and the drawing reads as the MNIST digit it was drawn from.
            assert expected["prediction"] == y_test[index], f"test digit {index}"

        shot = page.screenshot(tmp_path / "serve.png")

        # A finger draws too: a vertical stroke, read as fastnn.predict reads it.
        page.evaluate('document.getElementById("clear").click()')
        page.command("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
        middle = left + size / 2
        page.touch_drag([(middle, top + size * (0.15 + 0.07 * k)) for k in range(11)])
        shown = page.wait_for(SETTLED, timeout=15)
        expected = predict_command(page, model_file, tmp_path / "touched.png", capsys)
        assert shown["prediction"] == str(expected["prediction"])
    assert Image.open(shot).size == (WIDTH, HEIGHT)
    assert shot.stat().st_size < MAX_SCREENSHOT_BYTES
    keep_screenshot(shot)


def test_screenshot_of_a_local_html_file(chromium, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(
        "<!doctype html><html><body style='margin:0;background:#fff'>"
        "<div style='width:200px;height:100px;background:#1f77b4'></div>"
        "<p style='margin-top:900px'>end</p></body></html>"
    )
    out = browser.screenshot(page, tmp_path / "shot.png", width=400, height=300, full_page=True)
    pixels = np.asarray(Image.open(out).convert("RGB"))
    # As wide as the viewport, as tall as the page (below the fold too).
    assert pixels.shape[1:] == (400, 3) and pixels.shape[0] > 900
    assert (pixels[50, 100] == [0x1F, 0x77, 0xB4]).all() and (pixels[50, 300] == 255).all()


def test_screenshot_of_the_report_page(chromium, mnist, tmp_path, capsys):
    """report.html as a browser shows it: every embedded figure decodes and has a size (a
    broken data URI shows as a 0 x 0 or 16 x 16 placeholder)."""
    from fastnn.report.command import main as report_main

    _, model_file, _, _ = mnist
    out = tmp_path / "report"
    assert report_main([str(model_file), "--out", str(out), "--no-download"]) == 0
    capsys.readouterr()
    with browser.Browser(1000, 900) as page:
        page.navigate((out / "report.html").resolve().as_uri())
        sizes = page.evaluate(
            "Array.from(document.images).map(i => [i.naturalWidth, i.naturalHeight])"
        )
        shot = page.screenshot(tmp_path / "report.png", False)
    assert len(sizes) >= 4 and all(w > 200 and h > 200 for w, h in sizes), sizes
    assert Image.open(shot).size == (1000, 900)
    keep_screenshot(shot)
