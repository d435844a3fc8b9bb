"""Shared helpers for the robust_eval tests: a tiny model trained on real digits and tiny data sets in
every layout robust-eval reads. Import from test modules (``from robust_eval_fixtures import ...``)."""

from __future__ import annotations

import argparse
import functools
import os
from pathlib import Path

import numpy as np
import torch

from robust_eval.checkpoints.checkpoint import save_checkpoint
from robust_eval.constants import (
    ALL_CORRUPTIONS,
    CIFAR_CBAR_CORRUPTIONS,
    TEST_PERTURBATIONS,
)
from robust_eval.data import write_cifar

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
# 2 shared CPU cores: one torch thread is several times faster than two under contention.
torch.set_num_threads(1)
SUBPROCESS_ENV = {
    **os.environ,
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NO_ALBUMENTATIONS_UPDATE": "1",
}

MODEL = "test_resnet"
DATA_CONFIG = {
    "input_size": [3, 16, 16],
    "mean": [0.5, 0.5, 0.5],
    "std": [0.25, 0.25, 0.25],
    "interpolation": "bilinear",
    "crop_pct": 1.0,
}


@functools.lru_cache(maxsize=1)
def digits_32() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digits as uint8 (N, 32, 32, 3) RGB (colored strokes) + labels."""
    import cv2
    from sklearn.datasets import load_digits

    d = load_digits()
    small = (d.images / 16.0 * 255).astype(np.uint8)
    big = np.stack([cv2.resize(im, (32, 32), interpolation=cv2.INTER_LINEAR) for im in small])
    rgb = np.stack([big, (big * 0.7).astype(np.uint8), 255 - big], axis=-1)
    return np.ascontiguousarray(rgb), d.target.astype(np.int64)


#: The weights of :func:`trained_state_dict`, stored (float16) so that every machine evaluates the
#: same network: training the same 120 steps on another CPU (AVX2 against AVX-512 kernels) ends with
#: weights up to 2 apart, enough to flip predictions on corrupted images. Regenerate (only with a
#: deliberate change, then the golden files of test_results.py too):
#: ``python tests/robust_eval_fixtures.py --write-weights``.
WEIGHTS = Path(__file__).parent / "data" / "digits_test_resnet.safetensors"


@functools.lru_cache(maxsize=1)
def trained_state_dict() -> dict[str, torch.Tensor]:
    """timm ``test_resnet`` (10 classes) trained on the digits (:func:`train_digits`), as stored."""
    from safetensors.torch import load_file

    stored = load_file(WEIGHTS)
    return {k: v.float() if v.is_floating_point() else v for k, v in stored.items()}


def train_digits(steps: int = 120) -> dict[str, torch.Tensor]:
    """timm ``test_resnet`` (10 classes) trained on the digits through the [0, 1] input contract."""
    import timm

    from robust_eval.checkpoints.formats import InputContract

    torch.manual_seed(0)
    images, labels = digits_32()
    net = timm.create_model(MODEL, num_classes=10)
    wrapped = InputContract(net, 16, tuple(DATA_CONFIG["mean"]), tuple(DATA_CONFIG["std"]))
    x_all = torch.from_numpy(images[:1500]).permute(0, 3, 1, 2).float() / 255
    y_all = torch.from_numpy(labels[:1500])
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    wrapped.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (64,), generator=gen)
        loss = torch.nn.functional.cross_entropy(wrapped(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    wrapped.eval()
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def write_weights() -> None:
    """Train (:func:`train_digits`) and store the weights as float16 in :data:`WEIGHTS`."""
    from safetensors.torch import save_file

    sd = train_digits()
    save_file({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, WEIGHTS)


def heldout_digits(n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Held-out digits (never trained on)."""
    images, labels = digits_32()
    return images[1500 : 1500 + n], labels[1500 : 1500 + n]


def write_project_checkpoint(path: Path, ema: bool = False) -> Path:
    sd = trained_state_dict()
    extra = {"state_dict_ema": sd} if ema else {}
    save_checkpoint(
        path, sd, model=MODEL, num_classes=10, dataset="cifar10", data_config=DATA_CONFIG, **extra
    )
    return path


def save_net_checkpoint(
    path: Path,
    net: torch.nn.Module,
    model: str,
    num_classes: int,
    dataset: str,
    crop_pct: float = 1.0,
    **extra,
) -> Path:
    """``net`` in this project's checkpoint format, 32 px inputs normalized with mean = std = 0.5."""
    config = {
        "input_size": [3, 32, 32],
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
        "interpolation": "bilinear",
        "crop_pct": crop_pct,
    }
    save_checkpoint(
        path,
        net.state_dict(),
        model=model,
        num_classes=num_classes,
        dataset=dataset,
        data_config=config,
        **extra,
    )
    return path


