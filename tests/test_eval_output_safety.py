"""robust-eval output safety (issue 9): nothing a user owns is overwritten, one run per --out,
files written 0644 (subject to umask), an overall progress bar and --no-progress, --device auto.

Each test here fails on the code before this change (commit 40f5b4a) and passes after, except the
0644 one: the shared atomic writer (``robust_mix.files``) already fixed the 0600 results of
the issue, and that test keeps it so for every file an evaluation writes."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path

import pytest
from robust_eval_fixtures import make_data_root, write_project_checkpoint
from typer.testing import CliRunner

from robust_eval.cli import app
from robust_mix.files import OutputLock

runner = CliRunner()
GOLDEN = Path(__file__).parent / "data" / "golden" / "all.json"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    return {
        "root": root,
        "a": write_project_checkpoint(root / "a.pth"),
        "b": write_project_checkpoint(root / "b.pth", ema=True),  # another file content: another sha256
        "data": make_data_root(root / "data", n=20, with_p=False, with_c=False),
    }


def _clean(env, ckpt, out, *extra):
    args = ["clean", ckpt, "--data-dir", env["data"], "--out", out, *extra]
    return runner.invoke(app, [str(a) for a in args])


def _one_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_report_refuses_to_replace_a_markdown_file_it_did_not_write(tmp_path):
    result = tmp_path / "all.json"
    result.write_text(GOLDEN.read_text())
    mine = tmp_path / "all.md"
    mine.write_text("# my notes on all.json\n")
    line = _one_line(runner.invoke(app, ["report", str(result)]))
    assert str(mine) in line and "--force" in line
    assert mine.read_text() == "# my notes on all.json\n"
    # --force replaces it; a report robust-eval wrote is replaced without asking
    assert runner.invoke(app, ["report", str(result), "--force"]).exit_code == 0
    assert mine.read_text().startswith("# robust-eval report: ")
    assert runner.invoke(app, ["report", str(result)]).exit_code == 0


def test_a_run_refuses_to_replace_the_result_of_another_checkpoint(env, tmp_path):
    out = tmp_path / "out"
    assert _clean(env, env["a"], out).exit_code == 0
    before = (out / "clean.json").read_bytes()
    line = _one_line(_clean(env, env["b"], out))
    assert str(out / "clean.json") in line and "another checkpoint" in line and "--out" in line
    assert (out / "clean.json").read_bytes() == before
    # the same checkpoint again resumes into the same folder
    assert _clean(env, env["a"], out).exit_code == 0
    assert (out / "clean.json").read_bytes() == before


def test_a_run_refuses_to_replace_a_file_that_is_not_a_result(env, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "clean.json").write_text('{"mine": 1}\n')
    line = _one_line(_clean(env, env["a"], out))
    assert str(out / "clean.json") in line
    assert (out / "clean.json").read_text() == '{"mine": 1}\n'
    (out / "clean.json").unlink()
    (out / "clean.md").write_text("my notes\n")
    line = _one_line(_clean(env, env["a"], out))
    assert str(out / "clean.md") in line
    assert (out / "clean.md").read_text() == "my notes\n"


def test_a_second_run_into_the_same_out_folder_refuses(env, tmp_path):
    out = tmp_path / "out"
    with OutputLock(out, "robust-eval all"):  # another run holds the folder
        line = _one_line(_clean(env, env["a"], out))
    assert str(out) in line and "in use" in line
    assert not (out / "clean.json").exists()
    assert _clean(env, env["a"], out).exit_code == 0  # released: the next run goes ahead
    assert not (out / OutputLock.NAME).exists()


def test_results_reports_and_plots_are_written_0644(env, tmp_path):
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        args = ["calibration", env["a"], "--data-dir", env["data"], "--out", out]
        assert runner.invoke(app, [str(a) for a in args]).exit_code == 0
    finally:
        os.umask(old)
    files = [out / "calibration.json", out / "calibration.md", *(out / "plots").glob("*.png")]
    assert len(files) == 3
    assert {oct(stat.S_IMODE(f.stat().st_mode)) for f in files} == {"0o644"}


def test_no_progress_is_accepted_and_the_overall_bar_counts_suites():
    from rich.console import Console

    from robust_eval.evaluate import _progress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with _progress(True, ["clean", "ood"], console=console) as bars:
        bars.next_suite("clean")
        with bars.track("clean", 10) as bar:
            bar.advance(10)
        bars.next_suite("ood")
        assert bars.overall_done == 1
    assert "suite 2/2: ood" in buffer.getvalue()
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    with _progress(False, ["clean"], console=console) as bars:
        bars.next_suite("clean")
        with bars.track("clean", 10) as bar:
            bar.advance(10)
    assert buffer.getvalue() == ""


def test_no_progress_flag_runs(env, tmp_path):
    result = _clean(env, env["a"], tmp_path / "out", "--no-progress")
    assert result.exit_code == 0, result.output


def test_device_auto_is_the_default_and_picks_cuda_when_available(monkeypatch):
    import torch

    from robust_eval.evaluate import OPTIONS_BY_NAME, _torch_device

    assert OPTIONS_BY_NAME["device"].default == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _torch_device("auto") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _torch_device("auto") == torch.device("cuda")


def test_device_auto_runs_and_records_the_device_used(env, tmp_path):
    out = tmp_path / "out"
    assert _clean(env, env["a"], out, "--device", "auto").exit_code == 0
    protocol = json.loads((out / "clean.json").read_text())["protocol"]
    import torch

    assert protocol["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
