"""CIFAR architectures of the AugMix / PixMix / IPMix papers, registered with timm, in the papers' layout.

Every model has exactly the parameter names and shapes of the reference code (``models/`` of the
IPMix repository; the AugMix and PixMix repositories ship the same WRN, ResNeXt and DenseNet), so a
reference ``state_dict`` (minus DataParallel's ``module.`` prefix) loads with ``strict=True`` into
``timm.create_model(...)`` and gives the same outputs, and weights trained here load into the
reference code:

===================  ==================================================  ==========  ================
timm name            architecture (reference constructor)                parameters  feature taps
===================  ==================================================  ==========  ================
``wrn40_2``          WRN-40-2 (``WideResNet(40, classes, 2)``)           2.2 M       16/32/64/128
``wrn40_4``          WRN-40-4 (the IPMix paper's main CIFAR model)       8.9 M       16/64/128/256
``wrn28_10``         WRN-28-10                                           36.5 M      16/160/320/640
``wrn34_10``         WRN-34-10                                           46.2 M      16/160/320/640
``wrn_cifar``        WRN of any ``depth`` (6n+4) and ``widen_factor``    -           -
``resnext29_4x32d``  ResNeXt-29, cardinality 4, base width 32            6.8 M       64/256/512/1024
                     (``resnext29(classes)``); alias ``resnext29_32x4d``
``densenet40_k12``   DenseNet-40, growth 12, no bottleneck, no           1.1 M       24/168/312/456
                     compression (``densenet(12, 40, classes)``)
``resnet18_cifar``   IPMix's CIFAR ResNet-18: 3x3 stem, no max-pool      11.2 M      64/64/128/256/512
                     (``models/ResNet/resnet.py``)
===================  ==================================================  ==========  ================

(Parameters at 10 classes. IPMix's ``resnet18(num_classes)`` ignores its argument and always builds
100 classes; here ``num_classes`` is honoured.)

All models follow timm's conventions: built by ``build_model_with_cfg`` with a ``pretrained_cfg``
(``input_size=(3, 32, 32)``, ``mean=std=(0.5, 0.5, 0.5)`` -- the papers' ``Normalize([0.5]*3, [0.5]*3)``
-- ``crop_pct=1.0``, ``interpolation="bilinear"``, ``pool_size``), ``num_features``,
``head_hidden_size``, ``forward_features`` / ``forward_head(pre_logits=...)``, ``get_classifier`` /
``reset_classifier(num_classes, global_pool)``, ``feature_info`` (stem, then one entry per stage; the
last entry is the final feature map, after the closing BN-ReLU of the pre-activation nets),
``forward_intermediates`` with timm's signature, ``features_only=True`` (a ``FeatureGetterNet`` over
``forward_intermediates``), TorchScript (``torch.jit.script``) and ``torch.fx`` tracing. There are no
released weights: ``pretrained=True`` needs a local file, e.g.
``pretrained_cfg_overlay={"file": "checkpoint.pth.tar"}`` (a reference checkpoint works as is).

Example:
    >>> import timm, timm_ext.models
    >>> model = timm.create_model("wrn40_4", num_classes=100, drop_rate=0.3)
    >>> model.num_classes, model.pretrained_cfg["input_size"], model.feature_info[2]["num_chs"]
    (100, (3, 32, 32), 128)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg, register_model
from timm.models._features import feature_take_indices
from torch import nn

__all__ = ["CifarDenseNet", "CifarResNeXt", "CifarResNet", "WideResNet"]

#: The papers' CIFAR normalization (``transforms.Normalize([0.5] * 3, [0.5] * 3)``), in [0, 1] units.
PAPERS_MEAN_STD = (0.5, 0.5, 0.5)


def _cfg(first_conv: str, classifier: str, pool: int, **overrides: Any) -> dict[str, Any]:
    cfg = {
        "url": "",
        "num_classes": 10,
        "input_size": (3, 32, 32),
        "pool_size": (pool, pool),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": PAPERS_MEAN_STD,
        "std": PAPERS_MEAN_STD,
        "first_conv": first_conv,
        "classifier": classifier,
        "license": "mit",
    }
    cfg.update(overrides)
    return cfg


_WRN_SIZES: dict[str, tuple[int, int]] = {
    "wrn40_2": (40, 2),
    "wrn40_4": (40, 4),
    "wrn28_10": (28, 10),
    "wrn34_10": (34, 10),
    "wrn_cifar": (40, 2),
}

#: Default (data) configurations, read by timm's registry when the entrypoints register.
default_cfgs: dict[str, dict[str, Any]] = {
    **{name: _cfg("conv1", "fc", 8) for name in _WRN_SIZES},
    "resnext29_4x32d": _cfg("conv_1_3x3", "classifier", 8),
    "resnext29_32x4d": _cfg("conv_1_3x3", "classifier", 8),
    "densenet40_k12": _cfg("conv1", "fc", 8),
    "resnet18_cifar": _cfg("conv1.0", "fc", 4),
}


class _CifarNet(nn.Module):
    """timm's classifier and feature interface shared by the CIFAR nets.

    Subclasses build their layers, set ``num_features`` and ``feature_info`` and implement
    ``forward_features`` and ``_feature_steps`` (the stem and the stages, in order, as callables whose
    composition is ``forward_features``). The classifier is ``self.fc`` unless ``forward_head`` and
    ``get_classifier`` are overridden.
    """

    # (no class-level annotations: TorchScript would read them as unknown string types)

    def _init_head(self, num_features: int, num_classes: int, head_drop_rate: float) -> nn.Module:
        self.num_features = self.head_hidden_size = num_features
        self.num_classes = num_classes
        self.head_drop_rate = float(head_drop_rate)
        self.global_pool = "avg"
        return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def _pool(self, x: torch.Tensor, pre_logits: bool) -> torch.Tensor:
        if self.global_pool == "avg":
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.head_drop_rate > 0.0:
            x = F.dropout(x, p=self.head_drop_rate, training=self.training)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, classifier (``pre_logits=True`` stops before the classifier)."""
        x = self._pool(x, pre_logits)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def _new_classifier(self, num_classes: int, global_pool: str | None) -> nn.Module:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '' (no pooling), got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        return nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` (0: identity, pooled features
        out); ``global_pool=''`` also removes the pooling (feature maps out)."""
        self.fc = self._new_classifier(num_classes, global_pool)

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:  # pragma: no cover
        raise NotImplementedError

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API: the outputs of the stem and of every stage (``feature_info`` order).

        Args:
            x: input batch, NCHW.
            indices: None = all, int n = the last n, list = those indices (negative from the end).
            norm: accepted for timm compatibility; the last feature map always includes the final
                BN-ReLU of the pre-activation nets (it equals ``forward_features``).
            stop_early: stop after the last requested index (the returned final map is that one).
            output_fmt: only ``"NCHW"``.
            intermediates_only: return only the list of feature maps.

        Returns:
            ``[maps]`` or ``(final map, [maps])``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        steps = self._feature_steps()
        take, max_index = feature_take_indices(len(steps), indices)
        last = max_index if (stop_early or intermediates_only) else len(steps) - 1
        intermediates: list[torch.Tensor] = []
        for i, step in enumerate(steps[: last + 1]):
            x = step(x)
            if i in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)


def _init_weights(model: nn.Module) -> None:
    """The reference code's initialization: conv N(0, sqrt(2 / (k*k*out))), BN (1, 0), linear bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def _info(chs: list[int], reductions: list[int], modules: list[str]) -> list[dict[str, Any]]:
    return [{"num_chs": c, "reduction": r, "module": m} for c, r, m in zip(chs, reductions, modules)]


# --------------------------------------------------------------------------- Wide ResNet
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


class WideResNet(_CifarNet):
    """Wide ResNet-``depth``-``widen_factor`` for small images (stage widths 16k, 32k, 64k).

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
        self.fc = self._init_head(w[3], num_classes, 0.0)
        self.global_pool = global_pool
        self.feature_info = _info(w, [1, 1, 2, 4], ["conv1", "block1", "block2", "bn1"])
        _init_weights(self)

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.block3(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._final(self.block2(self.block1(self.conv1(x))))

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self.conv1, self.block1, self.block2, self._final]


# --------------------------------------------------------------------------- ResNeXt-29
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


class CifarResNeXt(_CifarNet):
    """ResNeXt-29 for CIFAR: 3 stages of ``(depth - 2) / 9`` bottlenecks, outputs 256 / 512 / 1024.

    The defaults (``cardinality=4``, ``base_width=32``: grouped convolutions 128 / 256 / 512 wide) are
    those of the AugMix reference code that PixMix and IPMix reuse for their "ResNeXt-29" numbers.

    Args:
        depth: ``9 n + 2`` (29).
        cardinality: groups of the 3x3 convolutions.
        base_width: channels per group at the first stage (scaled with the stage width).
        num_classes: as for :class:`WideResNet`.
        in_chans: as for :class:`WideResNet`.
        global_pool: as for :class:`WideResNet`.
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
        self.classifier = self._init_head(in_ch, num_classes, drop_rate)
        self.global_pool = global_pool
        self.feature_info = _info(
            [64, 256, 512, 1024], [1, 1, 2, 4], ["bn_1", "stage_1", "stage_2", "stage_3"]
        )
        _init_weights(self)

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn_1(self.conv_1_3x3(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage_3(self.stage_2(self.stage_1(self._stem(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self._pool(x, pre_logits)
        return x if pre_logits else self.classifier(x)

    def get_classifier(self) -> nn.Module:
        return self.classifier

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.classifier = self._new_classifier(num_classes, global_pool)

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self._stem, self.stage_1, self.stage_2, self.stage_3]


# --------------------------------------------------------------------------- DenseNet-40
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


class CifarDenseNet(_CifarNet):
    """DenseNet for CIFAR without bottleneck layers (the AugMix/PixMix/IPMix "DenseNet-40 (k=12)").

    Three dense blocks of ``(depth - 4) / 3`` layers, transitions with compression ``reduction``.

    Args:
        depth: ``3 n + 4`` (40).
        growth_rate: maps added per layer ``k`` (12); the stem has ``2 k``.
        reduction: transition compression (1.0: none, as in the papers' net).
        num_classes: as for :class:`WideResNet`.
        in_chans: as for :class:`WideResNet`.
        global_pool: as for :class:`WideResNet`.
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
        self.fc = self._init_head(ch, num_classes, drop_rate)
        self.global_pool = global_pool
        self.feature_info = _info(widths, [1, 1, 2, 4], ["conv1", "dense1", "dense2", "bn1"])
        _init_weights(self)

    def _block2(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense2(self.trans1(x))

    def _final(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn1(self.dense3(self.trans2(x))))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._final(self._block2(self.dense1(self.conv1(x))))

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self.conv1, self.dense1, self._block2, self._final]


# --------------------------------------------------------------------------- ResNet-18 (CIFAR)
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


class CifarResNet(_CifarNet):
    """IPMix's CIFAR ResNet: 3x3 stride-1 stem (``conv1`` = conv-BN-ReLU), no max-pool, stages
    ``conv2_x`` .. ``conv5_x`` of 64 / 128 / 256 / 512 channels.

    Args:
        layers: blocks per stage (``(2, 2, 2, 2)`` for ResNet-18).
        num_classes: as for :class:`WideResNet`.
        in_chans: as for :class:`WideResNet`.
        global_pool: as for :class:`WideResNet`.
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
        self.fc = self._init_head(in_ch, num_classes, drop_rate)
        self.global_pool = global_pool
        self.feature_info = _info(
            [64, 64, 128, 256, 512], [1, 1, 2, 4, 8], ["conv1", "conv2_x", "conv3_x", "conv4_x", "conv5_x"]
        )
        _init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv5_x(self.conv4_x(self.conv3_x(self.conv2_x(self.conv1(x)))))

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:
        return [self.conv1, self.conv2_x, self.conv3_x, self.conv4_x, self.conv5_x]


# --------------------------------------------------------------------------- registration
def _build(
    name: str, cls: type[_CifarNet], pretrained: bool, arch: dict[str, Any], kwargs: dict[str, Any]
) -> nn.Module:
    """``build_model_with_cfg`` with the architecture defaults (overridable by ``kwargs``)."""
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    if pretrained and not any(overlay.get(k) for k in ("file", "url", "hf_hub_id", "state_dict")):
        raise ValueError(
            f"timm_ext model '{name}' has no pretrained weights (nothing to download); create it with "
            "pretrained=False and train it with `timm train`, or pass a local file: "
            "pretrained_cfg_overlay={'file': 'checkpoint.pth'} (a reference checkpoint works as is)"
        )
    kwargs.pop("drop_path_rate", None)  # timm's train.py passes it; these nets have no stochastic depth
    n_levels = 5 if cls is CifarResNet else 4
    return build_model_with_cfg(
        cls,
        name,
        pretrained,
        feature_cfg={"feature_cls": "getter", "out_indices": tuple(range(n_levels))},
        pretrained_filter_fn=lambda state_dict, model: convert_legacy_state_dict(state_dict),
        **{**arch, **kwargs},
    )


def _wrn(name: str, pretrained: bool, kwargs: dict[str, Any]) -> nn.Module:
    depth, widen = _WRN_SIZES[name]
    return _build(name, WideResNet, pretrained, {"depth": depth, "widen_factor": widen}, kwargs)


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


@register_model
def resnext29_4x32d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNeXt-29 as in the AugMix/PixMix/IPMix reference code (cardinality 4, base width 32)."""
    return _build("resnext29_4x32d", CifarResNeXt, pretrained, {"depth": 29}, kwargs)


@register_model
def resnext29_32x4d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Alias of ``resnext29_4x32d`` (this project's earlier name; timm names cardinality first)."""
    return _build("resnext29_32x4d", CifarResNeXt, pretrained, {"depth": 29}, kwargs)


@register_model
def densenet40_k12(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """DenseNet-40 with growth rate 12, no bottleneck and no compression (the papers' DenseNet)."""
    return _build("densenet40_k12", CifarDenseNet, pretrained, {"depth": 40, "growth_rate": 12}, kwargs)


@register_model
def resnet18_cifar(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """IPMix's CIFAR ResNet-18 (3x3 stem, no max-pool)."""
    return _build("resnet18_cifar", CifarResNet, pretrained, {"layers": (2, 2, 2, 2)}, kwargs)


# --------------------------------------------------------------------------- earlier layout
def _legacy_block(key: str, n: int, stage_fmt: str, first: int = 1) -> tuple[str, str]:
    """``blocks.<j>.<rest>`` -> (``<stage j // n>.<j % n>``, ``rest``)."""
    _, j, rest = key.split(".", 2)
    return stage_fmt.format(int(j) // n + first) + f".{int(j) % n}", rest


_LEGACY_RESNET_BLOCK = {
    "conv1": "residual_function.0",
    "bn1": "residual_function.1",
    "conv2": "residual_function.3",
}
_LEGACY_RESNET_BLOCK.update(bn2="residual_function.4", downsample="shortcut")


def convert_legacy_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a state_dict of this package's earlier layout (``blocks.N``, ``shortcut``, ``bn``, ``fc``)
    to the reference layout; any other state_dict is returned unchanged.

    The earlier WRN had ``blocks.j.{bn1,conv1,bn2,conv2,shortcut}`` + ``bn``, the ResNeXt
    ``conv1``/``bn1`` + ``blocks.j`` + ``fc``, the ResNet-18 ``conv1``/``bn1`` +
    ``blocks.j.{conv1,bn1,conv2,bn2,downsample}``; stages had equal block counts.
    """
    blocks = {int(k.split(".")[1]) for k in state_dict if k.startswith("blocks.")}
    if not blocks:
        return state_dict
    count = max(blocks) + 1
    if "bn.weight" in state_dict:  # WRN: 3 stages
        rename = {"conv1.": "conv1.", "bn.": "bn1.", "fc.": "fc."}
        fmt, n, inner = "block{}.layer", count // 3, {"shortcut": "conv_shortcut"}
    elif any(".conv_reduce." in k for k in state_dict):  # ResNeXt: 3 stages
        rename = {"conv1.": "conv_1_3x3.", "bn1.": "bn_1.", "fc.": "classifier."}
        fmt, n, inner = "stage_{}", count // 3, {}
    else:  # CIFAR ResNet: 4 stages
        rename = {"conv1.": "conv1.0.", "bn1.": "conv1.1.", "fc.": "fc."}
        fmt, n, inner = "conv{}_x", count // 4, _LEGACY_RESNET_BLOCK
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.startswith("blocks."):
            stage, rest = _legacy_block(key, n, fmt, 2 if fmt == "conv{}_x" else 1)
            head, _, tail = rest.partition(".")
            out[f"{stage}.{inner.get(head, head)}.{tail}"] = value
        else:
            prefix = next((p for p in rename if key.startswith(p)), None)
            out[rename[prefix] + key[len(prefix) :] if prefix else key] = value
    return out
