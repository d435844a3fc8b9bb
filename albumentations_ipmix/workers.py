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

from robust_mix.seeding import derive_seed, find_transforms

__all__ = ["reseed_transforms", "worker_init_fn"]


def _is_transform(obj: Any) -> bool:
    from albumentations.core.composition import BaseCompose
    from albumentations.core.transforms_interface import BasicTransform

    return isinstance(obj, (BasicTransform, BaseCompose))


def reseed_transforms(obj: Any, worker_seed: int) -> int:
    """Reseed every Albumentations transform reachable from ``obj``; returns how many were reseeded.

    Each transform's new seed mixes its own ``seed`` (if any) with ``worker_seed``
    (:func:`robust_mix.seeding.derive_seed`; the transforms are found by
    :func:`robust_mix.seeding.find_transforms`).
    """
    transforms = find_transforms(obj, _is_transform)
    for transform in transforms:
        base = getattr(transform, "seed", None)
        transform.set_random_seed(derive_seed([worker_seed] if base is None else [base, worker_seed]))
    return len(transforms)


def worker_init_fn(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: reseed the worker's Albumentations transforms."""
    import torch

    info = torch.utils.data.get_worker_info()
    if info is not None:
        reseed_transforms(info.dataset, torch.initial_seed())
