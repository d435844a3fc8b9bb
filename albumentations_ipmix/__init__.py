"""albumentations_ipmix: IPMix and PixMix as native Albumentations transforms.

The names below load on first use (PEP 562), so ``import albumentations_ipmix`` and its command
``ipmix-fractals --help`` stay fast: Albumentations (which imports torch) is imported when a
transform is first touched, and importing :mod:`albumentations_ipmix.transforms` (which
``from albumentations_ipmix import IPMix`` does) registers the transforms for ``A.from_dict`` /
``A.load``. The package needs numpy, OpenCV and Albumentations only (no torch of its own).
"""

from __future__ import annotations

import importlib
from typing import Any

# numpy only: registers the procedural fractal source every transform defaults to
from albumentations_ipmix.fractals import FractalSource as FractalSource

__version__ = "0.1.0"

#: public name -> the module that defines it
_WHERE = {
    "ArraySource": "albumentations_ipmix.sources",
    "FolderSource": "albumentations_ipmix.sources",
    "IPMix": "albumentations_ipmix.transforms",
    "MixingSource": "albumentations_ipmix.sources",
    "MixingSourceError": "albumentations_ipmix.sources",
    "PixMix": "albumentations_ipmix.transforms",
    "as_source": "albumentations_ipmix.sources",
    "reseed_transforms": "albumentations_ipmix.workers",
    "worker_init_fn": "albumentations_ipmix.workers",
}

__all__ = sorted([*_WHERE, "FractalSource"])


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'albumentations_ipmix' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
