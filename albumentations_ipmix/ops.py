"""Image-level operations of IPMix and PixMix: one table of kernels and level rules.

:data:`IMAGE_OPS` maps every op name to an :class:`ImageOpSpec`: the kernel (a pure numpy/OpenCV
function of a uint8 image, a magnitude and an optional region), the rule that turns a sampled
``level`` into the kernel's magnitude (ipmix.md's magnitude table), whether the magnitude's sign is
random, and how the kernel compares with its Pillow reference. It plays the part of timm's
``auto_augment.NAME_TO_OP`` + ``LEVEL_TO_ARG``: :func:`apply_image_op`, the samplers in
:mod:`albumentations_ipmix.transforms` and the op lists below all read it, so an op is added or
changed in one place. Nothing here draws random numbers.

Why not Albumentations' own ops (``A.Posterize``, ``A.Affine``, ``A.ColorJitter``, ...):

- **Region-of-interest evaluation.** An IPMix patch step mixes a box of the image with the same box
  of "one random op applied to the original". Every kernel here takes ``roi=(top, left, height,
  width)`` and computes only that box of the full-image result (histograms, means and geometry
  still those of the whole image), so a 4 x 4 patch costs a 4 x 4 op, not a 224 x 224 one.
  Albumentations transforms work on whole images only.
- **Pillow bit-exactness.** The reference scripts (AugMix, PixMix, IPMix) apply PIL ``ImageOps``
  / ``ImageEnhance`` ops; the kernels reproduce them bit for bit (LUT ops, translations, enhance
  ops), or within 1 grey level where the reference rounds differently (rotate and shear: OpenCV
  interpolates at 1/32 px in fixed point, Pillow in double precision). Albumentations' ops have
  their own parameterizations and rounding (e.g. ``ColorJitter`` is not ``ImageEnhance``), so
  magnitudes from the papers would not mean the same thing.

Both claims are tested against Pillow in ``tests/test_ipmix_ops.py``. Images are ``(H, W, C)``
uint8 with any channel count; LUT ops are ``cv2.LUT`` tables, geometric ops one ``cv2.warpAffine``
with the half-pixel offset of Pillow's pixel-centre convention, enhance ops blends against a
degenerate image (gray, gray mean, black, or Pillow's 3 x 3 smoothing filter).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import cv2
import numpy as np

__all__ = [
    "AUGMIX_OPS",
    "ENHANCE_OPS",
    "IMAGE_OPS",
    "IPMIX_ALL_OPS",
    "IPMIX_OPS",
    "PIXMIX_ALL_OPS",
    "PIXMIX_OPS",
    "ImageOp",
    "ImageOpSpec",
    "OpContext",
    "apply_image_op",
    "float_param",
    "gray",
    "int_param",
    "level_to_magnitude",
]

#: ``(top, left, height, width)`` of a region, in pixels.
Roi = tuple[int, int, int, int]


class ImageOp(NamedTuple):
    """One image-level operation with its magnitude (see :data:`IMAGE_OPS` for units)."""

    name: str
    magnitude: float = 0.0


# ----------------------------------------------------------------------------------------------
# Lookup-table operations (exact Pillow semantics)
# ----------------------------------------------------------------------------------------------
_IDENTITY = np.arange(256, dtype=np.uint8)


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
def gray(img: np.ndarray) -> np.ndarray:
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


# ----------------------------------------------------------------------------------------------
# The kernels: ``kernel(img, magnitude, roi=None)``, uint8 (H, W, C) in, a new C-contiguous array out
# ----------------------------------------------------------------------------------------------
#: An op kernel: ``(img, magnitude, roi) -> uint8 image`` (the ROI's size when ``roi`` is given).
Kernel = Callable[[np.ndarray, float, Roi | None], np.ndarray]


def _region(img: np.ndarray, roi: Roi | None) -> np.ndarray:
    return img if roi is None else img[roi[0] : roi[0] + roi[2], roi[1] : roi[1] + roi[3]]


def invert(img: np.ndarray, magnitude: float = 0.0, roi: Roi | None = None) -> np.ndarray:
    """``255 - x`` (``ImageOps.invert``); ``magnitude`` is unused."""
    return np.ascontiguousarray(255 - _region(img, roi))


def posterize(img: np.ndarray, bits: float, roi: Roi | None = None) -> np.ndarray:
    """Keep the ``bits`` (0..8) high bits of every value (``ImageOps.posterize``)."""
    return _apply_luts(np.ascontiguousarray(_region(img, roi)), _posterize_lut(int(bits)))


def solarize(img: np.ndarray, threshold: float, roi: Roi | None = None) -> np.ndarray:
    """Invert the values ``>= threshold`` (0..256; ``ImageOps.solarize``)."""
    return _apply_luts(np.ascontiguousarray(_region(img, roi)), _solarize_lut(threshold))


def equalize(img: np.ndarray, magnitude: float = 0.0, roi: Roi | None = None) -> np.ndarray:
    """Per-channel histogram equalization of the whole image (``ImageOps.equalize``); no magnitude."""
    return _apply_luts(np.ascontiguousarray(_region(img, roi)), _equalize_luts(_histograms(img)))


def autocontrast(img: np.ndarray, cutoff: float = 0.0, roi: Roi | None = None) -> np.ndarray:
    """Stretch each channel after cutting ``cutoff`` percent per end (``ImageOps.autocontrast``)."""
    return _apply_luts(np.ascontiguousarray(_region(img, roi)), _autocontrast_luts(_histograms(img), cutoff))


def mirror(img: np.ndarray, magnitude: float = 0.0, roi: Roi | None = None) -> np.ndarray:
    """Horizontal flip (``ImageOps.mirror``); ``magnitude`` is unused."""
    if roi is None:
        return np.ascontiguousarray(img[:, ::-1])
    top, left, h, w = roi
    width = img.shape[1]
    return np.ascontiguousarray(img[top : top + h, width - left - w : width - left][:, ::-1])


def _affine(coeffs: Callable[[float, int, int], tuple[float, ...]], doc: str) -> Kernel:
    """A warp kernel from Pillow's output->input affine coefficients as a function of the magnitude."""

    def kernel(img: np.ndarray, magnitude: float, roi: Roi | None = None) -> np.ndarray:
        return _warp(img, _pil_affine_to_cv2(coeffs(magnitude, img.shape[0], img.shape[1])), roi)

    kernel.__doc__ = doc
    return kernel


