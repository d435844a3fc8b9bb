"""albumentations_ipmix: IPMix and PixMix as native Albumentations transforms.

Importing this package registers the transforms for ``A.from_dict`` / ``A.load``. It needs numpy,
OpenCV and Albumentations only (no torch).
"""

from albumentations_ipmix.fractals import FractalSource
from albumentations_ipmix.sources import (
    ArraySource,
    FolderSource,
    MixingSource,
    MixingSourceError,
    as_source,
)
from albumentations_ipmix.transforms import IPMix, PixMix
from albumentations_ipmix.workers import reseed_transforms, worker_init_fn

__version__ = "0.1.0"

__all__ = [
    "ArraySource",
    "FolderSource",
    "FractalSource",
    "IPMix",
    "MixingSource",
    "MixingSourceError",
    "PixMix",
    "as_source",
    "reseed_transforms",
    "worker_init_fn",
]
