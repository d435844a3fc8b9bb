"""Option sweep of `timm train`: every option of the command gets bad values; each is refused cleanly.

The options are read from the command itself (click parameters) and their constraints from
:class:`timm_ext.train.TrainConfig`'s declared metadata (``range``, ``choices``, ``path``), never from a
hand-written list: a new option is swept automatically, and a numeric option without a declared range
fails :func:`test_every_numeric_option_declares_its_constraint`. A value the declaration allows is not
run. Every refusal must happen before any data loading or model building (both are replaced by a trap).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import fields
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typing

import pytest
from typer.main import get_command

from timm_ext import cli
from timm_ext.train.config import Range, TrainConfig

COMMAND = get_command(cli.app).commands["train"]
FIELDS = {f.name: f for f in fields(TrainConfig)}
OPTIONS = [p for p in COMMAND.params if p.param_type_name == "option"]


def _base_type(param) -> type:
    """The option's Python type as the parser declares it (``Optional[int]`` -> ``int``)."""
    annotation = param.type_descriptor.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def _meta(param) -> dict:
    if param.name == "config":  # the one option that is not a setting: a YAML file that must exist
        return {"path": "file"}
    return dict(FIELDS[param.name].metadata)


def _is_number(param) -> bool:
    return _base_type(param) in (int, float)


def _allowed(param, value: float) -> bool:
    """Whether the declaration accepts ``value`` (then the sweep does not run it)."""
    meta = _meta(param)
    if not math.isfinite(value):
        return False
    if _base_type(param) is int and value != int(value):
        return False
    if meta.get("choices") is not None:
        return value in meta["choices"]
    bounds: Range = meta["range"]
    return value in bounds


def _number_text(param, value: float) -> str:
    if _base_type(param) is int and math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(float(value))


def _bad_values(param, tmp_path: Path) -> list[str]:
    """A wrong type, a negative, zero, NaN/inf and out-of-range values (numbers); a bogus choice, a
    missing path (or a file where a folder is to be made); a value for a flag that takes none."""
    meta = _meta(param)
    if param.is_flag:
        return [f"{param.opts[0]}=maybe"]
    if _is_number(param):
        candidates = [-1.0, 0.0, math.nan, math.inf, -math.inf]
        bounds = meta.get("range")
        if meta.get("choices") is not None:
            candidates.append(max(meta["choices"]) + 1)
        if bounds is not None and bounds.high is not None:
            candidates += [bounds.high + 1, bounds.high] if bounds.high_open else [bounds.high + 1]
        if bounds is not None and bounds.low is not None:
            candidates += [bounds.low - 1, bounds.low] if bounds.low_open else [bounds.low - 1]
        texts = [_number_text(param, v) for v in candidates if not _allowed(param, v)]
        texts.append("99999999999999999999" if _base_type(param) is int else "1e308")  # overflow
        if _base_type(param) is int:
            texts.append("1.5")
        return ["abc", *dict.fromkeys(texts)]
    kind = meta.get("path")
    too_long = str(tmp_path / ("x" * 5000))  # longer than the system takes
    if kind == "new-dir":
        a_file = tmp_path / "a_file"
        a_file.write_text("not a folder")
        return [str(a_file), too_long]
    if kind is not None:
        return [str(tmp_path / "no" / "such" / "path"), too_long]
    return ["bogus-value"]


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--lr", "1e308"),
        ("--img-size", "99999999999999999999"),
        ("--img-size", "100000"),
        ("--num-classes", "99999999999999999999"),
        ("--output", "x" * 5000),
        ("--data-dir", "d/" + "x" * 300),
    ],
)
def test_overflowing_values_are_refused_naming_the_flag(flag, value, tmp_path, monkeypatch, capsys, trapped):
    """The values a probe found running on (or crashing with a traceback): one line naming the flag, at once."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    base = {"--data-dir": "d", "--device": "cpu", "--workers": "0", "--output": "run"}
    argv = [w for key, val in base.items() if key != flag for w in (key, val)] + [flag, value]
    started = time.monotonic()
    code, out, err = _run_cli(argv, monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"timm: error: {flag}"), err[:300]
    assert "Traceback" not in err + out
    assert time.monotonic() - started < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]  # nothing written


def _run_cli(argv: list[str], monkeypatch, capsys) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["timm", "train", *argv])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.fixture
def trapped(monkeypatch):
    """Data loading and model building raise: a value that gets past the checks is a failure."""

    def trap(*args, **kwargs):
        raise AssertionError("the sweep reached data loading / model building")

    monkeypatch.setattr("timm_ext.train.setup.load_data", trap)
    monkeypatch.setattr("timm_ext.train.setup.create_model", trap)


def test_every_numeric_option_declares_its_constraint():
    for param in OPTIONS:
        if _is_number(param):
            meta = _meta(param)
            assert meta.get("range") is not None or meta.get("choices") is not None, param.name
            if meta.get("choices") is None:  # a finite upper bound: 1e308 / 10**20 never reach the run
                assert meta["range"].high is not None and math.isfinite(meta["range"].high), param.name
    assert len(OPTIONS) == len(FIELDS) + 1  # every setting is an option, plus --config


@pytest.mark.parametrize("param", OPTIONS, ids=lambda p: p.name)
def test_bad_values_are_one_line_exit_2_before_any_work(param, tmp_path, monkeypatch, capsys, trapped):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    base = {"--data-dir": str(data_dir), "--model": "resnet18", "--device": "cpu", "--workers": "0"}
    flag = max(param.opts, key=len)
    for i, value in enumerate(_bad_values(param, tmp_path)):
        out_dir = tmp_path / f"out{i}"
        argv = [word for key, val in base.items() if key != flag for word in (key, val)]
        if flag != "--output":
            argv += ["--output", str(out_dir)]
        argv += [value] if param.is_flag else [flag, value]
        code, out, err = _run_cli(argv, monkeypatch, capsys)
        lines = err.strip().splitlines()
        where = f"{flag} {value!r}: exit {code}, stderr {err!r}"
        assert code == 2, where
        assert len(lines) == 1 and lines[0].startswith("timm: error: "), where
        assert "Traceback" not in err + out, where
        assert not out_dir.exists(), where  # nothing written, not even the folder


def test_sweep_values_are_the_declared_complement():
    """The sweep's own logic: values the declaration allows are not swept, boundaries outside are."""
    by_name = {p.name: p for p in OPTIONS}
    smoothing = _bad_values(by_name["smoothing"], Path("/tmp"))  # [0, 1)
    assert "1.0" in smoothing and "0.0" not in smoothing and "nan" in smoothing
    epochs = _bad_values(by_name["epochs"], Path("/tmp"))  # int >= 1
    assert {"abc", "0", "-1", "1.5"} <= set(epochs) and "1" not in epochs
    sources = _bad_values(by_name["adautomix_sources"], Path("/tmp"))  # 2 or 3
    assert "4" in sources and "2" not in sources and "3" not in sources
