"""Checkpoint loading (``torch.load(weights_only=True)`` only) and the input-contract wrapper.

The evaluator feeds every model images in [0, 1], NCHW float32. :class:`InputContract` owns the
rest: it resizes to the checkpoint's input size when the batch has another size (shorter side to
``round(size / crop_pct)``, then a center crop, i.e. the 256-resize + 224-crop protocol for
ImageNet) and normalizes with the checkpoint's mean/std. The contract is written into every result.

What a file is comes from one table, :data:`FORMATS`: each row names a format, says how a loaded
file is recognised and which parser turns it into a :class:`CheckpointInfo` (the one record the CLI
and the report read). The first row that recognises the file wins:

1. ``robust-eval``: this project's format (:mod:`robust_mix.checkpoint`): works with no flags;
2. ``reference``: the AugMix / PixMix / IPMix ``cifar.py`` format (:mod:`robust_eval.reference`):
   architecture and size inferred from the shapes, the papers' normalization;
3. ``torchvision-alexnet``: torchvision's AlexNet state_dict (``alexnet-owt-7be5be79.pth``, the
   baseline network of ImageNet-C/-P), built with ``torchvision.models.alexnet(weights=None)``;
4. ``timm-train``: timm ``train.py`` checkpoints (``state_dict``, ``arch``, optional
   ``state_dict_ema`` (``--ema``), ``args`` = ``argparse.Namespace``, allow-listed as a safe global);
5. ``state_dict``: a bare state_dict: in a reference layout it is recognised, otherwise ``--model
   NAME --num-classes K``; normalization from the architecture's ``pretrained_cfg`` unless flagged.

``robustbench:NAME`` with ``model_dir`` is not a file format but a source: RobustBench's corruption
zoo from local files (:mod:`robust_eval.zoo`).

**Adding a format** = one parser ``(raw, request) -> CheckpointInfo`` and one :class:`CheckpointFormat`
row in :data:`FORMATS` (before any row that would also recognise its files); a format whose network
is not a timm model also gives the row a ``build`` function.

Constructor arguments stored in a checkpoint (``model_kwargs``) reach the model builder only through
an allow-list of architecture arguments with JSON-scalar values (:data:`ARCHITECTURE_KWARGS`): a
file cannot make timm open a second file (``checkpoint_path``), download (``pretrained``) or pass
objects. Where the normalization comes from is recorded (:mod:`robust_eval.checkpoints.data_config`). Anything
else that needs arbitrary unpickling is refused: there is no escape hatch.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import os
import pickle
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robust_eval.constants import NUM_CLASSES
from robust_mix.checkpoint import DATA_CONFIG_KEYS, DATASETS, FORMAT_VERSION
from robust_mix.errors import RobustMixError

__all__ = [
    "ALEXNET_KEYS",
    "ARCHITECTURE_KWARGS",
    "BARE_CHECKPOINT_FLAGS",
    "DATASET_CLASSES",
    "FORMATS",
    "CheckpointError",
    "CheckpointFormat",
    "CheckpointInfo",
    "InputContract",
    "ParseRequest",
    "checked_model_kwargs",
    "checkpoint_format",
    "file_sha256",
    "find_format",
    "load_checkpoint",
]

#: Classes of the fixed-size data sets (``imagefolder`` has as many as class folders).
DATASET_CLASSES: dict[str, int] = NUM_CLASSES  # robust_eval.constants (one table)

#: Constructor arguments a checkpoint may pass to the model builder (architecture shape only; each
#: value a JSON scalar, or a flat list of integers such as blocks per stage or an (H, W) size).
#: Everything else -- ``checkpoint_path``, ``pretrained``, ``pretrained_cfg(_overlay)``,
#: ``cache_dir``, ``features_only``, layer classes, callables -- is refused.
ARCHITECTURE_KWARGS: frozenset[str] = frozenset(
    {
        # this project's CIFAR nets (timm_ext.models) and the reference layouts
        "depth",
        "widen_factor",
        "cardinality",
        "base_width",
        "growth_rate",
        "reduction",
        "layers",
        # common timm architecture arguments
        "img_size",
        "patch_size",
        "in_chans",
        "embed_dim",
        "num_heads",
        "mlp_ratio",
        "global_pool",
        "class_token",
        "output_stride",
        "stem_width",
        "drop_rate",
        "drop_path_rate",
    }
)


class CheckpointError(ValueError, RobustMixError):
    """A checkpoint cannot be loaded safely or does not match the requested model / data set."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What a checkpoint is: the one record a parser returns and :func:`load_checkpoint` completes.

    A parser fills what the file says (``None`` = the file does not say); :func:`load_checkpoint`
    returns it resolved: ``model`` / ``num_classes`` / ``dataset`` known, ``data_config`` the
    normalized input contract (:func:`robust_eval.checkpoints.data_config.normalized_config`), ``path`` /
    ``sha256`` / ``ema`` set and ``state_dict`` emptied (the weights are in the model).

    Attributes:
        kind: the format's name (a :data:`FORMATS` row, or ``robustbench``).
        state_dict: the weights as stored (prefixes not yet stripped).
        model: the architecture's name (a timm name; ``alexnet`` for torchvision's AlexNet).
        num_classes: output classes.
        dataset: one of ``robust_mix.checkpoint.DATASETS``.
        data_config: input size / mean / std / interpolation / crop_pct, when the file says.
        config_source, config_detail: where ``data_config`` comes from (``robust_eval.checkpoints.data_config.SOURCES``).
        model_kwargs: extra constructor arguments (checked against :data:`ARCHITECTURE_KWARGS`).
        extras: further JSON-native facts recorded in the result (``train_args``, ``class_names``, ...).
        dataset_inferred_from_classes: ``dataset`` was guessed from the class count.
    """

    kind: str
    state_dict: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    model: str | None = None
    num_classes: int | None = None
    dataset: str | None = None
    data_config: Mapping[str, Any] | None = None
    config_source: str = "architecture default"
    config_detail: str | None = None
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)
    extras: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None
    sha256: str | None = None
    ema: bool = False
    dataset_inferred_from_classes: bool = False

    @property
    def input_size(self) -> int:
        """The model's input side in pixels (from the data config)."""
        if self.data_config is None:
            raise CheckpointError(f"{self.kind} checkpoint has no data config yet")
        return int(self.data_config["input_size"][-1])

    def to_dict(self) -> dict[str, Any]:
        """The result file's ``checkpoint`` block (JSON-native, a fresh copy)."""
        size = self.input_size
        out: dict[str, Any] = {
            "path": self.path,
            "sha256": self.sha256,
            "kind": self.kind,
            "model": self.model,
            "num_classes": self.num_classes,
            "dataset": self.dataset,
            "dataset_inferred_from_classes": self.dataset_inferred_from_classes,
            "ema": bool(self.ema),
            "data_config": dict(self.data_config or {}),
            "input_contract": (
                "images in [0, 1], RGB, NCHW float32; the wrapper resizes batches of another size (shorter "
                f"side to round({size} / crop_pct), center crop {size}) and normalizes (x - mean) / std"
            ),
            **({"model_kwargs": dict(self.model_kwargs)} if self.model_kwargs else {}),
            **dict(self.extras),
        }
        return copy.deepcopy(out)


