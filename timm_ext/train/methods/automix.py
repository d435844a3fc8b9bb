"""AutoMix (Liu et al., ECCV 2022) as AdAutoMix with the adversarial step off: every step cooperative.

The generator minimises the EMA teacher's mixed cross-entropy on every step; no source forwards,
no cosine term. Everything else (generator, teacher, losses, checkpoints) is AdAutoMix's.
"""

from __future__ import annotations

from .adautomix import AdAutoMix

__all__ = ["AutoMix"]


class AutoMix(AdAutoMix):
    """``--aug automix``."""

    name = "automix"
    adversarial = False
