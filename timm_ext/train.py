"""The ``timm train`` trainer: one command for the IPMix paper's whole comparison table.

Built on timm's public API (``create_model``, ``resolve_data_config``, ``create_transform``,
``AugMixDataset``, ``create_optimizer_v2``, ``create_scheduler_v2``, ``Mixup``, ``JsdCrossEntropy``,
``SoftTargetCrossEntropy``, ``ModelEmaV3``, ``NativeScaler``, ``timm.utils.distributed``).

Every option is a field of :class:`TrainConfig`; the CLI (``timm_ext.cli``) exposes each field as a
flag named like timm's ``train.py`` where the concept exists, and ``--config FILE.yaml`` sets any of
them from a file (keys are the field names, ``-`` or ``_``; flags given on the command line win).

Output folder (``--output``)::

    args.yaml     the resolved configuration (feed it back with --config to repeat the run)
    metrics.csv   one row per epoch (rewritten atomically after every epoch)
    last.pth      resume state: model, optimizer, AMP scaler, EMA, epoch, update count, RNG states,
                  metrics history (the schedule is rebuilt from the settings and fast-forwarded)
    best.pth      best validation top-1 so far  } robust_eval checkpoint format
    final.pth     the model after the last epoch } (``robust-eval all final.pth``)

All ``.pth`` files load with ``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import math
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torchvision import transforms as T

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "RESUME_KIND",
    "Cutout",
    "TrainConfig",
    "TrainError",
    "config_from_dict",
    "load_config_file",
    "load_resume_state",
    "train",
]

#: ``--aug`` choices.
AUGMENTATIONS: tuple[str, ...] = (
    "none",
    "ipmix",
    "pixmix",
    "augmix",
    "randaugment",
    "mixup",
    "cutmix",
    "cutout",
)
#: ``--dataset`` choices.
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagefolder")
#: ``--sched`` choices (timm schedulers that need no validation metric).
SCHEDULERS: tuple[str, ...] = ("cosine", "step", "multistep", "tanh", "poly", "constant")
#: Augmentations applied as timm's auto-augment stage (they produce the views of ``--aug-splits``).
_VIEW_AUGS = ("ipmix", "pixmix", "augmix", "randaugment")
#: Default config string per ``--aug`` (override with ``--aa``).
DEFAULT_AA: dict[str, str] = {
    "ipmix": "ipmix-w3-d3-b3-s3",
    "pixmix": "pixmix-k4-b3-s3",
    "augmix": "augmix-m3-w3",
    "randaugment": "rand-m9-mstd0.5-inc1",
}
_AA_PREFIX = {"ipmix": "ipmix", "pixmix": "pixmix", "augmix": "augmix", "randaugment": "rand"}
RESUME_KIND = "timm_ext.train.resume"
RESUME_FORMAT_VERSION = 1
_RUN_FILES = ("last.pth", "final.pth", "best.pth", "metrics.csv", "args.yaml")


class TrainError(ValueError):
    """Bad user input (flags, config file, data folder): reported as one line, exit code 2."""


def _opt(help: str, *flags: str) -> dict[str, Any]:
    return {"help": help, "flags": flags}


@dataclass
class TrainConfig:
    """Every setting of ``timm train`` (field name = config-file key = flag name with ``-``)."""

    # data
    data_dir: str | None = field(
        default=None,
        metadata=_opt(
            "Data folder: for cifar10/cifar100 the folder holding the extracted python archive "
            "(cifar-10-batches-py / cifar-100-python); for imagefolder a folder with train/ and "
            "optionally val/ class sub-folders (or the class folders directly).",
            "--data-dir",
        ),
    )
    dataset: str = field(default="cifar10", metadata=_opt("cifar10 | cifar100 | imagefolder.", "--dataset"))
    num_classes: int | None = field(
        default=None, metadata=_opt("Classifier outputs (default: from the data set).", "--num-classes")
    )
    img_size: int | None = field(
        default=None,
        metadata=_opt(
            "Training/eval image side in px (default: the model's, 32 for CIFAR models).", "--img-size"
        ),
    )
    # model
    model: str = field(
        default="wrn40_4",
        metadata=_opt("timm model name (wrn40_4, resnet50, vit_small_patch16_224, ...).", "--model"),
    )
    pretrained: bool = field(
        default=False,
        metadata=_opt(
            "Start from timm's pretrained weights, read from the local cache only (nothing is downloaded "
            "during a run: fetch them once beforehand, or use --pretrained-file).",
            "--pretrained",
        ),
    )
    pretrained_file: str | None = field(
        default=None,
        metadata=_opt(
            "Start from the weights in this local file (.pth/.safetensors; loaded by timm with "
            "weights_only=True; the classifier is re-initialized for fine-tuning, as with --pretrained).",
            "--pretrained-file",
        ),
    )
    drop: float = field(
        default=0.0, metadata=_opt("Dropout rate (WRN: inside blocks; 0.3 in the paper).", "--drop")
    )
    # augmentation
    aug: str = field(
        default="none",
        metadata=_opt("none | ipmix | pixmix | augmix | randaugment | mixup | cutmix | cutout.", "--aug"),
    )
    aa: str | None = field(
        default=None,
        metadata=_opt(
            "Config string for the --aug method in timm's grammar (default ipmix-w3-d3-b3-s3, pixmix-k4-b3-s3, "
            "augmix-m3-w3, rand-m9-mstd0.5-inc1).",
            "--aa",
        ),
    )
    fractals: str | None = field(
        default=None,
        metadata=_opt(
            "Folder of mixing pictures for ipmix/pixmix (default: $TIMM_EXT_FRACTALS, else procedural).",
            "--fractals",
        ),
    )
    jsd: bool = field(
        default=False,
        metadata=_opt(
            "Jensen-Shannon consistency loss over the clean + augmented views.", "--jsd", "--jsd-loss"
        ),
    )
    aug_splits: int = field(
        default=0,
        metadata=_opt("Views per image (clean + augmented); 3 when --jsd and unset.", "--aug-splits"),
    )
    jsd_alpha: float = field(default=12.0, metadata=_opt("Weight of the JSD term.", "--jsd-alpha"))
    smoothing: float = field(default=0.0, metadata=_opt("Label smoothing.", "--smoothing"))
    mixup: float = field(default=1.0, metadata=_opt("Mixup alpha for --aug mixup.", "--mixup"))
    cutmix: float = field(default=1.0, metadata=_opt("CutMix alpha for --aug cutmix.", "--cutmix"))
    cutout_size: int | None = field(
        default=None,
        metadata=_opt("Cutout square side in px (default: half the image side).", "--cutout-size"),
    )
    hflip: float = field(default=0.5, metadata=_opt("Horizontal flip probability.", "--hflip"))
    crop_pad: int = field(default=4, metadata=_opt("CIFAR random-crop padding in px.", "--crop-pad"))
    interpolation: str | None = field(
        default=None, metadata=_opt("Resize interpolation (default: the model's).", "--interpolation")
    )
    # optimization
    epochs: int = field(default=100, metadata=_opt("Training epochs.", "--epochs"))
    batch_size: int = field(
        default=128,
        metadata=_opt("Images per batch and process (before --aug-splits).", "-b", "--batch-size"),
    )
    lr: float = field(default=0.1, metadata=_opt("Base learning rate.", "--lr"))
    min_lr: float = field(default=1e-6, metadata=_opt("Lowest learning rate of the schedule.", "--min-lr"))
    opt: str = field(
        default="sgd",
        metadata=_opt("timm optimizer name (sgd = SGD with Nesterov momentum, adamw, ...).", "--opt"),
    )
    momentum: float = field(default=0.9, metadata=_opt("Optimizer momentum.", "--momentum"))
    weight_decay: float = field(default=5e-4, metadata=_opt("Weight decay.", "--weight-decay"))
    sched: str = field(
        default="cosine",
        metadata=_opt("Schedule: cosine | step | multistep | tanh | poly | constant.", "--sched"),
    )
    sched_on_updates: bool = field(
        default=True,
        metadata=_opt("Step the schedule every update (else every epoch).", "--sched-on-updates"),
    )
    warmup_epochs: int = field(default=0, metadata=_opt("Linear warm-up epochs.", "--warmup-epochs"))
    warmup_lr: float = field(default=1e-5, metadata=_opt("Warm-up start learning rate.", "--warmup-lr"))
    decay_epochs: float = field(
        default=30.0, metadata=_opt("Epochs between decays (step schedule).", "--decay-epochs")
    )
    decay_rate: float = field(default=0.1, metadata=_opt("Decay factor (step/multistep).", "--decay-rate"))
    clip_grad: float | None = field(
        default=None, metadata=_opt("Clip the gradient norm to this value.", "--clip-grad")
    )
    # precision, EMA
    amp: bool = field(
        default=False,
        metadata=_opt("Mixed precision (float16 + loss scaling on GPU, bfloat16 on CPU).", "--amp"),
    )
    amp_dtype: str = field(default="float16", metadata=_opt("float16 | bfloat16 (GPU).", "--amp-dtype"))
    model_ema: bool = field(
        default=False, metadata=_opt("Keep an exponential moving average of the weights.", "--model-ema")
    )
    model_ema_decay: float = field(
        default=0.9998, metadata=_opt("EMA decay per update.", "--model-ema-decay")
    )
    # system
    workers: int = field(
        default=4, metadata=_opt("DataLoader worker processes per training process.", "-j", "--workers")
    )
    seed: int = field(default=42, metadata=_opt("Random seed (each process adds its rank).", "--seed"))
    device: str = field(default="auto", metadata=_opt("auto | cpu | cuda | cuda:N.", "--device"))
    dist_backend: str | None = field(
        default=None,
        metadata=_opt("torch.distributed backend (default nccl on GPU, gloo on CPU).", "--dist-backend"),
    )
    output: str | None = field(
        default=None,
        metadata=_opt(
            "Run folder for checkpoints, metrics.csv and args.yaml (default: the --resume folder, else "
            "output/train).",
            "--output",
        ),
    )
    resume: str | None = field(
        default=None, metadata=_opt("Continue from a last.pth (or the run folder holding it).", "--resume")
    )
    log_interval: int = field(
        default=50, metadata=_opt("Refresh the progress bar every N batches.", "--log-interval")
    )
    progress: bool = field(default=True, metadata=_opt("Show rich progress bars.", "--progress"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (what ``args.yaml`` and the checkpoints' ``train_args`` hold)."""
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def _field_kind(name: str) -> tuple[type, bool]:
    """(base type, optional) of a config field, from its annotation string."""
    annotation = str(_FIELDS[name].type)
    optional = "None" in annotation
    base = annotation.replace("| None", "").strip()
    return {"str": str, "int": int, "float": float, "bool": bool}[base], optional


