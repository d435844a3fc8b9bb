"""What ``write_cifar``'s docstring says about torchvision, checked the way a user would call it."""

from __future__ import annotations

import numpy as np
import pytest

from robust_mix.cifar import write_cifar

datasets = pytest.importorskip("torchvision.datasets")


@pytest.mark.parametrize(
    ("dataset", "cls", "folder"),
    [("cifar10", "CIFAR10", "cifar-10-batches-py"), ("cifar100", "CIFAR100", "cifar-100-python")],
)
def test_torchvision_refuses_the_files_but_reads_them_bit_exact_past_its_md5_check(
    tmp_path, monkeypatch, dataset, cls, folder
):
    rng = np.random.default_rng(0)
    n_classes = 10 if dataset == "cifar10" else 100
    images = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, n_classes, 30)
    names = [f"name{i}" for i in range(n_classes)]
    write_cifar(tmp_path / folder, dataset, images, labels, class_names=names)
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        getattr(datasets, cls)(str(tmp_path), train=False, download=False)
    monkeypatch.setattr(datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    read = getattr(datasets, cls)(str(tmp_path), train=False, download=False)
    assert read.data.dtype == np.uint8 and np.array_equal(read.data, images)
    assert read.targets == labels.tolist() and read.classes == names
    assert "refuses" in write_cifar.__doc__ and "bit-exact" in write_cifar.__doc__
