"""Every command in docs/ runs as written. Each page's `bash` and `python` blocks run here, a
section's blocks one after another in a fresh folder, and RUN says what each must have done.
Output, and runs too long for the tests (benchmarks, a preset's full training, installing), are
`text` blocks, which nothing runs; a test checks that no page has a `bash` or `python` block
that RUN does not name."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx_helpers
import pytest
import sweep_helpers
from conftest import one_member_teams

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
# Languages that mark a block as commands to run; `text` and `console` blocks are not run.
RUNNABLE = {"bash", "sh", "shell", "zsh", "python", "py", "python3"}


def fenced_blocks(text: str) -> list[tuple[str, str, str]]:
    """(section, language, code) of every fenced block of a page: the section is the `## `
    heading above it ("" at the top), the language what follows the opening fence."""
    found, section, fence, language, code = [], "", None, "", []
    for line in text.splitlines(keepends=True):
        if fence is None:
            if line.startswith("## "):
                section = line[3:].strip()
            opening = re.match(r"(`{3,}|~{3,})(.*)$", line.rstrip("\n"))
            if opening:
                fence, language, code = opening.group(1), opening.group(2).strip(), []
        elif line.rstrip() == fence:
            found.append((section, language, "".join(code)))
            fence = None
        else:
            code.append(line)
    assert fence is None, "a block is never closed"
    return found


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def _files(folder: Path, *names: str) -> None:
    for name in names:
        assert (folder / name).is_file(), f"{name} was not written"


def check_outputs(folder: Path, out: str) -> None:
    _files(folder, "run.npz", "run.json", "plots/loss.png", "plots/accuracy.png")
    _files(folder, "plots/samples.png")
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"


def check_resume(folder: Path, out: str) -> None:
    assert "resuming after epoch 3" in out and "epoch    5/5" in out, out


def check_augment(folder: Path, out: str) -> None:
    _files(folder, "plots/augment.png")


def check_estimator(folder: Path, out: str) -> None:
    lines = out.strip().splitlines()
    assert lines[0] == "7 7" and lines[1].startswith("(800, 800) "), out


def check_outputs_example(folder: Path, out: str) -> None:
    regression, loaded, multilabel = out.strip().splitlines()
    kind, shape, r2 = regression.rsplit(" ", 2)
    assert kind == "identity (3," and shape == "2)" and float(r2) > 0.8, out
    assert loaded == "MLPRegressor" and (folder / "regressor.npz").is_file(), out
    assert multilabel.startswith("logistic [0 1 2] [[") and float(multilabel.split()[-1]) > 0.7


def check_sample_weights(folder: Path, out: str) -> None:
    same, score = out.strip().splitlines()
    assert same == "True" and float(score) > 0.8, out


def check_sparse_input(folder: Path, out: str) -> None:
    assert out.strip().splitlines() == ["True", "True"], out


def check_file_format(folder: Path, out: str) -> None:
    files, header = out.strip().splitlines()
    assert {"W1", "b1", "W2", "b2", "header"} <= set(ast.literal_eval(files)), out
    assert header.startswith("fastnn-model ") and "'hidden': [8]" in header, out


def check_report(folder: Path, out: str) -> None:
    _files(folder, "report/confusion.png", "report/curves.png", "report/per-class.csv")
    assert (folder / "report" / "report.html").stat().st_size > 10_000


def check_halving(folder: Path, out: str) -> None:
    assert "12 trials in" in out and "best: python -m fastnn.train" in out, out
    _files(folder, "sweep-halving/results.csv", "sweep-halving/ranked.csv")


def check_export(folder: Path, out: str) -> None:
    _files(folder, "model.onnx", "floats.onnx")
    assert "wrote model.onnx: X uint8 (N, 784) -> label int64 (N), probabilities" in out, out
    assert float(out.rsplit("test accuracy ", 1)[1]) > 0.9, out  # the last: Python's


def check_grid_search(folder: Path, out: str) -> None:
    assert "'hidden_layer_sizes'" in out and float(out.split("test accuracy")[1]) > 0.9, out


def check_nothing_more(folder: Path, out: str) -> None:
    """The block's exit status 0 is all it promises."""


