"""Pure kernels of IPMix and PixMix: image operations, mixing operations, patch mixing, the mixers.

Nothing here draws random numbers: every function takes its parameters explicitly (the transforms in
``transforms.py`` sample them). Images are ``(H, W, C)`` arrays; image operations work on uint8
(they reproduce Pillow's semantics, as the reference code uses PIL), mixing happens in float.

Image operations are per-channel lookup tables (``cv2.LUT``) or one ``cv2.warpAffine`` with the
half-pixel offset that matches Pillow's pixel-centre convention. Every image operation can be
evaluated on a region of interest only (``roi=(top, left, height, width)``), which is how a
patch-level step that needs "one random op applied to the original image" stays cheap for small
patches.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

__all__ = [
    "AUGMIX_OPS",
    "ENHANCE_OPS",
    "IPMIX_ALL_OPS",
    "IPMIX_OPS",
    "MIXING_OPS",
    "PATCH_SHAPES",
    "PIXMIX_ALL_OPS",
    "PIXMIX_OPS",
    "ImageOp",
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
# Operation lists (one source of truth; ipmix.md "Image-level ops")
# ----------------------------------------------------------------------------------------------
#: IPMix's base list of image-level ops (10).
IPMIX_OPS: tuple[str, ...] = (
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
    "mirror",
    "invert",
)
#: The PIL ImageEnhance ops.
ENHANCE_OPS: tuple[str, ...] = ("color", "contrast", "brightness", "sharpness")
#: IPMix's ``all_ops`` list (15): the base list plus autocontrast and the enhance ops.
IPMIX_ALL_OPS: tuple[str, ...] = (*IPMIX_OPS, "autocontrast", *ENHANCE_OPS)
#: AugMix's / PixMix's base list (9).
AUGMIX_OPS: tuple[str, ...] = (
    "autocontrast",
    "equalize",
    "posterize",
    "rotate",
    "solarize",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
)
PIXMIX_OPS: tuple[str, ...] = AUGMIX_OPS
#: PixMix's ``all_ops`` list (13).
PIXMIX_ALL_OPS: tuple[str, ...] = (*AUGMIX_OPS, *ENHANCE_OPS)

#: Patch/pixel-level mixing operations.
MIXING_OPS: tuple[str, ...] = ("add", "multiply", "random_pixels", "random_elements")
#: Patch shapes: an s x s square, or a "scar" with width and height drawn independently in {2..s}.
PATCH_SHAPES: tuple[str, ...] = ("square", "scar")
#: Overflow handling when a mixed value leaves [0, 1]: ``wrap`` (modulo 256, the reference) or ``clip``.
OVERFLOW_MODES: tuple[str, ...] = ("wrap", "clip")

_MULTIPLY_FLOOR = 1e-37  # the reference's max(2y, 1e-37) guard
_WRAP_LIMIT = float(2**30)  # |v*255| beyond this saturates before wrapping (only multiply by ~0 gets there)


class ImageOp(NamedTuple):
    """One image-level operation with its magnitude (see :func:`apply_image_op` for units)."""

    name: str
    magnitude: float = 0.0


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


# ----------------------------------------------------------------------------------------------
# Lookup-table operations (exact Pillow semantics)
# ----------------------------------------------------------------------------------------------
_IDENTITY = np.arange(256, dtype=np.uint8)
_LEVELS = np.arange(256, dtype=np.float64) / 255.0  # uint8 value -> [0, 1]


def _apply_luts(img: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Apply one LUT ``(256,)`` to every channel, or one LUT per channel ``(C, 256)``."""
    channels = img.shape[2]
    if luts.ndim == 1:
        return cv2.LUT(img, luts).reshape(img.shape)
    if channels in (1, 3, 4):
        lut = np.ascontiguousarray(luts.T).reshape(256, 1, channels)
        return cv2.LUT(img, lut).reshape(img.shape)
    out = np.empty_like(img)
    for c in range(channels):
        out[:, :, c] = cv2.LUT(np.ascontiguousarray(img[:, :, c]), luts[c]).reshape(img.shape[:2])
    return out


