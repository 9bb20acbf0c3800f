"""Saved models: round trips, across backends and processes, and damaged or tampered files."""

import json
import os
import re
import struct
import subprocess
import sys
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import MLPClassifier
from fastnn.backends import get_backend
from fastnn.core.model import init_params
from fastnn.files.persist import ModelFileError, read_model, save_model

rng = np.random.default_rng(0)
X = rng.integers(0, 256, (150, 30), dtype=np.uint8)  # uint8 pixels, like MNIST
y = X[:, :10].argmax(axis=1) % 3


def numba_available() -> bool:
    try:
        get_backend("numba")
    except ValueError:
        return False
    return True


def fit(labels=None, **params) -> MLPClassifier:
    labels = np.array([0, 1, 2]) if labels is None else labels
    defaults = dict(hidden_layer_sizes=8, backend="numpy", max_iter=2, random_state=0)
    return MLPClassifier(**{**defaults, **params}).fit(X, labels[y])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.npz"
    fit().save(path)
    return path


@pytest.mark.parametrize(
    "labels",
    [np.array([-3, 7, 100]), np.array(["cat", "dog", "emu"]), np.array([1.0, 5.0, -2.0])],
)
def test_round_trip(tmp_path, labels):
    model = fit(labels, dtype="float64", activation="leaky_relu", learning_rate_init=0.05)
    model.save(tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    assert loaded.get_params() == model.get_params()
    assert loaded.classes_.tolist() == model.classes_.tolist()
    assert loaded.classes_.dtype.kind == labels.dtype.kind  # ints stay ints, strings strings
    for a, b in zip(
        loaded.coefs_ + loaded.intercepts_, model.coefs_ + model.intercepts_, strict=True
    ):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.n_features_in_ == 30 and loaded.n_iter_ == model.n_iter_ == 2
    assert loaded.loss_curve_ == model.loss_curve_ and loaded.t_ == model.t_
    assert loaded.partial_fit(X, labels[y]).n_iter_ == 3  # ready to train on


def test_save_model_as_the_command_line_does(tmp_path):
    params = init_params(30, 6, 10, seed=1)
    config = {"hidden": 6, "lr": 0.1, "seed": np.int64(3), "data": tmp_path}
    scores = {"dev_accuracy": 0.91, "test_accuracy": None, "train_accuracy": float("nan")}
    path = tmp_path / "cli-model"  # no suffix: written exactly where asked
    save_model(path, params, activation="relu", classes=range(10), config=config, scores=scores)
    assert os.listdir(tmp_path) == ["cli-model"]
    header = read_model(path).header
    assert header["fastnn_version"] == fastnn.__version__ and header["format_version"] == 2
    assert header["architecture"] == {"n_in": 30, "hidden": [6], "n_out": 10}
    assert header["classes"] == {"kind": "int", "values": list(range(10))}
    assert header["config"] == {"hidden": 6, "lr": 0.1, "seed": 3, "data": str(tmp_path)}
    assert header["scores"] == {"dev_accuracy": 0.91, "test_accuracy": None, "train_accuracy": None}
    model = fastnn.load(path)
    assert model.hidden_layer_sizes == (6,) and model.activation == "relu"
    expected = get_backend("numpy").predict_proba(params, X).argmax(axis=1)
    np.testing.assert_array_equal(model.set_params(backend="numpy").predict(X), expected)


def test_saving_is_atomic(tmp_path, saved):
    path = tmp_path / "model.npz"
    path.write_bytes(saved.read_bytes())
    params = read_model(saved).params
    with pytest.raises(ValueError, match="config and scores must be JSON-serialisable"):
        save_model(path, params, activation="relu", classes=[0, 1, 2], config={"x": object()})
    assert path.read_bytes() == saved.read_bytes() and os.listdir(tmp_path) == ["model.npz"]


def test_save_to_a_path_it_cannot_write_says_why_and_writes_nothing(tmp_path):
    """As the command's --save and to_onnx: named in the message, nothing left behind (the
    folder's case raised IsADirectoryError naming the temporary file)."""
    model = fit()
    (tmp_path / "a-file").write_text("kept")
    cases = {
        tmp_path: "is a folder; give a file name",
        tmp_path / "a-file" / "model.npz": f"{tmp_path / 'a-file'} is a file, so no folder can be "
        "made inside it",
    }
    for path, problem in cases.items():
        with pytest.raises(ValueError, match=re.escape(f"model file {path}: {problem}")):
            model.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]
    assert (tmp_path / "a-file").read_text() == "kept"


