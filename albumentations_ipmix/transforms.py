"""IPMix and PixMix as Albumentations ``ImageOnlyTransform`` s: schema, parameter sampling, docs.

The kernels live in :mod:`albumentations_ipmix.functional`; every random number is drawn here, in
``get_params_dependent_on_data``, from the transform's own generators (``self.random_generator``),
so ``apply`` is a pure function of the sampled parameters.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema, ImageOnlyTransform
from pydantic import Field

from albumentations_ipmix import functional as F
from albumentations_ipmix.ops import OpContext, level_to_magnitude
from albumentations_ipmix.sources import ArraySource, MixingSource, MixingSourceError, as_source

__all__ = ["IPMix", "PixMix", "sample_ab", "sample_image_op"]

MixingOpName = Literal["add", "multiply", "random_pixels", "random_elements"]
PatchShapeName = Literal["square", "scar"]
SUPPORTED_DTYPES = (np.uint8, np.float32)
#: What ``fractals=`` accepts (see :func:`albumentations_ipmix.sources.as_source`).
FractalsSpec = str | Path | np.ndarray | Sequence[np.ndarray] | MixingSource | dict[str, Any] | None


# ----------------------------------------------------------------------------------------------
# Sampling helpers (ipmix.md "Notation"; the magnitude rules are the level rules of ops.IMAGE_OPS)
# ----------------------------------------------------------------------------------------------
def sample_image_op(
    rng: np.random.Generator,
    ops: Sequence[str],
    severity: float,
    height: int,
    width: int,
    autocontrast_cutoff: bool = False,
) -> F.ImageOp:
    """Draw one image op from ``ops`` and its magnitude at ``level = U(0.1, severity)``.

    The magnitude is the op's level rule in :data:`albumentations_ipmix.ops.IMAGE_OPS`, its sign
    flipped with probability 0.5 for signed ops. ``autocontrast_cutoff`` selects IPMix's all-ops
    autocontrast (cutoff ``10 - level`` percent); otherwise autocontrast has no magnitude
    (AugMix/PixMix).
    """
    return _draw_image_op(rng, ops, severity, OpContext(height, width, autocontrast_cutoff))


def _draw_image_op(
    rng: np.random.Generator, ops: Sequence[str], severity: float, context: OpContext
) -> F.ImageOp:
    """:func:`sample_image_op` with the context built once per image (the transforms' hot path)."""
    u_op, u_level, u_sign = rng.random(3)  # one call: Generator methods cost microseconds each
    name = ops[int(u_op * len(ops))]
    level = 0.1 + (severity - 0.1) * float(u_level)
    return F.ImageOp(name, level_to_magnitude(name, level, context, negate=u_sign < 0.5))


def sample_ab(rng: np.random.Generator, beta: float) -> tuple[float, float]:
    """``get_ab(beta)`` of ipmix.md: (Beta(beta,1), Beta(1,beta)) or (1 + Beta(1,beta), -Beta(1,beta))."""
    if rng.random() < 0.5:
        return float(rng.beta(beta, 1.0)), float(rng.beta(1.0, beta))
    return 1.0 + float(rng.beta(1.0, beta)), -float(rng.beta(1.0, beta))


def _image_geometry(shape: Sequence[int]) -> tuple[int, int, int]:
    height, width = int(shape[0]), int(shape[1])
    channels = int(shape[2]) if len(shape) > 2 else 1
    return height, width, channels


def _check_image(img: np.ndarray, name: str) -> None:
    if img.dtype not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name} got an image of dtype {img.dtype}; supported dtypes are uint8 [0, 255] and "
            "float32 [0, 1] (convert with img.astype(np.float32) / 255 or A.ToFloat first)"
        )
    if img.dtype == np.float32 and not np.isfinite(img).all():
        raise ValueError(
            f"{name} got a float32 image containing NaN or infinite values; expected values in [0, 1] "
            "(clean the input first, e.g. np.nan_to_num(img, nan=0, posinf=1, neginf=0))"
        )


def _describe_source(spec: Any, source: MixingSource | None) -> Any:
    """What ``self.fractals`` holds: a JSON-native description (``str`` / ``dict``) when the source has
    one - that is what ``A.to_dict`` / ``A.save`` write - else the source object itself (pickles, and
    keeps in-memory pictures in one place)."""
    if spec is None or isinstance(spec, (str, dict)):
        return spec
    if isinstance(spec, os.PathLike):
        return str(spec)
    assert source is not None
    try:
        return source.to_config()
    except TypeError:
        return source


