"""python -m fastnn.predict: images, --json, bad inputs, a Kaggle CSV, and the end-to-end check
on real MNIST digits saved the way a person would save a drawing."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from drawn_digits import bar, paper_image, plumbing_model, ring
from PIL import Image

import fastnn
from fastnn import MLPClassifier
from fastnn.backends import BACKENDS, get_backend
from fastnn.predict.command import main
from fastnn.predict.images import load_digit


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A model on 784 features (meaningless weights: these tests check the plumbing), its file,
    and a folder with a PNG and a JPEG of a drawn digit."""
    folder = tmp_path_factory.mktemp("predict")
    model = plumbing_model()
    model.save(folder / "model.npz")
    Image.fromarray(paper_image(ring())).save(folder / "ring.png")
    Image.fromarray(paper_image(bar())).save(folder / "bar.jpg", quality=90)
    return model, folder


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_images_print_prediction_and_top3(toy, capsys):
    model, folder = toy
    code, out, err = run(capsys, folder / "model.npz", folder / "ring.png", folder / "bar.jpg")
    assert code == 0 and err == ""
    lines = out.splitlines()
    for line, name in zip(lines, ["ring.png", "bar.jpg"], strict=True):
        expected = model.predict(load_digit(folder / name)[None])[0]
        assert line.startswith(f"{folder / name}: {expected}  (top 3: {expected} 0.")


def test_json_lists_every_file_with_errors_for_bad_ones(toy, tmp_path, capsys):
    model, folder = toy
    (tmp_path / "notes.png").write_text("not an image")
    Image.fromarray(np.full((50, 50), 200, dtype=np.uint8)).save(tmp_path / "blank.png")
    inputs = [folder / "ring.png", tmp_path / "notes.png", tmp_path / "gone.jpg"]
    inputs += [tmp_path / "blank.png", folder / "bar.jpg"]
    code, out, err = run(capsys, folder / "model.npz", *inputs, "--json")
    assert code == 3 and err == ""
    results = json.loads(out)
    assert [r["file"] for r in results] == [str(p) for p in inputs]
    for result in results[1:4]:
        assert set(result) == {"file", "error"} and result["file"] in result["error"]
    assert "cannot read as an image" in results[1]["error"]
    assert "does not exist" in results[2]["error"] and "blank" in results[3]["error"]
    for result in results[0], results[4]:
        proba = model.predict_proba(load_digit(result["file"])[None])[0]
        top3 = [
            [int(model.classes_[i]), pytest.approx(float(proba[i]))]
            for i in proba.argsort()[::-1][:3]
        ]
        assert result["prediction"] == top3[0][0] and result["top3"] == top3
    # Without --json the failures are error lines on stderr, and the rest is still predicted.
    code, out, err = run(capsys, folder / "model.npz", *inputs)
    assert code == 3 and len(out.splitlines()) == 2 and len(err.splitlines()) == 3
    assert all(line.startswith("fastnn.predict: error: ") for line in err.splitlines())


def test_kaggle_csv_writes_a_submission(toy, tmp_path, capsys):
    model, folder = toy
    X = np.random.default_rng(1).integers(0, 256, (6, 784), dtype=np.uint8)
    header = ",".join(f"pixel{i}" for i in range(784))
    rows = [",".join(map(str, row)) for row in X]
    (tmp_path / "test.csv").write_text("\n".join([header, *rows]) + "\n")
    output = tmp_path / "out" / "submission.csv"
    code, out, _ = run(capsys, folder / "model.npz", tmp_path / "test.csv", "--output", output)
    assert code == 0 and "wrote 6 predictions" in out
    lines = output.read_text().splitlines()
    assert lines[0] == "ImageId,Label"
    assert lines[1:] == [f"{i},{label}" for i, label in enumerate(model.predict(X), 1)]
    assert os.listdir(output.parent) == ["submission.csv"]  # no temporary file left behind
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    code, out, _ = run(capsys, folder / "model.npz", tmp_path / "bad.csv", "--json")
    assert code == 3 and "error" in json.loads(out)[0]


def test_unusable_model_or_arguments(toy, tmp_path, capsys):
    _, folder = toy
    code, out, err = run(capsys, tmp_path / "nope.npz", folder / "ring.png")
    assert code == 1 and out == "" and "fastnn.predict: error:" in err and "no such file" in err
    (tmp_path / "junk.npz").write_bytes(b"junk")
    assert run(capsys, tmp_path / "junk.npz", folder / "ring.png")[0] == 1
    with pytest.raises(SystemExit) as caught:
        main([str(folder / "model.npz"), "a.csv", "b.csv"])
    assert caught.value.code == 2


