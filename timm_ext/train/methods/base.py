"""The interface every training method of ``timm train`` implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from ..config import TrainConfig

__all__ = ["StepOutput", "TrainMethod"]


@dataclass
class StepOutput:
    """What one training step returns to the loop.

    Attributes:
        loss: the scalar to back-propagate.
        logits: the clean view's logits ``[B, K]`` for the train accuracy (None: soft targets, no accuracy).
        stats: per-step values averaged over the epoch into the method's ``csv_columns``.
    """

    loss: torch.Tensor
    logits: torch.Tensor | None = None
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


class TrainMethod:
    """One way to compute the training loss: owns its loss, its extra modules and their state.

    The loop builds the optimizer on :meth:`param_groups`, wraps :attr:`network` in
    ``DistributedDataParallel`` when distributed, calls :meth:`step` under autocast, steps the
    optimizer, then :meth:`after_update`. It evaluates and saves :meth:`eval_model` as ``state_dict``.

    Subclasses set ``name`` and override what differs; see ``methods/automix.py`` for a method that is
    one small file on top of another.
    """

    name: ClassVar[str] = "none"
    #: names of the steps' ``stats``, averaged over each epoch into ``metrics.csv`` columns.
    step_stats: ClassVar[tuple[str, ...]] = ()
    #: every extra ``metrics.csv`` column (``step_stats`` first, then what validation adds).
    csv_columns: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: TrainConfig, model: nn.Module, num_classes: int, rank: int = 0) -> None:
        self.cfg = cfg
        self.model = model
        self.num_classes = num_classes
        self.rank = rank

    @property
    def network(self) -> nn.Module:
        """The module that runs in the step (what DDP wraps)."""
        return self.model

    def param_groups(self) -> nn.Module | list[dict[str, Any]]:
        """What ``create_optimizer_v2`` receives (a module: timm's no-decay filter on BN / bias)."""
        return self.model

    def step(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, num_updates: int) -> StepOutput:
        """Loss of one batch. ``net`` is :attr:`network` or its DDP wrapper; ``num_updates`` is the
        0-based global step (it fixes the random draws of methods that need them)."""
        raise NotImplementedError

    def start_epoch(self, epoch: int) -> None:
        """Called before every training epoch (0-based ``epoch``)."""

    def after_update(self, num_updates: int, total_updates: int) -> None:
        """Called after every optimizer step with the number of steps done (EMA updates, ...)."""

    def adjust_lr(self, optimizer: torch.optim.Optimizer) -> None:
        """Called after every scheduler step (per-group learning-rate rules)."""

    def eval_model(self) -> nn.Module:
        """The model validated, reported and saved as ``state_dict`` in best.pth / final.pth."""
        return self.model

    def online_model(self) -> nn.Module | None:
        """A second model saved as ``state_dict_online`` (None: the eval model is the trained one)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """State beyond the model's (extra modules); restored by :meth:`load_state_dict` on resume."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (strict)."""
