"""timm_ext: IPMix and PixMix inside timm training pipelines.

Importing the package registers the CIFAR architectures (``wrn40_4``, ``wrn28_10``,
``resnext29_32x4d``, ``resnet18_cifar``) with timm; ``timm_ext.register()`` (or
``import timm_ext.enable``) adds the ``ipmix-...`` / ``pixmix-...`` auto-augment strings to timm's
transform factory and makes timm's RandAugment survive 0-bit posterize on Pillow >= 12. Importing
changes neither environment variables nor timm's attributes (model registration aside).

The one exception is the ``timm`` command (:func:`robust_mix.launch.timm`): it parses its
arguments before torch is imported, so it asks for the registration to wait
(:data:`robust_mix.launch.DEFER_HEAVY_IMPORTS`); ``timm train`` then registers the models itself,
and the names below are imported on first use.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module defining it (imported on first access).
_LAZY = {
    "AlbumentationsAdapter": "timm_ext.transforms",
    "mixing_transform": "timm_ext.transforms",
    "parse_mixing_config": "timm_ext.transforms",
    "is_registered": "timm_ext.registry",
    "register": "timm_ext.registry",
    "unregister": "timm_ext.registry",
}

__all__ = [
    "AlbumentationsAdapter",
    "is_registered",
    "mixing_transform",
    "models",
    "parse_mixing_config",
    "register",
    "unregister",
]


def __getattr__(name: str) -> Any:
    if name == "models":
        return importlib.import_module("timm_ext.models")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'timm_ext' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if not getattr(sys.modules.get("robust_mix.launch"), "DEFER_HEAVY_IMPORTS", False):
    from timm_ext import models
