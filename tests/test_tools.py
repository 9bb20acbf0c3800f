"""python -m fastnn lists every command-line tool of the package, and every tool (and the list
itself) takes --version."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn
from fastnn.tools import TOOLS

PACKAGE = Path(fastnn.__file__).parent


def runnable_modules() -> set[str]:
    """What runs as `python -m NAME`: packages with a __main__.py, and modules whose top level
    tests `__name__ == "__main__"`; all but fastnn itself, whose __main__ is the list."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if path.name == "__main__.py":
            found.add(".".join(parts[:-1]))
        elif any(
            isinstance(node, ast.If) and ast.unparse(node.test) == "__name__ == '__main__'"
            for node in ast.parse(path.read_text(encoding="utf-8")).body
        ):
            found.add(".".join(parts))
    return found - {"fastnn"}


def python_m(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, timeout=120
    )


def test_python_m_fastnn_lists_every_tool_and_the_version():
    assert runnable_modules() == set(TOOLS)
    result = python_m("fastnn")
    assert result.returncode == 0, result.stderr
    first, *lines = result.stdout.splitlines()
    assert first.startswith(f"fastnn {fastnn.__version__}"), first
    assert [line.split()[2] for line in lines] == list(TOOLS), result.stdout


@pytest.mark.parametrize("module", ["fastnn", *TOOLS])
def test_every_tool_prints_the_version(module):
    result = python_m(module, "--version")
    assert (result.returncode, result.stdout) == (0, f"fastnn {fastnn.__version__}\n"), (
        result.stderr
    )
