"""IPMix / PixMix in timm's PIL pipeline: an Albumentations adapter and timm-style config strings.

timm's training transforms hand PIL images to their auto-augment slot and expect PIL images back
(``MaybePILToTensor`` rejects arrays). :class:`AlbumentationsAdapter` wraps any Albumentations
transform for that slot (PIL -> uint8 ndarray -> transform -> PIL) and reseeds the transform once
in every new DataLoader worker (Albumentations 2.0.8 gives all workers the same RNG state).

Config strings follow timm's grammar (``augmix-m5-w4-d2``): sections split on ``-``, the first is the
method, each other section is a key followed by a number. Keys:

======  ===========  =====================================================  ======================
method  key          meaning (IPMix / PixMix argument)                      default
======  ===========  =====================================================  ======================
ipmix   ``w``        width: number of mixing chains (int >= 1)              3
ipmix   ``d``        depth: maximum operations per chain (int >= 0)         3
ipmix   ``a``        alpha: Dirichlet / Beta concentration (> 0)            1
ipmix   ``p``        fractal_prob: chance a patch partner is the mixing     0.5
                     picture rather than an augmented copy (0..1)
ipmix   ``clip``     overflow: ``clip1`` clips mixed patches to [0, 1],     ``clip0`` (wrap, as the
                     ``clip0`` wraps modulo 256 like the reference code     reference code)
pixmix  ``k``        k: maximum number of mixing rounds (int >= 0)          4
both    ``b``        beta: mixing-op sharpness (> 0; 3 CIFAR, 4 ImageNet)   3
both    ``s``        severity: image-op severity (> 0; 3 CIFAR, 1 ImageNet) 3
both    ``all``      all_ops: ``all`` or ``all1`` uses the extended op      off
                     list (adds the colour/contrast/brightness/sharpness
                     ops), ``all0`` the base list
======  ===========  =====================================================  ======================

Examples: ``ipmix-w3-d3-b3-s3`` (paper CIFAR setting), ``ipmix-w3-d3-b4-s1`` (paper ImageNet),
``pixmix-k4-b3-s3``, ``ipmix-w2-d2-p0-clip1-all``.

The mixing pictures cannot live in a dash string: they come from, in order of precedence, the
``fractals`` argument / ``hparams["fractals"]``, :func:`set_default_fractals` (what
``timm_ext.register(fractals=...)`` calls), the ``TIMM_EXT_FRACTALS`` environment variable (a folder
path), and finally the procedural fractal source of ``albumentations_ipmix`` (``fractals=None``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from robust_mix.seeding import derive_seed

__all__ = [
    "FRACTALS_ENV",
    "METHODS",
    "AlbumentationsAdapter",
    "get_default_fractals",
    "is_mixing_config",
    "mixing_transform",
    "parse_mixing_config",
    "resolve_fractals",
    "set_default_fractals",
]

#: Environment variable naming a folder of mixing pictures (used when no source is given).
FRACTALS_ENV = "TIMM_EXT_FRACTALS"


@dataclass(frozen=True)
class _Key:
    argument: str  # keyword argument of IPMix / PixMix
    kind: type  # int, float or bool
    low: float | None = None  # inclusive lower bound
    high: float | None = None  # inclusive upper bound
    low_open: bool = False  # the lower bound is exclusive


_COMMON_KEYS: dict[str, _Key] = {
    "b": _Key("beta", float, 0.0, None, low_open=True),
    "s": _Key("severity", float, 0.0, None, low_open=True),
    "all": _Key("all_ops", bool),
}

#: Config-string keys per method (the table in the module docstring).
METHODS: dict[str, dict[str, _Key]] = {
    "ipmix": {
        "w": _Key("width", int, 1),
        "d": _Key("depth", int, 0),
        "a": _Key("alpha", float, 0.0, None, low_open=True),
        "p": _Key("fractal_prob", float, 0.0, 1.0),
        "clip": _Key("overflow", bool),
        **_COMMON_KEYS,
    },
    "pixmix": {"k": _Key("k", int, 0), **_COMMON_KEYS},
}

_SECTION = re.compile(r"^([a-z]+)(\d+(?:\.\d*)?|\.\d+)?$")

_default_fractals: Any = None


def is_mixing_config(config_str: Any) -> bool:
    """True if ``config_str`` is an ``ipmix-...`` / ``pixmix-...`` string (what this module handles)."""
    if not isinstance(config_str, str):
        return False
    return config_str.split("-", 1)[0] in METHODS


def parse_mixing_config(
    config_str: str, methods: Mapping[str, Mapping[str, _Key]] = METHODS
) -> tuple[str, dict[str, Any]]:
    """Parse an ``ipmix-...`` or ``pixmix-...`` string into ``(method, keyword arguments)``.

    Only keys present in the string appear in the result (the transform's defaults fill the rest).
    ``methods`` is the table of methods and keys (default :data:`METHODS`; :mod:`timm_ext.batch`
    adds ``augmix`` to it).

    Raises:
        ValueError: unknown method or key, a missing or malformed number, a value out of range,
            or a key given twice. The message names the section and lists the valid keys.

    Example:
        >>> parse_mixing_config("ipmix-w3-d2-b4-s1-clip1")
        ('ipmix', {'width': 3, 'depth': 2, 'beta': 4.0, 'severity': 1.0, 'overflow': 'clip'})
    """
    if not isinstance(config_str, str) or not config_str:
        raise ValueError(
            f"augmentation config must be a non-empty string like 'ipmix-w3-d3', got {config_str!r}"
        )
    sections = config_str.strip().lower().split("-")
    method = sections[0]
    if method not in methods:
        raise ValueError(
            f"unknown mixing method {method!r} in {config_str!r}; expected one of {sorted(methods)}"
        )
    keys = methods[method]
    valid = ", ".join(f"{k} ({spec.argument})" for k, spec in keys.items())
    kwargs: dict[str, Any] = {}
    seen: set[str] = set()
    for section in sections[1:]:
        match = _SECTION.match(section)
        if not match:
            raise ValueError(
                f"malformed section {section!r} in {config_str!r}: expected a key followed by a number "
                f"(e.g. 'w3', 'b0.5'); valid keys for {method}: {valid}"
            )
        key, number = match.group(1), match.group(2)
        if key not in keys:
            raise ValueError(f"unknown key {key!r} in {config_str!r}; valid keys for {method}: {valid}")
        if key in seen:
            raise ValueError(f"key {key!r} is given twice in {config_str!r}")
        seen.add(key)
        spec = keys[key]
        if spec.kind is bool:
            if number not in (None, "0", "1"):
                raise ValueError(f"{key!r} in {config_str!r} is a switch: use '{key}', '{key}1' or '{key}0'")
            value: Any = number != "0"
            if spec.argument == "overflow":
                value = "clip" if value else "wrap"
        else:
            if number is None:
                raise ValueError(
                    f"key {key!r} ({spec.argument}) in {config_str!r} needs a number, e.g. '{key}3'"
                )
            if spec.kind is int:
                if not number.isdigit():
                    raise ValueError(
                        f"{spec.argument} ({key!r}) in {config_str!r} must be an integer, got {number}"
                    )
                value = int(number)
            else:
                value = float(number)
            too_low = spec.low is not None and (value <= spec.low if spec.low_open else value < spec.low)
            too_high = spec.high is not None and value > spec.high
            if too_low or too_high:
                bound = f"> {spec.low}" if spec.low_open else f">= {spec.low}"
                if spec.high is not None:
                    bound += f" and <= {spec.high}"
                raise ValueError(f"{spec.argument} ({key!r}) in {config_str!r} must be {bound}, got {number}")
        kwargs[spec.argument] = value
    return method, kwargs


def set_default_fractals(fractals: Any) -> None:
    """Set the process-wide mixing source used when a config string names none (None: unset).

    Accepts what ``IPMix(fractals=...)`` accepts: a folder path, an array of pictures, a source.
    """
    global _default_fractals
    _default_fractals = str(fractals) if isinstance(fractals, os.PathLike) else fractals


def get_default_fractals() -> Any:
    """The source set by :func:`set_default_fractals` (None if unset)."""
    return _default_fractals


def resolve_fractals(fractals: Any = None) -> Any:
    """The mixing source to use: ``fractals`` if given, else the process default, else
    ``$TIMM_EXT_FRACTALS``, else None (procedural fractals).

    Raises:
        ValueError: ``$TIMM_EXT_FRACTALS`` is set but is not an existing folder.
    """
    if fractals is not None:
        return str(fractals) if isinstance(fractals, os.PathLike) else fractals
    if _default_fractals is not None:
        return _default_fractals
    env = os.environ.get(FRACTALS_ENV, "").strip()
    if env:
        if not os.path.isdir(env):
            raise ValueError(
                f"${FRACTALS_ENV}={env!r} is not a folder; point it at a folder of mixing pictures "
                "(e.g. made by `ipmix-fractals generate DIR`) or unset it for procedural fractals"
            )
        return env
    return None


def _worker_key() -> tuple[int, int | None]:
    info = torch.utils.data.get_worker_info()
    return os.getpid(), (None if info is None else int(info.seed))


def _worker_entropy(key: tuple[int, int | None], creator_pid: int | None = None) -> list[int]:
    """The entropy an adapter's seed derives from in the process / worker ``key``."""
    pid, worker_seed = key
    if worker_seed is not None:  # a DataLoader worker: reproducible from the loader's base seed
        return [worker_seed % 2**63, 0x1B9D]
    if pid == creator_pid:  # the process that built the transform (timm's main process, --workers 0)
        return [torch.initial_seed() % 2**63, 0x3A1F]
    return [torch.initial_seed() % 2**63, pid]  # any other new process (multiprocessing pool, ...)


class AlbumentationsAdapter:
    """Run an Albumentations transform on PIL images (timm's auto-augment slot).

    The image goes PIL -> uint8 ``(H, W, C)`` (or ``(H, W)`` for mode ``L``) ndarray -> ``transform`` ->
    PIL of the same mode. Other modes (``P``, ``RGBA``, ``I;16``, ...) are converted to RGB first.
    ndarrays are accepted too and returned as ndarrays.

    Reseeding: when called in a process or DataLoader worker other than the one it was last seeded
    in, the transform is reseeded once from the worker's seed (``get_worker_info().seed``, itself
    derived from torch's main-process seed, so runs with a fixed ``torch.manual_seed`` repeat) or,
    outside DataLoader workers, from ``torch.initial_seed()`` and the process id. Different workers
    and different epochs (new workers) therefore draw different augmentations. Built without a
    ``seed``, the transform is seeded on its first call in the building process too, from
    ``torch.initial_seed()`` (what timm's ``random_seed`` sets): ``--workers 0`` runs repeat.

    Args:
        transform: an Albumentations transform or Compose (anything called as ``t(image=arr)``
            returning a dict with ``"image"``; ``set_random_seed`` is used when present).
        seed: seed the transform now (None keeps its current state).
    """

    def __init__(self, transform: Any, seed: int | None = None) -> None:
        if not callable(transform):
            raise TypeError(f"transform must be an Albumentations transform, got {type(transform).__name__}")
        self.transform = transform
        self._creator_pid = os.getpid()
        self._seeded_for: tuple[int, int | None] | None = None  # seed on the first call
        if seed is not None:
            self.reseed(int(seed))

    def reseed(self, seed: int) -> None:
        """Seed the wrapped transform now (in this process; new workers still reseed themselves)."""
        self._set_seed(int(seed))
        self._seeded_for = _worker_key()

    def _set_seed(self, seed: int) -> None:
        setter = getattr(self.transform, "set_random_seed", None)
        if setter is not None:
            setter(seed)

    def __call__(self, img: Image.Image | np.ndarray) -> Image.Image | np.ndarray:
        key = _worker_key()
        if key != self._seeded_for:
            self._set_seed(derive_seed(_worker_entropy(key, self._creator_pid)))
            self._seeded_for = key
        if isinstance(img, np.ndarray):
            return self.transform(image=img)["image"]
        if not isinstance(img, Image.Image):
            raise TypeError(f"expected a PIL image or a uint8 ndarray, got {type(img).__name__}")
        if img.mode not in ("RGB", "L"):
            img = img.convert("RGB")
        out = self.transform(image=np.asarray(img))["image"]
        if out.ndim == 3 and out.shape[2] == 1:
            out = out[:, :, 0]
        return Image.fromarray(np.ascontiguousarray(out, dtype=np.uint8))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transform!r})"


