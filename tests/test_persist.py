"""Saved models: round trips, across backends and processes, and damaged or tampered files."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import MLPClassifier
from fastnn.backends import get_backend
from fastnn.model import init_params
from fastnn.persist import ModelFileError, read_model, save_model

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
    assert loaded.n_features_in_ == 30 and loaded.n_iter_ == 0
    assert loaded.partial_fit(X, labels[y]).n_iter_ == 1  # ready to train on


def test_save_model_as_the_command_line_does(tmp_path):
    params = init_params(30, 6, 10, seed=1)
    config = {"hidden": 6, "lr": 0.1, "seed": np.int64(3), "data": tmp_path}
    scores = {"dev_accuracy": 0.91, "test_accuracy": None, "train_accuracy": float("nan")}
    path = tmp_path / "cli-model"  # no suffix: written exactly where asked
    save_model(path, params, activation="relu", classes=range(10), config=config, scores=scores)
    assert os.listdir(tmp_path) == ["cli-model"]
    header = read_model(path).header
    assert header["fastnn_version"] == fastnn.__version__ and header["format_version"] == 1
    assert header["architecture"] == {"n_in": 30, "hidden": 6, "n_out": 10}
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
        (change("header", "architecture.hidden", 9),
         r"'W1' is float32 with shape \(30, 8\), but the header says float32 with shape \(30, 9\)"),
        (change("arrays", "W2", lambda W: W.T.copy()), r"'W2' is float32 with shape \(3, 8\)"),
        (change("arrays", "b1", lambda b: b.astype(np.float64)), "array 'b1' is float64"),
        (change("arrays", "W1", lambda W: np.where(W > 0, np.inf, W)), "'W1' holds NaN or inf"),
        (change("header", "format_version", 2), "model format version 2 is not supported"),
        (change("header", "format_version", "1"), "model format version '1' is not supported"),
        (change("header", "format", "keras"), "not a fastnn model file"),
        (change("header", "architecture.n_in", 10**9), "needs 32000000140 bytes of weights but"),
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
    expect_error(tmp_path / "other.npz", "entries that are not .npy arrays")
    expect_error(tmp_path / "missing.npz", "no such file")
    expect_error(tmp_path, "is a directory")
