"""Human-readable tables for the terminal (rich)."""

from __future__ import annotations

import shutil

from rich.console import Console
from rich.table import Table


def print_table(title: str, columns: list[str], rows: list[list[str]],
                footer: list[str] | None = None) -> None:
    table = Table(title=title, show_footer=footer is not None)
    for i, col in enumerate(columns):
        table.add_column(col, footer=footer[i] if footer else "",
                         justify="right" if i and col.lower() in ("params", "macs") else "left")
    for row in rows:
        table.add_row(*row)
    width = max(120, shutil.get_terminal_size((120, 24)).columns)
    Console(width=width, soft_wrap=False).print(table)
