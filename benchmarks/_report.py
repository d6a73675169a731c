"""Printing helpers shared by the benchmarks: one markdown table writer, one number format."""
from __future__ import annotations

import json
from pathlib import Path


def pct(value) -> str:
    """An accuracy in [0, 1] as a percentage, '-' when the run failed."""
    return "  -  " if value is None else f"{100 * value:5.2f}"


def print_table(header: list[str], rows: list[list], json_path: str | None = None, records=None) -> None:
    """Print a markdown table (pasteable into README) and optionally dump ``records`` as JSON."""
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    if json_path:
        Path(json_path).write_text(json.dumps(records, indent=2))
