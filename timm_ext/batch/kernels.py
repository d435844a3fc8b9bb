"""Batched image-op and mixing kernels on ``[N, C, H, W]`` uint8 tensors, one magnitude per sample.

Each kernel is the batched twin of a per-image kernel of :mod:`albumentations_ipmix.ops` /
:mod:`albumentations_ipmix.functional` and takes the same magnitude (bits kept, degrees, threshold,
shear factor, pixels, cutoff percent, enhance factor) as a float64 tensor ``[N]``. Nothing here draws
random numbers: masks and magnitudes come from the callers in :mod:`timm_ext.batch.transforms`.

Integer arithmetic where the per-image kernel is integer, so the results are the same bytes:

- lookup-table ops (posterize, solarize, invert, equalize, autocontrast) build the same tables from
  per-sample histograms (``bincount``) and index them;
- geometric ops sample bilinearly in float32 as OpenCV 5's ``warpAffine`` does (taps outside the
  image take the fill value); they agree with the per-image kernel within one grey level;
- Pillow's 3 x 3 smoothing is ``round(sum / 13)`` on integers (13 is odd: no ties);
- enhance blends repeat the per-image float32 formula ``deg + f * (x - deg)`` and truncate;
- ``add`` / ``multiply`` index per-row float32 tables built in float64 as the per-image kernel does,
  then floor and wrap modulo 256 (or clip).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from albumentations_ipmix.functional import _MULTIPLY_FLOOR, _WRAP_LIMIT

__all__ = [
    "BATCH_KERNELS",
    "BatchKernel",
    "add_255",
    "affine",
    "apply_luts",
    "autocontrast",
    "autocontrast_luts",
    "blend_lut",
    "brightness",
    "color",
    "contrast",
    "equalize",
    "equalize_luts",
    "gray",
    "histograms",
    "invert",
    "mean_luma",
    "mirror",
    "multiply_255",
    "posterize",
    "quantize",
    "rotate_matrix",
    "select",
    "sharpness",
    "solarize",
    "window_index",
]

#: ``kernel(x, magnitude, fill) -> uint8``: ``x`` uint8 ``[N, C, H, W]``, ``magnitude`` float64 ``[N]``,
#: ``fill`` None (0) or a uint8 ``[C]`` value for pixels that geometric ops bring in from outside.
BatchKernel = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]


def _per_sample(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def select(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a`` where ``mask`` else ``b`` for uint8 ``a``, ``b`` (bool ``mask``, broadcast).

    A bitwise blend ``b ^ ((a ^ b) & -mask)``: the same bytes as ``torch.where``, several times
    faster on the CPU (``torch.where`` on uint8 is not vectorised there).
    """
    return b ^ ((a ^ b) & mask.to(torch.uint8).neg_())


