"""Markdown tables, made one way for every card, report and comparison karma-hf writes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]], *, align: str | Sequence[str] = "") -> str:
    """A GitHub-flavoured Markdown table.

    ``align``: one character per column, ``l`` (default) or ``r`` (numbers); a string shorter
    than the header is padded with ``l``, so ``"lr"`` means "first column left, the rest right"
    only when given in full, e.g. ``"l" + "r" * n``. Cells are converted with ``str``; ``None``
    is empty; ``|`` is escaped and newlines become spaces, so any text is safe in a cell.
    """
    cols = len(header)
    spec = list(align) + ["l"] * (cols - len(align))
    rule = ["---:" if a == "r" else "---" for a in spec[:cols]]
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        cells = list(row)
        if len(cells) != cols:
            raise ValueError(f"markdown_table: a row has {len(cells)} cells, the header {cols}")
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines)
