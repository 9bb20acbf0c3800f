"""Tests for load_dataset: real data, where it looks, verification, and downloads.

Downloads go to a local HTTP server on 127.0.0.1 only; a guard fails any test
that tries to open another address.
"""

import gc
import gzip
import hashlib
import http.server
import os
import re
import shutil
import socket
import threading
import time
import tracemalloc
import warnings
from collections.abc import Callable
from functools import cache, partial
from pathlib import Path

import numpy as np
import pytest
from gzip_bomb import write_gzip_bomb

from fastnn.data import DataError, find_dataset_files, load_dataset
from fastnn.data import datasets as ds

FILES = [f"{stem}.gz" for stem in ds.FILE_STEMS]
# The file the tests damage: a small one, read early (second), so failing tests fail fast.
BAD = "train-labels-idx1-ubyte.gz"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No real environment leaks in: no FASTNN_DATA_DIR, no user cache, no Debian copy."""
    monkeypatch.delenv("FASTNN_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setattr(ds, "DEBIAN_FASHION_MNIST_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(ds, "TIMEOUT", 5.0)
    real_create_connection = socket.create_connection

    # http.client opens every connection (to a server, or a proxy) with this function.
    def local_only(address, *args, **kwargs):
        assert address[0] == "127.0.0.1", f"test tried to connect to {address}"
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)


@pytest.fixture(scope="module")
def real(real_data_dir, tmp_path_factory) -> Callable[[str], ds.Dataset]:
    """The real dataset of a name, loaded once, on first use, through FASTNN_DATA_DIR (the tests
    of Fashion-MNIST are marked so: without it, only they are skipped)."""
    nowhere = tmp_path_factory.mktemp("nowhere")

    @cache
    def load(name: str) -> ds.Dataset:
        # Whatever the test's own isolation, this load sees the real folder and nothing else.
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FASTNN_DATA_DIR", str(real_data_dir))
            mp.setattr(ds, "DEBIAN_FASHION_MNIST_DIR", nowhere)
            return load_dataset(name, download=False, cache_dir=nowhere)

    return load


def copy_files(source, target, files=FILES):
    target.mkdir(parents=True, exist_ok=True)
    for name in files:
        shutil.copyfile(source / name, target / name)
    return target


def corrupt_gzip_copy(source, target):
    """Write a valid gzip of ``source``'s contents with one byte changed."""
    data = bytearray(gzip.decompress(source.read_bytes()))
    data[-1] ^= 1
    target.write_bytes(gzip.compress(bytes(data)))


BOMB_SIZE = 256 << 20  # what the bomb decompresses to: 256 MiB, from about 260 kB


@pytest.fixture(scope="module")
def gzip_bomb(tmp_path_factory):
    return write_gzip_bomb(tmp_path_factory.mktemp("bomb") / "bomb.gz", BOMB_SIZE)


