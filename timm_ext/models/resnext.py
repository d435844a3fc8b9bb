"""ResNeXt-29 for CIFAR in the layout of the AugMix / PixMix / IPMix reference code.

Keys: ``conv_1_3x3``, ``bn_1``, ``stage_{1,2,3}.{i}.{conv_reduce, bn_reduce, conv_conv, bn,
conv_expand, bn_expand[, downsample.{0,1}]}``, ``classifier`` (``resnext29(classes)`` of
``models/ResNeXt_DenseNet/models/resnext.py``; RobustBench's ``Hendrycks2020AugMix_ResNeXt`` has the
same names). :func:`checkpoint_filter_fn` also reads this package's earlier layout.

===================  ==============================================  ==========  ================
timm name            architecture                                    parameters  feature levels
===================  ==============================================  ==========  ================
``resnext29_4x32d``  ResNeXt-29, cardinality 4, base width 32          6.8 M       64/256/512/1024
``resnext29_32x4d``  alias (this project's earlier name)               6.8 M       64/256/512/1024
===================  ==============================================  ==========  ================

Example:
    >>> import timm, timm_ext.models
    >>> timm.create_model("resnext29_4x32d", num_classes=100).feature_info[0]["module"]
    'stem_act'
"""

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
    has_legacy_blocks,
    init_weights,
    split_legacy_blocks,
    strip_prefixes,
)

__all__ = ["CifarResNeXt", "checkpoint_filter_fn"]


class _ResNeXtBottleneck(nn.Module):
    """1x1 reduce -> grouped 3x3 -> 1x1 expand (x4), post-activation, projection shortcut if needed."""

    def __init__(self, in_ch: int, planes: int, cardinality: int, base_width: int, stride: int) -> None:
        super().__init__()
        inner = (planes * base_width // 64) * cardinality
        out_ch = planes * 4
        self.conv_reduce = nn.Conv2d(in_ch, inner, 1, bias=False)
        self.bn_reduce = nn.BatchNorm2d(inner)
        self.conv_conv = nn.Conv2d(inner, inner, 3, stride, 1, groups=cardinality, bias=False)
        self.bn = nn.BatchNorm2d(inner)
        self.conv_expand = nn.Conv2d(inner, out_ch, 1, bias=False)
        self.bn_expand = nn.BatchNorm2d(out_ch)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
            if (in_ch != out_ch or stride != 1)
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn_reduce(self.conv_reduce(x)))
        y = F.relu(self.bn(self.conv_conv(y)))
        y = self.bn_expand(self.conv_expand(y))
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(residual + y)


class CifarResNeXt(CifarNet):
    """ResNeXt-29 for CIFAR: 3 stages of ``(depth - 2) / 9`` bottlenecks, outputs 256 / 512 / 1024.

    The defaults (``cardinality=4``, ``base_width=32``: grouped convolutions 128 / 256 / 512 wide) are
    those of the AugMix reference code that PixMix and IPMix reuse for their "ResNeXt-29" numbers.
    Feature levels: ``stem_act`` (the stem's conv-BN-ReLU), ``stage_1``, ``stage_2``, ``stage_3``.

    Args:
        depth: ``9 n + 2`` (29).
        cardinality: groups of the 3x3 convolutions.
        base_width: channels per group at the first stage (scaled with the stage width).
        num_classes: as for :class:`~timm_ext.models.WideResNet`.
        in_chans: as for :class:`~timm_ext.models.WideResNet`.
        global_pool: as for :class:`~timm_ext.models.WideResNet`.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        depth: int = 29,
        cardinality: int = 4,
        base_width: int = 32,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if depth < 11 or (depth - 2) % 9 != 0:
            raise ValueError(f"ResNeXt depth must be 9n+2 (29, ...), got {depth}")
        n = (depth - 2) // 9
        self.drop_rate = float(drop_rate)
        self.conv_1_3x3 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        self.bn_1 = nn.BatchNorm2d(64)
        self.stem_act = nn.ReLU()
        stages: list[nn.Sequential] = []
        in_ch = 64
        for s, planes in enumerate((64, 128, 256)):
            blocks = []
            for i in range(n):
                blocks.append(
                    _ResNeXtBottleneck(in_ch, planes, cardinality, base_width, 2 if s and not i else 1)
                )
                in_ch = planes * 4
            stages.append(nn.Sequential(*blocks))
        self.stage_1, self.stage_2, self.stage_3 = stages
        self._init_head(in_ch, num_classes, drop_rate, global_pool, attr="classifier")
        self.feature_info = feature_info(
            [64, 256, 512, 1024], [1, 1, 2, 4], ["stem_act", "stage_1", "stage_2", "stage_3"]
        )
        init_weights(self)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem_act(self.bn_1(self.conv_1_3x3(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage_3(self.stage_2(self.stage_1(self._stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self._pool(x)
        return x if pre_logits else self.classifier(x)

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self._stem, self.stage_1, self.stage_2, self.stage_3]


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> StateDict:
    """Any known ResNeXt layout -> ours: the papers' ``cifar.py`` and RobustBench (``module.`` /
    ``model.`` stripped, names already ours); this package's earlier layout (stem ``conv1``/``bn1``,
    ``blocks.j`` in equal stages, head ``fc``)."""
    sd = strip_prefixes(state_dict, ("module.", "model."))
    if not has_legacy_blocks(sd):
        return sd
    top = {"conv1.": "conv_1_3x3.", "bn1.": "bn_1.", "fc.": "classifier."}
    return split_legacy_blocks(sd, 3, "stage_{}", {}, top)


_cfg = cifar_cfg("conv_1_3x3", "classifier", 8)
default_cfgs = generate_default_cfgs({"resnext29_4x32d": _cfg, "resnext29_32x4d": dict(_cfg)})


def _resnext(name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    return build_cifar(name, CifarResNeXt, pretrained, {"depth": 29}, kwargs, checkpoint_filter_fn, 4)


@register_model
def resnext29_4x32d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNeXt-29 as in the AugMix/PixMix/IPMix reference code (cardinality 4, base width 32)."""
    return _resnext("resnext29_4x32d", pretrained, kwargs)


@register_model
def resnext29_32x4d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Alias of ``resnext29_4x32d`` (this project's earlier name; timm names cardinality first)."""
    return _resnext("resnext29_32x4d", pretrained, kwargs)
