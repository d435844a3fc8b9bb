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
  exits with 130; SIGTERM unwinds the same way (temporary files removed) and exits with 143.

Imports Typer and rich only (no torch): a command's ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any, NoReturn

import typer

from robust_mix.errors import RobustMixError, UsageError

__all__ = [
    "MAX_CLASSES",
    "MAX_NAME_CHARS",
    "MAX_PATH_CHARS",
    "MAX_SIDE",
    "Option",
    "Range",
    "Terminated",
    "check_options",
    "check_path_length",
    "command",
    "exit_status",
    "fail",
    "one_line",
    "parameters",
    "progress",
    "reported",
    "run",
]


#: The longest path (characters) an option takes, and the longest folder or file name in it: Linux's
#: PATH_MAX and NAME_MAX; a longer one fails in the system call ("File name too long") after work began.
MAX_PATH_CHARS, MAX_NAME_CHARS = 4096, 255
#: The largest image side (px) an option accepts (model input, resize target, crop): 4096 px is
#: 16.8 million pixels per image, far above any benchmark's 224-512 px and below Pillow's bomb limit.
MAX_SIDE = 4096
#: The most classes a classifier option accepts (ImageNet-21k has 21,843).
MAX_CLASSES = 1_000_000


def check_path_length(flag: str, path: str | os.PathLike[str]) -> None:
    """Raise :class:`UsageError` when ``path`` is longer than :data:`MAX_PATH_CHARS` characters or
    holds a name longer than :data:`MAX_NAME_CHARS` (the system refuses both)."""
    text = os.fspath(path)
    longest = max((len(part) for part in PurePath(text).parts), default=0)
    if len(text) > MAX_PATH_CHARS or longest > MAX_NAME_CHARS:
        raise UsageError(
            f"{flag}: the path is {len(text)} characters long with a name of {longest}; the system takes at most "
            f"{MAX_PATH_CHARS} characters and {MAX_NAME_CHARS} per folder or file name: pass a shorter path"
        )


def one_line(message: object) -> str:
    """``message`` as one line (whitespace runs, newlines included, become one space)."""
    return " ".join(str(message).split())


def exit_status(exc: BaseException) -> tuple[int, str]:
    """The exit status and the one-line text a command ends with on ``exc``.

    A full, read-only or forbidden disk (an ``OSError`` of :data:`robust_mix.files.MACHINE_ERRNOS`,
    raw or as :class:`~robust_mix.files.FileProblem`) is 1 with the file named and no ``[Errno N]``;
    a path the system refuses as too long is 2, its first 60 characters named;
    any other ``OSError`` (a missing file, a folder locked by another run) is bad input, 2; another
    project error has its ``exit_code``; anything else is 2.
    """
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        name = one_line(exc.filename if exc.filename is not None else "a path")
        return 2, (
            f"'{name[:60]}...' is longer than the system takes ({MAX_PATH_CHARS} characters, "
            f"{MAX_NAME_CHARS} per folder or file name); pass a shorter path"
        )
    if isinstance(exc, OSError):
        from robust_mix.files import machine_problem  # numpy: only on this failure path

        problem = machine_problem(exc)
        return (2, str(exc)) if problem is None else (1, str(problem))
    return (exc.exit_code if isinstance(exc, RobustMixError) else 2), str(exc)