@dataclass(frozen=True)
class ParseRequest:
    """What the caller asked for, as far as a parser needs it: the file, ``--ema``, ``--model``."""

    path: Path
    ema: bool = False
    model: str | None = None


@dataclass(frozen=True)
class CheckpointFormat:
    """One checkpoint format: its name, how a loaded file is recognised, and its parser.

    ``build(model, num_classes, model_kwargs)`` makes the network (default: timm's
    ``create_model``); ``data_config(raw, net)`` gives the input config once the network exists,
    for formats whose config depends on it (timm ``train.py`` args resolved against the model).
    """

    name: str
    recognise: Callable[[Mapping[str, Any]], bool]
    parse: Callable[[Mapping[str, Any], ParseRequest], CheckpointInfo]
    build: Callable[[str, int, Mapping[str, Any]], nn.Module] | None = None
    data_config: Callable[[Mapping[str, Any], nn.Module], dict[str, Any] | None] | None = None


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


#: How the files ``torch.load`` reads begin: a zip archive (``torch.save`` since torch 1.6), a pickle
#: of protocol 2..5 (the legacy format), or a tar archive (``ustar`` at byte 257, torch < 0.4).
_ZIP_MAGIC = b"PK\x03\x04"
_TAR_MAGIC_OFFSET = 257


