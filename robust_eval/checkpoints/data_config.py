"""How a model expects its inputs (size, crop, normalization), where that came from, and the flags.

Normalization is never guessed silently: every loaded model gets a data config from exactly one
base source, and ``--mean`` / ``--std`` / ``--input-size`` / ``--crop-pct`` override single fields.
The result file records the values, the base source, and the source of every field:

- ``checkpoint``: the file says (this project's ``data_config``, or timm ``train.py``'s ``args``);
- ``reference format``: the papers' ``cifar.py`` format or a RobustBench entry, whose preprocessing
  is fixed by that code (``detail`` says which);
- ``architecture default``: the file says nothing; the architecture's timm ``pretrained_cfg``
  (mean = std = 0.5 for the CIFAR nets of :mod:`timm_ext.models`, ImageNet mean/std for timm's
  ImageNet models);
- ``flag``: given on the command line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from robust_eval.checkpoints.checkpoint import DATA_CONFIG_KEYS
from robust_mix.checkpoint import normalize_data_config
from robust_mix.cli import MAX_SIDE
from robust_mix.errors import RobustMixError

__all__ = [
    "SOURCES",
    "architecture_default",
    "checked_config",
    "describe",
    "normalized_config",
    "parse_overrides",
]

SOURCES: tuple[str, ...] = ("checkpoint", "flag", "architecture default", "reference format")


class DataConfigError(ValueError, RobustMixError):
    """A bad ``--mean`` / ``--std`` / ``--input-size`` / ``--crop-pct`` value."""


def _floats(flag: str, text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DataConfigError(
            f"{flag} must be comma-separated numbers (e.g. 0.5,0.5,0.5), got {text!r}"
        ) from None
    if len(values) not in (1, 3):
        raise DataConfigError(f"{flag} takes 1 or 3 values (one per channel), got {len(values)} in {text!r}")
    return values * 3 if len(values) == 1 else values


def parse_overrides(
    mean: str | None = None,
    std: str | None = None,
    input_size: str | None = None,
    crop_pct: float | None = None,
) -> dict[str, Any]:
    """Validate the command-line fields; returns only those given, in data-config units.

    ``mean``, ``std``: comma-separated, 0..1 scale (images are in [0, 1]); one value = all channels.
    ``input_size``: the model's side in pixels (``32``) or ``C,H,W`` with H = W. ``crop_pct``: (0, 1].

    Raises:
        DataConfigError: malformed or out-of-range values (one line naming the flag and the fix).
    """
    out: dict[str, Any] = {}
    if mean is not None:
        out["mean"] = _floats("--mean", mean)
        if not all(0.0 <= v <= 1.0 for v in out["mean"]):
            raise DataConfigError(
                f"--mean values must be in 0..1 (images are [0, 1]); got {mean!r} (divide 0..255 values by 255)"
            )
    if std is not None:
        out["std"] = _floats("--std", std)
        if not all(0.0 < v <= 1.0 for v in out["std"]):
            raise DataConfigError(
                f"--std values must be in (0, 1] (images are [0, 1]); got {std!r} (divide 0..255 values by 255)"
            )
    if input_size is not None:
        try:
            dims = [int(v) for v in input_size.split(",")]
        except ValueError:
            raise DataConfigError(
                f"--input-size must be an integer side (32) or C,H,W, got {input_size!r}"
            ) from None
        if len(dims) == 1:
            dims = [3, dims[0], dims[0]]
        if len(dims) != 3 or dims[1] != dims[2] or min(dims) < 1:
            raise DataConfigError(
                f"--input-size must be a positive side or C,H,W with H = W, got {input_size!r}"
            )
        if dims[0] > 4 or dims[1] > MAX_SIDE:
            raise DataConfigError(
                f"--input-size must be at most {MAX_SIDE} px with at most 4 channels, got {input_size!r}"
            )
        out["input_size"] = dims
    if crop_pct is not None:
        if not 0.0 < crop_pct <= 1.0:
            raise DataConfigError(f"--crop-pct must be in (0, 1], got {crop_pct}")
        out["crop_pct"] = float(crop_pct)
    return out


def architecture_default(net: nn.Module) -> dict[str, Any]:
    """The architecture's own ``pretrained_cfg`` as a data config (timm's ``resolve_data_config``)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=net)
    return {k: cfg[k] for k in DATA_CONFIG_KEYS}