def _histograms(img: np.ndarray) -> np.ndarray:
    """Per-channel 256-bin histograms, shape ``(C, 256)``, int64."""
    return np.stack(
        [cv2.calcHist([img], [c], None, [256], [0, 256]).ravel() for c in range(img.shape[2])]
    ).astype(np.int64)


@functools.lru_cache(maxsize=16)
def _posterize_lut(bits: int) -> np.ndarray:
    mask = ~(2 ** (8 - int(bits)) - 1) & 0xFF
    return (_IDENTITY & mask).astype(np.uint8)


@functools.lru_cache(maxsize=512)
def _solarize_lut(threshold: float) -> np.ndarray:
    return np.where(threshold > _IDENTITY, _IDENTITY, 255 - _IDENTITY).astype(np.uint8)


def _equalize_luts(hist: np.ndarray) -> np.ndarray:
    """Pillow's ``ImageOps.equalize`` tables from per-channel histograms ``(C, 256)``."""
    luts = np.empty(hist.shape, dtype=np.uint8)
    for c, h in enumerate(hist):
        nonzero = np.flatnonzero(h)
        step = (int(h.sum()) - int(h[nonzero[-1]])) // 255 if nonzero.size > 1 else 0
        if step == 0:
            luts[c] = _IDENTITY
            continue
        running = np.concatenate(([0], np.cumsum(h)[:-1]))
        luts[c] = np.minimum((step // 2 + running) // step, 255)
    return luts


def _autocontrast_luts(hist: np.ndarray, cutoff: float) -> np.ndarray:
    """Pillow's ``ImageOps.autocontrast(cutoff=percent)`` tables from histograms ``(C, 256)``."""
    luts = np.empty(hist.shape, dtype=np.uint8)
    levels = np.arange(256, dtype=np.float64)
    for c, h in enumerate(hist):
        n = int(h.sum())
        cut_lo = int(n * cutoff // 100)
        cut_hi = int(n * cutoff // 100)
        if n - cut_lo - cut_hi <= 0:
            luts[c] = _IDENTITY
            continue
        prefix = np.cumsum(h)
        lo = int(np.argmax(prefix > cut_lo))
        suffix = np.minimum(np.cumsum(h[::-1])[::-1], n - cut_lo)
        above = np.flatnonzero(suffix > cut_hi)
        hi = int(above[-1]) if above.size else 0
        if hi <= lo:
            luts[c] = _IDENTITY
            continue
        scale = 255.0 / (hi - lo)
        luts[c] = np.clip((levels * scale - lo * scale).astype(np.int64), 0, 255)
    return luts


# ----------------------------------------------------------------------------------------------
# Geometric operations (one warpAffine, Pillow's pixel-centre convention)
# ----------------------------------------------------------------------------------------------
def _pil_affine_to_cv2(coeffs: Sequence[float]) -> np.ndarray:
    """Convert Pillow's output->input affine ``(a, b, c, d, e, f)`` to an index-space cv2 matrix.

    Pillow maps output pixel centre ``(x + 0.5, y + 0.5)`` to input coordinates and samples at
    ``input - 0.5``; in index space (centres on integers) the offset becomes
    ``c + (a + b - 1) / 2`` and ``f + (d + e - 1) / 2``.
    """
    a, b, c, d, e, f = coeffs
    return np.array([[a, b, c + 0.5 * (a + b - 1.0)], [d, e, f + 0.5 * (d + e - 1.0)]], dtype=np.float64)


def _rotate_coeffs(degrees: float, height: int, width: int) -> tuple[float, ...]:
    """Pillow ``Image.rotate(degrees)`` (counter-clockwise about the centre) as affine coefficients."""
    angle = -math.radians(degrees)
    a, b = round(math.cos(angle), 15), round(math.sin(angle), 15)
    d, e = -b, a
    cx, cy = width / 2.0, height / 2.0
    return (a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy)


def _warp(img: np.ndarray, matrix: np.ndarray, roi: tuple[int, int, int, int] | None) -> np.ndarray:
    height, width = img.shape[:2]
    if roi is not None:
        top, left, height, width = roi
        matrix = matrix.copy()
        matrix[:, 2] += matrix[:, 0] * left + matrix[:, 1] * top
    out = cv2.warpAffine(
        img,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return out.reshape(height, width, img.shape[2])


# ----------------------------------------------------------------------------------------------
# Enhance operations (Pillow's ImageEnhance: blend against a degenerate image, truncating)
# ----------------------------------------------------------------------------------------------
def _gray(img: np.ndarray) -> np.ndarray:
    """Luma (Pillow's ``convert("L")`` for RGB; the channel mean otherwise), uint8 ``(H, W, 1)``."""
    if img.shape[2] == 3:
        r, g, b = (img[:, :, i].astype(np.uint32) for i in range(3))
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[:, :, None]
    return np.rint(img.mean(axis=2, keepdims=True)).astype(np.uint8)


def _blend(degenerate: np.ndarray, img: np.ndarray, factor: float) -> np.ndarray:
    deg = degenerate.astype(np.float32)
    out = deg + np.float32(factor) * (img.astype(np.float32) - deg)
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], dtype=np.float32) / 13.0


def _smooth(img: np.ndarray) -> np.ndarray:
    """Pillow's ``ImageFilter.SMOOTH``; the one-pixel border keeps the original values."""
    out = cv2.filter2D(img, -1, _SMOOTH, borderType=cv2.BORDER_REPLICATE).reshape(img.shape)
    out[0, :], out[-1, :], out[:, 0], out[:, -1] = img[0, :], img[-1, :], img[:, 0], img[:, -1]
    return out


def apply_image_op(
    img: np.ndarray, name: str, magnitude: float = 0.0, roi: tuple[int, int, int, int] | None = None
) -> np.ndarray:
    """Apply one image-level op to a uint8 ``(H, W, C)`` image (Pillow semantics), return a new array.

    Args:
        img: uint8 ``(H, W, C)``, any channel count. Not modified.
        name: op name (see :data:`IPMIX_ALL_OPS`, :data:`PIXMIX_ALL_OPS`). Magnitudes:
            ``posterize`` bits kept (0..8); ``rotate`` degrees counter-clockwise; ``solarize``
            threshold (0..256); ``shear_x``/``shear_y`` shear factor; ``translate_x``/``translate_y``
            pixels (content moves left/up for positive values, as Pillow's affine (1,0,v,0,1,0));
            ``autocontrast`` cutoff percent per end; ``color``/``contrast``/``brightness``/
            ``sharpness`` enhance factor (1 = identity); ``equalize``/``mirror``/``invert``: unused.
        roi: ``(top, left, height, width)``: compute only this region of the result (the op still
            sees the whole image: histograms, means and geometry are those of the full image).

    Returns:
        uint8 ``(H, W, C)`` (or the ROI's size), C-contiguous.
    """
    height, width = img.shape[:2]
    if name in {"rotate", "shear_x", "shear_y", "translate_x", "translate_y"}:
        if name == "rotate":
            coeffs = _rotate_coeffs(magnitude, height, width)
        elif name == "shear_x":
            coeffs = (1.0, magnitude, 0.0, 0.0, 1.0, 0.0)
        elif name == "shear_y":
            coeffs = (1.0, 0.0, 0.0, magnitude, 1.0, 0.0)
        elif name == "translate_x":
            coeffs = (1.0, 0.0, float(magnitude), 0.0, 1.0, 0.0)
        else:
            coeffs = (1.0, 0.0, 0.0, 0.0, 1.0, float(magnitude))
        return _warp(img, _pil_affine_to_cv2(coeffs), roi)
    if name == "mirror":
        if roi is None:
            return np.ascontiguousarray(img[:, ::-1])
        top, left, h, w = roi
        return np.ascontiguousarray(img[top : top + h, width - left - w : width - left][:, ::-1])

    # Ops that see the whole image for their statistics, then act per pixel on the region.
    region = img if roi is None else img[roi[0] : roi[0] + roi[2], roi[1] : roi[1] + roi[3]]
    if name == "invert":
        return np.ascontiguousarray(255 - region)
    if name == "posterize":
        return _apply_luts(np.ascontiguousarray(region), _posterize_lut(int(magnitude)))
    if name == "solarize":
        return _apply_luts(np.ascontiguousarray(region), _solarize_lut(magnitude))
    if name == "equalize":
        return _apply_luts(np.ascontiguousarray(region), _equalize_luts(_histograms(img)))
    if name == "autocontrast":
        return _apply_luts(np.ascontiguousarray(region), _autocontrast_luts(_histograms(img), magnitude))
    if name == "brightness":
        return _blend(np.zeros_like(region), region, magnitude)
    if name == "color":
        if img.shape[2] == 1:
            return np.array(region, copy=True)
        return _blend(_gray(region), region, magnitude)
    if name == "contrast":
        mean = int(_gray(img).mean() + 0.5)
        return _blend(np.full_like(region, mean), region, magnitude)
    if name == "sharpness":
        out = _blend(_smooth(img), img, magnitude)
        return (
            out
            if roi is None
            else np.ascontiguousarray(out[roi[0] : roi[0] + roi[2], roi[1] : roi[1] + roi[3]])
        )
    raise ValueError(
        f"unknown image op {name!r}; known ops: {sorted(set(IPMIX_ALL_OPS) | set(PIXMIX_ALL_OPS))}"
    )


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


def mix_region_uint8(
    x: np.ndarray, y: np.ndarray, op: str, a: float, b: float, mask: np.ndarray | None, overflow: str
) -> np.ndarray:
    """Mix two uint8 regions with ``op`` in the [0, 1] domain and quantize back to uint8.

    Equivalent to ``floor(op(x / 255, y / 255) * 255)`` wrapped modulo 256 (``overflow="wrap"``,
    the reference) or clipped to [0, 255] (``"clip"``). ``add`` and ``multiply`` are evaluated with
    256-entry lookup tables per operand, so the cost is a few passes over the region.
    """
    if op in ("random_pixels", "random_elements"):
        if mask is None:
            raise ValueError(f"mixing op {op!r} needs a mask")
        return np.ascontiguousarray(np.where(mask, x, y))
    levels = _LEVELS
    if op == "add":
        # (a(2x-1) + b(2y-1) + 1)/2 * 255 = a*255x + b*255y + 255(1 - a - b)/2
        lut_x = (a * levels * 255.0).astype(np.float32)
        lut_y = (b * levels * 255.0 + 127.5 * (1.0 - a - b)).astype(np.float32)
        v = cv2.LUT(x, lut_x).reshape(x.shape)
        v += cv2.LUT(y, lut_y).reshape(y.shape)
    elif op == "multiply":
        lut_x = (127.5 * np.power(2.0 * levels, a)).astype(np.float32)
        lut_y = np.minimum(np.power(np.maximum(2.0 * levels, _MULTIPLY_FLOOR), b), 3.0e38).astype(np.float32)
        v = cv2.LUT(x, lut_x).reshape(x.shape)
        with np.errstate(over="ignore"):
            v *= cv2.LUT(y, lut_y).reshape(y.shape)
    else:
        raise ValueError(f"unknown mixing op {op!r}; expected one of {MIXING_OPS}")
    return _quantize(v, overflow)


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
        return _gray(picture)
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
        if step.op == "add":
            mixed = add(mixed, other, np.float32(step.a), np.float32(step.b))
        elif step.op == "multiply":
            lhs = cv2.pow(2.0 * mixed, step.a).reshape(mixed.shape)
            rhs = cv2.pow(np.maximum(2.0 * other, np.float32(_MULTIPLY_FLOOR)), step.b).reshape(mixed.shape)
            mixed = lhs * rhs * np.float32(0.5)
        else:
            raise ValueError(f"PixMix mixing op must be 'add' or 'multiply', got {step.op!r}")
        np.clip(mixed, 0.0, 1.0, out=mixed)
    if image.dtype == np.uint8:
        return _from_float255(mixed * np.float32(255.0), image.dtype)
    return mixed.astype(np.float32, copy=False)
