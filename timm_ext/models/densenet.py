"""DenseNet-40 (k=12, no bottleneck, no compression) for CIFAR in the reference code's layout.

Keys: ``conv1``, ``dense{1,2,3}.{i}.{bn1, conv1}``, ``trans{1,2}.{bn1, conv1}``, ``bn1``, ``fc``
(``densenet(12, 40, classes)`` of ``models/ResNeXt_DenseNet/models/densenet.py``, identical in
AugMix's ``third_party/``). :func:`checkpoint_filter_fn` reads the papers' ``cifar.py`` files.

==================  =============================================  ==========  ================
timm name           architecture                                   parameters  feature levels
==================  =============================================  ==========  ================
``densenet40_k12``  DenseNet-40, growth 12                          1.1 M       24/168/312/456
==================  =============================================  ==========  ================

Example:
    >>> import timm, timm_ext.models
    >>> [f["module"] for f in timm.create_model("densenet40_k12").feature_info]
    ['conv1', 'dense1', 'dense2', 'act']
"""

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import generate_default_cfgs, register_model
from torch import nn

from timm_ext.models._base import (
    CifarNet,
    StateDict,
    build_cifar,
    cifar_cfg,
    feature_info,
    init_weights,
    strip_prefixes,
)

__all__ = ["CifarDenseNet", "checkpoint_filter_fn"]


class _DenseLayer(nn.Module):
    """BN-ReLU-conv3x3 producing ``growth`` maps, concatenated to the input (``SingleLayer``)."""

    def __init__(self, in_ch: int, growth: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.conv1(F.relu(self.bn1(x)))], 1)


class _Transition(nn.Module):
    """BN-ReLU-conv1x1, then 2x2 average pooling."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(self.conv1(F.relu(self.bn1(x))), 2)


class CifarDenseNet(CifarNet):
    """DenseNet for CIFAR without bottleneck layers (the AugMix/PixMix/IPMix "DenseNet-40 (k=12)").

    Three dense blocks of ``(depth - 4) / 3`` layers, transitions with compression ``reduction``.
    Feature levels: ``conv1``, ``dense1``, ``dense2`` and ``act`` (the closing BN-ReLU).

    Args:
        depth: ``3 n + 4`` (40).
        growth_rate: maps added per layer ``k`` (12); the stem has ``2 k``.
        reduction: transition compression (1.0: none, as in the papers' net).
        num_classes: as for :class:`~timm_ext.models.WideResNet`.
        in_chans: as for :class:`~timm_ext.models.WideResNet`.
        global_pool: as for :class:`~timm_ext.models.WideResNet`.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        depth: int = 40,
        growth_rate: int = 12,
        reduction: float = 1.0,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if depth < 7 or (depth - 4) % 3 != 0:
            raise ValueError(f"DenseNet depth must be 3n+4 (40, ...), got {depth}")
        n = (depth - 4) // 3
        self.drop_rate = float(drop_rate)
        ch = 2 * growth_rate
        self.conv1 = nn.Conv2d(in_chans, ch, 3, padding=1, bias=False)
        widths = [ch]
        blocks: list[nn.Module] = []
        for b in range(3):
            blocks.append(nn.Sequential(*[_DenseLayer(ch + i * growth_rate, growth_rate) for i in range(n)]))
            ch += n * growth_rate
            widths.append(ch)
            if b < 2:
                out = math.floor(ch * reduction)
                blocks.append(_Transition(ch, out))
                ch = out
        self.dense1, self.trans1, self.dense2, self.trans2, self.dense3 = blocks
        self.bn1 = nn.BatchNorm2d(ch)
        self.act = nn.ReLU()
        self._init_head(ch, num_classes, drop_rate, global_pool)
        self.feature_info = feature_info(widths, [1, 1, 2, 4], ["conv1", "dense1", "dense2", "act"])
        init_weights(self)

    def _block2(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense2(self.trans1(x))

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn1(self.dense3(self.trans2(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._final(self._block2(self.dense1(self.conv1(x))))

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self.conv1, self.dense1, self._block2, self._final]


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> StateDict:
    """The papers' ``cifar.py`` layout (and any ``module.`` / ``model.`` wrapper) -> ours."""
    return strip_prefixes(state_dict, ("module.", "model."))


default_cfgs = generate_default_cfgs({"densenet40_k12": cifar_cfg("conv1", "fc", 8)})


@register_model
def densenet40_k12(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """DenseNet-40 with growth rate 12, no bottleneck and no compression (the papers' DenseNet)."""
    arch = {"depth": 40, "growth_rate": 12}
    return build_cifar("densenet40_k12", CifarDenseNet, pretrained, arch, kwargs, checkpoint_filter_fn, 4)
