"""AugMix-style Jensen-Shannon consistency over the clean + augmented views (timm's ``JsdCrossEntropy``)."""

from __future__ import annotations

import torch
from torch import nn

from .base import StepOutput, TrainMethod

__all__ = ["Jsd"]


class Jsd(TrainMethod):
    """``--jsd`` with ``--aug ipmix | pixmix | augmix | randaugment``: CE on the clean view plus
    ``--jsd-alpha`` times the JS divergence between the views' predictions."""

    name = "jsd"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        from timm.loss import JsdCrossEntropy

        cfg = self.cfg
        self.loss_fn = JsdCrossEntropy(
            num_splits=cfg.aug_splits, alpha=cfg.jsd_alpha, smoothing=cfg.smoothing
        )

    def step(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, num_updates: int) -> StepOutput:
        out = net(x)
        return StepOutput(self.loss_fn(out, y), out[: len(y)])
