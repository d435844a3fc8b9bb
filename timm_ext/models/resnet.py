"""IPMix's CIFAR ResNet (3x3 stem, no max-pool) in the reference code's layout.

Keys: ``conv1.{0,1}`` (3x3 stem + BN), ``conv{2..5}_x.{i}.residual_function.{0,1,3,4}``,
``conv{3..5}_x.0.shortcut.{0,1}``, ``fc`` (``models/ResNet/resnet.py`` of the IPMix repository).
:func:`checkpoint_filter_fn` also reads RobustBench's CIFAR ResNet-18 (``Modas2021PRIMEResNet18``:
``conv1``, ``bn1``, ``layer{1..4}``, ``linear``) and this package's earlier layout.

==================  =============================================  ==========  ==================
timm name           architecture                                   parameters  feature levels
==================  =============================================  ==========  ==================
``resnet18_cifar``  CIFAR ResNet-18 (BasicBlock [2, 2, 2, 2])       11.2 M      64/64/128/256/512
==================  =============================================  ==========  ==================

(IPMix's ``resnet18(num_classes)`` ignores its argument and always builds 100 classes; here
``num_classes`` is honoured.)

Example:
    >>> import timm, timm_ext.models
    >>> timm.create_model("resnet18_cifar", num_classes=100).feature_info[-1]["num_chs"]
    512
"""

import re
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
    rename_keys,
    split_legacy_blocks,
    strip_prefixes,
)

__all__ = ["CifarResNet", "checkpoint_filter_fn"]


class _BasicBlock(nn.Module):
    """``residual_function`` = conv3x3-BN-ReLU-conv3x3-BN, ``shortcut`` = identity or conv1x1-BN."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.residual_function = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
            if (in_ch != out_ch or stride != 1)
            else nn.Sequential()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.residual_function(x) + self.shortcut(x))


class CifarResNet(CifarNet):
    """IPMix's CIFAR ResNet: 3x3 stride-1 stem (``conv1`` = conv-BN-ReLU), no max-pool, stages
    ``conv2_x`` .. ``conv5_x`` of 64 / 128 / 256 / 512 channels (the feature levels, after the stem).

    Args:
        layers: blocks per stage (``(2, 2, 2, 2)`` for ResNet-18).
        num_classes: as for :class:`~timm_ext.models.WideResNet`.
        in_chans: as for :class:`~timm_ext.models.WideResNet`.
        global_pool: as for :class:`~timm_ext.models.WideResNet`.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"CifarResNet needs 4 stages of >= 1 block, got layers={tuple(layers)}")
        self.drop_rate = float(drop_rate)
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_chans, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        )
        stages: list[nn.Sequential] = []
        in_ch = 64
        for s, count in enumerate(layers):
            out_ch = 64 * 2**s
            stages.append(
                nn.Sequential(
                    *[
                        _BasicBlock(in_ch if i == 0 else out_ch, out_ch, 2 if s and not i else 1)
                        for i in range(count)
                    ]
                )
            )
            in_ch = out_ch
        self.conv2_x, self.conv3_x, self.conv4_x, self.conv5_x = stages
        self._init_head(in_ch, num_classes, drop_rate, global_pool)
        self.feature_info = feature_info(
            [64, 64, 128, 256, 512], [1, 1, 2, 4, 8], ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x"]
        )
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5_x(self.conv4_x(self.conv3_x(self.conv2_x(self.conv1(x)))))

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self.conv1, self.conv2_x, self.conv3_x, self.conv4_x, self.conv5_x]


#: block and top-level names of the earlier layout and of RobustBench's ResNet-18 -> ours
_BLOCK = {
    "conv1": "residual_function.0",
    "bn1": "residual_function.1",
    "conv2": "residual_function.3",
    "bn2": "residual_function.4",
    "downsample": "shortcut",
}
_TOP = {"conv1.": "conv1.0.", "bn1.": "conv1.1.", "linear.": "fc."}


def _robustbench_block(m: re.Match[str]) -> str:
    return f"conv{int(m[1]) + 1}_x.{m[2]}.{_BLOCK.get(m[3], m[3])}."


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> StateDict:
    """Any known CIFAR ResNet layout -> ours.

    - the papers' ``cifar.py`` (DataParallel): ``module.`` stripped, names already ours;
    - RobustBench (PRIME): ``conv1``/``bn1`` -> ``conv1.{0,1}``, ``layer{s}.{i}.{conv1, bn1, conv2,
      bn2, shortcut}`` -> ``conv{s+1}_x.{i}.{residual_function.{0,1,3,4}, shortcut}``, ``linear`` ->
      ``fc`` (the ``mu``/``sigma`` normalization buffers are the caller's to take out first);
    - this package's earlier layout: ``blocks.j.{conv1, bn1, conv2, bn2, downsample}`` (equal stages).
    """
    sd = strip_prefixes(state_dict, ("module.", "model."))
    if has_legacy_blocks(sd):
        return split_legacy_blocks(sd, 4, "conv{}_x", _BLOCK, _TOP, first=2)
    if not any(k.startswith("layer1.") for k in sd):
        return sd
    top = [(f"^{re.escape(old)}", new) for old, new in _TOP.items()]
    return rename_keys(sd, [(r"^layer(\d)\.(\d+)\.(\w+)\.", _robustbench_block), *top])


default_cfgs = generate_default_cfgs({"resnet18_cifar": cifar_cfg("conv1.0", "fc", 4)})


@register_model
def resnet18_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """IPMix's CIFAR ResNet-18 (3x3 stem, no max-pool)."""
    arch = {"layers": (2, 2, 2, 2)}
    return build_cifar("resnet18_cifar", CifarResNet, pretrained, arch, kwargs, checkpoint_filter_fn, 5)
