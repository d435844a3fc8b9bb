"""``ipmix-fractals`` command: generate (layout, manifest, resume, refusals) and preview."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from albumentations_ipmix.cli import MANIFEST_NAME, TMP_MARK, app, picture_path
from albumentations_ipmix.fractals import kind_of, render_fractal

runner = CliRunner()
ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}


def _invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def _read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return bgr[:, :, ::-1]


def _pngs(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def _error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_generate_writes_an_imagefolder_layout_with_a_manifest(tmp_path: Path) -> None:
    out = tmp_path / "set"
    result = _invoke("generate", out, "--count", 7, "--size", 32, "--seed", 3, "--quiet")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["count"] == 7
    assert manifest["size"] == 32
    assert manifest["seed"] == 3
    assert manifest["kinds"] == ["ifs", "mandelbrot", "julia"]
    assert sorted(p.name for p in out.iterdir()) == sorted(["ifs", "julia", "mandelbrot", MANIFEST_NAME])
    assert len(_pngs(out)) == 7
    for index in range(7):
        kind = kind_of(index)
        path = picture_path(out, kind, index)
        assert path == out / kind / f"{kind}_{index:05d}.png"
        np.testing.assert_array_equal(_read_rgb(path), render_fractal(kind, 3, index, 32, 32))


def test_rerunning_keeps_finished_files(tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert _invoke("generate", out, "-n", 4, "-s", 32, "-q").exit_code == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    result = _invoke("generate", out, "-n", 4, "-s", 32, "--json")
    assert result.exit_code == 0
    summary = json.loads(result.stdout)
    assert summary["written"] == 0
    assert summary["kept"] == 4
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps


def test_interrupted_then_resumed_run_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    full, broken = tmp_path / "full", tmp_path / "broken"
    args = ("-n", 9, "-s", 40, "--seed", 5, "-q")
    assert _invoke("generate", full, *args).exit_code == 0
    assert _invoke("generate", broken, *args).exit_code == 0
    # Simulate an interruption: the last pictures are missing and a half-written temporary remains.
    for index in (4, 7, 8):
        picture_path(broken, kind_of(index), index).unlink()
    leftover = broken / "ifs" / f"{TMP_MARK}ifs_00009.png.abc"
    leftover.write_bytes(b"\x89PNG partial")
    kept_stamp = picture_path(broken, "ifs", 0).stat().st_mtime_ns

    result = _invoke("generate", broken, *args[:-1], "--resume", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["written"], summary["kept"]) == (3, 6)
    assert not leftover.exists()
    assert picture_path(broken, "ifs", 0).stat().st_mtime_ns == kept_stamp
    assert _pngs(broken) == _pngs(full)


@pytest.mark.slow
def test_killed_generate_process_resumes_to_identical_files(tmp_path: Path) -> None:
    full, killed = tmp_path / "full", tmp_path / "killed"
    cmd = [sys.executable, "-m", "albumentations_ipmix.cli", "generate"]
    params = ["--count", "90", "--size", "96", "--seed", "2", "--quiet"]
    proc = subprocess.Popen([*cmd, str(killed), *params], env=ENV, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(killed.rglob("*.png"))) < 6:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(list(killed.rglob("*.png")))
    assert 0 < done_before < 90, "the generator finished before it could be interrupted"

    resumed = subprocess.run([*cmd, str(killed), *params], env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    uninterrupted = subprocess.run([*cmd, str(full), *params], env=ENV, capture_output=True, text=True)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    assert len(_pngs(killed)) == 90
    assert _pngs(killed) == _pngs(full)
    assert not list(killed.rglob(f"{TMP_MARK}*"))


def test_refuses_a_non_empty_folder_it_did_not_create(tmp_path: Path) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.png").write_bytes(b"not ours")
    result = _invoke("generate", out, "-n", 3, "-s", 32)
    assert result.exit_code == 2
    line = _error_line(result)
    assert "not created by ipmix-fractals" in line
    assert "--force" in line
    assert sorted(p.name for p in out.iterdir()) == ["holiday.png"]

    forced = _invoke("generate", out, "-n", 3, "-s", 32, "--force", "-q")
    assert forced.exit_code == 0
    assert (out / "holiday.png").read_bytes() == b"not ours"
    assert len(list(out.rglob("*_0000*.png"))) == 3


def test_refuses_to_resume_with_different_parameters(tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert _invoke("generate", out, "-n", 3, "-s", 32, "-q").exit_code == 0
    before = _pngs(out)
    for changed in (["-n", "4", "-s", "32"], ["-n", "3", "-s", "48"], ["-n", "3", "-s", "32", "--seed", "1"]):
        result = _invoke("generate", out, *changed, "--resume")
        assert result.exit_code == 2
        assert "different parameters" in _error_line(result)
    assert _pngs(out) == before

    forced = _invoke("generate", out, "-n", 3, "-s", 32, "--seed", 1, "--force", "-q")
    assert forced.exit_code == 0
    np.testing.assert_array_equal(_read_rgb(picture_path(out, "ifs", 0)), render_fractal("ifs", 1, 0, 32, 32))
    assert json.loads((out / MANIFEST_NAME).read_text())["seed"] == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-n", "0"], "--count must be between 1 and"),
        (["-s", "8"], "--size must be between"),
        (["--seed", "-3"], "--seed must be a non-negative"),
        (["--kinds", "ifs,fern"], "unknown fractal kind(s) 'fern'"),
    ],
)
def test_bad_options_exit_2_with_one_line(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = _invoke("generate", tmp_path / "x", *args)
    assert result.exit_code == 2
    assert fragment in _error_line(result)
    assert not (tmp_path / "x").exists()


def test_resume_without_a_run_and_file_as_out_are_refused(tmp_path: Path) -> None:
    result = _invoke("generate", tmp_path / "nothing", "--resume")
    assert result.exit_code == 2
    assert "no run to resume" in _error_line(result)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    result = _invoke("generate", a_file)
    assert result.exit_code == 2
    assert "not a folder" in _error_line(result)


def test_parse_errors_of_the_real_command_are_one_line_without_traceback(tmp_path: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "albumentations_ipmix.cli",
        "generate",
        str(tmp_path / "o"),
        "--count",
        "many",
    ]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "--count" in lines[0]
    assert "Traceback" not in done.stderr


def test_help_documents_every_option() -> None:
    for command, options in {
        "generate": ["--count", "--size", "--seed", "--kinds", "--resume", "--force", "--json", "--quiet"],
        "preview": ["--count", "--size", "--seed", "--kinds", "--columns", "--force"],
    }.items():
        result = _invoke(command, "--help")
        assert result.exit_code == 0
        for option in options:
            assert option in result.stdout
    assert "ImageFolder" in _invoke("generate", "--help").stdout


def test_preview_writes_a_contact_sheet(tmp_path: Path) -> None:
    sheet_path = tmp_path / "sheet.png"
    result = _invoke("preview", sheet_path, "--count", 5, "--size", 32, "--columns", 3, "--seed", 4)
    assert result.exit_code == 0, result.output
    sheet = _read_rgb(sheet_path)
    gap = 2
    assert sheet.shape == (2 * (32 + gap) + gap, 3 * (32 + gap) + gap, 3)
    for index in (0, 4):
        row, col = divmod(index, 3)
        tile = sheet[gap + row * 34 : gap + row * 34 + 32, gap + col * 34 : gap + col * 34 + 32]
        np.testing.assert_array_equal(tile, render_fractal(kind_of(index), 4, index, 32, 32))
    # the sixth cell is empty background
    assert (sheet[gap + 34 : gap + 34 + 32, gap + 2 * 34 : gap + 2 * 34 + 32] == 24).all()

    again = _invoke("preview", sheet_path, "--count", 2, "--size", 32)
    assert again.exit_code == 2
    assert "--force" in _error_line(again)
    assert _invoke("preview", sheet_path, "--count", 2, "--size", 32, "--force").exit_code == 0
    assert _read_rgb(sheet_path).shape[1] == 2 * 34 + 2


def test_preview_needs_a_png_path(tmp_path: Path) -> None:
    result = _invoke("preview", tmp_path / "sheet.jpg")
    assert result.exit_code == 2
    assert ".png" in _error_line(result)


def test_parallel_workers_write_the_same_files(tmp_path: Path) -> None:
    serial, parallel = tmp_path / "serial", tmp_path / "parallel"
    assert _invoke("generate", serial, "-n", 8, "-s", 32, "-q").exit_code == 0
    result = _invoke("generate", parallel, "-n", 8, "-s", 32, "-q", "--workers", 2)
    assert result.exit_code == 0, result.output
    assert _pngs(parallel) == _pngs(serial)
    assert _invoke("generate", tmp_path / "bad", "--workers", -1).exit_code == 2


def test_written_files_follow_the_umask_not_mkstemp_0600(tmp_path: Path) -> None:
    out = tmp_path / "set"
    assert _invoke("generate", out, "-n", 2, "-s", 32, "-q").exit_code == 0
    umask = os.umask(0o022)
    os.umask(umask)
    for path in [*out.rglob("*.png"), out / MANIFEST_NAME]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


# -- hardening: one run per folder, kills, read-only and full disks ----------------------------------


def test_second_run_into_a_locked_folder_refuses_cleanly(tmp_path: Path) -> None:
    from robust_mix.files import OutputLock

    out = tmp_path / "set"
    with OutputLock(out, "ipmix-fractals generate"):  # another live run (this process) holds it
        result = _invoke("generate", out, "--count", 3, "--size", 32, "--quiet")
    assert result.exit_code == 1
    assert "in use by ipmix-fractals generate" in _error_line(result)
    assert list(out.rglob("*.png")) == []
    result = _invoke("generate", out, "--count", 3, "--size", 32, "--quiet")  # free again
    assert result.exit_code == 0, result.output
    assert len(list(out.rglob("*.png"))) == 3 and not (out / OutputLock.NAME).exists()


def _mount_tmpfs(mount: Path, options: str) -> None:
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        pytest.skip("cannot mount a tmpfs here")


@pytest.mark.parametrize("options", ["size=48k", "ro,size=1m"], ids=["full", "read-only"])
def test_full_or_read_only_output_gives_one_line(tmp_path: Path, options: str) -> None:
    mount = tmp_path / "mnt"
    _mount_tmpfs(mount, options)
    try:
        result = _invoke("generate", mount / "set", "--count", 40, "--size", 128, "--quiet")
        assert result.exit_code == 1, result.output
        line = _error_line(result)
        assert line.startswith("ipmix-fractals: error: cannot ")
        assert ("no space left" in line) or ("read-only" in line), line
        assert "Traceback" not in result.output
        assert not list(mount.rglob(f"{TMP_MARK}*"))
    finally:
        subprocess.run(["umount", str(mount)], check=False)


@pytest.mark.slow
def test_sigkill_with_workers_leaves_no_process_writing(tmp_path: Path) -> None:
    out = tmp_path / "set"
    cmd = [sys.executable, "-m", "albumentations_ipmix.cli", "generate", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--count", "400", "--size", "768", "--workers", "2", "--quiet"],
        env=ENV,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.rglob("*.png"))) < 4:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)  # workers get SIGKILL from the kernel when their parent goes away
    settled = len(list(out.rglob("*.png")))
    time.sleep(3)
    assert len(list(out.rglob("*.png"))) == settled < 400
    resumed = subprocess.run(
        [*cmd, "--count", "60", "--size", "64", "--quiet"], env=ENV, capture_output=True, text=True
    )
    assert resumed.returncode == 2  # a different count: the killed run's manifest is still there
    assert "different parameters" in resumed.stderr
