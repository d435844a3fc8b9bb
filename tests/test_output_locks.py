"""Every command that writes takes the one output lock, and a machine problem is one line with exit 1.

Real processes: a second process holds the lock (as a concurrent run would) while the command runs;
two ``make-c`` runs start together; the outputs sit on a read-only tmpfs where the machine allows it.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robust_mix.cli import exit_status

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "data" / "golden" / "all.json"
LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return env


def _cmd(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "robust_mix", *map(str, args)],
        env=_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _line(done: subprocess.CompletedProcess) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip() and "━" not in line]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


class _Holder:
    """Another live process holding ``OutputLock(folder, command, name)``."""

    def __init__(self, folder: Path, command: str, name: str | None = None) -> None:
        code = (
            "import sys; from robust_mix.files import OutputLock\n"
            f"with OutputLock({str(folder)!r}, {command!r}, {name!r}):\n"
            "    print('ready', flush=True); sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def __enter__(self) -> _Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.wait(timeout=30)


def test_compare_refuses_an_out_folder_in_use(tmp_path):
    out = tmp_path / "cmp"
    with _Holder(out, "robust-eval compare"):
        done = _cmd("robust-eval", "compare", GOLDEN, GOLDEN, "--out", out)
    assert done.returncode == 2 and "in use by robust-eval compare" in _line(done)
    assert not out.exists()  # nothing written; the holder removed the folder it had made
    assert _cmd("robust-eval", "compare", GOLDEN, GOLDEN, "--out", out).returncode == 0  # free again
    assert (out / "compare.json").is_file() and not (out / ".lock").exists()


def test_preview_refuses_a_sheet_in_use(tmp_path):
    with _Holder(tmp_path, "ipmix-fractals preview", ".sheet.png.lock"):
        done = _cmd("ipmix-fractals", "preview", tmp_path / "sheet.png", "--count", 2, "--size", 16)
    assert done.returncode == 2 and "in use by ipmix-fractals preview" in _line(done)
    assert not (tmp_path / "sheet.png").exists()
    assert (
        _cmd("ipmix-fractals", "preview", tmp_path / "sheet.png", "--count", 2, "--size", 16).returncode == 0
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sheet.png"]


def _npy_set(folder: Path, n: int = 64) -> list[object]:
    rng = np.random.default_rng(0)
    np.save(folder / "clean.npy", rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", np.arange(n) % 10)
    return [folder / "clean.npy", "--labels", folder / "labels.npy", "--name", "set", "--preset", "cifar"]


def test_make_c_refuses_an_out_folder_in_use_and_two_runs_never_collide(tmp_path):
    src, *rest = _npy_set(tmp_path)
    args = ["--corruptions", "zoom_blur,glass_blur", "--severities", "1", "--no-progress"]
    out = tmp_path / "out"
    with _Holder(out, "robust-eval make-c"):
        done = _cmd("robust-eval", "make-c", src, out, *rest, *args)
    assert done.returncode == 1 and "in use by robust-eval make-c" in _line(done)
    assert not out.exists()
    # two runs started together: each either writes the set or refuses with the lock's one line
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "robust_mix",
                "robust-eval",
                "make-c",
                *map(str, (src, out, *rest, *args)),
            ],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    assert 0 in [code for code, _ in results], results
    for code, err in results:
        assert code in (0, 1) and "Errno" not in err and "Traceback" not in err, err
        if code:
            assert "in use by robust-eval make-c" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in (out / "set-C").iterdir()) == [
        "glass_blur.npy",
        "labels.npy",
        "manifest.json",
        "zoom_blur.npy",
    ]


@pytest.fixture
def read_only(tmp_path: Path):
    mount = tmp_path / "ro"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode:
        pytest.skip("cannot mount a read-only tmpfs here")
    yield mount
    for _ in range(20):
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode == 0:
            break
        time.sleep(0.2)


def test_a_read_only_out_is_one_line_and_exit_1_for_every_writer(tmp_path, read_only):
    src, *rest = _npy_set(tmp_path, 8)
    runs = [
        ("robust-eval", "data", "digits", read_only / "d"),
        ("robust-eval", "compare", GOLDEN, GOLDEN, "--out", read_only / "c"),
        ("robust-eval", "make-c", src, read_only / "m", *rest, "--corruptions", "contrast", "--no-progress"),
        ("ipmix-fractals", "generate", read_only / "f", "--count", 2, "--size", 16, "--quiet"),
        ("ipmix-fractals", "preview", read_only / "s.png", "--count", 2, "--size", 16),
    ]
    for args in runs:
        done = _cmd(*args)
        line = _line(done)
        assert done.returncode == 1, (args, done.stderr)
        assert "read-only" in line and "Errno" not in line, line


def test_exit_status_maps_machine_errors_to_1_and_the_rest_to_2():
    code, text = exit_status(OSError(errno.EROFS, "Read-only file system", "out/x.json"))
    assert (
        code == 1
        and text == "cannot write 'out/x.json': the file system is read-only; choose a writable folder"
    )
    assert exit_status(OSError(errno.ENOSPC, "No space left on device"))[0] == 1
    assert exit_status(FileNotFoundError(errno.ENOENT, "No such file", "a.pth"))[0] == 2
    assert exit_status(ValueError("bad"))[0] == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("generate", "OUT", "--count", "99999999999999999999"), "--count must be between 1 and 1,000,000"),
        (("generate", "OUT", "--size", "99999999999999999999"), "--size must be between 16 and 2048"),
        (("preview", "DIR/s.png", "--count", "4096", "--size", "2048"), "lower --count or --size"),
    ],
)
def test_fractals_values_that_overflow_are_refused_at_once(tmp_path, args, fragment):
    started = time.monotonic()
    done = _cmd(
        "ipmix-fractals", *(a.replace("OUT", str(tmp_path / "o")).replace("DIR", str(tmp_path)) for a in args)
    )
    assert done.returncode == 2 and fragment in _line(done)
    assert (
        time.monotonic() - started < 60
        and not (tmp_path / "o").exists()
        and not (tmp_path / "s.png").exists()
    )
