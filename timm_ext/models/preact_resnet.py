"""Pre-activation ResNet-18 of RobustBench's corruption zoo, in the layout of its files.

Blocks take the shortcut from the first BN-ReLU ("PreActBlockV2"), with a BN-ReLU before the
classifier (Kireev et al. 2021, Addepalli et al. 2021). Keys ``conv1``,
``layer{1..4}.{i}.{bn1, conv1, bn2, conv2[, shortcut.0]}``, ``bn``, ``linear``, so RobustBench's
checkpoints load with ``strict=True`` (after :func:`checkpoint_filter_fn` strips its wrappers).
Written from the published description. The entries normalize inside RobustBench's model; here the
normalization is the ``pretrained_cfg``'s (CIFAR-10 mean/std, Kireev2021's) or the caller's.

=========================  ==========================================  ==========  ==================
timm name                  architecture                                parameters  feature levels
=========================  ==========================================  ==========  ==================
``preact_resnet18_cifar``  PreActResNet-18, BN-ReLU before the head     11.2 M      64/64/128/256/512
=========================  ==========================================  ==========  ==================

Example:
    >>> import timm, timm_ext.models
    >>> timm.create_model("preact_resnet18_cifar", num_classes=100).get_classifier().out_features
    100
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

__all__ = ["PreActResNet", "checkpoint_filter_fn"]


class _PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3; the 1x1 ``shortcut`` (when the shape changes) reads the first
    BN-ReLU's output."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False))
            if (stride != 1 or in_ch != out_ch)
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        short = x if self.shortcut is None else self.shortcut(o)
        return self.conv2(F.relu(self.bn2(self.conv1(o)))) + short


class PreActResNet(CifarNet):
    """Pre-activation ResNet for 32 px inputs (stages of 64 / 128 / 256 / 512 channels).

    Feature levels: ``conv1``, ``layer1``, ``layer2``, ``layer3`` and the last map (``act``, the
    closing BN-ReLU, with ``bn_before_fc``; else ``layer4``).

    Args:
        layers: blocks per stage (``(2, 2, 2, 2)``: ResNet-18).
        bn_before_fc: a BN-ReLU on the last feature map before pooling (``bn``).
        num_classes: as for :class:`~timm_ext.models.WideResNet`.
        in_chans: as for :class:`~timm_ext.models.WideResNet`.
        global_pool: as for :class:`~timm_ext.models.WideResNet`.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        bn_before_fc: bool = True,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"PreActResNet needs 4 stages of >= 1 block, got layers={tuple(layers)}")
        self.drop_rate = float(drop_rate)
        self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        in_ch = 64
        stages = []
        for s, count in enumerate(layers):
            out_ch = 64 * 2**s
            blocks = [
                _PreActBlock(in_ch if i == 0 else out_ch, out_ch, 2 if s and not i else 1)
                for i in range(count)
            ]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(in_ch) if bn_before_fc else None
        self.act = nn.ReLU() if bn_before_fc else None
        self._init_head(in_ch, num_classes, drop_rate, global_pool, attr="linear")
        last = "act" if bn_before_fc else "layer4"
        self.feature_info = feature_info(
            [64, 64, 128, 256, 512], [1, 1, 2, 4, 8], ["conv1", "layer1", "layer2", "layer3", last]
        )

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(x)
        if self.bn is not None and self.act is not None:
            x = self.act(self.bn(x))
        return x

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._final(self.layer3(self.layer2(self.layer1(self.conv1(x)))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self._pool(x)
        return x if pre_logits else self.linear(x)

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self.conv1, self.layer1, self.layer2, self.layer3, self._final]


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> StateDict:
    """RobustBench's files -> ours: ``module.`` / ``model.`` stripped (the names are already ours;
    Kireev2021's ``mu``/``sigma`` buffers are the caller's to take out first)."""
    return strip_prefixes(state_dict, ("module.", "model."))


default_cfgs = generate_default_cfgs(
    {"preact_resnet18_cifar": cifar_cfg("conv1", "linear", 4, CIFAR10_MEAN_STD, license="unknown")}
)


@register_model
def preact_resnet18_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """PreActResNet-18 with a BN-ReLU before the classifier (RobustBench's Kireev2021 / Addepalli2021)."""
    arch = {"layers": (2, 2, 2, 2), "bn_before_fc": True}
    return build_cifar(
        "preact_resnet18_cifar", PreActResNet, pretrained, arch, kwargs, checkpoint_filter_fn, 5
    )
