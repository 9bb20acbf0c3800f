"""python -m fastnn.serve over HTTP, without a browser: the page, POST /predict with an image or
JSON pixels (the same answer as fastnn.predict), the errors (after each of which the server
still answers), and the command line (a bad model, a port in use, Ctrl-C)."""

from __future__ import annotations

import http.client
import json
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from drawn_digits import paper_image, plumbing_model, ring
from PIL import Image
from serve_helpers import TIMEOUT, png_bytes, predict, request, serving

from fastnn import MLPClassifier
from fastnn.predict.command import main as predict_main
from fastnn.predict.images import load_digit
from fastnn.serve import command as serve
from fastnn.serve.command import create_server, main
from fastnn.serve.http import MAX_BODY, DigitServer, Handler


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A model on 784 features (meaningless weights: these tests check the plumbing), its
    file, a PNG and a JPEG of a drawing, and the server answering for the model."""
    folder = tmp_path_factory.mktemp("serve")
    model = plumbing_model()
    model.save(folder / "model.npz")
    Image.fromarray(paper_image(ring())).save(folder / "ring.png")
    Image.fromarray(paper_image(ring(200))).save(folder / "ring.jpg", quality=90)
    with serving(model) as server:
        yield model, folder, server


def predict_command(model_file: Path, image: Path, capsys) -> dict:
    """What `python -m fastnn.predict MODEL IMAGE --json` says about the image."""
    assert predict_main([str(model_file), str(image), "--json"]) == 0
    return json.loads(capsys.readouterr().out)[0]


@pytest.mark.parametrize("name", ["ring.png", "ring.jpg"])
def test_an_image_is_predicted_as_fastnn_predict_does(toy, name, capsys):
    model, folder, server = toy
    status, answer = predict(server, (folder / name).read_bytes())
    assert status == 200, answer
    assert set(answer) == {"class", "probabilities", "classes", "image"}
    expected = predict_command(folder / "model.npz", folder / name, capsys)
    assert answer["class"] == expected["prediction"]
    for label, probability in expected["top3"]:
        assert answer["probabilities"][answer["classes"].index(label)] == pytest.approx(
            probability, rel=1e-6
        )
    assert answer["classes"] == list(range(10)) and sum(answer["probabilities"]) == pytest.approx(1)
    # The 28x28 the network received: fastnn.predict's own conversion of the file.
    assert answer["image"] == load_digit(folder / name).tolist()


def test_json_pixels_are_used_as_they_are(toy):
    model, _, server = toy
    row = load_digit(toy[1] / "ring.png")
    for body in (json.dumps(row.tolist()), json.dumps({"pixels": row.tolist()})):
        # Found to be JSON by its content whatever the Content-Type says.
        for content_type in ("application/json", "text/plain"):
            status, answer = predict(server, body.encode(), content_type)
            assert status == 200, answer
            assert answer["image"] == row.tolist()
            assert answer["class"] == model.predict(row[None])[0]
            assert answer["probabilities"] == pytest.approx(model.predict_proba(row[None])[0])
    # Whole numbers written as floats are fine.
    status, answer = predict(server, json.dumps([float(v) for v in row]).encode())
    assert status == 200 and answer["image"] == row.tolist()


BAD_REQUESTS = {
    "wrong length": (b"[1, 2, 3]", "expected 784 pixel values"),
    "too long": (json.dumps([1] * 785).encode(), "got 785"),
    "not an image": (b"GIF? no, just some text", "cannot read as an image"),
    "truncated png": (b"\x89PNG\r\n\x1a\n" + b"\0" * 20, "cannot read as an image"),
    "bad json": (b"[1, 2,", "not valid JSON"),
    "object without pixels": (b'{"image": []}', '"pixels"'),
    "json string": (b'"hello"', "expected a JSON list"),  # JSON by its Content-Type
    "out of range": (json.dumps([0] * 783 + [256]).encode(), "value 783 is 256"),
    "negative": (json.dumps([-1] + [0] * 783).encode(), "value 0 is -1"),
    "fractions": (json.dumps([0.5] * 784).encode(), "whole numbers from 0 to 255"),
    "not numbers": (json.dumps(["1"] * 784).encode(), "must be a number"),
    "booleans": (json.dumps([True] * 784).encode(), "must be a number"),
    "blank json": (json.dumps([0] * 784).encode(), "blank"),
    "blank drawing": (png_bytes(np.full((280, 280), 255, np.uint8)), "blank"),
    "empty body": (b"", "empty"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_a_bad_body_is_a_400_and_the_server_goes_on(toy, case):
    _, folder, server = toy
    body, message = BAD_REQUESTS[case]
    json_type = case == "json string"  # the one body that does not look like JSON or an image
    status, answer = predict(server, body, "application/json" if json_type else "image/png")
    assert status == 400 and list(answer) == ["error"] and message in answer["error"], answer
    assert predict(server, (folder / "ring.png").read_bytes())[0] == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nothing-here", 404, None),
        ("POST", "/elsewhere", 404, None),
        ("GET", "/../../etc/passwd", 404, None),
        ("GET", "/predict", 405, "POST"),
        ("PUT", "/predict", 405, "POST"),
        ("POST", "/", 405, "GET, HEAD"),
        ("DELETE", "/app.js", 405, "GET, HEAD"),
    ],
)
def test_wrong_paths_and_methods_get_json_errors(toy, method, path, status, allow):
    _, folder, server = toy
    got, headers, content = request(server, method, path, b"" if method != "GET" else None)
    assert got == status and "error" in json.loads(content)
    assert headers.get("Allow") == allow
    assert predict(server, (folder / "ring.png").read_bytes())[0] == 200


def test_an_unread_body_closes_the_connection(toy):
    """A body the server does not read would otherwise be taken for the next request."""
    _, _, server = toy
    for path in ("/elsewhere", "/"):
        status, headers, _ = request(server, "POST", path, b'{"pixels": [1]}')
        assert status in (404, 405) and headers["Connection"] == "close"
    status, headers, content = request(server, "HEAD", "/predict")
    assert status == 405 and content == b"" and headers["Allow"] == "POST"


def test_a_body_over_the_limit_is_refused_unread(toy):
    _, folder, server = toy
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=TIMEOUT)
    try:
        # Headers only: the server must answer from Content-Length, not wait for 10 MB.
        connection.putrequest("POST", "/predict")
        connection.putheader("Content-Type", "image/png")
        connection.putheader("Content-Length", str(5 * MAX_BODY))
        connection.endheaders()
        started = time.monotonic()
        response = connection.getresponse()
        answer = json.loads(response.read())
        assert time.monotonic() - started < 5
        assert response.status == 413 and "at most 2,097,152" in answer["error"]
        assert response.getheader("Connection") == "close"
    finally:
        connection.close()
    # A body of exactly the limit is read (and is not an image).
    status, answer = predict(server, b"x" * MAX_BODY)
    assert status == 400 and "cannot read as an image" in answer["error"]
    assert predict(server, (folder / "ring.png").read_bytes())[0] == 200


def test_a_client_that_stops_sending_is_timed_out(toy, monkeypatch):
    _, folder, server = toy
    monkeypatch.setattr(Handler, "timeout", 0.3)  # READ_TIMEOUT, 30 s, shortened for the test
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=TIMEOUT)
    try:
        connection.putrequest("POST", "/predict")
        connection.putheader("Content-Length", "1000")
        connection.endheaders(b"[1, 2, 3")  # and then nothing more
        response = connection.getresponse()
        assert response.status == 408 and "did not arrive" in json.loads(response.read())["error"]
    finally:
        connection.close()
    assert predict(server, (folder / "ring.png").read_bytes())[0] == 200


def test_a_client_that_trickles_its_body_is_timed_out(toy, monkeypatch):
    """Slow-body (slowloris): each piece arrives within the socket's timeout, so only a time for
    the whole body bounds how long the client holds the connection's thread."""
    _, folder, server = toy
    monkeypatch.setattr(Handler, "timeout", 0.5)  # READ_TIMEOUT, 30 s, shortened for the test
    with socket.create_connection(server.server_address[:2], timeout=TIMEOUT) as client:
        client.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n[")
        started = time.monotonic()
        # Two bytes each 0.1 s (the whole body would take 50 s), for at most 5 s.
        while not select.select([client], [], [], 0.1)[0] and time.monotonic() - started < 5:
            client.sendall(b"0,")
        elapsed = time.monotonic() - started
        reply = client.recv(65536)
    assert reply.startswith(b"HTTP/1.1 408 "), reply[:200]
    assert b"did not arrive within 0.5 s" in reply
    assert elapsed < 3  # a guard: answered after about 0.5 s
    assert predict(server, (folder / "ring.png").read_bytes())[0] == 200


def test_a_body_without_its_length_is_refused(toy):
    _, folder, server = toy
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=TIMEOUT)
    try:
        connection.request(
            "POST", "/predict", body=iter([b"[1, 2]"]), encode_chunked=True, headers={}
        )
        response = connection.getresponse()
        assert response.status == 411 and "Content-Length" in json.loads(response.read())["error"]
    finally:
        connection.close()
    assert predict(server, (folder / "ring.png").read_bytes())[0] == 200


