"""Checkpoint loading (``torch.load(weights_only=True)`` only) and the input-contract wrapper.

The evaluator feeds every model images in [0, 1], NCHW float32. :class:`InputContract` owns the
rest: it resizes to the checkpoint's input size when the batch has another size (shorter side to
``round(size / crop_pct)``, then a center crop, i.e. the 256-resize + 224-crop protocol for
ImageNet) and normalizes with the checkpoint's mean/std. The contract is written into every result.

Five routes are accepted:

1. this project's format (:mod:`robust_eval.checkpoint`): works with no flags;
2. timm ``train.py`` checkpoints (``state_dict``, ``arch``, optional ``state_dict_ema`` (``--ema``),
   ``args`` = ``argparse.Namespace``, allow-listed as a safe global);
3. the AugMix / PixMix / IPMix ``cifar.py`` format (:mod:`robust_eval.reference`): architecture and
   size inferred from the shapes, the papers' normalization;
4. ``robustbench:NAME`` with ``model_dir``: RobustBench's corruption zoo from local files
   (:mod:`robust_eval.zoo`);
5. a bare state_dict: in a reference layout it is recognized, otherwise ``--model NAME
   --num-classes K``; normalization from the architecture's ``pretrained_cfg`` unless flagged.

Where the normalization comes from is recorded (:mod:`robust_eval.data_config`).

Anything else that needs arbitrary unpickling is refused: there is no escape hatch.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robust_eval.checkpoint import DATA_CONFIG_KEYS, DATASETS, FORMAT_VERSION

__all__ = [
    "DATASET_CLASSES",
    "CheckpointError",
    "InputContract",
    "file_sha256",
    "load_checkpoint",
]

#: Classes of the fixed-size data sets (``imagefolder`` has as many as class folders).
DATASET_CLASSES: dict[str, int] = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}


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


@dataclass
class _Parsed:
    """What a checkpoint file says, before the network is built."""

    kind: str
    state: Mapping[str, Any]
    model: str | None = None
    classes: int | None = None
    dataset: str | None = None
    data_config: dict[str, Any] | None = None
    config_source: str = "architecture default"
    config_detail: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _weights(raw: Mapping[str, Any], path: Path, ema: bool) -> Mapping[str, Any]:
    key = "state_dict_ema" if ema else "state_dict"
    if key not in raw:
        raise CheckpointError(f"'{path}' has no {key!r}" + (" (drop --ema)" if ema else ""))
    return raw[key]


def _parse_project(raw: Mapping[str, Any], path: Path, ema: bool) -> _Parsed:
    if int(raw["format_version"]) > FORMAT_VERSION:
        raise CheckpointError(
            f"'{path}' has format_version {raw['format_version']}; this version reads <= {FORMAT_VERSION}"
        )
    missing = [k for k in ("state_dict", "model", "num_classes", "dataset", "data_config") if k not in raw]
    if missing:
        raise CheckpointError(f"'{path}' is missing checkpoint keys {missing}")
    data_config = dict(raw["data_config"])
    absent = [k for k in DATA_CONFIG_KEYS if k not in data_config]
    if absent:
        raise CheckpointError(f"'{path}': data_config is missing {absent}")
    extra = {"class_names": list(raw["class_names"])} if "class_names" in raw else {}
    if isinstance(raw.get("train_args"), dict) and raw["train_args"].get("data_dir"):
        extra["train_data_dir"] = str(raw["train_args"]["data_dir"])  # robust_eval.data.recorded_data_dir
    return _Parsed(
        "robust-eval",
        _weights(raw, path, ema),
        str(raw["model"]),
        int(raw["num_classes"]),
        str(raw["dataset"]),
        data_config,
        "checkpoint",
        "this project's data_config",
        dict(raw.get("model_kwargs") or {}),
        extra,
    )


def _parse_timm(raw: Mapping[str, Any], path: Path, ema: bool) -> _Parsed:
    args = raw.get("args")
    parsed = _Parsed("timm-train", _weights(raw, path, ema), raw.get("arch") or getattr(args, "model", None))
    parsed.classes = getattr(args, "num_classes", None)
    if args is not None:
        parsed.dataset = _dataset_from_timm_args(args)
        parsed.extra["train_args"] = {
            k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))
        }
    return parsed


def _parse_reference(raw: Mapping[str, Any]) -> _Parsed:
    from robust_eval.reference import infer_reference_arch

    state = _strip_prefix(raw["state_dict"])
    arch = infer_reference_arch(str(raw["model"]), state)
    ds = str(raw.get("dataset", "")).lower().replace("-", "") or None
    parsed = _Parsed("reference", state, arch.model, arch.num_classes, ds if ds in DATASETS else None)
    parsed.model_kwargs = dict(arch.model_kwargs)
    parsed.config_source = "reference format"
    parsed.config_detail = (
        f"AugMix/PixMix/IPMix cifar.py checkpoint ({arch.description}): Normalize(0.5, 0.5), 32 px"
    )
    parsed.extra["reference"] = {
        "model": str(raw["model"]),
        "architecture": arch.description,
        "epoch": raw.get("epoch"),
        "best_acc": raw.get("best_acc"),
    }
    return parsed


def _unknown_format(raw: Mapping[str, Any], path: Path) -> CheckpointError:
    keys = sorted(map(str, raw))[:8]
    inner = next((v for v in raw.values() if isinstance(v, Mapping)), {})
    params = [str(k) for k, v in inner.items() if isinstance(v, torch.Tensor)][:4] if inner else []
    return CheckpointError(
        f"'{path}' matches no known checkpoint format (top-level keys: {keys}"
        + (f"; parameters like {params}" if params else "")
        + "): save {'state_dict': ...} or a bare state_dict and pass --model NAME --num-classes K "
        "(and --mean/--std), or use robust_eval.checkpoint.save_checkpoint"
    )


def _parse(raw: Mapping[str, Any], path: Path, ema: bool) -> _Parsed:
    from robust_eval.reference import is_reference_checkpoint

    if "format_version" in raw:
        return _parse_project(raw, path, ema)
    if is_reference_checkpoint(raw):
        if ema:
            raise CheckpointError(
                f"'{path}' is a reference cifar.py checkpoint: it has no EMA weights (drop --ema)"
            )
        return _parse_reference(raw)
    if "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        return _parse_timm(raw, path, ema)
    if all(isinstance(v, torch.Tensor) for v in raw.values()):
        return _Parsed("state_dict", raw)
    raise _unknown_format(raw, path)


def _guess_reference_kind(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The reference architecture whose characteristic parameter a bare state_dict has, if any."""
    marks = {
        "wrn": "block1.layer.0.conv1.weight",
        "resnext": "stage_1.0.conv_conv.weight",
        "densenet": "dense1.0.conv1.weight",
        "resnet": "conv2_x.0.residual_function.0.weight",
    }
    return next((kind for kind, key in marks.items() if key in state_dict), None)


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


