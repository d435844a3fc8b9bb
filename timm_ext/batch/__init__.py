"""IPMix, PixMix and AugMix on the accelerator: batched, random per sample, inside the training step.

:class:`BatchIPMix`, :class:`BatchPixMix` and :class:`BatchAugMix` are ``torch.nn.Module`` s that take
the parameters and defaults of ``albumentations_ipmix.IPMix`` / ``PixMix`` and of timm's AugMix, and mix
a whole ``[B, C, H, W]`` batch (uint8 0..255 or float 0..1, any device) with every draw made per
sample from an explicit ``torch.Generator``. :func:`create_batch_mixing` builds one from a config
string (``ipmix-w3-d3-b3-s3``, ``pixmix-k4-b3-s3``, ``augmix-m3-w3``). Mixing pictures (procedural
fractals by default, or a folder) are held on the device, fitted once per image size.

A plain PyTorch loop (workers only decode, crop and flip; mixing and normalisation on the GPU)::

    import torch
    from timm_ext.batch import create_batch_mixing

    mix = create_batch_mixing("ipmix-w3-d3-b3-s3")            # fractals=DIR for your own pictures
    gen = torch.Generator("cuda").manual_seed(0)               # per rank: seed + rank
    mean = torch.tensor([0.4914, 0.4822, 0.4465], device="cuda").view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616], device="cuda").view(1, 3, 1, 1)
    for images, labels in loader:                              # uint8 [B, 3, H, W] (PILToTensor)
        images, labels = images.cuda(non_blocking=True), labels.cuda(non_blocking=True)
        views = torch.cat([images, mix(images, gen), mix(images, gen)])   # clean + 2 views (JSD)
        logits = model((views.float() / 255 - mean) / std)
        loss = jsd_loss(logits, labels)                        # timm.loss.JsdCrossEntropy(num_splits=3)
        optimizer.zero_grad(); loss.backward(); optimizer.step()

Save ``gen.get_state()`` with the checkpoint to resume bit for bit. ``timm train --mix-device auto``
does all of this (see ``docs/batch_mixing.md``).
"""

from __future__ import annotations

import math
from typing import Any

from ..transforms import METHODS, _Key, parse_mixing_config
from .bank import DEFAULT_BANK_SIZE, PictureBank
from .transforms import STRATEGIES, TIMM_AUGMIX_OPS, BatchAugMix, BatchIPMix, BatchPixMix, apply_ops

__all__ = [
    "BATCH_METHODS",
    "DEFAULT_BANK_SIZE",
    "STRATEGIES",
    "TIMM_AUGMIX_OPS",
    "BatchAugMix",
    "BatchIPMix",
    "BatchPixMix",
    "PictureBank",
    "apply_ops",
    "create_batch_mixing",
]

#: Config-string keys of the batched methods: this project's ``ipmix`` / ``pixmix`` keys
#: (:data:`timm_ext.transforms.METHODS`) plus timm's ``augmix`` keys (``m``, ``w``, ``d``, ``a``, ``mstd``;
#: no ``d`` means a depth of 1..3 per chain, as in timm).
BATCH_METHODS: dict[str, dict[str, _Key]] = {
    **METHODS,
    "augmix": {
        "m": _Key("magnitude", float, 0.0, 10.0),
        "w": _Key("width", int, 1),
        "d": _Key("depth", int, 1),
        "a": _Key("alpha", float, 0.0, None, low_open=True),
        "mstd": _Key("magnitude_std", float, 0.0),
    },
}

_CLASSES = {"ipmix": BatchIPMix, "pixmix": BatchPixMix, "augmix": BatchAugMix}


def create_batch_mixing(
    config_str: str, fractals: Any = None, **kwargs: Any
) -> BatchIPMix | BatchPixMix | BatchAugMix:
    """The batched transform a config string describes (``ipmix-...``, ``pixmix-...``, ``augmix-...``).

    Args:
        config_str: keys as in :mod:`timm_ext.transforms` (ipmix / pixmix) and timm's AugMix
            (``augmix-m3-w3``, ``mstd``; timm's ``b`` blended mode is not offered).
        fractals: mixing pictures for ipmix / pixmix (a folder, arrays, a source; None: procedural).
        kwargs: further constructor arguments (``bank_size``, ``strategy``, AugMix's ``fill``,
            ``translate_pct``); they override the string.

    Raises:
        ValueError: an unknown method or key, a bad value (the message names the section).

    Example:
        >>> create_batch_mixing("augmix-m5-w4")
        BatchAugMix(magnitude=5.0, width=4, depth=-1, alpha=1.0, magnitude_std=inf, translate_pct=0.45, strategy='group')
    """
    method, parsed = parse_mixing_config(config_str, BATCH_METHODS)
    parsed.update(kwargs)
    if method == "augmix":
        if fractals is not None:
            raise ValueError(f"'{config_str}': AugMix uses no mixing pictures; drop fractals=")
        parsed.setdefault("magnitude_std", math.inf)
        return BatchAugMix(**parsed)
    return _CLASSES[method](fractals=fractals, **parsed)
