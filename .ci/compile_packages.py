"""Byte-compile, on every core, the modules of the installed packages that have no bytecode yet.

pip compiles the files it installs one after another, most of its time on a new machine. CI
installs with --no-compile and runs this instead: the same bytecode (compileall's, as pip writes
it), the work split across the cores. It is needed: Python writes no bytecode of its own on these
machines (PYTHONDONTWRITEBYTECODE), so every test process would compile the modules it imports.
"""

import compileall
import importlib.util
import os
import sys
import sysconfig
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def uncompiled(folder: Path) -> list[str]:
    return [
        str(path)
        for path in folder.rglob("*.py")
        if not os.path.exists(importlib.util.cache_from_source(str(path)))
    ]


def compile_file(path: str) -> bool:
    return bool(compileall.compile_file(path, quiet=2))


def main() -> int:
    folders = {Path(sysconfig.get_paths()[key]) for key in ("purelib", "platlib")}
    files = [path for folder in sorted(folders) for path in uncompiled(folder)]
    # Large chunks: a task per file costs more in the pool's messages than compiling it.
    chunk = max(1, len(files) // (4 * (os.cpu_count() or 1)))
    with ProcessPoolExecutor() as pool:
        compiled = sum(pool.map(compile_file, files, chunksize=chunk))
    # As pip does, files that are not Python (templates named .py) are left as they are.
    print(f"compiled {compiled} of {len(files)} modules without bytecode", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