def _check_checkpoint_file(path: Path) -> None:
    """Refuse what is not a regular file holding a PyTorch checkpoint, before ``torch.load`` sees it.

    A FIFO or device would block the reader, a text file would fail inside the unpickler with an
    unrelated message; both are named here (symlinks are followed: their target is checked).
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(
            f"checkpoint '{path}' is not a regular file (a FIFO, socket, device or folder): "
            "pass the .pt/.pth file torch.save wrote"
        )
    if info.st_size == 0:
        raise CheckpointError(f"'{path}' is empty (0 bytes): not a PyTorch checkpoint")
    try:
        with open(path, "rb") as fh:
            head = fh.read(_TAR_MAGIC_OFFSET + 5)
    except OSError as exc:
        raise CheckpointError(f"checkpoint '{path}' cannot be read: {exc.strerror or exc}") from None
    zip_or_pickle = head.startswith(_ZIP_MAGIC) or (
        head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")
    )
    if not (zip_or_pickle or head[_TAR_MAGIC_OFFSET:] == b"ustar"):
        raise CheckpointError(
            f"'{path}' is not a PyTorch checkpoint: it starts with {head[:8]!r}, where torch.save writes a "
            "zip archive (b'PK\\x03\\x04') or a pickle (b'\\x80\\x02')"
        )


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with ``argparse.Namespace`` allow-listed (timm train.py),
    after :func:`_check_checkpoint_file`."""
    _check_checkpoint_file(path)
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
            "torch.save(model.state_dict()) or robust_mix.checkpoint.save_checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError, KeyError, ValueError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise CheckpointError(
            f"'{path}' is not a readable torch checkpoint (truncated or damaged?): {reason}"
        ) from None


def _strip_prefix(state_dict: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"state_dict entry {key!r} is a {type(value).__name__}, expected a tensor")
        while key.startswith("module."):
            key = key[len("module.") :]
        out[key] = value
    return out


def _is_state_dict(raw: Mapping[str, Any]) -> bool:
    return all(isinstance(v, torch.Tensor) for v in raw.values())


def _weights(raw: Mapping[str, Any], path: Path, ema: bool) -> Mapping[str, Any]:
    key = "state_dict_ema" if ema else "state_dict"
    if key not in raw:
        raise CheckpointError(f"'{path}' has no {key!r}" + (" (drop --ema)" if ema else ""))
    return raw[key]


def _no_ema(request: ParseRequest, what: str) -> None:
    if request.ema:
        raise CheckpointError(f"'{request.path}' is {what}: it has no EMA weights (drop --ema)")


# ------------------------------------------------------------------------------------------------
# one parser per format
# ------------------------------------------------------------------------------------------------


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: This project's checkpoint keys with the type each must have: (check, what to say when it fails).
_PROJECT_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "format_version": (lambda v: _is_count(v) and v >= 1, "a whole number >= 1"),
    "state_dict": (lambda v: isinstance(v, Mapping), "a dict of tensors"),
    "model": (lambda v: isinstance(v, str) and bool(v), "a timm model name"),
    "num_classes": (lambda v: _is_count(v) and v >= 1, "a whole number >= 1"),
    "dataset": (lambda v: v in DATASETS, f"one of {', '.join(DATASETS)}"),
    "data_config": (lambda v: isinstance(v, Mapping), "a dict"),
    "class_names": (lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v), "a list of names"),
    "model_kwargs": (lambda v: v is None or isinstance(v, Mapping), "a dict"),
    "state_dict_ema": (lambda v: isinstance(v, Mapping), "a dict of tensors"),
}


