"""The shared file layer: atomic writes, output locks, image listing, decoding (robust_mix.files)."""

from __future__ import annotations

import errno
import io
import os
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from albumentations_ipmix import IPMix, PixMix
from albumentations_ipmix.sources import FolderSource
from robust_mix.files import (
    TMP_PREFIX,
    FileProblem,
    OutputLock,
    atomic_write,
    decode_image,
    list_images,
    preallocate,
    resize_center_crop,
    stem_collisions,
)


def _png(path: Path, value: int = 128, size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


# -- atomic writes ---------------------------------------------------------------------------------


def test_atomic_write_creates_file_with_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = atomic_write(tmp_path / "a.json", '{"x": 1}\n')
    finally:
        os.umask(old)
    assert path.read_text() == '{"x": 1}\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0600
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_atomic_write_refuses_to_replace_when_asked(tmp_path):
    target = tmp_path / "mine.md"
    target.write_text("the user's notes")
    with pytest.raises(FileExistsError, match=r"mine\.md"):
        atomic_write(target, "generated", overwrite=False)
    assert target.read_text() == "the user's notes"
    assert [p.name for p in tmp_path.iterdir()] == ["mine.md"]  # no temporary left
    atomic_write(target, "generated")  # the default replaces
    assert target.read_text() == "generated"


def test_atomic_write_disk_full_is_one_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    def full(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(FileProblem, match=r"cannot write '.*out\.bin': no space left"):
        atomic_write(tmp_path / "out.bin", b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_missing_folder_names_it(tmp_path):
    with pytest.raises(FileProblem, match="folder does not exist"):
        atomic_write(tmp_path / "nope" / "a.txt", "x")


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A 64 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_real_full_disk_atomic_write_and_preallocate(tiny_tmpfs):
    with pytest.raises(FileProblem, match="no space left"):
        atomic_write(tiny_tmpfs / "big.bin", b"\0" * 1_000_000)
    assert list(tiny_tmpfs.iterdir()) == []
    with (
        open(tiny_tmpfs / "map.npy", "wb") as handle,
        pytest.raises(FileProblem, match=r"map\.npy.*no space"),
    ):
        preallocate(handle, 10_000_000, tiny_tmpfs / "map.npy")


# -- the output lock -------------------------------------------------------------------------------


def test_lock_refuses_a_second_live_run_and_releases(tmp_path):
    with (
        OutputLock(tmp_path / "out", "timm train"),
        pytest.raises(FileProblem, match=r"in use by timm train \(pid"),
    ):
        OutputLock(tmp_path / "out", "timm train").acquire()
    assert not (tmp_path / "out" / OutputLock.NAME).exists()
    with OutputLock(tmp_path / "out", "timm train"):  # free again
        pass


def test_lock_left_by_a_killed_run_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "out"
    folder.mkdir()
    import json
    import socket

    (folder / OutputLock.NAME).write_text(
        json.dumps({"command": "x", "pid": dead.pid, "host": socket.gethostname()})
    )
    with OutputLock(folder, "robust-eval"):
        assert json.loads((folder / OutputLock.NAME).read_text())["pid"] == os.getpid()


# -- listing ---------------------------------------------------------------------------------------


def test_list_images_survives_link_loops_and_repeated_folders(tmp_path):
    root = tmp_path / "root"
    for i in range(3):
        _png(root / "a" / f"{i}.png")
    _png(root / "b" / "x.jpg")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)  # a loop back to the top
    (root / "again").symlink_to(root / "b", target_is_directory=True)  # the same folder twice
    (root / ".hidden.png").write_bytes(b"")
    (root / "a" / f"{TMP_PREFIX}3.png.xyz").write_bytes(b"")
    (root / "notes.txt").write_text("not an image")
    found = list_images(root)
    assert len(found) == 4
    assert found == sorted(found)
    assert {p.name for p in found} == {"0.png", "1.png", "2.png", "x.jpg"}


def test_list_images_missing_root_is_clear(tmp_path):
    with pytest.raises(FileProblem, match="does not exist"):
        list_images(tmp_path / "missing")


def test_stem_collisions_finds_same_name_other_extension(tmp_path):
    paths = [_png(tmp_path / "c" / "0.png"), _png(tmp_path / "c" / "0.jpg"), _png(tmp_path / "c" / "1.png")]
    clashes = stem_collisions(list_images(tmp_path), tmp_path)
    assert len(clashes) == 1 and {p.name for p in clashes[0]} == {"0.png", "0.jpg"}
    assert len(paths) == 3


def test_folder_source_counts_each_picture_once_with_a_loop(tmp_path):
    for i in range(5):
        _png(tmp_path / "k" / f"{i}.png", value=i * 40)
    (tmp_path / "k" / "up").symlink_to(tmp_path, target_is_directory=True)
    assert len(FolderSource(tmp_path)) == 5


# -- decoding --------------------------------------------------------------------------------------


def test_decode_applies_exif_orientation(tmp_path):
    img = np.zeros((4, 8, 3), np.uint8)
    img[:, :4] = 255  # left half white, 4 rows x 8 columns
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(img).save(path, exif=exif, quality=100)
    out = decode_image(path)
    assert out.shape == (8, 4, 3)  # upright: 8 rows x 4 columns
    assert out[:4].mean() > 200 and out[4:].mean() < 50  # the white half is now on top


def test_decode_scales_16_bit_gray_instead_of_two_levels(tmp_path):
    ramp = (np.arange(256, dtype=np.uint16) * 257).reshape(16, 16)  # 0 .. 65535
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    assert Image.open(path).mode.startswith("I")
    out = decode_image(path)
    assert out.dtype == np.uint8 and out.shape == (16, 16, 3)
    np.testing.assert_array_equal(out[..., 0].ravel(), np.arange(256))


def test_decode_truncated_file_names_it(tmp_path):
    good = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good, "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    with pytest.raises(FileProblem, match=r"cut\.png' is truncated or corrupt"):
        decode_image(path)


def test_decode_bomb_is_refused_by_name(tmp_path):
    path = _png(tmp_path / "wide.png", size=64)
    with pytest.raises(FileProblem, match=r"64 x 64 = 4,096 pixels, more than the limit of 1,000"):
        decode_image(path, max_pixels=1000)


def test_decode_not_a_picture(tmp_path):
    path = tmp_path / "fake.png"
    path.write_text("hello")
    with pytest.raises(FileProblem, match=r"fake\.png' is not a readable picture"):
        decode_image(path)


def test_truncated_mixing_picture_does_not_abort_ipmix(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    whole = (tmp_path / "2.png").read_bytes()
    (tmp_path / "2.png").write_bytes(whole[: len(whole) // 2])  # the header still parses
    source = FolderSource(tmp_path)
    assert len(source) == 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        picture = source.load(2)
    np.testing.assert_array_equal(picture, decode_image(tmp_path / "3.png"))
    assert any("2.png" in str(w.message) for w in caught)


@pytest.mark.parametrize("cls", [IPMix, PixMix])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_float_input_is_rejected(cls, bad):
    img = np.full((16, 16, 3), 0.5, np.float32)
    img[3, 4, 1] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        cls(fractals=np.zeros((2, 16, 16, 3), np.uint8), p=1.0)(image=img)


# -- resize and crop -------------------------------------------------------------------------------


def test_resize_center_crop_standard_protocol():
    img = np.zeros((300, 400, 3), np.uint8)
    img[:, 200:] = 255
    out = resize_center_crop(img, 224, 0.875)
    assert out.shape == (224, 224, 3) and out.flags.c_contiguous
    # shorter side 300 -> 256 (scale 256/300), 400 -> 341; crop columns 58..281: the edge at 170.67 -> 112.7
    assert out[:, :110].max() == 0 and out[:, 116:].min() == 255
    same = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    assert resize_center_crop(same, 32) is not None and np.array_equal(resize_center_crop(same, 32), same)
    with pytest.raises(ValueError, match="crop_pct"):
        resize_center_crop(same, 32, 1.5)