def _writer_in_the_middle_of_a_save(path):
    """A process that has written its temporary file for `path` and not yet renamed it (a
    save takes long enough with a large model); (the process, its temporary file)."""
    code = (
        "import sys, time\n"
        "from fastnn.files.atomic import atomic_path\n"
        "with atomic_path(sys.argv[1], suffix='.npz') as tmp:\n"
        "    tmp.write_bytes(bytes(100_000))\n"
        "    print(tmp, flush=True)\n"
        "    time.sleep(60)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    return process, Path(process.stdout.readline().strip())


def test_a_save_removes_what_a_killed_save_left_and_only_that(tmp_path):
    path = tmp_path / "model.npz"
    killed, left = _writer_in_the_middle_of_a_save(path)
    running, in_use = _writer_in_the_middle_of_a_save(path)
    try:
        killed.kill()  # SIGKILL: nothing in the process runs, so its temporary file stays
        killed.wait()
        # A temporary file of another machine, in a folder both share: its writer may run.
        elsewhere = tmp_path / f".model.npz.{killed.pid}@another-machine.abcd1234.npz"
        elsewhere.write_bytes(b"")
        assert left.is_file() and left.name.startswith(".model.npz.")
        fit().save(path)
        assert not left.exists(), "the killed save's temporary file is still there"
        assert in_use.is_file() and elsewhere.is_file()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            ["model.npz", in_use.name, elsewhere.name]
        )
    finally:
        running.kill()
        running.wait()


@pytest.mark.parametrize(
    ("classes", "scores", "message"),
    [
        ([0, 1], None, "classes must list the network's 3 labels"),
        ([2, 1, 0], None, "sorted and unique"),
        ([0, "a", 1.5], None, "all ints, all floats, all strings or all bools"),
        ([0, 1, 2], {"dev_accuracy": "high"}, "scores must be numbers or None; got 'high'"),
    ],
)
def test_save_rejects_bad_classes_or_scores(tmp_path, classes, scores, message):
    params = init_params(4, 3, 3)
    with pytest.raises(ValueError, match=message):
        save_model(tmp_path / "m.npz", params, activation="relu", classes=classes, scores=scores)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("trained_with", "other"), [("numpy", "numba"), ("numba", "numpy")])
def test_other_backend_in_a_new_process_predicts_the_same(tmp_path, trained_with, other):
    if not numba_available():
        pytest.skip("the numba backend is not available yet")
    model = fit(backend=trained_with, max_iter=3)
    model.save(tmp_path / "m.npz")
    np.save(tmp_path / "X.npy", X)
    code = (
        "import sys, numpy as np, fastnn\n"
        "model = fastnn.load(sys.argv[1]).set_params(backend=sys.argv[2])\n"
        "np.save(sys.argv[4], model.predict_proba(np.load(sys.argv[3])))\n"
    )
    args = [tmp_path / "m.npz", other, tmp_path / "X.npy", tmp_path / "P.npy"]
    subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, timeout=300)
    proba = np.load(tmp_path / "P.npy")
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X))


# -- damaged and tampered files ----------------------------------------------------------------


def parts(path):
    """The header (as a dict) and the arrays of a model file."""
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    return json.loads(arrays.pop("header").tobytes()), arrays


def write(path, header, arrays):
    if isinstance(header, dict):
        header = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(path, header=header, **arrays)


def expect_error(path, message):
    with pytest.raises(ModelFileError, match=message) as caught:
        fastnn.load(path)
    assert str(path) in str(caught.value)