def _parse_project(raw: Mapping[str, Any], request: ParseRequest) -> CheckpointInfo:
    path = request.path
    missing = [k for k in ("state_dict", "model", "num_classes", "dataset", "data_config") if k not in raw]
    if missing:
        raise CheckpointError(f"'{path}' is missing checkpoint keys {missing}")
    for key, (ok, expected) in _PROJECT_FIELDS.items():
        if key in raw and not ok(raw[key]):
            raise CheckpointError(f"'{path}': {key} must be {expected}, got {raw[key]!r:.80}")
    if raw["format_version"] > FORMAT_VERSION:
        raise CheckpointError(
            f"'{path}' has format_version {raw['format_version']}; this version reads <= {FORMAT_VERSION}"
        )
    data_config = dict(raw["data_config"])
    absent = [k for k in DATA_CONFIG_KEYS if k not in data_config]
    if absent:
        raise CheckpointError(f"'{path}': data_config is missing {absent}")
    kwargs = raw.get("model_kwargs") or {}
    names = raw.get("class_names")
    if names is not None and len(names) > raw["num_classes"]:
        raise CheckpointError(f"'{path}': {len(names)} class_names for only {raw['num_classes']} classes")
    extra = {"class_names": list(names)} if names is not None else {}
    if isinstance(raw.get("train_args"), dict) and raw["train_args"].get("data_dir"):
        extra["train_data_dir"] = str(raw["train_args"]["data_dir"])  # robust_eval.data.recorded_data_dir
    return CheckpointInfo(
        "robust-eval",
        _weights(raw, path, request.ema),
        str(raw["model"]),
        int(raw["num_classes"]),
        str(raw["dataset"]),
        data_config,
        "checkpoint",
        "this project's data_config",
        dict(kwargs),
        extra,
    )


def _parse_reference(raw: Mapping[str, Any], request: ParseRequest) -> CheckpointInfo:
    from robust_eval.reference import infer_reference_arch

    _no_ema(request, "a reference cifar.py checkpoint")
    state = _strip_prefix(raw["state_dict"])
    arch = infer_reference_arch(str(raw["model"]), state)
    ds = str(raw.get("dataset", "")).lower().replace("-", "") or None
    return CheckpointInfo(
        "reference",
        state,
        arch.model,
        arch.num_classes,
        ds if ds in DATASETS else None,
        config_source="reference format",
        config_detail=f"AugMix/PixMix/IPMix cifar.py checkpoint ({arch.description}): Normalize(0.5, 0.5), 32 px",
        model_kwargs=dict(arch.model_kwargs),
        extras={
            "reference": {
                "model": str(raw["model"]),
                "architecture": arch.description,
                "epoch": raw.get("epoch"),
                "best_acc": raw.get("best_acc"),
            }
        },
    )


#: torchvision's AlexNet parameters (``torchvision.models.alexnet``), in file order.
ALEXNET_KEYS: tuple[str, ...] = tuple(
    f"{block}.{i}.{p}"
    for block, layers in (("features", (0, 3, 6, 8, 10)), ("classifier", (1, 4, 6)))
    for i in layers
    for p in ("weight", "bias")
)


def _is_alexnet(raw: Mapping[str, Any]) -> bool:
    return set(raw) == set(ALEXNET_KEYS) and _is_state_dict(raw)


def _parse_alexnet(raw: Mapping[str, Any], request: ParseRequest) -> CheckpointInfo:
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    _no_ema(request, "a torchvision AlexNet state_dict")
    classes = int(raw["classifier.6.weight"].shape[0])
    config = {
        "input_size": [3, 224, 224],
        "mean": list(IMAGENET_DEFAULT_MEAN),
        "std": list(IMAGENET_DEFAULT_STD),
        "interpolation": "bilinear",
        "crop_pct": 224 / 256,
    }
    detail = "torchvision AlexNet weights: resize 256, center crop 224, ImageNet mean/std (IMAGENET1K_V1)"
    return CheckpointInfo(
        "torchvision-alexnet",
        raw,
        "alexnet",
        classes,
        "imagenet" if classes == DATASET_CLASSES["imagenet"] else None,
        config,
        "reference format",
        detail,
    )


def _build_alexnet(model: str, num_classes: int, model_kwargs: Mapping[str, Any]) -> nn.Module:
    import torchvision

    if model != "alexnet" or model_kwargs:
        raise CheckpointError(
            f"a torchvision AlexNet state_dict builds torchvision's alexnet, not {model!r}: drop --model"
        )
    return torchvision.models.alexnet(weights=None, num_classes=num_classes)


