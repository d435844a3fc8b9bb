"""make-c / make-p end to end: exact layouts, manifest, reproducible streams, resume, refusal, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
import pytest
import typer
from skimage import data
from sklearn.datasets import load_digits
from typer.testing import CliRunner

import robust_eval
from robust_eval import generate
from robust_eval.constants import ALL_CORRUPTIONS
from robust_eval.corruptions import apply_corruption
from robust_eval.data import list_imagefolder, load_npy_images, read_image, write_cifar
from robust_eval.generate import make_c
from robust_eval.generate_cli import register

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def _invoke(*args: str):
    return runner.invoke(_app(), [*map(str, args), "--no-progress"])


@pytest.fixture(scope="module")
def clean() -> tuple[np.ndarray, np.ndarray]:
    """~300 real images at 32 px: scikit-learn digits (upscaled, RGB) and scikit-image photo crops."""
    digits = load_digits()
    d = np.stack(
        [
            cv2.resize((im * 16).clip(0, 255).astype(np.uint8), (32, 32), interpolation=cv2.INTER_LINEAR)
            for im in digits.images[:288]
        ]
    )
    d = np.repeat(d[..., None], 3, axis=-1)
    photos = []
    for im in (data.astronaut(), data.chelsea(), data.coffee(), data.rocket()):
        for k in range(3):
            crop = im[k * 40 : k * 40 + 256, k * 60 : k * 60 + 256]
            photos.append(cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA))
    images = np.concatenate([d, np.stack(photos)])
    labels = np.concatenate([digits.target[:288], np.full(12, 9)])
    return np.ascontiguousarray(images), labels.astype(np.int64)


@pytest.fixture
def cifar_dir(tmp_path, clean):
    images, labels = clean
    write_cifar(tmp_path / "src" / "cifar-10-batches-py", "cifar10", images, labels)
    return tmp_path / "src"


@pytest.mark.slow
def test_make_c_cifar_folder_all_corruptions_exact_layout(tmp_path, cifar_dir, clean):
    images, labels = clean
    n = len(images)
    res = _invoke("make-c", cifar_dir, tmp_path / "out", "--preset", "cifar", "--seed", "3", "--chunk", "128")
    assert res.exit_code == 0, res.output
    root = tmp_path / "out" / "CIFAR-10-C"
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [f"{c}.npy" for c in ALL_CORRUPTIONS] + ["labels.npy", "manifest.json"]
    )
    for name in ALL_CORRUPTIONS:
        arr = load_npy_images(root / f"{name}.npy")
        assert arr.shape == (5 * n, 32, 32, 3) and arr.dtype == np.uint8
    lab = np.load(root / "labels.npy")
    assert lab.dtype == np.uint8
    np.testing.assert_array_equal(lab, np.tile(labels, 5))
    # severity-major rows, and the documented random stream: default_rng([seed, index, severity, chunk])
    fog = load_npy_images(root / "fog.npy")
    idx = ALL_CORRUPTIONS.index("fog")
    for sev in (1, 4):
        want = apply_corruption(images[128:256], "fog", sev, "cifar", np.random.default_rng([3, idx, sev, 1]))
        np.testing.assert_array_equal(fog[(sev - 1) * n + 128 : (sev - 1) * n + 256], want)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["regenerated"] is True and manifest["seed"] == 3 and manifest["preset"] == "cifar"
    assert manifest["version"] == robust_eval.__version__
    assert manifest["parameters"]["gaussian_noise"] == [0.04, 0.06, 0.08, 0.09, 0.1]
    assert set(manifest["files"]) == set(ALL_CORRUPTIONS)
    assert not list(root.glob(".*"))  # no temp files left


def test_make_c_npy_source_with_name_one_channel_and_many_classes(tmp_path, clean):
    images, _ = clean
    gray = images[:40, :, :, :1]
    np.save(tmp_path / "x.npy", gray)
    labels = np.arange(40) * 10  # up to 390: more than 255 classes -> int64 labels
    np.save(tmp_path / "y.npy", labels)
    res = _invoke(
        "make-c",
        tmp_path / "x.npy",
        tmp_path / "out",
        "--preset",
        "imagenet",
        "--labels",
        tmp_path / "y.npy",
        "--name",
        "Digits",
        "--corruptions",
        "contrast,jpeg_compression",
        "--severities",
        "1,5",
    )
    assert res.exit_code == 0, res.output
    root = tmp_path / "out" / "Digits-C"
    arr = load_npy_images(root / "contrast.npy")
    assert arr.shape == (80, 32, 32, 3)
    lab = np.load(root / "labels.npy")
    assert lab.dtype == np.int64 and np.array_equal(lab, np.tile(labels, 2))
    assert json.loads((root / "manifest.json").read_text())["severities"] == [1, 5]


def test_make_c_imagefolder_gives_imagenet_layout(tmp_path, clean):
    images, labels = clean
    src = tmp_path / "folder"
    for i in range(0, 300, 25):
        d = src / f"n0{labels[i]}"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"img_{i}.png"), cv2.resize(images[i], (70, 50)))
    paths, _, classes = list_imagefolder(src)
    res = _invoke(
        "make-c", src, tmp_path / "out", "--preset", "imagenet", "--corruptions", "glass_blur", "--size", "64"
    )
    assert res.exit_code == 0, res.output
    for sev in range(1, 6):
        files = sorted((tmp_path / "out" / "glass_blur" / str(sev)).glob("*/*.JPEG"))
        assert len(files) == len(paths)
        assert sorted({f.parent.name for f in files}) == classes
        assert read_image(files[0]).shape == (64, 64, 3)
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_resume_keeps_finished_files_and_regenerates_the_rest(tmp_path, cifar_dir, monkeypatch):
    out = tmp_path / "out"
    root = out / "CIFAR-10-C"
    calls = []
    real = generate.apply_corruption

    def failing(images, name, *args, **kwargs):
        calls.append(name)
        if name == "contrast":
            raise KeyboardInterrupt  # an interrupted run
        return real(images, name, *args, **kwargs)

    monkeypatch.setattr(generate, "apply_corruption", failing)
    with pytest.raises(KeyboardInterrupt):
        make_c(cifar_dir, out, "cifar", corruptions=["fog", "contrast"], progress=False)
    assert (root / "fog.npy").is_file() and not (root / "contrast.npy").exists()
    assert not list(root.glob(".*.partial"))  # partial file removed
    monkeypatch.setattr(generate, "apply_corruption", real)
    fog_mtime = (root / "fog.npy").stat().st_mtime_ns
    first_fog = np.load(root / "fog.npy")
    make_c(cifar_dir, out, "cifar", corruptions=["fog", "contrast"], progress=False)
    assert (root / "fog.npy").stat().st_mtime_ns == fog_mtime  # kept, not regenerated
    assert (root / "contrast.npy").is_file()
    # a fresh full run gives the same bytes as the resumed one
    make_c(cifar_dir, tmp_path / "fresh", "cifar", corruptions=["fog", "contrast"], progress=False)
    for name in ("fog", "contrast"):
        np.testing.assert_array_equal(
            np.load(tmp_path / "fresh" / "CIFAR-10-C" / f"{name}.npy"), np.load(root / f"{name}.npy")
        )
    np.testing.assert_array_equal(first_fog, np.load(root / "fog.npy"))


def test_refuses_to_overwrite_unless_forced(tmp_path, cifar_dir):
    out = tmp_path / "out"
    target = out / "CIFAR-10-C" / "fog.npy"
    assert _invoke("make-c", cifar_dir, out, "--preset", "cifar", "--corruptions", "fog").exit_code == 0
    before = np.load(target)
    res = _invoke("make-c", cifar_dir, out, "--preset", "cifar", "--corruptions", "fog", "--seed", "1")
    assert res.exit_code == 2
    assert "refusing to overwrite" in res.output and "--force" in res.output and "Traceback" not in res.output
    np.testing.assert_array_equal(np.load(target), before)
    res = _invoke(
        "make-c", cifar_dir, out, "--preset", "cifar", "--corruptions", "fog", "--seed", "1", "--force"
    )
    assert res.exit_code == 0, res.output
    assert not np.array_equal(np.load(target), before)
    # a user's own file of that name (no manifest entry) is never replaced silently
    user = out / "CIFAR-10-C" / "snow.npy"
    np.save(user, np.zeros((1, 32, 32, 3), np.uint8))
    res = _invoke("make-c", cifar_dir, out, "--preset", "cifar", "--corruptions", "snow", "--seed", "1")
    assert res.exit_code == 2 and "not made by this tool" in res.output
    assert np.load(user).shape == (1, 32, 32, 3)


def test_make_p_npy_layout_and_difficulties(tmp_path, clean):
    images, _ = clean
    np.save(tmp_path / "x.npy", images[:20])
    res = _invoke(
        "make-p",
        tmp_path / "x.npy",
        tmp_path / "out",
        "--preset",
        "cifar",
        "--name",
        "CIFAR-10",
        "--perturbations",
        "translate,gaussian_noise",
        "--difficulties",
        "1,3",
    )
    assert res.exit_code == 0, res.output
    root = tmp_path / "out" / "CIFAR-10-P"
    assert sorted(p.name for p in root.glob("*.npy")) == [
        "gaussian_noise.npy",
        "gaussian_noise_3.npy",
        "translate.npy",
    ]
    tr = np.load(root / "translate.npy", mmap_mode="r")
    assert tr.shape == (20, 16, 32, 32, 3) and tr.dtype == np.uint8
    g3 = np.load(root / "gaussian_noise_3.npy")
    g1 = np.load(root / "gaussian_noise.npy")
    assert g1.shape == (20, 31, 32, 32, 3)
    np.testing.assert_array_equal(g3[:, 0], images[:20])
    assert (
        np.abs(g3[:, 1:].astype(float) - g3[:, :1]).mean()
        > np.abs(g1[:, 1:].astype(float) - g1[:, :1]).mean()
    )
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["regenerated"] is True and set(manifest["files"]) == {
        "translate",
        "gaussian_noise",
        "gaussian_noise_3",
    }


def test_make_p_imagefolder_writes_readable_mp4(tmp_path, clean):
    images, labels = clean
    src = tmp_path / "folder"
    for i in range(0, 300, 60):
        d = src / f"n0{labels[i]}"
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"im{i}.png"), images[i])
    res = _invoke(
        "make-p", src, tmp_path / "out", "--preset", "cifar", "--perturbations", "rotate", "--size", "32"
    )
    assert res.exit_code == 0, res.output
    videos = sorted((tmp_path / "out" / "rotate").glob("*/*.mp4"))
    assert len(videos) == 5
    cap = cv2.VideoCapture(str(videos[0]))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    assert len(frames) == 31 and frames[0].shape == (32, 32, 3)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "--labels"),
        (("--labels", "LAB", "--corruptions", "fogg"), "unknown corruption(s) fogg"),
        (("--labels", "LAB", "--severities", "0,6"), "severities must be in"),
        (("--labels", "LAB", "--preset", "svhn"), "--preset must be one of"),
        (("--labels", "LAB", "--corruptions", "frost", "--frost-images", "NOFROST"), "missing frost1.png"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, clean, extra, message):
    np.save(tmp_path / "x.npy", clean[0][:4])
    np.save(tmp_path / "y.npy", clean[1][:4])
    args = ["make-c", tmp_path / "x.npy", tmp_path / "out", "--preset", "cifar"]
    subs = {"LAB": str(tmp_path / "y.npy"), "NOFROST": str(tmp_path / "no-frost")}
    args += [subs.get(a, a) for a in extra]
    res = _invoke(*args)
    assert res.exit_code == 2
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_make_c_frost_images_blends_the_given_photographs(tmp_path, clean):
    from robust_eval.frost import FROST_FILES

    images, labels = clean
    np.save(tmp_path / "x.npy", images[:20])
    np.save(tmp_path / "y.npy", labels[:20])
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for name in FROST_FILES:  # stand-ins under the reference's names (the real ones are not shipped)
        cv2.imwrite(str(photos / name), rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
    args = [
        "make-c",
        tmp_path / "x.npy",
        tmp_path / "out",
        "--preset",
        "cifar",
        "--labels",
        tmp_path / "y.npy",
    ]
    res = _invoke(*args, "--corruptions", "frost", "--severities", "2", "--frost-images", photos)
    assert res.exit_code == 0, res.output
    root = tmp_path / "out" / "x-C"
    got = load_npy_images(root / "frost.npy")
    idx = ALL_CORRUPTIONS.index("frost")
    want = apply_corruption(
        images[:20], "frost", 2, "cifar", np.random.default_rng([0, idx, 2, 0]), frost_images=photos
    )
    np.testing.assert_array_equal(got, want)
    procedural = apply_corruption(images[:20], "frost", 2, "cifar", np.random.default_rng([0, idx, 2, 0]))
    assert not np.array_equal(got, procedural)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["frost_images"] == str(photos.resolve())
    assert "frost photographs (--frost-images)" in manifest["note"]
    assert manifest["files"]["frost"]["frost_images"] == str(photos.resolve())


def test_module_entry_point_runs(tmp_path, clean):
    np.save(tmp_path / "x.npy", clean[0][:8])
    np.save(tmp_path / "y.npy", clean[1][:8])
    cmd = [
        sys.executable,
        "-m",
        "robust_eval.generate_cli",
        "make-c",
        str(tmp_path / "x.npy"),
        str(tmp_path / "o"),
        "--preset",
        "cifar",
        "--labels",
        str(tmp_path / "y.npy"),
        "--corruptions",
        "pixelate",
        "--no-progress",
    ]
    res = subprocess.run(
        cmd, capture_output=True, text=True, env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    )
    assert res.returncode == 0, res.stderr
    assert load_npy_images(tmp_path / "o" / "x-C" / "pixelate.npy").shape == (40, 32, 32, 3)
    bad = subprocess.run([*cmd[:-3], "--corruptions", "nope"], capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown corruption" in bad.stderr and "Traceback" not in bad.stderr


def test_robust_eval_readers_load_the_output(tmp_path, cifar_dir, clean):
    from robust_eval import data as readers

    if not hasattr(readers, "load_corruption_cell") or not hasattr(readers, "load_perturbation_array"):
        pytest.skip("the -C/-P readers of robust_eval.data are not in this checkout")
    images, _ = clean
    make_c(cifar_dir, tmp_path / "out", "cifar", corruptions=["snow"], progress=False)
    folder = readers.corruption_folder(tmp_path / "out", "cifar10")
    assert folder == tmp_path / "out" / "CIFAR-10-C"
    lab = readers.load_corruption_labels(folder, len(images))
    cell = readers.load_corruption_cell(folder, "snow", 2, lab)
    assert len(cell) == len(images)
    generate.make_p(cifar_dir, tmp_path / "out", "cifar", perturbations=["scale"], progress=False)
    pfolder = readers.perturbation_folder(tmp_path / "out", "cifar10")
    seqs = readers.load_perturbation_array(pfolder, "scale")
    assert len(seqs) == len(images)
