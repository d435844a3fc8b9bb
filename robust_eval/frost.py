"""Frost layers for the -C ``frost`` corruption: procedural textures, or the reference's photographs.

The reference scripts (hendrycks/robustness ``make_cifar_c.py`` / ``make_imagenet_c.py``) blend the image
with a random crop of one of six frost photographs: ``np.random.randint(5)`` picks the photograph (so the
sixth is never used), ``cv2.imread`` loads it (resized by 0.2 with ``cv2.resize`` for CIFAR), a random
``size x size`` window is cut at ``randint(0, H - size)``, ``randint(0, W - size)`` and converted BGR -> RGB,
and the output is ``np.uint8(np.clip(img_w * x + frost_w * crop, 0, 255))`` on the 0..255 scale.

The photographs cannot be shipped, so by default five procedural textures stand in for them. Each is made
to have the mean colour and the grey-level spread of the photograph it replaces (numbers measured once,
:data:`FROST_LOOK`): a bright white or turquoise veil of ice, crystal needles branching at 60 degrees over a
cloudy frosting. Users who have the photographs pass their folder (``frost_images``) and get the
reference's frost exactly, given the same crop draw.
"""

from __future__ import annotations

import functools
import math
import os
from pathlib import Path

import cv2
import numpy as np

__all__ = ["FROST_FILES", "FROST_LOOK", "frost_crops", "frost_photos", "frost_textures"]

#: The reference's frost photographs, in its order (``ImageNet-C/create_c`` of hendrycks/robustness).
FROST_FILES: tuple[str, ...] = (
    "frost1.png",
    "frost2.png",
    "frost3.png",
    "frost4.jpg",
    "frost5.jpg",
    "frost6.jpg",
)
_DRAWN = 5  # the reference draws np.random.randint(5): only the first five photographs are ever used

#: Mean R, G, B (0..1) and standard deviation of the grey level of the five photographs the reference
#: draws from, measured once with ``cv2.imread(f)[..., ::-1] / 255`` on the full photographs (the 0.2x
#: CIFAR versions agree to 0.002). frost2.png and frost3.png are the same picture.
FROST_LOOK: tuple[tuple[float, float, float, float], ...] = (
    (0.305, 0.585, 0.650, 0.070),  # turquoise veil
    (0.787, 0.805, 0.841, 0.086),  # white, dense needles
    (0.787, 0.805, 0.841, 0.086),
    (0.540, 0.599, 0.648, 0.113),  # grey-blue, fine crystals
    (0.441, 0.484, 0.528, 0.169),  # grey ferns over dark gaps
)

#: Texture size (rows, cols) per preset, about the photographs' sizes after the reference's resize.
_TEXTURE_SIZE = {"cifar": (90, 134), "imagenet": (448, 672)}
_CIFAR_SHRINK = 5  # CIFAR textures are rendered 5x larger and shrunk by 0.2, as the reference photographs
_TEXTURE_SEED = 20190101  # fixed: the textures are the same in every run, like photographs


