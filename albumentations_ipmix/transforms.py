"""IPMix and PixMix as Albumentations ``ImageOnlyTransform`` s: schema, parameter sampling, docs.

The kernels live in :mod:`albumentations_ipmix.functional`; every random number is drawn here, in
``get_params_dependent_on_data``, from the transform's own generators (``self.random_generator``),
so ``apply`` is a pure function of the sampled parameters.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from albumentations.core.transforms_interface import BaseTransformInitSchema, ImageOnlyTransform
from pydantic import Field

from albumentations_ipmix import functional as F
from albumentations_ipmix.ops import OpContext, level_to_magnitude
from albumentations_ipmix.sources import ArraySource, MixingSource, MixingSourceError, as_source
from robust_mix.seeding import process_entropy, seed_sequence

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
    """Common machinery of IPMix and PixMix (not a public transform).

    Holds the mixing source, draws and fits one mixing picture per call, declares the optional
    per-call data key ``metadata_key`` and gives every worker process its own random stream.

    Examples:
        >>> from albumentations_ipmix import IPMix, PixMix
        >>> [t.metadata_key for t in (IPMix(), PixMix())]
        ['ipmix_metadata', 'pixmix_metadata']
        >>> sorted(PixMix(metadata_key="mixing_pictures").available_keys)
        ['image', 'images', 'mixing_pictures', 'volume', 'volumes']
    """

    @property
    def available_keys(self) -> set[str]:
        """The data keys this transform accepts: its targets plus ``metadata_key``.

        ``A.Compose`` collects its children's available keys, and ``strict=True`` rejects any other
        key. The per-call pictures are optional, so they are declared here rather than through
        ``targets_as_params``, which would make Albumentations require them on every call.
        """
        return super().available_keys | {self.metadata_key}

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
        base = getattr(self, "seed", None)
        sequence = seed_sequence([process_entropy()] if base is None else [base, process_entropy()])
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
    ``m ~ Beta(alpha, alpha)``.

    Args:
        fractals (str | Path | np.ndarray | Sequence[np.ndarray] | MixingSource | dict[str, Any] | None):
            The mixing pictures: a folder (searched recursively; ImageFolder layouts work), an
            array ``(N, H, W[, C])`` or a list of arrays, a source config dict, a ``MixingSource``,
            or None for procedural fractals. Pictures passed per call under ``metadata_key``
            take precedence. Default: None.
        width (int): Number of chains k, in [1, 64]. Default: 3.
        depth (int): Maximum chain depth t, in [0, 64]; each chain's depth is uniform on
            {0, ..., t}. Default: 3.
        alpha (float): Dirichlet and Beta concentration, > 0. Default: 1.0.
        beta (float): Sharpness of the add/multiply weights (``get_ab``), > 0. The paper uses 3
            on CIFAR and 4 on ImageNet. Default: 3.0.
        severity (float): Image-op severity in [0.1, 10]; each op's level is drawn from
            U(0.1, severity). The paper uses 3 on CIFAR and 1 on ImageNet. Default: 3.0.
        all_ops (bool): Use the 15-op list, which adds autocontrast, color, contrast, brightness
            and sharpness to the 10 base ops. Default: False.
        mixing_ops (Sequence[Literal["add", "multiply", "random_pixels", "random_elements"]]):
            The mixing ops to draw from (non-empty). Default: all four.
        patch_shapes (Sequence[Literal["square", "scar"]]): The box shapes to draw from
            (non-empty); a scar has sides drawn independently from {2, ..., s}.
            Default: ("square", "scar").
        patch_sizes (Sequence[int] | None): Patch sides in pixels, each >= 2. None: powers of
            two from 4 to min(64, side / 2) plus the full side (32 px gives 4, 8, 16, 32;
            224 px gives 4, 8, 16, 32, 64, 224). Default: None.
        fractal_prob (float): Probability in [0, 1] that a patch partner is the mixing picture
            rather than the original image with one random op (the paper's Algorithm 1 uses
            0.5; the authors' CIFAR script always uses the picture, 1.0). Default: 0.5.
        overflow (Literal["wrap", "clip"]): How mixed values outside [0, 1] become pixels:
            "wrap" (modulo 256, as the reference code) or "clip". Default: "wrap".
        metadata_key (str): Data key under which a call may pass its own mixing pictures (a
            list of arrays). Default: "ipmix_metadata".
        p (float): Probability of applying the transform. The paper applies IPMix to every
            training image (the Beta blend already yields near-identity outputs). Default: 1.0.

    Targets:
        image, volume

    Image types:
        uint8, float32

    Number of channels:
        Any

    Note:
        - The output has the input's dtype, shape and range (uint8 [0, 255] or float32 [0, 1]);
          put ``A.Normalize`` after this transform.
        - Mixing pictures are RGB; a 1-channel image mixes with their luma and other channel
          counts with their RGB channels repeated cyclically (R, G, B, R, ...).
        - The ``metadata_key`` data key is optional and declared in ``available_keys``, so
          ``A.Compose(..., strict=True)`` accepts it. One picture is drawn from the list per call.
        - ``images`` batches and ``volume`` slices all get the same sampled parameters, as with
          every Albumentations transform; call the pipeline per image for independent draws.
        - A DataLoader worker reseeds the transform on its first call in a new process, so
          workers do not repeat each other's augmentations.
        - Serialization (``A.to_dict``, ``A.save``) needs a JSON-native ``fractals``: a folder
          path, a source config dict or None. In-memory pictures pickle but do not serialize.

    Examples:
        >>> import numpy as np
        >>> import albumentations as A
        >>> from albumentations_ipmix import IPMix
        >>> rng = np.random.default_rng(0)
        >>> pictures = rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
        >>> image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>>
        >>> # Mixing pictures given once; the output keeps the input's shape and dtype
        >>> pipeline = A.Compose([A.HorizontalFlip(), IPMix(fractals=pictures)], seed=137, strict=True)
        >>> out = pipeline(image=image)["image"]
        >>> out.shape, out.dtype
        ((32, 32, 3), dtype('uint8'))
        >>>
        >>> # Or per call, under the metadata key (takes precedence over ``fractals``)
        >>> out = pipeline(image=image, ipmix_metadata=[pictures[0], pictures[1]])["image"]
        >>> out.shape
        (32, 32, 3)
        >>>
        >>> # The ImageNet settings of the paper, on a float32 image
        >>> imagenet = A.Compose([IPMix(fractals=pictures, beta=4.0, severity=1.0)], seed=1)
        >>> imagenet(image=image.astype(np.float32) / 255)["image"].dtype
        dtype('float32')
        >>>
        >>> # Serialization round trip (importing albumentations_ipmix registers the class)
        >>> restored = A.from_dict(A.to_dict(A.Compose([IPMix(width=2, overflow="clip")])))
        >>> restored.transforms[0].width, restored.transforms[0].overflow
        (2, 'clip')

    References:
        - IPMix paper (Huang et al., NeurIPS 2023): https://arxiv.org/abs/2310.04780
        - PixMix paper, source of the mixing ops (Hendrycks et al., CVPR 2022): https://arxiv.org/abs/2112.05135

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

    With probability 0.5 the image first gets one random image op. Then, ``n ~ U{0..k}`` times,
    it is mixed (add or multiply, chosen at random, with weights from ``get_ab(beta)``) with a
    mixing picture or, with probability 0.5, with the original image under one random op, and
    clipped to [0, 1].

    Args:
        fractals (str | Path | np.ndarray | Sequence[np.ndarray] | MixingSource | dict[str, Any] | None):
            The mixing pictures, in any form :class:`IPMix` accepts; None for procedural
            fractals. Pictures passed per call under ``metadata_key`` take precedence.
            Default: None.
        k (int): Maximum number of mixing rounds, in [0, 64]. Default: 4.
        beta (float): Sharpness of the add/multiply weights (``get_ab``), > 0. The paper uses 3
            on CIFAR and 4 on ImageNet. Default: 3.0.
        severity (float): Image-op severity in [0.1, 10]; each op's level is drawn from
            U(0.1, severity). The paper uses 3 on CIFAR and 1 on ImageNet. Default: 3.0.
        all_ops (bool): Use the 13-op list, which adds color, contrast, brightness and sharpness
            to the 9 base ops. Default: False.
        metadata_key (str): Data key under which a call may pass its own mixing pictures (a
            list of arrays). Default: "pixmix_metadata".
        p (float): Probability of applying the transform. Default: 1.0.

    Targets:
        image, volume

    Image types:
        uint8, float32

    Number of channels:
        Any

    Note:
        - Dtype and range, channel counts, the optional ``metadata_key`` (accepted by
          ``A.Compose(..., strict=True)``), batches, worker reseeding and serialization work
          as for :class:`IPMix`; see its Note. Put ``A.Normalize`` after this transform.
        - Unlike IPMix, every mixing round clips to [0, 1], so there is no ``overflow`` option.

    Examples:
        >>> import numpy as np
        >>> import albumentations as A
        >>> from albumentations_ipmix import PixMix
        >>> rng = np.random.default_rng(0)
        >>> pictures = rng.integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
        >>> image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        >>>
        >>> pipeline = A.Compose([PixMix(fractals=pictures)], seed=0, strict=True)
        >>> out = pipeline(image=image)["image"]
        >>> out.shape, out.dtype
        ((32, 32, 3), dtype('uint8'))
        >>>
        >>> # Per-call mixing pictures under the metadata key
        >>> out = pipeline(image=image, pixmix_metadata=[pictures[2]])["image"]
        >>> out.shape
        (32, 32, 3)
        >>>
        >>> # A 1-channel float32 image mixes with the pictures' luma
        >>> gray = pipeline(image=rng.random((32, 32), dtype=np.float32))["image"]
        >>> gray.shape, gray.dtype
        ((32, 32), dtype('float32'))

    References:
        PixMix paper (Hendrycks et al., CVPR 2022): https://arxiv.org/abs/2112.05135

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
        if img.dtype == np.float32 and img.size and (img.min() < 0.0 or img.max() > 1.0):
            raise ValueError(
                f"PixMix got a float32 image with values in [{img.min():g}, {img.max():g}]; expected [0, 1] "
                "(divide 0..255 values by 255, or use A.ToFloat first)"
            )
        squeeze = img.ndim == 2
        image = img[:, :, None] if squeeze else img
        out = F.pixmix(image, fractal, first, steps)
        return out[:, :, 0] if squeeze else out