# ----------------------------------------------------------------------------------------------
# Shared base: mixing-source handling, dtype contract, per-process reseeding
# ----------------------------------------------------------------------------------------------
class _MixingTransform(ImageOnlyTransform):
    """Common machinery of IPMix and PixMix (not a public transform)."""

    def _init_source(self, fractals: Any, metadata_key: str) -> None:
        self.metadata_key = metadata_key
        self._source: MixingSource | None = None
        if fractals is not None:
            self._source = as_source(fractals)
        self.fractals = _describe_source(fractals, self._source)
        self._owner_pid = os.getpid()

    # -- source --------------------------------------------------------------------------------
    @property
    def source(self) -> MixingSource:
        """The mixing source (built on first use for the procedural default)."""
        if self._source is None:
            self._source = as_source(None)
        return self._source

    def _mixing_picture(self, data: dict[str, Any], height: int, width: int, channels: int) -> np.ndarray:
        """Draw a mixing picture, fit it (resize + random crop) and match the channel count."""
        rng = self.random_generator
        pictures = data.get(self.metadata_key)
        if pictures is not None:
            if isinstance(pictures, np.ndarray) and pictures.ndim in (2, 3) and pictures.dtype != object:
                pictures = [pictures]
            if len(pictures) == 0:
                raise MixingSourceError(f"{self.metadata_key!r} holds no pictures; pass a non-empty list")
            source: MixingSource = ArraySource([pictures[int(rng.integers(len(pictures)))]], cache_size=0)
            fitted = source.fitted(0, height, width)
        else:
            try:
                source = self.source
            except MixingSourceError as exc:
                raise MixingSourceError(
                    f"{type(self).__name__}: {exc} (key {self.metadata_key!r} for per-call pictures)"
                ) from None
            fitted = source.fitted(int(rng.integers(len(source))), height, width)
        top = int(rng.integers(fitted.shape[0] - height + 1))
        left = int(rng.integers(fitted.shape[1] - width + 1))
        crop = fitted[top : top + height, left : left + width]
        return np.ascontiguousarray(F.match_channels(crop, channels))

    # -- seeding ---------------------------------------------------------------------------------
    def set_random_seed(self, seed: int | None) -> None:
        super().set_random_seed(seed)
        self._owner_pid = os.getpid()

    def set_random_state(self, random_generator: np.random.Generator, py_random: random.Random) -> None:
        super().set_random_state(random_generator, py_random)
        self._owner_pid = os.getpid()

    def _reseed_if_new_process(self) -> None:
        """Give this transform its own random stream when it runs in a new process.

        Albumentations 2.0.8 copies one random state into every DataLoader worker, so all workers
        would draw identical augmentations. When the process id changes, the generators are
        reseeded from (the transform's seed, the worker's torch seed - or the process id when
        torch is not in use): distinct per worker, reproducible when torch is seeded.
        """
        pid = os.getpid()
        if pid == getattr(self, "_owner_pid", pid):
            return
        torch = sys.modules.get("torch")
        worker_entropy = int(torch.initial_seed()) if torch is not None else pid
        base = getattr(self, "seed", None)
        entropy = [worker_entropy] if base is None else [int(base), worker_entropy]
        sequence = np.random.SeedSequence(entropy)
        self.random_generator = np.random.default_rng(sequence)
        self.py_random = random.Random(int(sequence.generate_state(1, dtype=np.uint64)[0]))
        self._owner_pid = pid

    def get_params(self) -> dict[str, Any]:
        self._reseed_if_new_process()
        return {}

    # -- serialization -----------------------------------------------------------------------------
    def to_dict_private(self) -> dict[str, Any]:
        if not (self.fractals is None or isinstance(self.fractals, (str, dict))):
            raise TypeError(
                f"{type(self).__name__} with an in-memory mixing source cannot be serialized to a dict/JSON/YAML; "
                "save the pictures to a folder and pass fractals='path/to/folder' (pickling works as is)"
            )
        return super().to_dict_private()