def _cloud(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Cloudy frosting: smoothed noise at three scales (sigma 24, 8, 2.5 px), zero mean, unit std."""
    out = np.zeros((h, w), np.float32)
    for sigma, gain in ((24.0, 1.0), (8.0, 0.6), (2.5, 0.35)):
        noise = rng.standard_normal((h, w)).astype(np.float32)
        k = 2 * math.ceil(3 * sigma) + 1
        layer = cv2.GaussianBlur(noise, (k, k), sigma, borderType=cv2.BORDER_REFLECT)
        out += gain * layer / max(float(layer.std()), 1e-6)
    return (out - out.mean()) / max(float(out.std()), 1e-6)


def _crystals(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Ice needles: random stems with side branches at +-60 degrees, anti-aliased lines, in [0, 1]."""
    canvas = np.zeros((h, w), np.float32)
    count = max(4, int(h * w / 700))
    stems = rng.uniform(0, 1, (count, 5))  # x, y, angle, length, brightness
    for sx, sy, sa, sl, sb in stems:
        x0, y0 = sx * w, sy * h
        angle = sa * 2 * math.pi
        length = 15 + 45 * sl
        level = 0.45 + 0.55 * sb
        dx, dy = math.cos(angle), math.sin(angle)
        p1 = (round(x0 * 16), round(y0 * 16))
        p2 = (round((x0 + dx * length) * 16), round((y0 + dy * length) * 16))
        cv2.line(canvas, p1, p2, level, 1, cv2.LINE_AA, shift=4)
        for t in np.linspace(0.2, 0.9, 5):
            bx, by = x0 + dx * length * t, y0 + dy * length * t
            blen = length * 0.35 * (1.1 - t)
            for side in (-1, 1):
                ba = angle + side * math.pi / 3
                q = (round((bx + math.cos(ba) * blen) * 16), round((by + math.sin(ba) * blen) * 16))
                cv2.line(canvas, (round(bx * 16), round(by * 16)), q, level * 0.8, 1, cv2.LINE_AA, shift=4)
    return np.clip(cv2.GaussianBlur(canvas, (3, 3), 0.6), 0, 1)


def _pattern(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Frost pattern (h, w) float32, zero mean and unit std: crystal needles over a cloudy frosting."""
    crystals = _crystals(rng, h, w)
    crystals = (crystals - crystals.mean()) / max(float(crystals.std()), 1e-6)
    return _standardize(0.6 * crystals + 0.55 * _cloud(rng, h, w))


def _standardize(z: np.ndarray) -> np.ndarray:
    return ((z - z.mean()) / max(float(z.std()), 1e-6)).astype(np.float32)


def _colourize(z: np.ndarray, look: tuple[float, float, float, float]) -> np.ndarray:
    """A standardized pattern -> (h, w, 3) in [0, 1] with the look's mean colour and grey-level std."""
    mean = np.array(look[:3], np.float32)
    gray = float(mean.mean())
    return np.clip(mean * (1 + (look[3] / gray) * z[..., None]), 0, 1).astype(np.float32)


@functools.lru_cache(maxsize=8)
def frost_textures(preset: str, min_h: int, min_w: int) -> np.ndarray:
    """The five procedural frost textures of ``preset`` (5, H, W, 3) float32 in [0, 1], read-only.

    Made once per process and cached (deterministic: a fixed seed, like a set of photographs). H, W are
    the preset's texture size, grown to at least ``min_h + 8``, ``min_w + 8`` for larger images.
    """
    th, tw = _TEXTURE_SIZE[preset]
    th, tw = max(th, min_h + 8), max(tw, min_w + 8)
    rng = np.random.default_rng(_TEXTURE_SEED)
    shrink = _CIFAR_SHRINK if preset == "cifar" else 1
    out = np.empty((_DRAWN, th, tw, 3), np.float32)
    for i, look in enumerate(FROST_LOOK):
        z = _pattern(th * shrink, tw * shrink, rng)
        if shrink > 1:  # shrunk like the reference's 0.2x photographs, spread restored afterwards
            z = _standardize(cv2.resize(z, (tw, th), interpolation=cv2.INTER_AREA))
        out[i] = _colourize(z, look)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=4)
def frost_photos(folder: str, preset: str) -> tuple[np.ndarray, ...]:
    """The reference's first five frost photographs from ``folder``, RGB uint8, as the preset uses them.

    CIFAR: resized by 0.2 with ``cv2.resize`` (bilinear), as ``make_cifar_c.py``; ImageNet: full size.

    Raises:
        FileNotFoundError: ``folder`` or one of ``frost1.png .. frost5.jpg`` is missing or unreadable.
    """
    base = Path(folder)
    missing = [f for f in FROST_FILES[:_DRAWN] if not (base / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"frost photographs not found in {os.fspath(base)!r}: missing {', '.join(missing)}; put the "
            f"reference's files ({', '.join(FROST_FILES)}, from hendrycks/robustness ImageNet-C/create_c) there "
            "or leave frost_images unset to use the procedural frost"
        )
    photos = []
    for name in FROST_FILES[:_DRAWN]:
        bgr = cv2.imread(os.fspath(base / name))
        if bgr is None:
            raise FileNotFoundError(f"cannot read frost photograph {os.fspath(base / name)!r} as an image")
        if preset == "cifar":
            bgr = cv2.resize(bgr, (0, 0), fx=0.2, fy=0.2)
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        rgb.setflags(write=False)
        photos.append(rgb)
    return tuple(photos)


def frost_crops(
    n: int, h: int, w: int, layers: tuple[np.ndarray, ...] | np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """``n`` >= 1 random (h, w) crops of the frost ``layers``, drawn as the reference draws them.

    Draw order: the layer index of every image (``integers(0, 5, n)``), then the top rows
    (``integers(0, H_k - h)``), then the left columns (``integers(0, W_k - w)``), upper bounds exclusive
    as ``np.random.randint``. Returns (n, h, w, 3) in the layers' dtype.

    Raises:
        ValueError: a layer is not larger than the image in both directions.
    """
    small = [i for i, layer in enumerate(layers) if layer.shape[0] <= h or layer.shape[1] <= w]
    if small:
        shape = layers[small[0]].shape
        raise ValueError(
            f"frost layer {small[0] + 1} is {shape[0]}x{shape[1]} px, not larger than the {h}x{w} image; "
            "use the procedural frost (no frost_images) or smaller images"
        )
    which = rng.integers(0, len(layers), n)
    heights = np.array([layers[k].shape[0] for k in which])
    widths = np.array([layers[k].shape[1] for k in which])
    oy = rng.integers(0, heights - h)
    ox = rng.integers(0, widths - w)
    return np.stack([layers[k][y : y + h, x : x + w] for k, y, x in zip(which, oy, ox, strict=True)])
