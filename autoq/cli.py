"""The `autoq` command line. Thin: parse options, call the library, print.

Heavy modules (TensorFlow, Optuna, ONNX) are imported inside the commands that need them so
that `autoq --help` and the inspection commands answer quickly.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

import typer

from autoq.errors import UserError
from autoq.tf_env import set_quiet_env

set_quiet_env()

app = typer.Typer(
    help="autoq: search per-layer quantization of a CNN for accuracy and board cost, "
    "inspect the Pareto front, export the chosen model as ONNX + packed weights + C.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True),
) -> None:
    """autoq: mixed-precision quantization search for CNNs on embedded boards."""
    if version:
        from autoq import __version__

        typer.echo(__version__)
        raise typer.Exit()


def _print_json(obj) -> None:
    typer.echo(json.dumps(obj, indent=2, sort_keys=False, default=str))


# --- quantizers (foundation) -------------------------------------------------------------


@app.command("quantizers")
def quantizers_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List every registered quantizer: parameters, defaults, bits, kind, role."""
    from autoq.quant import describe_all

    rows = describe_all()
    if as_json:
        _print_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="autoq quantizers")
    for col in ("name", "role", "bits", "kind (w/a)", "parameters", "summary"):
        table.add_column(col)
    for r in rows:
        params = ", ".join(f"{k}={v!r}" for k, v in r["parameters"].items())
        kinds = " ".join(f"{role[0]}:{kind}" for role, kind in r["kind_by_role"].items())
        table.add_row(r["name"], r["role"], str(r["bits"]), kinds, params, r["summary"])
    Console().print(table)


# --- commands of the other parts are added below, one section each ------------------------


def main() -> None:
    """Console-script entry point: user errors print one clear line and exit with code 2."""
    try:
        app()
    except UserError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
