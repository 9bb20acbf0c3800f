"""How the bench writes numbers: the cells of its markdown tables, and the tables."""

from __future__ import annotations

from collections.abc import Sequence

MISSING = "n/a"


def seconds(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3g}"


def times(ratio: float | None, digits: int = 1) -> str:
    return MISSING if ratio is None else f"{ratio:.{digits}f}×"


def count(value: float | None) -> str:
    return MISSING if value is None else f"{value:,.0f}"


def rate(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}"


def percent(value: float | None) -> str:
    return MISSING if value is None else f"{value:.1f}%"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub markdown table, first column left-aligned and the numbers right-aligned."""
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