# ----------------------------------------------------------------------------------------------
# IPMix
# ----------------------------------------------------------------------------------------------
class IPMix(_MixingTransform):
    """IPMix: label-preserving image-, patch- and pixel-level mixing with fractals (Huang et al., 2023).

    ``width`` chains each start from the image and apply ``n ~ U{0..depth}`` steps at one level,
    chosen per chain: *image level* (a random image op such as rotate or equalize) or
    *patch/pixel level* (a random box of a random size from ``patch_sizes``, square or "scar"
    shaped, mixed with the same box of a partner by one of the mixing ops; the partner is a
    fractal with probability ``fractal_prob``, else the original image with one random op). The
    chains are averaged with Dirichlet(alpha) weights and blended with the original with
    ``m ~ Beta(alpha, alpha)``. Put ``A.Normalize`` after this transform.

    Args:
        fractals: mixing pictures: a folder (str/Path; recursive; ImageFolder layouts work), an
            array ``(N, H, W[, C])`` or list of arrays, a source config dict, a ``MixingSource``,
            or None for procedural fractals. Pictures passed per call under ``metadata_key``
            take precedence.
        width: number of chains k, >= 1. Default 3.
        depth: maximum chain depth t, >= 0 (each chain's depth is uniform on 0..t). Default 3.
        alpha: Dirichlet/Beta concentration, > 0. Default 1.
        beta: mixing-op sharpness of ``get_ab``, > 0. Default 3 (CIFAR); the paper uses 4 on ImageNet.
        severity: image-op severity in [0.1, 10] (``level ~ U(0.1, severity)``). Default 3
            (CIFAR); the paper uses 1 on ImageNet.
        all_ops: use the 15-op list (adds autocontrast, color, contrast, brightness, sharpness).
        mixing_ops: subset of ("add", "multiply", "random_pixels", "random_elements").
        patch_shapes: subset of ("square", "scar").
        patch_sizes: patch sides in pixels (>= 2); default: powers of two from 4 to
            min(64, side/2) plus the full side (32 px -> 4, 8, 16, 32; 224 px -> 4, ..., 64, 224).
        fractal_prob: probability in [0, 1] that a patch partner is the fractal rather than the
            original image with one random op. Default 0.5 (the paper's Algorithm 1).
        overflow: "wrap" (values outside [0, 1] wrap modulo 256, as the reference code) or "clip".
        metadata_key: data key for per-call mixing pictures (a list of arrays).
        p: probability of applying the transform. Default 1 (the paper applies IPMix to every
            training image; the Beta blend already includes near-identity outputs).

    Targets:
        image, images

    Image types:
        uint8, float32

    Number of channels:
        Any (mixing pictures are converted: gray for 1 channel, RGB repeated cyclically for others)

    Examples:
        >>> import numpy as np
        >>> import albumentations as A
        >>> from albumentations_ipmix import IPMix
        >>> pictures = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
        >>> pipeline = A.Compose([A.HorizontalFlip(), IPMix(fractals=pictures)], seed=137)
        >>> image = np.zeros((32, 32, 3), dtype=np.uint8)
        >>> pipeline(image=image)["image"].shape
        (32, 32, 3)

    References:
        - Huang et al., "IPMix: Label-Preserving Data Augmentation Method for Training Robust
          Classifiers", NeurIPS 2023, https://arxiv.org/abs/2310.04780
        - Hendrycks et al., "PixMix: Dreamlike Pictures Comprehensively Improve Safety Measures",
          CVPR 2022 (the mixing ops).
    """

    class InitSchema(BaseTransformInitSchema):
        fractals: Any
        width: Annotated[int, Field(ge=1, le=64)]
        depth: Annotated[int, Field(ge=0, le=64)]
        alpha: Annotated[float, Field(gt=0)]
        beta: Annotated[float, Field(gt=0)]
        severity: Annotated[float, Field(ge=0.1, le=10)]
        all_ops: bool
        mixing_ops: Annotated[list[MixingOpName], Field(min_length=1)]
        patch_shapes: Annotated[list[PatchShapeName], Field(min_length=1)]
        patch_sizes: Annotated[list[Annotated[int, Field(ge=2)]], Field(min_length=1)] | None
        fractal_prob: Annotated[float, Field(ge=0, le=1)]
        overflow: Literal["wrap", "clip"]
        metadata_key: str

    def __init__(
        self,
        fractals: FractalsSpec = None,
        width: int = 3,
        depth: int = 3,
        alpha: float = 1.0,
        beta: float = 3.0,
        severity: float = 3.0,
        all_ops: bool = False,
        mixing_ops: Sequence[MixingOpName] = F.MIXING_OPS,
        patch_shapes: Sequence[PatchShapeName] = F.PATCH_SHAPES,
        patch_sizes: Sequence[int] | None = None,
        fractal_prob: float = 0.5,
        overflow: Literal["wrap", "clip"] = "wrap",
        metadata_key: str = "ipmix_metadata",
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.width = width
        self.depth = depth
        self.alpha = alpha
        self.beta = beta
        self.severity = severity
        self.all_ops = all_ops
        self.mixing_ops = list(mixing_ops)
        self.patch_shapes = list(patch_shapes)
        self.patch_sizes = None if patch_sizes is None else [int(s) for s in patch_sizes]
        self.fractal_prob = fractal_prob
        self.overflow = overflow
        self._init_source(fractals, metadata_key)

    @property
    def image_ops(self) -> tuple[str, ...]:
        """The image-level ops in use."""
        return F.IPMIX_ALL_OPS if self.all_ops else F.IPMIX_OPS

    def _patch_step(self, context: OpContext, channels: int, sizes: Sequence[int]) -> F.PatchStep:
        height, width = context.height, context.width
        rng = self.random_generator
        u_size, u_top, u_left, u_shape, u_h, u_w, u_op, u_partner = rng.random(8)
        s = int(sizes[int(u_size * len(sizes))])
        top = int(u_top * (max(height - s, 0) + 1))
        left = int(u_left * (max(width - s, 0) + 1))
        if self.patch_shapes[int(u_shape * len(self.patch_shapes))] == "square":
            box_h = box_w = s
        else:  # a "scar": sides uniform on {2..s}
            box_h, box_w = 2 + int(u_h * (s - 1)), 2 + int(u_w * (s - 1))
        box = (top, left, min(box_h, height - top), min(box_w, width - left))
        op = self.mixing_ops[int(u_op * len(self.mixing_ops))]
        a = b = 0.0
        mask = None
        mask_kind = F.MIXING_OP_TABLE[op].mask
        if mask_kind is None:
            a, b = sample_ab(rng, self.beta)
        else:
            keep = rng.random()
            mask_channels = 1 if mask_kind == "pixel" else channels
            mask = rng.random((box[2], box[3], mask_channels), dtype=np.float32) < keep
        partner = None
        if u_partner >= self.fractal_prob:
            partner = _draw_image_op(rng, self.image_ops, self.severity, context)
        return F.PatchStep(box, op, a, b, mask, partner)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width, channels = _image_geometry(params["shape"])
        rng = self.random_generator
        sizes = self.patch_sizes or F.default_patch_sizes(height, width)
        context = OpContext(height, width, autocontrast_cutoff=self.all_ops)
        weights = rng.dirichlet([self.alpha] * self.width)
        m = float(rng.beta(self.alpha, self.alpha))
        chains: list[list[F.ImageOp | F.PatchStep]] = []
        for u_level, u_depth in rng.random((self.width, 2)):
            n = int(u_depth * (self.depth + 1))  # chain depth uniform on 0..depth
            if u_level < 0.5:  # image level, else patch/pixel level
                ops = self.image_ops
                chains.append([_draw_image_op(rng, ops, self.severity, context) for _ in range(n)])
            else:
                chains.append([self._patch_step(context, channels, sizes) for _ in range(n)])
        needs_fractal = any(isinstance(s, F.PatchStep) and s.partner is None for c in chains for s in c)
        fractal = self._mixing_picture(data, height, width, channels) if needs_fractal else None
        return {"chains": chains, "weights": [float(w) for w in weights], "m": m, "fractal": fractal}

    def apply(
        self,
        img: np.ndarray,
        chains: list[list[F.ImageOp | F.PatchStep]],
        weights: list[float],
        m: float,
        fractal: np.ndarray | None,
        **params: Any,
    ) -> np.ndarray:
        _check_image(img, "IPMix")
        squeeze = img.ndim == 2
        image = img[:, :, None] if squeeze else img
        if fractal is not None and fractal.shape != image.shape:
            raise ValueError(
                f"IPMix: every image of a call must have the same shape; got {image.shape} and a mixing "
                f"picture fitted to {fractal.shape}"
            )
        out = F.ipmix(image, fractal, chains, weights, m, self.overflow)
        return out[:, :, 0] if squeeze else out


# ----------------------------------------------------------------------------------------------
# PixMix
# ----------------------------------------------------------------------------------------------
class PixMix(_MixingTransform):
    """PixMix: mix the image with fractals and with augmented copies of itself (Hendrycks et al., 2022).

    With probability 0.5 the image first gets one random image op. Then, ``U{0..k}`` times, it is
    mixed (add or multiply, chosen at random, weights from ``get_ab(beta)``) with a mixing
    picture or - with probability 0.5 - the original image with one random op, and clipped to
    [0, 1]. Put ``A.Normalize`` after this transform.

    Args:
        fractals: mixing pictures, as for :class:`IPMix` (None: procedural fractals).
        k: maximum number of mixing rounds, >= 0. Default 4.
        beta: mixing-op sharpness, > 0. Default 3 (CIFAR); the paper uses 4 on ImageNet.
        severity: image-op severity in [0.1, 10]. Default 3 (CIFAR); 1 on ImageNet.
        all_ops: use the 13-op list (adds color, contrast, brightness, sharpness).
        metadata_key: data key for per-call mixing pictures.
        p: probability of applying the transform. Default 1.

    Targets:
        image, images

    Image types:
        uint8, float32

    Number of channels:
        Any

    Examples:
        >>> import numpy as np
        >>> import albumentations as A
        >>> from albumentations_ipmix import PixMix
        >>> pictures = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
        >>> out = A.Compose([PixMix(fractals=pictures)], seed=0)(image=np.zeros((32, 32, 3), np.uint8))
        >>> out["image"].dtype
        dtype('uint8')

    References:
        - Hendrycks et al., "PixMix: Dreamlike Pictures Comprehensively Improve Safety Measures",
          CVPR 2022, https://arxiv.org/abs/2112.05135
    """

    class InitSchema(BaseTransformInitSchema):
        fractals: Any
        k: Annotated[int, Field(ge=0, le=64)]
        beta: Annotated[float, Field(gt=0)]
        severity: Annotated[float, Field(ge=0.1, le=10)]
        all_ops: bool
        metadata_key: str

    def __init__(
        self,
        fractals: FractalsSpec = None,
        k: int = 4,
        beta: float = 3.0,
        severity: float = 3.0,
        all_ops: bool = False,
        metadata_key: str = "pixmix_metadata",
        p: float = 1.0,
    ) -> None:
        super().__init__(p=p)
        self.k = k
        self.beta = beta
        self.severity = severity
        self.all_ops = all_ops
        self._init_source(fractals, metadata_key)

    @property
    def image_ops(self) -> tuple[str, ...]:
        """The image-level ops in use."""
        return F.PIXMIX_ALL_OPS if self.all_ops else F.PIXMIX_OPS

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        height, width, channels = _image_geometry(params["shape"])
        rng = self.random_generator
        ops = self.image_ops
        context = OpContext(height, width)
        first = _draw_image_op(rng, ops, self.severity, context) if rng.random() < 0.5 else None
        steps = []
        for _ in range(int(rng.integers(self.k + 1))):
            partner = _draw_image_op(rng, ops, self.severity, context) if rng.random() < 0.5 else None
            op = F.PIXMIX_MIXING_OPS[int(rng.random() * len(F.PIXMIX_MIXING_OPS))]  # add or multiply
            a, b = sample_ab(rng, self.beta)
            steps.append(F.PixMixStep(op, a, b, partner))
        needs_fractal = any(s.partner is None for s in steps)
        fractal = self._mixing_picture(data, height, width, channels) if needs_fractal else None
        return {"first": first, "steps": steps, "fractal": fractal}

    def apply(
        self,
        img: np.ndarray,
        first: F.ImageOp | None,
        steps: list[F.PixMixStep],
        fractal: np.ndarray | None,
        **params: Any,
    ) -> np.ndarray:
        _check_image(img, "PixMix")
        squeeze = img.ndim == 2
        image = img[:, :, None] if squeeze else img
        out = F.pixmix(image, fractal, first, steps)
        return out[:, :, 0] if squeeze else out
