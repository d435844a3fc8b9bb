"""robust_mix.seeding: the one seed derivation and the one transform finder."""

from __future__ import annotations

import numpy as np

from robust_mix.seeding import derive_seed, derive_seeds, find_transforms


class Leaf:
    def __init__(self, name: str) -> None:
        self.name = name


class Wrapper:
    def __init__(self, **children: object) -> None:
        self.__dict__.update(children)


def test_derive_seed_is_the_seed_sequence_state():
    expected = np.random.SeedSequence([3, 2**64 + 5]).generate_state(2, dtype=np.uint32)
    assert derive_seeds([3, 2**64 + 5], 2) == [int(v) for v in expected]
    assert derive_seed([3, 2**64 + 5]) == int(expected[0])
    assert derive_seed([1, 2]) != derive_seed([2, 1])


def test_find_transforms_follows_wrappers_lists_and_stops_at_a_match():
    a, b, c, inner = Leaf("a"), Leaf("b"), Leaf("c"), Leaf("inner")
    a.transforms = [inner]  # a match is returned whole: its children are not searched
    concat = Wrapper(datasets=[Wrapper(dataset=Wrapper(transform=a)), Wrapper(transform=(b, 3, "x"))])
    root = Wrapper(dataset=concat, transform=c)
    root.dataset.datasets.append(root)  # a cycle is visited once
    found = find_transforms(root, lambda obj: isinstance(obj, Leaf))
    assert [leaf.name for leaf in found] == ["a", "b", "c"]


def test_find_transforms_skips_arrays_and_numbers():
    holder = Wrapper(transform=np.zeros(3), transforms=7, aug=Leaf("x"))
    assert [leaf.name for leaf in find_transforms(holder, lambda obj: isinstance(obj, Leaf))] == ["x"]