def test_model_with_other_features_fails_per_input(tmp_path, toy, capsys):
    _, folder = toy
    model = MLPClassifier(4, backend="numpy", max_iter=1).fit(np.eye(20), np.arange(20) % 2)
    model.save(tmp_path / "small.npz")
    code, out, _ = run(capsys, tmp_path / "small.npz", folder / "ring.png", "--json")
    assert code == 3 and "X has 784 features, but MLPClassifier is expecting 20" in out


def test_numba_backend_predicts_the_same(toy, capsys):
    try:
        get_backend("numba")
    except ValueError as exc:
        pytest.skip(str(exc))
    _, folder = toy
    files = [folder / "model.npz", folder / "ring.png", folder / "bar.jpg", "--json"]
    outputs = [json.loads(run(capsys, *files, "--backend", name)[1]) for name in BACKENDS]
    assert [r["prediction"] for r in outputs[0]] == [r["prediction"] for r in outputs[1]]


# -- end to end on real MNIST ------------------------------------------------------------------


@pytest.fixture(scope="module")
def mnist_model(real_data_dir, tmp_path_factory):
    """A model trained on the 60000 MNIST training digits, saved; and the test digits."""
    from fastnn.data import load_dataset

    X, y, X_test, y_test = load_dataset("mnist", real_data_dir, download=False)
    try:
        backend = get_backend("numba").name
    except ValueError:
        backend = "numpy"
    params = dict(batch_size=64, solver="sgd", learning_rate="constant", learning_rate_init=0.2,
                  max_iter=5, random_state=0)  # fmt: skip
    model = MLPClassifier(128, backend=backend, **params).fit(X, y)
    path = tmp_path_factory.mktemp("mnist") / "mnist.npz"
    model.save(path)
    return model, path, X_test, y_test


def as_drawn(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 28x28 MNIST digit as a person's drawing: a few hundred pixels tall, somewhere on a
    larger sheet, dark ink on light paper, in colour."""
    size = int(rng.integers(150, 320))
    big = Image.fromarray(digit.reshape(28, 28)).resize((size, size), Image.Resampling.BICUBIC)
    height, width = size + rng.integers(60, 300, size=2)
    top, left = rng.integers(0, height - size), rng.integers(0, width - size)
    ink = np.zeros((height, width))
    ink[top : top + size, left : left + size] = np.asarray(big) / 255
    return paper_image(ink)


def test_drawn_mnist_digits_are_predicted_like_the_originals(mnist_model, tmp_path):
    model, path, X_test, y_test = mnist_model
    assert model.score(X_test, y_test) > 0.965
    rng = np.random.default_rng(0)
    digits = X_test[:100]
    files = {"png": [], "jpg": []}
    for i, digit in enumerate(digits):
        drawing = Image.fromarray(as_drawn(digit, rng))
        for kind, names in files.items():
            names.append(tmp_path / f"digit{i:03d}.{kind}")
            drawing.save(names[-1], quality=90)  # quality only matters to JPEG
    command = [sys.executable, "-m", "fastnn.predict", path, *files["png"], *files["jpg"], "--json"]
    done = subprocess.run(list(map(str, command)), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    by_file = {r["file"]: r["prediction"] for r in json.loads(done.stdout)}
    expected = model.predict(digits)
    for kind, names in files.items():
        agree = sum(
            by_file[str(name)] == label for name, label in zip(names, expected, strict=True)
        )
        assert agree >= 97, f"{kind}: only {agree} of 100 drawn digits predicted as the originals"


def test_a_regressor_or_multilabel_model_is_refused_clearly(tmp_path, toy, capsys):
    _, folder = toy
    X = np.random.default_rng(0).integers(0, 256, (30, 784)).astype(np.uint8)
    small = dict(hidden_layer_sizes=4, backend="numpy", max_iter=1, random_state=0)
    fastnn.MLPRegressor(**small).fit(X, X[:, 0] / 255).save(tmp_path / "r.npz")
    MLPClassifier(**small).fit(X, (X[:, :3] > 128).astype(int)).save(tmp_path / "m.npz")
    for name, outputs in (("r.npz", "identity outputs (a regressor's)"), ("m.npz", "logistic")):
        code, out, err = run(capsys, tmp_path / name, folder / "ring.png")
        assert code == 1 and out == "" and outputs in err and "needs a classifier" in err, err
