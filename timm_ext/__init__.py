"""timm_ext: IPMix and PixMix inside timm training pipelines.

Importing the package registers the CIFAR architectures (``wrn40_4``, ``wrn28_10``,
``resnext29_32x4d``, ``resnet18_cifar``) with timm; ``timm_ext.register()`` (or
``import timm_ext.enable``) adds the ``ipmix-...`` / ``pixmix-...`` auto-augment strings to timm's
transform factory.
"""

import os as _os

_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from timm_ext import models
from timm_ext.compat import fix_posterize
from timm_ext.registry import is_registered, register, unregister
from timm_ext.transforms import AlbumentationsAdapter, mixing_transform, parse_mixing_config

fix_posterize()  # timm RandAugment on Pillow >= 12 (see timm_ext.compat)

__version__ = "0.1.0"

__all__ = [
    "AlbumentationsAdapter",
    "is_registered",
    "mixing_transform",
    "models",
    "parse_mixing_config",
    "register",
    "unregister",
]