def _dataset_from_timm_args(args: Any) -> str | None:
    name = str(getattr(args, "dataset", "") or "").lower()
    for ds in ("cifar100", "cifar10", "imagenet"):
        if ds in name.replace("-", ""):
            return ds
    return (
        "imagefolder" if name in ("", "imagefolder", "folder") and getattr(args, "data_dir", None) else None
    )


def _parse_timm(raw: Mapping[str, Any], request: ParseRequest) -> CheckpointInfo:
    args = raw.get("args")
    extras: dict[str, Any] = {}
    if args is not None:
        extras["train_args"] = {
            k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))
        }
    return CheckpointInfo(
        "timm-train",
        _weights(raw, request.path, request.ema),
        raw.get("arch") or getattr(args, "model", None),
        getattr(args, "num_classes", None),
        _dataset_from_timm_args(args) if args is not None else None,
        extras=extras,
    )


def _timm_args_config(raw: Mapping[str, Any], net: nn.Module) -> dict[str, Any] | None:
    """Exactly what train.py resolved for its loaders (its args override the model's defaults)."""
    if raw.get("args") is None:
        return None
    from timm.data import resolve_data_config

    cfg = resolve_data_config(vars(raw["args"]), model=net)
    return {k: cfg[k] for k in DATA_CONFIG_KEYS if k in cfg}


def _guess_reference_kind(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The reference architecture whose characteristic parameter a bare state_dict has, if any."""
    marks = {
        "wrn": "block1.layer.0.conv1.weight",
        "resnext": "stage_1.0.conv_conv.weight",
        "densenet": "dense1.0.conv1.weight",
        "resnet": "conv2_x.0.residual_function.0.weight",
    }
    return next((kind for kind, key in marks.items() if key in state_dict), None)


def _parse_state_dict(raw: Mapping[str, Any], request: ParseRequest) -> CheckpointInfo:
    _no_ema(request, "a bare state_dict")
    state = _strip_prefix(raw)
    kind = _guess_reference_kind(state) if request.model is None else None
    if kind is None:
        return CheckpointInfo("state_dict", raw)
    from robust_eval.reference import infer_reference_arch

    arch = infer_reference_arch(kind, state)
    return CheckpointInfo(
        "state_dict",
        raw,
        arch.model,
        arch.num_classes,
        model_kwargs=dict(arch.model_kwargs),
        extras={"inferred_architecture": arch.description},
    )


def _is_project(raw: Mapping[str, Any]) -> bool:
    return "format_version" in raw


def _is_reference(raw: Mapping[str, Any]) -> bool:
    from robust_eval.reference import is_reference_checkpoint

    return is_reference_checkpoint(raw)


def _is_timm_train(raw: Mapping[str, Any]) -> bool:
    return isinstance(raw.get("state_dict"), Mapping)


#: The checkpoint formats, tried in order; the first whose ``recognise`` accepts the file parses it.
FORMATS: tuple[CheckpointFormat, ...] = (
    CheckpointFormat("robust-eval", _is_project, _parse_project),
    CheckpointFormat("reference", _is_reference, _parse_reference),
    CheckpointFormat("torchvision-alexnet", _is_alexnet, _parse_alexnet, build=_build_alexnet),
    CheckpointFormat("timm-train", _is_timm_train, _parse_timm, data_config=_timm_args_config),
    CheckpointFormat("state_dict", _is_state_dict, _parse_state_dict),
)


def _unknown_format(raw: Mapping[str, Any], path: Path) -> CheckpointError:
    keys = sorted(map(str, raw))[:8]
    inner = next((v for v in raw.values() if isinstance(v, Mapping)), {})
    params = [str(k) for k, v in inner.items() if isinstance(v, torch.Tensor)][:4] if inner else []
    return CheckpointError(
        f"'{path}' matches no known checkpoint format (top-level keys: {keys}"
        + (f"; parameters like {params}" if params else "")
        + "): save {'state_dict': ...} or a bare state_dict and pass --model NAME --num-classes K "
        "(and --mean/--std), or use robust_mix.checkpoint.save_checkpoint"
    )


def checkpoint_format(path: str | os.PathLike[str]) -> str:
    """The name of the :data:`FORMATS` row a checkpoint file is in (loads it with ``weights_only``)."""
    path = Path(path)
    raw = _torch_load(path)
    if not isinstance(raw, Mapping) or not raw:
        raise CheckpointError(
            f"'{path}' holds a {type(raw).__name__}, expected a dict (state_dict or checkpoint)"
        )
    return find_format(raw, path).name


def find_format(raw: Mapping[str, Any], path: Path) -> CheckpointFormat:
    """The :data:`FORMATS` row that recognises a loaded file; :class:`CheckpointError` if none does."""
    fmt = next((f for f in FORMATS if f.recognise(raw)), None)
    if fmt is None:
        raise _unknown_format(raw, path)
    return fmt


# ------------------------------------------------------------------------------------------------
# building the network
# ------------------------------------------------------------------------------------------------


def _json_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))


def checked_model_kwargs(kwargs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``kwargs`` if every key is an architecture argument (:data:`ARCHITECTURE_KWARGS`) with a JSON
    scalar value (or a flat list of integers); else :class:`CheckpointError` naming the key."""
    for key, value in kwargs.items():
        if key not in ARCHITECTURE_KWARGS:
            raise CheckpointError(
                f"{where}: model_kwargs key {key!r} is not an allowed architecture argument (allowed: "
                f"{', '.join(sorted(ARCHITECTURE_KWARGS))}); re-save the checkpoint without it"
            )
        ints = isinstance(value, (list, tuple)) and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        )
        if not (_json_scalar(value) or ints):
            raise CheckpointError(
                f"{where}: model_kwargs[{key!r}] is a {type(value).__name__}; only numbers, strings, "
                "booleans, null and lists of integers are accepted"
            )
    return dict(kwargs)


