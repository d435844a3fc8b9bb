"""The papers' reference checkpoints: recognize the format and infer the architecture from shapes.

The AugMix, PixMix and IPMix training scripts (``cifar.py`` in each repository) save::

    {"epoch": int, "dataset": "cifar10" | "cifar100", "model": "wrn" | "resnext" | "densenet" | "resnet",
     "state_dict": {"module.<name>": tensor, ...},   # DataParallel prefixes
     "best_acc": float, "optimizer": SGD state_dict}

The ``state_dict`` uses the reference parameter names, which :mod:`timm_ext.models` shares, so the
architecture and its size (WRN depth / widen factor, ResNeXt depth / cardinality / base width,
DenseNet depth / growth rate, ResNet blocks per stage, classes) follow from the tensor shapes. The
inputs of these scripts are ``ToTensor()`` then ``Normalize([0.5] * 3, [0.5] * 3)`` at 32 x 32 with
no resize: that is the ``pretrained_cfg`` of the timm_ext models, recorded as source
``reference format``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from robust_mix.errors import RobustMixError

__all__ = ["REFERENCE_KINDS", "ReferenceArch", "infer_reference_arch", "is_reference_checkpoint"]

#: The ``model`` values the reference scripts write, with the architecture they stand for.
REFERENCE_KINDS: dict[str, str] = {
    "wrn": "Wide ResNet (any depth / width)",
    "resnext": "ResNeXt-29 (cardinality 4, base width 32)",
    "densenet": "DenseNet-40 (growth 12, no bottleneck)",
    "resnet": "IPMix's CIFAR ResNet-18",
}
_FORMAT_KEYS = frozenset({"epoch", "dataset", "model", "state_dict"})
#: registered timm_ext names for WRN sizes (others use ``wrn_cifar`` with depth/widen_factor)
_WRN_NAMES = {(40, 2): "wrn40_2", (40, 4): "wrn40_4", (28, 10): "wrn28_10", (34, 10): "wrn34_10"}


@dataclass(frozen=True)
class ReferenceArch:
    """What a reference state_dict is: a timm name, extra constructor arguments and the classes."""

    model: str
    num_classes: int
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""


class ReferenceFormatError(ValueError, RobustMixError):
    """A reference checkpoint whose shapes fit none of the supported architectures."""


def is_reference_checkpoint(raw: Mapping[str, Any]) -> bool:
    """True for the AugMix/PixMix/IPMix ``cifar.py`` format (not this project's, not timm's)."""
    return (
        _FORMAT_KEYS <= set(raw)
        and "format_version" not in raw
        and isinstance(raw.get("model"), str)
        and isinstance(raw.get("state_dict"), Mapping)
    )


def _count(sd: Mapping[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = {int(m.group(1)) for k in sd if (m := pattern.match(k))}
    if found and max(found) >= len(found):
        raise ReferenceFormatError(
            f"the blocks under {prefix!r} are numbered up to {max(found)} but only {len(found)} are present: "
            "the checkpoint is damaged or crafted"
        )
    return len(found)


def _shape(sd: Mapping[str, torch.Tensor], key: str, kind: str) -> tuple[int, ...]:
    if key not in sd:
        some = ", ".join(sorted(sd)[:4])
        raise ReferenceFormatError(
            f"model {kind!r} checkpoint has no {key!r} (parameters start: {some}); it does not follow "
            f"the reference layout of {REFERENCE_KINDS[kind]}"
        )
    shape = tuple(sd[key].shape)
    if not shape or 0 in shape:
        raise ReferenceFormatError(
            f"model {kind!r} checkpoint: {key!r} has shape {list(shape)}; the reference layout of "
            f"{REFERENCE_KINDS[kind]} has no empty dimensions (damaged or crafted file)"
        )
    return shape


def _wrn(sd: Mapping[str, torch.Tensor]) -> ReferenceArch:
    n = _count(sd, "block1.layer.")
    widen = _shape(sd, "block1.layer.0.conv1.weight", "wrn")[0] // 16
    depth = 6 * n + 4
    classes = _shape(sd, "fc.weight", "wrn")[0]
    name = _WRN_NAMES.get((depth, widen))
    kwargs = {} if name else {"depth": depth, "widen_factor": widen}
    return ReferenceArch(name or "wrn_cifar", classes, kwargs, f"WRN-{depth}-{widen}")


def _resnext(sd: Mapping[str, torch.Tensor]) -> ReferenceArch:
    n = _count(sd, "stage_1.")
    inner = _shape(sd, "stage_1.0.conv_conv.weight", "resnext")
    cardinality = inner[0] // inner[1]
    base_width = inner[0] // cardinality
    depth = 9 * n + 2
    classes = _shape(sd, "classifier.weight", "resnext")[0]
    kwargs = (
        {}
        if (depth, cardinality, base_width) == (29, 4, 32)
        else {
            "depth": depth,
            "cardinality": cardinality,
            "base_width": base_width,
        }
    )
    return ReferenceArch("resnext29_4x32d", classes, kwargs, f"ResNeXt-{depth} {cardinality}x{base_width}d")


def _densenet(sd: Mapping[str, torch.Tensor]) -> ReferenceArch:
    if any(k.startswith("dense1.0.conv2.") for k in sd):
        raise ReferenceFormatError(
            "model 'densenet' checkpoint has bottleneck layers (dense1.0.conv2): DenseNet-BC is not "
            "supported, only the papers' DenseNet-40 without bottleneck"
        )
    n = _count(sd, "dense1.")
    growth = _shape(sd, "dense1.0.conv1.weight", "densenet")[0]
    trans = _shape(sd, "trans1.conv1.weight", "densenet")
    reduction = trans[0] / trans[1]
    depth = 3 * n + 4
    classes = _shape(sd, "fc.weight", "densenet")[0]
    kwargs: dict[str, Any] = {}
    if (depth, growth) != (40, 12):
        kwargs.update(depth=depth, growth_rate=growth)
    if reduction != 1.0:
        kwargs["reduction"] = reduction
    return ReferenceArch("densenet40_k12", classes, kwargs, f"DenseNet-{depth} (k={growth})")


def _resnet(sd: Mapping[str, torch.Tensor]) -> ReferenceArch:
    if any(".residual_function.6." in k for k in sd):
        raise ReferenceFormatError(
            "model 'resnet' checkpoint has bottleneck blocks (residual_function.6): only IPMix's CIFAR "
            "ResNet with basic blocks (ResNet-18/34) is supported"
        )
    layers = tuple(_count(sd, f"conv{s}_x.") for s in (2, 3, 4, 5))
    classes = _shape(sd, "fc.weight", "resnet")[0]
    kwargs = {} if layers == (2, 2, 2, 2) else {"layers": layers}
    return ReferenceArch("resnet18_cifar", classes, kwargs, f"CIFAR ResNet {list(layers)}")


_INFER = {"wrn": _wrn, "resnext": _resnext, "densenet": _densenet, "resnet": _resnet}


def infer_reference_arch(kind: str, state_dict: Mapping[str, torch.Tensor]) -> ReferenceArch:
    """The timm_ext model for a reference checkpoint's ``model`` value and (prefix-free) state_dict.

    Raises:
        ReferenceFormatError: unknown ``model`` value or a layout that fits no supported network.
    """
    if kind not in _INFER:
        raise ReferenceFormatError(
            f"reference checkpoint says model {kind!r}; supported: "
            + ", ".join(f"{k} ({v})" for k, v in REFERENCE_KINDS.items())
            + " (AugMix's 'allconv' is not); re-save its state_dict and pass --model NAME --num-classes K"
        )
    return _INFER[kind](state_dict)
