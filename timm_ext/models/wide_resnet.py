"""Wide ResNet for CIFAR in the layout of the AugMix / PixMix / IPMix reference code.

Keys: ``conv1``, ``block{1,2,3}.layer.{i}.{bn1, conv1, bn2, conv2[, conv_shortcut]}``, ``bn1``, ``fc``
(``WideResNet(depth, classes, widen)`` of ``models/WideResNet_pytorch/wideresnet.py``), so a
reference ``state_dict`` loads with ``strict=True``. :func:`checkpoint_filter_fn` also reads
RobustBench's files (``convShortcut``, an unused ``sub_block1``) and this package's earlier layout.

===============  ==============================================  ==========  ================
timm name        architecture                                    parameters  feature levels
===============  ==============================================  ==========  ================
``wrn40_2``      WRN-40-2 (AugMix's net; RobustBench                2.2 M       16/32/64/128
                 ``Hendrycks2020AugMix_WRN``)
``wrn40_4``      WRN-40-4 (the IPMix paper's main CIFAR model)      8.9 M       16/64/128/256
``wrn28_10``     WRN-28-10                                          36.5 M      16/160/320/640
``wrn34_10``     WRN-34-10                                          46.2 M      16/160/320/640
``wrn_cifar``    any ``depth`` (6n+4) and ``widen_factor``          -           -
===============  ==============================================  ==========  ================

(Parameters at 10 classes.)

Example:
    >>> import timm, timm_ext.models
    >>> model = timm.create_model("wrn40_4", num_classes=100, drop_rate=0.3)
    >>> model.num_classes, model.pretrained_cfg["input_size"], model.feature_info[2]["num_chs"]
    (100, (3, 32, 32), 128)
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
    rename_keys,
    split_legacy_blocks,
    strip_prefixes,
)

__all__ = ["WideResNet", "checkpoint_filter_fn"]


class _WideBlock(nn.Module):
    """Pre-activation block BN-ReLU-conv3x3 [dropout] BN-ReLU-conv3x3 (+ ``conv_shortcut`` when the
    width changes; then the first BN-ReLU feeds both the branch and the shortcut)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        if in_ch == out_ch and stride != 1:
            raise ValueError("a WRN block that keeps its width cannot stride (reference layout)")
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.drop_rate = float(drop_rate)
        self.conv_shortcut = nn.Conv2d(in_ch, out_ch, 1, stride, 0, bias=False) if in_ch != out_ch else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        residual = x if self.conv_shortcut is None else self.conv_shortcut(o)
        y = F.relu(self.bn2(self.conv1(o)))
        if self.drop_rate > 0.0:
            y = F.dropout(y, p=self.drop_rate, training=self.training)
        return self.conv2(y) + residual


class _WideGroup(nn.Module):
    """One stage (``block{1,2,3}.layer.{i}``)."""

    def __init__(self, n: int, in_ch: int, out_ch: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.layer = nn.Sequential(
            *[
                _WideBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, drop_rate)
                for i in range(n)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(CifarNet):
    """Wide ResNet-``depth``-``widen_factor`` for small images (stage widths 16k, 32k, 64k).

    Feature levels: ``conv1`` (stem), ``block1``, ``block2`` and ``act`` (the closing BN-ReLU after
    ``block3``, i.e. ``forward_features``).

    Args:
        depth: total depth, ``6 n + 4`` (40 for WRN-40-x, 28 for WRN-28-x).
        widen_factor: channel multiplier ``k``.
        num_classes: classifier outputs (0: no classifier, pooled features out).
        in_chans: input channels.
        drop_rate: dropout probability inside every block (0.3 in the papers' WRN-40-4 runs).
        global_pool: ``"avg"`` or ``""`` (no pooling).
    """

    def __init__(
        self,
        depth: int = 40,
        widen_factor: int = 4,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
        global_pool: str = "avg",
    ) -> None:
        super().__init__()
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4 (28, 40, ...), got {depth}")
        n = (depth - 4) // 6
        w = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.drop_rate = float(drop_rate)
        self.conv1 = nn.Conv2d(in_chans, w[0], 3, 1, 1, bias=False)
        self.block1 = _WideGroup(n, w[0], w[1], 1, drop_rate)
        self.block2 = _WideGroup(n, w[1], w[2], 2, drop_rate)
        self.block3 = _WideGroup(n, w[2], w[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(w[3])
        self.act = nn.ReLU()
        self._init_head(w[3], num_classes, 0.0, global_pool)
        self.feature_info = feature_info(w, [1, 1, 2, 4], ["conv1", "block1", "block2", "act"])
        init_weights(self)

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn1(self.block3(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._final(self.block2(self.block1(self.conv1(x))))

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self.conv1, self.block1, self.block2, self._final]


def checkpoint_filter_fn(state_dict: Mapping[str, torch.Tensor], model: nn.Module | None = None) -> StateDict:
    """Any known WRN layout -> ours.

    - the papers' ``cifar.py`` (DataParallel): ``module.`` stripped, names already ours;
    - RobustBench: ``model.`` stripped, ``convShortcut`` -> ``conv_shortcut``, the unused
      ``sub_block1`` (Addepalli2021Towards_WRN34) dropped;
    - this package's earlier layout: ``blocks.j.{bn1, conv1, bn2, conv2, shortcut}`` (equal stages)
      and a final ``bn`` -> ``block{s}.layer.{i}`` and ``bn1``.
    """
    sd = strip_prefixes(state_dict, ("module.", "model."))
    if has_legacy_blocks(sd):
        return split_legacy_blocks(
            sd, 3, "block{}.layer", {"shortcut": "conv_shortcut"}, {"conv1.": "conv1.", "bn.": "bn1."}
        )
    return rename_keys(sd, [(r"\.convShortcut\.", ".conv_shortcut.")], drop=("sub_block1.",))


_SIZES: dict[str, tuple[int, int]] = {
    "wrn40_2": (40, 2),
    "wrn40_4": (40, 4),
    "wrn28_10": (28, 10),
    "wrn34_10": (34, 10),
    "wrn_cifar": (40, 2),
}

#: Default (data) configurations, read by timm's registry when the entrypoints register.
default_cfgs = generate_default_cfgs({name: cifar_cfg("conv1", "fc", 8) for name in _SIZES})


def _wrn(name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    depth, widen = _SIZES[name]
    arch = {"depth": depth, "widen_factor": widen}
    return build_cifar(name, WideResNet, pretrained, arch, kwargs, checkpoint_filter_fn, 4)


@register_model
def wrn40_2(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """WRN-40-2 (AugMix's default CIFAR net and RobustBench's ``Hendrycks2020AugMix_WRN``)."""
    return _wrn("wrn40_2", pretrained, kwargs)


@register_model
def wrn40_4(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """WRN-40-4 (the IPMix paper's main CIFAR model; use ``drop_rate=0.3`` as the paper does)."""
    return _wrn("wrn40_4", pretrained, kwargs)


@register_model
def wrn28_10(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """WRN-28-10."""
    return _wrn("wrn28_10", pretrained, kwargs)


@register_model
def wrn34_10(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """WRN-34-10 (adversarial-training papers)."""
    return _wrn("wrn34_10", pretrained, kwargs)


@register_model
def wrn_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """WRN of any size: pass ``depth`` (6n+4) and ``widen_factor`` (defaults 40 and 2)."""
    return _wrn("wrn_cifar", pretrained, kwargs)
