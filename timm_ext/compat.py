"""Compatibility fix for timm's PIL augmentations on current Pillow.

timm's RandAugment maps the largest magnitude (10, reached whenever ``mstd`` noise pushes the
magnitude past it, e.g. ``rand-m9-mstd0.5-inc1``) of ``PosterizeIncreasing`` to "keep 0 bits".
Pillow accepted 0 bits and returned a black image; Pillow 12 and newer raise
``ValueError: bits must be between or equal to 1 and 8`` instead, which stops a training run
after a few thousand images. :func:`fix_posterize` restores the old behaviour for 0 bits and leaves
every other case to timm; :func:`restore_posterize` puts timm's own op back.

Nothing here runs at import: :func:`timm_ext.register` (and so ``import timm_ext.enable``) and the
``timm train`` command apply the fix, ``timm_ext.unregister()`` removes it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["fix_posterize", "restore_posterize"]


def fix_posterize() -> bool:
    """Make timm's posterize op accept 0 bits (black image, as older Pillow). Idempotent.

    Returns True when timm's op table now uses the fixed function.
    """
    from PIL import Image
    from timm.data import auto_augment

    original = auto_augment.posterize
    if getattr(original, "_timm_ext_fixed", False):
        return True

    def posterize(img: Image.Image, bits_to_keep: int, **kwargs: Any) -> Image.Image:
        if bits_to_keep <= 0:
            return Image.new(img.mode, img.size)
        return original(img, bits_to_keep, **kwargs)

    posterize._timm_ext_fixed = True  # type: ignore[attr-defined]
    posterize._timm_ext_original = original  # type: ignore[attr-defined]
    auto_augment.posterize = posterize
    for name, op in list(auto_augment.NAME_TO_OP.items()):
        if op is original:
            auto_augment.NAME_TO_OP[name] = posterize
    return True


def restore_posterize() -> None:
    """Undo :func:`fix_posterize`: timm's module attribute and op table get timm's function back."""
    from timm.data import auto_augment

    fixed = auto_augment.posterize
    original = getattr(fixed, "_timm_ext_original", None)
    if original is None:
        return
    auto_augment.posterize = original
    for name, op in list(auto_augment.NAME_TO_OP.items()):
        if op is fixed:
            auto_augment.NAME_TO_OP[name] = original
