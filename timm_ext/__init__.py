"""timm_ext: IPMix and PixMix inside timm training pipelines.

Importing the package registers the CIFAR architectures (``wrn40_4``, ``wrn28_10``,
``resnext29_32x4d``, ``resnet18_cifar``) with timm; ``timm_ext.register()`` (or
``import timm_ext.enable``) adds the ``ipmix-...`` / ``pixmix-...`` auto-augment strings to timm's
transform factory and makes timm's RandAugment survive 0-bit posterize on Pillow >= 12. Importing
changes neither environment variables nor timm's attributes (model registration aside).
"""

from timm_ext import models
from timm_ext.registry import is_registered, register, unregister
from timm_ext.transforms import AlbumentationsAdapter, mixing_transform, parse_mixing_config

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
