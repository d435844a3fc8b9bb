"""Checkpoint loading (``torch.load(weights_only=True)`` only) and the input-contract wrapper.

The evaluator feeds every model images in [0, 1], NCHW float32. :class:`InputContract` owns the
rest: it resizes to the checkpoint's input size when the batch has another size (shorter side to
``round(size / crop_pct)``, then a center crop, i.e. the 256-resize + 224-crop protocol for
ImageNet) and normalizes with the checkpoint's mean/std. The contract is written into every result.

Three checkpoint kinds are accepted:

1. this project's format (:mod:`robust_eval.checkpoint`): works with no flags;
2. timm ``train.py`` checkpoints (``state_dict``, ``arch``, optional ``state_dict_ema`` (``--ema``),
   ``args`` = ``argparse.Namespace``, allow-listed as a safe global);
3. a bare state_dict plus ``--model NAME --num-classes K``.

Anything else that needs arbitrary unpickling is refused: there is no escape hatch.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robust_eval.checkpoint import DATA_CONFIG_KEYS, DATASETS, FORMAT_VERSION

__all__ = [
    "CIFAR_MEAN_STD",
    "DATASET_CLASSES",
    "CheckpointError",
    "InputContract",
    "file_sha256",
    "load_checkpoint",
]

#: Classes of the fixed-size data sets (``imagefolder`` has as many as class folders).
DATASET_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}
#: Normalization used by the CIFAR papers when a checkpoint carries none.
CIFAR_MEAN_STD: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


class CheckpointError(ValueError):
    """A checkpoint cannot be loaded safely or does not match the requested model / data set."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class InputContract(nn.Module):
    """Wraps a classifier so it takes images in [0, 1] (NCHW float) and returns logits.

    ``size``: the model's input side (pixels); ``crop_pct``: fraction kept by the center crop when a
    batch of another size has to be resized (1.0 = resize only); ``mean``/``std``: per-channel
    normalization applied after resizing.
    """

    def __init__(
        self,
        model: nn.Module,
        size: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        crop_pct: float = 1.0,
        interpolation: str = "bilinear",
    ) -> None:
        super().__init__()
        self.model = model
        self.size, self.crop_pct, self.interpolation = int(size), float(crop_pct), str(interpolation)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """Resize the shorter side to ``round(size / crop_pct)`` and center-crop ``size`` (no-op when
        the batch already has the model's size)."""
        h, w = x.shape[-2:]
        if h == self.size and w == self.size:
            return x
        short = round(self.size / self.crop_pct)
        if min(h, w) != short:
            scale = short / min(h, w)
            new = (max(short, round(h * scale)), max(short, round(w * scale)))
            mode = "bicubic" if self.interpolation == "bicubic" else "bilinear"
            x = nn.functional.interpolate(x, size=new, mode=mode, align_corners=False, antialias=scale < 1)
            x = x.clamp(0.0, 1.0)
            h, w = new
        top, left = (h - self.size) // 2, (w - self.size) // 2
        return x[..., top : top + self.size, left : left + self.size]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((self.resize(x) - self.mean) / self.std)

    def extra_repr(self) -> str:
        return f"size={self.size}, crop_pct={self.crop_pct}, interpolation={self.interpolation!r}"


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with ``argparse.Namespace`` allow-listed (timm train.py)."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        hint = next(
            (line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else ""
        )
        raise CheckpointError(
            f"refusing to load '{path}': it needs arbitrary unpickling ({hint.strip()}). Only tensors, "
            "numbers, strings, lists, dicts and argparse.Namespace are loaded; re-save the weights with "
            "torch.save(model.state_dict()) or robust_eval.checkpoint.save_checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"'{path}' is not a readable torch checkpoint: {exc}") from None


def _strip_prefix(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state_dict entry {key!r} is a {type(value).__name__}, expected a tensor")
        while key.startswith("module."):
            key = key[len("module.") :]
        out[key] = value
    return out


def _dataset_from_timm_args(args: Any) -> str | None:
    name = str(getattr(args, "dataset", "") or "").lower()
    for ds in ("cifar100", "cifar10", "imagenet"):
        if ds in name.replace("-", ""):
            return ds
    return (
        "imagefolder" if name in ("", "imagefolder", "folder") and getattr(args, "data_dir", None) else None
    )


def _default_data_config(net: nn.Module, dataset: str | None) -> dict[str, Any]:
    from timm.data import resolve_data_config

    cfg = resolve_data_config({}, model=net)
    config = {
        "input_size": [int(v) for v in cfg["input_size"]],
        "mean": [float(v) for v in cfg["mean"]],
        "std": [float(v) for v in cfg["std"]],
        "interpolation": str(cfg.get("interpolation", "bilinear")),
        "crop_pct": float(cfg.get("crop_pct", 1.0)),
    }
    if dataset in CIFAR_MEAN_STD:
        mean, std = CIFAR_MEAN_STD[dataset]
        config.update(input_size=[3, 32, 32], mean=list(mean), std=list(std), crop_pct=1.0)
    return config


def _create(model_name: str, num_classes: int, model_kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    import timm

    import timm_ext.models  # noqa: F401 - registers the CIFAR architectures (wrn40_4, ...) with timm

    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('_')[0]}*")[:5]
        raise CheckpointError(
            f"unknown model {model_name!r}: not a timm model name"
            + (f" (similar: {', '.join(close)})" if close else "")
        )
    try:
        return timm.create_model(
            model_name, pretrained=False, num_classes=num_classes, **(model_kwargs or {})
        )
    except Exception as exc:  # timm raises many kinds for bad kwargs
        raise CheckpointError(f"could not build {model_name!r} with {num_classes} classes: {exc}") from None


def _load_weights(net: nn.Module, state_dict: dict[str, torch.Tensor], model_name: str) -> None:
    own = net.state_dict()
    mismatched = [
        f"{k} {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and own[k].shape != v.shape
    ]
    if mismatched:
        raise CheckpointError(
            f"checkpoint weights do not fit {model_name!r}: {'; '.join(mismatched[:3])}"
            + (" ..." if len(mismatched) > 3 else "")
            + " (wrong --model or --num-classes?)"
        )
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        raise CheckpointError(f"checkpoint does not match {model_name!r}: {'; '.join(parts)}")
    net.load_state_dict(state_dict, strict=True)


def load_checkpoint(
    path: str | os.PathLike[str],
    model: str | None = None,
    num_classes: int | None = None,
    dataset: str | None = None,
    ema: bool = False,
    device: str | torch.device = "cpu",
) -> tuple[InputContract, dict[str, Any]]:
    """Load a checkpoint safely and wrap it in the [0, 1] input contract.

    Args:
        path: the checkpoint file.
        model, num_classes, dataset: override / supply metadata (required for a bare state_dict;
            ``dataset`` defaults to the checkpoint's, else cifar10/cifar100/imagenet by class count).
        ema: use ``state_dict_ema`` (timm train.py and this project's format).
        device: where the wrapped model is put (eval mode).

    Returns:
        ``(wrapped_model, metadata)``; ``metadata`` (JSON-native) holds the file's sha256, the kind of
        checkpoint, model name, class count, data set and the input contract.

    Raises:
        CheckpointError: unsafe file, unknown model, missing metadata, weights / head mismatch.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint '{path}' does not exist")
    if dataset is not None and dataset not in DATASETS:
        raise CheckpointError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    raw = _torch_load(path)
    if not isinstance(raw, Mapping) or not raw:
        raise CheckpointError(
            f"'{path}' holds a {type(raw).__name__}, expected a dict (state_dict or checkpoint)"
        )

    data_config: dict[str, Any] | None = None
    ckpt_dataset: str | None = None
    ckpt_model: str | None = None
    ckpt_classes: int | None = None
    model_kwargs: dict[str, Any] = {}  # what timm.create_model needs beyond num_classes (e.g. img_size)
    extra: dict[str, Any] = {}
    if "format_version" in raw:
        kind = "robust-eval"
        if int(raw["format_version"]) > FORMAT_VERSION:
            raise CheckpointError(
                f"'{path}' has format_version {raw['format_version']}; this version reads <= {FORMAT_VERSION}"
            )
        missing = [
            k for k in ("state_dict", "model", "num_classes", "dataset", "data_config") if k not in raw
        ]
        if missing:
            raise CheckpointError(f"'{path}' is missing checkpoint keys {missing}")
        ckpt_model, ckpt_classes, ckpt_dataset = (
            str(raw["model"]),
            int(raw["num_classes"]),
            str(raw["dataset"]),
        )
        data_config = dict(raw["data_config"])
        absent = [k for k in DATA_CONFIG_KEYS if k not in data_config]
        if absent:
            raise CheckpointError(f"'{path}': data_config is missing {absent}")
        if "class_names" in raw:
            extra["class_names"] = list(raw["class_names"])
        model_kwargs = dict(raw.get("model_kwargs") or {})
        weights_key = "state_dict_ema" if ema else "state_dict"
    elif "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        kind = "timm-train"
        args = raw.get("args")
        ckpt_model = raw.get("arch") or getattr(args, "model", None)
        ckpt_classes = getattr(args, "num_classes", None)
        ckpt_dataset = _dataset_from_timm_args(args) if args is not None else None
        weights_key = "state_dict_ema" if ema else "state_dict"
        if args is not None:
            extra["train_args"] = {
                k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))
            }
    elif all(isinstance(v, torch.Tensor) for v in raw.values()):
        kind = "state_dict"
        weights_key = None
    else:
        raise CheckpointError(
            f"'{path}' is neither a state_dict, a timm train.py checkpoint nor this project's format "
            f"(top-level keys: {sorted(map(str, raw))[:8]})"
        )
    if weights_key is None:
        state = raw
    else:
        if weights_key not in raw:
            raise CheckpointError(f"'{path}' has no {weights_key!r}" + (" (drop --ema)" if ema else ""))
        state = raw[weights_key]
    state_dict = _strip_prefix(state)

    model_name = model or ckpt_model
    if not model_name:
        raise CheckpointError(
            f"'{path}' does not say which architecture it is: pass --model NAME (a timm name)"
        )
    classes = num_classes if num_classes is not None else ckpt_classes
    if classes is None:
        raise CheckpointError(f"'{path}' does not say how many classes it has: pass --num-classes K")
    classes = int(classes)
    ds = dataset or ckpt_dataset
    inferred = False
    if ds is None:
        ds = {10: "cifar10", 100: "cifar100", 1000: "imagenet"}.get(classes)
        inferred = True
        if ds is None:
            raise CheckpointError(
                f"cannot tell the data set of a {classes}-class model: pass --dataset ({', '.join(DATASETS)})"
            )
    if ds in DATASET_CLASSES and DATASET_CLASSES[ds] != classes:
        raise CheckpointError(
            f"the model has {classes} output classes but {ds} has {DATASET_CLASSES[ds]}: "
            "pass the right --dataset or --num-classes"
        )

    net = _create(model_name, classes, model_kwargs if model is None or model == ckpt_model else None)
    _load_weights(net, state_dict, model_name)
    config_source = "checkpoint"
    if data_config is None:
        if kind == "timm-train" and raw.get("args") is not None:
            from timm.data import resolve_data_config

            # exactly what train.py resolved for its loaders (args override the model's defaults)
            cfg = resolve_data_config(vars(raw["args"]), model=net)
            data_config = {k: cfg[k] for k in DATA_CONFIG_KEYS if k in cfg}
            config_source = "timm train.py args"
        else:
            data_config = _default_data_config(net, ds)
            config_source = "defaults (checkpoint has none)"
    size = int(data_config["input_size"][-1])
    wrapped = InputContract(
        net,
        size=size,
        mean=tuple(float(v) for v in data_config["mean"]),
        std=tuple(float(v) for v in data_config["std"]),
        crop_pct=float(data_config.get("crop_pct", 1.0)),
        interpolation=str(data_config.get("interpolation", "bilinear")),
    )
    wrapped.eval().to(device)
    metadata: dict[str, Any] = {
        "path": str(path),
        "sha256": file_sha256(path),
        "kind": kind,
        "model": model_name,
        "num_classes": classes,
        "dataset": ds,
        "dataset_inferred_from_classes": inferred,
        "ema": bool(ema),
        "data_config": {
            "input_size": [int(v) for v in data_config["input_size"]],
            "mean": [float(v) for v in data_config["mean"]],
            "std": [float(v) for v in data_config["std"]],
            "interpolation": str(data_config.get("interpolation", "bilinear")),
            "crop_pct": float(data_config.get("crop_pct", 1.0)),
            "source": config_source,
        },
        "input_contract": (
            "images in [0, 1], RGB, NCHW float32; the wrapper resizes batches of another size (shorter "
            f"side to round({size} / crop_pct), center crop {size}) and normalizes (x - mean) / std"
        ),
        **extra,
    }
    return wrapped, metadata
