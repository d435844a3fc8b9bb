"""MixUp / CutMix with timm's ``Mixup`` and soft-target cross-entropy."""

from __future__ import annotations

import torch
from torch import nn

from .base import StepOutput, TrainMethod

__all__ = ["MixupCutmix"]


class MixupCutmix(TrainMethod):
    """``--aug mixup`` (alpha ``--mixup``) or ``--aug cutmix`` (alpha ``--cutmix``), pairs in the batch."""

    name = "mixup"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy

        cfg = self.cfg
        self.mixup_fn = Mixup(
            mixup_alpha=cfg.mixup if cfg.aug == "mixup" else 0.0,
            cutmix_alpha=cfg.cutmix if cfg.aug == "cutmix" else 0.0,
            label_smoothing=cfg.smoothing,
            num_classes=self.num_classes,
        )
        self.loss_fn = SoftTargetCrossEntropy()

    def step(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, num_updates: int) -> StepOutput:
        x, target = self.mixup_fn(x, y)
        return StepOutput(self.loss_fn(net(x), target))
