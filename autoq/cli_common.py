"""Small helpers the `autoq` commands share (consoles, JSON output, option checks)."""
from __future__ import annotations

import json
from pathlib import Path

import typer

from autoq.errors import UserError
from autoq.limits import MAX_INPUT_SIDE

def _wide_console():
    """A console at least 160 columns wide: the front tables (11 columns, VGG-7's 8-digit flash)
    must not be cut to a narrow terminal or to a pipe's default 80 columns."""
    from rich.console import Console

    return Console(width=max(Console().width, 160))


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


def _parse_shape(text: str) -> tuple[int, int, int]:
    """--input-shape H,W,C (or HxWxC), integers 1..4096."""
    try:
        shape = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1 or max(shape) > MAX_INPUT_SIDE:
        raise UserError(f"--input-shape: got {text!r}; allowed: H,W,C, integers 1..{MAX_INPUT_SIDE}, such as "
                        "32,32,3")
    return shape  # type: ignore[return-value]


def _check_range(option: str, value: int | None, low: int, high: int) -> None:
    """A numeric option in [low, high] (None = not given)."""
    if value is not None and not low <= value <= high:
        raise UserError(f"{option}: got {value}; allowed: an integer {low}..{high}")


def _check_output(option: str, path: str | None) -> None:
    """An output file path whose folder exists (checked before any work, so nothing is half-written)."""
    if path is None:
        return
    p = Path(path)
    if p.is_dir():
        raise UserError(f"{option}: {path!r} is a folder; allowed: a file path in an existing folder")
    if not (p.parent if str(p.parent) else Path(".")).is_dir():
        raise UserError(f"{option}: {path!r}: the folder {str(p.parent)!r} does not exist; allowed: a file path in "
                        "an existing folder")


# --- quantizers (foundation) -------------------------------------------------------------
