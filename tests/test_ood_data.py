"""The real OOD sets of the published CIFAR protocol: formats read by the published readers' rules,
the reference resize, discovery, the OOD suite over the sets present, and `data check`."""

from __future__ import annotations

import numpy as np
import pytest
from robust_eval_fixtures import heldout_digits, make_context, write_png_tree, write_project_checkpoint

from robust_eval import metrics
from robust_eval.data import (
    PROTOCOL_OOD_SETS,
    check_layouts,
    find_ood_sets,
    load_svhn,
    ood_source,
    read_image_pil,
    reference_resize_crop,
    write_cifar,
)


def _write_svhn(path, n=7, seed=0):
    """test_32x32.mat in the published layout: X (32, 32, 3, N) uint8, y (N, 1) with 10 for digit 0."""
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    savemat(str(path), {"X": x, "y": y})
    return x, y


@pytest.mark.parametrize(
    ("h", "w", "size"), [(45, 61, 32), (61, 45, 32), (33, 33, 32), (32, 50, 32), (90, 64, 16)]
)
def test_reference_resize_crop_is_torchvision_resize_then_center_crop(h, w, size):
    """Pixel for pixel what the Outlier Exposure script's trn.Resize(size) + trn.CenterCrop(size) give."""
    from PIL import Image
    from torchvision import transforms as trn

    image = np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)
    expected = np.asarray(trn.Compose([trn.Resize(size), trn.CenterCrop(size)])(Image.fromarray(image)))
    np.testing.assert_array_equal(reference_resize_crop(image, size), expected)


def test_svhn_mat_reads_as_torchvision_svhn(tmp_path, monkeypatch):
    """Our scipy.io reader and torchvision.datasets.SVHN (md5 check bypassed) agree on images and labels."""
    import torchvision.datasets as tvd

    _, y = _write_svhn(tmp_path / "test_32x32.mat")
    monkeypatch.setattr(tvd.SVHN, "_check_integrity", lambda self: True)
    ref = tvd.SVHN(str(tmp_path), split="test", download=False)
    images, labels = load_svhn(tmp_path / "test_32x32.mat")
    assert images.shape == (7, 32, 32, 3) and images.dtype == np.uint8
    for i in range(7):
        image, label = ref[i]
        np.testing.assert_array_equal(images[i], np.asarray(image))
        assert labels[i] == label
    assert set(labels) <= set(range(10)) and (labels[y[:, 0] == 10] == 0).all()


def _protocol_root(root):
    """Every real set of the protocol, in its published place (tiny)."""
    rng = np.random.default_rng(1)
    write_png_tree(
        root / "dtd" / "images", rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8), None, scale=2
    )
    _write_svhn(root / "svhn" / "test_32x32.mat", n=9)
    write_png_tree(root / "places365", rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), None, scale=3)
    write_png_tree(root / "LSUN", rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8), None, scale=2)
    images, labels = heldout_digits(20)
    write_cifar(root / "cifar-10-batches-py", "cifar10", images, labels)
    other = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    write_cifar(root / "cifar-100-python", "cifar100", other, rng.integers(0, 100, 8))
    return other


def test_find_ood_sets_in_their_published_places(tmp_path):
    root = tmp_path / "data"
    assert find_ood_sets(root, "cifar10") == ([], ["textures", "svhn", "places365", "lsun", "cifar"])
    other = _protocol_root(root)
    found, missing = find_ood_sets(root, "cifar10")
    assert missing == []
    assert [(e.name, e.kind) for e in found] == [
        ("textures", "images"),
        ("svhn", "svhn"),
        ("places365", "images"),
        ("lsun", "images"),
        ("cifar100", "cifar"),
    ]
    by_name = {e.name: e for e in found}
    np.testing.assert_array_equal(ood_source(by_name["cifar100"], 32).batch(0, 8), other)
    places = ood_source(by_name["places365"], 32)
    first = read_image_pil(places.paths[0])
    assert first.shape[0] == 96  # scale 3: 96 x 103, shrunk to 32 x 34, center-cropped
    np.testing.assert_array_equal(places.batch(0, 1)[0], reference_resize_crop(first, 32))
    assert find_ood_sets(root, "imagenet")[1] == []  # no "other CIFAR" for a non-CIFAR model


def test_ood_suite_averages_over_the_sets_present_and_lists_them(tmp_path):
    from robust_eval.suites import run_ood

    root = tmp_path / "data"
    _protocol_root(root)
    ckpt = write_project_checkpoint(tmp_path / "ck.pth")
    ctx = make_context(ckpt, root, tmp_path / "cache")
    out = run_ood(ctx)
    assert out["sets_present"] == [*PROTOCOL_OOD_SETS[:-1], "cifar100"]
    assert out["protocol_sets_missing"] == [] and out["mean_over"] == out["sets_present"]
    assert out["n_ood_per_set"] == 4 and out["sets"]["svhn"]["n"] == 4 and out["sets"]["lsun"]["n"] == 4
    assert out["mean_auroc"] == pytest.approx(np.mean([s["auroc"] for s in out["sets"].values()]))
    # the SVHN cell is the metric on the reference's images (a seeded choice of 4 of the 9)
    assert out["sets"]["svhn"]["format"] == "svhn" and 0.0 <= out["sets"]["svhn"]["fpr95"] <= 1.0
    (root / "LSUN").rename(root / "elsewhere")
    partial = run_ood(make_context(ckpt, root, tmp_path / "cache2"))
    assert "lsun" not in partial["sets_present"] and partial["protocol_sets_missing"] == ["lsun"]
    assert partial["sets"]["textures"]["auroc"] == pytest.approx(out["sets"]["textures"]["auroc"])
    assert metrics.SOFTMAX_PRECISIONS[0] in partial["softmax"]


def test_data_check_says_where_each_ood_set_goes(tmp_path):
    entries = {e.name: e for e in check_layouts(tmp_path)}
    assert entries["ood: SVHN"].status == "missing"
    assert str(tmp_path / "svhn" / "test_32x32.mat") in entries["ood: SVHN"].detail
    assert str(tmp_path / "dtd" / "images") in entries["ood: Textures (DTD)"].detail
    assert str(tmp_path / "places365") in entries["ood: Places365"].detail
    assert str(tmp_path / "LSUN") in entries["ood: LSUN"].detail
    assert entries["ood: the other CIFAR"].status == "partial"
    _protocol_root(tmp_path)
    entries = {e.name: e for e in check_layouts(tmp_path)}
    assert entries["ood: SVHN"].status == "present" and entries["ood: SVHN"].detail == "9 images 32x32"
    assert entries["ood: LSUN"].detail == "4 images" and entries["ood: the other CIFAR"].status == "present"
    from scipy.io import savemat

    savemat(str(tmp_path / "svhn" / "test_32x32.mat"), {"X": np.zeros((28, 28, 3, 2), np.uint8)})
    assert {e.name: e for e in check_layouts(tmp_path)}["ood: SVHN"].status == "malformed"
