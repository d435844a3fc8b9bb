"""The -P perturbation sequences (Hendrycks & Dietterich 2019): each clean image becomes a short video.

:func:`make_sequence` turns an image or a batch into uint8 ``(N, T, H, W, 3)`` frames. Noise
perturbations (``NOISE_PERTURBATIONS``) have frame 0 clean and independent noise in every other
frame (flip probability compares each frame with frame 0); they come in difficulty levels 1..3
(stronger noise, published as ``<p>_2`` / ``<p>_3``). All other perturbations change smoothly from frame
to frame (compared frame to consecutive frame; their difficulty is a stride chosen at evaluation, so
only difficulty 1 is generated).

Frame i, CIFAR | ImageNet (robustness.md, "Generation"):

- gaussian_noise sigma .02 (d2 .04, d3 .06) | .03 (.05, .08); shot_noise lambda 700 (400, 200) |
  300 (120, 60); 31 frames, frame 0 clean;
- brightness: HSV value + (i-15)*1.5/100 | (i-15)*2/100, 31 frames;
- translate: horizontal shift (i-7) px, 16 frames | (i-20) px, 41 frames;
- rotate: (i-15) degrees, 31 frames; tilt: the image plane turned about its vertical centre line by
  0.75*(i-15) | (i-15) degrees, seen by a pinhole camera at distance = image width, 31 frames;
- scale: (2i+70)/100 | (2.5i+40)/100, 31 frames;
- zoom_blur: frame i is the running average of zooms 1 + 0.004 j for j = 0..i, 31 frames;
- motion_blur: radius 6, sigma 1.8, angle (i-20)*9 degrees, 21 frames | radius 10, sigma 3, angle
  (i-30)*4 degrees, 31 frames;
- snow: a snow layer (the severity-1 snow parameters of the corruption table) falls 1 | 3 px per frame,
  31 frames.

Validation perturbations (no published generation values; ours, documented here):
speckle_noise sigma .04 (.08, .12) | .06 (.10, .16), frame 0 clean; gaussian_blur sigma growing
linearly from 0 to 1 | 3 px over 31 frames; spatter: the severity-1 spatter (water) layer drifting
down 1 | 3 px per frame, 31 frames; shear: horizontal shear factor (i-15)*0.02, 31 frames.
Geometric frames fill the border by reflection (the source image is all there is).
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

from robust_eval.constants import NOISE_PERTURBATIONS, TEST_PERTURBATIONS, VALIDATION_PERTURBATIONS
from robust_eval.corruptions import (
    PARAMS as CORRUPTION_PARAMS,
)
from robust_eval.corruptions import (
    PRESETS,
    _gray,
    _hsv_batch,
    _motion_blur_batch,
    _rgb_batch,
    _stacked,
    _zoom,
    spatter_from_noise,
)

__all__ = ["ALL_PERTURBATIONS", "DIFFICULTIES", "FRAMES", "NOISE_LEVELS", "frame_count", "make_sequence"]

ALL_PERTURBATIONS: tuple[str, ...] = TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS
DIFFICULTIES: tuple[int, ...] = (1, 2, 3)

#: Noise strength per difficulty 1..3 (sigma for gaussian/speckle, lambda for shot).
NOISE_LEVELS: dict[str, dict[str, tuple[float, float, float]]] = {
    "cifar": {
        "gaussian_noise": (0.02, 0.04, 0.06),
        "shot_noise": (700, 400, 200),
        "speckle_noise": (0.04, 0.08, 0.12),
    },
    "imagenet": {
        "gaussian_noise": (0.03, 0.05, 0.08),
        "shot_noise": (300, 120, 60),
        "speckle_noise": (0.06, 0.10, 0.16),
    },
}

#: Frames per sequence.
FRAMES: dict[str, dict[str, int]] = {preset: dict.fromkeys(ALL_PERTURBATIONS, 31) for preset in PRESETS}
FRAMES["cifar"]["translate"] = 16
FRAMES["imagenet"]["translate"] = 41
FRAMES["cifar"]["motion_blur"] = 21

_SETTINGS: dict[str, dict[str, Any]] = {
    "cifar": {
        "brightness_step": 1.5 / 100,
        "translate_center": 7,
        "tilt_step": 0.75,
        "scale": (2.0, 70.0),
        "motion": (6, 1.8, 9.0, 20),
        "fall_px": 1,
        "blur_max": 1.0,
    },
    "imagenet": {
        "brightness_step": 2 / 100,
        "translate_center": 20,
        "tilt_step": 1.0,
        "scale": (2.5, 40.0),
        "motion": (10, 3.0, 4.0, 30),
        "fall_px": 3,
        "blur_max": 3.0,
    },
}


def frame_count(name: str, preset: str) -> int:
    """Number of frames T of a ``name`` sequence under ``preset``."""
    _check(name, preset, 1)
    return FRAMES[preset][name]


def _check(name: str, preset: str, difficulty: int) -> None:
    if name not in ALL_PERTURBATIONS:
        raise ValueError(f"unknown perturbation {name!r}; expected one of: {', '.join(ALL_PERTURBATIONS)}")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {PRESETS}")
    if name in NOISE_PERTURBATIONS:
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty of {name} must be 1, 2 or 3, got {difficulty!r}")
    elif difficulty != 1:
        raise ValueError(
            f"{name} has a single sequence (difficulty {difficulty} is a frame stride chosen at evaluation); "
            "generate it with difficulty=1"
        )


def _warp(x: np.ndarray, m: np.ndarray, perspective: bool = False) -> np.ndarray:
    _n, h, w, _ = x.shape
    if perspective:
        fn = lambda a: cv2.warpPerspective(  # noqa: E731
            a, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
        )
    else:
        fn = lambda a: cv2.warpAffine(a, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)  # noqa: E731
    return _stacked(fn, x)


def _tilt_homography(h: int, w: int, degrees: float) -> np.ndarray:
    """Homography of the image plane turned about its vertical centre line by ``degrees``.

    The plane is seen by a pinhole camera at distance = focal length = image width; the centre
    column stays fixed, one side recedes and shrinks, the other comes closer.
    """
    f = float(w)
    t = math.radians(degrees)
    half_w, half_h = (w - 1) / 2.0, (h - 1) / 2.0
    src = np.float32([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    depth = f + src[:, 0] * math.sin(t)
    dst = np.stack([f * src[:, 0] * math.cos(t) / depth, f * src[:, 1] / depth], axis=1)
    shift = np.float32([half_w, half_h])
    return cv2.getPerspectiveTransform(src + shift, (dst + shift).astype(np.float32))


def _frames(x: np.ndarray, name: str, preset: str, rng: np.random.Generator, difficulty: int) -> np.ndarray:
    """Float32 frames (N, T, H, W, 3) in [0, 1] (unclipped)."""
    n, h, w, _ = x.shape
    t_count = FRAMES[preset][name]
    s = _SETTINGS[preset]
    idx = np.arange(t_count)
    out = np.empty((n, t_count, h, w, 3), np.float32)
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    if name in NOISE_PERTURBATIONS:
        level = NOISE_LEVELS[preset][name][difficulty - 1]
        out[:, 0] = x
        rest = np.broadcast_to(x[:, None], (n, t_count - 1, h, w, 3))
        if name == "gaussian_noise":
            noise = rng.standard_normal(rest.shape, dtype=np.float32) * np.float32(level)
            out[:, 1:] = rest + noise
        elif name == "shot_noise":
            out[:, 1:] = rng.poisson(rest * level) / level
        else:
            noise = rng.standard_normal(rest.shape, dtype=np.float32) * np.float32(level)
            out[:, 1:] = rest + rest * noise
        return out
    if name == "brightness":
        hsv = _hsv_batch(x)
        for i in idx:
            shifted = hsv.copy()
            shifted[..., 2] = np.clip(shifted[..., 2] + (i - 15) * s["brightness_step"], 0, 1)
            out[:, i] = _rgb_batch(shifted)
    elif name == "translate":
        for i in idx:
            m = np.float32([[1, 0, i - s["translate_center"]], [0, 1, 0]])
            out[:, i] = _warp(x, m)
    elif name == "rotate":
        for i in idx:
            out[:, i] = _warp(x, cv2.getRotationMatrix2D((cx, cy), float(i - 15), 1.0))
    elif name == "tilt":
        for i in idx:
            out[:, i] = _warp(x, _tilt_homography(h, w, s["tilt_step"] * (i - 15)), perspective=True)
    elif name == "scale":
        a, b = s["scale"]
        for i in idx:
            out[:, i] = _warp(x, cv2.getRotationMatrix2D((cx, cy), 0.0, (a * i + b) / 100))
    elif name == "shear":
        for i in idx:
            k = 0.02 * (i - 15)
            out[:, i] = _warp(x, np.float32([[1, k, -k * cy], [0, 1, 0]]))
    elif name == "zoom_blur":
        acc = np.zeros_like(x)
        for i in idx:
            acc += x if i == 0 else _zoom(x, 1 + 0.004 * i)
            out[:, i] = acc / (i + 1)
    elif name == "motion_blur":
        radius, sigma, step, center = s["motion"]
        for i in idx:
            out[:, i] = _motion_blur_batch(x, radius, sigma, np.full(n, step * (i - center)))
    elif name == "gaussian_blur":
        for i in idx:
            sig = s["blur_max"] * i / (t_count - 1)
            if sig == 0:
                out[:, i] = x
            else:
                k = 2 * math.ceil(4 * sig) + 1
                out[:, i] = _stacked(lambda a, k=k, sig=sig: cv2.GaussianBlur(a, (k, k), sig), x)
    elif name == "snow":
        loc, scale, zoom, thresh, radius, sigma, keep = CORRUPTION_PARAMS[preset]["snow"][0]
        fall = s["fall_px"]
        tall = h + fall * (t_count - 1)
        layer = rng.normal(loc, scale, (n, tall, w, 1)).astype(np.float32)
        angles = rng.uniform(-135, -45, n)
        if zoom != 1:
            layer = _zoom(layer, zoom)
        layer[layer < thresh] = 0
        layer = _motion_blur_batch(np.clip(layer, 0, 1), radius, sigma, angles)
        base = keep * x + (1 - keep) * np.maximum(x, _gray(x)[..., None] * 1.5 + 0.5)
        for i in idx:
            top = fall * (t_count - 1 - i)
            win = layer[:, top : top + h]
            out[:, i] = base + win + win[:, ::-1, ::-1]
    elif name == "spatter":
        c = CORRUPTION_PARAMS[preset]["spatter"][0]
        fall = s["fall_px"]
        tall = h + fall * (t_count - 1)
        noise = rng.standard_normal((n, tall, w, 1), dtype=np.float32)
        for i in idx:
            top = fall * (t_count - 1 - i)
            out[:, i] = spatter_from_noise(x, np.ascontiguousarray(noise[:, top : top + h]), c)
    else:  # pragma: no cover - guarded by _check
        raise AssertionError(name)
    return out


def make_sequence(
    image_or_batch: np.ndarray,
    name: str,
    preset: str,
    rng: np.random.Generator,
    difficulty: int = 1,
) -> np.ndarray:
    """The -P sequence of every image.

    Args:
        image_or_batch: uint8 RGB (H, W, 3) or (N, H, W, 3); not modified.
        name: one of ``TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS``.
        preset: ``"cifar"`` (32 px settings) or ``"imagenet"`` (224 px settings).
        rng: source of all randomness (noise, snow and spatter layers).
        difficulty: 1..3 for the noise perturbations; 1 for the others.

    Returns:
        uint8 (N, T, H, W, 3) with T = :func:`frame_count` (N = 1 for a single image).

    Examples:
        >>> import numpy as np
        >>> seq = make_sequence(np.zeros((32, 32, 3), np.uint8), "rotate", "cifar", np.random.default_rng(0))
        >>> seq.shape
        (1, 31, 32, 32, 3)
    """
    _check(name, preset, difficulty)
    arr = np.asarray(image_or_batch)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(
            f"expected uint8 (H, W, 3) or (N, H, W, 3) images, got {arr.dtype} {np.shape(image_or_batch)}"
        )
    x = arr.astype(np.float32) / np.float32(255)
    frames = _frames(x, name, preset, rng, difficulty)
    return np.rint(np.clip(frames, 0, 1) * 255).astype(np.uint8)
