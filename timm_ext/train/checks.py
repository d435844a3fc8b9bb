"""Checks of ``timm train`` settings and their combinations, before anything heavy happens."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from .config import AA_PREFIX, AUGMENTATIONS, DATASETS, SCHEDULERS, VIEW_AUGS, TrainConfig, TrainError

__all__ = ["validate"]

_ADAUTOMIX_AUGS = ("adautomix", "automix")

#: Allowed ranges of the numeric flags: (field, low, high, low inclusive, high inclusive); None = unbounded.
#: Every value must also be finite (NaN / inf are refused for every float flag).
_RANGES: tuple[tuple[str, float | None, float | None, bool, bool], ...] = (
    ("jsd_alpha", 0.0, None, True, True),
    ("smoothing", 0.0, 1.0, True, False),
    ("mixup", 0.0, None, False, True),
    ("cutmix", 0.0, None, False, True),
    ("hflip", 0.0, 1.0, True, True),
    ("min_lr", 0.0, None, True, True),
    ("momentum", 0.0, 1.0, True, False),
    ("weight_decay", 0.0, None, True, True),
    ("warmup_epochs", 0, None, True, True),
    ("warmup_lr", 0.0, None, True, True),
    ("decay_epochs", 0.0, None, False, True),
    ("decay_rate", 0.0, 1.0, False, True),
    ("clip_grad", 0.0, None, False, True),
    ("model_ema_decay", 0.0, 1.0, True, False),
    ("seed", 0, 2**32 - 1, True, True),
    ("cutout_size", 1, None, True, True),
)


def _check_numeric_ranges(cfg: TrainConfig) -> None:
    import math

    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise TrainError(f"--{f.name.replace('_', '-')} must be a finite number, got {value}")
    for name, low, high, low_in, high_in in _RANGES:
        value = getattr(cfg, name)
        if value is None:
            continue
        below = low is not None and (value < low if low_in else value <= low)
        above = high is not None and (value > high if high_in else value >= high)
        if below or above:
            lo = "-inf" if low is None else f"{'[' if low_in else '('}{low}"
            hi = "inf)" if high is None else f"{high}{']' if high_in else ')'}"
            raise TrainError(f"--{name.replace('_', '-')} must be in {lo}, {hi}, got {value}")


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
    _check_choices_and_ranges(cfg)
    _check_numeric_ranges(cfg)
    _check_device(cfg)
    _check_model(cfg)
    _check_aa_and_files(cfg)
    _check_views(cfg)
    _check_adautomix(cfg)
    if cfg.data_dir is None:
        raise TrainError("--data-dir is required (the folder holding the training data)")
    if not Path(cfg.data_dir).is_dir():
        raise TrainError(
            f"data folder '{cfg.data_dir}' does not exist; pass --data-dir with your {cfg.dataset} data"
        )


def _check_choices_and_ranges(cfg: TrainConfig) -> None:
    if cfg.dataset not in DATASETS:
        raise TrainError(f"unknown --dataset '{cfg.dataset}'; expected one of {', '.join(DATASETS)}")
    if cfg.aug not in AUGMENTATIONS:
        raise TrainError(f"unknown --aug '{cfg.aug}'; expected one of {', '.join(AUGMENTATIONS)}")
    if cfg.sched not in SCHEDULERS:
        raise TrainError(f"unknown --sched '{cfg.sched}'; expected one of {', '.join(SCHEDULERS)}")
    if cfg.amp_dtype not in ("float16", "bfloat16"):
        raise TrainError(f"--amp-dtype must be float16 or bfloat16, got '{cfg.amp_dtype}'")
    for name, low in (("epochs", 1), ("batch_size", 1), ("workers", 0), ("log_interval", 1), ("crop_pad", 0)):
        if getattr(cfg, name) < low:
            raise TrainError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(cfg, name)}")
    if cfg.lr <= 0:
        raise TrainError(f"--lr must be > 0, got {cfg.lr}")
    if not 0.0 <= cfg.drop < 1.0:
        raise TrainError(f"--drop must be in [0, 1), got {cfg.drop}")
    if cfg.img_size is not None and cfg.img_size < 8:
        raise TrainError(f"--img-size must be >= 8 px, got {cfg.img_size}")
    if cfg.num_classes is not None and cfg.num_classes < 1:
        raise TrainError(f"--num-classes must be >= 1, got {cfg.num_classes}")


def _check_model(cfg: TrainConfig) -> None:
    import timm

    from .. import models  # noqa: F401 - registers the CIFAR architectures

    if not timm.is_model(cfg.model):
        close = timm.list_models(f"*{cfg.model}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else " (see timm.list_models())"
        raise TrainError(f"unknown --model '{cfg.model}'{hint}")


def _check_aa_and_files(cfg: TrainConfig) -> None:
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
    if cfg.pretrained_file is not None and not Path(cfg.pretrained_file).expanduser().is_file():
        raise TrainError(
            f"--pretrained-file '{cfg.pretrained_file}' does not exist; pass a local weights file"
        )
    if cfg.aug in ("ipmix", "pixmix") and cfg.fractals is not None and not Path(cfg.fractals).is_dir():
        raise TrainError(
            f"--fractals '{cfg.fractals}' is not a folder; pass a folder of mixing pictures or omit it"
        )


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
    if cfg.aug_splits < 0:
        raise TrainError(f"--aug-splits must be >= 0, got {cfg.aug_splits}")
    if cfg.aug_splits > 1 and cfg.aug not in VIEW_AUGS:
        raise TrainError(f"--aug-splits {cfg.aug_splits} needs --aug {'|'.join(VIEW_AUGS)} to make the views")
    if cfg.aug in ("mixup", "cutmix") and cfg.batch_size % 2:
        raise TrainError(
            f"--aug {cfg.aug} mixes pairs within a batch: --batch-size must be even, got {cfg.batch_size}"
        )


def _check_adautomix(cfg: TrainConfig) -> None:
    if cfg.aug not in _ADAUTOMIX_AUGS:
        return
    if cfg.adautomix_sources not in (2, 3):
        raise TrainError(f"--adautomix-sources must be 2 or 3, got {cfg.adautomix_sources}")
    if cfg.adautomix_alpha <= 0:
        raise TrainError(f"--adautomix-alpha must be > 0, got {cfg.adautomix_alpha}")
    for name in ("beta", "mix_weight"):
        value = getattr(cfg, f"adautomix_{name}")
        if not 0.0 <= value <= 1.0:
            raise TrainError(f"--adautomix-{name.replace('_', '-')} must be in [0, 1], got {value}")
    if cfg.adautomix_cos_sign not in (1.0, -1.0):
        raise TrainError(f"--adautomix-cos-sign must be 1 or -1, got {cfg.adautomix_cos_sign}")
    if not 0.0 <= cfg.adautomix_margin < 0.5:
        raise TrainError(f"--adautomix-margin must be in [0, 0.5), got {cfg.adautomix_margin}")
    for name in ("momentum", "momentum_end"):
        value = getattr(cfg, f"adautomix_{name}")
        if not 0.0 <= value <= 1.0:
            raise TrainError(f"--adautomix-{name.replace('_', '-')} must be in [0, 1], got {value}")
    if not 0.0 <= cfg.adautomix_momentum_start <= 1.0:
        raise TrainError(f"--adautomix-momentum-start must be in [0, 1], got {cfg.adautomix_momentum_start}")
    if cfg.adautomix_upsample not in ("auto", "bilinear", "nearest"):
        raise TrainError(
            f"--adautomix-upsample must be auto, bilinear or nearest, got '{cfg.adautomix_upsample}'"
        )
    if cfg.adautomix_gen_lr is not None and cfg.adautomix_gen_lr <= 0:
        raise TrainError(f"--adautomix-gen-lr must be > 0, got {cfg.adautomix_gen_lr}")
    if cfg.model_ema:
        raise TrainError(
            f"--model-ema cannot be combined with --aug {cfg.aug}: the method keeps its own EMA teacher "
            "(its momentum is --adautomix-momentum); drop --model-ema"
        )
    if cfg.batch_size < 2:
        raise TrainError(f"--aug {cfg.aug} mixes images within a batch: --batch-size must be >= 2")
