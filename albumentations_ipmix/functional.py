"""Pure kernels of IPMix and PixMix: mixing operations, patch mixing, the two mixers.

Nothing here draws random numbers: every function takes its parameters explicitly (the transforms in
``transforms.py`` sample them). Images are ``(H, W, C)`` arrays; image operations work on uint8
(they reproduce Pillow's semantics, as the reference code uses PIL), mixing happens in float.

The image-level operations and their table live in :mod:`albumentations_ipmix.ops` (re-exported
here: :func:`apply_image_op`, :class:`ImageOp` and the op lists); the mixing operations are the rows
of :data:`MIXING_OP_TABLE` (formula, uint8 and float32 kernels, which draws they need), read by
:func:`mix_region_uint8`, :func:`pixmix` and the transforms' samplers. Every image operation can be
evaluated on a region of interest only (``roi=(top, left, height, width)``), which is how a
patch-level step that needs "one random op applied to the original image" stays cheap for small
patches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from .ops import (
    AUGMIX_OPS,
    ENHANCE_OPS,
    IPMIX_ALL_OPS,
    IPMIX_OPS,
    PIXMIX_ALL_OPS,
    PIXMIX_OPS,
    ImageOp,
    apply_image_op,
    gray,
)

__all__ = [
    "AUGMIX_OPS",
    "ENHANCE_OPS",
    "IPMIX_ALL_OPS",
    "IPMIX_OPS",
    "MIXING_OPS",
    "MIXING_OP_TABLE",
    "PATCH_SHAPES",
    "PIXMIX_ALL_OPS",
    "PIXMIX_MIXING_OPS",
    "PIXMIX_OPS",
    "ImageOp",
    "MixingOpSpec",
    "PatchStep",
    "PixMixStep",
    "add",
    "apply_image_op",
    "default_patch_sizes",
    "ipmix",
    "match_channels",
    "mix_region_uint8",
    "multiply",
    "patch_mix",
    "pixmix",
    "random_elements",
    "random_pixels",
]

# ----------------------------------------------------------------------------------------------
# Patch-shape and overflow names (the mixing ops: MIXING_OP_TABLE below)
# ----------------------------------------------------------------------------------------------
#: Patch shapes: an s x s square, or a "scar" with width and height drawn independently in {2..s}.
PATCH_SHAPES: tuple[str, ...] = ("square", "scar")
#: Overflow handling when a mixed value leaves [0, 1]: ``wrap`` (modulo 256, the reference) or ``clip``.
OVERFLOW_MODES: tuple[str, ...] = ("wrap", "clip")

_MULTIPLY_FLOOR = 1e-37  # the reference's max(2y, 1e-37) guard
_WRAP_LIMIT = float(2**30)  # |v*255| beyond this saturates before wrapping (only multiply by ~0 gets there)


class PatchStep(NamedTuple):
    """One patch/pixel-level step of an IPMix chain.

    Attributes:
        box: ``(top, left, height, width)`` in pixels, already clipped to the image.
        op: one of :data:`MIXING_OPS`.
        a, b: mixing weights from ``get_ab`` (used by ``add`` and ``multiply``).
        mask: boolean mask for ``random_pixels`` ``(height, width, 1)`` or ``random_elements``
            ``(height, width, C)``; ``True`` keeps the chain's pixel. ``None`` for the other ops.
        partner: ``None`` to mix with the mixing picture, or the :class:`ImageOp` applied to the
            original image to build the partner.
    """

    box: tuple[int, int, int, int]
    op: str
    a: float
    b: float
    mask: np.ndarray | None
    partner: ImageOp | None


class PixMixStep(NamedTuple):
    """One PixMix mixing round: ``op`` in {add, multiply}; ``partner`` as in :class:`PatchStep`."""

    op: str
    a: float
    b: float
    partner: ImageOp | None


def default_patch_sizes(height: int, width: int) -> tuple[int, ...]:
    """Default patch sizes: powers of two from 4 up to ``min(64, side / 2)``, plus the full side.

    ``side = min(height, width)``; the full size is ``max(height, width)`` so that the largest patch
    covers the whole image (the pixel level). 32 px gives (4, 8, 16, 32); 224 px gives
    (4, 8, 16, 32, 64, 224).
    """
    side = min(height, width)
    sizes = []
    s = 4
    while s <= min(64, side / 2):
        sizes.append(s)
        s *= 2
    full = max(height, width)
    if full not in sizes:
        sizes.append(full)
    return tuple(sizes)


_LEVELS = np.arange(256, dtype=np.float64) / 255.0  # uint8 value -> [0, 1]


# ----------------------------------------------------------------------------------------------
# Mixing operations (ipmix.md "Mixing ops"; x, y floats in [0, 1])
# ----------------------------------------------------------------------------------------------
def add(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """``(a * (2x - 1) + b * (2y - 1) + 1) / 2`` (may leave [0, 1])."""
    return (a * (2.0 * x - 1.0) + b * (2.0 * y - 1.0) + 1.0) / 2.0


def multiply(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """``(2x)^a * max(2y, 1e-37)^b / 2`` (may leave [0, 1]; large when b < 0 and y ~ 0)."""
    return np.power(2.0 * x, a) * np.power(np.maximum(2.0 * y, _MULTIPLY_FLOOR), b) / 2.0


def random_pixels(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` where ``mask`` (one value per pixel, broadcast over channels) else ``y``."""
    return np.where(mask, x, y)