rotate = _affine(
    lambda degrees, height, width: _rotate_coeffs(degrees, height, width),
    "Rotate by ``magnitude`` degrees counter-clockwise about the centre, bilinear, fill 0 (``Image.rotate``).",
)
shear_x = _affine(
    lambda v, height, width: (1.0, v, 0.0, 0.0, 1.0, 0.0),
    "Shear along x by ``magnitude``: Pillow's affine (1, v, 0, 0, 1, 0), bilinear, fill 0.",
)
shear_y = _affine(
    lambda v, height, width: (1.0, 0.0, 0.0, v, 1.0, 0.0),
    "Shear along y by ``magnitude``: Pillow's affine (1, 0, 0, v, 1, 0), bilinear, fill 0.",
)
translate_x = _affine(
    lambda v, height, width: (1.0, 0.0, float(v), 0.0, 1.0, 0.0),
    "Translate by ``magnitude`` pixels (content moves left for v > 0): Pillow's affine (1, 0, v, 0, 1, 0).",
)
translate_y = _affine(
    lambda v, height, width: (1.0, 0.0, 0.0, 0.0, 1.0, float(v)),
    "Translate by ``magnitude`` pixels (content moves up for v > 0): Pillow's affine (1, 0, 0, 0, 1, v).",
)


def brightness(img: np.ndarray, factor: float, roi: Roi | None = None) -> np.ndarray:
    """Blend with black by ``factor`` (1 = identity; ``ImageEnhance.Brightness``)."""
    region = _region(img, roi)
    return _blend(np.zeros_like(region), region, factor)


def color(img: np.ndarray, factor: float, roi: Roi | None = None) -> np.ndarray:
    """Blend with the image's luma by ``factor`` (``ImageEnhance.Color``; 1 channel: unchanged)."""
    region = _region(img, roi)
    if img.shape[2] == 1:
        return np.array(region, copy=True)
    return _blend(gray(region), region, factor)


def contrast(img: np.ndarray, factor: float, roi: Roi | None = None) -> np.ndarray:
    """Blend with the whole image's mean luma by ``factor`` (``ImageEnhance.Contrast``)."""
    region = _region(img, roi)
    mean = int(gray(img).mean() + 0.5)
    return _blend(np.full_like(region, mean), region, factor)


def sharpness(img: np.ndarray, factor: float, roi: Roi | None = None) -> np.ndarray:
    """Blend with Pillow's 3 x 3 smoothing of the whole image by ``factor`` (``ImageEnhance.Sharpness``)."""
    out = _blend(_smooth(img), img, factor)
    return out if roi is None else np.ascontiguousarray(_region(out, roi))


