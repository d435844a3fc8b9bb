"""CIFAR architectures used by the AugMix / PixMix / IPMix papers, registered with timm.

After ``import timm_ext.models`` (``import timm_ext`` does it) these names work everywhere timm
models are created, including ``timm.create_model``, ``timm.list_models("wrn*")`` and the
``robust-eval`` loader:

============================  =========================================================  ==========
timm name                     architecture                                               parameters
============================  =========================================================  ==========
``wrn40_4``                   Wide ResNet 40-4 (Zagoruyko & Komodakis 2016)              8.9 M
``wrn28_10``                  Wide ResNet 28-10                                          36.5 M
``resnext29_32x4d``           ResNeXt-29 as in the AugMix/PixMix/IPMix reference code    6.8 M
``resnet18_cifar``            ResNet-18 with a 3x3 stem and no max-pool (32 px inputs)   11.2 M
============================  =========================================================  ==========

All take 32 x 32 inputs (any size works: the head pools globally), accept ``num_classes``,
``in_chans`` and ``drop_rate`` (WRN: dropout between the two convolutions of each block, 0.3 in
the papers' WRN-40-4 runs; others: dropout before the classifier), and carry a ``pretrained_cfg``
with ``input_size=(3, 32, 32)``, ``mean=std=(0.5, 0.5, 0.5)`` (the normalization of the papers'
CIFAR code), ``interpolation="bilinear"`` and ``crop_pct=1.0``, so ``timm.data.resolve_data_config``
works. There are no released weights: ``pretrained=True`` raises a ``ValueError``.

Example:
    >>> import timm, timm_ext.models
    >>> model = timm.create_model("wrn40_4", num_classes=100, drop_rate=0.3)
    >>> model.num_classes, model.pretrained_cfg["input_size"]
    (100, (3, 32, 32))
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.models import register_model
from torch import nn

__all__ = ["CifarResNeXt", "CifarResNet", "WideResNet"]

_CIFAR_MEAN_STD = (0.5, 0.5, 0.5)


def _cfg(**overrides: Any) -> dict[str, Any]:
    cfg = {
        "url": "",
        "num_classes": 10,
        "input_size": (3, 32, 32),
        "pool_size": None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": _CIFAR_MEAN_STD,
        "std": _CIFAR_MEAN_STD,
        "first_conv": "conv1",
        "classifier": "fc",
        "license": "mit",
    }
    cfg.update(overrides)
    return cfg


#: Default (data) configurations, read by timm's registry when the entrypoints register.
default_cfgs: dict[str, dict[str, Any]] = {
    "wrn40_4": _cfg(),
    "wrn28_10": _cfg(),
    "resnext29_32x4d": _cfg(),
    "resnet18_cifar": _cfg(),
}


class _TimmHeadMixin(nn.Module):
    """timm's classifier interface: ``forward_features``, ``forward_head``, ``get/reset_classifier``."""

    num_classes: int
    num_features: int
    drop_rate: float
    fc: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, classifier (``pre_logits=True`` stops before the classifier)."""
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.head_drop_rate > 0.0:
            x = F.dropout(x, p=self.head_drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` (0 = identity, features out)."""
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    head_drop_rate: float = 0.0


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------- Wide ResNet
class _WideBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3 [dropout] BN-ReLU-conv3x3, plus a shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, drop_rate: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.drop_rate = drop_rate
        self.shortcut = (
            nn.Conv2d(in_ch, out_ch, 1, stride, 0, bias=False) if (in_ch != out_ch or stride != 1) else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        residual = x if self.shortcut is None else self.shortcut(o)
        y = self.conv1(o)
        y = F.relu(self.bn2(y))
        if self.drop_rate > 0.0:
            y = F.dropout(y, p=self.drop_rate, training=self.training)
        return self.conv2(y) + residual


class WideResNet(_TimmHeadMixin):
    """Wide ResNet-``depth``-``widen`` for small images (three groups of widths 16k, 32k, 64k).

    Args:
        depth: total depth, ``6 n + 4`` (40 for WRN-40-x, 28 for WRN-28-x).
        widen_factor: channel multiplier ``k``.
        num_classes: classifier outputs (0: no classifier, features out).
        in_chans: input channels.
        drop_rate: dropout probability inside every block (0.3 in the papers' WRN-40-4 runs).
    """

    def __init__(
        self,
        depth: int = 40,
        widen_factor: int = 4,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4 (28, 40, ...), got {depth}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_chans, widths[0], 3, 1, 1, bias=False)
        layers: list[nn.Module] = []
        in_ch = widths[0]
        for group, out_ch in enumerate(widths[1:]):
            for i in range(n):
                stride = 2 if (group > 0 and i == 0) else 1
                layers.append(_WideBlock(in_ch, out_ch, stride, drop_rate))
                in_ch = out_ch
        self.blocks = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_ch)
        self.num_features = in_ch
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.fc = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.blocks(self.conv1(x))))