def _coerce(name: str, value: Any, where: str) -> Any:
    kind, optional = _field_kind(name)
    if value is None:
        if optional:
            return None
        raise TrainError(f"{where}: '{name}' cannot be empty; expected a {kind.__name__}")
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise TrainError(f"{where}: '{name}' must be a {kind.__name__}, got {value!r}")


def config_from_dict(values: dict[str, Any], where: str = "config") -> TrainConfig:
    """A :class:`TrainConfig` from a dict of field names (``-`` or ``_``), type-checked.

    Raises:
        TrainError: an unknown key (with the valid ones) or a value of the wrong type.
    """
    clean: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in _FIELDS:
            raise TrainError(f"{where}: unknown setting '{raw_key}'; valid settings: {', '.join(_FIELDS)}")
        clean[key] = _coerce(key, value, where)
    return TrainConfig(**clean)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Settings from a YAML file (a mapping of field names to values), checked like the CLI's.

    Raises:
        TrainError: missing file, invalid YAML, not a mapping, unknown key or wrong type.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainError(f"config file '{path}' does not exist; pass a YAML file of settings (see configs/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrainError(f"config file '{path}' is not valid YAML: {first}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainError(f"config file '{path}' must hold a mapping of settings, got {type(data).__name__}")
    config_from_dict(data, where=f"config file '{path}'")  # validates keys and types
    return {str(k).replace("-", "_"): v for k, v in data.items()}


# --------------------------------------------------------------------------- validation
@contextlib.contextmanager
def _no_downloads() -> Any:
    """Block every download timm could start (Hugging Face hub, weight URLs) inside the block."""
    import huggingface_hub.constants as hub_constants
    import timm.models._hub as timm_hub
    import torch.hub

    def refuse(url: str, *args: Any, **kwargs: Any) -> None:
        raise TrainError(
            f"--pretrained: the weights are not in the local cache and nothing is downloaded during a run "
            f"(would fetch {url}); download them once beforehand or pass --pretrained-file PATH"
        )

    saved = (hub_constants.HF_HUB_OFFLINE, torch.hub.download_url_to_file, timm_hub.download_url_to_file)
    hub_constants.HF_HUB_OFFLINE = True
    torch.hub.download_url_to_file = timm_hub.download_url_to_file = refuse
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE, torch.hub.download_url_to_file, timm_hub.download_url_to_file = saved


def _create_model(cfg: TrainConfig, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` for the run: random init, local pretrained weights, or timm's cached ones."""
    import timm

    if cfg.pretrained_file:
        overlay = {"file": str(Path(cfg.pretrained_file).expanduser())}
        return timm.create_model(cfg.model, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    if not cfg.pretrained:
        return timm.create_model(cfg.model, pretrained=False, **kwargs)
    try:
        with _no_downloads():
            return timm.create_model(cfg.model, pretrained=True, **kwargs)
    except TrainError:
        raise
    except Exception as exc:  # huggingface_hub's offline / not-cached errors, missing pretrained tags
        raise TrainError(
            f"--pretrained: timm's weights for {cfg.model!r} are not available offline "
            f"({type(exc).__name__}); download them once beforehand or pass --pretrained-file PATH"
        ) from None


def _validate(cfg: TrainConfig) -> None:
    """Check flag values and combinations before anything heavy happens."""
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

    import timm

    from . import models  # noqa: F401 - registers the CIFAR architectures

    if not timm.is_model(cfg.model):
        close = timm.list_models(f"*{cfg.model}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else " (see timm.list_models())"
        raise TrainError(f"unknown --model '{cfg.model}'{hint}")

    if cfg.aa is not None:
        if cfg.aug not in _VIEW_AUGS:
            raise TrainError(f"--aa only applies to --aug {'|'.join(_VIEW_AUGS)}, not '{cfg.aug}'")
        prefix = _AA_PREFIX[cfg.aug]
        if not cfg.aa.startswith(prefix):
            raise TrainError(f"--aa '{cfg.aa}' does not match --aug {cfg.aug}: it must start with '{prefix}'")
        if cfg.aug in ("ipmix", "pixmix"):
            from .transforms import parse_mixing_config

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

    if cfg.jsd:
        if cfg.aug in ("mixup", "cutmix"):
            raise TrainError(
                f"--jsd cannot be combined with --aug {cfg.aug}: mixed soft targets leave no clean view; "
                f"use --aug {'|'.join(_VIEW_AUGS)} with --jsd"
            )
        if cfg.aug not in _VIEW_AUGS:
            raise TrainError(
                f"--jsd needs augmented views: use --aug {'|'.join(_VIEW_AUGS)} (got --aug {cfg.aug})"
            )
        if cfg.aug_splits == 1:
            raise TrainError("--jsd needs --aug-splits >= 2 (one clean view plus augmented views), got 1")
    if cfg.aug_splits < 0:
        raise TrainError(f"--aug-splits must be >= 0, got {cfg.aug_splits}")
    if cfg.aug_splits > 1 and cfg.aug not in _VIEW_AUGS:
        raise TrainError(
            f"--aug-splits {cfg.aug_splits} needs --aug {'|'.join(_VIEW_AUGS)} to make the views"
        )
    if cfg.aug in ("mixup", "cutmix") and cfg.batch_size % 2:
        raise TrainError(
            f"--aug {cfg.aug} mixes pairs within a batch: --batch-size must be even, got {cfg.batch_size}"
        )

    if cfg.data_dir is None:
        raise TrainError("--data-dir is required (the folder holding the training data)")
    if not Path(cfg.data_dir).is_dir():
        raise TrainError(
            f"data folder '{cfg.data_dir}' does not exist; pass --data-dir with your {cfg.dataset} data"
        )


# --------------------------------------------------------------------------- data
class ArrayImageDataset(torch.utils.data.Dataset):
    """uint8 ``(N, H, W, 3)`` images + labels as a timm-style dataset (PIL images, ``transform`` attr)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any = None) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img: Any = Image.fromarray(self.images[index])
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[index])


class Cutout:
    """Cutout (DeVries & Taylor 2017) on a normalized ``(C, H, W)`` tensor: zero one ``size`` x ``size``
    square whose centre is uniform over the image (clipped by the border). Uses torch's RNG."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"cutout size must be >= 1 px, got {size}")
        self.size = int(size)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(0, cy - self.size // 2), min(h, cy + self.size - self.size // 2)
        x0, x1 = max(0, cx - self.size // 2), min(w, cx + self.size - self.size // 2)
        x = x.clone()
        x[..., y0:y1, x0:x1] = 0
        return x

    def __repr__(self) -> str:
        return f"Cutout(size={self.size})"


@dataclass
class _Data:
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None
    num_classes: int
    class_names: list[str]
    dataset: str


def _load_data(cfg: TrainConfig) -> _Data:
    from robust_eval.data import DataLayoutError, find_cifar_folder, load_cifar

    root = Path(cfg.data_dir or ".")
    if cfg.dataset in ("cifar10", "cifar100"):
        try:
            folder = find_cifar_folder(root, cfg.dataset)
            x_train, y_train, names = load_cifar(folder, cfg.dataset, train=True)
            x_val, y_val, _ = load_cifar(folder, cfg.dataset, train=False)
        except DataLayoutError as exc:
            raise TrainError(str(exc)) from exc
        return _Data(
            ArrayImageDataset(x_train, y_train),
            ArrayImageDataset(x_val, y_val),
            len(names),
            names,
            cfg.dataset,
        )

    from timm.data import ImageDataset

    train_root = root / "train" if (root / "train").is_dir() else root
    val_root = next((root / n for n in ("val", "validation") if (root / n).is_dir()), None)
    try:
        train_set = ImageDataset(str(train_root))
        class_to_idx = dict(train_set.reader.class_to_idx)
        val_set = ImageDataset(str(val_root), class_map=class_to_idx) if val_root is not None else None
    except (RuntimeError, FileNotFoundError, KeyError) as exc:
        raise TrainError(
            f"image folder '{train_root}': {str(exc).splitlines()[0]} (expected <dir>/<class>/<image>)"
        ) from exc
    if len(train_set) == 0:
        raise TrainError(f"image folder '{train_root}' holds no images; expected <dir>/<class>/<image>")
    names = [name for name, _ in sorted(class_to_idx.items(), key=lambda kv: kv[1])]
    return _Data(train_set, val_set, len(names), names, "imagefolder")


def _aa_hparams(img_size: int, mean: Sequence[float], interpolation: str, aug: str) -> dict[str, Any]:
    from timm.data.transforms import str_to_pil_interp

    hparams: dict[str, Any] = {
        "translate_const": int(img_size * 0.45),
        "img_mean": tuple(min(255, round(255 * v)) for v in mean),
        "interpolation": str_to_pil_interp(interpolation),
    }
    if aug == "augmix":
        hparams["translate_pct"] = 0.3
    return hparams


def _train_transforms(cfg: TrainConfig, data_cfg: dict[str, Any], aa: str | None) -> tuple[Any, Any, Any]:
    """(primary, secondary, final) training transforms, as timm's ``separate=True`` returns them."""
    from timm.data import create_transform
    from timm.data.auto_augment import augment_and_mix_transform, rand_augment_transform

    from .transforms import mixing_transform

    size = int(data_cfg["input_size"][-1])
    mean, std, interp = data_cfg["mean"], data_cfg["std"], data_cfg["interpolation"]
    if cfg.dataset == "imagefolder":
        from .registry import register

        register(fractals=cfg.fractals)  # create_transform reaches IPMix through timm's factory
        primary, secondary, final = create_transform(
            data_cfg["input_size"],
            is_training=True,
            auto_augment=aa,
            interpolation=interp,
            mean=mean,
            std=std,
            hflip=cfg.hflip,
            color_jitter=None,
            separate=True,
        )
    else:
        primary = T.Compose([T.RandomCrop(size, padding=cfg.crop_pad), T.RandomHorizontalFlip(cfg.hflip)])
        if size != 32:
            primary.transforms.insert(0, T.Resize(size, interpolation=T.InterpolationMode(interp)))
        steps: list[Any] = []
        if aa is not None:
            hparams = _aa_hparams(size, mean, interp, cfg.aug)
            if cfg.aug in ("ipmix", "pixmix"):
                steps.append(mixing_transform(aa, fractals=cfg.fractals))
            elif cfg.aug == "augmix":
                steps.append(augment_and_mix_transform(aa, hparams))
            else:
                steps.append(rand_augment_transform(aa, hparams))
        secondary = T.Compose(steps)
        final = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    if cfg.aug == "cutout":
        final.transforms.append(Cutout(cfg.cutout_size or max(1, size // 2)))
    return primary, secondary, final


def _eval_transform(cfg: TrainConfig, data_cfg: dict[str, Any]) -> Any:
    from timm.data import create_transform

    if cfg.dataset == "imagefolder":
        return create_transform(
            data_cfg["input_size"],
            is_training=False,
            interpolation=data_cfg["interpolation"],
            mean=data_cfg["mean"],
            std=data_cfg["std"],
            crop_pct=data_cfg["crop_pct"],
        )
    size = int(data_cfg["input_size"][-1])
    steps: list[Any] = (
        [] if size == 32 else [T.Resize(size, interpolation=T.InterpolationMode(data_cfg["interpolation"]))]
    )
    return T.Compose([*steps, T.ToTensor(), T.Normalize(data_cfg["mean"], data_cfg["std"])])


class _Shard(torch.utils.data.Dataset):
    """Every ``world``-th sample from ``rank`` (distributed evaluation without padding)."""

    def __init__(self, dataset: torch.utils.data.Dataset, rank: int, world: int) -> None:
        self.dataset = dataset
        self.indices = list(range(rank, len(dataset), world))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]


# --------------------------------------------------------------------------- state
def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002 - the global stream timm's workers seed
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [random.getstate()[0], list(random.getstate()[1]), None],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_resume_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``last.pth`` (or the run folder holding one) with ``weights_only=True``.

    Raises:
        TrainError: missing file, or a file that is not a ``timm train`` resume state.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "last.pth"
    if not path.is_file():
        raise TrainError(
            f"--resume '{path}' does not exist; pass the last.pth of a previous run or its folder"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TrainError(
            f"--resume '{path}' could not be read as a safe torch file: {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(state, dict) or state.get("kind") != RESUME_KIND:
        raise TrainError(
            f"--resume '{path}' is not a `timm train` resume state (last.pth); checkpoints like best.pth/final.pth "
            "hold weights only"
        )
    return state


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_CSV_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "ema_val_top1",
    "epoch_time_s",
    "train_images_per_s",
)


def _write_metrics(path: Path, history: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(_CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in _CSV_COLUMNS})
    _atomic_write_text(path, buf.getvalue())


# --------------------------------------------------------------------------- loops
def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    if not cfg.amp:
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if (device.type == "cpu" or cfg.amp_dtype == "bfloat16") else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def _evaluate(
    model: nn.Module, loader: Any, cfg: TrainConfig, device: torch.device, distributed: bool
) -> dict[str, float]:
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(cfg, device):
            out = model(x)
        out = out.float()
        k = min(5, out.shape[1])
        topk = out.topk(k, dim=1).indices
        hit = topk.eq(y[:, None])
        sums += torch.stack(
            [
                F.cross_entropy(out, y, reduction="sum").double(),
                hit[:, 0].sum().double(),
                hit.any(dim=1).sum().double(),
                torch.tensor(float(len(y)), dtype=torch.float64, device=device),
            ]
        )
    if distributed:
        torch.distributed.all_reduce(sums)
    n = max(float(sums[3]), 1.0)
    return {
        "loss": float(sums[0]) / n,
        "top1": 100.0 * float(sums[1]) / n,
        "top5": 100.0 * float(sums[2]) / n,
    }


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run a training job described by ``cfg``; returns the last epoch's metrics row.

    Raises:
        TrainError: bad settings, data or resume files (reported by the CLI as one line, exit 2).
    """
    import yaml
    from timm.data import AugMixDataset, Mixup, resolve_data_config
    from timm.loss import JsdCrossEntropy, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3, NativeScaler, random_seed
    from timm.utils import distributed as tdist

    from robust_eval.checkpoint import atomic_save, save_checkpoint

    from . import models  # noqa: F401 - registers the CIFAR architectures

    cfg = dataclasses.replace(cfg)
    if cfg.jsd and cfg.aug_splits == 0:
        cfg.aug_splits = 3
    _validate(cfg)

    resume_state = load_resume_state(cfg.resume) if cfg.resume else None
    if cfg.output is None:
        resume_path = Path(cfg.resume) if cfg.resume else None
        if resume_path is None:
            cfg.output = "output/train"
        else:
            cfg.output = str(resume_path if resume_path.is_dir() else resume_path.parent)
    out_dir = Path(cfg.output)
    if resume_state is None and out_dir.is_dir():
        existing = [name for name in _RUN_FILES if (out_dir / name).exists()]
        if existing:
            raise TrainError(
                f"output folder '{out_dir}' already holds a run ({', '.join(existing)}); pass --resume {out_dir} "
                "to continue it or choose another --output"
            )
    if resume_state is not None and resume_state["train_args"].get("model") != cfg.model:
        raise TrainError(
            f"--resume state was trained with --model {resume_state['train_args'].get('model')}, not {cfg.model}"
        )

    # devices and processes
    device_name = cfg.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {cfg.device}: CUDA is not available on this machine; use --device cpu")
    dist_info = tdist.init_distributed_device_so(device=device_name, dist_backend=cfg.dist_backend)
    device = torch.device(dist_info["device"])
    rank, world, distributed = dist_info["global_rank"], dist_info["world_size"], dist_info["distributed"]
    primary = rank == 0
    random_seed(cfg.seed, rank)
    console = _console()

    try:
        data = _load_data(cfg)
        num_classes = cfg.num_classes or data.num_classes
        if num_classes < data.num_classes:
            raise TrainError(
                f"--num-classes {num_classes} is smaller than the {data.num_classes} classes of the data"
            )

        model_kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": cfg.drop}
        model = _create_model(cfg, **model_kwargs)
        base_cfg = resolve_data_config({}, model=model)
        extra_model_kwargs: dict[str, Any] = {}  # what timm.create_model needs beyond num_classes
        img_size = cfg.img_size or int(base_cfg["input_size"][-1])
        if img_size != int(base_cfg["input_size"][-1]):
            with contextlib.suppress(TypeError):  # ViTs need their input size; conv nets take any
                model = _create_model(cfg, img_size=img_size, **model_kwargs)
                extra_model_kwargs["img_size"] = img_size
        data_cfg = dict(base_cfg)
        data_cfg["input_size"] = (3, img_size, img_size)
        if cfg.interpolation:
            data_cfg["interpolation"] = cfg.interpolation
        if cfg.dataset != "imagefolder":
            data_cfg["crop_pct"] = 1.0
        model.to(device)

        # data pipeline
        aa = (cfg.aa or DEFAULT_AA[cfg.aug]) if cfg.aug in _VIEW_AUGS else None
        try:
            primary_tf, secondary_tf, final_tf = _train_transforms(cfg, data_cfg, aa)
        except ValueError as exc:  # bad mixing source, config string
            raise TrainError(str(exc).splitlines()[0]) from exc
        from .transforms import AlbumentationsAdapter

        for step in getattr(secondary_tf, "transforms", []):
            if isinstance(step, AlbumentationsAdapter):
                step.reseed(cfg.seed + rank)  # main-process use (workers=0) is reproducible too
        train_set: Any = data.train
        if cfg.aug_splits > 1:
            train_set.transform = (primary_tf, secondary_tf, final_tf)
            train_set = AugMixDataset(train_set, num_splits=cfg.aug_splits)
        else:
            train_set.transform = T.Compose([primary_tf, secondary_tf, final_tf])
        per_rank = len(train_set) // world
        if per_rank < cfg.batch_size:
            raise TrainError(
                f"the training set has {per_rank} images per process, fewer than --batch-size {cfg.batch_size}; "
                "lower --batch-size"
            )
        sampler = (
            torch.utils.data.DistributedSampler(
                train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed
            )
            if distributed
            else None
        )
        loader_kwargs: dict[str, Any] = {
            "num_workers": cfg.workers,
            "pin_memory": device.type == "cuda",
            "persistent_workers": cfg.workers > 0,
        }
        train_loader = torch.utils.data.DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            shuffle=sampler is None,
            sampler=sampler,
            drop_last=True,
            **loader_kwargs,
        )
        val_loader = None
        if data.val is not None and len(data.val) > 0:
            data.val.transform = _eval_transform(cfg, data_cfg)
            val_set = _Shard(data.val, rank, world) if distributed else data.val
            val_loader = torch.utils.data.DataLoader(
                val_set, batch_size=cfg.batch_size, shuffle=False, **loader_kwargs
            )

        # optimization
        try:
            optimizer = create_optimizer_v2(
                model, opt=cfg.opt, lr=cfg.lr, weight_decay=cfg.weight_decay, momentum=cfg.momentum
            )
        except ValueError as exc:  # unknown --opt
            raise TrainError(
                f"--opt {cfg.opt}: {str(exc).splitlines()[0]} (e.g. sgd, momentum, adamw)"
            ) from exc
        updates_per_epoch = len(train_loader)
        scheduler, _ = create_scheduler_v2(
            optimizer,
            sched=cfg.sched,
            num_epochs=cfg.epochs,
            decay_epochs=cfg.decay_epochs,
            decay_rate=cfg.decay_rate,
            min_lr=cfg.min_lr,
            warmup_lr=cfg.warmup_lr,
            warmup_epochs=cfg.warmup_epochs,
            step_on_epochs=not cfg.sched_on_updates,
            updates_per_epoch=updates_per_epoch,
        )
        scaler = (
            NativeScaler(device=device.type)
            if (cfg.amp and device.type == "cuda" and cfg.amp_dtype == "float16")
            else None
        )
        ema = ModelEmaV3(model, decay=cfg.model_ema_decay) if cfg.model_ema else None
        mixup_fn = None
        if cfg.aug in ("mixup", "cutmix"):
            mixup_fn = Mixup(
                mixup_alpha=cfg.mixup if cfg.aug == "mixup" else 0.0,
                cutmix_alpha=cfg.cutmix if cfg.aug == "cutmix" else 0.0,
                label_smoothing=cfg.smoothing,
                num_classes=num_classes,
            )
            loss_fn: nn.Module = SoftTargetCrossEntropy()
        elif cfg.jsd:
            loss_fn = JsdCrossEntropy(num_splits=cfg.aug_splits, alpha=cfg.jsd_alpha, smoothing=cfg.smoothing)
        elif cfg.smoothing > 0:
            loss_fn = LabelSmoothingCrossEntropy(smoothing=cfg.smoothing)
        else:
            loss_fn = nn.CrossEntropyLoss()

        # resume
        start_epoch, num_updates, history = 0, 0, []
        best = {"top1": -math.inf, "epoch": 0}
        if resume_state is not None:
            try:
                model.load_state_dict(resume_state["model"])
                optimizer.load_state_dict(resume_state["optimizer"])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise TrainError(f"--resume state does not fit this run: {str(exc).splitlines()[0]}") from exc
            if scaler is not None and resume_state.get("scaler"):
                scaler.load_state_dict(resume_state["scaler"])
            if ema is not None and resume_state.get("ema") is not None:
                ema.module.load_state_dict(resume_state["ema"])
            start_epoch = int(resume_state["epoch"])
            num_updates = int(resume_state["num_updates"])
            history = list(resume_state["history"])
            best = dict(resume_state["best"])
            if resume_state.get("world_size", 1) == world:
                _set_rng_state(resume_state["rng"])
            # the schedule is rebuilt from this run's settings (so --epochs can be raised) and fast-forwarded
            scheduler.step(start_epoch)
            if cfg.sched_on_updates:
                scheduler.step_update(num_updates=num_updates)

        train_model: nn.Module = model
        if distributed:
            train_model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )

        if primary:
            out_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write_text(out_dir / "args.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
            console.print(
                f"timm train: {cfg.model} on {data.dataset} ({len(data.train)} train images, {num_classes} classes), "
                f"--aug {cfg.aug}{f' ({aa})' if aa else ''}{' + JSD' if cfg.jsd else ''}, {world} process(es) on "
                f"{device.type}, epochs {start_epoch + 1}..{cfg.epochs}"
            )
        if start_epoch >= cfg.epochs and primary:
            console.print(f"nothing to do: the run already completed {start_epoch} of {cfg.epochs} epochs")

        ckpt_meta = {
            "model": cfg.model,
            "num_classes": num_classes,
            "dataset": data.dataset,
            "data_config": {
                "input_size": list(data_cfg["input_size"]),
                "mean": list(data_cfg["mean"]),
                "std": list(data_cfg["std"]),
                "interpolation": str(data_cfg["interpolation"]),
                "crop_pct": float(data_cfg["crop_pct"]),
            },
            "class_names": list(data.class_names),
            "model_kwargs": extra_model_kwargs,
            "train_args": cfg.to_dict(),
        }

        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        row: dict[str, Any] = history[-1] if history else {}
        for epoch in range(start_epoch, cfg.epochs):
            if sampler is not None:
                sampler.set_epoch(epoch)
            train_model.train()
            t0 = time.perf_counter()
            loss_sum = torch.zeros(4, dtype=torch.float64, device=device)  # loss*n, correct, n, images
            progress = Progress(
                TextColumn(f"epoch {epoch + 1}/{cfg.epochs}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
                disable=not (primary and cfg.progress and console.is_terminal),
            )
            with progress:
                task = progress.add_task("train", total=updates_per_epoch, loss=float("nan"))
                for step, (x, y) in enumerate(train_loader):
                    if isinstance(x, (list, tuple)):
                        x = torch.cat(list(x), dim=0)
                    x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                    target = y
                    if mixup_fn is not None:
                        x, target = mixup_fn(x, y)
                    elif cfg.aug_splits > 1 and not cfg.jsd:
                        target = y.repeat(cfg.aug_splits)
                    with _autocast(cfg, device):
                        out = train_model(x)
                        loss = loss_fn(out, target)
                    if not torch.isfinite(loss):
                        raise TrainError(
                            f"the loss became {loss.item()} at epoch {epoch + 1}, batch {step + 1}; lower --lr "
                            "or turn off --amp"
                        )
                    optimizer.zero_grad(set_to_none=True)
                    if scaler is not None:
                        scaler(loss, optimizer, clip_grad=cfg.clip_grad, parameters=model.parameters())
                    else:
                        loss.backward()
                        if cfg.clip_grad is not None:
                            nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                        optimizer.step()
                    num_updates += 1
                    if ema is not None:
                        ema.update(model, step=num_updates)
                    if cfg.sched_on_updates:
                        scheduler.step_update(num_updates=num_updates)
                    n = len(y)
                    with torch.no_grad():
                        correct = (
                            out[:n].argmax(1).eq(y).sum().double()
                            if mixup_fn is None
                            else torch.zeros((), dtype=torch.float64, device=device)
                        )
                    loss_sum += torch.stack(
                        [
                            loss.detach().double() * n,
                            correct,
                            torch.tensor(float(n), dtype=torch.float64, device=device),
                            torch.tensor(float(x.shape[0]), dtype=torch.float64, device=device),
                        ]
                    )
                    if (step + 1) % cfg.log_interval == 0 or step + 1 == updates_per_epoch:
                        progress.update(task, completed=step + 1, loss=float(loss_sum[0] / loss_sum[2]))
            if not cfg.sched_on_updates:
                scheduler.step(epoch + 1)
            if distributed:
                torch.distributed.all_reduce(loss_sum)
            elapsed = time.perf_counter() - t0
            row = {
                "epoch": epoch + 1,
                "lr": float(optimizer.param_groups[0]["lr"]),
                "train_loss": float(loss_sum[0] / loss_sum[2]),
                "train_top1": None if mixup_fn is not None else 100.0 * float(loss_sum[1] / loss_sum[2]),
                "val_loss": None,
                "val_top1": None,
                "val_top5": None,
                "ema_val_top1": None,
                "epoch_time_s": round(elapsed, 3),
                "train_images_per_s": round(float(loss_sum[3]) / max(elapsed, 1e-9), 1),
            }
            if val_loader is not None:
                metrics = _evaluate(model, val_loader, cfg, device, distributed)
                row.update(val_loss=metrics["loss"], val_top1=metrics["top1"], val_top5=metrics["top5"])
                if ema is not None:
                    row["ema_val_top1"] = _evaluate(ema.module, val_loader, cfg, device, distributed)["top1"]
            history.append(row)

            if primary:
                extra: dict[str, Any] = {"epoch": epoch + 1, "metrics": row}
                if ema is not None:
                    extra["state_dict_ema"] = ema.module.state_dict()
                if row["val_top1"] is not None and row["val_top1"] > best["top1"]:
                    best = {"top1": row["val_top1"], "epoch": epoch + 1}
                    save_checkpoint(out_dir / "best.pth", model.state_dict(), **ckpt_meta, **extra)
                atomic_save(
                    {
                        "kind": RESUME_KIND,
                        "format_version": RESUME_FORMAT_VERSION,
                        "epoch": epoch + 1,
                        "num_updates": num_updates,
                        "world_size": world,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scaler": scaler.state_dict() if scaler is not None else None,
                        "ema": ema.module.state_dict() if ema is not None else None,
                        "rng": _rng_state(),
                        "history": history,
                        "best": best,
                        "train_args": cfg.to_dict(),
                    },
                    out_dir / "last.pth",
                )
                _write_metrics(out_dir / "metrics.csv", history)
                val = (
                    f", val loss {row['val_loss']:.4f} top-1 {row['val_top1']:.2f}%"
                    if row["val_top1"] is not None
                    else ""
                )
                console.print(
                    f"epoch {epoch + 1}/{cfg.epochs}: train loss {row['train_loss']:.4f}{val}, "
                    f"{row['train_images_per_s']:.0f} img/s, lr {row['lr']:.3g}"
                )
        if primary:
            extra = {"epoch": max(cfg.epochs, start_epoch), "metrics": row}
            if ema is not None:
                extra["state_dict_ema"] = ema.module.state_dict()
            save_checkpoint(out_dir / "final.pth", model.state_dict(), **ckpt_meta, **extra)
            console.print(
                f"checkpoints in {out_dir}/ "
                f"({', '.join(n for n in ('final.pth', 'best.pth', 'last.pth') if (out_dir / n).exists())}), "
                "metrics in metrics.csv"
            )
        return row
    finally:
        if distributed and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
