"""The CLI skeleton shared by ``ipmix-fractals``, ``timm`` and ``robust-eval``: one way to declare an
option, one command builder, one progress factory and one failure path.

- :class:`Option` declares an option once: its parameter name, its Typer annotation (flags, help),
  its default and its valid :class:`Range` (with a unit for the message). :func:`check_options`
  enforces the ranges of the options a command received, :func:`command` registers a Typer command
  whose signature is built from a list of options (Typer reads ``__signature__``).
- :func:`progress` is the one factory of rich progress bars (on stderr unless told otherwise).
- Failures: every command reports a problem as one line on stderr, ``<command>: error: <what>, <how
  to fix>``, and exits with status 2 for bad input (usage errors of the parser included: an unknown
  option, a wrong type, a missing argument) or 1 for a problem of the machine (a full or read-only
  disk). :func:`reported` turns the project's one exception base
  (:class:`robust_mix.errors.RobustMixError`, exit status from the error) and any extra types a
  command names into that line. No traceback, no box. Ctrl-C prints ``<command>: interrupted`` and
  exits with 130.

Imports Typer and rich only (no torch): a command's ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import typer

from robust_mix.errors import RobustMixError, UsageError

__all__ = [
    "Option",
    "Range",
    "check_options",
    "command",
    "fail",
    "one_line",
    "parameters",
    "progress",
    "reported",
    "run",
]


def one_line(message: object) -> str:
    """``message`` as one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(message).split())


def fail(prog: str, message: object, code: int = 2) -> NoReturn:
    """Print ``<prog>: error: <message>`` (one line) on stderr and exit with ``code``."""
    typer.echo(f"{prog}: error: {one_line(message)}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def reported(
    prog: str,
    usage: tuple[type[BaseException], ...] = (),
    machine: tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """The one failure path of a command body: a :class:`RobustMixError` ends the command with one
    line and its ``exit_code``; other exception types the command names end it with status 2
    (``usage``: bad input) or 1 (``machine``: the disk, the system)."""
    try:
        yield
    except typer.Exit:
        raise
    except RobustMixError as exc:
        fail(prog, exc, exc.exit_code)
    except usage as exc:
        fail(prog, exc, 2)
    except machine as exc:
        fail(prog, exc, 1)


def _num(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


@dataclass(frozen=True)
class Range:
    """The interval a numeric option must lie in (``None``: unbounded on that side).

    ``finite``: a float must also be finite (``nan`` and ``inf`` are refused).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    finite: bool = True

    def __contains__(self, value: float) -> bool:
        if self.finite and isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        """``>= 1``, ``> 0`` or ``in [0, 1)``."""
        if self.high is None:
            return "any number" if self.low is None else f"{'>' if self.low_open else '>='} {_num(self.low)}"
        lo = "(-inf" if self.low is None else f"{'(' if self.low_open else '['}{_num(self.low)}"
        return f"in {lo}, {_num(self.high)}{')' if self.high_open else ']'}"


@dataclass(frozen=True)
class Option:
    """One command-line option: parameter name, Typer annotation (flags + help), default, valid range.

    ``unit`` (e.g. ``"in 1/255 units"``) goes into the out-of-range message; ``message`` replaces the
    message's ``must be ...`` part when the range alone does not say what is meant.
    """

    name: str  # the parameter name (the flag with '-' for '_')
    annotation: Any
    default: Any = None
    range: Range | None = None
    unit: str | None = None
    message: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """Raise :class:`UsageError` (one line) when ``value`` is out of range (None passes)."""
        if value is None or self.range is None or value in self.range:
            return
        if self.message is not None:
            raise UsageError(f"{self.flag} must be {self.message}, got {value}")
        if self.unit is not None:
            raise UsageError(
                f"{self.flag} must be a finite number {self.range.describe()} ({self.unit}), got {value}"
            )
        raise UsageError(f"{self.flag} must be {self.range.describe()}, got {value}")

    def parameter(self, kind: inspect._ParameterKind = inspect.Parameter.KEYWORD_ONLY) -> inspect.Parameter:
        """The signature parameter Typer reads for this option."""
        return inspect.Parameter(self.name, kind, default=self.default, annotation=self.annotation)


def check_options(options: Sequence[Option], values: dict[str, Any]) -> None:
    """Every range of ``options`` whose value is in ``values`` (the first one out of range raises)."""
    for option in options:
        if option.name in values:
            option.check(values[option.name])


def parameters(options: Sequence[Option]) -> list[inspect.Parameter]:
    """Keyword-only signature parameters (what Typer reads) of ``options``."""
    return [option.parameter() for option in options]


def command(
    app: typer.Typer,
    name: str,
    body: Callable[..., Any],
    options: Sequence[Option],
    doc: str | None = None,
    leading: Sequence[inspect.Parameter] = (),
    **settings: Any,
) -> Callable[..., Any]:
    """Register ``body(**values)`` as command ``name`` of ``app``, its signature built from the
    ``leading`` parameters (arguments, the Typer context) and ``options``."""

    def handler(**values: Any) -> Any:
        return body(**values)

    params = [*leading, *parameters(options)]
    handler.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    handler.__annotations__ = {p.name: p.annotation for p in params}  # what Typer's get_type_hints reads
    handler.__doc__ = doc if doc is not None else body.__doc__
    handler.__name__ = name.replace("-", "_")
    app.command(name, **settings)(handler)
    return handler


def progress(console: Any = None, *fields: Any, enabled: bool = True, **settings: Any) -> Any:
    """The project's rich progress bar: ``fields`` (default: description, bar, done/total, time left)
    on ``console`` (default: stderr); ``enabled`` False draws nothing."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = fields or (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    console = console if console is not None else Console(stderr=True)
    return Progress(*columns, console=console, disable=not enabled, **settings)


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
    except RobustMixError as exc:  # a project error no command body caught
        typer.echo(f"{prog}: error: {one_line(exc)}", err=True)
        sys.exit(exc.exit_code)
    except aborts:
        typer.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:  # raised by fail() inside a command
        sys.exit(exc.exit_code)
    sys.exit(status if isinstance(status, int) else 0)