@dataclass
class Section:
    languages: list[str]  # of its runnable blocks, in order
    check: Callable[[Path, str], None]  # given the folder it ran in and its output
    data: bool = True  # needs FASTNN_DATA_DIR (without it the commands would download)
    cwd: Path | None = None  # where it runs: a fresh folder unless given
    needs: Callable[[], None] | None = None  # skips (or fails in CI) without what it needs


def _sklearn_and_dask() -> None:
    pytest.importorskip("sklearn")  # the compat extra, which CI installs; fastnn never needs it
    sweep_helpers.require_distributed()


def _ruff() -> None:
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")


# (page, section): its runnable blocks and what they must have done. The section is the `## `
# heading above the blocks, "" for the top of the page.
RUN = {
    ("training.md", "Outputs"): Section(["bash"], check_outputs),
    ("training.md", "Resuming"): Section(["bash"], check_resume),
    ("training.md", "Data augmentation"): Section(["bash"], check_augment),
    ("library.md", "scikit-learn's conventions"): Section(["python"], check_estimator, data=False),
    ("library.md", "Regression and multilabel"): Section(
        ["python"], check_outputs_example, data=False
    ),
    ("library.md", "Sample weights"): Section(["python"], check_sample_weights, data=False),
    ("library.md", "Sparse input"): Section(["python"], check_sparse_input, data=False),
    ("file-format.md", "What it holds"): Section(["python"], check_file_format, data=False),
    ("report.md", ""): Section(["bash"], check_report),
    ("sweep.md", "Successive halving"): Section(
        ["bash"], check_halving, needs=sweep_helpers.require_distributed
    ),
    ("sweep.md", "From Python"): Section(["python"], check_grid_search, needs=_sklearn_and_dask),
    ("export.md", "Export and run"): Section(
        ["bash", "python"], check_export, needs=onnx_helpers.require_runtime
    ),
    # With FASTNN_DATA_DIR set, loading reads the files there and downloads nothing.
    ("development.md", "Set up and run the tests"): Section(["bash"], check_nothing_more),
    ("development.md", "Lint"): Section(
        ["bash"], check_nothing_more, data=False, cwd=ROOT, needs=_ruff
    ),
}


def test_docs_have_no_block_that_no_test_runs():
    found: dict[tuple[str, str], list[str]] = {}
    for page in pages():
        for section, language, _ in fenced_blocks(page.read_text(encoding="utf-8")):
            assert language, f"{page.name} ({section or 'top'}): a block without a language"
            if language.split()[0] in RUNNABLE:
                found.setdefault((page.name, section), []).append(language.split()[0])
    assert found == {key: section.languages for key, section in RUN.items()}


@pytest.mark.parametrize("text", ["README.md", *(f"docs/{page.name}" for page in pages())])
def test_docs_install_from_the_checkout_and_name_nothing_outside_it(text):
    """The name fastnn on PyPI is another project's: install lines name the checkout."""
    content = (ROOT / text).read_text(encoding="utf-8")
    assert not re.search(r"pip install +[\"']?fastnn(\[|[\"'\s]|$)", content, re.M)
    assert "../shared" not in content and "prototype" not in content.lower()


def _python_on_path(folder: Path) -> dict[str, str]:
    """The environment for a block: `python` is this interpreter."""
    shim = folder / "python"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    return {**one_member_teams(), "PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@pytest.mark.parametrize("page, section", sorted(RUN), ids=lambda part: part or "top")
def test_docs_blocks_run_as_written(page, section, tmp_path):
    spec = RUN[(page, section)]
    if spec.data and not os.environ.get("FASTNN_DATA_DIR"):
        pytest.skip("FASTNN_DATA_DIR is not set")
    if spec.needs is not None:
        spec.needs()
    folder = tmp_path / "run"
    folder.mkdir()
    (tmp_path / "bin").mkdir()
    env = _python_on_path(tmp_path / "bin")
    codes = [
        (language, code)
        for where, language, code in fenced_blocks((DOCS / page).read_text(encoding="utf-8"))
        if where == section and language in spec.languages
    ]
    outputs = []
    for language, code in codes:
        command = ["bash", "-euo", "pipefail", "-c", code]
        if language == "python":
            command = [sys.executable, "-c", code]
        result = subprocess.run(
            command, cwd=spec.cwd or folder, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, (
            f"{page} ({section}):\n{code}\n{result.stdout}\n{result.stderr}"
        )
        outputs.append(result.stdout)
    spec.check(folder, "".join(outputs))
