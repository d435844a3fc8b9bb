"""Hostile data (issue 23): float CIFAR batches, non-UTF-8 file names, decompression-bomb headers in a
mixing folder, PixMix on float input outside [0, 1]. Each gives one clear error or is evaluated."""

from __future__ import annotations

import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

from albumentations_ipmix import IPMix, PixMix
from robust_eval.cache import fingerprint
from robust_mix.cifar import DataLayoutError, load_cifar, write_cifar


@pytest.mark.parametrize("data", [np.full((2, 3072), 0.5), np.full((2, 3072), 300), np.full((2, 3072), -1)])
def test_cifar_pixels_that_a_cast_would_change_are_refused(tmp_path, data):
    write_cifar(tmp_path, "cifar10", np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]))
    import pickle

    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({"data": data, "labels": [0, 1]}, fh)
    with pytest.raises(
        DataLayoutError, match=r"test_batch: 'data' holds \w+ values in .*expected uint8 pixels"
    ):
        load_cifar(tmp_path, "cifar10")


def test_integer_cifar_pixels_in_range_still_load(tmp_path):
    write_cifar(tmp_path, "cifar10", np.zeros((2, 32, 32, 3), np.uint8), np.array([0, 1]))
    import pickle

    with open(tmp_path / "test_batch", "wb") as fh:
        pickle.dump({"data": np.full((2, 3072), 255, np.int64), "labels": [0, 1]}, fh)
    images, _, _ = load_cifar(tmp_path, "cifar10")
    assert images.dtype == np.uint8 and images.max() == 255


@pytest.mark.skipif(os.name != "posix", reason="byte file names are POSIX")
def test_a_non_utf8_file_name_can_be_fingerprinted(tmp_path):
    """The cache key of an ImageFolder tree stats every file; a Latin-1 name must not stop it."""
    (tmp_path / "a").mkdir()
    Path(os.fsdecode(bytes(tmp_path / "a") + b"/\xff\xfe.png")).write_bytes(b"x")
    (tmp_path / "a" / "b.png").write_bytes(b"y")
    key = fingerprint([tmp_path])
    assert len(key) == 16 and key != fingerprint([tmp_path / "a" / "b.png"])


def _png_header(path: Path, width: int, height: int) -> None:
    """A PNG whose header claims ``width x height`` (a decompression bomb's header; few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [100_000, 12_000], ids=["over-2x-pillow-limit", "over-our-limit"])
@pytest.mark.parametrize("transform", [IPMix, PixMix])
def test_a_decompression_bomb_header_in_a_mixing_folder_is_one_warning(tmp_path, side, transform):
    import cv2

    cv2.imwrite(str(tmp_path / "good.png"), np.full((40, 40, 3), 128, np.uint8))
    _png_header(tmp_path / "bomb.png", side, side)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = transform(fractals=str(tmp_path), p=1.0)
        for _ in range(4):
            t(image=np.full((32, 32, 3), 100, np.uint8))
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "bomb.png': " in messages[0] and "decompression bomb" in messages[0], (
        messages
    )
    _png_header(tmp_path / "good.png", side, side)
    with pytest.raises(ValueError, match=r"none of its 2 image files could be read .*decompression bomb"):
        transform(fractals=str(tmp_path), p=1.0)


@pytest.mark.parametrize("value", [-0.5, 2.0, 3e38])
def test_pixmix_refuses_float_input_outside_0_1(value):
    image = np.full((32, 32, 3), 0.5, np.float32)
    image[0, 0, 0] = value
    with pytest.raises(ValueError, match=r"PixMix got a float32 image with values in .*expected \[0, 1\]"):
        PixMix(p=1.0)(image=image)
    assert PixMix(p=1.0)(image=np.clip(image, 0, 1))["image"].max() <= 1.0


def test_a_malformed_ood_set_is_one_skipped_line(tmp_path):
    """It is left out of the OOD means: the screen says so, as the other suites do."""
    import subprocess
    import sys

    from robust_eval_fixtures import make_data_root, write_project_checkpoint

    data = make_data_root(tmp_path / "data", n=20, with_p=False, with_c=False)
    np.save(data / "ood" / "bad.npy", np.zeros((3, 5), np.float32))
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "MPLBACKEND": "Agg"}
    cmd = [sys.executable, "-m", "robust_eval.cli", "ood", str(write_project_checkpoint(tmp_path / "ck.pth"))]
    r = subprocess.run(
        [*cmd, "--data-dir", str(data), "--out", str(tmp_path / "out"), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "skipped" in line]
    assert lines == [
        f"skipped ood set bad: '{data / 'ood' / 'bad.npy'}' holds float32 (3, 5); expected uint8 (N, H, W, 3)"
    ]