def change(where, key, value):
    def apply(header, arrays):
        target = {"header": header, "arrays": arrays}[where]
        *route, last = key.split(".")
        for step in route:
            target = target[step]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value(target.get(last)) if callable(value) else value

    return apply


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (change("arrays", "b2", KeyError), r"missing array\(s\) \['b2'\]"),
        (change("arrays", "evil", np.zeros(2)), r"unexpected array\(s\) \['evil'\]"),
        (change("header", "architecture.hidden", [9]),
         r"'W1' is float32 with shape \(30, 8\), but the header says float32 with shape \(30, 9\)"),
        (change("arrays", "W2", lambda W: W.T.copy()), r"'W2' is float32 with shape \(3, 8\)"),
        (change("arrays", "b1", lambda b: b.astype(np.float64)), "array 'b1' is float64"),
        (change("arrays", "W1", lambda W: np.where(W > 0, np.inf, W)), "'W1' holds NaN or inf"),
        (change("header", "format_version", 3), "model format version 3 is not supported"),
        (change("header", "format_version", "1"), "model format version '1' is not supported"),
        (change("header", "format", "keras"), "not a fastnn model file"),
        # The weights and the Adam state's two moments: 3 x (10**9 x 8 + 8 + 8 x 3 + 3) x 4.
        (change("header", "architecture.n_in", 10**9), "needs 96000000420 bytes of arrays but"),
        (change("header", "architecture.n_out", True), "'n_out' must be a positive whole number"),
        (change("header", "activation", "tanh"), "header field 'activation' must be"),
        (change("header", "dtype", "float16"), "header field 'dtype' must be"),
        (change("header", "config", KeyError), "the header has no 'config' field"),
        (change("header", "scores", {"dev": "high"}), "header field 'scores' must be"),
        (change("header", "extra", 1), r"unexpected header field\(s\) \['extra'\]"),
        (change("header", "classes.values", [0, 1]), "2 class labels for 3 outputs"),
        (change("header", "classes.values", [2, 1, 0]), "sorted, unique and finite"),
        (change("header", "classes.values", ["0", "1", "2"]), "must be a list of int labels"),
        (change("header", "classes.kind", "set"), "header field 'kind' must be one of"),
        (change("header", "output", "sigmoid"), "header field 'output' must be one of"),
        (change("header", "output", "identity"), "'classes' must be null for identity outputs"),
    ],
)  # fmt: skip
def test_tampered_contents(tmp_path, saved, tamper, message):
    header, arrays = parts(saved)
    tamper(header, arrays)
    write(tmp_path / "bad.npz", header, arrays)
    expect_error(tmp_path / "bad.npz", message)


@pytest.mark.parametrize(
    ("raw_header", "message"),
    [
        (np.frombuffer(b"\xff{not json", dtype=np.uint8), "the header is not valid JSON"),
        (np.frombuffer(b'{"format": NaN}', dtype=np.uint8), "the header is not valid JSON"),
        (np.zeros(3, dtype=np.float32), "the header must be 1-D uint8"),
        (np.frombuffer(b"[1, 2]", dtype=np.uint8), "not a fastnn model file"),
    ],
)
def test_unreadable_headers(tmp_path, saved, raw_header, message):
    write(tmp_path / "bad.npz", raw_header, parts(saved)[1])
    expect_error(tmp_path / "bad.npz", message)


