"""Shard parts are merged only when they are the intact parts of this job (robust_mix.shard_parts).

Each test plants what a mistake or a hostile user could leave in ``.shards`` - a symbolic or hard link,
a copy of another shard's part, a zeroed or truncated array, another job's part - and checks that the
merge (or the shard) refuses with one line naming the file and the shard to rerun, exit status 2, and
that nothing of the planted file reaches the final set.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import test_sharded_generation as sharded
from test_sharded_generation import _env, _fractals, _make_c, _one_line

from robust_mix.shard_parts import PART_MANIFEST, SHARDS_DIR

# the photo fixtures of the sharding tests
photos, npy_source, folder_source = sharded.photos, sharded.npy_source, sharded.folder_source
FRACTALS = ("--count", 6, "--size", 16, "--quiet")


def _fractal_parts(out: Path) -> None:
    for k in (0, 1):
        result = _fractals("generate", out, *FRACTALS, "--shard", f"{k}/2")
        assert result.exit_code == 0, result.output


def _some_picture(part: Path) -> Path:
    return sorted(part.rglob("*.png"))[0]


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_merge_refuses_a_link_planted_in_a_part(tmp_path, link):
    out, secret = tmp_path / "out", tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    _fractal_parts(out)
    victim = _some_picture(out / SHARDS_DIR / "1-of-2")
    victim.unlink()
    (os.symlink if link == "symlink" else os.link)(secret, victim)
    result = _fractals("generate", out, *FRACTALS, "--merge")
    line = _one_line(result)
    assert result.exit_code == 2, result.output
    assert str(victim) in line and "rerun shard 1/2" in line
    final = [p for p in out.rglob("*") if SHARDS_DIR not in p.parts and p.is_file()]
    assert not any(p.is_symlink() or p.read_bytes() == secret.read_bytes() for p in final)
    assert secret.read_text().startswith("root:")  # the outside file is left alone


def test_merge_refuses_a_symlink_in_an_image_folder_part(tmp_path, folder_source):
    out, secret = tmp_path / "out", tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    args = ("--size", 32, "--format", "PNG")
    for k in (0, 1):
        assert _make_c(folder_source, out, None, *args, "--shard", f"{k}/2").exit_code == 0
    extra = out / SHARDS_DIR / "0-of-2" / "contrast" / "1" / "class0" / "planted.png"
    os.symlink(secret, extra)
    result = _make_c(folder_source, out, None, *args, "--merge")
    assert result.exit_code == 2 and str(extra) in _one_line(result)
    assert not [p for p in out.rglob("planted.png") if SHARDS_DIR not in p.parts]


def _c_parts(out: Path, src: Path, labels: Path) -> Path:
    for k in (0, 1):
        assert _make_c(src, out, labels, "--shard", f"{k}/2").exit_code == 0
    return out / "set-C" / SHARDS_DIR


def _merge_refused(out: Path, src: Path, labels: Path, *fragments: str) -> None:
    result = _make_c(src, out, labels, "--merge")
    line = _one_line(result)
    assert result.exit_code == 2, result.output
    for fragment in fragments:
        assert fragment in line, line
    assert not (out / "set-C" / "contrast.npy").exists() and not (out / "set-C" / "labels.npy").exists()


def test_a_part_copied_over_another_shard_does_not_merge(tmp_path, npy_source):
    src, labels = npy_source
    shards = _c_parts(tmp_path / "out", src, labels)
    shutil.rmtree(shards / "1-of-2")
    shutil.copytree(shards / "0-of-2", shards / "1-of-2")
    _merge_refused(tmp_path / "out", src, labels, f"'{shards / '1-of-2'}'", "rerun shard 1/2")
    # relabelled by hand as shard 1: the checksums are bound to the shard, so still refused
    record = json.loads((shards / "1-of-2" / PART_MANIFEST).read_text())
    record["shard"], record["span"] = [1, 2], [12, 22]
    (shards / "1-of-2" / PART_MANIFEST).write_text(json.dumps(record))
    _merge_refused(tmp_path / "out", src, labels, "checksum", "rerun shard 1/2")


def test_a_zeroed_part_does_not_merge(tmp_path, npy_source):
    src, labels = npy_source
    shards = _c_parts(tmp_path / "out", src, labels)
    path = shards / "1-of-2" / "contrast.npy"
    arr = np.load(path)
    np.save(path, np.zeros_like(arr))  # same size, same header, other bytes
    _merge_refused(tmp_path / "out", src, labels, f"'{path}'", "checksum", "rerun shard 1/2")


def test_a_truncated_part_names_the_file_and_the_shard_to_rerun(tmp_path, npy_source):
    src, labels = npy_source
    shards = _c_parts(tmp_path / "out", src, labels)
    path = shards / "0-of-2" / "gaussian_noise.npy"
    os.truncate(path, path.stat().st_size // 2)
    _merge_refused(tmp_path / "out", src, labels, f"'{path}'", "truncated", "rerun shard 0/2")
    assert "mmap" not in _one_line(_make_c(src, tmp_path / "out", labels, "--merge"))


def test_another_job_never_deletes_a_finished_part(tmp_path):
    out = tmp_path / "out"
    assert _fractals("generate", out, *FRACTALS, "--shard", "0/2").exit_code == 0
    part = out / SHARDS_DIR / "0-of-2"
    before = {p: p.read_bytes() for p in part.rglob("*.png")}
    other = _fractals("generate", out, *FRACTALS, "--seed", 1, "--shard", "0/2")
    assert other.exit_code == 2 and "part of another job (seed 0 (this run: 1))" in _one_line(other)
    assert {p: p.read_bytes() for p in part.rglob("*.png")} == before


def test_two_jobs_started_together_on_one_shard_leave_one_intact_part(tmp_path):
    """Real processes at once: one job writes the part, the other refuses (lock or other job's part)."""
    out = tmp_path / "out"
    base = [sys.executable, "-m", "robust_mix", "ipmix-fractals", "generate", str(out)]
    args = ["--count", "24", "--size", "64", "--quiet", "--workers", "1", "--shard", "0/2"]
    procs = [
        subprocess.Popen([*base, *args, "--seed", str(seed)], env=_env(), stderr=subprocess.PIPE, text=True)
        for seed in (0, 1)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    for p in procs:
        p.stderr.close()
    codes = sorted(code for code, _ in results)
    assert codes[0] == 0 and codes[1] in (1, 2), results
    loser = next(err for code, err in results if code)
    assert len(loser.strip().splitlines()) == 1 and "Traceback" not in loser
    assert "in use by" in loser or "part of another job" in loser, loser
    record = json.loads((out / SHARDS_DIR / "0-of-2" / PART_MANIFEST).read_text())
    winner = 0 if results[0][0] == 0 else 1
    assert record["done"] and record["options"]["seed"] == winner
    assert len(list((out / SHARDS_DIR / "0-of-2").rglob("*.png"))) == 12
    merged = _fractals("generate", out, *args[:-2], "--seed", winner, "--shard", "1/2")
    assert merged.exit_code == 0
    assert _fractals("generate", out, *args[:-2], "--seed", winner, "--merge").exit_code == 0


#: Runs a command in a real process whose n-th ``os.replace`` (or the first one moving a ``.partial``
#: file) is hit by SIGTERM just before it renames: "killed at its first rename".
KILL_AT_RENAME = """
import os, runpy, signal, sys
real, calls = os.replace, []
def replace(src, dst, *args, **kwargs):
    calls.append(src)
    if not calls[1:] and WHICH == "first" or WHICH == "partial" and str(src).endswith(".partial"):
        os.kill(os.getpid(), signal.SIGTERM)
    return real(src, dst, *args, **kwargs)
os.replace = replace
sys.argv = ["robust_mix", *sys.argv[1:]]
runpy.run_module("robust_mix", run_name="__main__")
"""


@pytest.mark.parametrize("which", ["first", "partial"])
def test_a_merge_terminated_at_its_first_rename_leaves_no_temporary_file(tmp_path, npy_source, which):
    src, labels = npy_source
    out = tmp_path / "out"
    _c_parts(out, src, labels)
    argv = ["robust-eval", "make-c", src, out, *sharded.C_ARGS, "--labels", labels, "--name", "set"]
    code = KILL_AT_RENAME.replace("WHICH", repr(which))
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, argv), "--no-progress", "--merge"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 143, done.stderr
    assert done.stderr.strip().splitlines() == ["robust-eval: terminated"]
    leftovers = [p for p in out.rglob(".*") if p.name.startswith(".tmp-") or p.name.endswith(".partial")]
    assert leftovers == []
    assert _make_c(src, out, labels, "--merge").exit_code == 0  # the parts are intact: merge again
    assert _make_c(src, tmp_path / "one", labels).exit_code == 0
    assert sharded._tree(out) == sharded._tree(tmp_path / "one")