# ----------------------------------------------------------------------------------------------
# Level -> magnitude rules (ipmix.md "Notation" and magnitude table)
# ----------------------------------------------------------------------------------------------
def int_param(level: Any, maxval: float) -> Any:
    """``int(level * maxval / 10)``.

    ``level`` is a number, or an array / tensor of levels (the batched transforms of
    ``timm_ext.batch`` evaluate the level rules of :data:`IMAGE_OPS` on float64 tensors): then the
    same product is truncated toward zero elementwise and an array of the same type comes back.
    """
    if isinstance(level, (int, float, np.number)):
        return int(level * maxval / 10)
    value = level * maxval / 10
    return value.trunc() if hasattr(value, "trunc") else np.trunc(value)


def float_param(level: Any, maxval: float) -> Any:
    """``level * maxval / 10`` (``level`` a number, or an array / tensor as for :func:`int_param`)."""
    if isinstance(level, (int, float, np.number)):
        return float(level) * maxval / 10
    return level * maxval / 10


class OpContext(NamedTuple):
    """What a level rule may depend on besides the level.

    Attributes:
        height, width: image size in pixels (translations scale with it).
        autocontrast_cutoff: IPMix's all-ops autocontrast takes a cutoff of ``10 - level`` percent;
            AugMix's / PixMix's has none (False).
    """

    height: int
    width: int
    autocontrast_cutoff: bool = False


#: A level rule: ``(level, context) -> magnitude`` before the random sign of signed ops.
LevelRule = Callable[[float, OpContext], float]


def _enhance_factor(level: float, context: OpContext) -> float:
    return float_param(level, 1.8) + 0.1


@dataclass(frozen=True)
class ImageOpSpec:
    """One row of :data:`IMAGE_OPS`.

    Attributes:
        kernel: ``kernel(img, magnitude, roi=None)``, pure (see :func:`apply_image_op`).
        magnitude: what the kernel's magnitude means and the values the level rule gives for
            ``level`` in [0.1, 10].
        level_to_arg: the level rule (``None``: the op has no magnitude; 0.0 is passed).
        signed: the magnitude's sign is flipped with probability 0.5 when sampled.
        pointwise: each output pixel depends on the same input pixel only, so applying the op to a
            crop gives the crop of the result.
        reference: the Pillow op of the reference scripts this kernel reproduces.
        pillow_exact: bit for bit equal to ``reference`` on uint8 RGB; False for rotate and shear,
            which are within 1 grey level wherever the bilinear footprint lies inside the image
            (OpenCV's ``warpAffine`` interpolates at 1/32 px in fixed point, Pillow in double
            precision) and follow each sampler's own edge rule at the image border.
        roi_exact: ``kernel(img, v, roi)`` equals the ROI's crop of ``kernel(img, v)`` bit for bit;
            False for rotate and shear (the shifted warp matrix may round a sampling position
            differently at 1/32 px: within 1 grey level).
    """

    kernel: Kernel
    magnitude: str
    level_to_arg: LevelRule | None = None
    signed: bool = False
    pointwise: bool = False
    reference: str = ""
    pillow_exact: bool = True
    roi_exact: bool = True


def _warp_spec(kernel: Kernel, magnitude: str, rule: LevelRule, reference: str, exact: bool) -> ImageOpSpec:
    """A signed geometric op; ``exact`` False for the bilinear warps with sub-pixel sampling."""
    return ImageOpSpec(
        kernel, magnitude, rule, True, reference=reference, pillow_exact=exact, roi_exact=exact
    )


def _lut_spec(kernel: Kernel, magnitude: str, rule: LevelRule, image_ops_call: str) -> ImageOpSpec:
    """A pointwise lookup-table op with a magnitude (Pillow ``ImageOps.<image_ops_call>``)."""
    return ImageOpSpec(kernel, magnitude, rule, pointwise=True, reference=f"ImageOps.{image_ops_call}")


def _enhance_spec(kernel: Kernel, enhancer: str, pointwise: bool) -> ImageOpSpec:
    """A Pillow ``ImageEnhance`` op: factor ``level * 1.8 / 10 + 0.1``."""
    magnitude = "enhance factor: level * 1.8 / 10 + 0.1, 0.118 .. 1.9 (1 = identity)"
    return ImageOpSpec(
        kernel,
        magnitude,
        _enhance_factor,
        pointwise=pointwise,
        reference=f"ImageEnhance.{enhancer}(img).enhance(factor)",
    )


_SHEAR = "shear factor: +-level * 0.3 / 10, 0.003 .. 0.3"
_AFFINE = "img.transform(size, Image.AFFINE, {}, Image.BILINEAR)"

