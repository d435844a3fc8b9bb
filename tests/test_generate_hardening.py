"""make-c / make-p never lose a user's file, never mix two sources, resume after a kill, fail clearly."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from robust_eval.generate import MANIFEST, make_c
from robust_eval.generate_cli import register

runner = CliRunner()


def _invoke(*args: object):
    app = typer.Typer()
    register(app)
    return runner.invoke(app, [*map(str, args), "--no-progress"])


def _one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.fixture
def npy_source(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "a.npy", images)
    np.save(tmp_path / "b.npy", 255 - images)
    np.save(tmp_path / "y.npy", np.arange(12) % 3)
    return tmp_path / "a.npy", tmp_path / "y.npy"


def _make(src: Path, out: Path, labels: Path, *extra: object):
    return _invoke(
        "make-c",
        src,
        out,
        "--preset",
        "cifar",
        "--labels",
        labels,
        "--name",
        "set",
        "--corruptions",
        "contrast,brightness",
        *extra,
    )


def test_a_users_own_manifest_is_never_overwritten(tmp_path, npy_source):
    src, labels = npy_source
    folder = tmp_path / "out" / "set-C"
    folder.mkdir(parents=True)
    (folder / MANIFEST).write_text('{"my": "notes"}')
    result = _make(src, tmp_path / "out", labels)
    assert result.exit_code == 2
    assert "was not written by robust-eval" in _one_line(result)
    assert (folder / MANIFEST).read_text() == '{"my": "notes"}'
    assert sorted(p.name for p in folder.iterdir()) == [MANIFEST]


def test_force_over_a_set_from_another_source_replaces_every_array(tmp_path, npy_source):
    src, labels = npy_source
    out = tmp_path / "out"
    assert _make(src, out, labels).exit_code == 0
    refused = _make(tmp_path / "b.npy", out, labels)
    assert refused.exit_code == 2 and "another source" in _one_line(refused)
    assert _make(tmp_path / "b.npy", out, labels, "--force").exit_code == 0
    fresh = tmp_path / "fresh"
    assert _make(tmp_path / "b.npy", fresh, labels).exit_code == 0
    for name in ("contrast.npy", "brightness.npy", "labels.npy"):
        np.testing.assert_array_equal(np.load(out / "set-C" / name), np.load(fresh / "set-C" / name))
    manifest = json.loads((out / "set-C" / MANIFEST).read_text())
    assert manifest["source"]["path"].endswith("b.npy")


def test_a_run_killed_between_the_array_and_the_manifest_resumes(tmp_path, npy_source):
    src, labels = npy_source
    out = tmp_path / "out"
    make_c(src, out, "cifar", corruptions=["contrast"], labels=labels, name="set", progress=False)
    manifest_path = out / "set-C" / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    # the state a kill leaves after contrast.npy was moved into place, before "complete" was recorded
    manifest["files"]["contrast"]["status"] = "partial"
    manifest_path.write_text(json.dumps(manifest))
    result = _make(src, out, labels)
    assert result.exit_code == 0, result.output
    fresh = tmp_path / "fresh"
    make_c(
        src, fresh, "cifar", corruptions=["contrast", "brightness"], labels=labels, name="set", progress=False
    )
    np.testing.assert_array_equal(
        np.load(out / "set-C" / "contrast.npy"), np.load(fresh / "set-C" / "contrast.npy")
    )
    assert json.loads(manifest_path.read_text())["files"]["contrast"]["status"] == "complete"


def test_files_differing_only_in_extension_are_refused(tmp_path):
    import cv2

    for ext in ("png", "jpg"):
        (tmp_path / "src" / "cat").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "src" / "cat" / f"0.{ext}"), np.full((40, 40, 3), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "src" / "cat" / "1.png"), np.full((40, 40, 3), 10, np.uint8))
    result = _invoke(
        "make-c", tmp_path / "src", tmp_path / "out", "--preset", "cifar", "--corruptions", "contrast"
    )
    assert result.exit_code == 2
    line = _one_line(result)
    assert "0.jpg" in line and "0.png" in line and "same output file" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.JPEG"))


@pytest.mark.parametrize("size", ["0", "-3", "4"])
def test_too_small_size_is_a_usage_error(tmp_path, npy_source, size):
    src, labels = npy_source
    result = _make(src, tmp_path / "out", labels, "--size", size)
    assert result.exit_code == 2
    assert "--size must be at least 8" in _one_line(result)


def test_image_folder_message_names_the_folder_written(tmp_path):
    import cv2

    for i in range(3):
        (tmp_path / "src" / f"c{i}").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "src" / f"c{i}" / "x.png"), np.full((40, 48, 3), 60 * i, np.uint8))
    result = _invoke(
        "make-c", tmp_path / "src", tmp_path / "out", "--preset", "cifar", "--corruptions", "contrast"
    )
    assert result.exit_code == 0, result.output
    folder = result.output.strip().rsplit(" in ", 1)[1]
    assert Path(folder).is_dir() and Path(folder, "contrast").is_dir()


def test_full_disk_is_one_clear_line_and_leaves_no_partial_file(tmp_path):
    big = np.random.default_rng(1).integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    np.save(tmp_path / "big.npy", big)
    np.save(tmp_path / "big_y.npy", np.zeros(200, np.int64))
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        result = _invoke(
            "make-c",
            tmp_path / "big.npy",
            mount,
            "--preset",
            "cifar",
            "--labels",
            tmp_path / "big_y.npy",
            "--corruptions",
            "contrast",
        )
        assert result.exit_code == 1, result.output
        assert "no space left" in _one_line(result)
        assert not [p for p in mount.rglob("*") if p.name.endswith(".partial")]
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_a_set_with_some_severities_reads_back_as_those_severities(tmp_path):
    """make-c --severities 1,3,5 (a README example) is evaluated as 3 cells of N images, not 5 of 3N/5."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from robust_eval_fixtures import make_context, make_data_root, write_project_checkpoint

    from robust_eval.data import corruption_severities, load_corruption_cell, load_corruption_labels
    from robust_eval.suites import run_corruptions

    data = make_data_root(tmp_path / "data", n=20, with_p=False, with_c=False)
    result = _invoke(
        "make-c",
        data / "cifar-10-batches-py",
        data,
        "--preset",
        "cifar",
        "--corruptions",
        "fog",
        "--severities",
        "1,3,5",
    )
    assert result.exit_code == 0, result.output
    folder = data / "CIFAR-10-C"
    assert corruption_severities(folder) == (1, 3, 5)
    labels = load_corruption_labels(folder, n_per_severity=20)
    cells = {s: load_corruption_cell(folder, "fog", s, labels) for s in (1, 3, 5)}
    assert {s: len(c) for s, c in cells.items()} == {1: 20, 3: 20, 5: 20}
    whole = np.load(folder / "fog.npy")
    np.testing.assert_array_equal(cells[3].batch(0, 20), whole[20:40])
    with pytest.raises(Exception, match=r"holds severities \[1, 3, 5\] only"):
        load_corruption_cell(folder, "fog", 2, labels)
    ckpt = write_project_checkpoint(tmp_path / "ck.pth")
    out = run_corruptions(make_context(ckpt, data, tmp_path / "cache"))
    assert sorted(out["c"]["errors"]["fog"]) == ["1", "3", "5"]
    assert out["c"]["severities"] == [1, 3, 5]
    assert out["c"]["n_per_cell"]["fog"] == 20  # was 36 (3 x 20 rows read as 5 severities)


def test_a_make_c_set_on_disk_is_flagged_regenerated_and_a_relative_path_is_the_same_source(
    tmp_path, monkeypatch
):
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from robust_eval_fixtures import make_context, make_data_root, write_project_checkpoint

    from robust_eval.suites import run_corruptions

    data = make_data_root(tmp_path / "data", n=12, with_p=False, with_c=False)
    assert (
        _invoke(
            "make-c", data / "cifar-10-batches-py", data, "--preset", "cifar", "--corruptions", "fog"
        ).exit_code
        == 0
    )
    monkeypatch.chdir(tmp_path)  # the same source typed as a relative path is not "another source"
    again = _invoke(
        "make-c", "data/cifar-10-batches-py", "data", "--preset", "cifar", "--corruptions", "fog,contrast"
    )
    assert again.exit_code == 0, again.output
    out = run_corruptions(
        make_context(write_project_checkpoint(tmp_path / "ck.pth"), data, tmp_path / "cache")
    )
    assert out["c"]["regenerated"] is True
