"""Architectures of RobustBench corruption entries that neither timm nor timm_ext has.

Written from the published descriptions of the networks; parameter names follow the files
RobustBench distributes, so its checkpoints load with ``strict=True``. Inputs are already
normalized: the entry's mean/std are applied by :class:`robust_eval.checkpoints.formats.InputContract`.

- :class:`PreActResNet18`: pre-activation ResNet-18 whose blocks take the shortcut from the first
  BN-ReLU ("PreActBlockV2"), optionally with a BN-ReLU before the classifier (Kireev et al. 2021,
  Addepalli et al. 2021). Keys ``conv1``, ``layer{1..4}.{i}.{bn1, conv1, bn2, conv2, shortcut.0}``,
  ``bn``, ``linear``.
- :class:`DMWideResNet`: DeepMind's WRN (Gowal et al. 2020, Rebuffi et al. 2021) with Swish, "SAME"
  padding done by hand (stride 2: pad right/bottom by one, then a valid 3x3 convolution). Keys
  ``init_conv``, ``layer.{g}.block.{i}.{batchnorm_0, conv_0, batchnorm_1, conv_1, shortcut}``,
  ``batchnorm``, ``logits``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DMWideResNet", "PreActResNet18"]


class _PreActBlock(nn.Module):
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


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 for 32 px inputs.

    Args:
        num_classes: classifier outputs.
        bn_before_fc: a BN-ReLU on the last feature map before pooling (``bn``).
    """

    def __init__(self, num_classes: int = 10, bn_before_fc: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        in_ch = 64
        stages = []
        for s in range(4):
            out_ch = 64 * 2**s
            stages.append(
                nn.Sequential(_PreActBlock(in_ch, out_ch, 2 if s else 1), _PreActBlock(out_ch, out_ch, 1))
            )
            in_ch = out_ch
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(in_ch) if bn_before_fc else None
        self.linear = nn.Linear(in_ch, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        if self.bn is not None:
            x = F.relu(self.bn(x))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


class _DMBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int, act: nn.Module) -> None:
        super().__init__()
        self.batchnorm_0 = nn.BatchNorm2d(in_ch)
        self.conv_0 = nn.Conv2d(in_ch, out_ch, 3, stride, 0, bias=False)
        self.batchnorm_1 = nn.BatchNorm2d(out_ch)
        self.conv_1 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride, 0, bias=False) if in_ch != out_ch else None
        self.act = act
        self.pad = (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = self.act(self.batchnorm_0(x))
        if self.shortcut is not None:
            x = o  # the width changes: the activated input feeds both paths
        y = self.conv_0(F.pad(o, self.pad))
        y = self.conv_1(self.act(self.batchnorm_1(y)))
        return (x if self.shortcut is None else self.shortcut(x)) + y


class _DMGroup(nn.Module):
    def __init__(self, n: int, in_ch: int, out_ch: int, stride: int, act: nn.Module) -> None:
        super().__init__()
        self.block = nn.Sequential(
            *[_DMBlock(in_ch if i == 0 else out_ch, out_ch, stride if i == 0 else 1, act) for i in range(n)]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class DMWideResNet(nn.Module):
    """DeepMind's WideResNet-``depth``-``width``.

    Args:
        num_classes: classifier outputs.
        depth: ``6 n + 4`` (70 for the RobustBench entries).
        width: widen factor (16 for the entries).
        activation: ``"swish"`` (x * sigmoid(x), the entries') or ``"relu"``.
    """

    def __init__(
        self, num_classes: int = 10, depth: int = 70, width: int = 16, activation: str = "swish"
    ) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"DMWideResNet depth must be 6n+4, got {depth}")
        if activation not in ("swish", "relu"):
            raise ValueError(f"activation must be 'swish' or 'relu', got {activation!r}")
        act: nn.Module = nn.SiLU() if activation == "swish" else nn.ReLU()
        n = (depth - 4) // 6
        w = [16, 16 * width, 32 * width, 64 * width]
        self.init_conv = nn.Conv2d(3, w[0], 3, 1, 1, bias=False)
        self.layer = nn.Sequential(
            _DMGroup(n, w[0], w[1], 1, act), _DMGroup(n, w[1], w[2], 2, act), _DMGroup(n, w[2], w[3], 2, act)
        )
        self.batchnorm = nn.BatchNorm2d(w[3])
        self.act = act
        self.logits = nn.Linear(w[3], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.batchnorm(self.layer(self.init_conv(x))))
        return self.logits(F.adaptive_avg_pool2d(x, 1).flatten(1))
