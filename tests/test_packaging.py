"""The built wheel: what it holds, and that it installs into a fresh venv and trains.

The editable install used for development hides packaging mistakes (a subpackage left out of the
wheel still imports from the source tree), so these tests build a real wheel and use it from a
venv, outside the repository.
"""

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from importlib.metadata import version
from pathlib import Path, PurePosixPath

import pytest

import fastnn

REPO = Path(__file__).resolve().parents[1]

# The subpackages the wheel must carry, whatever the source tree holds at the time.
KNOWN_PACKAGES = {
    "fastnn", "fastnn.core", "fastnn.files", "fastnn.backends", "fastnn.kernels", "fastnn.data",
    "fastnn.train", "fastnn.report", "fastnn.serve", "fastnn.predict", "fastnn.export",
    "fastnn.sweep", "fastnn.bench",
}  # fmt: skip

# Build output and caches, left out of the copy of the source tree that the wheel is built from.
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".benchmarks",
    ".venv",
    "venv",
)

TIMEOUT = 120  # seconds, for any one subprocess; the whole file takes about 15 s


def clean_env() -> dict[str, str]:
    """This environment without anything that could put the source tree on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"  # no network
    return env


def run(command: list, cwd: Path) -> subprocess.CompletedProcess:
    """Run a command; fail the test with its output unless it exits with 0."""
    command = [str(part) for part in command]
    try:
        result = subprocess.run(
            command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"{command} timed out after {TIMEOUT} s\n"
            f"--- stdout ---\n{error.stdout}\n--- stderr ---\n{error.stderr}"
        )
    assert result.returncode == 0, (
        f"{command} in {cwd} exited with {result.returncode}\n"
        f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
    )
    return result


def source_packages(root: Path) -> set[str]:
    """The dotted names of the folders under root/fastnn (and itself) that have __init__.py."""
    return {
        ".".join(init.parent.relative_to(root).parts)
        for init in (root / "fastnn").rglob("__init__.py")
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """(a copy of the source tree, the wheel built from it).

    The wheel is built from a copy so that setuptools' build/ and egg-info folders are not
    written into the working tree, and so that a stale build/ there cannot leak into the wheel.
    """
    major = int(version("setuptools").split(".")[0])
    assert major >= 77, (
        f"setuptools {version('setuptools')} cannot build fastnn without build isolation "
        "(a license given as an SPDX string needs 77 or newer): run pip install -e '.[dev]'"
    )
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    out = tmp / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", out],
        cwd=source,
    )
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {out}, found {wheels}"
    return source, wheels[0]


def test_wheel_contents(built):
    source, wheel = built
    # The distribution is fastnn-mlp ("fastnn" on PyPI is another project); the import name
    # stays fastnn, and the version is fastnn.__version__.
    assert wheel.name == f"fastnn_mlp-{fastnn.__version__}-py3-none-any.whl", wheel.name
    with zipfile.ZipFile(wheel) as archive:
        names = [PurePosixPath(name) for name in archive.namelist()]
        dist_info = {name.parts[0] for name in names if name.parts[0].endswith(".dist-info")}
        assert len(dist_info) == 1, dist_info
        (dist_info,) = dist_info
        licenses = [n for n in names if n.parts[0] == dist_info and n.name == "LICENSE"]
        assert len(licenses) == 1, f"no LICENSE (or several) in {dist_info}: {names}"
        license_text = archive.read(str(licenses[0])).decode()
        metadata = archive.read(f"{dist_info}/METADATA").decode()

    # Every package, and every module, of the source tree; nothing else at the top.
    packages = source_packages(source)
    assert packages >= KNOWN_PACKAGES, f"missing from the source tree: {KNOWN_PACKAGES - packages}"
    in_wheel = {".".join(n.parent.parts) for n in names if n.name == "__init__.py"}
    assert packages <= in_wheel, f"subpackages missing from the wheel: {packages - in_wheel}"
    modules = {p.relative_to(source).as_posix() for p in (source / "fastnn").rglob("*.py")}
    wheel_modules = {n.as_posix() for n in names if n.suffix == ".py"}
    assert modules <= wheel_modules, f"modules missing from the wheel: {modules - wheel_modules}"
    # Data files: the page python -m fastnn.serve serves.
    folder = source / "fastnn" / "serve" / "static"
    static = {p.relative_to(source).as_posix() for p in folder.iterdir()}
    assert {"fastnn/serve/static/index.html", "fastnn/serve/static/app.js"} <= static, static
    wheel_files = {n.as_posix() for n in names}
    assert static <= wheel_files, f"page files missing from the wheel: {static - wheel_files}"
    top = {name.parts[0] for name in names}
    assert "tests" not in top and "benchmarks" not in top, sorted(top)
    assert top == {"fastnn", dist_info}, sorted(top)

    # The license: the repository's file, declared in the metadata.
    assert license_text == (REPO / "LICENSE").read_text()
    assert "Copyright (c) 2026 The fastnn developers" in license_text
    assert "License-Expression: MIT" in metadata.splitlines()
    assert "License-File: LICENSE" in metadata.splitlines()
    assert "Name: fastnn-mlp" in metadata.splitlines()
    assert f"Version: {fastnn.__version__}" in metadata.splitlines()


# Run by the venv's python, from a folder outside the repository.
VENV_SCRIPT = textwrap.dedent(
    """
    import sys
    from importlib.metadata import version
    from pathlib import Path

    import numpy as np

    import fastnn

    venv = Path(sys.prefix).resolve()
    repo = Path(sys.argv[1]).resolve()

    # The system site-packages are visible (numpy comes from there, and so could the editable
    # fastnn), yet every fastnn module comes from the wheel installed in the venv.
    assert not Path(np.__file__).resolve().is_relative_to(venv), np.__file__
    import fastnn.backends.numpy_backend
    import fastnn.bench
    import fastnn.data
    import fastnn.kernels
    import fastnn.serve
    import fastnn.serve.answers
    import fastnn.serve.http

    for name, module in sorted(sys.modules.items()):
        if name == "fastnn" or name.startswith("fastnn."):
            where = Path(module.__file__).resolve()
            assert where.is_relative_to(venv), f"{name} from {where}, not from {venv}"
            assert not where.is_relative_to(repo), f"{name} from the repository: {where}"

    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(200, 784), dtype=np.uint8)
    y = np.arange(200) % 10
    model = fastnn.MLPClassifier(
        hidden_layer_sizes=16, max_iter=2, backend="numpy", random_state=0
    ).fit(X, y)
    assert list(model.classes_) == list(range(10)), model.classes_
    assert len(model.loss_curve_) == 2 and np.isfinite(model.loss_curve_).all()
    predicted = model.predict(X)
    assert predicted.shape == (200,), predicted.shape
    assert set(predicted.tolist()) <= set(range(10)), set(predicted.tolist())
    proba = model.predict_proba(X)
    assert proba.shape == (200, 10) and np.allclose(proba.sum(axis=1), 1.0)

    # python -m fastnn.serve finds its page in the installed package.
    page = fastnn.serve.http.static_files()
    assert b'id="prediction"' in page["index.html"] and page["app.js"] and page["style.css"]
    # The distribution's name and version, as pip and importlib.metadata know them.
    assert version("fastnn-mlp") == fastnn.__version__, version("fastnn-mlp")
    print("fastnn", fastnn.__version__, "from", Path(fastnn.__file__).resolve())
    """
)


def test_wheel_installs_and_trains_in_a_fresh_venv(built, tmp_path):
    _, wheel = built
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--system-site-packages", venv], cwd=tmp_path)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    run([python, "-m", "pip", "install", "--no-deps", "--no-index", wheel], cwd=tmp_path)

    work = tmp_path / "work"
    work.mkdir()
    assert not work.resolve().is_relative_to(REPO)
    script = work / "smoke.py"
    script.write_text(VENV_SCRIPT)
    result = run([python, script, REPO], cwd=work)
    assert str(venv.resolve()) in result.stdout, result.stdout

    result = run([python, "-m", "fastnn.train", "--help"], cwd=work)
    assert "--backend" in result.stdout, result.stdout
    result = run([python, "-m", "fastnn", "--version"], cwd=work)
    assert result.stdout == f"fastnn {fastnn.__version__}\n", result.stdout
