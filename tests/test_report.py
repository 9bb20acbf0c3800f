"""python -m fastnn.report and fastnn.train --report: the numbers against independent
computations, the figures as real PNG files, the page self-contained, old model files, errors.

One small model (numpy, hidden 32, 2 epochs on 3,000 real MNIST rows) and one report of it on
the real test set are shared by the tests here."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import threading
import types
from collections import Counter
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from cli_helpers import run_main, write_kaggle

import fastnn
from fastnn.core.model import init_params
from fastnn.data import load_dataset
from fastnn.files import persist
from fastnn.report import command as report
from fastnn.report import numbers as report_numbers
from fastnn.report import page as report_page

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ("confusion.png", "mistakes.png", "weights.png", "curves.png")


@pytest.fixture(scope="module")
def made(real_data_dir, tmp_path_factory) -> types.SimpleNamespace:
    """The model, its file, the MNIST test set with its predictions, and the report of it."""
    folder = tmp_path_factory.mktemp("report")
    data = load_dataset("mnist", data_dir=real_data_dir, download=False)
    model = fastnn.MLPClassifier(
        hidden_layer_sizes=32, backend="numpy", solver="adam", learning_rate_init=0.003,
        learning_rate="constant", max_iter=2, early_stopping=True, random_state=0,
    ).fit(data.X_train[:3000], data.y_train[:3000])  # fmt: skip
    model.save(folder / "model.npz", dataset="mnist")
    out = folder / "out"
    code = report.main([str(folder / "model.npz"), "--out", str(out),
                        "--data", str(real_data_dir), "--no-download"])  # fmt: skip
    assert code == 0
    proba = model.predict_proba(data.X_test)
    return types.SimpleNamespace(
        model=model, path=folder / "model.npz", X=data.X_test, y=data.y_test, proba=proba,
        out=out, page=(out / "report.html").read_text(encoding="utf-8"),
    )  # fmt: skip


def table_rows(page: str, first_header: str) -> list[list[str]]:
    """The body rows of the page's table whose first column is headed `first_header`."""
    table = re.search(rf"<table[^>]*><thead><tr><th>{first_header}</th>.*?</table>", page).group()
    rows = re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1])
    return [re.findall(r"<td>(.*?)</td>", row) for row in rows]


def test_the_confusion_matrix_is_the_count_of_each_true_and_predicted_pair(made):
    predicted = made.proba.argmax(axis=1)
    want = np.bincount(made.y * 10 + predicted, minlength=100).reshape(10, 10)
    counts = report_numbers.confusion_matrix(made.y, predicted, 10)
    np.testing.assert_array_equal(counts, want)
    assert counts.sum() == len(made.y) == 10_000
    accuracy = f"{100 * np.mean(predicted == made.y):.2f}%"
    assert f"<td>accuracy on the MNIST test set</td><td>{accuracy}</td>" in made.page
    errors = f"{int((predicted != made.y).sum()):,} of 10,000"
    assert f"<td>errors on the MNIST test set</td><td>{errors}</td>" in made.page


def test_precision_recall_and_f1_per_class_are_right(made):
    predicted = made.proba.argmax(axis=1)
    rows = table_rows(made.page, "class")
    assert [row[0] for row in rows] == [str(d) for d in range(10)] + ["macro average"]
    for digit in range(10):
        hits = np.sum((predicted == digit) & (made.y == digit))
        precision = hits / np.sum(predicted == digit)
        recall = hits / np.sum(made.y == digit)
        f1 = 2 * precision * recall / (precision + recall)
        want = [str(digit), f"{np.sum(made.y == digit):,}"]
        want += [f"{100 * v:.2f}%" for v in (precision, recall, f1)]
        assert rows[digit] == want


def test_class_scores_of_classes_never_predicted_or_absent():
    # counts [[3, 0, 1], [0, 0, 0], [1, 0, 0]]: class 1 has no images and is never predicted
    y = np.array([0, 0, 0, 0, 2])
    predicted = np.array([0, 0, 0, 2, 0])
    s = report_numbers.class_scores(y, predicted, 3)
    np.testing.assert_allclose(s.precision, [0.75, np.nan, 0.0])
    np.testing.assert_allclose(s.recall, [0.75, np.nan, 0.0])
    np.testing.assert_allclose(s.f1, [0.75, np.nan, 0.0])  # 0 and 0 give 0, not NaN


