"""Readers of the -C / -C-bar / -P / OOD / ImageFolder layouts, synthetic OOD sets, data check."""

from __future__ import annotations

import numpy as np
import pytest
from robust_eval_fixtures import heldout_digits, make_data_root, write_c_folder, write_png_tree

from robust_eval.constants import BENCHMARK_CORRUPTIONS
from robust_eval.data import (
    ArraySource,
    DataLayoutError,
    FileSource,
    SyntheticSource,
    check_layouts,
    corruption_folder,
    imagefolder_split,
    list_ood_sets,
    load_corruption_cell,
    load_corruption_labels,
    load_perturbation_array,
    perturbation_folder,
    resize_center_crop,
    severity_folders,
    synthetic_ood,
)


def test_corruption_cell_reads_the_rows_of_its_severity(tmp_path):
    images = np.zeros((4, 32, 32, 3), np.uint8)
    labels = np.array([3, 1, 4, 1])
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    arr = np.concatenate([np.full_like(images, s) for s in range(1, 6)])
    np.save(folder / "fog.npy", arr)
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    lab = load_corruption_labels(folder)
    assert lab.dtype == np.int64 and lab.tolist() == labels.tolist() * 5
    for s in range(1, 6):
        cell = load_corruption_cell(folder, "fog", s, lab)
        assert len(cell) == 4 and cell.labels.tolist() == labels.tolist()
        batch = cell.batch(1, 3)
        assert batch.shape == (2, 32, 32, 3) and (batch == s).all()
        assert batch.flags.writeable
    assert isinstance(load_corruption_cell(folder, "fog", 1, lab).images, np.memmap)
    assert len(load_corruption_cell(folder, "fog", 2, lab).head(3)) == 3
    with pytest.raises(ValueError, match=r"severity must be 1\.\.5"):
        load_corruption_cell(folder, "fog", 6, lab)
    np.save(folder / "bad.npy", arr[:7])
    with pytest.raises(DataLayoutError, match="5 severities"):
        load_corruption_cell(folder, "bad", 1, lab)
    assert corruption_folder(tmp_path, "cifar10") == folder
    assert corruption_folder(tmp_path, "cifar100") is None


def test_cbar_folder_name_variants_and_labels_missing(tmp_path):
    (tmp_path / "CIFAR-100-C-Bar").mkdir()
    assert corruption_folder(tmp_path, "cifar100", bar=True) == tmp_path / "CIFAR-100-C-Bar"
    with pytest.raises(DataLayoutError, match=r"labels\.npy' is missing"):
        load_corruption_labels(tmp_path / "CIFAR-100-C-Bar")


def test_perturbation_arrays(tmp_path):
    folder = tmp_path / "CIFAR-10-P"
    folder.mkdir()
    np.save(folder / "rotate.npy", np.zeros((3, 7, 32, 32, 3), np.uint8))
    seqs = load_perturbation_array(folder, "rotate")
    assert (len(seqs), seqs.frames) == (3, 7)
    assert seqs.sequences(0, 2).shape == (2, 7, 32, 32, 3)
    assert len(seqs.head(1)) == 1
    assert perturbation_folder(tmp_path, "cifar10") == folder
    np.save(folder / "flat.npy", np.zeros((3, 32, 32, 3), np.uint8))
    with pytest.raises(DataLayoutError, match=r"expected uint8 \(N, T>=2, H, W, 3\)"):
        load_perturbation_array(folder, "flat")