def random_elements(x: np.ndarray, y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``x`` where ``mask`` (one value per channel element) else ``y``."""
    return np.where(mask, x, y)


def _quantize(v255: np.ndarray, overflow: str) -> np.ndarray:
    """``floor(v * 255)`` to uint8, values outside [0, 255] wrapped modulo 256 or clipped."""
    if overflow == "clip":
        np.clip(v255, 0.0, 255.0, out=v255)
        return v255.astype(np.uint8)
    np.clip(v255, -_WRAP_LIMIT, _WRAP_LIMIT, out=v255)
    np.floor(v255, out=v255)
    return v255.astype(np.int32).astype(np.uint8)  # int32 -> uint8 keeps the low byte: modulo 256


def _add_255(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """``add`` of two uint8 regions, times 255, float32 (two 256-entry lookup tables)."""
    # (a(2x-1) + b(2y-1) + 1)/2 * 255 = a*255x + b*255y + 255(1 - a - b)/2
    lut_x = (a * _LEVELS * 255.0).astype(np.float32)
    lut_y = (b * _LEVELS * 255.0 + 127.5 * (1.0 - a - b)).astype(np.float32)
    v = cv2.LUT(x, lut_x).reshape(x.shape)
    v += cv2.LUT(y, lut_y).reshape(y.shape)
    return v


def _multiply_255(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """``multiply`` of two uint8 regions, times 255, float32 (two 256-entry lookup tables)."""
    lut_x = (127.5 * np.power(2.0 * _LEVELS, a)).astype(np.float32)
    lut_y = np.minimum(np.power(np.maximum(2.0 * _LEVELS, _MULTIPLY_FLOOR), b), 3.0e38).astype(np.float32)
    v = cv2.LUT(x, lut_x).reshape(x.shape)
    with np.errstate(over="ignore"):
        v *= cv2.LUT(y, lut_y).reshape(y.shape)
    return v


def _add_float32(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """PixMix's ``add`` on float32 images in [0, 1] (float32 weights)."""
    return add(x, y, np.float32(a), np.float32(b))


def _multiply_float32(x: np.ndarray, y: np.ndarray, a: float, b: float) -> np.ndarray:
    """PixMix's ``multiply`` on float32 images in [0, 1] (``cv2.pow``)."""
    lhs = cv2.pow(2.0 * x, a).reshape(x.shape)
    rhs = cv2.pow(np.maximum(2.0 * y, np.float32(_MULTIPLY_FLOOR)), b).reshape(x.shape)
    return lhs * rhs * np.float32(0.5)


@dataclass(frozen=True)
class MixingOpSpec:
    """One row of :data:`MIXING_OP_TABLE`.

    Attributes:
        formula: the op on floats in [0, 1] (ipmix.md "Mixing ops"): ``formula(x, y, a, b)`` for
            the weighted ops, ``formula(x, y, mask)`` for the masked ones.
        mask: ``None`` for the weighted ops (``a, b`` from ``get_ab``), ``"pixel"`` for one mask
            value per pixel (shared by the channels) or ``"element"`` for one per channel element.
        uint8_255: weighted ops: ``uint8_255(x, y, a, b)`` on uint8 regions gives
            ``255 * formula(x / 255, y / 255, a, b)`` in float32 (quantized by the caller).
        float32: weighted ops that PixMix uses: ``float32(x, y, a, b)`` on float32 images.
    """

    formula: Callable[..., np.ndarray]
    mask: str | None = None
    uint8_255: Callable[[np.ndarray, np.ndarray, float, float], np.ndarray] | None = None
    float32: Callable[[np.ndarray, np.ndarray, float, float], np.ndarray] | None = None


#: Every patch/pixel-level mixing op: name -> :class:`MixingOpSpec` (one source of truth).
MIXING_OP_TABLE: dict[str, MixingOpSpec] = {
    "add": MixingOpSpec(add, uint8_255=_add_255, float32=_add_float32),
    "multiply": MixingOpSpec(multiply, uint8_255=_multiply_255, float32=_multiply_float32),
    "random_pixels": MixingOpSpec(random_pixels, mask="pixel"),
    "random_elements": MixingOpSpec(random_elements, mask="element"),
}
#: The mixing ops of IPMix (all of them), in table order.
MIXING_OPS: tuple[str, ...] = tuple(MIXING_OP_TABLE)
#: The mixing ops of PixMix (those with a float32 kernel): ``add`` and ``multiply``.
PIXMIX_MIXING_OPS: tuple[str, ...] = tuple(name for name, spec in MIXING_OP_TABLE.items() if spec.float32)


def mix_region_uint8(
    x: np.ndarray, y: np.ndarray, op: str, a: float, b: float, mask: np.ndarray | None, overflow: str
) -> np.ndarray:
    """Mix two uint8 regions with ``op`` in the [0, 1] domain and quantize back to uint8.

    Equivalent to ``floor(op(x / 255, y / 255) * 255)`` wrapped modulo 256 (``overflow="wrap"``,
    the reference) or clipped to [0, 255] (``"clip"``). ``add`` and ``multiply`` are evaluated with
    256-entry lookup tables per operand, so the cost is a few passes over the region.
    """
    spec = MIXING_OP_TABLE.get(op)
    if spec is None:
        raise ValueError(f"unknown mixing op {op!r}; expected one of {MIXING_OPS}")
    if spec.mask is not None:
        if mask is None:
            raise ValueError(f"mixing op {op!r} needs a mask")
        return np.ascontiguousarray(np.where(mask, x, y))
    assert spec.uint8_255 is not None
    return _quantize(spec.uint8_255(x, y, a, b), overflow)


def patch_mix(
    y: np.ndarray, partner: np.ndarray, step: PatchStep, overflow: str = "wrap", out: np.ndarray | None = None
) -> np.ndarray:
    """Mix the box ``step.box`` of ``y`` with the same (aligned) box of ``partner`` and paste it back.

    Args:
        y: uint8 ``(H, W, C)`` chain state.
        partner: uint8 ``(H, W, C)`` full partner, or exactly the box's region ``(h, w, C)``.
        step: the step's parameters (box, op, a, b, mask).
        overflow: ``"wrap"`` or ``"clip"``.
        out: array to write into (may be ``y`` itself for in-place updates); a copy of ``y`` if None.
    """
    top, left, h, w = step.box
    if out is None:
        out = y.copy()
    region = np.ascontiguousarray(y[top : top + h, left : left + w])
    if partner.shape[:2] != (h, w):
        partner = partner[top : top + h, left : left + w]
    out[top : top + h, left : left + w] = mix_region_uint8(
        region, np.ascontiguousarray(partner), step.op, step.a, step.b, step.mask, overflow
    )
    return out


# ----------------------------------------------------------------------------------------------
# Channels and dtypes
# ----------------------------------------------------------------------------------------------
def match_channels(picture: np.ndarray, channels: int) -> np.ndarray:
    """Convert an RGB uint8 picture ``(H, W, 3)`` to ``channels`` channels.

    1 channel: Pillow's luma; 3: unchanged; other counts: the RGB channels repeated cyclically
    (R, G, B, R, G, ...), so every channel of a multispectral image gets structured content.
    """
    if channels == 3:
        return picture
    if channels == 1:
        return gray(picture)
    return np.ascontiguousarray(picture[:, :, np.arange(channels) % 3])


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float32 [0, 1] -> uint8 by rounding (uint8 passes through)."""
    if image.dtype == np.uint8:
        return image
    return np.clip(np.rint(image * np.float32(255.0)), 0, 255).astype(np.uint8)


def _from_float255(out255: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        np.rint(out255, out=out255)
        np.clip(out255, 0.0, 255.0, out=out255)
        return out255.astype(np.uint8)
    return out255


# ----------------------------------------------------------------------------------------------
# The two mixers
# ----------------------------------------------------------------------------------------------
def _partner_for(
    original: np.ndarray, fractal: np.ndarray, partner: ImageOp | None, box: tuple[int, int, int, int]
) -> np.ndarray:
    top, left, h, w = box
    if partner is None:
        return fractal[top : top + h, left : left + w]
    return apply_image_op(original, partner.name, partner.magnitude, roi=box)


def ipmix(
    image: np.ndarray,
    fractal: np.ndarray,
    chains: Sequence[Sequence[ImageOp | PatchStep]],
    weights: Sequence[float],
    m: float,
    overflow: str = "wrap",
) -> np.ndarray:
    """IPMix of one image (ipmix.md, "IPMix: one augmented image").

    Each chain starts from the original image and applies its steps in order: an :class:`ImageOp`
    is an image-level op on the chain state; a :class:`PatchStep` mixes a box of the chain state
    with the mixing picture or with an op applied to the original. Chain states are uint8 (as in
    the reference, which converts each mixed patch back to an 8-bit image). The result is
    ``(1 - m) * image + m * sum_i weights[i] * chain_i``.

    Args:
        image: uint8 [0, 255] or float32 [0, 1], ``(H, W, C)``. Not modified.
        fractal: uint8 ``(H, W, C)`` mixing picture, already fitted to the image.
        chains: one list of steps per chain (an empty list is the identity chain).
        weights: convex chain weights (Dirichlet draw), one per chain.
        m: blend weight with the original, in [0, 1] (Beta draw).
        overflow: ``"wrap"`` (reference) or ``"clip"``.

    Returns:
        array of the input's dtype and shape.
    """
    original = to_uint8(image)
    identity_weight = 0.0
    terms: list[tuple[np.ndarray, float]] = []
    for weight, steps in zip(weights, chains):
        if not steps:
            identity_weight += float(weight)
            continue
        y = original.copy()
        for step in steps:
            if isinstance(step, ImageOp):
                y = apply_image_op(y, step.name, step.magnitude)
            else:
                patch_mix(y, _partner_for(original, fractal, step.partner, step.box), step, overflow, out=y)
        terms.append((y, m * float(weight)))
    if image.dtype != np.uint8:
        terms = [(y, c / 255.0) for y, c in terms]
    return _weighted_sum(image, 1.0 - m + m * identity_weight, terms)


def _weighted_sum(
    image: np.ndarray, image_weight: float, terms: list[tuple[np.ndarray, float]]
) -> np.ndarray:
    """``image_weight * image + sum(c * y)`` in the image's dtype.

    uint8 terms are paired through ``cv2.addWeighted`` into float32 partial sums; for a uint8 image
    the last addition rounds and saturates straight to uint8 (one pass, round-half-to-even like
    ``np.rint``). A float32 image gives a float32 sum clipped to [0, 1].
    """
    shape = image.shape
    as_uint8 = image.dtype == np.uint8
    if as_uint8:
        terms = [(image, image_weight), *terms]
        out = None
    else:
        out = image * np.float32(image_weight)
    pairs = [
        (terms[i], terms[i + 1] if i + 1 < len(terms) else (terms[i][0], 0.0))
        for i in range(0, len(terms), 2)
    ]
    for n, ((y1, c1), (y2, c2)) in enumerate(pairs):
        last = n == len(pairs) - 1
        if out is None:
            depth = cv2.CV_8U if (as_uint8 and last) else cv2.CV_32F
            out = cv2.addWeighted(y1, c1, y2, c2, 0.0, dtype=depth).reshape(shape)
        else:
            pair = cv2.addWeighted(y1, c1, y2, c2, 0.0, dtype=cv2.CV_32F).reshape(shape)
            out = cv2.add(out, pair, dtype=cv2.CV_8U if (as_uint8 and last) else -1).reshape(shape)
    if not as_uint8:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def pixmix(
    image: np.ndarray, fractal: np.ndarray, first: ImageOp | None, steps: Sequence[PixMixStep]
) -> np.ndarray:
    """PixMix of one image (ipmix.md, "PixMix: one augmented image").

    ``mixed`` starts as the image (or ``first`` applied to it); every step mixes it with the mixing
    picture or with an op applied to the original, in float, and clips to [0, 1].

    Args:
        image: uint8 [0, 255] or float32 [0, 1], ``(H, W, C)``. Not modified.
        fractal: uint8 ``(H, W, C)`` mixing picture fitted to the image.
        first: op applied to the image before mixing, or None.
        steps: the mixing rounds.

    Returns:
        array of the input's dtype and shape.
    """
    original = to_uint8(image)
    inv255 = np.float32(1.0 / 255.0)
    if first is not None:
        mixed = apply_image_op(original, first.name, first.magnitude).astype(np.float32) * inv255
    elif image.dtype == np.uint8:
        mixed = image.astype(np.float32) * inv255
    else:
        mixed = image.astype(np.float32, copy=True)
    full = (0, 0, image.shape[0], image.shape[1])
    for step in steps:
        other = _partner_for(original, fractal, step.partner, full).astype(np.float32) * inv255
        spec = MIXING_OP_TABLE.get(step.op)
        if spec is None or spec.float32 is None:
            raise ValueError(f"PixMix mixing op must be one of {PIXMIX_MIXING_OPS}, got {step.op!r}")
        mixed = spec.float32(mixed, other, step.a, step.b)
        np.clip(mixed, 0.0, 1.0, out=mixed)
    if image.dtype == np.uint8:
        return _from_float255(mixed * np.float32(255.0), image.dtype)
    return mixed.astype(np.float32, copy=False)
