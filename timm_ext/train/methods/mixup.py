"""MixUp / CutMix with timm's ``Mixup`` and soft-target cross-entropy."""

from __future__ import annotations

import torch
from torch import nn

from ..config import TrainConfig
from .base import StepOutput, TrainMethod

__all__ = ["MixupCutmix", "mixup_alphas"]


def mixup_alphas(cfg: TrainConfig) -> tuple[float, float]:
    """(MixUp alpha, CutMix alpha) of a run: the ``--aug`` method's alpha defaults to 1.0, the other
    one is on only when given (then timm's ``Mixup`` switches between them per batch)."""
    if cfg.aug == "mixup":
        return (1.0 if cfg.mixup is None else cfg.mixup), (cfg.cutmix or 0.0)
    return (cfg.mixup or 0.0), (1.0 if cfg.cutmix is None else cfg.cutmix)


class MixupCutmix(TrainMethod):
    """``--aug mixup`` / ``--aug cutmix`` through timm's ``Mixup`` (with its ``prob``, ``switch_prob`` and
    ``mode``); ``--mixup-off-epoch E`` turns mixing off from epoch E on, as timm's ``train.py`` does."""

    name = "mixup"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        from timm.data import Mixup
        from timm.loss import SoftTargetCrossEntropy

        cfg = self.cfg
        mixup_alpha, cutmix_alpha = mixup_alphas(cfg)
        self.mixup_fn = Mixup(
            mixup_alpha=mixup_alpha,
            cutmix_alpha=cutmix_alpha,
            prob=cfg.mixup_prob,
            switch_prob=cfg.mixup_switch_prob,
            mode=cfg.mixup_mode,
            label_smoothing=cfg.smoothing,
            num_classes=self.num_classes,
        )
        self.loss_fn = SoftTargetCrossEntropy()

    def start_epoch(self, epoch: int) -> None:
        off = self.cfg.mixup_off_epoch
        if off and epoch >= off:
            self.mixup_fn.mixup_enabled = False

    def step(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, num_updates: int) -> StepOutput:
        x, target = self.mixup_fn(x, y)
        return StepOutput(self.loss_fn(net(x), target))
