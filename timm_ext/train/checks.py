"""Checks of ``timm train`` settings and their combinations, before anything heavy happens."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from .config import AA_PREFIX, VIEW_AUGS, TrainConfig, TrainError

__all__ = ["validate"]

_ADAUTOMIX_AUGS = ("adautomix", "automix")


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def _check_declared(cfg: TrainConfig) -> None:
    """Every value against its field's declared constraint: finite floats, choices, numeric ranges."""
    import math

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if value is None:
            continue
        if isinstance(value, float) and not math.isfinite(value):
            raise TrainError(f"{_flag(f.name)} must be a finite number, got {value}")
        choices, bounds = f.metadata.get("choices"), f.metadata.get("range")
        if choices is not None and value not in choices:
            if isinstance(value, str):
                expected = ", ".join(choices)
                raise TrainError(f"unknown {_flag(f.name)} '{value}'; expected one of {expected}")
            raise TrainError(f"{_flag(f.name)} must be {' or '.join(f'{c:g}' for c in choices)}, got {value}")
        if bounds is not None and value not in bounds:
            raise TrainError(f"{_flag(f.name)} must be {bounds.describe()}, got {value}")


def _check_device(cfg: TrainConfig) -> None:
    import torch

    if cfg.device == "auto":
        return
    try:
        device = torch.device(cfg.device)
    except (RuntimeError, ValueError):
        raise TrainError(
            f"--device '{cfg.device}' is not a torch device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "meta":
        raise TrainError("--device meta holds no data and cannot train; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--device {cfg.device}: no CUDA device is available here; use --device cpu")


def validate(cfg: TrainConfig) -> None:
    """Check flag values and combinations.

    Raises:
        TrainError: the first bad value or combination, naming the flag and what it expects.
    """
    _check_declared(cfg)
    _check_device(cfg)
    _check_optimizer(cfg)
    _check_model(cfg)
    _check_aa(cfg)
    _check_paths(cfg)
    _check_views(cfg)
    _check_mix_device(cfg)
    _check_adautomix(cfg)
    _check_timm_flags(cfg)
    if cfg.data_dir is None:
        raise TrainError("--data-dir is required (the folder holding the training data)")
    if not Path(cfg.data_dir).is_dir():
        raise TrainError(
            f"data folder '{cfg.data_dir}' does not exist; pass --data-dir with your {cfg.dataset} data"
        )


def _check_optimizer(cfg: TrainConfig) -> None:
    from timm.optim import get_optimizer_info

    name = cfg.opt.lower()
    name = name.removeprefix("lookahead_")  # create_optimizer_v2 wraps these in Lookahead
    try:
        get_optimizer_info(name)
    except ValueError:
        raise TrainError(
            f"unknown --opt '{cfg.opt}'; expected a timm optimizer name (sgd, momentum, adamw, ... see "
            "timm.optim.list_optimizers())"
        ) from None


def _check_paths(cfg: TrainConfig) -> None:
    if cfg.pretrained_file is not None and not Path(cfg.pretrained_file).expanduser().is_file():
        raise TrainError(
            f"--pretrained-file '{cfg.pretrained_file}' does not exist; pass a local weights file"
        )
    if cfg.fractals is not None and not Path(cfg.fractals).is_dir():
        raise TrainError(
            f"--fractals '{cfg.fractals}' is not a folder; pass a folder of mixing pictures or omit it"
        )
    if cfg.output is not None and Path(cfg.output).exists() and not Path(cfg.output).is_dir():
        raise TrainError(f"--output '{cfg.output}' is a file, not a folder; choose a folder for the run")


def _check_model(cfg: TrainConfig) -> None:
    import timm

    from .. import models  # noqa: F401 - registers the CIFAR architectures

    if not timm.is_model(cfg.model):
        close = timm.list_models(f"*{cfg.model}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else " (see timm.list_models())"
        raise TrainError(f"unknown --model '{cfg.model}'{hint}")


def _check_aa(cfg: TrainConfig) -> None:
    if cfg.aa is not None:
        if cfg.aug not in VIEW_AUGS:
            raise TrainError(f"--aa only applies to --aug {'|'.join(VIEW_AUGS)}, not '{cfg.aug}'")
        prefix = AA_PREFIX[cfg.aug]
        if not cfg.aa.startswith(prefix):
            raise TrainError(f"--aa '{cfg.aa}' does not match --aug {cfg.aug}: it must start with '{prefix}'")
        if cfg.aug in ("ipmix", "pixmix"):
            from ..transforms import parse_mixing_config

            try:
                parse_mixing_config(cfg.aa)
            except ValueError as exc:
                raise TrainError(f"--aa: {exc}") from exc


def _check_views(cfg: TrainConfig) -> None:
    if cfg.jsd:
        if cfg.aug in ("mixup", "cutmix", *_ADAUTOMIX_AUGS):
            raise TrainError(
                f"--jsd cannot be combined with --aug {cfg.aug}: mixed soft targets leave no clean view; "
                f"use --aug {'|'.join(VIEW_AUGS)} with --jsd"
            )
        if cfg.aug not in VIEW_AUGS:
            raise TrainError(
                f"--jsd needs augmented views: use --aug {'|'.join(VIEW_AUGS)} (got --aug {cfg.aug})"
            )
        if cfg.aug_splits == 1:
            raise TrainError("--jsd needs --aug-splits >= 2 (one clean view plus augmented views), got 1")
    if cfg.aug_splits > 1 and cfg.aug not in VIEW_AUGS:
        raise TrainError(f"--aug-splits {cfg.aug_splits} needs --aug {'|'.join(VIEW_AUGS)} to make the views")
    if cfg.aug in ("mixup", "cutmix") and cfg.batch_size % 2:
        raise TrainError(
            f"--aug {cfg.aug} mixes pairs within a batch: --batch-size must be even, got {cfg.batch_size}"
        )


def _check_mix_device(cfg: TrainConfig) -> None:
    import torch

    from .device_mixing import DEVICE_MIX_AUGS

    if cfg.mix_device == "workers":
        return
    if cfg.aug not in DEVICE_MIX_AUGS:
        raise TrainError(
            f"--mix-device {cfg.mix_device} runs {'|'.join(DEVICE_MIX_AUGS)} on batches; --aug {cfg.aug} runs in the "
            "loader workers: drop --mix-device"
        )
    if cfg.mix_device == "auto":
        return
    try:
        device = torch.device(cfg.mix_device)
    except (RuntimeError, ValueError):
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise TrainError(
            f"unknown --mix-device '{cfg.mix_device}'; expected workers, auto, cpu, cuda or cuda:N"
        )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainError(f"--mix-device {cfg.mix_device}: no CUDA device is available here; use cpu or auto")


def _check_adautomix(cfg: TrainConfig) -> None:
    if cfg.aug not in _ADAUTOMIX_AUGS:
        return
    if cfg.model_ema:
        raise TrainError(
            f"--model-ema cannot be combined with --aug {cfg.aug}: the method keeps its own EMA teacher "
            "(its momentum is --adautomix-momentum); drop --model-ema"
        )
    if cfg.batch_size < 2:
        raise TrainError(f"--aug {cfg.aug} mixes images within a batch: --batch-size must be >= 2")


def _check_timm_flags(cfg: TrainConfig) -> None:
    """Combinations of the flags named after timm's ``train.py``."""
    from .loggers import check_loggers

    if cfg.split_bn and cfg.aug_splits < 2:
        raise TrainError(
            "--split-bn keeps one BatchNorm per augmentation split: it needs --aug-splits >= 2 (or --jsd)"
        )
    if cfg.grad_accum_steps > 1 and cfg.aug in _ADAUTOMIX_AUGS:
        raise TrainError(
            f"--grad-accum-steps cannot be combined with --aug {cfg.aug}: its steps (random draws, adversarial "
            "parity, teacher EMA) are optimizer updates; drop --grad-accum-steps"
        )
    check_loggers(cfg)