@pytest.mark.parametrize(
    ("header", "status"),
    [("Transfer-Encoding: chunked", 411), (f"Content-Length: {5 * MAX_BODY}", 413)],
)
def test_a_client_still_sending_a_refused_body_reads_the_refusal(toy, header, status):
    """The server refuses the body from the headers, before reading it. Had it closed the
    connection with the body arriving, the kernel would reset it and the client, still
    sending, would get a broken pipe or a reset instead of the answer (seen in CI)."""
    _, folder, server = toy
    with socket.create_connection(server.server_address[:2], timeout=TIMEOUT) as client:
        client.sendall(f"POST /predict HTTP/1.1\r\nHost: test\r\n{header}\r\n\r\n".encode())
        for _ in range(3):  # more of the body, after the server has answered
            time.sleep(0.2)
            client.sendall(b"8000\r\n" + b"x" * 32768 + b"\r\n")
        reply = b""
        while piece := client.recv(65536):
            reply += piece
    assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:200]
    assert b"Connection: close" in reply
    assert predict(server, (folder / "ring.png").read_bytes())[0] == 200


def test_a_client_that_resets_its_connection_gets_no_error_report(toy, capfd):
    """A browser tab closed mid-request resets the connection; the server says nothing of it
    (it printed a traceback) and goes on serving."""
    _, folder, server = toy
    with socket.create_connection(server.server_address[:2], timeout=TIMEOUT) as client:
        client.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
        client.recv(1)  # the answer has begun; the rest is left unread
        # Closed with unread data and no lingering: the kernel sends a reset.
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert predict(server, (folder / "ring.png").read_bytes())[0] == 200
    time.sleep(0.2)  # the reset's thread has had its turn
    assert "Traceback" not in capfd.readouterr().err


