"""Import this module to make timm build IPMix / PixMix from ``ipmix-...`` / ``pixmix-...`` strings.

Meant for code you cannot edit, such as timm's repository ``train.py``, which imports the modules
named by ``--device-modules`` before building its loaders::

    python train.py /data/imagenet --model resnet50 --device-modules timm_ext.enable \\
        --aa ipmix-w3-d3-b4-s1 --aug-splits 3 --jsd-loss

The mixing pictures come from ``$TIMM_EXT_FRACTALS`` (a folder) when set, otherwise procedural
fractals. Importing also registers the CIFAR models (``wrn40_4``, ``wrn28_10``, ...).
"""

from __future__ import annotations

from . import models as _models  # noqa: F401 - registers the CIFAR architectures with timm
from .registry import register

register()
