"""The CLI skeleton shared by ``ipmix-fractals``, ``timm`` and ``robust-eval``: one failure format.

Every command reports a problem as one line on stderr, ``<command>: error: <what>, <how to fix>``,
and exits with status 2 for bad input (usage errors of the parser included: an unknown option, a
wrong type, a missing argument) or 1 for a problem of the machine (a full or read-only disk). No
traceback, no box. Ctrl-C prints ``<command>: interrupted`` and exits with 130.
"""

from __future__ import annotations

import sys
from typing import NoReturn

import typer

__all__ = ["fail", "one_line", "run"]


def one_line(message: object) -> str:
    """``message`` as one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(message).split())


def fail(prog: str, message: object, code: int = 2) -> NoReturn:
    """Print ``<prog>: error: <message>`` (one line) on stderr and exit with ``code``."""
    typer.echo(f"{prog}: error: {one_line(message)}", err=True)
    raise typer.Exit(code)


def _click_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    parse: tuple[type[BaseException], ...] = (
        (typer.TyperException,) if hasattr(typer, "TyperException") else ()
    )
    aborts: tuple[type[BaseException], ...] = (typer.Abort, KeyboardInterrupt)
    try:
        import click

        parse += (click.exceptions.ClickException,)
        aborts += (click.exceptions.Abort,)
    except ImportError:  # pragma: no cover - Typer without a separate Click
        pass
    return parse, aborts


def run(app: typer.Typer, prog: str) -> NoReturn:
    """Run a Typer app as the console command ``prog`` with the failure format of this module."""
    parse_errors, aborts = _click_errors()
    try:
        status = app(prog_name=prog, standalone_mode=False)
    except parse_errors as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(message, err=True)  # no arguments at all: the help text
        else:
            typer.echo(f"{prog}: error: {one_line(message)}", err=True)
        sys.exit(getattr(exc, "exit_code", 2) or 2)
    except aborts:
        typer.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:  # raised by fail() inside a command
        sys.exit(exc.exit_code)
    sys.exit(status if isinstance(status, int) else 0)