def test_a_client_waiting_for_100_continue_gets_it_at_once(toy):
    """curl asks for "100 Continue" before it sends a large body. Replies are buffered until the
    request is answered (one write each); that interim one must leave at once."""
    _, folder, server = toy
    png = (folder / "ring.png").read_bytes()
    with socket.create_connection(server.server_address[:2], timeout=TIMEOUT) as client:
        client.sendall(
            b"POST /predict HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
            + f"Content-Length: {len(png)}\r\n\r\n".encode()
        )
        client.settimeout(5)  # a guard: it comes in milliseconds, or never
        assert client.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        client.sendall(png)
        response = http.client.HTTPResponse(client)
        response.begin()
        assert response.status == 200 and "class" in json.loads(response.read())


def test_one_connection_carries_many_predictions(toy):
    """The page keeps its connection open (HTTP/1.1) while it posts stroke after stroke."""
    _, folder, server = toy
    png = (folder / "ring.png").read_bytes()
    connection = http.client.HTTPConnection(*server.server_address[:2], timeout=TIMEOUT)
    try:
        for body in (png, b"[1]", png):
            connection.request("POST", "/predict", body=body)
            response = connection.getresponse()
            response.read()
            assert response.status == (400 if body == b"[1]" else 200)
    finally:
        connection.close()