def _numbers(value: Any, key: str, where: str, kind: type) -> list[Any]:
    """``value`` as a list of finite ``kind`` numbers (bools refused); DataConfigError otherwise."""
    items = list(value) if isinstance(value, (list, tuple)) else None
    if not items or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in items
    ):
        raise DataConfigError(f"{where}: data_config {key} must be a list of finite numbers, got {value!r}")
    if kind is int and not all(float(v).is_integer() for v in items):
        raise DataConfigError(f"{where}: data_config {key} must be whole numbers, got {value!r}")
    return [kind(v) for v in items]


def checked_config(merged: Mapping[str, Any], where: str = "data config") -> dict[str, Any]:
    """The five fields of a data config, type- and range-checked (a checkpoint's, a flag's or an entry's).

    ``input_size``: ``[C, H, W]`` whole numbers >= 1 with H = W; ``mean``: C finite values; ``std``: C
    finite values > 0 (zero or negative would divide by zero or invert the image); ``crop_pct`` in
    (0, 1]; ``interpolation`` a string.

    Raises:
        DataConfigError: one line naming ``where``, the field and the value found.
    """
    missing = [k for k in ("input_size", "mean", "std") if k not in merged]
    if missing:
        raise DataConfigError(f"{where}: data_config is missing {missing}")
    size = _numbers(merged["input_size"], "input_size", where, int)
    if len(size) != 3 or min(size) < 1 or size[1] != size[2]:
        raise DataConfigError(
            f"{where}: data_config input_size must be [C, H, W] with C, H, W >= 1 and H = W, got {size}"
        )
    mean = _numbers(merged["mean"], "mean", where, float)
    std = _numbers(merged["std"], "std", where, float)
    for key, values in (("mean", mean), ("std", std)):
        if len(values) != size[0]:
            raise DataConfigError(
                f"{where}: data_config {key} has {len(values)} values for {size[0]}-channel inputs: {values}"
            )
    if min(std) <= 0.0:
        raise DataConfigError(
            f"{where}: std must be > 0 for every channel, got {std} (zero divides by zero, a negative "
            "value inverts the image); pass --std to override"
        )
    crop = merged.get("crop_pct", 1.0)
    crop = _numbers([crop], "crop_pct", where, float)[0] if crop is not None else 1.0
    if not 0.0 < crop <= 1.0:
        raise DataConfigError(f"{where}: data_config crop_pct must be in (0, 1], got {crop}")
    interpolation = merged.get("interpolation", "bilinear")
    if not isinstance(interpolation, str):
        raise DataConfigError(f"{where}: data_config interpolation must be a name, got {interpolation!r}")
    checked = {"input_size": size, "mean": mean, "std": std, "interpolation": interpolation, "crop_pct": crop}
    return normalize_data_config(checked)


def normalized_config(
    base: Mapping[str, Any],
    source: str,
    overrides: Mapping[str, Any],
    detail: str | None = None,
    where: str = "data config",
) -> dict[str, Any]:
    """JSON-native data config: ``base`` with ``overrides`` applied, and the source of every field.

    Checked by :func:`checked_config` (``where`` names the checkpoint in its one-line error).
    """
    if source not in SOURCES:
        raise ValueError(f"data-config source must be one of {SOURCES}, got {source!r}")
    config: dict[str, Any] = checked_config({**dict(base), **dict(overrides)}, where)
    fields = {k: ("flag" if k in overrides else source) for k in config}
    config["source"] = "flag" if {"mean", "std"} & set(overrides) else source
    config["sources"] = fields
    config["detail"] = detail
    return config


def describe(config: Mapping[str, Any]) -> str:
    """One line for the screen: values and sources."""
    mean = ", ".join(f"{v:.4g}" for v in config["mean"])
    std = ", ".join(f"{v:.4g}" for v in config["std"])
    srcs = config.get("sources", {})
    norm_src = srcs.get("mean", config.get("source"))
    if srcs.get("std", norm_src) != norm_src:
        norm_src = f"mean: {norm_src}, std: {srcs['std']}"
    size_src = srcs.get("input_size", config.get("source"))
    detail = f"; {config['detail']}" if config.get("detail") else ""
    return (
        f"normalization mean ({mean}) std ({std}) [{norm_src}{detail}]; input {config['input_size'][-1]} px, "
        f"crop_pct {config['crop_pct']:g}, {config['interpolation']} [{size_src}]"
    )
