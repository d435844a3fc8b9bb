"""DeepMind's WideResNet of RobustBench's zoo (Gowal et al. 2020, Rebuffi et al. 2021), in the layout
of its files.

Swish (or ReLU) activations and TensorFlow-style "SAME" padding done by hand (stride 2: pad
right/bottom by one, then a valid 3x3 convolution). Keys ``init_conv``,
``layer.{g}.block.{i}.{batchnorm_0, conv_0, batchnorm_1, conv_1[, shortcut]}``, ``batchnorm``,
``logits``, so RobustBench's checkpoints load with ``strict=True``. Written from the published
description. RobustBench keeps the CIFAR mean/std inside the model, not in the file; here it is the
``pretrained_cfg``'s (CIFAR-10) or the caller's.

=================  =============================================  ==========  ======================
timm name          architecture                                   parameters  feature levels
=================  =============================================  ==========  ======================
``dm_wrn70_16``    WRN-70-16, Swish (``depth``, ``width``,         267 M       16/256/512/1024
                   ``activation`` overridable)
=================  =============================================  ==========  ======================

Example:
    >>> import timm, timm_ext.models
    >>> timm.create_model("dm_wrn70_16", depth=10, width=1).feature_info[-1]["num_chs"]
    64
"""

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import nn

from timm_ext.models._base import (
    CIFAR10_MEAN_STD,
    CifarNet,
    StateDict,
    build_cifar,
    cifar_cfg,
    feature_info,
    strip_prefixes,
)

__all__ = ["DMWideResNet", "checkpoint_filter_fn"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {"swish": nn.SiLU, "relu": nn.ReLU}


class _DMBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, activation: str) -> None:
        super().__init__()
        self.batchnorm_0 = nn.BatchNorm2d(in_ch)
        self.act0 = _ACTIVATIONS[activation]()
        self.conv_0 = nn.Conv2d(in_ch, out_ch, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(out_ch)
        self.act1 = _ACTIVATIONS[activation]()
        self.conv_1 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride, 0, bias=False) if in_ch != out_ch else None
        self.pad = (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act0(self.batchnorm_0(x))
        if self.shortcut is not None:
            x = o  # the width changes: the activated input feeds both paths
        y = self.conv_0(F.pad(o, self.pad))
        y = self.conv_1(self.act1(self.batchnorm_1(y)))
        return (x if self.shortcut is None else self.shortcut(x)) + y


class _DMGroup(nn.Module):
    def __init__(self, n: int, in_ch: int, out_ch: int, stride: int, activation: str) -> None:
        super().__init__()
        self.block = nn.Sequential(
            *[
                _DMBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, activation)
                for i in range(n)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DMWideResNet(CifarNet):
    """DeepMind's WideResNet-``depth``-``width``.

    Feature levels: ``init_conv``, ``layer.0``, ``layer.1`` and ``act`` (the closing BN-activation
    after ``layer.2``).

    Args:
        depth: ``6 n + 4`` (70 for the RobustBench entries).
        width: widen factor (16 for the entries).
        activation: ``"swish"`` (x * sigmoid(x), the entries') or ``"relu"``.
        num_classes: as for :class:`~timm_ext.models.WideResNet`.
        in_chans: as for :class:`~timm_ext.models.WideResNet`.
        global_pool: as for :class:`~timm_ext.models.WideResNet`.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        depth: int = 70,
        width: int = 16,
        activation: str = "swish",
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"DMWideResNet depth must be 6n+4, got {depth}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
        self.drop_rate = float(drop_rate)
        n = (depth - 4) // 6
        w = [16, 16 * width, 32 * width, 64 * width]
        self.init_conv = nn.Conv2d(in_chans, w[0], 3, 1, 1, bias=False)
        self.layer = nn.Sequential(
            *[_DMGroup(n, w[g], w[g + 1], 2 if g else 1, activation) for g in range(3)]
        )
        self.batchnorm = nn.BatchNorm2d(w[3])
        self.act = _ACTIVATIONS[activation]()
        self._init_head(w[3], num_classes, drop_rate, global_pool, attr="logits")
        self.feature_info = feature_info(w, [1, 1, 2, 4], ["init_conv", "layer.0", "layer.1", "act"])

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.batchnorm(self.layer[2](x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._final(self.layer[1](self.layer[0](self.init_conv(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self._pool(x)
        return x if pre_logits else self.logits(x)

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self.init_conv, self.layer[0], self.layer[1], self._final]


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> StateDict:
    """RobustBench's files -> ours: ``module.`` / ``model.`` stripped (the names are already ours)."""
    return strip_prefixes(state_dict, ("module.", "model."))


default_cfgs = generate_default_cfgs(
    {"dm_wrn70_16": cifar_cfg("init_conv", "logits", 8, CIFAR10_MEAN_STD, license="unknown")}
)


@register_model
def dm_wrn70_16(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """DeepMind's WRN-70-16 with Swish (RobustBench's Rebuffi2021Fixing / Gowal2020Uncovering)."""
    arch = {"depth": 70, "width": 16, "activation": "swish"}
    return build_cifar("dm_wrn70_16", DMWideResNet, pretrained, arch, kwargs, checkpoint_filter_fn, 4)