class Exploit:
    """Unpickling this creates a directory: proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize("name", ["header", "W1"])
def test_pickled_object_arrays_are_refused_not_run(tmp_path, saved, name):
    header, arrays = parts(saved)
    marker = tmp_path / "code-ran"
    payload = np.array([Exploit(marker)], dtype=object)
    if name == "header":
        write(tmp_path / "bad.npz", payload, arrays)
    else:
        write(tmp_path / "bad.npz", header, {**arrays, name: payload})
    expect_error(tmp_path / "bad.npz", rf"array '{name}' holds Python objects")
    assert not marker.exists()


def test_damaged_files(tmp_path, saved):
    data = saved.read_bytes()
    cases = {
        "truncated.npz": (data[: len(data) // 2], "damaged or truncated model file"),
        "random.npz": (rng.bytes(2000), r"not a fastnn model file \(it is not a .npz archive\)"),
        "zip-like.npz": (b"PK\x03\x04" + rng.bytes(2000), "damaged or truncated model file"),
        "empty.npz": (b"", "not a .npz archive"),
    }
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF  # inside W1's data: the zip checksum catches it
    cases["flipped.npz"] = (bytes(flipped), "damaged or truncated model file")
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        expect_error(tmp_path / name, message)
    np.save(tmp_path / "single.npy", np.zeros(3))
    expect_error(tmp_path / "single.npy", "not a .npz archive")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as archive:
        archive.writestr("README.txt", "hello")
    expect_error(tmp_path / "other.npz", "not a fastnn model file .*not .npy arrays")
    np.savez(tmp_path / "arrays.npz", X=np.zeros((2, 3)), y=np.arange(2))  # a user's own data
    expect_error(
        tmp_path / "arrays.npz",
        r"arrays.npz: not a fastnn model file \(a \.npz archive of other arrays: it has no "
        r"'header' array\); fastnn reads the \.npz files that a model's save\(\) and "
        r"python -m fastnn\.train --save write$",
    )
    expect_error(tmp_path / "missing.npz", "no such file")
    expect_error(tmp_path, "is a directory")


# -- damage that reaches zipfile's and numpy's parsers; files that ask for too much memory -------

MIB = 1 << 20
GIB = 1 << 30
MEMORY_LIMIT = 8 * MIB  # what a refused file may make the loader allocate in these tests


@pytest.fixture(scope="module")
def wide(tmp_path_factory):
    """A model whose W1 member is larger than zipfile's 4 kB read-ahead: reading W1's .npy header
    leaves the rest unread, so zipfile's CRC-32 check (made at a member's end) cannot catch a
    damaged header before numpy parses it."""
    path = tmp_path_factory.mktemp("wide") / "model.npz"
    save_model(path, init_params(784, 16, 10, seed=0), activation="relu", classes=range(10))
    return path


def peak_memory(action):
    """The most memory (bytes, as tracemalloc sees it: Python objects and numpy arrays) that
    action() allocates beyond what was allocated when it started."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        action()
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def expect_error_in_bounded_memory(path, message):
    assert peak_memory(lambda: expect_error(path, message)) < MEMORY_LIMIT


def members(path):
    """A stored (uncompressed) model file's members: name -> (crc, contents)."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename: (info.CRC, archive.read(info)) for info in archive.infolist()}


def build_zip(entries):
    """A zip archive from (name, method, crc, declared size, stored bytes) entries, written byte by
    byte so that a test can declare sizes and streams zipfile's writer would never produce."""
    body, directory = b"", b""
    for name, method, crc, size, stored in entries:
        encoded = name.encode()
        # version needed, flags, method, time, date (1980-01-01), CRC-32, stored and real size
        fields = struct.pack("<5H3I", 20, 0, method, 0, 0x21, crc, len(stored), size)
        directory += (
            b"PK\x01\x02"
            + struct.pack("<H", 20)  # version made by
            + fields
            # name length, extra, comment, disk, internal and external attributes, offset
            + struct.pack("<5H2I", len(encoded), 0, 0, 0, 0, 0, len(body))
            + encoded
        )
        body += b"PK\x03\x04" + fields + struct.pack("<2H", len(encoded), 0) + encoded + stored
    count = len(entries)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, count, count, len(directory), len(body), 0)
    return body + directory + end


def with_member(model, name, method, crc, size, stored):
    """The model file's bytes with member `name` replaced."""
    return build_zip(
        [
            (n, method, crc, size, stored) if n == name else (n, zipfile.ZIP_STORED, c, len(b), b)
            for n, (c, b) in members(model).items()
        ]
    )


def deflated(head, zeros):
    """A raw deflate stream of `head` followed by `zeros` zero bytes (a multiple of 1 MiB), made
    without ever holding them: a full flush makes the next output independent of what came before,
    so the stream for one MiB of zeros (about 1 kB) can be repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    start = compressor.compress(head) + compressor.flush(zlib.Z_FULL_FLUSH)
    mib = compressor.compress(bytes(MIB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return start + mib * (zeros // MIB) + compressor.flush()


def crc_with_zeros(head, zeros):
    crc, mib = zlib.crc32(head), bytes(MIB)
    for _ in range(zeros // MIB):
        crc = zlib.crc32(mib, crc)
    return crc


def central_entry(data, name):
    """Offset of member `name`'s entry in the zip's central directory (the last copy of its name,
    46 bytes into the entry)."""
    return data.rindex(name.encode()) - 46


def npy_start(data, name):
    """Offset of member `name`'s .npy contents (stored right after its name in its local header)."""
    return data.index(b"\x93NUMPY", data.index(name.encode()))


