"""Training methods of ``timm train``: one small class per method (see :class:`TrainMethod`).

Adding a method: write ``methods/<name>.py`` with a :class:`TrainMethod` subclass, add its name to
``AUGMENTATIONS`` (``config.py``) and to :data:`METHODS` below.
"""

from __future__ import annotations

from torch import nn

from ..config import TrainConfig
from .adautomix import AdAutoMix, AdAutoMixNet
from .automix import AutoMix
from .base import StepOutput, TrainMethod
from .jsd import Jsd
from .mixup import MixupCutmix
from .plain import Plain

__all__ = [
    "METHODS",
    "AdAutoMix",
    "AdAutoMixNet",
    "AutoMix",
    "Jsd",
    "MixupCutmix",
    "Plain",
    "StepOutput",
    "TrainMethod",
    "create_method",
]

#: ``--aug`` -> method class (augmentations that only change the images train with :class:`Plain`).
METHODS: dict[str, type[TrainMethod]] = {
    "mixup": MixupCutmix,
    "cutmix": MixupCutmix,
    "adautomix": AdAutoMix,
    "automix": AutoMix,
}


def create_method(cfg: TrainConfig, model: nn.Module, num_classes: int, rank: int = 0) -> TrainMethod:
    """The method object for ``cfg`` (``--jsd`` selects :class:`Jsd`)."""
    cls = Jsd if cfg.jsd else METHODS.get(cfg.aug, Plain)
    return cls(cfg, model, num_classes, rank)
