"""Plain supervised training: cross-entropy (optionally label-smoothed) on the (augmented) batch."""

from __future__ import annotations

import torch
from torch import nn

from .base import StepOutput, TrainMethod

__all__ = ["Plain"]


class Plain(TrainMethod):
    """``--aug none | ipmix | pixmix | augmix | randaugment | cutout`` without ``--jsd``.

    With ``--aug-splits S`` the S views of each image are separate samples with the same label.
    """

    name = "none"

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        from timm.loss import LabelSmoothingCrossEntropy

        self.loss_fn: nn.Module = (
            LabelSmoothingCrossEntropy(smoothing=self.cfg.smoothing)
            if self.cfg.smoothing > 0
            else nn.CrossEntropyLoss()
        )

    def step(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, num_updates: int) -> StepOutput:
        target = y.repeat(self.cfg.aug_splits) if self.cfg.aug_splits > 1 else y
        out = net(x)
        return StepOutput(self.loss_fn(out, target), out[: len(y)])
