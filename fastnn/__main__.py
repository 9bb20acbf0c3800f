"""python -m fastnn: the command-line tools, one line each, and the version."""

from __future__ import annotations

import argparse
import sys

from fastnn.tools import TOOLS, VERSION, add_version


def listing() -> str:
    """The version, then each tool as the command that runs it and what it does."""
    width = max(len(f"python -m {module}") for module in TOOLS)
    lines = [f"{VERSION}; its command-line tools (each takes --help and --version):"]
    lines += [f"  {f'python -m {module}':<{width}}  {what}" for module, what in TOOLS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fastnn",
        description="List fastnn's command-line tools.",
    )
    add_version(parser)
    parser.parse_args(argv)
    print(listing())
    return 0


if __name__ == "__main__":
    sys.exit(main())