# ----------------------------------------------------------------------------------------------
# Lookup-table ops
# ----------------------------------------------------------------------------------------------
def invert(x: torch.Tensor, magnitude: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """``255 - x``; no magnitude."""
    return 255 - x


def posterize(x: torch.Tensor, bits: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Keep the ``bits`` (0..8) high bits of every value."""
    keep = (8 - bits.to(torch.int64)).clamp(0, 8)
    mask = (~((1 << keep) - 1)) & 0xFF
    return x & _per_sample(mask.to(torch.uint8))


def solarize(x: torch.Tensor, threshold: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Invert the values ``>= threshold`` (0..256): ``x ^ 255`` where ``x > ceil(threshold) - 1``."""
    below = torch.ceil(threshold.to(torch.float64)) - 1.0  # x >= t  <=>  x > ceil(t) - 1 for integer x
    flip = x > _per_sample(below.clamp(0.0, 255.0).to(torch.uint8))
    flip |= _per_sample(below < 0)
    return x ^ flip.to(torch.uint8).neg_()


def mirror(x: torch.Tensor, magnitude: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Horizontal flip; no magnitude."""
    return x.flip(-1)


def histograms(x: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-channel 256-bin histograms ``[N, C, 256]`` (int64)."""
    n, c = x.shape[:2]
    offsets = torch.arange(0, n * c * 256, 256, dtype=torch.int32, device=x.device).view(n, c, 1)
    flat = x.reshape(n, c, -1).to(torch.int32).add_(offsets).view(-1)
    return torch.bincount(flat, minlength=n * c * 256).view(n, c, 256)


def apply_luts(x: torch.Tensor, luts: torch.Tensor) -> torch.Tensor:
    """Index per-sample, per-channel tables ``luts`` ``[N, C, 256]`` (or ``[N, 1, 256]``: one table
    for every channel) with ``x`` ``[N, C, H, W]``: one ``index_select`` on the flattened tables."""
    n, c = x.shape[:2]
    tables = luts.expand(n, c, luts.shape[-1]).contiguous()
    offsets = torch.arange(0, n * c * 256, 256, dtype=torch.int32, device=x.device).view(n, c, 1, 1)
    index = x.to(torch.int32).add_(offsets)
    return tables.view(-1).index_select(0, index.view(-1)).view(x.shape)


def _identity(device: torch.device) -> torch.Tensor:
    return torch.arange(256, dtype=torch.int64, device=device)


def equalize_luts(hist: torch.Tensor) -> torch.Tensor:
    """Pillow's equalization tables ``[N, C, 256]`` uint8 from histograms ``[N, C, 256]``."""
    levels = _identity(hist.device)
    last = torch.where(hist > 0, levels, -1).amax(-1, keepdim=True)
    step = (hist.sum(-1, keepdim=True) - hist.gather(-1, last.clamp_min(0))) // 255
    step = torch.where((hist > 0).sum(-1, keepdim=True) > 1, step, 0)
    running = hist.cumsum(-1) - hist
    luts = torch.minimum((step // 2 + running) // step.clamp_min(1), torch.tensor(255, device=hist.device))
    return torch.where(step == 0, levels, luts).to(torch.uint8)


def equalize(x: torch.Tensor, magnitude: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Pillow's per-channel histogram equalization; no magnitude."""
    return apply_luts(x, equalize_luts(histograms(x)))


def autocontrast_luts(hist: torch.Tensor, cutoff: torch.Tensor) -> torch.Tensor:
    """Pillow's ``autocontrast`` tables ``[N, C, 256]`` uint8 from histograms and ``cutoff`` percent ``[N]``."""
    levels = _identity(hist.device)
    total = hist.sum(-1, keepdim=True)
    cut = torch.div(total.to(torch.float64) * cutoff.view(-1, 1, 1), 100, rounding_mode="floor").to(
        torch.int64
    )
    prefix = hist.cumsum(-1)
    lo = (prefix > cut).to(torch.int8).argmax(-1, keepdim=True)
    suffix = torch.minimum(hist.flip(-1).cumsum(-1).flip(-1), total - cut)
    above = suffix > cut
    hi = torch.where(above, levels, 0).amax(-1, keepdim=True)
    span = (hi - lo).clamp_min(1).to(torch.float64)
    scale = torch.full_like(span, 255.0) / span  # a true division (``255.0 / t`` multiplies by 1 / t)
    stretched = (
        (levels.to(torch.float64) * scale - lo.to(torch.float64) * scale).to(torch.int64).clamp(0, 255)
    )
    keep = (total - 2 * cut <= 0) | (hi <= lo)
    return torch.where(keep, levels, stretched).to(torch.uint8)


def autocontrast(x: torch.Tensor, cutoff: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Pillow's ``autocontrast``: stretch each channel after cutting ``cutoff`` percent per end."""
    return apply_luts(x, autocontrast_luts(histograms(x), cutoff))


# ----------------------------------------------------------------------------------------------
# Geometric ops: one affine warp with OpenCV's fixed-point bilinear sampling
# ----------------------------------------------------------------------------------------------
def rotate_matrix(degrees: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pillow's ``rotate(degrees)`` (counter-clockwise about the centre) as output->input affine
    coefficients ``[N, 6]`` (a, b, c, d, e, f), float64."""
    angle = -torch.deg2rad(degrees.to(torch.float64))
    a, b = torch.round(torch.cos(angle), decimals=15), torch.round(torch.sin(angle), decimals=15)
    d, e = -b, a
    cx, cy = width / 2.0, height / 2.0
    return torch.stack([a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy], dim=1)


def _index_space(coeffs: torch.Tensor) -> torch.Tensor:
    """Pillow's pixel-centre affine ``[N, 6]`` -> index-space matrix ``[N, 2, 3]`` (see ``ops._pil_affine_to_cv2``)."""
    a, b, c, d, e, f = coeffs.unbind(1)
    rows = [a, b, c + 0.5 * (a + b - 1.0), d, e, f + 0.5 * (d + e - 1.0)]
    return torch.stack(rows, dim=1).view(-1, 2, 3)


def affine(x: torch.Tensor, coeffs: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Warp every sample by its Pillow affine ``coeffs[n] = (a, b, c, d, e, f)`` (output pixel centre
    -> input position), bilinear, taps outside the image = ``fill`` (default 0), rounded to nearest.

    Sampling positions are float32, as OpenCV 5's ``warpAffine`` computes them; the interpolation is
    ``grid_sample`` (zero padding per tap; a fill value is subtracted before and added after).
    """
    n, ch, h, w = x.shape
    dev = x.device
    m = _index_space(coeffs.to(torch.float64)).to(torch.float32)
    xs = torch.arange(w, dtype=torch.float32, device=dev).view(1, 1, w)
    ys = torch.arange(h, dtype=torch.float32, device=dev).view(1, h, 1)
    sx = m[:, 0, 0].view(n, 1, 1) * xs + m[:, 0, 1].view(n, 1, 1) * ys + m[:, 0, 2].view(n, 1, 1)
    sy = m[:, 1, 0].view(n, 1, 1) * xs + m[:, 1, 1].view(n, 1, 1) * ys + m[:, 1, 2].view(n, 1, 1)
    # align_corners=False: index i <-> normalized (2i + 1) / size - 1
    grid = torch.stack([(2.0 * sx + 1.0) / w - 1.0, (2.0 * sy + 1.0) / h - 1.0], dim=-1)
    values = x.to(torch.float32)
    offset = None if fill is None else fill.to(dev, torch.float32).view(1, ch, 1, 1)
    if offset is not None:
        values = values - offset
    out = torch.nn.functional.grid_sample(
        values, grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    if offset is not None:
        out += offset
    return out.round_().clamp_(0, 255).to(torch.uint8)


def _shear_x(v: torch.Tensor, h: int, w: int) -> torch.Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    return torch.stack([one, v, zero, zero, one, zero], dim=1)


def _shear_y(v: torch.Tensor, h: int, w: int) -> torch.Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    return torch.stack([one, zero, zero, v, one, zero], dim=1)


def _translate_x(v: torch.Tensor, h: int, w: int) -> torch.Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    return torch.stack([one, zero, v, zero, one, zero], dim=1)


def _translate_y(v: torch.Tensor, h: int, w: int) -> torch.Tensor:
    one, zero = torch.ones_like(v), torch.zeros_like(v)
    return torch.stack([one, zero, zero, zero, one, v], dim=1)


def _warp_kernel(coeffs: Callable[[torch.Tensor, int, int], torch.Tensor]) -> BatchKernel:
    def kernel(x: torch.Tensor, magnitude: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
        return affine(x, coeffs(magnitude.to(torch.float64), x.shape[2], x.shape[3]), fill)

    return kernel


# ----------------------------------------------------------------------------------------------
# Enhance ops (Pillow's ImageEnhance, float32 blend then truncation, as the per-image kernels)
# ----------------------------------------------------------------------------------------------
def gray(x: torch.Tensor) -> torch.Tensor:
    """Luma ``[N, 1, H, W]`` uint8 (Pillow's ``convert("L")`` for RGB, the rounded channel mean otherwise)."""
    if x.shape[1] == 3:
        r, g, b = (x[:, i : i + 1].to(torch.int32) for i in range(3))
        return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).to(torch.uint8)
    return torch.round(x.to(torch.float64).mean(1, keepdim=True)).to(torch.uint8)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    deg = degenerate.to(torch.float32)
    out = deg + _per_sample(factor.to(torch.float32)) * (x.to(torch.float32) - deg)
    return out.clamp(0.0, 255.0).to(torch.uint8)


def blend_lut(x: torch.Tensor, degenerate: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``_blend`` against a per-sample constant ``degenerate`` ``[N]``: the same float32 formula,
    evaluated once per grey level into a table ``[N, 1, 256]`` and looked up (the same bytes)."""
    levels = torch.arange(256, dtype=torch.float32, device=x.device).view(1, 1, 1, 256)
    deg = _per_sample(degenerate.to(torch.float32))
    table = _blend(deg.expand(-1, 1, 1, 256), levels, factor)
    return apply_luts(x, table.view(-1, 1, 256))


def brightness(x: torch.Tensor, factor: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Blend with black by ``factor`` (1 = identity)."""
    return blend_lut(x, torch.zeros(x.shape[0], device=x.device), factor)


def color(x: torch.Tensor, factor: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Blend with the luma by ``factor`` (1 channel: unchanged)."""
    if x.shape[1] == 1:
        return x.clone()
    return _blend(gray(x), x, factor)


def mean_luma(x: torch.Tensor) -> torch.Tensor:
    """Each sample's mean luma, rounded half up, float64 ``[N]`` (Pillow's ``Contrast`` degenerate)."""
    luma = gray(x)
    return torch.floor(luma.flatten(1).sum(1).to(torch.float64) / luma[0].numel() + 0.5)


def contrast(x: torch.Tensor, factor: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Blend with the sample's mean luma (rounded half up) by ``factor``."""
    return blend_lut(x, mean_luma(x), factor)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """Pillow's ``SMOOTH`` (3 x 3, centre 5, others 1, / 13), rounded; the one-pixel border kept."""
    h, w = x.shape[2:]
    if h < 3 or w < 3:
        return x.clone()
    v = x.to(torch.int16)  # 13 * 255 * 2 + 13 < 2 ** 15
    total = 4 * v[:, :, 1:-1, 1:-1]  # the centre's weight 5 = 4 + its tap below
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            total += v[:, :, dy : h - 2 + dy, dx : w - 2 + dx]
    out = x.clone()
    out[:, :, 1:-1, 1:-1] = total.mul_(2).add_(13).div_(26, rounding_mode="floor").to(torch.uint8)
    return out


def sharpness(x: torch.Tensor, factor: torch.Tensor, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Blend with Pillow's smoothing of the sample by ``factor``."""
    return _blend(_smooth(x), x, factor)


#: Every image-level op of :data:`albumentations_ipmix.ops.IMAGE_OPS` -> its batched kernel.
BATCH_KERNELS: dict[str, BatchKernel] = {
    "autocontrast": autocontrast,
    "equalize": equalize,
    "posterize": posterize,
    "rotate": _warp_kernel(lambda v, h, w: rotate_matrix(v, h, w)),
    "solarize": solarize,
    "shear_x": _warp_kernel(_shear_x),
    "shear_y": _warp_kernel(_shear_y),
    "translate_x": _warp_kernel(_translate_x),
    "translate_y": _warp_kernel(_translate_y),
    "mirror": mirror,
    "invert": invert,
    "color": color,
    "contrast": contrast,
    "brightness": brightness,
    "sharpness": sharpness,
}


# ----------------------------------------------------------------------------------------------
# Mixing ops on uint8 (IPMix's patch mixing): per-row tables, then floor and wrap / clip
# ----------------------------------------------------------------------------------------------
def _levels(device: torch.device) -> torch.Tensor:
    return torch.arange(256, dtype=torch.float64, device=device) / 255.0


def _lookup(tables: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``tables[n][x[n]]``: per-row float32 tables ``[N, 256]``, ``x`` uint8 ``[N, C, H, W]``."""
    return apply_luts(x, tables.view(x.shape[0], 1, 256))


def window_index(
    rows: torch.Tensor,
    top: torch.Tensor,
    left: torch.Tensor,
    shape: tuple[int, int, int],
    size: tuple[int, int],
) -> torch.Tensor:
    """Flat indices ``[G, C, sh, sw]`` (int64) of the ``size = (sh, sw)`` windows at ``(top, left)`` of
    rows ``rows`` of a contiguous ``[N, C, H, W]`` tensor (``shape = (C, H, W)``); windows must fit."""
    c, h, w = shape
    dev = rows.device
    offsets = (
        torch.arange(c, device=dev).view(c, 1, 1) * (h * w)
        + torch.arange(size[0], device=dev).view(1, -1, 1) * w
        + torch.arange(size[1], device=dev).view(1, 1, -1)
    )
    return (rows * (c * h * w) + top * w + left).view(-1, 1, 1, 1) + offsets


def add_255(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``255 * add(x / 255, y / 255)`` in float32 (the per-image ``_add_255``), per-row ``a``, ``b`` float64."""
    levels = _levels(x.device)
    a, b = a.view(-1, 1), b.view(-1, 1)
    lut_x = (a * levels * 255.0).to(torch.float32)
    lut_y = (b * levels * 255.0 + 127.5 * (1.0 - a - b)).to(torch.float32)
    return _lookup(lut_x, x) + _lookup(lut_y, y)


def multiply_255(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``255 * multiply(x / 255, y / 255)`` in float32 (the per-image ``_multiply_255``)."""
    levels = _levels(x.device)
    a, b = a.view(-1, 1), b.view(-1, 1)
    lut_x = (127.5 * torch.pow(2.0 * levels, a)).to(torch.float32)
    lut_y = torch.pow(torch.clamp_min(2.0 * levels, _MULTIPLY_FLOOR), b).clamp_max(3.0e38).to(torch.float32)
    return _lookup(lut_x, x) * _lookup(lut_y, y)


def quantize(v255: torch.Tensor, overflow: str) -> torch.Tensor:
    """``floor(v)`` to uint8, values outside [0, 255] wrapped modulo 256 (``"wrap"``) or clipped."""
    if overflow == "clip":
        return v255.clamp(0.0, 255.0).to(torch.uint8)
    v = torch.floor(v255.clamp(-_WRAP_LIMIT, _WRAP_LIMIT)).to(torch.int64)
    return (v & 0xFF).to(torch.uint8)


def add_float(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PixMix's ``add`` on float32 images in [0, 1], per-row weights."""
    a, b = _per_sample(a.to(torch.float32)), _per_sample(b.to(torch.float32))
    return (a * (2.0 * x - 1.0) + b * (2.0 * y - 1.0) + 1.0) / 2.0


def multiply_float(x: torch.Tensor, y: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PixMix's ``multiply`` on float32 images in [0, 1], per-row weights."""
    a, b = _per_sample(a.to(torch.float32)), _per_sample(b.to(torch.float32))
    floor = torch.tensor(_MULTIPLY_FLOOR, dtype=torch.float32, device=x.device)
    return torch.pow(2.0 * x, a) * torch.pow(torch.maximum(2.0 * y, floor), b) * 0.5
