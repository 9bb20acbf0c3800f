"""ONNX export (fastnn.export): the file runs in onnxruntime and gives fastnn's answers, for every
kind of network, input and label; python -m fastnn.export end to end; and every way it can fail,
each with one message and nothing half-written.

Probabilities are compared within TOLERANCE_EPS units of the model's float rounding (eps): the
runtime sums each matrix product in another order than NumPy's BLAS (and has its own exp), so
a logit may differ in its last bits, by about eps times the square root of the number of terms
(784 here); a probability moves by at most half as much as the logits do (softmax's and the
sigmoid's slopes are at most 1/2 and 1/4). Observed: about 2 eps. The pixels are scaled in the
graph to the same numbers fastnn scales them to, so nothing else may differ.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx_helpers import require_runtime

import fastnn
from fastnn.export import command
from fastnn.export import onnx as export
from fastnn.files.persist import NOT_A_MODEL

TOLERANCE_EPS = 64
N_FEATURES = 784  # MNIST's 28 x 28


@pytest.fixture
def ort():
    return require_runtime()


def run_onnx(ort, path: Path, X: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the ONNX file at `path` for the input X, by name."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(None, {"X": X}), strict=True))


def tolerance(dtype: np.dtype) -> float:
    return TOLERANCE_EPS * float(np.finfo(dtype).eps)


def digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-shaped rows: uint8 (n, 784), each one of 10 fixed random images (the same for
    every seed) with noise, labelled by which; a few epochs learn them, so no two classes'
    probabilities come close enough for the runtime's rounding to swap them."""
    templates = np.random.default_rng(0).integers(0, 256, (10, N_FEATURES))
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    X = np.clip(templates[y] + rng.normal(0, 80, (n, N_FEATURES)), 0, 255)
    return X.astype(np.uint8), y


X_TRAIN, Y_TRAIN = digits(300, seed=1)
X_NEW, _ = digits(200, seed=2)


def trained(y=Y_TRAIN, X=X_TRAIN, **params) -> fastnn.MLPClassifier:
    """A small network, a few epochs on the NumPy backend (nothing to compile)."""
    defaults = dict(hidden_layer_sizes=16, backend="numpy", max_iter=3, random_state=0)
    return fastnn.MLPClassifier(**{**defaults, **params}).fit(X, y)


def assert_predicts_as_fastnn(ort, model: fastnn.MLPClassifier, path: Path, X, X_onnx=None):
    out = run_onnx(ort, path, X if X_onnx is None else X_onnx)
    expected = model.predict_proba(X)
    assert out["probabilities"].dtype == expected.dtype
    np.testing.assert_allclose(
        out["probabilities"], expected, rtol=0, atol=tolerance(expected.dtype)
    )
    np.testing.assert_array_equal(out["label"], model.predict(X))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("hidden", [(16,), (16, 8)], ids=["one-hidden", "two-hidden"])
def test_exported_network_gives_fastnns_labels_and_probabilities(
    ort, tmp_path, dtype, activation, hidden
):
    model = trained(hidden_layer_sizes=hidden, activation=activation, dtype=dtype)
    path = tmp_path / "model.onnx"
    proto = model.to_onnx(path)  # 784 features: uint8 pixels by default
    assert proto.graph.input[0].type.tensor_type.elem_type == 2  # TensorProto.UINT8
    assert_predicts_as_fastnn(ort, model, path, X_NEW)
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Gemm") == len(hidden) + 1
    assert ("LeakyRelu" in ops or "Max" in ops) == (activation == "leaky_relu")


def test_float_input_takes_the_models_dtype_as_it_is(ort, tmp_path):
    """A model fitted on floats: input="floats" takes them unscaled, and a network of other
    than 784 features takes floats by default (pixels if image_shape says its rows are
    images)."""
    X = X_TRAIN.astype(np.float64) / 255
    model = trained(X=X, dtype="float64")
    proto = model.to_onnx(tmp_path / "floats.onnx", input="floats")
    assert {p.key: p.value for p in proto.metadata_props}["fastnn_input"] == "floats"
    X_new = X_NEW.astype(np.float64) / 255
    assert_predicts_as_fastnn(ort, model, tmp_path / "floats.onnx", X_new)
    # The same network taking pixels scales them in the graph to these very floats.
    model.to_onnx(tmp_path / "pixels.onnx", input="pixels")
    assert_predicts_as_fastnn(ort, model, tmp_path / "pixels.onnx", X_new, X_onnx=X_NEW)

    narrow = trained(X=X[:, :20], dtype="float32")
    proto = narrow.to_onnx(tmp_path / "narrow.onnx")
    assert {p.key: p.value for p in proto.metadata_props}["fastnn_input"] == "floats"
    assert_predicts_as_fastnn(
        ort, narrow, tmp_path / "narrow.onnx", X_new[:, :20].astype(np.float32)
    )
    # Rows said to be images of another shape take pixels.
    proto = export.onnx_model(narrow.set_params(image_shape=(4, 5)))
    assert {p.key: p.value for p in proto.metadata_props}["fastnn_input"] == "pixels"


