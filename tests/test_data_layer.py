"""The data layer: the CIFAR archive format in robust_mix.cifar, the table of data layouts, and the
data-side hardening of `robust-eval data check` / `robust-eval all` (issues 15 and 9)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from robust_mix.cifar import DataLayoutError, load_cifar, write_cifar


def test_cifar_format_imports_without_robust_eval_torch_or_albumentations():
    code = (
        "import sys, robust_mix.cifar; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('robust_eval', 'torch', 'albumentations')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_timm_train_data_reads_cifar_through_robust_mix():
    import inspect

    from timm_ext.train import data

    source = inspect.getsource(data.load_data)
    assert "robust_mix.cifar import" in source and "robust_eval" not in source


def test_robust_eval_data_re_exports_the_one_cifar_format():
    import robust_eval.data as rdata
    import robust_mix.cifar as fmt

    for name in ("CIFAR_FOLDERS", "DataLayoutError", "find_cifar_folder", "load_cifar", "write_cifar"):
        assert getattr(rdata, name) is getattr(fmt, name)


def test_digits_writes_through_write_cifar(tmp_path):
    """The digits folder is byte-identical to what write_cifar writes for the same split."""
    from robust_eval.digits import _CLASS_NAMES, digits_dataset, split_digits, write_digits

    write_digits(tmp_path / "a", ood=False)
    images, labels = digits_dataset()
    train, test = split_digits(labels)
    ref = tmp_path / "b"
    write_cifar(ref, "cifar10", images[train], labels[train], train=True, class_names=_CLASS_NAMES)
    write_cifar(ref, "cifar10", images[test], labels[test], train=False, class_names=_CLASS_NAMES)
    ours = tmp_path / "a" / "cifar-10-batches-py"
    names = sorted(p.name for p in ref.iterdir())
    assert names == sorted(p.name for p in ours.iterdir())
    for name in names:
        assert (ours / name).read_bytes() == (ref / name).read_bytes(), name


@pytest.mark.parametrize("cut", [0, 1, 100, -1])
def test_truncated_cifar_pickle_is_one_data_layout_error(tmp_path, cut):
    folder = write_cifar(tmp_path / "c", "cifar10", np.zeros((3, 32, 32, 3), np.uint8), [0, 1, 2])
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: cut if cut >= 0 else len(raw) // 2])
    with pytest.raises(DataLayoutError, match="test_batch' is not a readable python batch"):
        load_cifar(folder, "cifar10")


def test_zero_image_cifar_split_is_refused(tmp_path):
    folder = write_cifar(tmp_path / "c", "cifar10", np.zeros((0, 32, 32, 3), np.uint8), [])
    with pytest.raises(DataLayoutError, match="holds 0 cifar10 test images"):
        load_cifar(folder, "cifar10")


def test_foreign_pickle_content_is_a_data_layout_error(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({"data": "text", "labels": 3}))
    with pytest.raises(DataLayoutError, match="test_batch"):
        load_cifar(folder, "cifar10")
