"""Independent reference forwards of the papers' CIFAR nets, written from their description.

Each function computes logits straight from a state_dict whose keys follow the reference code's
names (hzlsaber/IPMix ``models/``, described in docs/checkpoints.md section 1), with functional
convolutions and eval-mode batch norm. Nothing here imports timm_ext: if our models used other
names, other shapes or another computation, the comparison in the tests would fail.

Also: random weights with non-trivial batch-norm statistics, and a writer of the reference
``cifar.py`` checkpoint format (DataParallel prefixes, SGD optimizer state).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

Sd = Mapping[str, torch.Tensor]


def bn(sd: Sd, p: str, x: torch.Tensor) -> torch.Tensor:
    """Eval-mode batch norm with the running statistics stored under prefix ``p``."""
    return F.batch_norm(
        x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"], False, 0.0, 1e-5
    )


def conv(sd: Sd, p: str, x: torch.Tensor, stride: int = 1, groups: int = 1) -> torch.Tensor:
    """Convolution with 'same' padding for odd kernels (k // 2), no bias unless stored."""
    w = sd[p + "weight"]
    return F.conv2d(x, w, sd.get(p + "bias"), stride, w.shape[-1] // 2, 1, groups)


def linear_head(sd: Sd, p: str, x: torch.Tensor) -> torch.Tensor:
    """Global average pooling (the reference's avg_pool2d(8) / (4) at 32 px) and the linear layer."""
    return F.linear(x.mean((2, 3)), sd[p + "weight"], sd[p + "bias"])


def count(sd: Sd, prefix: str) -> int:
    """Number of consecutive indexed children ``prefix{i}.`` present in the keys."""
    n = 0
    while any(k.startswith(f"{prefix}{n}.") for k in sd):
        n += 1
    return n


def ref_wrn(sd: Sd, x: torch.Tensor) -> torch.Tensor:
    """WideResNet: pre-activation blocks; where the width changes, BN-ReLU of the input feeds both the
    branch and the 1x1 ``conv_shortcut``; stride 2 in the first block of stages 2 and 3."""
    x = conv(sd, "conv1.", x)
    for b in (1, 2, 3):
        for i in range(count(sd, f"block{b}.layer.")):
            p = f"block{b}.layer.{i}."
            stride = 2 if (b > 1 and i == 0) else 1
            o = F.relu(bn(sd, p + "bn1.", x))
            short = conv(sd, p + "conv_shortcut.", o, stride) if p + "conv_shortcut.weight" in sd else x
            y = F.relu(bn(sd, p + "bn2.", conv(sd, p + "conv1.", o, stride)))
            x = conv(sd, p + "conv2.", y) + short
    return linear_head(sd, "fc.", F.relu(bn(sd, "bn1.", x)))


def ref_resnext(sd: Sd, x: torch.Tensor, cardinality: int = 4) -> torch.Tensor:
    """ResNeXt-29: post-activation bottlenecks reduce -> grouped 3x3 -> expand, projection shortcut
    ``downsample.{0,1}`` in the first block of each stage."""
    x = F.relu(bn(sd, "bn_1.", conv(sd, "conv_1_3x3.", x)))
    for s in (1, 2, 3):
        for i in range(count(sd, f"stage_{s}.")):
            p = f"stage_{s}.{i}."
            stride = 2 if (s > 1 and i == 0) else 1
            y = F.relu(bn(sd, p + "bn_reduce.", conv(sd, p + "conv_reduce.", x)))
            y = F.relu(bn(sd, p + "bn.", conv(sd, p + "conv_conv.", y, stride, cardinality)))
            y = bn(sd, p + "bn_expand.", conv(sd, p + "conv_expand.", y))
            short = (
                bn(sd, p + "downsample.1.", conv(sd, p + "downsample.0.", x, stride))
                if p + "downsample.0.weight" in sd
                else x
            )
            x = F.relu(short + y)
    return linear_head(sd, "classifier.", x)


def ref_densenet(sd: Sd, x: torch.Tensor) -> torch.Tensor:
    """DenseNet (no bottleneck): each layer concatenates conv3x3(ReLU(BN(x))); transitions are
    conv1x1(ReLU(BN(x))) then 2x2 average pooling."""
    x = conv(sd, "conv1.", x)
    for d in (1, 2, 3):
        for i in range(count(sd, f"dense{d}.")):
            p = f"dense{d}.{i}."
            x = torch.cat([x, conv(sd, p + "conv1.", F.relu(bn(sd, p + "bn1.", x)))], 1)
        if d < 3:
            x = F.avg_pool2d(conv(sd, f"trans{d}.conv1.", F.relu(bn(sd, f"trans{d}.bn1.", x))), 2)
    return linear_head(sd, "fc.", F.relu(bn(sd, "bn1.", x)))


def ref_resnet18(sd: Sd, x: torch.Tensor) -> torch.Tensor:
    """IPMix CIFAR ResNet: stem conv-BN-ReLU (``conv1.{0,1}``), basic blocks
    ``residual_function.{0: conv, 1: BN, 3: conv, 4: BN}``, ``shortcut.{0,1}`` when the shape changes."""
    x = F.relu(bn(sd, "conv1.1.", conv(sd, "conv1.0.", x)))
    for s in (2, 3, 4, 5):
        for i in range(count(sd, f"conv{s}_x.")):
            p = f"conv{s}_x.{i}."
            stride = 2 if (s > 2 and i == 0) else 1
            y = F.relu(bn(sd, p + "residual_function.1.", conv(sd, p + "residual_function.0.", x, stride)))
            y = bn(sd, p + "residual_function.4.", conv(sd, p + "residual_function.3.", y))
            short = (
                bn(sd, p + "shortcut.1.", conv(sd, p + "shortcut.0.", x, stride))
                if p + "shortcut.0.weight" in sd
                else x
            )
            x = F.relu(y + short)
    return linear_head(sd, "fc.", x)


#: reference ``--model`` value -> (timm name, reference forward)
REFERENCE_NETS = {
    "wrn": ("wrn40_2", ref_wrn),
    "resnext": ("resnext29_4x32d", ref_resnext),
    "densenet": ("densenet40_k12", ref_densenet),
    "resnet": ("resnet18_cifar", ref_resnet18),
}


def randomize(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with non-trivial batch-norm statistics (and scale-preserving convolutions), so
    a wrong running-stat or shortcut mapping changes the logits. Returns the new state_dict."""
    g = torch.Generator().manual_seed(seed)
    sd = model.state_dict()
    for k, v in sd.items():
        if not v.is_floating_point():
            continue
        if k.endswith("running_mean"):
            v.copy_(torch.randn(v.shape, generator=g) * 0.2)
        elif k.endswith("running_var"):
            v.copy_(torch.rand(v.shape, generator=g) + 0.5)
        elif k.endswith("bias") and sd[k[: -len("bias")] + "weight"].ndim == 2:
            v.zero_()  # classifier bias: a random one would decide every prediction alone
        elif v.ndim == 1:
            v.copy_(torch.randn(v.shape, generator=g) * 0.2 + (1.0 if k.endswith("weight") else 0.0))
        else:
            fan_in = v[0].numel()
            v.copy_(torch.randn(v.shape, generator=g) * (1.5 / fan_in) ** 0.5)
    model.load_state_dict(sd)
    return model.state_dict()


def write_reference_checkpoint(
    path: Path, model: torch.nn.Module, kind: str, dataset: str, epoch: int = 3
) -> Path:
    """The AugMix/PixMix/IPMix ``cifar.py`` format: DataParallel keys, SGD state after one step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    torch.save(
        {
            "epoch": epoch,
            "dataset": dataset,
            "model": kind,
            "state_dict": state,
            "best_acc": 0.4321,
            "optimizer": opt.state_dict(),
        },
        path,
    )
    return path


def center_head(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Set the classifier bias to minus the mean logit over ``x`` so that, with random weights, the
    prediction depends on the image (not on one dominant class). Returns the new state_dict."""
    model.eval()
    with torch.no_grad():
        feats = model.forward_head(model.forward_features(x), pre_logits=True)
        head = model.get_classifier()
        head.bias.copy_(-(feats.mean(0) @ head.weight.T))
    return model.state_dict()