def test_the_page_and_its_files(toy):
    _, _, server = toy
    status, headers, page = request(server, "GET", "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    html = page.decode()
    for needed in ('id="pad"', 'id="prediction"', 'id="bars"', 'id="received"', 'id="clear"'):
        assert needed in html
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert request(server, "HEAD", "/")[2] == b""
    for name, kind in [("app.js", "text/javascript"), ("style.css", "text/css")]:
        assert f'"{name}"' in html
        status, headers, content = request(server, "GET", f"/{name}")
        assert status == 200 and headers["Content-Type"].startswith(kind)
        # No request leaves this server: no address of another host in any of the files.
        assert not re.search(rb"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", content), name
    assert not re.search(rb"https?://", page)
    assert request(server, "GET", "/?from=somewhere")[0] == 200


# -- the command line ----------------------------------------------------------------------


def test_unusable_model_is_exit_1(toy, tmp_path, capsys):
    assert main([str(tmp_path / "nope.npz")]) == 1
    assert capsys.readouterr().err.startswith("fastnn.serve: error: ")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert main([str(tmp_path / "junk.npz")]) == 1
    assert "not a fastnn model file" in capsys.readouterr().err
    small = MLPClassifier(4, backend="numpy", max_iter=1).fit(np.eye(20), np.arange(20) % 2)
    small.save(tmp_path / "small.npz")
    assert main([str(tmp_path / "small.npz"), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "takes 20 features" in err and len(err.splitlines()) == 1


def test_a_port_in_use_is_exit_2(toy, capsys):
    _, folder, _ = toy
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([str(folder / "model.npz"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is in use" in err and "--port 0" in err
    assert len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as caught:
        main([str(folder / "model.npz"), "--port", "70000"])
    assert caught.value.code == 2


@pytest.mark.parametrize("host", ["", "0.0.0.0", "::"])
def test_listening_on_every_interface_is_said_so(toy, monkeypatch, capsys, host):
    """--host "" listens on every interface, as 0.0.0.0 does; the note said "listening on : ..."."""
    _, folder, _ = toy
    asked = []

    def on_loopback(model, host, port):  # tests listen on 127.0.0.1 only
        asked.append(host)
        return create_server(model, "127.0.0.1", port)

    monkeypatch.setattr(serve, "create_server", on_loopback)
    monkeypatch.setattr(DigitServer, "serve_forever", lambda self: None)
    assert main([str(folder / "model.npz"), "--host", host, "--port", "0"]) == 0
    given = host or "''"
    note = f"note: listening on every interface (--host {given}): other machines can reach it"
    assert asked == [host] and note in capsys.readouterr().err


def test_the_command_serves_until_ctrl_c(toy):
    _, folder, _ = toy
    command = [sys.executable, "-m", "fastnn.serve", str(folder / "model.npz"), "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The URL is printed once it listens; the pipe closes if the command dies first.
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else ""
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        connection = http.client.HTTPConnection("127.0.0.1", int(match[1]), timeout=TIMEOUT)
        connection.request("POST", "/predict", body=(folder / "ring.png").read_bytes())
        assert connection.getresponse().status == 200
        connection.close()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert err == "fastnn.serve: stopped\n" and out == ""
