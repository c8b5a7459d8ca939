"""The `analyzer` command line: each command parses options, calls one library function and renders.

No Polars here (tests/test_architecture.py checks it). Errors from the library arrive as AnalyzerError
and leave as one line on stderr with exit code 2.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from analyzer import __version__
from analyzer.errors import AnalyzerError

app = typer.Typer(
    help="Post-mortem analysis of LLM API gateway logs and billing ledgers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"analyzer {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Post-mortem analysis of LLM API gateway logs and billing ledgers."""


def fail(e: AnalyzerError) -> typer.Exit:
    """Print the error as one line on stderr and give exit code 2."""
    err.print(f"error: {e.one_line()}", markup=False)
    return typer.Exit(2)


def main() -> None:
    """Entry point of the `analyzer` console script."""
    app()
