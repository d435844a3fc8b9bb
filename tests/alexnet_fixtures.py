"""A tiny file with torchvision AlexNet's exact keys and shapes and random weights (for the baseline tests)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

#: Elements between consecutive output rows of a compact weight (a small prime: rows differ).
ROW_SHIFT = 7


def compact_alexnet_state_dict(seed: int = 0, num_classes: int = 1000) -> dict[str, torch.Tensor]:
    """torchvision ``alexnet`` parameters with He-scaled random values, stored compactly.

    Every weight is a strided view of one short random vector (row ``o`` starts ``ROW_SHIFT * o``
    elements in), so the saved file is ~1 MB instead of AlexNet's 244 MB; the network it loads into
    is the full-size torchvision AlexNet with these (distinct, full-rank) rows.
    """
    import torchvision

    with torch.device("meta"):
        shapes = {
            k: v.shape for k, v in torchvision.models.alexnet(num_classes=num_classes).state_dict().items()
        }
    g = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key, shape in shapes.items():
        if key.endswith("bias"):
            out[key] = 0.01 * torch.randn(shape, generator=g)
            continue
        fan_in = math.prod(shape[1:])
        base = torch.randn(ROW_SHIFT * (shape[0] - 1) + fan_in, generator=g) * math.sqrt(2.0 / fan_in)
        inner = [math.prod(shape[i + 1 :]) for i in range(1, len(shape))]
        out[key] = base.as_strided(tuple(shape), (ROW_SHIFT, *inner))
    return out


def write_compact_alexnet(path: Path, seed: int = 0, num_classes: int = 1000) -> Path:
    """Save :func:`compact_alexnet_state_dict` as a plain state_dict (what torchvision's cache holds)."""
    torch.save(compact_alexnet_state_dict(seed, num_classes), path)
    return path