def _create(model_name: str, num_classes: int, model_kwargs: Mapping[str, Any]) -> nn.Module:
    import timm

    import timm_ext.models  # noqa: F401 - registers the CIFAR architectures (wrn40_4, ...) with timm

    if not timm.is_model(model_name):
        close = timm.list_models(f"*{model_name.split('_')[0]}*")[:5]
        raise CheckpointError(
            f"unknown model {model_name!r}: not a timm model name"
            + (f" (similar: {', '.join(close)})" if close else "")
        )
    try:
        return timm.create_model(model_name, pretrained=False, num_classes=num_classes, **model_kwargs)
    except Exception as exc:  # timm raises many kinds for bad kwargs
        raise CheckpointError(f"could not build {model_name!r} with {num_classes} classes: {exc}") from None


#: Architecture arguments that count layers or blocks: a network of that many layers holds at least
#: that many tensors, so a value above the checkpoint's tensor count cannot be what it holds.
_COUNT_KWARGS: tuple[str, ...] = ("depth", "layers")


def _bound_claims(kwargs: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor], where: str) -> None:
    """Refuse layer counts larger than the number of tensors the checkpoint holds (a few bytes must not
    make the builder construct a million blocks)."""
    held = len(state_dict)
    for key in _COUNT_KWARGS:
        value = kwargs.get(key)
        claimed = sum(value) if isinstance(value, (list, tuple)) else value
        if isinstance(claimed, (int, float)) and claimed > held:
            raise CheckpointError(
                f"{where}: model_kwargs {key}={value!r} asks for more layers than the {held} tensors the "
                "checkpoint holds; the file is damaged or crafted"
            )


def _fits_shell(
    build: Callable[[str, int, Mapping[str, Any]], nn.Module],
    model_name: str,
    classes: int,
    kwargs: Mapping[str, Any],
    state_dict: dict[str, torch.Tensor],
) -> None:
    """Build the network on the ``meta`` device (shapes only, no memory) and check the weights fit
    before the real build allocates: a checkpoint cannot make the process allocate a network far
    larger than the tensors it holds. Architectures that cannot be built on ``meta`` are checked
    after the real build instead."""
    try:
        with torch.device("meta"):
            shell = build(model_name, classes, kwargs)
    except CheckpointError:
        return
    _check_fit(shell.state_dict(), state_dict, model_name)


