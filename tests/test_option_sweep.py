"""Every option of ``robust-eval`` and ``ipmix-fractals`` with bad values: one line, exit 2, nothing written.

The options are read from the commands themselves (Typer's click tree), not listed by hand, so a new
option is swept the day it is added. Each command is invoked in-process with its required arguments set
to something that fails *after* option validation (a missing checkpoint, a missing source, an output
path that is a file), so:

- a value that can never be valid for a number (not a number, NaN, infinity, a negative) must be
  refused naming the option;
- zero and a huge value may be valid (a seed of 0): then the run goes on to the expected failure of the
  required argument, still as one line with exit status 2;
- a value outside the range the command declares (:class:`robust_mix.cli.Option`; 1e308 and
  99999999999999999999 are outside every one) and a path longer than the system takes must be refused
  naming the option, with the required arguments *valid* (a real checkpoint, a real source, a new output
  folder), so the refusal is that value's and not a missing file's;
- in every case: exactly one line on stderr starting ``<command>: error:``, exit status 2, no traceback,
  nothing written into the working folder, within seconds.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import typer
from robust_eval_fixtures import write_project_checkpoint

from albumentations_ipmix.cli import app as fractals_app
from robust_eval.cli import app as eval_app
from robust_mix.cli import Option, run

NEVER_VALID = ("abc", "nan", "inf", "-inf", "-1")
MAYBE_VALID = ("0", "1000000000", "99999999999999999999", "1e308")
BOGUS_TEXT = "bogus"

# required positional arguments per command path, chosen to fail after the options are checked
POSITIONALS: dict[tuple[str, ...], list[str]] = {
    ("robust-eval", "report"): ["missing.json"],
    ("robust-eval", "compare"): ["missing_a.json", "missing_b.json"],
    ("robust-eval", "make-c"): ["missing_src", "out", "--preset", "cifar"],
    ("robust-eval", "make-p"): ["missing_src", "out", "--preset", "cifar"],
    ("robust-eval", "data", "check"): ["--data-dir", "missing_data"],
    ("robust-eval", "data", "digits"): ["afile"],
    ("ipmix-fractals", "generate"): ["afile"],
    ("ipmix-fractals", "preview"): ["afile/sheet.png"],
}
CHECKPOINT = ["missing.pth"]  # every evaluation command
# required arguments that are valid, for the values a command must refuse by themselves
VALID: dict[tuple[str, ...], list[str]] = {
    ("robust-eval", "make-c"): ["src.npy", "new_out", "--preset", "cifar"],
    ("robust-eval", "make-p"): ["src.npy", "new_out", "--preset", "cifar"],
    ("robust-eval", "baseline"): ["new_baseline.json"],
    ("ipmix-fractals", "generate"): ["new_out"],
    ("ipmix-fractals", "preview"): ["sheet.png"],
}
VALID_CHECKPOINT = ["model.pth"]
TOO_LONG_PATH = "x" * 5000
#: How long one refusal may take (seconds; the first may import torch).
BOUND_S = 30.0


def _commands() -> Iterator[tuple[tuple[str, ...], typer.Typer, Any]]:
    for prog, app in (("robust-eval", eval_app), ("ipmix-fractals", fractals_app)):

        def walk(node: Any, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
            if hasattr(node, "commands"):
                for name, sub in node.commands.items():
                    yield from walk(sub, (*path, name))
            else:
                yield path, node

        for path, command in walk(typer.main.get_command(app), (prog,)):
            yield path, app, command


COMMANDS = list(_commands())


def _annotation(param: Any) -> Any:
    annotation = param.type_descriptor.annotation
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return args[0] if len(args) == 1 and getattr(annotation, "__origin__", None) is not list else annotation


def _declared(command: Any) -> dict[str, Option]:
    """The :class:`Option` rows a command was built from (robust_mix.cli.command), by parameter name."""
    return {o.name: o for o in getattr(command.callback, "options", ())}


def _refused(option: Option | None, value: str) -> bool:
    """Whether ``option``'s declared range refuses ``value`` (a number's text)."""
    if option is None or option.range is None:
        return False
    number = float(value)
    return not math.isfinite(number) or (number if number != int(number) else int(number)) not in option.range


def _cases(command: Any) -> list[tuple[str, str, bool]]:
    """(option, value, must_name_the_option) for every non-flag option of ``command``."""
    cases = []
    declared = _declared(command)
    for param in command.params:
        if param.param_type_name != "option" or getattr(param, "is_flag", False):
            continue
        opt = max(param.opts, key=len)
        kind = _annotation(param)
        option = declared.get(param.name)
        if kind in (int, float):
            cases += [(opt, v, True) for v in NEVER_VALID]
            cases += [(opt, v, _refused(option, v)) for v in MAYBE_VALID]
        elif kind is Path:
            cases.append((opt, "missing_dir/missing_file", False))
            cases.append((opt, TOO_LONG_PATH, option is not None))
        else:
            cases.append((opt, BOGUS_TEXT, False))
    return cases


def _invoke(app: typer.Typer, prog: str, args: list[str], capsys: Any, monkeypatch: Any) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", [prog, *args])
    with pytest.raises(SystemExit) as stop:
        run(app, prog)
    code = stop.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize(("path", "app", "command"), COMMANDS, ids=[" ".join(c[0]) for c in COMMANDS])
def test_every_option_with_bad_values(path, app, command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "80")
    (tmp_path / "afile").write_text("a file where a folder is expected\n")
    np.save(tmp_path / "src.npy", np.zeros((4, 32, 32, 3), np.uint8))
    write_project_checkpoint(tmp_path / "model.pth")
    before = sorted(os.listdir(tmp_path))
    prog, words = path[0], list(path[1:])
    required = POSITIONALS.get(path, CHECKPOINT)
    valid = VALID.get(path, VALID_CHECKPOINT)
    cases = _cases(command)  # may be empty (flags only): then the required arguments alone are checked
    failures = []
    for opt, value, must_name in [("", "", False), *cases]:
        args = [*words, *(valid if must_name else required), *([f"{opt}={value}"] if opt else [])]
        started = time.monotonic()
        code, err = _invoke(app, prog, args, capsys, monkeypatch)
        took = time.monotonic() - started
        lines = [line for line in err.splitlines() if line.strip()]
        problem = None
        if took > BOUND_S:
            problem = f"took {took:.0f} s"
        elif code != 2 or len(lines) != 1 or not lines[0].startswith(f"{prog}: error: "):
            problem = f"exit {code}, stderr {err!r}"
        elif "Traceback" in err or "╭" in err:
            problem = "traceback/box"
        elif must_name and opt not in lines[0]:
            problem = f"message does not name {opt}: {lines[0]!r}"
        elif sorted(os.listdir(tmp_path)) != before:
            problem = f"wrote {sorted(set(os.listdir(tmp_path)) - set(before))}"
        if problem:
            failures.append(f"{' '.join(args)[:300]}: {problem[:300]}")
    assert not failures, "\n".join(failures)


def test_every_declared_number_has_a_finite_upper_bound():
    """A number without one lets 1e308 or 99999999999999999999 through to the run (overflow, hours)."""
    unbounded = [
        f"{' '.join(path)} {option.flag}"
        for path, _, command in COMMANDS
        for param in command.params
        if _annotation(param) in (int, float) and param.param_type_name == "option"
        for option in [_declared(command).get(param.name)]
        if option is None or option.range is None or option.range.high is None
    ]
    assert not unbounded, unbounded


@pytest.mark.parametrize(
    "args",
    [
        ["all", "model.pth", "--eps", "1e308"],
        ["adversarial", "model.pth", "--steps", "99999999999999999999"],
        ["clean", "model.pth", "--num-classes", "99999999999999999999"],
        ["clean", "model.pth", "--input-size", "100000"],
        ["clean", "model.pth", "--input-size", "3,99999999999999999999,99999999999999999999"],
        ["clean", "model.pth", "--out", TOO_LONG_PATH],
        ["clean", TOO_LONG_PATH],
        ["make-c", "src.npy", "new_out", "--preset", "cifar", "--size", "99999999999999999999"],
        ["make-c", "src.npy", "new_out", "--preset", "cifar", "--size", "100000"],
        ["make-p", "src.npy", "new_out", "--preset", "cifar", "--fps", "1e308"],
        ["make-c", "src.npy", TOO_LONG_PATH, "--preset", "cifar"],
    ],
    ids=lambda a: " ".join(a)[:50],
)
def test_overflowing_values_are_refused_at_once(args, tmp_path, capsys, monkeypatch):
    """The values a probe found running on or ending in a traceback: one line naming them, nothing written."""
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "src.npy", np.zeros((4, 32, 32, 3), np.uint8))
    write_project_checkpoint(tmp_path / "model.pth")
    started = time.monotonic()
    code, err = _invoke(eval_app, "robust-eval", args, capsys, monkeypatch)
    assert time.monotonic() - started < BOUND_S
    assert code == 2 and err.count("\n") == 1 and err.startswith("robust-eval: error: "), err[:300]
    named = next(a for a in args[::-1] if a.startswith("--") or a == TOO_LONG_PATH)
    assert named in err or "path is 5000 characters" in err, err[:300]
    assert sorted(os.listdir(tmp_path)) == ["model.pth", "src.npy"]


def test_the_sweep_covers_every_command_and_every_kind_of_option():
    kinds = {_annotation(p) for _, _, c in COMMANDS for p in c.params if p.param_type_name == "option"}
    assert {int, float, Path, str} <= kinds
    names = {" ".join(path) for path, _, _ in COMMANDS}
    assert {
        "robust-eval all",
        "robust-eval make-c",
        "robust-eval baseline",
        "ipmix-fractals generate",
    } <= names
    assert sum(len(_cases(c)) for _, _, c in COMMANDS) > 300
