"""Per-worker reseeding for PyTorch DataLoaders (works around an Albumentations 2.0.8 bug).

In Albumentations 2.0.8 every DataLoader worker inherits the same random state, so all workers
produce the same augmentations. IPMix and PixMix fix themselves (they reseed when they find
themselves in a new process), but the other transforms of a pipeline (crops, flips, ...) do not.
Pass :func:`worker_init_fn` to your DataLoader to reseed every Albumentations transform reachable
from the worker's dataset::

    from albumentations_ipmix import worker_init_fn
    loader = DataLoader(dataset, num_workers=4, worker_init_fn=worker_init_fn)

Seeds derive from (the pipeline's own seed, the worker's ``torch.initial_seed()``): distinct per
worker and epoch, reproducible when torch is seeded.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["reseed_transforms", "worker_init_fn"]


def _transforms_in(obj: Any, depth: int = 0, seen: set[int] | None = None) -> list[Any]:
    """Albumentations transforms/composes held by ``obj`` (dataset wrappers are followed)."""
    from albumentations.core.composition import BaseCompose
    from albumentations.core.transforms_interface import BasicTransform

    seen = set() if seen is None else seen
    if obj is None or id(obj) in seen or depth > 4:
        return []
    seen.add(id(obj))
    if isinstance(obj, (BasicTransform, BaseCompose)):
        return [obj]
    found: list[Any] = []
    if isinstance(obj, (list, tuple)):
        for item in obj:
            found += _transforms_in(item, depth + 1, seen)
        return found
    for name in ("transform", "transforms", "albumentations", "aug", "dataset", "datasets"):
        value = getattr(obj, name, None)
        if value is not None:
            found += _transforms_in(value, depth + 1, seen)
    return found


def reseed_transforms(obj: Any, worker_seed: int) -> int:
    """Reseed every Albumentations transform reachable from ``obj``; returns how many were reseeded.

    Each transform's new seed mixes its own ``seed`` (if any) with ``worker_seed``.
    """
    transforms = _transforms_in(obj)
    for transform in transforms:
        base = getattr(transform, "seed", None)
        entropy = [int(worker_seed)] if base is None else [int(base), int(worker_seed)]
        seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint32)[0])
        transform.set_random_seed(seed)
    return len(transforms)


def worker_init_fn(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: reseed the worker's Albumentations transforms."""
    import torch

    info = torch.utils.data.get_worker_info()
    if info is not None:
        reseed_transforms(info.dataset, torch.initial_seed())