def _require_procedural_source(config_str: str) -> None:
    """Fail at build time (not later, inside a DataLoader worker) when no procedural source exists."""
    import importlib

    from albumentations_ipmix import MixingSourceError, as_source

    try:
        importlib.import_module("albumentations_ipmix.fractals")  # registers {"type": "procedural"}
        as_source(None)  # the default source builds lazily: cheap
    except (ImportError, MixingSourceError) as exc:
        raise ValueError(
            f"'{config_str}' has no mixing pictures: procedural fractals are unavailable here, so pass a "
            f"folder of pictures (--fractals DIR, ${FRACTALS_ENV}=DIR or timm_ext.register(fractals=DIR))"
        ) from exc


def mixing_transform(
    config_str: str,
    hparams: Mapping[str, Any] | None = None,
    fractals: Any = None,
    seed: int | None = None,
) -> AlbumentationsAdapter:
    """Build IPMix or PixMix from a config string, wrapped for timm's PIL pipeline.

    Args:
        config_str: ``ipmix-...`` or ``pixmix-...`` (see the module docstring for the keys).
        hparams: timm's auto-augment hparams; only ``"fractals"`` is read here (timm's own keys,
            such as ``translate_const`` and ``img_mean``, are ignored: IPMix scales its ops itself).
        fractals: the mixing source (overrides ``hparams["fractals"]``); see :func:`resolve_fractals`.
        seed: seed the transform (None: unseeded until the first call in a worker).

    Returns:
        An :class:`AlbumentationsAdapter` around ``IPMix(p=1.0, ...)`` or ``PixMix(p=1.0, ...)``.
    """
    method, kwargs = parse_mixing_config(config_str)
    if fractals is None and hparams is not None:
        fractals = hparams.get("fractals")
    source = resolve_fractals(fractals)
    try:
        import albumentations_ipmix as aip
    except ImportError as exc:  # pragma: no cover - the package ships with this project
        raise ImportError(
            f"'{config_str}' needs albumentations_ipmix, which failed to import: {exc}"
        ) from exc
    if source is None:
        _require_procedural_source(config_str)
    cls = aip.IPMix if method == "ipmix" else aip.PixMix
    return AlbumentationsAdapter(cls(fractals=source, p=1.0, **kwargs), seed=seed)