@pytest.mark.parametrize("name", ["gaussian", "rademacher", "blobs"])
def test_synthetic_ood_is_deterministic_and_in_range(name):
    a = synthetic_ood(name, 40, 32, seed=3)
    assert a.shape == (40, 32, 32, 3) and a.dtype == np.float32
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, synthetic_ood(name, 40, 32, seed=3))
    assert not np.array_equal(a, synthetic_ood(name, 40, 32, seed=4))
    # streamed batch by batch (across the 256-image blocks) equals the one-shot array
    whole = synthetic_ood(name, 600, 8, seed=1)
    src = SyntheticSource(name, 600, 8, seed=1)
    np.testing.assert_array_equal(np.concatenate([src.batch(i, i + 128) for i in range(0, 600, 128)]), whole)
    np.testing.assert_array_equal(synthetic_ood(name, 7, 8, seed=1, start=250), whole[250:257])


def test_synthetic_ood_definitions():
    g = synthetic_ood("gaussian", 200, 16) * 2 - 1  # back to the reference's [-1, 1] space
    assert abs(g.mean()) < 0.02 and 0.4 < g.std() < 0.5  # N(0, 0.5) clipped to [-1, 1]
    assert np.isclose((np.abs(g) == 1).mean(), 0.0455, atol=0.01)  # P(|N(0, .5)| > 1)
    r = synthetic_ood("rademacher", 200, 16)
    assert set(np.unique(r)) == {0.0, 1.0} and abs(r.mean() - 0.5) < 0.02
    b = synthetic_ood("blobs", 200, 32)
    assert ((b == 0) | (b >= 0.75)).all() and 0.05 < (b > 0).mean() < 0.95
    with pytest.raises(ValueError, match="unknown synthetic OOD set"):
        synthetic_ood("uniform", 3)


def test_blobs_match_outlier_exposure_3d_blur():
    """Blobs as Outlier Exposure builds them: skimage ``gaussian(sigma=1.5)`` with no channel axis, i.e.
    one 3-D Gaussian over (H, W, C), on the same Bernoulli(0.7) draw; a per-channel blur would not match."""
    from skimage.filters import gaussian

    from robust_eval.data import SYNTHETIC_BLOCK, SYNTHETIC_OOD

    ours = synthetic_ood("blobs", 6, 32, seed=5)
    rng = np.random.default_rng([5, SYNTHETIC_OOD.index("blobs"), 0])  # the draw of block 0
    draw = rng.binomial(1, 0.7, (SYNTHETIC_BLOCK, 32, 32, 3)).astype(np.float32)[:6]
    for i in range(6):
        ref = gaussian(draw[i], sigma=1.5, channel_axis=None, mode="nearest", truncate=4.0)
        ref[ref < 0.75] = 0.0
        np.testing.assert_allclose(ours[i], ref, rtol=0, atol=1e-6)
    # the channel mixing shrinks the blobs: about 0.21 of the values survive (per-channel: ~0.31)
    many = synthetic_ood("blobs", 256, 32, seed=0)
    assert 0.18 < (many > 0).mean() < 0.24


def test_resize_center_crop():
    img = np.arange(60 * 80 * 3, dtype=np.uint8).reshape(60, 80, 3)
    out = resize_center_crop(img, 32, crop_pct=0.875)
    assert out.shape == (32, 32, 3) and out.flags.c_contiguous
    same = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_center_crop(same, 32), same)
    # 60x80 half black / half white -> shorter side 40 (40x53) -> center crop keeps the edge centered
    halves = np.zeros((60, 80, 3), np.uint8)
    halves[:, 40:] = 255
    crop = resize_center_crop(halves, 40, 1.0)
    assert crop.shape == (40, 40, 3)
    assert (crop[:, :18] == 0).all() and (crop[:, 23:] == 255).all()


