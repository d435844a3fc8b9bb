"""Clean-set readers: CIFAR python folders (safe unpickling), ImageFolder trees, .npy arrays."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from robust_eval.data import (
    DataLayoutError,
    find_cifar_folder,
    list_imagefolder,
    load_cifar,
    load_npy_images,
    read_image,
    write_cifar,
)


@pytest.mark.parametrize(("dataset", "train"), [("cifar10", False), ("cifar10", True), ("cifar100", False)])
def test_cifar_round_trip(tmp_path, dataset, train):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (23, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, 23)
    write_cifar(tmp_path / "cifar", dataset, images, labels, train=train)
    got_images, got_labels, names = load_cifar(tmp_path / "cifar", dataset, train=train)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert len(names) == (10 if dataset == "cifar10" else 100)


def test_find_cifar_folder_names_the_expected_place(tmp_path):
    with pytest.raises(DataLayoutError, match="cifar-10-batches-py"):
        find_cifar_folder(tmp_path, "cifar10")
    write_cifar(tmp_path / "cifar-10-batches-py", "cifar10", np.zeros((2, 32, 32, 3), np.uint8), [0, 1])
    assert find_cifar_folder(tmp_path, "cifar10") == tmp_path / "cifar-10-batches-py"


class _Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_reader_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": _Payload(), b"labels": [0]}, fh)
    with pytest.raises(pickle.UnpicklingError, match=r"refusing to load (posix|nt|os)\.system"):
        load_cifar(folder, "cifar10")


def test_imagefolder_and_npy(tmp_path):
    import cv2

    for cls, n in (("b_cls", 2), ("a_cls", 3)):
        (tmp_path / "tree" / cls).mkdir(parents=True)
        for i in range(n):
            img = np.full((5, 6, 3), (i * 40, 10, 200), np.uint8)
            cv2.imwrite(str(tmp_path / "tree" / cls / f"{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    paths, labels, classes = list_imagefolder(tmp_path / "tree")
    assert classes == ["a_cls", "b_cls"]
    assert labels.tolist() == [0, 0, 0, 1, 1]
    assert read_image(paths[4]).tolist()[0][0] == [40, 10, 200]
    arr = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    np.save(tmp_path / "x.npy", arr)
    loaded = load_npy_images(tmp_path / "x.npy")
    assert isinstance(loaded, np.memmap)
    np.testing.assert_array_equal(loaded, arr)
    np.save(tmp_path / "bad.npy", arr.astype(np.float32))
    with pytest.raises(DataLayoutError, match="expected uint8"):
        load_npy_images(tmp_path / "bad.npy")


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_write_cifar_is_read_by_torchvision(tmp_path, monkeypatch, dataset):
    """The published reader parses what we write (its md5 check of the official files is bypassed:
    our bytes differ by design; the parsing is what matters)."""
    import torchvision.datasets as tvd
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    rng = np.random.default_rng(3)
    n_classes = 10 if dataset == "cifar10" else 100
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, n_classes, 12)
    names = [f"name{i}" for i in range(n_classes)]
    folder = tmp_path / ("cifar-10-batches-py" if dataset == "cifar10" else "cifar-100-python")
    for train in (False, True):
        write_cifar(folder, dataset, images, labels, train=train, class_names=names)
        cls = tvd.CIFAR10 if dataset == "cifar10" else tvd.CIFAR100
        ds = cls(str(tmp_path), train=train, download=False)
        np.testing.assert_array_equal(ds.data, images)
        assert ds.targets == labels.tolist()
        assert ds.classes == names
        image, target = ds[5]
        np.testing.assert_array_equal(np.asarray(image), images[5])
        assert target == labels[5]