@pytest.mark.parametrize(
    "names",
    [
        np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]),
        np.array([-7, 0, 3, 10, 11, 12, 50, 99, 1000, 2**40]),
    ],
    ids=["strings", "integers"],
)
def test_label_output_holds_the_class_labels(ort, tmp_path, names):
    model = trained(y=names[Y_TRAIN])
    model.to_onnx(tmp_path / "model.onnx")
    out = run_onnx(ort, tmp_path / "model.onnx", X_NEW)
    assert out["label"].tolist() == model.predict(X_NEW).tolist()
    assert len(set(out["label"].tolist())) > 5  # the labels of many classes, not one


def test_labels_of_python_objects_take_the_type_they_share(ort, tmp_path):
    """Whole numbers held as Python objects (as pandas may give them) become int64 labels;
    labels no ONNX tensor can hold are refused."""
    model = trained(y=Y_TRAIN.astype(object))
    assert model.classes_.dtype == object
    proto = model.to_onnx(tmp_path / "model.onnx")
    assert proto.graph.output[0].type.tensor_type.elem_type == 7  # TensorProto.INT64
    out = run_onnx(ort, tmp_path / "model.onnx", X_NEW)
    assert out["label"].tolist() == model.predict(X_NEW).tolist()
    model.classes_ = model.classes_.astype(complex)
    with pytest.raises(ValueError, match="class labels of type complex128 .* have no ONNX"):
        model.to_onnx(tmp_path / "complex.onnx")
    assert not (tmp_path / "complex.onnx").exists()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_multilabel_classifier_exports_its_sigmoids_and_indicators(ort, tmp_path, dtype):
    tags = np.stack([Y_TRAIN % 2, Y_TRAIN < 5, Y_TRAIN % 3 == 0], axis=1).astype(np.int64)
    model = trained(tags, dtype=dtype, activation="leaky_relu", max_iter=10)
    assert model.out_activation_ == "logistic"
    model.to_onnx(tmp_path / "multilabel.onnx")
    out = run_onnx(ort, tmp_path / "multilabel.onnx", X_NEW)
    expected = model.predict_proba(X_NEW)
    assert out["probabilities"].shape == (len(X_NEW), 3)
    np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=tolerance(dtype))
    # No probability so near 0.5 that the runtime's rounding could put it on the other side:
    assert np.abs(expected - 0.5).min() > tolerance(dtype)
    assert out["label"].dtype == np.int64
    np.testing.assert_array_equal(out["label"], model.predict(X_NEW))
    assert 0 < out["label"].mean() < 1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_regressor_exports_its_outputs(ort, tmp_path, dtype):
    targets = np.stack([Y_TRAIN / 9.0, np.sin(Y_TRAIN)], axis=1)
    model = fastnn.MLPRegressor(
        hidden_layer_sizes=16, backend="numpy", max_iter=5, random_state=0, dtype=dtype
    ).fit(X_TRAIN, targets)
    proto = model.to_onnx(tmp_path / "regression.onnx")
    assert [output.name for output in proto.graph.output] == ["variable"]
    out = run_onnx(ort, tmp_path / "regression.onnx", X_NEW)
    expected = model.predict(X_NEW)
    assert out["variable"].shape == expected.shape == (len(X_NEW), 2)
    assert out["variable"].dtype == np.dtype(dtype)
    scale = np.abs(expected).max()  # not probabilities: the tolerance scales with the values
    np.testing.assert_allclose(out["variable"], expected, rtol=0, atol=scale * tolerance(dtype))


def test_the_file_declares_what_onnxruntime_1_18_reads():
    """Opset 17 and IR version 8, which onnxruntime reads since 1.13 (the extra asks for 1.18;
    files of every kind exported here were run on onnxruntime 1.18.0 by hand)."""
    require_runtime()
    proto = export.onnx_model(trained())
    assert proto.ir_version == 8
    assert [(o.domain, o.version) for o in proto.opset_import] == [("", 17)]


