"""Plug IPMix / PixMix into timm's transform factory.

timm has no augmentation registry. Its training transforms dispatch the auto-augment string inside
``timm.data.transforms_factory``: ``rand...`` -> RandAugment, ``augmix...`` -> AugMix, anything else
-> ``auto_augment_transform(config_str, hparams)``. :func:`register` wraps that last function (the
narrowest patch point), handling ``ipmix-...`` / ``pixmix-...`` strings and delegating every other
string to timm unchanged. Everything around it keeps working: crop/flip, normalization, the
prefetcher, random erasing, ``separate=True`` transforms for ``AugMixDataset`` (``--aug-splits``) and
therefore ``JsdCrossEntropy`` (``--jsd-loss``).

Example:
    >>> from timm.data import create_transform
    >>> from timm_ext.registry import register, unregister
    >>> register()  # or register(fractals="path/to/pictures")
    >>> t = create_transform(32, is_training=True, auto_augment="ipmix-w3-d3-b3-s3")
    >>> [type(step).__name__ for step in t.transforms][:3]
    ['RandomResizedCropAndInterpolation', 'RandomHorizontalFlip', 'AlbumentationsAdapter']
    >>> unregister()
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import timm.data.transforms_factory as _factory

from .compat import fix_posterize, restore_posterize
from .transforms import is_mixing_config, mixing_transform, set_default_fractals

__all__ = ["is_registered", "register", "unregister"]

_lock = threading.Lock()
_original: Callable[..., Any] | None = None
_MARK = "__timm_ext_hook__"


def _make_hook(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def auto_augment_transform(config_str: str, hparams: dict[str, Any] | None = None) -> Any:
        if is_mixing_config(config_str):
            return mixing_transform(config_str, hparams)
        return original(config_str, hparams)

    setattr(auto_augment_transform, _MARK, True)
    return auto_augment_transform


def is_registered() -> bool:
    """True while timm's transform factory routes ``ipmix-`` / ``pixmix-`` strings to this package."""
    return getattr(_factory.auto_augment_transform, _MARK, False)


def register(fractals: Any = None) -> None:
    """Make ``create_transform(..., auto_augment="ipmix-...")`` and ``create_loader`` build IPMix/PixMix.

    Idempotent: calling it again only updates ``fractals``.

    Args:
        fractals: the default mixing source for config strings (a folder path, an array of
            pictures, a mixing source); None keeps ``$TIMM_EXT_FRACTALS`` / procedural fractals.
    """
    global _original
    with _lock:
        if fractals is not None:
            set_default_fractals(fractals)
        if is_registered():
            return
        fix_posterize()  # timm's RandAugment on Pillow >= 12 (see timm_ext.compat)
        _original = _factory.auto_augment_transform
        _factory.auto_augment_transform = _make_hook(_original)


def unregister() -> None:
    """Restore timm's own ``auto_augment_transform`` and clear the default source. Idempotent."""
    global _original
    with _lock:
        set_default_fractals(None)
        if not is_registered():
            return
        restore_posterize()
        if _original is not None:
            _factory.auto_augment_transform = _original
        else:  # pragma: no cover - hook installed by another copy of this module
            _factory.auto_augment_transform = _factory.auto_augment_transform.__wrapped__
        _original = None