def flip(data, offset, mask):
    damaged = bytearray(data)
    damaged[offset] ^= mask
    return bytes(damaged)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        # W1's .npy header length 0x76 -> 0x36: numpy parses a cut-off header (tokenize.TokenError)
        (lambda d: flip(d, npy_start(d, "W1.npy") + 8, 0x40), "damaged or truncated model file"),
        # '<f4' -> ',f4': numpy's dtype parser raises SyntaxError
        (lambda d: flip(d, d.index(b"'<f4'", npy_start(d, "W1.npy")) + 1, 0x10), "damaged"),
        # central directory, "version needed to extract" 4.5 -> 10.9: NotImplementedError
        (lambda d: flip(d, central_entry(d, "W1.npy") + 6, 0x40), "damaged or truncated"),
        # central directory, "encrypted" flag: RuntimeError (password required)
        (lambda d: flip(d, central_entry(d, "W1.npy") + 8, 0x01), "damaged or truncated"),
        # central directory, compression method 0 -> 1 (shrink): NotImplementedError
        (lambda d: flip(d, central_entry(d, "W1.npy") + 10, 0x01), "zip compression method 1"),
    ],
    ids=["npy-header-length", "npy-dtype", "zip-version", "zip-encrypted", "zip-method"],
)
def test_damage_that_trips_zipfile_or_numpy(tmp_path, wide, damage, message):
    (tmp_path / "bad.npz").write_bytes(damage(wide.read_bytes()))
    expect_error(tmp_path / "bad.npz", message)


def test_npy_header_claiming_a_gibibyte(tmp_path, saved):
    # A .npy version 2.0 preamble announcing a 1 GiB header, which the deflated member holds:
    # numpy reads a header whole before checking its length.
    head = b"\x93NUMPY\x02\x00" + struct.pack("<I", GIB)
    data = with_member(
        saved, "header.npy", zipfile.ZIP_DEFLATED, crc_with_zeros(head, GIB), len(head) + GIB,
        deflated(head, GIB),
    )  # fmt: skip
    (tmp_path / "bad.npz").write_bytes(data)
    assert len(data) < 2 * MIB
    expect_error_in_bounded_memory(tmp_path / "bad.npz", "1073741824-byte .npy header")


@pytest.mark.parametrize("name", ["header.npy", "W1.npy"])
def test_member_inflating_to_a_gibibyte(tmp_path, saved, name):
    # The member's own contents, then 1 GiB of zeros after them, all declared.
    _, contents = members(saved)[name]
    crc, size = crc_with_zeros(contents, GIB), len(contents) + GIB
    data = with_member(saved, name, zipfile.ZIP_DEFLATED, crc, size, deflated(contents, GIB))
    (tmp_path / "bad.npz").write_bytes(data)
    assert len(data) < 2 * MIB
    after_preamble = size - 128  # numpy's .npy preamble is 128 bytes here
    expect_error_in_bounded_memory(tmp_path / "bad.npz", f"declares {after_preamble} bytes of data")


def test_bounded_reads_bound_decompression(tmp_path, saved):
    # What the loader's size checks rest on: zipfile inflates a deflated member only as far as a
    # read asks, and returns no more than the member's declared size. Here W1's stream inflates
    # to 1 GiB beyond W1 but declares (and checksums) W1 only: it reads as W1, and the file
    # loads, both in bounded memory. (An unbounded read() would inflate the whole GiB first.)
    crc, contents = members(saved)["W1.npy"]
    data = with_member(
        saved, "W1.npy", zipfile.ZIP_DEFLATED, crc, len(contents), deflated(contents, GIB)
    )
    (tmp_path / "m.npz").write_bytes(data)
    read = []
    with zipfile.ZipFile(tmp_path / "m.npz") as archive, archive.open("W1.npy") as member:
        assert peak_memory(lambda: read.append(member.read(len(contents) + MIB))) < MEMORY_LIMIT
    assert read == [contents]
    loaded = []
    assert peak_memory(lambda: loaded.append(read_model(tmp_path / "m.npz"))) < MEMORY_LIMIT
    np.testing.assert_array_equal(loaded[0].params.coefs[0], read_model(saved).params.coefs[0])


