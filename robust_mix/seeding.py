"""One seed derivation, and one finder of the transforms to reseed.

Every seed the project derives for a transform, a DataLoader worker or an epoch comes from
:func:`seed_sequence` of a list of non-negative integers (the *entropy*: a run seed, an epoch, a
rank, a worker's torch seed, a tag...), as NumPy's ``SeedSequence`` mixes them: seeds are distinct
for distinct entropies and repeat for equal ones. :func:`derive_seeds` draws 32-bit seeds from it
(what ``set_random_seed``, ``random.seed`` and ``torch.manual_seed`` take).

:func:`find_transforms` walks the object graph of a data set or transform pipeline (dataset
wrappers, ``.transform`` / ``.transforms`` attributes, lists and tuples) and returns the objects a
predicate picks, each once, in a stable order (the order the reseeders number them in).

Imports NumPy only (torch is looked up in ``sys.modules``, never imported here).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = [
    "CHILD_ATTRIBUTES",
    "derive_seed",
    "derive_seeds",
    "find_transforms",
    "process_entropy",
    "seed_sequence",
]

#: Attributes through which :func:`find_transforms` reaches the transforms of a data set or pipeline:
#: dataset wrappers first (``Subset.dataset``, ``ConcatDataset.datasets``), then torchvision / timm /
#: Albumentations containers, timm's ``AugMixDataset.augmentation`` and common user wrappers
#: (``.albumentations``, ``.aug``). The order fixes the walk order, hence the numbering of the finds.
CHILD_ATTRIBUTES = ("dataset", "datasets", "transform", "transforms", "augmentation", "albumentations", "aug")
_LEAVES = (str, bytes, int, float, complex, bool, np.ndarray, np.generic)


def seed_sequence(entropy: Iterable[int]) -> np.random.SeedSequence:
    """The ``SeedSequence`` of ``entropy`` (non-negative integers of any size)."""
    return np.random.SeedSequence([int(value) for value in entropy])


def derive_seeds(entropy: Iterable[int], count: int, dtype: type = np.uint32) -> list[int]:
    """``count`` seeds (unsigned, 32-bit unless ``dtype`` says 64) drawn from :func:`seed_sequence`."""
    return [int(value) for value in seed_sequence(entropy).generate_state(count, dtype=dtype)]


def derive_seed(entropy: Iterable[int]) -> int:
    """One 32-bit seed (``0 <= seed < 2**32``) of ``entropy``."""
    return derive_seeds(entropy, 1)[0]


def process_entropy() -> int:
    """This process's entropy: ``torch.initial_seed()`` when torch is in use (a DataLoader worker's seed),
    else the process id."""
    torch = sys.modules.get("torch")
    return int(torch.initial_seed()) if torch is not None else os.getpid()


def find_transforms(obj: Any, match: Callable[[Any], bool]) -> list[Any]:
    """Every object reachable from ``obj`` for which ``match`` is true, each once, in walk order.

    The walk follows list and tuple items and the :data:`CHILD_ATTRIBUTES` of every object, and stops
    at a match (a Compose that matches is returned whole, its children are not). Numbers, strings,
    arrays and tensors are not entered; cycles are visited once.
    """
    torch = sys.modules.get("torch")
    leaves = _LEAVES + ((torch.Tensor,) if torch is not None else ())
    found: list[Any] = []
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, leaves) or id(item) in seen:
            continue
        seen.add(id(item))
        if match(item):
            found.append(item)
            continue
        if isinstance(item, (list, tuple)):
            children = list(item)
        else:
            children = [getattr(item, name, None) for name in CHILD_ATTRIBUTES]
        stack.extend(reversed(children))
    return found
