"""The package's modules import one another without a cycle, and the core without its front ends.

A cycle works only while every module in it reads the others' names late enough, and breaks
at the first edit that reads one at import time; so none is allowed. The graph holds every
import statement of a module: at its top level, in `if TYPE_CHECKING:` blocks (a cycle a
type checker follows), and inside functions too. An import in a function is there to put off
loading something heavy (matplotlib, Dask) until it is needed, never to get around a cycle:
what both ends of a cycle need belongs in a module of its own.
"""

from __future__ import annotations

import ast
from pathlib import Path

import fastnn

PACKAGE = Path(fastnn.__file__).parent


def modules() -> dict[str, Path]:
    """Every module of the package by its dotted name; a package by its own name."""
    named = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        named[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return named


def imported(name: str, source: str, known: set[str], is_package: bool = False) -> set[str]:
    """The modules of `known` that importing module `name` (of this source) imports directly:
    each one named, and the packages above it, whose __init__ runs first (but not `name`'s
    own, which are already being imported when it is)."""
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, or level - 1 packages above it
                above = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(above + ([base] if base else []))
            for alias in node.names:  # a module of the package, or a name in `base`
                module = f"{base}.{alias.name}"
                targets.add(module if module in known else base)
    edges = set()
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
    for target in targets:
        if target.split(".")[0] != "fastnn":
            continue
        parts = target.split(".")
        edges |= {".".join(parts[:i]) for i in range(1, len(parts))} - own
        edges.add(target)
    return (edges & known) - {name}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as the path that closes it (a, b, ..., a), or None."""
    done: set[str] = set()
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        if node in path:
            return path[path.index(node) :] + [node]
        if node in done:
            return None
        path.append(node)
        for successor in sorted(graph[node]):
            cycle = visit(successor)
            if cycle:
                return cycle
        path.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def test_the_graph_holds_every_kind_of_import():
    known = {"fastnn", "fastnn.a", "fastnn.b", "fastnn.c", "fastnn.d", "fastnn.e", "fastnn.f"}
    known |= {"fastnn.p", "fastnn.p.g", "fastnn.p.h", "fastnn.q", "fastnn.q.i"}
    source = """
from typing import TYPE_CHECKING

import numpy as np

import fastnn
import fastnn.a
from fastnn import b, VALUE
from fastnn.c import NAME
from . import h
from .. import d
from ..q.i import OTHER

if TYPE_CHECKING:
    from fastnn.e import Hint


class Holder:
    from fastnn import f


def later():
    from fastnn import late
"""
    known.add("fastnn.late")
    got = imported("fastnn.p.g", source, known)
    # fastnn.p is g's own package: already being imported; fastnn.q runs before fastnn.q.i.
    assert got == known - {"fastnn.p", "fastnn.p.g"}, got


def test_no_import_cycle():
    named = modules()
    graph = {
        name: imported(name, path.read_text(encoding="utf-8"), set(named), path.stem == "__init__")
        for name, path in named.items()
    }
    assert len(graph) > 80 and sum(map(len, graph.values())) > 200  # the whole package
    cycle = find_cycle(graph)
    assert cycle is None, "modules that import each other: " + " -> ".join(cycle)


# The package by role: what trains and stores a model, and the front ends built on it.
CORE = ("fastnn.core", "fastnn.files", "fastnn.data", "fastnn.backends", "fastnn.kernels")
FRONT_ENDS = ("fastnn.estimator", "fastnn.saved", "fastnn.train", "fastnn.report",
              "fastnn.serve", "fastnn.predict", "fastnn.export", "fastnn.sweep",
              "fastnn.bench")  # fmt: skip


def test_the_core_imports_no_front_end():
    """A front end (a command, the estimator) builds on the core; the core never reads one."""
    named = modules()
    for name, path in named.items():
        if not name.startswith(CORE):
            continue
        found = imported(
            name, path.read_text(encoding="utf-8"), set(named), path.stem == "__init__"
        )
        front = sorted(m for m in found if m.startswith(FRONT_ENDS))
        assert not front, f"{name} imports the front end(s) {front}"
