"""Intermediate features of timm models through timm's generic ``forward_intermediates`` API.

AdAutoMix's generator reads the teacher's second-to-last stage: ResNet ``layer3`` (index 3 of
``feature_info``), ConvNeXt / Swin stage 2, and for a ViT the block ``depth // 2 - 1`` (NCHW, prefix
tokens dropped, no final norm). Any timm model with ``forward_intermediates`` works.
"""

from __future__ import annotations

import torch
from torch import nn

from robust_mix.errors import RobustMixError

__all__ = ["FeatureError", "default_feature_index", "is_vit", "tap_features"]


class FeatureError(ValueError, RobustMixError):
    """The model cannot provide intermediate features (reported as one line by the CLI)."""


def is_vit(model: nn.Module) -> bool:
    """True for token models (timm's ViT family: ``blocks`` + ``num_prefix_tokens``)."""
    return hasattr(model, "num_prefix_tokens") and hasattr(model, "blocks")


def _require_intermediates(model: nn.Module) -> None:
    if not callable(getattr(model, "forward_intermediates", None)):
        raise FeatureError(
            f"{type(model).__name__} has no forward_intermediates(), which AdAutoMix needs for the teacher's "
            "features; use a timm model that has it (resnet*, convnext*, vit_*, ...)"
        )


def default_feature_index(model: nn.Module) -> int:
    """The tap of the spec: ViT block ``depth // 2 - 1``, else the second-to-last ``feature_info`` entry.

    Raises:
        FeatureError: the model has no ``forward_intermediates`` or no ``feature_info``.
    """
    _require_intermediates(model)
    if is_vit(model):
        return max(0, len(model.blocks) // 2 - 1)  # type: ignore[arg-type]
    info = getattr(model, "feature_info", None)
    if not info:
        raise FeatureError(
            f"{type(model).__name__} has no feature_info; pass --adautomix-feature-index to choose the tap"
        )
    return max(0, len(info) - 2)


def tap_features(model: nn.Module, x: torch.Tensor, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(final features, feature map at index)`` from one pass; the map is ``[B, C, h, w]``.

    ``final`` is what ``forward_head`` takes (so the same pass also gives the logits).
    """
    _require_intermediates(model)
    final, inter = model.forward_intermediates(x, indices=[index], norm=False, intermediates_only=False)
    return final, inter[-1]