def test_imagefolder_split_and_file_source(tmp_path):
    images, labels = heldout_digits(6)
    write_png_tree(tmp_path / "root" / "val", images, labels, scale=2)
    write_png_tree(tmp_path / "root" / "validation", images[:2], labels[:2])
    split = imagefolder_split(tmp_path / "root")
    assert split.name == "val"  # test > val > validation
    assert imagefolder_split(tmp_path / "root", "validation").name == "validation"
    with pytest.raises(DataLayoutError, match="split folder"):
        imagefolder_split(tmp_path / "root", "train")
    from robust_eval.data import list_imagefolder

    paths, lab, _ = list_imagefolder(split)
    src = FileSource(paths, lab, 32, 1.0, workers=2)
    batch = src.batch(0, 4)
    assert batch.shape == (4, 32, 32, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(src.batch(0, 4), FileSource(paths, lab, 32, 1.0).batch(0, 4))
    assert len(src.head(2)) == 2


def test_array_source_validates():
    with pytest.raises(DataLayoutError, match="labels"):
        ArraySource(np.zeros((3, 4, 4, 3), np.uint8), np.zeros(2))
    gray = ArraySource(np.zeros((2, 4, 4, 1), np.uint8))
    assert gray.batch(0, 2).shape == (2, 4, 4, 3)


def test_severity_folders_sort_numerically(tmp_path):
    for name in ("10.00", "2.50", "0.75", "1.00", "5.25"):
        (tmp_path / "ripple" / name).mkdir(parents=True)
    assert [p.name for p in severity_folders(tmp_path / "ripple")] == [
        "0.75",
        "1.00",
        "2.50",
        "5.25",
        "10.00",
    ]
    (tmp_path / "ripple" / "extra").mkdir()
    with pytest.raises(DataLayoutError, match="non-numeric"):
        severity_folders(tmp_path / "ripple")


def test_check_layouts_good_root(tmp_path):
    root = make_data_root(tmp_path / "data", n=10)
    status = {e.name: e for e in check_layouts(root)}
    assert status["cifar10"].status == "present" and "10 images" in status["cifar10"].detail
    assert status["CIFAR-10-C"].status == "present" and status["CIFAR-10-C"].detail == "19 arrays"
    assert status["CIFAR-10-C-bar"].status == "present"
    assert status["CIFAR-10-P"].status == "partial"  # the 4 validation perturbations are absent
    assert "shear" in status["CIFAR-10-P"].detail
    assert status["cifar100"].status == "missing" and "cifar-100-python" in status["cifar100"].detail
    assert status["ood/noise_npy"].status == "present" and status["ood/textures"].status == "present"
    assert set(list_ood_sets(root)) == {"noise_npy", "textures"}


def test_check_layouts_reports_malformed(tmp_path):
    root = tmp_path / "data"
    images, labels = heldout_digits(4)
    write_c_folder(root / "CIFAR-10-C", images, labels, BENCHMARK_CORRUPTIONS[:3])
    np.save(root / "CIFAR-10-C" / "fog.npy", np.zeros((20, 32, 32, 3), np.float32))
    (root / "CIFAR-10-C-bar").mkdir()
    np.save(root / "CIFAR-10-C-bar" / "labels.npy", np.zeros(5, np.uint8))
    np.save(root / "CIFAR-10-C-bar" / "ripple.npy", np.zeros((20, 32, 32, 3), np.uint8))
    (root / "CIFAR-10-P").mkdir()
    np.save(root / "CIFAR-10-P" / "rotate.npy", np.zeros((2, 32, 32, 3), np.uint8))
    (root / "cifar-10-batches-py").mkdir()
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    (root / "ood" / "empty").mkdir(parents=True)
    np.save(root / "ood" / "bad.npy", np.zeros((3, 8, 8), np.uint8))
    status = {e.name: e for e in check_layouts(root)}
    assert status["CIFAR-10-C"].status == "malformed" and "fog.npy: float32" in status["CIFAR-10-C"].detail
    assert (
        status["CIFAR-10-C-bar"].status == "malformed"
        and "labels.npy has 5" in status["CIFAR-10-C-bar"].detail
    )
    assert status["CIFAR-10-P"].status == "malformed" and "rotate.npy" in status["CIFAR-10-P"].detail
    assert status["cifar10"].status == "malformed"
    assert status["ood/empty"].status == "malformed" and status["ood/bad"].status == "malformed"