def fail(prog: str, message: object, code: int | None = None) -> NoReturn:
    """Print ``<prog>: error: <message>`` (one line) on stderr and exit with ``code``.

    ``message`` may be the exception that ends the command: then ``code`` (when not given) and the
    text come from :func:`exit_status`. A plain message exits with 2 unless ``code`` says otherwise.
    """
    if isinstance(message, BaseException):
        status, message = exit_status(message)
        code = status if code is None else code
    typer.echo(f"{prog}: error: {one_line(message)}", err=True)
    raise typer.Exit(2 if code is None else code)


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
        fail(prog, exc, 1 if exit_status(exc)[0] == 1 and isinstance(exc, OSError) else 2)
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
    message's ``must be ...`` part when the range alone does not say what is meant. A path (a ``Path``
    value, or text with ``path`` set) longer than the system takes is refused (:func:`check_path_length`).
    """

    name: str  # the parameter name (the flag with '-' for '_')
    annotation: Any
    default: Any = None
    range: Range | None = None
    unit: str | None = None
    message: str | None = None
    path: bool = False  # a text value that names a file or folder (Path values always are)

    @property
    def flag(self) -> str:
        """The long flag the annotation declares (``--checkpoint`` for ``base_checkpoint``), else
        the parameter name with ``-`` for ``_``."""
        for info in getattr(self.annotation, "__metadata__", ()):
            # in an Annotated option Typer keeps the first declaration in ``default``
            decls = [getattr(info, "default", None), *(getattr(info, "param_decls", ()) or ())]
            longs = [d.split("/")[0] for d in decls if isinstance(d, str) and d.startswith("--")]
            if longs:
                return max(longs, key=len)
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """Raise :class:`UsageError` (one line) when ``value`` is out of range or is a path the system
        would refuse as too long (None passes)."""
        for path in value if isinstance(value, (list, tuple)) else (value,):
            if isinstance(path, PurePath) or (self.path and isinstance(path, str)):
                check_path_length(self.flag, path)
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
    ``leading`` parameters (arguments, the Typer context) and ``options``. Before ``body`` runs, every
    range of ``options`` is checked and every path argument's length (one line, exit status 2)."""

    def handler(**values: Any) -> Any:
        try:
            for param in leading:  # arguments: a path the system would refuse, before any work
                value = values.get(param.name)
                if isinstance(value, PurePath):
                    check_path_length(param.name.upper(), value)
            check_options(options, values)  # every declared range, before the body imports anything
        except UsageError as exc:
            fail(app.info.name or name, exc)
        return body(**values)

    params = [*leading, *parameters(options)]
    handler.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    handler.__annotations__ = {p.name: p.annotation for p in params}  # what Typer's get_type_hints reads
    handler.__doc__ = doc if doc is not None else body.__doc__
    handler.__name__ = name.replace("-", "_")
    handler.options = tuple(options)  # type: ignore[attr-defined]  # the declarations, for sweeps
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


class Terminated(BaseException):
    """SIGTERM (``kill``, SLURM's ``scancel``, torchrun stopping its workers) as an exception.

    Python's default for SIGTERM ends the process at once, skipping every ``finally``: temporary
    files of an atomic write or a merge stay behind. Raised instead, it unwinds the stack (like
    ``SystemExit``, it is no ``Exception``, so only ``finally`` and ``except BaseException`` clean-ups
    see it), so each writer removes its temporary file, and the command ends with one line and
    status 143 (128 + SIGTERM).
    """


def _terminate_handler(main_pid: int) -> Callable[[int, Any], None]:
    def handler(signum: int, frame: Any) -> None:
        if os.getpid() != main_pid:  # a forked worker: the default (end at once), as before
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Terminated()

    return handler


def _catch_sigterm() -> None:
    """Turn SIGTERM into :class:`Terminated` in this (main) process, unless someone else handles it."""
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _terminate_handler(os.getpid()))


def run(app: typer.Typer, prog: str) -> NoReturn:
    """Run a Typer app as the console command ``prog`` with the failure format of this module.

    SIGTERM ends the command like Ctrl-C (temporary files removed), with ``<prog>: terminated`` and
    status 143.
    """
    parse_errors, aborts = _click_errors()
    _catch_sigterm()
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
    except OSError as exc:  # a path the system refuses as too long, wherever it was used
        if exc.errno != errno.ENAMETOOLONG:
            raise
        typer.echo(f"{prog}: error: {exit_status(exc)[1]}", err=True)
        sys.exit(2)
    except Terminated:
        typer.echo(f"{prog}: terminated", err=True)
        sys.exit(143)
    except aborts:
        typer.echo(f"{prog}: interrupted", err=True)
        sys.exit(130)
    except typer.Exit as exc:  # raised by fail() inside a command
        sys.exit(exc.exit_code)
    sys.exit(status if isinstance(status, int) else 0)