def write_timm_train_checkpoint(path: Path) -> Path:
    """What timm's train.py saves: state_dict (with DataParallel prefixes here), arch, args Namespace."""
    sd = {f"module.{k}": v for k, v in trained_state_dict().items()}
    args = argparse.Namespace(
        model=MODEL,
        num_classes=10,
        dataset="torch/cifar10",
        data_dir="x",
        input_size=DATA_CONFIG["input_size"],
        crop_pct=1.0,
        mean=DATA_CONFIG["mean"],
        std=DATA_CONFIG["std"],
    )
    torch.save(
        {"epoch": 3, "arch": MODEL, "state_dict": sd, "state_dict_ema": sd, "args": args, "version": 2}, path
    )
    return path


def write_bare_state_dict(path: Path) -> Path:
    torch.save(trained_state_dict(), path)
    return path


def _noisy(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = images.astype(np.float32) + rng.normal(0, sigma, images.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def write_c_folder(folder: Path, images: np.ndarray, labels: np.ndarray, names: tuple[str, ...]) -> Path:
    """A -C / -C-bar folder: per name uint8 [5N, 32, 32, 3] (noise growing with severity) + labels.npy."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cells = [_noisy(images, 12.0 * s * (1 + i % 3), seed=100 * i + s) for s in range(1, 6)]
        np.save(folder / f"{name}.npy", np.concatenate(cells))
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    return folder


def write_p_folder(
    folder: Path,
    images: np.ndarray,
    names: tuple[str, ...] = (*TEST_PERTURBATIONS, "spatter"),
    frames: int = 6,
) -> Path:
    """-P arrays uint8 [N, T, 32, 32, 3]: shifted / noisier frames."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        seq = [
            images if t == 0 else np.roll(_noisy(images, 4.0 * t, seed=i * 50 + t), t, axis=2)
            for t in range(frames)
        ]
        np.save(folder / f"{name}.npy", np.stack(seq, axis=1))
    return folder


def write_png_tree(root: Path, images: np.ndarray, labels: np.ndarray | None, scale: int = 1) -> Path:
    """An ImageFolder tree (``root/<label>/<i>.png``); ``scale`` > 1 makes larger, non-square images."""
    import cv2

    for i, img in enumerate(images):
        cls = f"class_{int(labels[i])}" if labels is not None else "all"
        (root / cls).mkdir(parents=True, exist_ok=True)
        if scale > 1:
            img = cv2.resize(img, (32 * scale + 7, 32 * scale), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(root / cls / f"{i:04d}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return root


def make_data_root(root: Path, n: int = 60, with_p: bool = True, with_c: bool = True) -> Path:
    """Every CIFAR-10 layout robust-eval reads, built from held-out digits."""
    images, labels = heldout_digits(n)
    write_cifar(root / "cifar-10-batches-py", "cifar10", images, labels)
    if with_c:
        write_c_folder(root / "CIFAR-10-C", images, labels, ALL_CORRUPTIONS)
        write_c_folder(root / "CIFAR-10-C-bar", images, labels, CIFAR_CBAR_CORRUPTIONS)
    if with_p:
        write_p_folder(root / "CIFAR-10-P", images[:8])
    rng = np.random.default_rng(5)
    (root / "ood").mkdir(parents=True, exist_ok=True)
    np.save(root / "ood" / "noise_npy.npy", rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8))
    textures = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    write_png_tree(root / "ood" / "textures", textures, None, scale=2)
    return root


def make_context(checkpoint: Path, data_dir: Path, cache_dir: Path, fresh: bool = False, **options):
    """A suites.Context for the checkpoint (CPU), caching under ``cache_dir``."""
    from robust_eval.cache import CellCache
    from robust_eval.checkpoints.formats import load_checkpoint
    from robust_eval.suites import Context

    model, info = load_checkpoint(checkpoint)
    meta = info.to_dict()
    return Context(
        model=model,
        metadata=meta,
        data_dir=data_dir,
        cache=CellCache(cache_dir, meta["sha256"], fresh=fresh),
        **options,
    )


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description="regenerate the stored test weights")
    cli.add_argument("--write-weights", action="store_true", help=f"train and write {WEIGHTS.name}")
    if cli.parse_args().write_weights:
        write_weights()