@pytest.mark.parametrize("method", [zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
def test_members_zipfile_inflates_unboundedly_are_refused(tmp_path, saved, method):
    # For bzip2 and lzma, zipfile inflates each compressed chunk it reads whole before cutting it
    # to the declared size: a few hundred bytes can become gigabytes before any check applies.
    # Here W1 is followed by 16 MiB of zeros.
    path = tmp_path / "bad.npz"
    with zipfile.ZipFile(path, "w", compression=method) as archive:
        for name, (_, contents) in members(saved).items():
            with archive.open(name, "w") as member:
                member.write(contents)
                for _ in range(16 if name == "W1.npy" else 0):
                    member.write(bytes(MIB))
    expect_error_in_bounded_memory(path, f"zip compression method {method}")


def test_long_class_labels_are_refused_before_numpy_pads_them(tmp_path, saved):
    # numpy pads every string to the longest: 200 labels, one of 100,000 characters, would make
    # an 80 MB array from a 100 kB header.
    header, arrays = parts(saved)
    labels = sorted([str(i) for i in range(199)] + ["x" * 100_000])
    header["architecture"]["n_out"] = 200
    header["classes"] = {"kind": "str", "values": labels}
    write(tmp_path / "bad.npz", header, arrays)
    expect_error_in_bounded_memory(tmp_path / "bad.npz", "class labels are too long")


# -- output kinds ---------------------------------------------------------------------------------


def test_a_file_from_before_the_output_kinds_loads_as_softmax(tmp_path, saved):
    header, arrays = parts(saved)
    assert header.pop("output") == "softmax"
    write(tmp_path / "old.npz", header, arrays)
    old, model = fastnn.load(tmp_path / "old.npz"), fastnn.load(saved)
    assert type(old) is MLPClassifier and old.out_activation_ == "softmax"
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))


def test_a_regressor_round_trip_records_its_kind_and_goes_on_training(tmp_path):
    Xf = rng.normal(size=(80, 6))
    Y = np.stack([Xf[:, 0] - Xf[:, 1], Xf[:, 2] * 0.5], axis=1)
    params = dict(hidden_layer_sizes=(8, 5), backend="numpy", max_iter=3, random_state=1)
    model = fastnn.MLPRegressor(**params, solver="sgd", momentum=0.9).fit(Xf, Y)
    model.save(tmp_path / "r.npz")
    header, _ = parts(tmp_path / "r.npz")
    assert header["output"] == "identity" and header["classes"] is None
    loaded = fastnn.load(tmp_path / "r.npz")
    assert type(loaded) is fastnn.MLPRegressor and loaded.out_activation_ == "identity"
    assert loaded.get_params() == model.get_params() and loaded.n_outputs_ == 2
    assert loaded.loss_curve_ == model.loss_curve_ and loaded.loss_ == model.loss_
    assert not hasattr(loaded, "classes_")
    np.testing.assert_array_equal(loaded.predict(Xf), model.predict(Xf))
    for m in (model, loaded):  # the optimizer's state and the order go on alike
        m.partial_fit(Xf, Y)
    np.testing.assert_array_equal(loaded.predict(Xf), model.predict(Xf))


def test_a_multilabel_round_trip(tmp_path):
    Y = (X[:, :4] > 128).astype(int)
    model = MLPClassifier(hidden_layer_sizes=8, backend="numpy", max_iter=2, random_state=0)
    model.fit(X, Y).save(tmp_path / "m.npz")
    header, _ = parts(tmp_path / "m.npz")
    assert header["output"] == "logistic"
    assert header["classes"] == {"kind": "int", "values": [0, 1, 2, 3]}
    loaded = fastnn.load(tmp_path / "m.npz")
    assert type(loaded) is MLPClassifier and loaded.out_activation_ == "logistic"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