def test_the_mistakes_shown_are_the_most_confident_wrong_predictions(made):
    predicted = made.proba.argmax(axis=1)
    confidence = made.proba.max(axis=1)
    wrong = np.flatnonzero(predicted != made.y)
    want = wrong[np.argsort(-confidence[wrong], kind="stable")[:36]]
    got = report_numbers.confident_mistakes(made.proba, made.y)
    np.testing.assert_array_equal(got, want)
    assert len(got) == 36 and (predicted[got] != made.y[got]).all()
    others = np.setdiff1d(wrong, got)
    assert confidence[got].min() >= confidence[others].max()
    assert "<p>36 wrong predictions, those given the highest probability first.</p>" in made.page


def test_the_strongest_units_have_the_longest_weight_vectors(made):
    W = made.model.coefs_[0]
    units = report_numbers.strongest_units(W)
    assert len(units) == 32  # all of them: fewer than 64
    norms = np.sqrt((W.astype(np.float64) ** 2).sum(axis=0))
    assert list(units) == sorted(range(32), key=lambda j: -norms[j])


def test_every_figure_is_a_png_of_a_sensible_size(made):
    for name in FIGURES:
        data = (made.out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE, name
        assert 5_000 < len(data) < 3_000_000, (name, len(data))
        image = matplotlib.image.imread(made.out / name)
        height, width = image.shape[:2]
        assert 300 <= height <= 2500 and 400 <= width <= 2500, (name, image.shape)
    assert not [p for p in made.out.iterdir() if p.name.startswith(".")], "temporary files left"


def test_the_page_embeds_every_figure_and_needs_no_network(made):
    page = made.page
    for name in FIGURES:
        encoded = base64.b64encode((made.out / name).read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{encoded}"' in page, name
    references = re.findall(r"""(?:src|href)=["']([^"']*)""", page)
    assert len(references) == len(FIGURES)
    assert all(r.startswith("data:image/png;base64,") for r in references)
    assert "http://" not in page and "https://" not in page and "<link" not in page
    title = re.search(r"<title>(.*?)</title>", page).group(1)
    assert title == "fastnn report: MNIST, 784-32-10, adam, lr 0.003, numpy backend"


def test_the_model_file_carries_the_curves(made):
    saved = persist.read_model(made.path)
    history = saved.history
    assert len(history["loss_curve"]) == 2 and saved.config["dataset"] == "mnist"
    assert len(history["train_scores"]) == len(history["validation_scores"]) == 2
    assert all(0 < a < 1 for a in history["train_scores"])
    assert history["learning_rates"] == pytest.approx([0.003, 0.003])  # means of the batches
    assert all(s > 0 for s in history["epoch_seconds"])
    assert "not recorded" not in made.page and "no training history" not in made.page


def _strip_history(path: Path, keep: tuple[str, ...] | None) -> None:
    """Rewrite the model file as an older fastnn wrote it: the history without the fields
    not in `keep`, or (keep None) without any history."""
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    header = json.loads(arrays.pop("header").tobytes())
    if keep is None:
        header["history"] = {}
    else:
        header["history"] = {k: v for k, v in header["history"].items() if k in keep}
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)


@pytest.mark.parametrize("history", ["none", "before the epoch records"])
def test_old_model_files_still_give_a_report(made, real_data_dir, tmp_path, history, capsys):
    path = tmp_path / "old.npz"
    path.write_bytes(made.path.read_bytes())
    older = ("epochs", "samples_seen", "loss_curve", "validation_scores", "rate", "order_state")
    _strip_history(path, None if history == "none" else older)
    code = report.main([str(path), "--out", str(tmp_path / "out"), "--data", str(real_data_dir)])
    assert code == 0, capsys.readouterr().err
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    for name in FIGURES:
        assert (tmp_path / "out" / name).read_bytes()[:8] == PNG_SIGNATURE
    if history == "none":
        assert "This model file has no training history" in page
        assert "<td>epochs trained</td><td>unknown</td>" in page
    else:
        assert "train_scores, learning_rates, epoch_seconds: not in this model file" in page
        assert "<td>epochs trained</td><td>2</td>" in page
    # The numbers do not depend on the history.
    assert table_rows(page, "class") == table_rows(made.page, "class")


def test_fashion_mnist_models_name_their_classes(made):
    assert report_page.class_names("fashion-mnist", np.arange(10))[:2] == ["T-shirt/top", "Trouser"]
    assert report_page.class_names("mnist", np.arange(10)) == [str(d) for d in range(10)]
    assert report_page.class_names("fashion-mnist", np.array(["a", "b"])) == ["a", "b"]


def test_command_errors_are_one_line_with_their_exit_status(made, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    cases = [
        ([str(tmp_path / "missing.npz"), "--out", str(tmp_path / "o")], 1, "no such file"),
        ([str(a_file), "--out", str(tmp_path / "o")], 1, "not a fastnn model file"),
        ([str(made.path), "--out", str(a_file)], 2, "--out"),
        ([str(made.path), "--out", str(a_file / "sub")], 2, "no folder can be made inside it"),
    ]
    for argv, status, words in cases:
        assert report.main(argv) == status, argv
        out, err = capsys.readouterr()
        assert err.startswith("fastnn.report: error: ") and err.count("\n") == 1, err
        assert words in err and out == ""
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit) as exit_info:
        report.main([str(made.path)])  # no --out
    assert exit_info.value.code == 2


def test_a_dataset_the_model_does_not_fit_is_a_clear_error(made, real_data_dir, tmp_path, capsys):
    path = tmp_path / "five.npz"
    params = init_params(784, 4, 5, seed=0)
    persist.save_model(path, params, activation="relu", classes=np.arange(5))  # labels 0..4
    argv = [str(path), "--out", str(tmp_path / "o"), "--data", str(real_data_dir)]
    assert report.main(argv) == 1
    err = capsys.readouterr().err
    assert "holds labels [5, 6, 7, 8, 9] that" in err and err.count("\n") == 1


def test_train_writes_the_report_at_the_end_of_a_run(real_data_dir, tmp_path, capsys):
    out = tmp_path / "report"
    code, stdout, err = run_main(
        ["--backend", "numpy", "--hidden", "16", "--epochs", "1", "--dev-size", "50000",
         "--data", str(real_data_dir), "--no-download", "--report", str(out)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert f"wrote the report (report.html and its figures) to {out}" in stdout
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "<title>fastnn report: MNIST, 784-16-10, adam, lr 0.003 cosine, numpy backend" in page
    test_accuracy = re.search(r"test accuracy (\d+\.\d\d%)", stdout).group(1)
    assert f"<td>accuracy on the MNIST test set</td><td>{test_accuracy}</td>" in page
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE
    assert "This model file has no training history" not in page


def test_train_refuses_an_unwritable_report_folder_before_training(tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, out, err = run_main(["--backend", "numpy", "--report", str(a_file)], capsys)
    assert code == 1 and "--report" in err and "is a file, not a folder" in err
    assert "epoch" not in out


# Text that matplotlib would read as mathematics ("$...$", and a double subscript inside that
# it cannot parse), and text that HTML would read as markup.
DOLLARS = "price_$5_and_$6.csv"


def dollar_labelled(k: int, n: int = 600) -> report_page.ReportInput:
    """Predictions of a random 784-4-k model on random images of the k string labels, the
    right class given a higher probability: most are right, some wrong."""
    rng = np.random.default_rng(k)
    y = np.arange(n) % k
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 2.0
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    classes = np.array([f"$a_{c}_b$" if c % 2 else f"<b>&{c}" for c in range(k)])
    X = rng.integers(0, 256, (n, 784), dtype=np.uint8)
    return report_page.ReportInput(
        init_params(784, 4, k, seed=0), classes, {"solver": "$x_y_z$"}, {}, None, X, y, proba,
        DOLLARS, "rows", "numpy",
    )  # fmt: skip


@pytest.mark.parametrize("k", [4, 30])  # every cell written in; a heat map
def test_labels_and_names_with_dollars_and_markup_are_shown_as_given(k, tmp_path):
    r = dollar_labelled(k)
    report_page.write_report(tmp_path, r)
    for name in FIGURES:
        assert (tmp_path / name).read_bytes()[:8] == PNG_SIGNATURE, name
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert f"<title>fastnn report: {DOLLARS}, 784-4-{k}, $x_y_z$, backend unknown</title>" in page
    rows = table_rows(page, "class")
    assert [row[0] for row in rows[:2]] == ["&lt;b&gt;&amp;0", "$a_1_b$"]
    assert "<b>&" not in page


def test_the_training_plots_draw_dollars_as_given(tmp_path):
    from fastnn.report import plots

    images = np.random.default_rng(0).integers(0, 256, (4, 784), dtype=np.uint8)
    names = ["$a_1_b$", "<$>", "$", "$x_y_z$"]
    path = plots.plot_samples(
        images, np.array([0, 1, 2, 3]), np.array([3, 2, 1, 0]), tmp_path, names=names,
        title=f"from {DOLLARS}",
    )  # fmt: skip
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_a_kaggle_csv_named_with_dollars_gives_a_report(made, tmp_path, capsys):
    data = tmp_path / DOLLARS
    write_kaggle(data, 100, with_labels=True)
    out = tmp_path / "out"
    code = report.main([str(made.path), "--out", str(out), "--data", str(data)])
    assert code == 0, capsys.readouterr().err
    page = (out / "report.html").read_text(encoding="utf-8")
    assert f"<title>fastnn report: {DOLLARS}, 784-32-10, adam" in page
    assert f"<td>accuracy on the {DOLLARS} rows</td>" in page
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name


# The report runs in a process of its own, its address space capped as a guard: the report of
# 3e737a5 asked for a 24 GB image for 1,000 classes, which would take the machine down.
GUARDED_REPORT = """
import resource, runpy, sys
resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
sys.argv[0] = "fastnn.report"
runpy.run_module("fastnn.report", run_name="__main__")
"""


def run_measured(argv: list[str], err: Path, timeout: float) -> tuple[int, int]:
    """python -m fastnn.report argv in a process of its own: (exit status, its peak resident
    memory in bytes). The timeout guards against a hang."""
    with err.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-c", GUARDED_REPORT, *argv], stdout=subprocess.DEVNULL, stderr=stderr
        )
    killer = threading.Timer(timeout, process.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)  # the usage of this process alone
    finally:
        killer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_maxrss * 1024  # kilobytes on Linux


def test_the_report_of_1000_classes_is_bounded_in_memory_and_size(real_data_dir, tmp_path):
    k = 1000
    path = tmp_path / "many.npz"
    persist.save_model(path, init_params(784, 4, k, seed=0), activation="relu",
                       classes=np.arange(k))  # fmt: skip
    out = tmp_path / "out"
    argv = [str(path), "--out", str(out), "--data", str(real_data_dir), "--no-download"]
    code, peak = run_measured(argv, tmp_path / "err.txt", timeout=120)
    assert code == 0, (tmp_path / "err.txt").read_text()
    assert peak < 1 << 30, f"peak resident memory {peak / 2**20:.0f} MB"
    for name in FIGURES:
        height, width = matplotlib.image.imread(out / name).shape[:2]
        assert height <= 2500 and width <= 2500, (name, height, width)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert len(page) < 3_000_000
    rows = table_rows(page, "class")
    assert len(rows) == report_page.CLASS_ROWS + 1 and rows[-1][0] == "macro average"
    per_class = pd.read_csv(out / report_page.CLASS_FILE, keep_default_na=False)
    assert list(per_class["class"]) == list(range(k))
    assert per_class["images"].sum() == 10_000


def test_the_most_frequent_confusions_and_the_binned_confusion_matrix():
    rng = np.random.default_rng(0)
    k = 50
    y = rng.integers(0, k, 2000)
    predicted = np.where(rng.random(2000) < 0.5, y, rng.integers(0, k, 2000))
    pairs, images = report_numbers.confusions(y, predicted, 5)
    counted = Counter((t, p) for t, p in zip(y.tolist(), predicted.tolist(), strict=True) if t != p)
    want = sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:5]
    got = zip(map(tuple, pairs.tolist()), images.tolist(), strict=True)
    assert list(got) == want
    dense = report_numbers.confusion_matrix(y, predicted, k)
    binned = report_numbers.confusion_matrix(y, predicted, k, per_cell=4)  # 13 cells: 52 wide
    padded = np.zeros((52, 52), dtype=np.int64)
    padded[:k, :k] = dense
    np.testing.assert_array_equal(binned, padded.reshape(13, 4, 13, 4).sum(axis=(1, 3)))
    labels = y.astype(np.uint8)  # 49 * 50 wraps round in uint8
    np.testing.assert_array_equal(report_numbers.confusion_matrix(labels, predicted, k), dense)
    assert report_numbers.confusions(y, y)[0].shape == (0, 2)


def test_the_weakest_classes_come_first_those_without_images_last():
    scores = report_numbers.ClassScores(
        precision=np.zeros(5), recall=np.zeros(5),
        f1=np.array([0.9, np.nan, 0.2, 0.2, 0.5]), support=np.array([10, 0, 3, 7, 1]),
    )  # fmt: skip
    assert report_numbers.weakest_classes(scores, 4).tolist() == [3, 2, 4, 0]
    assert report_numbers.weakest_classes(scores, 10).tolist() == [3, 2, 4, 0, 1]
