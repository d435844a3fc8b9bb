"""This project's checkpoint file format: what `timm train` writes and `robust-eval` reads with no flags.

It lives here, below both packages, so that ``timm_ext`` (the writer) and ``robust_eval`` (the
reader) both import it and neither imports the other. ``robust_eval.checkpoints.checkpoint`` re-exports it.

A checkpoint is a plain dict saved with ``torch.save`` that loads with
``torch.load(path, weights_only=True)`` (only tensors, numbers, strings, lists and dicts inside)::

    {
        "format_version": 1,
        "state_dict": {...},            # model weights (no "module." prefixes)
        "model": "wrn40_4",             # a timm model name (timm_ext.models registers the CIFAR ones)
        "num_classes": 100,
        "dataset": "cifar100",          # cifar10 | cifar100 | imagenet | imagefolder
        "data_config": {                # how the model expects its inputs
            "input_size": [3, 32, 32],  # C, H, W
            "mean": [0.4914, 0.4822, 0.4465],
            "std": [0.2470, 0.2435, 0.2616],
            "interpolation": "bilinear",
            "crop_pct": 1.0,
        },
        # optional: "epoch", "metrics", "train_args" (JSON-native dict), "class_names", "state_dict_ema",
        # "model_kwargs" (extra timm.create_model arguments, e.g. {"img_size": 32} for a ViT at 32 px;
        # the reader accepts only architecture arguments with JSON-scalar values)
    }

Files are written atomically through :func:`robust_mix.files.atomic_writer` (a temporary
file in the same folder, then a rename: never a half-written checkpoint).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DATASETS",
    "DATA_CONFIG_KEYS",
    "FORMAT_VERSION",
    "REQUIRED_KEYS",
    "atomic_save",
    "make_checkpoint",
    "normalize_data_config",
    "save_checkpoint",
]

FORMAT_VERSION = 1

#: Keys every checkpoint of this format has.
REQUIRED_KEYS: tuple[str, ...] = (
    "format_version",
    "state_dict",
    "model",
    "num_classes",
    "dataset",
    "data_config",
)
#: Keys every ``data_config`` has.
DATA_CONFIG_KEYS: tuple[str, ...] = ("input_size", "mean", "std", "interpolation", "crop_pct")

DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagenet", "imagefolder")


def normalize_data_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The one normaliser of a data config: JSON-native values of the :data:`DATA_CONFIG_KEYS`, in order.

    ``input_size`` -> ``[C, H, W]`` ints (pixels); ``mean`` / ``std`` -> float lists on the 0..1 image
    scale; ``interpolation`` -> str (default ``"bilinear"``); ``crop_pct`` -> float in (0, 1]
    (default 1.0). Other keys are dropped. Works on timm's ``resolve_data_config`` output (tuples).

    Raises:
        KeyError: ``input_size``, ``mean`` or ``std`` is missing.
    """
    return {
        "input_size": [int(v) for v in config["input_size"]],
        "mean": [float(v) for v in config["mean"]],
        "std": [float(v) for v in config["std"]],
        "interpolation": str(config.get("interpolation", "bilinear")),
        "crop_pct": float(config.get("crop_pct", 1.0)),
    }


def make_checkpoint(
    state_dict: dict[str, Any],
    *,
    model: str,
    num_classes: int,
    dataset: str,
    data_config: dict[str, Any],
    **extra: Any,
) -> dict[str, Any]:
    """Assemble a checkpoint dict of this format, validating the metadata.

    ``extra`` keys (``epoch``, ``metrics``, ``train_args``, ``class_names``, ``state_dict_ema``, ...)
    must hold only tensors and JSON-native values so the file loads with ``weights_only=True``.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    missing = [k for k in DATA_CONFIG_KEYS if k not in data_config]
    if missing:
        raise ValueError(f"data_config is missing {missing}; it needs {list(DATA_CONFIG_KEYS)}")
    config = normalize_data_config(data_config)
    return {
        "format_version": FORMAT_VERSION,
        "state_dict": state_dict,
        "model": str(model),
        "num_classes": int(num_classes),
        "dataset": dataset,
        "data_config": config,
        **extra,
    }


def atomic_save(obj: Any, path: str | os.PathLike[str], *, overwrite: bool = True) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically (parent folders are created).

    ``overwrite=False`` refuses to replace an existing file (:class:`FileExistsError`); a full or
    read-only disk raises :class:`robust_mix.files.FileProblem` naming the file.
    """
    import torch

    from robust_mix.files import atomic_writer

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_writer(path, overwrite=overwrite) as handle:
        torch.save(obj, handle)
    return path


def save_checkpoint(
    path: str | os.PathLike[str], state_dict: dict[str, Any], *, overwrite: bool = True, **metadata: Any
) -> Path:
    """Validate with :func:`make_checkpoint` and write atomically to ``path`` (see :func:`atomic_save`)."""
    return atomic_save(make_checkpoint(state_dict, **metadata), path, overwrite=overwrite)
