"""--subset N evaluates a seeded, class-stratified sample (robust_eval.data.sample_indices)."""

from __future__ import annotations

import numpy as np
import pytest

from robust_eval.data import ArraySource, FileSource, SequenceSource, sample_indices


def test_stratified_sample_is_proportional_sorted_and_deterministic():
    labels = np.repeat(np.arange(10), [300, 200, 100, 100, 100, 50, 50, 50, 25, 25])  # sorted by class
    idx = sample_indices(len(labels), 100, labels, seed=0)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx], minlength=10)
    expected = np.bincount(labels, minlength=10) / len(labels) * 100
    assert np.all(np.abs(counts - expected) <= 1), (counts, expected)
    np.testing.assert_array_equal(idx, sample_indices(len(labels), 100, labels, seed=0))
    assert not np.array_equal(idx, sample_indices(len(labels), 100, labels, seed=1))


def test_first_n_of_an_image_folder_would_be_one_class_but_the_sample_is_not():
    labels = np.repeat(np.arange(5), 40)
    head = ArraySource(np.zeros((200, 2, 2, 3), np.uint8), labels).head(30)
    assert set(head.labels) == {0}  # what --subset used to evaluate
    src = FileSource([f"{i}.png" for i in range(200)], labels, size=8)
    picked = src.sample(30, seed=0)
    assert np.bincount(picked.labels, minlength=5).tolist() == [6, 6, 6, 6, 6]
    assert picked.paths == [f"{i}.png" for i in sample_indices(200, 30, labels, 0)]


def test_unlabelled_and_sequence_samples():
    idx = sample_indices(1000, 10, None, seed=3)
    assert len(set(idx.tolist())) == 10 and idx.max() < 1000
    seqs = SequenceSource(np.arange(20 * 2 * 2 * 2 * 3, dtype=np.uint8).reshape(20, 2, 2, 2, 3))
    sub = seqs.sample(5, seed=3)
    np.testing.assert_array_equal(sub.array, seqs.array[sample_indices(20, 5, None, 3)])
    assert seqs.sample(None) is seqs and seqs.sample(50) is seqs


def test_array_subset_keeps_a_contiguous_block_memory_mapped(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(10 * 2 * 2 * 3, dtype=np.uint8).reshape(10, 2, 2, 3))
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    block = ArraySource(mapped).subset(np.arange(2, 6))
    assert isinstance(block.images, np.memmap)
    np.testing.assert_array_equal(ArraySource(mapped).subset(np.array([7, 1])).images, mapped[[7, 1]])


def test_impossible_sample_is_refused():
    with pytest.raises(ValueError, match="cannot sample 5 of 3"):
        sample_indices(3, 5)