def peak_memory(call):
    """Run ``call`` (which must raise a DataError); return the error and the peak traced bytes."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError) as info:
            call()
        return str(info.value), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def assert_matches(dataset, expected):
    for got, want in zip(dataset, expected, strict=True):
        np.testing.assert_array_equal(got, want)


# --- the real datasets ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.real_data("mnist", n)) for n in ds.DATASET_NAMES]
)
def test_real_shapes_and_dtypes(real, name):
    X_train, y_train, X_test, y_test = real(name)
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert X_train.dtype == X_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    assert X_train.min() == 0 and X_train.max() == 255
    assert set(np.unique(y_train)) == set(np.unique(y_test)) == set(range(10))


@pytest.mark.real_data("mnist", "fashion-mnist")
def test_real_known_labels(real):
    mnist, fashion = real("mnist"), real("fashion-mnist")
    assert mnist.y_train[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist.y_test[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(mnist.y_train)[:3].tolist() == [5923, 6742, 5958]
    assert fashion.y_train[:3].tolist() == [9, 0, 0]  # ankle boot, T-shirt, T-shirt
    assert np.bincount(fashion.y_train).tolist() == [6000] * 10
    assert int(mnist.X_train[0].sum()) == 27525


def test_the_real_files_load_into_little_more_than_their_arrays(real_data_dir):
    """The gzip data is decompressed straight into the arrays returned: no joined bytes and
    no parsed copy beside them (those made the peak 104 MB for MNIST's 55 MB)."""
    tracemalloc.start()
    try:
        dataset = load_dataset("mnist", real_data_dir, download=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    arrays = sum(a.nbytes for a in dataset)  # 55.4 MB: int64 labels, uint8 images
    # Beside them: the largest file's 9.9 MB as read, and a piece of at most 4 MB from zlib.
    assert peak < arrays + 15e6, (peak, arrays)
    assert all(a.flags.writeable for a in dataset)


def test_data_dir_with_subfolder(real, real_data_dir):
    assert_matches(load_dataset("mnist", str(real_data_dir), download=False), real("mnist"))


def test_uncompressed_files(real, real_data_dir, tmp_path):
    # All but the big train images uncompressed: each file may be either.
    copy_files(real_data_dir / "mnist", tmp_path, FILES[:1])
    for name in FILES[1:]:
        raw = gzip.decompress((real_data_dir / "mnist" / name).read_bytes())
        (tmp_path / name.removesuffix(".gz")).write_bytes(raw)
    assert_matches(load_dataset("mnist", tmp_path, download=False), real("mnist"))


@pytest.mark.real_data("mnist", "fashion-mnist")
def test_where_it_looks(real_data_dir, monkeypatch, tmp_path):
    def found_in(name="mnist", data_dir=None):
        found = find_dataset_files(name, data_dir)
        return found and {path.parent for path in found.values()}

    assert found_in() is None
    xdg_cache = copy_files(real_data_dir / "mnist", tmp_path / "xdg-cache" / "fastnn" / "mnist")
    assert found_in() == {xdg_cache}
    monkeypatch.setenv("FASTNN_DATA_DIR", str(real_data_dir))
    assert found_in() == {real_data_dir / "mnist"}
    assert found_in(data_dir=real_data_dir / "mnist") == {real_data_dir / "mnist"}
    assert found_in(data_dir=tmp_path) == {real_data_dir / "mnist"}  # no files there: go on
    assert found_in("fashion-mnist", real_data_dir) == {real_data_dir / "fashion-mnist"}


def test_home_cache_without_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(DataError, match=re.escape(str(tmp_path / ".cache" / "fastnn" / "mnist"))):
        load_dataset("mnist", download=False)


@pytest.mark.real_data("mnist", "fashion-mnist")
def test_debian_folder(real, real_data_dir, monkeypatch, tmp_path):
    monkeypatch.setattr(ds, "DEBIAN_FASHION_MNIST_DIR", real_data_dir / "fashion-mnist")
    fashion = load_dataset("fashion-mnist", download=False, cache_dir=tmp_path)
    assert_matches(fashion, real("fashion-mnist"))
    # The Debian folder is only for Fashion-MNIST.
    with pytest.raises(DataError, match="download=False"):
        load_dataset("mnist", download=False, cache_dir=tmp_path)


# --- bad local data --------------------------------------------------------------------


def test_bad_file_in_user_folder_is_an_error_and_kept(real_data_dir, tmp_path):
    folder = copy_files(real_data_dir / "mnist", tmp_path / "data")
    bad = folder / BAD
    corrupt_gzip_copy(real_data_dir / "mnist" / bad.name, bad)
    actual = hashlib.sha256(gzip.decompress(bad.read_bytes())).hexdigest()
    expected = ds.SHA256["mnist"][bad.stem]
    pattern = f"{re.escape(str(bad))}: SHA-256 .* is {actual}, but mnist {bad.stem} has {expected}"
    with pytest.raises(DataError, match=pattern):
        load_dataset("mnist", folder, download=False, cache_dir=tmp_path / "cache")
    assert bad.exists()


def test_other_dataset_in_folder_is_named(real_data_dir, tmp_path):
    with pytest.raises(DataError, match="it is the mnist train-images-idx3-ubyte file"):
        load_dataset("fashion-mnist", real_data_dir / "mnist", download=False, cache_dir=tmp_path)


def test_partial_user_folder(real_data_dir, tmp_path):
    copy_files(real_data_dir / "mnist", tmp_path, FILES[1::2])
    pattern = "holds only part of mnist: train-images-idx3-ubyte, t10k-images-idx3-ubyte missing"
    with pytest.raises(DataError, match=pattern):
        load_dataset("mnist", tmp_path, download=False)


def test_missing_data_dir(tmp_path):
    with pytest.raises(
        DataError, match=f"data_dir {re.escape(str(tmp_path / 'nope'))} is not a folder"
    ):
        load_dataset("mnist", tmp_path / "nope")


def test_bad_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTNN_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(DataError, match="FASTNN_DATA_DIR=.*nope is not a folder"):
        load_dataset("mnist")


def test_unknown_name():
    with pytest.raises(
        DataError, match="unknown dataset 'kmnist'; valid names are 'mnist', 'fashion-mnist'"
    ):
        load_dataset("kmnist")


def test_shape_and_count_checks(tmp_path):
    arrays = {
        "train-images-idx3-ubyte": np.zeros((3, 28, 28), np.uint8),
        "train-labels-idx1-ubyte": np.zeros(3, np.uint8),
        "t10k-images-idx3-ubyte": np.zeros((2, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte": np.zeros(3, np.uint8),
    }
    with pytest.raises(
        DataError, match=r"t10k files hold images of shape \(2, 28, 28\) and labels of shape \(3,\)"
    ):
        ds._assemble(arrays, tmp_path)
    arrays["t10k-images-idx3-ubyte"] = np.zeros((3, 28, 27), np.uint8)
    with pytest.raises(DataError, match=r"expected \(n, 28, 28\) and \(n,\)"):
        ds._assemble(arrays, tmp_path)


def test_no_local_copy_and_download_off(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset("mnist", download=False, cache_dir=tmp_path)
    message = str(info.value)
    for needed in [
        "downloading is off (download=False)",
        "--data PATH",
        "data_dir=PATH",
        "FASTNN_DATA_DIR",
    ]:
        assert needed in message
    assert f"cache folder {tmp_path / 'mnist'}" in message
    assert "allow downloading (download=True)" in message
    assert "dataset-fashion-mnist" not in message


# --- downloads from a local server -----------------------------------------------------


TRICKLE_INTERVAL = 0.1  # seconds between the bytes of trickle/
TRICKLE_FOR = 8.0  # seconds trickle/ goes on for at most (then it closes the connection)


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        folder = self.path.split("/")[1]
        if folder == "trickle":
            self.trickle()
        elif folder in ("endless", "huge"):
            self.endless(announce=folder == "huge")
        else:
            super().do_GET()

    def trickle(self):
        """Serve the good copy, announcing its full length but sending a byte at a time."""
        data = (Path(self.directory) / "good" / self.path.rsplit("/", 1)[1]).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        end = time.monotonic() + TRICKLE_FOR
        try:
            for i in range(len(data)):
                if self.server.stop.wait(TRICKLE_INTERVAL) or time.monotonic() > end:
                    break
                self.wfile.write(data[i : i + 1])
        except OSError:
            pass  # the client gave up
        self.close_connection = True

    def endless(self, announce):
        """Send junk without end (up to 128 MiB); ``announce`` a length of 1 TB first."""
        self.send_response(200)
        if announce:
            self.send_header("Content-Length", str(10**12))
        self.end_headers()
        block = os.urandom(1 << 16)
        try:
            for _ in range(2048):
                if self.server.stop.is_set():
                    break
                self.wfile.write(block)
        except OSError:
            pass  # the client gave up
        self.close_connection = True


@pytest.fixture(scope="module")
def server(real_data_dir, tmp_path_factory, gzip_bomb):
    """A local HTTP server with good/, corrupt/, truncated/ and bomb/ copies of MNIST.

    corrupt/ holds a valid gzip of wrong train labels, truncated/ the start of the
    real file, bomb/ a gzip bomb as the test images; their other files are good.
    trickle/ serves the good files a byte at a time; endless/ and huge/ send junk
    without end, huge/ announcing a length of 1 TB. Yields the server.
    """
    root = tmp_path_factory.mktemp("www")
    good = copy_files(real_data_dir / "mnist", root / "good")
    corrupt_gzip_copy(good / BAD, copy_files(good, root / "corrupt") / BAD)
    (copy_files(good, root / "truncated") / BAD).write_bytes((good / BAD).read_bytes()[:2000])
    shutil.copyfile(gzip_bomb, copy_files(good, root / "bomb") / "t10k-images-idx3-ubyte.gz")

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Handler, directory=root))
    httpd.requests = []
    httpd.stop = threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield httpd
    httpd.stop.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def url(server):
    """URL of a folder on the local server; forgets earlier requests."""
    server.requests.clear()
    return lambda folder: f"http://127.0.0.1:{server.server_address[1]}/{folder}/"


def closed_ports(count):
    """URLs of localhost ports nothing listens on (bound to get free numbers, then closed)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    urls = [f"http://127.0.0.1:{s.getsockname()[1]}/" for s in sockets]
    for s in sockets:
        s.close()
    return urls


@pytest.fixture
def closed_port_url():
    return closed_ports(1)[0]


def cache_listing(cache):
    return sorted(p.name for p in (cache / "mnist").iterdir())


def test_download_into_empty_cache(real, url, server, closed_port_url, tmp_path, capsys):
    cache = tmp_path / "cache"
    dataset = load_dataset("mnist", mirrors=[url("good")], cache_dir=cache)
    assert_matches(dataset, real("mnist"))
    assert cache_listing(cache) == sorted(FILES)  # and no temporary files
    assert "mnist train-images-idx3-ubyte.gz" in capsys.readouterr().err  # the progress bar
    # Now it comes from the cache: no mirror is contacted.
    assert_matches(load_dataset("mnist", mirrors=[closed_port_url], cache_dir=cache), real("mnist"))
    assert len(server.requests) == 4


def test_mirror_fallback(real, url, server, closed_port_url, tmp_path):
    # Refused, 404, serving a bad train-labels file, good.
    mirrors = [closed_port_url, url("missing"), url("corrupt"), url("good")]
    dataset = load_dataset("mnist", mirrors=mirrors, cache_dir=tmp_path, progress=False)
    assert_matches(dataset, real("mnist"))
    assert cache_listing(tmp_path) == sorted(FILES)
    # The mirror that worked is tried first for the next file, so the server saw: train
    # images from missing/ (404), then corrupt/; train labels from corrupt/ (bad), then
    # missing/ (404), then good/; the rest from good/.
    folders = [r.split("/")[1] for r in server.requests]
    assert folders == ["missing", "corrupt", "corrupt", "missing", "good", "good", "good"]


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        ("corrupt", "SHA-256 of the decompressed contents is [0-9a-f]{64}, but mnist train-labels"),
        ("truncated", "corrupt gzip data"),
    ],
)
def test_bad_file_on_server(url, tmp_path, folder, problem):
    bad_url = url(folder) + BAD
    with pytest.raises(DataError, match=f"Mirrors tried:\n  - {re.escape(bad_url)}: {problem}"):
        load_dataset("mnist", mirrors=[url(folder)], cache_dir=tmp_path, progress=False)
    # The good files stay in the cache; the bad one and the temporary file do not.
    assert cache_listing(tmp_path) == [FILES[0]]


@pytest.mark.parametrize("damage", ["wrong-contents", "not-gzip"])
def test_bad_cached_file_is_replaced(real, real_data_dir, url, server, tmp_path, damage):
    cache = copy_files(real_data_dir / "mnist", tmp_path / "mnist")
    bad = cache / BAD
    if damage == "not-gzip":
        bad.write_bytes(b"<html>Rate limit exceeded</html>")
    else:
        corrupt_gzip_copy(real_data_dir / "mnist" / bad.name, bad)
    dataset = load_dataset("mnist", mirrors=[url("good")], cache_dir=tmp_path, progress=False)
    assert_matches(dataset, real("mnist"))
    assert bad.read_bytes() == (real_data_dir / "mnist" / bad.name).read_bytes()
    assert [r.rsplit("/", 1)[1] for r in server.requests] == [bad.name]


def test_bad_cached_file_is_deleted_even_without_download(real_data_dir, tmp_path):
    cache = copy_files(real_data_dir / "mnist", tmp_path / "mnist")
    bad = cache / BAD
    corrupt_gzip_copy(real_data_dir / "mnist" / bad.name, bad)
    with pytest.raises(DataError, match="deleted a bad cached file: .*train-labels"):
        load_dataset("mnist", download=False, cache_dir=tmp_path)
    assert not bad.exists()


def test_interrupted_download_leaves_nothing(url, monkeypatch, tmp_path):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(ds, "gunzip_if_compressed", interrupt)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("mnist", mirrors=[url("good")], cache_dir=tmp_path, progress=False)
    assert cache_listing(tmp_path) == []


@pytest.mark.parametrize("name", ds.DATASET_NAMES)
def test_no_network_and_no_local_copy(tmp_path, name):
    mirrors = closed_ports(2)
    with pytest.raises(DataError) as info:
        load_dataset(name, mirrors=mirrors, cache_dir=tmp_path, progress=False)
    message = str(info.value)
    assert "the download failed" in message
    for mirror in mirrors:
        assert re.search(f"{re.escape(mirror)}train-images-idx3-ubyte.gz: .*refused", message)
    for option in [
        "--data PATH",
        "data_dir=PATH",
        "FASTNN_DATA_DIR",
        f"cache folder {tmp_path / name}",
    ]:
        assert option in message
    assert ("install Debian's package dataset-fashion-mnist" in message) == (
        name == "fashion-mnist"
    )
    assert not any((tmp_path / name).iterdir())


# --- slow, endless and bomb downloads -----------------------------------------------------


@pytest.fixture
def short_deadline(monkeypatch):
    """Allow each download 1 s in all (the per-read timeout of 1 s plus nothing per byte)."""
    monkeypatch.setattr(ds, "TIMEOUT", 1.0)
    monkeypatch.setattr(ds, "MIN_RATE", 1e12)


def test_trickling_mirror_is_abandoned_for_the_next(real, url, server, tmp_path, short_deadline):
    mirrors = [url("trickle"), url("good")]
    dataset = load_dataset("mnist", mirrors=mirrors, cache_dir=tmp_path, progress=False)
    assert_matches(dataset, real("mnist"))
    assert cache_listing(tmp_path) == sorted(FILES)
    # Train images: trickle/ (given up after the deadline), then good/; the rest from good/.
    assert [r.split("/")[1] for r in server.requests] == ["trickle"] + ["good"] * 4


def test_trickling_mirror_alone_says_it_is_too_slow(url, tmp_path, short_deadline):
    trickle_url = url("trickle") + FILES[0]
    with pytest.raises(DataError) as info:
        load_dataset("mnist", mirrors=[url("trickle")], cache_dir=tmp_path, progress=False)
    pattern = (
        rf"Mirrors tried:\n  - {re.escape(trickle_url)}: the server is too slow: after "
        rf"\d+\.\d s only \d+ of 9912422 bytes had arrived, and a download of this file may "
        r"take at most 1\.0 s"
    )
    assert re.search(pattern, str(info.value)), str(info.value)
    assert cache_listing(tmp_path) == []


@pytest.mark.parametrize(
    ("folder", "problem"),
    [
        ("endless", r"the server sent more than (\d+) bytes, more than any copy of this file"),
        ("huge", r"the server announces 1000000000000 bytes, more than any copy of this file"),
    ],
    ids=["endless", "huge"],
)
def test_server_sending_more_than_the_file_can_be(url, tmp_path, folder, problem):
    stem = "train-labels-idx1-ubyte"
    with pytest.raises(DataError) as info:
        ds._download("mnist", stem, tmp_path, [url(folder)], False, [])
    message = str(info.value)
    match = re.search(f"{re.escape(url(folder) + stem)}.gz: {problem}", message)
    assert match, message
    assert "60008 bytes uncompressed). This mirror serves a bad copy." in message
    if folder == "endless":
        assert 60008 < int(match[1]) < 2 * 60008 + 70000  # stops soon after that many
    assert not any(tmp_path.iterdir())


def test_gzip_bomb_on_server_is_rejected_with_bounded_memory(url, tmp_path):
    stem = "t10k-images-idx3-ubyte"
    bomb_url = url("bomb") + stem + ".gz"
    message, peak = peak_memory(
        lambda: ds._download("mnist", stem, tmp_path, [url("bomb")], False, [])
    )
    expected = (
        f"{bomb_url}: decompresses to more than the 7840016 bytes expected (a damaged file or "
        "a decompression bomb). This mirror serves a bad copy."
    )
    assert expected in message
    print(f"peak traced memory rejecting a {BOMB_SIZE >> 20} MiB gzip bomb: {peak / 1e6:.1f} MB")
    assert peak < 24e6  # the 7.8 MB the file may hold, not the bomb's 268 MB
    assert not any(tmp_path.iterdir())


def test_gzip_bomb_mirror_falls_back_to_the_next(real, url, server, tmp_path):
    mirrors = [url("bomb"), url("good")]
    dataset = load_dataset("mnist", mirrors=mirrors, cache_dir=tmp_path, progress=False)
    assert_matches(dataset, real("mnist"))
    assert cache_listing(tmp_path) == sorted(FILES)
    # bomb/ serves good train files; its test images are rejected, then good/ serves the rest.
    folders = [r.split("/")[1] for r in server.requests]
    assert folders == ["bomb", "bomb", "bomb", "good", "good"]


def test_gzip_bomb_in_data_folder(real_data_dir, tmp_path):
    folder = copy_files(real_data_dir / "mnist", tmp_path / "data")
    bomb = folder / "t10k-images-idx3-ubyte.gz"
    write_gzip_bomb(bomb, BOMB_SIZE)
    expected = (
        f"{bomb}: decompresses to more than the 7840016 bytes expected (a damaged file or a "
        "decompression bomb). Replace it with a good copy."
    )
    with pytest.raises(DataError, match=re.escape(expected)):
        load_dataset("mnist", folder, download=False, cache_dir=tmp_path / "cache")
    message, peak = peak_memory(lambda: ds._load_file("mnist", "t10k-images-idx3-ubyte", bomb))
    assert expected in message
    print(f"peak traced memory rejecting a local {BOMB_SIZE >> 20} MiB bomb: {peak / 1e6:.1f} MB")
    assert peak < 24e6


@pytest.mark.parametrize("suffix", [".gz", ""], ids=["gzip", "raw"])
def test_huge_local_file_is_not_read(tmp_path, suffix):
    # A sparse 1 GiB file: no disk used, but reading it all would take 1 GiB of memory.
    path = tmp_path / f"t10k-labels-idx1-ubyte{suffix}"
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b" if suffix else b"\0\0\x08\x01")
        f.truncate(1 << 30)
    message, peak = peak_memory(lambda: ds._load_file("mnist", "t10k-labels-idx1-ubyte", path))
    assert re.search(
        rf"{re.escape(str(path))}: the file is larger than any copy of it can be \(more than "
        r"\d+ bytes, for 10008 bytes uncompressed\)",
        message,
    ), message
    assert peak < 1e6


# --- the deadline covers the whole request -------------------------------------------------


class ScriptedServer:
    """A TCP server on 127.0.0.1 answering each connection with ``script(server, conn)``.

    One thread accepts the connections and serves them in turn. It stops by itself
    ``lifetime`` seconds after it starts, or at close(), which waits for it; scripts
    wait with server.wait() and give up once it is False.
    """

    def __init__(self, script, lifetime=6.0):
        self.script = script
        self.end = time.monotonic() + lifetime
        self.stopping = threading.Event()
        self.connections = 0
        self.trickled = 0  # bytes sent a byte at a time, by send_head_slowly
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self.serve, name="scripted server", daemon=True)
        self.thread.start()

    def url(self, scheme="http"):
        return f"{scheme}://127.0.0.1:{self.port}/"

    def running(self):
        return not self.stopping.is_set() and time.monotonic() < self.end

    def wait(self, seconds):
        """Sleep ``seconds``; True if the server should go on."""
        return not self.stopping.wait(seconds) and self.running()

    def serve(self):
        with self.listener:
            while self.running():
                try:
                    conn, _ = self.listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(0.05)
                    self.connections += 1
                    try:
                        self.script(self, conn)
                    except OSError:
                        pass  # the client gave up

    def close(self):
        self.stopping.set()
        self.thread.join(timeout=5)
        assert not self.thread.is_alive()


@pytest.fixture
def scripted():
    """Start ScriptedServer(script) for a test; all are stopped, and their threads gone, after."""
    servers = []

    def start(script):
        servers.append(ScriptedServer(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def receive_request(server, conn):
    """What the client sends up to a blank line or its hanging up: the path requested."""
    data = b""
    while b"\r\n\r\n" not in data and server.running():
        try:
            chunk = conn.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            break
        data += chunk
    return data.split(b" ")[1].decode() if data.count(b" ") >= 2 else ""


def say_nothing(server, conn):
    """Wait, sending nothing, until the client hangs up (or the server stops)."""
    while server.running():
        try:
            if not conn.recv(4096):
                return
        except TimeoutError:
            pass


HEAD = b"HTTP/1.0 200 OK\r\nContent-Length: 9912422\r\nContent-Type: application/gzip\r\n\r\n"
STATUS_LINE = len(b"HTTP/1.0 200 OK\r\n")
HEAD_INTERVAL = 0.3  # seconds between the bytes of a trickled head: well within TIMEOUT


def send_head_slowly(server, conn, sent_at_once):
    """Send HEAD's first ``sent_at_once`` bytes, then the rest a byte at a time."""
    conn.sendall(HEAD[:sent_at_once])
    for i in range(sent_at_once, len(HEAD)):  # 24 s in all: longer than the server lives
        if not server.wait(HEAD_INTERVAL):
            return
        conn.sendall(HEAD[i : i + 1])
        server.trickled += 1
    say_nothing(server, conn)


def trickle_head(sent_at_once):
    """A script answering any request with send_head_slowly."""

    def script(server, conn):
        receive_request(server, conn)
        send_head_slowly(server, conn, sent_at_once)

    return script


def redirect_then_trickle(server, conn):
    """Redirect any path to /moved/ and the same file, where the head is trickled."""
    path = receive_request(server, conn)
    if path.startswith("/moved/"):
        send_head_slowly(server, conn, 0)
    else:
        moved = "/moved/" + path.rsplit("/", 1)[-1]
        conn.sendall(f"HTTP/1.0 302 Found\r\nLocation: {moved}\r\n\r\n".encode())


def too_slow_pattern(url_of_file, deadline=r"1\.0"):
    return (
        rf"{re.escape(url_of_file)}: the server is too slow: after \d+\.\d s only 0 of "
        rf"(\d+|an unknown number of) bytes had arrived, and a download of this file may "
        rf"take at most {deadline} s"
    )


LABELS = "train-labels-idx1-ubyte"


@pytest.mark.parametrize(
    "script",
    [trickle_head(0), trickle_head(STATUS_LINE), redirect_then_trickle],
    ids=["status-line", "headers", "after-redirect"],
)
def test_mirror_trickling_the_head_is_given_up_at_the_deadline(
    real, url, scripted, tmp_path, short_deadline, script
):
    slow = scripted(script)
    with pytest.raises(DataError) as info:
        ds._download("mnist", LABELS, tmp_path, [slow.url()], False, [])
    assert re.search(too_slow_pattern(f"{slow.url()}{LABELS}.gz"), str(info.value)), info.value
    assert slow.trickled >= 2  # bytes kept coming, each well within the per-read timeout
    assert not any(tmp_path.iterdir())
    # With a good mirror after it, the file still loads, the slow mirror costing the deadline.
    labels, mirrors = ds._download("mnist", LABELS, tmp_path, [slow.url(), url("good")], False, [])
    np.testing.assert_array_equal(labels, real("mnist").y_train)
    assert mirrors == [url("good"), slow.url()]
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{LABELS}.gz"]
    assert slow.connections == (4 if script is redirect_then_trickle else 2)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_silent_server_is_given_up_at_the_deadline_not_the_read_timeout(
    url, scripted, monkeypatch, tmp_path, scheme
):
    # A per-read timeout longer than the whole download may take: the deadline must end it.
    # Over https the client waits for the server's part of the TLS handshake.
    monkeypatch.setattr(ds, "TIMEOUT", 5.0)
    monkeypatch.setattr(ds, "_deadline", lambda size: 1.0, raising=False)
    silent = scripted(say_nothing)
    mirror = silent.url(scheme)
    with pytest.raises(DataError) as info:
        load_dataset("mnist", mirrors=[mirror], cache_dir=tmp_path, progress=False)
    pattern = "Mirrors tried:\n  - " + too_slow_pattern(f"{mirror}{FILES[0]}")
    assert re.search(pattern, str(info.value)), info.value
    assert silent.connections == 1
    assert cache_listing(tmp_path) == []


def other_threads():
    """The threads alive, but tqdm's monitor (one per process, started with the first bar)."""
    return {t for t in threading.enumerate() if t.name != "tqdm_monitor"}


def open_descriptors():
    """The open file descriptors of this process, or None where /proc does not list them."""
    fds = Path("/proc/self/fd")
    return len(list(fds.iterdir())) if fds.is_dir() else None


def serve_file(path):
    """A script serving the file at ``path`` whatever is asked."""

    def script(server, conn):
        receive_request(server, conn)
        data = path.read_bytes()
        conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)

    return script


def test_no_thread_or_connection_is_left_after_a_deadline(
    real_data_dir, scripted, monkeypatch, tmp_path, short_deadline
):
    gc.collect()  # what earlier tests left for the GC to close, before the count
    threads, descriptors = other_threads(), open_descriptors()
    good = scripted(serve_file(real_data_dir / "mnist" / f"{LABELS}.gz"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)  # a socket left for the GC to close
        for script in [trickle_head(0), trickle_head(STATUS_LINE), say_nothing]:
            slow = scripted(script)
            with pytest.raises(DataError, match="the server is too slow"):
                ds._download("mnist", LABELS, tmp_path, [slow.url()], False, [])
            slow.close()
        ds._download("mnist", LABELS, tmp_path, [good.url()], False, [])  # no deadline reached
        good.close()
        gc.collect()
    assert not other_threads() - threads, [t.name for t in other_threads() - threads]
    # None more (fewer, where something an earlier test opened closed meanwhile: a run that
    # had this test start beside three busy processes counted 14 descriptors before, 13 after).
    assert open_descriptors() <= descriptors
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
