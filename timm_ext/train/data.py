"""Data for ``timm train``: data sets, training / evaluation transforms, loaders, per-epoch seeding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from .config import DEFAULT_AA, VIEW_AUGS, TrainConfig, TrainError
from .state import reseed_augmentations, reseed_worker

__all__ = [
    "ArrayImageDataset",
    "Cutout",
    "Data",
    "EpochSeeded",
    "EpochTagged",
    "ImageFolderDataset",
    "Loaders",
    "Shard",
    "build_loaders",
    "eval_transform",
    "load_data",
    "train_transforms",
]


class _PilDataset(torch.utils.data.Dataset):
    """A timm-style data set: ``(transform(PIL image), label)`` items and a settable ``transform``
    (what timm's ``AugMixDataset`` expects). Subclasses say how to get image ``index`` as uint8 RGB."""

    labels: np.ndarray
    transform: Any

    def _array(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        img: Any = Image.fromarray(self._array(index))
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[index])


class ArrayImageDataset(_PilDataset):
    """uint8 ``(N, H, W, 3)`` images + labels as a timm-style dataset (PIL images, ``transform`` attr)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Any = None) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def _array(self, index: int) -> np.ndarray:
        return self.images[index]


class ImageFolderDataset(_PilDataset):
    """``root/<class>/<image>`` as a timm-style dataset, read like robust-eval reads an image folder.

    Classes are the sub-folders sorted by name (or ``classes``, e.g. the training set's, for a
    validation split); images at any depth below a class folder belong to it, listed by
    :func:`robust_mix.files.list_images` and decoded by
    :func:`robust_mix.files.decode_image` (EXIF orientation applied, 16-bit scaled, bombs
    refused), the one decoder of the project.

    Raises:
        TrainError: no class folders, a class of ``classes`` missing, or a class folder unknown to
            ``classes``.
    """

    def __init__(self, root: str | Path, classes: Sequence[str] | None = None, transform: Any = None) -> None:
        from robust_mix.files import list_images

        self.root = Path(root)
        found = sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        if not found:
            raise TrainError(
                f"image folder '{self.root}' has no class sub-folders; expected <dir>/<class>/<image>"
            )
        unknown = sorted(set(found) - set(classes)) if classes is not None else []
        if unknown:
            raise TrainError(
                f"image folder '{self.root}' holds classes the training set does not have: {', '.join(unknown)}"
            )
        self.classes = list(found if classes is None else classes)
        self.paths: list[Path] = []
        labels: list[int] = []
        for label, name in enumerate(self.classes):
            files = list_images(self.root / name) if (self.root / name).is_dir() else []
            self.paths.extend(files)
            labels.extend([label] * len(files))
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform

    def _array(self, index: int) -> np.ndarray:
        from robust_mix.files import decode_image

        return decode_image(self.paths[index])


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
class Data:
    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset | None
    num_classes: int
    class_names: list[str]
    dataset: str
    #: side in px of every image of a fixed-size data set (CIFAR: 32); None for image folders
    native_size: int | None = None


def load_data(cfg: TrainConfig) -> Data:
    from robust_mix.cifar import DataLayoutError, find_cifar_folder, load_cifar

    root = Path(cfg.data_dir or ".")
    if cfg.dataset in ("cifar10", "cifar100"):
        try:
            folder = find_cifar_folder(root, cfg.dataset)
            x_train, y_train, names = load_cifar(folder, cfg.dataset, train=True)
            x_val, y_val, _ = load_cifar(folder, cfg.dataset, train=False)
        except DataLayoutError as exc:
            raise TrainError(str(exc)) from exc
        return Data(
            ArrayImageDataset(x_train, y_train),
            ArrayImageDataset(x_val, y_val),
            len(names),
            names,
            cfg.dataset,
            native_size=int(x_train.shape[1]) if x_train.shape[1] == x_train.shape[2] else None,
        )

    from robust_mix.files import EVAL_SPLITS, TRAIN_SPLIT

    train_root = root / TRAIN_SPLIT if (root / TRAIN_SPLIT).is_dir() else root
    # the held-out split robust-eval evaluates is the one validated on: first of test/, val/, validation/
    val_root = next((root / n for n in EVAL_SPLITS if (root / n).is_dir()), None)
    if not train_root.is_dir():
        raise TrainError(f"image folder '{train_root}' does not exist; expected <dir>/<class>/<image>")
    train_set = ImageFolderDataset(train_root)
    val_set = ImageFolderDataset(val_root, classes=train_set.classes) if val_root is not None else None
    if len(train_set) == 0:
        raise TrainError(f"image folder '{train_root}' holds no images; expected <dir>/<class>/<image>")
    return Data(train_set, val_set, len(train_set.classes), train_set.classes, "imagefolder")


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


def train_transforms(
    cfg: TrainConfig, data_cfg: dict[str, Any], aa: str | None, device_mixing: bool = False
) -> tuple[Any, Any, Any]:
    """(primary, secondary, final) training transforms, as timm's ``separate=True`` returns them.

    ``device_mixing`` (``--mix-device`` other than ``workers``): the workers only crop and flip, the
    final stage hands over uint8 tensors and the augmentation runs on batches (:mod:`.device_mixing`).
    IPMix / PixMix reach timm's image-folder pipeline as the secondary stage of ``create_transform``
    (built without an auto-augment string and with the mixing transform put in its slot): timm's
    transform factory is never patched.
    """
    from timm.data import create_transform
    from timm.data.auto_augment import augment_and_mix_transform, rand_augment_transform

    from ..compat import fix_posterize
    from ..transforms import mixing_transform

    fix_posterize()  # `timm train` uses timm's RandAugment, which needs it on Pillow >= 12
    size = int(data_cfg["input_size"][-1])
    mean, std, interp = data_cfg["mean"], data_cfg["std"], data_cfg["interpolation"]
    ours = aa is not None and cfg.aug in ("ipmix", "pixmix")
    in_workers = aa is not None and not device_mixing
    if cfg.dataset == "imagefolder":
        primary, secondary, final = create_transform(
            data_cfg["input_size"],
            is_training=True,
            auto_augment=aa if in_workers and not ours else None,
            interpolation=interp,
            mean=mean,
            std=std,
            hflip=cfg.hflip,
            color_jitter=None,
            separate=True,
        )
        if in_workers and ours:
            secondary.transforms.append(mixing_transform(aa, fractals=cfg.fractals))
    else:
        primary = T.Compose([T.RandomCrop(size, padding=cfg.crop_pad), T.RandomHorizontalFlip(cfg.hflip)])
        if size != 32:
            primary.transforms.insert(0, T.Resize(size, interpolation=T.InterpolationMode(interp)))
        steps: list[Any] = []
        if in_workers:
            hparams = _aa_hparams(size, mean, interp, cfg.aug)
            if ours:
                steps.append(mixing_transform(aa, fractals=cfg.fractals))
            elif cfg.aug == "augmix":
                steps.append(augment_and_mix_transform(aa, hparams))
            else:
                steps.append(rand_augment_transform(aa, hparams))
        secondary = T.Compose(steps)
        final = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    if device_mixing:
        final = T.Compose([T.PILToTensor()])  # uint8 [C, H, W]: mixed and normalised on the device
    elif cfg.reprob > 0:  # timm's random erasing on the normalised tensor, last (as create_transform)
        from timm.data.random_erasing import RandomErasing

        final.transforms.append(
            RandomErasing(cfg.reprob, mode=cfg.remode, max_count=cfg.recount, device="cpu")
        )
    if cfg.aug == "cutout":
        final.transforms.append(Cutout(cfg.cutout_size or max(1, size // 2)))
    return primary, secondary, final


def eval_transform(cfg: TrainConfig, data_cfg: dict[str, Any]) -> Any:
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


class Shard(torch.utils.data.Dataset):
    """Every ``world``-th sample from ``rank`` (distributed evaluation without padding)."""

    def __init__(self, dataset: torch.utils.data.Dataset, rank: int, world: int) -> None:
        self.dataset = dataset
        self.indices = list(range(rank, len(dataset), world))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]


class EpochTagged(torch.utils.data.Sampler):
    """Yield ``(epoch, index)`` from ``sampler`` so every DataLoader worker knows the epoch it serves."""

    def __init__(self, sampler: torch.utils.data.Sampler) -> None:
        self.sampler = sampler
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Serve ``epoch``, leaving out its first ``skip`` indices (a resume from recovery.pth)."""
        self.epoch, self.skip = int(epoch), int(skip)
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return ((self.epoch, int(i)) for n, i in enumerate(self.sampler) if n >= self.skip)

    def __len__(self) -> int:
        return max(0, len(self.sampler) - self.skip)  # type: ignore[arg-type]


class EpochSeeded(torch.utils.data.Dataset):
    """Reseed the augmentations of ``dataset`` whenever a process serves a new epoch.

    Indexed by ``(epoch, index)`` (see :class:`EpochTagged`). On the first item of an epoch the
    process reseeds from ``(seed, epoch, rank, worker id)``: in a DataLoader worker Python's, NumPy's
    and torch's global generators and every IPMix/PixMix adapter; in the main process (``--workers
    0``) only the adapters (the global generators are part of the resume state there). The random
    state at the start of every epoch is thus a function of the run's settings, and a resumed run
    draws exactly the augmentations of an uninterrupted one.
    """

    def __init__(self, dataset: torch.utils.data.Dataset, seed: int, rank: int) -> None:
        self.dataset = dataset
        self.seed, self.rank = int(seed), int(rank)
        self._epoch: int | None = None

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        if epoch != self._epoch:
            info = torch.utils.data.get_worker_info()
            if info is None:
                reseed_augmentations(self.dataset, self.seed, epoch, self.rank, worker=-1)
            else:
                reseed_worker(self.dataset, self.seed, epoch, self.rank, worker=info.id)
            self._epoch = epoch
        return self.dataset[index]


@dataclass
class Loaders:
    train: torch.utils.data.DataLoader
    val: torch.utils.data.DataLoader | None
    sampler: EpochTagged
    aa: str | None


def _train_set(cfg: TrainConfig, data: Data, data_cfg: dict[str, Any], aa: str | None) -> Any:
    from timm.data import AugMixDataset

    device_mixing = cfg.mix_device != "workers"
    try:
        primary_tf, secondary_tf, final_tf = train_transforms(cfg, data_cfg, aa, device_mixing)
    except ValueError as exc:  # bad mixing source, config string
        raise TrainError(str(exc).splitlines()[0]) from exc
    train_set: Any = data.train
    if cfg.aug_splits > 1 and not device_mixing:  # with device mixing the views are made on the device
        train_set.transform = (primary_tf, secondary_tf, final_tf)
        return AugMixDataset(train_set, num_splits=cfg.aug_splits)
    train_set.transform = T.Compose([primary_tf, secondary_tf, final_tf])
    return train_set


def build_loaders(
    cfg: TrainConfig, data: Data, data_cfg: dict[str, Any], rank: int, world: int, device: torch.device
) -> Loaders:
    """Training and validation loaders for this process (training: sharded with a DistributedSampler
    when ``world > 1``, epoch-seeded augmentations; validation: every ``world``-th image).

    Raises:
        TrainError: fewer images per process than ``--batch-size``, or a bad mixing source.
    """
    aa = (cfg.aa or DEFAULT_AA[cfg.aug]) if cfg.aug in VIEW_AUGS else None
    train_set = _train_set(cfg, data, data_cfg, aa)
    per_rank = len(train_set) // world
    if per_rank < cfg.batch_size:
        raise TrainError(
            f"the training set has {per_rank} images per process, fewer than --batch-size {cfg.batch_size}; "
            "lower --batch-size"
        )
    # the order is a function of (seed, epoch) on every rank, also in one process: a resumed run draws
    # the same batches, and the global torch generator is left to the model (dropout) and transforms
    base = torch.utils.data.DistributedSampler(
        train_set, num_replicas=world, rank=rank, shuffle=True, seed=cfg.seed
    )
    sampler = EpochTagged(base)
    loader_kwargs: dict[str, Any] = {
        "num_workers": cfg.workers,
        "pin_memory": device.type == "cuda",
        "persistent_workers": cfg.workers > 0,
    }
    train_loader = torch.utils.data.DataLoader(
        EpochSeeded(train_set, cfg.seed, rank),
        batch_size=cfg.batch_size,
        sampler=sampler,
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed + rank),  # worker base seeds: not the global stream
        **loader_kwargs,
    )
    val_loader = None
    if data.val is not None and len(data.val) > 0:
        data.val.transform = eval_transform(cfg, data_cfg)
        val_set = Shard(data.val, rank, world) if world > 1 else data.val
        # its own generator: a loader without one draws its workers' base seed from the global torch
        # stream when its first iterator starts, in epoch 1 of a run but in the first epoch after a resume
        val_loader = torch.utils.data.DataLoader(
            val_set,
            batch_size=cfg.batch_size,
            shuffle=False,
            generator=torch.Generator().manual_seed(cfg.seed + rank),
            **loader_kwargs,
        )
    return Loaders(train_loader, val_loader, sampler, aa)