# --------------------------------------------------------------------------- ResNeXt-29
class _ResNeXtBottleneck(nn.Module):
    """1x1 reduce -> grouped 3x3 -> 1x1 expand (x4), post-activation, projection shortcut if needed."""

    def __init__(self, in_ch: int, planes: int, cardinality: int, base_width: int, stride: int) -> None:
        super().__init__()
        dim = planes * base_width // 64
        inner = dim * cardinality
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


class CifarResNeXt(_TimmHeadMixin):
    """ResNeXt-29 for CIFAR: 3 stages of ``(depth - 2) / 9`` bottlenecks, outputs 256 / 512 / 1024.

    The defaults (``cardinality=4``, ``base_width=32``: grouped convolutions 128 / 256 / 512 wide) are
    those of the AugMix reference code that PixMix and IPMix reuse for their "ResNeXt-29 (32x4d)"
    numbers (6.8 M parameters).

    Args:
        depth: ``9 n + 2`` (29).
        cardinality: groups of the 3x3 convolutions.
        base_width: channels per group at the first stage (scaled with the stage width).
        num_classes, in_chans, drop_rate: as for :class:`WideResNet` (dropout before the classifier).
    """

    def __init__(
        self,
        depth: int = 29,
        cardinality: int = 4,
        base_width: int = 32,
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        if (depth - 2) % 9 != 0:
            raise ValueError(f"ResNeXt depth must be 9n+2 (29, ...), got {depth}")
        n = (depth - 2) // 9
        self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers: list[nn.Module] = []
        in_ch = 64
        for stage, planes in enumerate((64, 128, 256)):
            for i in range(n):
                stride = 2 if (stage > 0 and i == 0) else 1
                layers.append(_ResNeXtBottleneck(in_ch, planes, cardinality, base_width, stride))
                in_ch = planes * 4
        self.blocks = nn.Sequential(*layers)
        self.num_features = in_ch
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.head_drop_rate = drop_rate
        self.fc = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(F.relu(self.bn1(self.conv1(x))))


# --------------------------------------------------------------------------- ResNet-18 (CIFAR)
class _BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = (
            nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
            if (in_ch != out_ch or stride != 1)
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class CifarResNet(_TimmHeadMixin):
    """ResNet with a 3x3 stride-1 stem and no max-pool (the usual CIFAR ResNet-18 layout).

    Args:
        layers: blocks per stage (``(2, 2, 2, 2)`` for ResNet-18).
        num_classes, in_chans, drop_rate: as for :class:`CifarResNeXt`.
    """

    def __init__(
        self,
        layers: tuple[int, ...] = (2, 2, 2, 2),
        num_classes: int = 10,
        in_chans: int = 3,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        blocks: list[nn.Module] = []
        in_ch = 64
        for stage, count in enumerate(layers):
            out_ch = 64 * 2**stage
            for i in range(count):
                blocks.append(_BasicBlock(in_ch, out_ch, 2 if (stage > 0 and i == 0) else 1))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.num_features = in_ch
        self.num_classes = num_classes
        self.drop_rate = drop_rate
        self.head_drop_rate = drop_rate
        self.fc = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(F.relu(self.bn1(self.conv1(x))))


# --------------------------------------------------------------------------- registration
_IGNORED_FACTORY_KWARGS = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "features_only")


def _build(
    name: str, cls: type[nn.Module], pretrained: bool, arch: dict[str, Any], kwargs: dict[str, Any]
) -> nn.Module:
    if pretrained:
        raise ValueError(
            f"timm_ext model '{name}' has no pretrained weights (nothing to download); create it with "
            "pretrained=False and train it with `timm train`, or load your own checkpoint"
        )
    overlay = kwargs.pop("pretrained_cfg_overlay", None) or {}
    for key in _IGNORED_FACTORY_KWARGS:
        kwargs.pop(key, None)
    kwargs.pop("drop_path_rate", None)  # timm's train.py passes it; these nets have no stochastic depth
    kwargs.pop("global_pool", None)
    model = cls(**arch, **kwargs)
    cfg = dict(default_cfgs[name], architecture=name, **overlay)
    cfg["num_classes"] = model.num_classes
    model.pretrained_cfg = cfg
    model.default_cfg = cfg
    return model


@register_model
def wrn40_4(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """WRN-40-4 (the IPMix paper's main CIFAR model; use ``drop_rate=0.3`` as the paper does)."""
    return _build("wrn40_4", WideResNet, pretrained, {"depth": 40, "widen_factor": 4}, kwargs)


@register_model
def wrn28_10(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """WRN-28-10."""
    return _build("wrn28_10", WideResNet, pretrained, {"depth": 28, "widen_factor": 10}, kwargs)


@register_model
def resnext29_32x4d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNeXt-29 as in the AugMix/PixMix/IPMix reference code (cardinality 4, base width 32)."""
    return _build("resnext29_32x4d", CifarResNeXt, pretrained, {"depth": 29}, kwargs)


@register_model
def resnet18_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-18 for 32 px inputs (3x3 stem, no max-pool)."""
    return _build("resnet18_cifar", CifarResNet, pretrained, {"layers": (2, 2, 2, 2)}, kwargs)