#: Every image-level op: name -> :class:`ImageOpSpec` (one source of truth; see the module docstring).
IMAGE_OPS: dict[str, ImageOpSpec] = {
    "autocontrast": ImageOpSpec(
        autocontrast,
        "cutoff percent per end: 10 - level (IPMix all-ops; 0 for AugMix/PixMix), 9.9 .. 0",
        lambda level, c: 10 - float_param(level, 10) if c.autocontrast_cutoff else 0.0,
        reference="ImageOps.autocontrast(img, cutoff)",
    ),
    "equalize": ImageOpSpec(equalize, "none", reference="ImageOps.equalize(img)"),
    "posterize": _lut_spec(
        posterize,
        "bits kept: 4 - int(level * 4 / 10), 4 .. 0",
        lambda level, c: 4 - int_param(level, 4),
        "posterize(img, bits)",
    ),
    "rotate": _warp_spec(
        rotate,
        "degrees counter-clockwise: +-int(level * 30 / 10), 0 .. 30",
        lambda level, c: int_param(level, 30),
        "img.rotate(degrees, resample=Image.BILINEAR)",
        exact=False,
    ),
    "solarize": _lut_spec(
        solarize,
        "threshold: 256 - int(level * 256 / 10), 254 .. 0",
        lambda level, c: 256 - int_param(level, 256),
        "solarize(img, threshold)",
    ),
    "shear_x": _warp_spec(
        shear_x,
        _SHEAR,
        lambda level, c: float_param(level, 0.3),
        _AFFINE.format("(1, v, 0, 0, 1, 0)"),
        exact=False,
    ),
    "shear_y": _warp_spec(
        shear_y,
        _SHEAR,
        lambda level, c: float_param(level, 0.3),
        _AFFINE.format("(1, 0, 0, v, 1, 0)"),
        exact=False,
    ),
    "translate_x": _warp_spec(
        translate_x,
        "pixels: +-int(level * (width / 3) / 10), 0 .. width / 3",
        lambda level, c: int_param(level, c.width / 3),
        _AFFINE.format("(1, 0, v, 0, 1, 0)"),
        exact=True,
    ),
    "translate_y": _warp_spec(
        translate_y,
        "pixels: +-int(level * (height / 3) / 10), 0 .. height / 3",
        lambda level, c: int_param(level, c.height / 3),
        _AFFINE.format("(1, 0, 0, 0, 1, v)"),
        exact=True,
    ),
    "mirror": ImageOpSpec(mirror, "none", reference="ImageOps.mirror(img)"),
    "invert": ImageOpSpec(invert, "none", pointwise=True, reference="ImageOps.invert(img)"),
    "color": _enhance_spec(color, "Color", pointwise=True),
    "contrast": _enhance_spec(contrast, "Contrast", pointwise=False),
    "brightness": _enhance_spec(brightness, "Brightness", pointwise=True),
    "sharpness": _enhance_spec(sharpness, "Sharpness", pointwise=False),
}

# ----------------------------------------------------------------------------------------------
# The methods' op lists (names into IMAGE_OPS; ipmix.md "Image-level ops")
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


def apply_image_op(img: np.ndarray, name: str, magnitude: float = 0.0, roi: Roi | None = None) -> np.ndarray:
    """Apply the image-level op ``name`` of :data:`IMAGE_OPS` to a uint8 ``(H, W, C)`` image.

    Args:
        img: uint8 ``(H, W, C)``, any channel count. Not modified.
        name: a key of :data:`IMAGE_OPS`; its ``magnitude`` field says what ``magnitude`` means
            (``posterize`` bits kept, ``rotate`` degrees, ``solarize`` threshold, ``shear_*`` factor,
            ``translate_*`` pixels, ``autocontrast`` cutoff percent, enhance ops factor; unused by
            ``equalize``, ``mirror``, ``invert``).
        roi: ``(top, left, height, width)``: compute only this region of the result (the op still
            sees the whole image: histograms, means and geometry are those of the full image).

    Returns:
        uint8 ``(H, W, C)`` (or the ROI's size), C-contiguous.

    Example:
        >>> img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
        >>> apply_image_op(img, "posterize", 2)[..., 0].tolist()
        [[0, 0], [128, 128]]
    """
    spec = IMAGE_OPS.get(name)
    if spec is None:
        raise ValueError(f"unknown image op {name!r}; known ops: {sorted(IMAGE_OPS)}")
    return spec.kernel(img, magnitude, roi)


def level_to_magnitude(name: str, level: float, context: OpContext, negate: bool = False) -> float:
    """The magnitude of op ``name`` at ``level`` (``IMAGE_OPS[name].level_to_arg``, 0 without one).

    ``negate`` flips the sign of signed ops (rotate, shear, translate); it is ignored by the others.
    """
    spec = IMAGE_OPS[name]
    if spec.level_to_arg is None:
        return 0.0
    value = spec.level_to_arg(level, context)
    if spec.signed:
        return (-1.0 if negate else 1.0) * value
    return value
