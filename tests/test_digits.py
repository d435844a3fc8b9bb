"""The digits writer: its CIFAR-10 python folder is read back by our reader and by torchvision's."""

from __future__ import annotations

import numpy as np
import pytest
import torchvision.datasets.cifar as tv_cifar
from typer.testing import CliRunner

from robust_eval.cli import app
from robust_eval.data import find_cifar_folder, load_cifar, load_npy_images
from robust_eval.digits import digits_dataset, split_digits, write_digits


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    write_digits(root)
    return root


def test_images_are_the_sklearn_digits_upscaled():
    from sklearn.datasets import load_digits

    images, labels = digits_dataset()
    assert images.shape == (1797, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(labels, load_digits().target)
    assert np.array_equal(images[..., 0], images[..., 2])  # grey in three channels
    # ink is dark on white paper: the block means follow 255 - 255 * v / 16 of the 8 x 8 original
    small = images[..., 0].reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4))
    expected = 255 - 255 * load_digits().images / 16
    assert np.corrcoef(small.ravel(), expected.ravel())[0, 1] > 0.95


def test_split_is_fixed_stratified_and_disjoint():
    _, labels = digits_dataset()
    train, test = split_digits(labels)
    assert len(test) == 360 and len(train) == 1437
    assert not set(train) & set(test)
    assert np.array_equal(test, split_digits(labels)[1])  # the same split every time
    # every class keeps its share (20% +- one image) in the test split
    share = np.bincount(labels[test], minlength=10) / np.bincount(labels, minlength=10)
    assert np.all(np.abs(share - 0.2) < 0.01)


def test_our_reader_reads_the_folder(root):
    images, labels = digits_dataset()
    train, test = split_digits(labels)
    folder = find_cifar_folder(root, "cifar10")
    x_test, y_test, names = load_cifar(folder, "cifar10")
    x_train, y_train, _ = load_cifar(folder, "cifar10", train=True)
    assert names == [str(i) for i in range(10)]
    assert np.array_equal(x_test, images[test]) and np.array_equal(y_test, labels[test])
    assert np.array_equal(x_train, images[train]) and np.array_equal(y_train, labels[train])


def test_torchvision_cifar10_reads_the_folder(root, monkeypatch):
    """The published reader parses our files; only its md5 check (for the official download) is bypassed."""
    monkeypatch.setattr(tv_cifar.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda path, md5=None: True)
    images, labels = digits_dataset()
    train, test = split_digits(labels)
    tv_test = tv_cifar.CIFAR10(str(root), train=False)
    tv_train = tv_cifar.CIFAR10(str(root), train=True)
    assert tv_test.classes == [str(i) for i in range(10)]
    assert np.array_equal(tv_test.data, images[test]) and tv_test.targets == labels[test].tolist()
    assert np.array_equal(tv_train.data, images[train]) and tv_train.targets == labels[train].tolist()
    img, target = tv_test[0]
    assert img.size == (32, 32) and target == labels[test][0]


def test_ood_photos_and_rerun_keeps_files_but_never_overwrites_others(root):
    photos = load_npy_images(root / "ood" / "photos.npy")
    assert photos.shape == (400, 32, 32, 3) and photos.std() > 20
    stamp = (root / "cifar-10-batches-py" / "test_batch").stat().st_mtime_ns
    assert set(write_digits(root).values()) == {"kept"}
    assert (root / "cifar-10-batches-py" / "test_batch").stat().st_mtime_ns == stamp


def test_cli_writes_and_refuses_foreign_content(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["data", "digits", str(tmp_path), "--no-ood"])
    assert result.exit_code == 0, result.output
    assert "written" in result.output and not (tmp_path / "ood").exists()
    target = tmp_path / "cifar-10-batches-py" / "test_batch"
    target.write_bytes(b"somebody else's file")
    refused = runner.invoke(app, ["data", "digits", str(tmp_path), "--no-ood"])
    assert refused.exit_code == 2 and "already exists with other content" in refused.output
    assert target.read_bytes() == b"somebody else's file"