def test_what_the_graph_cannot_hold_is_refused(tmp_path, monkeypatch):
    require_runtime()
    other_kind, other_activation = trained(), trained()
    other_kind.out_activation_ = "tanh"
    other_activation.activation = "elu"
    with pytest.raises(ValueError, match="cannot export the output kind 'tanh'.*softmax"):
        export.write_onnx(other_kind, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="hidden activation 'elu'.*relu, leaky_relu"):
        export.write_onnx(other_activation, tmp_path / "m.onnx")
    with pytest.raises(ValueError, match="input must be one of pixels, floats; got 'bytes'"):
        trained().to_onnx(tmp_path / "m.onnx", input="bytes")
    monkeypatch.setattr(export, "MAX_WEIGHT_BYTES", 1000)
    with pytest.raises(ValueError, match="more than the 2 GiB one ONNX file can hold"):
        trained().to_onnx(tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_unfitted_model_and_unwritable_paths_are_refused(tmp_path):
    require_runtime()
    with pytest.raises(fastnn.estimator.NotFittedError, match="not fitted yet"):
        fastnn.MLPClassifier().to_onnx(tmp_path / "m.onnx")
    model = trained()
    with pytest.raises(ValueError, match="ONNX file .*: is a folder; give a file name"):
        model.to_onnx(tmp_path)
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, so no folder can be made inside it"):
        model.to_onnx(tmp_path / "file" / "m.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch, capsys):
    require_runtime()
    fastnn_file, target = tmp_path / "model.npz", tmp_path / "model.onnx"
    trained().save(fastnn_file)
    target.write_bytes(b"the previous export")

    def half_then_disk_full(self, data):
        with open(self, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", half_then_disk_full)
    assert command.main([str(fastnn_file), str(target)]) == 1
    err = capsys.readouterr().err
    assert err == f"fastnn.export: error: could not write {target}: No space left on device\n"
    assert target.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz", "model.onnx"]


def test_without_onnx_fastnn_works_and_export_says_what_to_install(tmp_path):
    """In a process where onnx and onnxruntime cannot be imported."""
    script = """
import sys
sys.modules["onnx"] = sys.modules["onnxruntime"] = None  # as if not installed
import numpy as np
import fastnn
from fastnn.export import command

X = np.random.default_rng(0).integers(0, 256, (40, 784), dtype=np.uint8)
model = fastnn.MLPClassifier(8, backend="numpy", max_iter=1).fit(X, np.arange(40) % 2)
assert model.predict(X).shape == (40,)
model.save("m.npz")
try:
    model.to_onnx("m.onnx")
except ModuleNotFoundError as exc:
    print(exc)
sys.exit(command.main(["m.npz", "m.onnx"]))
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    install = 'pip install "fastnn-mlp[onnx]"'
    assert result.returncode == 1, result.stderr
    assert (
        result.stdout.startswith("exporting to ONNX needs the onnx package")
        and install in result.stdout
    )
    assert result.stderr.startswith("fastnn.export: error: exporting to ONNX needs"), result.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_command_writes_the_file_that_predicts_as_the_saved_model(ort, tmp_path):
    model = trained(activation="leaky_relu")
    model.save(tmp_path / "model.npz")
    result = subprocess.run(
        [sys.executable, "-m", "fastnn.export", "model.npz", "model.onnx"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "wrote model.onnx: X uint8 (N, 784) -> label int64 (N), probabilities float (N, 10)\n"
    )
    assert_predicts_as_fastnn(
        ort, fastnn.load(tmp_path / "model.npz"), tmp_path / "model.onnx", X_NEW
    )


def test_command_input_option(ort, tmp_path, capsys):
    saved, out = tmp_path / "model.npz", tmp_path / "model.onnx"
    trained().save(saved)
    assert command.main([str(saved), str(out), "--input", "floats"]) == 0
    assert "X float (N, 784)" in capsys.readouterr().out
    floats = X_NEW.astype(np.float32) / 255
    assert_predicts_as_fastnn(ort, fastnn.load(saved), out, floats)


def test_command_errors(tmp_path, capsys):
    """An unusable model file is status 1 with fastnn.load's message; a bad OUT status 2."""
    require_runtime()
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    for model, said in [
        ("missing.npz", "missing.npz: no such file"),
        ("bad.npz", f"bad.npz: {NOT_A_MODEL.format('it is not a .npz archive')}"),
    ]:
        assert command.main([str(tmp_path / model), str(tmp_path / "m.onnx")]) == 1
        assert capsys.readouterr().err == f"fastnn.export: error: {tmp_path / said}\n"
    with pytest.raises(SystemExit) as exit_:
        command.main([str(tmp_path / "bad.npz"), str(tmp_path)])
    assert exit_.value.code == 2
    assert "ONNX file" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz"]