def _load_zoo(
    spec: str, dataset: str | None, model_dir: str | os.PathLike[str] | None, threat_model: str
) -> tuple[_Parsed, nn.Module, Path]:
    """A RobustBench entry from RobustBench's local layout (robust_eval.zoo): parsed info, network, file."""
    from robust_eval import zoo

    name = spec[len(zoo.PREFIX) :]
    try:
        entry, ds, path = zoo.zoo_entry(name, dataset, threat_model, Path(model_dir) if model_dir else None)
        state, norm, detail = zoo.unwrap(entry, _torch_load(path), ds)
    except zoo.ZooError as exc:
        raise CheckpointError(str(exc)) from None
    classes = DATASET_CLASSES[ds]
    net = zoo.build(entry, classes)
    _load_weights(net, _strip_prefix(state), f"{zoo.PREFIX}{name} ({entry.build})")
    mean, std = norm if norm is not None else ((0.0,) * 3, (1.0,) * 3)
    parsed = _Parsed("robustbench", state, entry.build.partition(":")[2] or entry.build, classes, ds)
    parsed.data_config = {
        "input_size": [3, entry.size, entry.size],
        "mean": list(mean),
        "std": list(std),
        "interpolation": entry.interpolation,
        "crop_pct": entry.crop_pct,
    }
    parsed.config_source = "reference format"
    parsed.config_detail = detail + ("" if norm is not None else " (raw [0, 1] inputs, no normalization)")
    parsed.extra.update(zoo_entry=name, architecture=entry.architecture, threat_model=threat_model)
    return parsed, net, path


def _resolve_dataset(ds: str | None, classes: int) -> tuple[str, bool]:
    if ds is None:
        guess = {10: "cifar10", 100: "cifar100", 1000: "imagenet"}.get(classes)
        if guess is None:
            raise CheckpointError(
                f"cannot tell the data set of a {classes}-class model: pass --dataset ({', '.join(DATASETS)})"
            )
        return guess, True
    if ds in DATASET_CLASSES and DATASET_CLASSES[ds] != classes:
        raise CheckpointError(
            f"the model has {classes} output classes but {ds} has {DATASET_CLASSES[ds]}: "
            "pass the right --dataset or --num-classes"
        )
    return ds, False


def _legacy_layout(
    state_dict: dict[str, torch.Tensor], model_name: str, parsed: _Parsed
) -> dict[str, torch.Tensor]:
    """Weights of timm_ext's CIFAR nets in their earlier layout (``blocks.N``) renamed to the current one."""
    from timm_ext.models import convert_legacy_state_dict, default_cfgs

    if model_name not in default_cfgs or not any(k.startswith("blocks.") for k in state_dict):
        return state_dict
    parsed.extra["converted_from_earlier_timm_ext_layout"] = True
    return convert_legacy_state_dict(state_dict)


