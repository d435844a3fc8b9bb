"""Readers and data-check rows of ImageNet-V2 matched-frequency, ImageNet-Sketch, Stylized-ImageNet
and the ReaL labels, on trees the tests write in the published layouts."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from robust_eval.data import (
    LAYOUTS,
    DataLayoutError,
    check_layouts,
    list_class_index_folders,
    load_real_labels,
    real_labels_of,
)


def _png(path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((8, 8, 3), value, np.uint8))


def _wnids(n: int = 1000) -> list[str]:
    return [f"n{i:08d}" for i in range(n)]


def _v2_tree(root, classes=(0, 2, 10, 999)):
    """ImageNet-V2's release: <class index>/<hash>.jpeg; every index gets a folder, a few an image."""
    for c in range(1000):
        (root / str(c)).mkdir(parents=True, exist_ok=True)
    for c in classes:
        _png(root / str(c) / f"{c:04x}.png", c % 256)
    return root


def test_v2_labels_are_the_folder_numbers_not_their_sorted_rank(tmp_path):
    root = _v2_tree(tmp_path / "imagenetv2-matched-frequency-format-val")
    paths, labels, n = list_class_index_folders(root)
    assert n == 1000 and labels.tolist() == [0, 2, 10, 999]  # sorted by name "10" would come before "2"
    assert [p.split("/")[-2] for p in paths] == ["0", "2", "10", "999"]
    row = {e.name: e for e in check_layouts(tmp_path)}["imagenet-v2-matched-frequency"]
    assert row.status == "present" and row.detail == "1000 classes, 4 images"
    (root / "n01440764").mkdir()
    with pytest.raises(DataLayoutError, match="not class indices"):
        list_class_index_folders(root)
    assert {e.name: e for e in check_layouts(tmp_path)}["imagenet-v2-matched-frequency"].status == "malformed"


def test_sketch_and_stylized_are_wnid_trees_with_1000_classes(tmp_path):
    for wnid in _wnids():
        (tmp_path / "sketch" / wnid).mkdir(parents=True)
        (tmp_path / "stylized-imagenet" / "val" / wnid).mkdir(parents=True)
    _png(tmp_path / "sketch" / "n00000003" / "sketch_1.png", 3)
    _png(tmp_path / "stylized-imagenet" / "val" / "n00000007" / "a.png", 7)
    rows = {e.name: e for e in check_layouts(tmp_path)}
    assert (
        rows["imagenet-sketch"].status == "present"
        and rows["imagenet-sketch"].detail == "1000 classes, 1 images"
    )
    assert rows["stylized-imagenet"].status == "present" and rows["stylized-imagenet"].detail.startswith(
        "val/"
    )
    assert LAYOUTS["imagenet-sketch"].find(tmp_path) == tmp_path / "sketch"
    (tmp_path / "sketch" / "n00000000").rmdir()
    assert {e.name: e for e in check_layouts(tmp_path)}["imagenet-sketch"].status == "malformed"


def test_missing_sets_say_put_what_where(tmp_path):
    rows = {e.name: e for e in check_layouts(tmp_path)}
    for name, place in (
        ("imagenet-real", "imagenet/real.json"),
        ("imagenet-v2-matched-frequency", "imagenetv2-matched-frequency-format-val"),
        ("imagenet-sketch", "imagenet-sketch"),
        ("stylized-imagenet", "stylized-imagenet"),
    ):
        assert rows[name].status == "missing" and rows[name].detail.startswith("put ")
        assert rows[name].detail.endswith(f"at '{tmp_path / place}'")


def test_real_labels_by_validation_file_name(tmp_path):
    real = [[] for _ in range(50_000)]
    real[0], real[41], real[49_999] = [5], [1, 7], [999]
    path = tmp_path / "imagenet" / "real.json"
    path.parent.mkdir()
    path.write_text(json.dumps(real))
    loaded = load_real_labels(path)
    names = ["val/n1/ILSVRC2012_val_00000042.JPEG", "val/n2/ILSVRC2012_val_00000001.JPEG"]
    assert real_labels_of(names, loaded) == [[1, 7], [5]]
    assert real_labels_of(["x/ILSVRC2012_val_00000002.JPEG"], loaded) == [[]]  # no ReaL label
    row = {e.name: e for e in check_layouts(tmp_path)}["imagenet-real"]
    assert row.status == "present" and row.detail == "50000 images, 3 with a ReaL label"
    with pytest.raises(DataLayoutError, match="ILSVRC2012_val_"):
        real_labels_of(["val/n1/photo.JPEG"], loaded)


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("[[1], [2]]", "has 2 entries"),
        ("[[1000]]", "class indices 0..999"),
        ('{"a": 1}', "list of lists"),
        ("[", "JSON"),
    ],
)
def test_bad_real_json_is_refused_with_the_reason(tmp_path, content, says):
    path = tmp_path / "real.json"
    path.write_text(content)
    with pytest.raises(DataLayoutError, match=says):
        load_real_labels(path)
    assert {e.name: e for e in check_layouts(tmp_path)}["imagenet-real"].status == "malformed"