def _check_fit(own: Mapping[str, torch.Tensor], state_dict: dict[str, torch.Tensor], model_name: str) -> None:
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


def _load_weights(net: nn.Module, state_dict: dict[str, torch.Tensor], model_name: str) -> None:
    _check_fit(net.state_dict(), state_dict, model_name)
    net.load_state_dict(state_dict, strict=True)


def _filtered(
    state_dict: dict[str, torch.Tensor], model_name: str, extras: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """The weights in the network's names: a timm_ext model's ``checkpoint_filter_fn`` maps its foreign
    layouts (this package's earlier ``blocks.N``, RobustBench's) to them; recorded in ``extras``."""
    from timm_ext.models import checkpoint_filter, has_legacy_blocks

    filter_fn = checkpoint_filter(model_name)
    if filter_fn is None:
        return state_dict
    converted = filter_fn(state_dict, None)
    if converted.keys() != state_dict.keys():
        legacy = has_legacy_blocks(state_dict)
        extras["converted_from_earlier_timm_ext_layout" if legacy else "converted_from_foreign_layout"] = True
    return converted


def _load_zoo(
    spec: str, dataset: str | None, model_dir: str | os.PathLike[str] | None, threat_model: str
) -> tuple[CheckpointInfo, nn.Module]:
    """A RobustBench entry from RobustBench's local layout (robust_eval.zoo): its info and network."""
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
    config = {
        "input_size": [3, entry.size, entry.size],
        "mean": list(mean),
        "std": list(std),
        "interpolation": entry.interpolation,
        "crop_pct": entry.crop_pct,
    }
    info = CheckpointInfo(
        "robustbench",
        {},
        entry.build.partition(":")[2] or entry.build,
        classes,
        ds,
        config,
        "reference format",
        detail + ("" if norm is not None else " (raw [0, 1] inputs, no normalization)"),
        extras={"zoo_entry": name, "architecture": entry.architecture, "threat_model": threat_model},
        path=str(path),
    )
    return info, net


def _load_file(
    path: Path, request: ParseRequest, num_classes: int | None
) -> tuple[CheckpointInfo, nn.Module]:
    """Parse a checkpoint file (its :data:`FORMATS` row), build its network, load the weights strictly."""
    raw = _torch_load(path)
    if not isinstance(raw, Mapping) or not raw:
        raise CheckpointError(
            f"'{path}' holds a {type(raw).__name__}, expected a dict (state_dict or checkpoint)"
        )
    fmt = find_format(raw, path)
    info = fmt.parse(raw, request)
    model_name = request.model or info.model
    classes = num_classes if num_classes is not None else info.num_classes
    if not model_name or classes is None:
        unknown = [
            what for what, known in (("architecture", model_name), ("class count", classes)) if not known
        ]
        raise CheckpointError(f"'{path}' does not say its {' or '.join(unknown)}: {BARE_CHECKPOINT_FLAGS}")
    own_kwargs = request.model is None or request.model == info.model
    kwargs = checked_model_kwargs(info.model_kwargs if own_kwargs else {}, f"checkpoint '{path}'")
    state_dict = _strip_prefix(info.state_dict)
    _bound_claims(kwargs, state_dict, f"checkpoint '{path}'")
    extras = dict(info.extras)
    if fmt.build is None:
        state_dict = _filtered(state_dict, model_name, extras)
    _fits_shell(fmt.build or _create, model_name, int(classes), kwargs, state_dict)
    net = (fmt.build or _create)(model_name, int(classes), kwargs)
    _load_weights(net, state_dict, model_name)
    config = fmt.data_config(raw, net) if fmt.data_config is not None else None
    if config is not None:
        info = dataclasses.replace(
            info, data_config=config, config_source="checkpoint", config_detail="timm train.py args"
        )
    info = dataclasses.replace(
        info, state_dict={}, model=model_name, num_classes=int(classes), model_kwargs=kwargs, extras=extras
    )
    return info, net


#: What a checkpoint without metadata (a bare state_dict, a timm train.py file without ``args``) needs,
#: said in one message wherever something is missing.
BARE_CHECKPOINT_FLAGS = (
    "a checkpoint without metadata needs --model NAME (a timm name) --num-classes K --dataset "
    f"{{{','.join(DATASETS)}}} and, unless the architecture's defaults are how it was trained, --input-size N "
    "--mean M --std S (--crop-pct, 1 for no crop); or re-save it with robust_mix.checkpoint.save_checkpoint"
)

#: Side in pixels of the images of the fixed-size data sets whose size a model's input must match.
_DATASET_SIDES: dict[str, int] = {"cifar10": 32, "cifar100": 32}


def _check_default_size(
    info: CheckpointInfo, base: Mapping[str, Any], overrides: Mapping[str, Any], ds: str
) -> None:
    """A checkpoint that says nothing about its inputs, on a data set of a fixed side, must not run at
    an architecture default made for other images (timm's resnet18: 224 px, bicubic, crop_pct 0.95
    upsamples every 32 px image 7x): refuse, naming ``--input-size`` and the other flags."""
    side = _DATASET_SIDES.get(ds)
    if info.data_config is not None or side is None or "input_size" in overrides:
        return
    default = int(base["input_size"][-1])
    if default != side:
        raise CheckpointError(
            f"'{info.path}' says nothing about its inputs and {info.model}'s default is {default} px "
            f"({base.get('interpolation')}, crop_pct {base.get('crop_pct')}), but {ds} images are {side} px: "
            f"pass --input-size {side} if it was trained on them. {BARE_CHECKPOINT_FLAGS[0].upper()}"
            f"{BARE_CHECKPOINT_FLAGS[1:]}"
        )


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
) -> tuple[InputContract, CheckpointInfo]:
    """Load a checkpoint safely and wrap it in the [0, 1] input contract.

    Args:
        path: the checkpoint file, or ``robustbench:NAME`` (a RobustBench entry under ``model_dir``).
        model: override / supply the architecture name (required for a bare state_dict not in a
            reference layout).
        num_classes: override / supply the class count (same).
        dataset: override / supply the data set (defaults to the checkpoint's, else by class count).
        ema: use ``state_dict_ema`` (timm train.py and this project's format).
        device: where the wrapped model is put (eval mode).
        data_overrides: fields from :func:`robust_eval.checkpoints.data_config.parse_overrides` (the flags).
        model_dir: RobustBench's local layout ``model_dir/<dataset>/<threat_model>/``.
        threat_model: see ``model_dir``.

    Returns:
        ``(wrapped_model, info)``; ``info.to_dict()`` (JSON-native) is the result file's checkpoint
        block: the file's sha256, the kind of checkpoint, model name, class count, data set and the
        input contract with its sources.

    Raises:
        CheckpointError: unsafe file, unknown model or format, missing metadata, weights mismatch,
            model_kwargs outside the allow-list.
    """
    from robust_eval.checkpoints import data_config as dc
    from robust_eval.zoo import PREFIX

    if dataset is not None and dataset not in DATASETS:
        raise CheckpointError(f"--dataset must be one of {', '.join(DATASETS)}, got {dataset!r}")
    if str(path).startswith(PREFIX):
        info, net = _load_zoo(str(path), dataset, model_dir, threat_model)
    else:
        path = Path(path)
        if not path.exists():
            raise CheckpointError(f"checkpoint '{path}' does not exist")
        info, net = _load_file(path, ParseRequest(path, ema, model), num_classes)
        info = dataclasses.replace(info, path=str(path))
    assert info.num_classes is not None and info.path is not None
    ds, inferred = _resolve_dataset(dataset or info.dataset, info.num_classes)
    base = info.data_config if info.data_config is not None else dc.architecture_default(net)
    _check_default_size(info, base, data_overrides or {}, ds)
    where = f"checkpoint '{info.path}'"
    config = dc.normalized_config(base, info.config_source, data_overrides or {}, info.config_detail, where)
    wrapped = InputContract(
        net,
        int(config["input_size"][-1]),
        tuple(config["mean"]),
        tuple(config["std"]),
        config["crop_pct"],
        config["interpolation"],
    )
    wrapped.eval().to(device)
    info = dataclasses.replace(
        info,
        dataset=ds,
        dataset_inferred_from_classes=inferred,
        data_config=config,
        sha256=file_sha256(info.path),
        ema=bool(ema),
    )
    return wrapped, info