def _load_file(
    path: Path, model: str | None, num_classes: int | None, dataset: str | None, ema: bool
) -> tuple[_Parsed, nn.Module]:
    """Parse a checkpoint file, build its network and load the weights strictly."""
    raw = _torch_load(path)
    if not isinstance(raw, Mapping) or not raw:
        raise CheckpointError(
            f"'{path}' holds a {type(raw).__name__}, expected a dict (state_dict or checkpoint)"
        )
    parsed = _parse(raw, path, ema)
    state_dict = _strip_prefix(parsed.state)
    if parsed.kind == "state_dict" and model is None and (kind := _guess_reference_kind(state_dict)):
        from robust_eval.reference import infer_reference_arch

        arch = infer_reference_arch(kind, state_dict)
        parsed.model, parsed.classes, parsed.model_kwargs = (
            arch.model,
            arch.num_classes,
            dict(arch.model_kwargs),
        )
        parsed.extra["inferred_architecture"] = arch.description
    model_name = model or parsed.model
    if not model_name:
        raise CheckpointError(
            f"'{path}' does not say which architecture it is: pass --model NAME (a timm name)"
        )
    classes = num_classes if num_classes is not None else parsed.classes
    if classes is None:
        raise CheckpointError(f"'{path}' does not say how many classes it has: pass --num-classes K")
    parsed.classes = int(classes)
    kwargs = parsed.model_kwargs if model is None or model == parsed.model else None
    net = _create(model_name, parsed.classes, kwargs)
    state_dict = _legacy_layout(state_dict, model_name, parsed)
    _load_weights(net, state_dict, model_name)
    parsed.model = model_name
    if parsed.kind == "timm-train" and raw.get("args") is not None:
        from timm.data import resolve_data_config

        # exactly what train.py resolved for its loaders (args override the model's defaults)
        cfg = resolve_data_config(vars(raw["args"]), model=net)
        parsed.data_config = {k: cfg[k] for k in DATA_CONFIG_KEYS if k in cfg}
        parsed.config_source, parsed.config_detail = "checkpoint", "timm train.py args"
    return parsed, net


def load_checkpoint(
    path: str | os.PathLike[str],
    model: str | None = None,
    num_classes: int | None = None,
    dataset: str | None = None,
    ema: bool = False,
    device: str | torch.device = "cpu",
    data_overrides: Mapping[str, Any] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    threat_model: str = "corruptions",
) -> tuple[InputContract, dict[str, Any]]:
    """Load a checkpoint safely and wrap it in the [0, 1] input contract.

    Args:
        path: the checkpoint file, or ``robustbench:NAME`` (a RobustBench entry under ``model_dir``).
        model, num_classes, dataset: override / supply metadata (required for a bare state_dict not in
            a reference layout; ``dataset`` defaults to the checkpoint's, else by class count).
        ema: use ``state_dict_ema`` (timm train.py and this project's format).
        device: where the wrapped model is put (eval mode).
        data_overrides: fields from :func:`robust_eval.data_config.parse_overrides` (the flags).
        model_dir, threat_model: RobustBench's local layout ``model_dir/<dataset>/<threat_model>/``.

    Returns:
        ``(wrapped_model, metadata)``; ``metadata`` (JSON-native) holds the file's sha256, the kind of
        checkpoint, model name, class count, data set and the input contract with its sources.

    Raises:
        CheckpointError: unsafe file, unknown model or format, missing metadata, weights mismatch.
    """
    from robust_eval import data_config as dc
    from robust_eval.zoo import PREFIX

    if dataset is not None and dataset not in DATASETS:
        raise CheckpointError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if str(path).startswith(PREFIX):
        parsed, net, path = _load_zoo(str(path), dataset, model_dir, threat_model)
    else:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"checkpoint '{path}' does not exist")
        parsed, net = _load_file(path, model, num_classes, dataset, ema)
    assert parsed.classes is not None and parsed.model is not None
    ds, inferred = _resolve_dataset(dataset or parsed.dataset, parsed.classes)
    base = parsed.data_config if parsed.data_config is not None else dc.architecture_default(net)
    config = dc.normalized_config(base, parsed.config_source, data_overrides or {}, parsed.config_detail)
    size = int(config["input_size"][-1])
    wrapped = InputContract(
        net, size, tuple(config["mean"]), tuple(config["std"]), config["crop_pct"], config["interpolation"]
    )
    wrapped.eval().to(device)
    metadata: dict[str, Any] = {
        "path": str(path),
        "sha256": file_sha256(path),
        "kind": parsed.kind,
        "model": parsed.model,
        "num_classes": parsed.classes,
        "dataset": ds,
        "dataset_inferred_from_classes": inferred,
        "ema": bool(ema),
        "data_config": config,
        "input_contract": (
            "images in [0, 1], RGB, NCHW float32; the wrapper resizes batches of another size (shorter "
            f"side to round({size} / crop_pct), center crop {size}) and normalizes (x - mean) / std"
        ),
        **({"model_kwargs": parsed.model_kwargs} if parsed.model_kwargs else {}),
        **parsed.extra,
    }
    return wrapped, metadata
