"""Training-step time of ``timm train``'s methods: AdAutoMix and AutoMix against MixUp and plain training.

Every method is built by ``timm_ext.train.methods.create_method`` on a copy of the same timm model,
with the optimizer on the method's own parameter groups, and times full steps on the same batch:
the method's loss, one backward, the optimizer step and the method's post-step update (AdAutoMix's
EMA teacher). Methods run interleaved, ``--rounds`` times each; the table reports the best round
(the least disturbed by other processes) and ratios to MixUp measured in the same run.

The specification expects AdAutoMix at about 3.5-5.5x MixUp (about 15 forward-equivalents per
step for N = 3 against MixUp's 3); the official logs show 3.7x MixUp and 1.2x AutoMix on a GPU.

Usage::

    python benchmarks/train_step.py                                  # resnet18, 32 px, batch 64
    python benchmarks/train_step.py --model resnet18_cifar --device cuda --batch-size 100
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from timm_ext.train import TrainConfig
from timm_ext.train.methods import create_method

#: (row label, --aug, extra settings)
VARIANTS: tuple[tuple[str, str, dict], ...] = (
    ("none", "none", {}),
    ("mixup", "mixup", {}),
    ("automix", "automix", {}),
    ("adautomix", "adautomix", {}),
    ("adautomix --adautomix-reuse-clean", "adautomix", {"adautomix_reuse_clean": True}),
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _build(base: torch.nn.Module, aug: str, extra: dict, classes: int) -> tuple:
    from timm.optim import create_optimizer_v2

    cfg = TrainConfig(aug=aug, model="bench", **extra)
    method = create_method(cfg, copy.deepcopy(base), classes)
    opt = create_optimizer_v2(method.param_groups(), opt="momentum", lr=0.01, momentum=0.9, weight_decay=1e-4)
    method.network.train()
    return method, opt


def measure(method, opt, x: torch.Tensor, y: torch.Tensor, steps: int, start: int) -> float:
    """Seconds per step over ``steps`` steps (global step numbers from ``start``: both parities)."""
    _sync(x.device)
    t0 = time.perf_counter()
    for t in range(start, start + steps):
        loss = method.step(method.network, x, y, t).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        method.after_update(t + 1, 10_000)
    _sync(x.device)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    import timm

    import timm_ext.models  # noqa: F401 - the CIFAR architectures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--img-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per round (even: both parities)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument(
        "--smoke", action="store_true", help="a tiny model and batch, one round: checks the script runs"
    )
    args = parser.parse_args()
    if args.smoke:
        args.model, args.batch_size, args.classes, args.steps, args.rounds = "test_resnet", 4, 10, 2, 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    torch.manual_seed(0)
    base = timm.create_model(args.model, num_classes=args.classes).to(device)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch_size, 3, args.img_size, args.img_size, generator=gen).to(device)
    y = torch.randint(0, args.classes, (args.batch_size,), generator=gen).to(device)
    built = {label: _build(base, aug, extra, args.classes) for label, aug, extra in VARIANTS}
    for method, opt in built.values():  # warm-up (allocator, cuDNN autotune, lazy init)
        measure(method, opt, x, y, 2, 0)
    best: dict[str, float] = {}
    for r in range(args.rounds):
        for label, (method, opt) in built.items():
            sec = measure(method, opt, x, y, args.steps, 2 + r * args.steps)
            best[label] = min(best.get(label, float("inf")), sec)

    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(
        f"\ntraining-step time, {args.model} at {args.img_size} px, batch {args.batch_size}, {args.classes} classes, "
        f"{where}; best of {args.rounds} rounds x {args.steps} steps\n"
    )
    print("| method | ms / step | vs mixup | vs automix |")
    print("|---|---:|---:|---:|")
    for label, sec in best.items():
        print(f"| `{label}` | {1000 * sec:.1f} | {sec / best['mixup']:.2f}x | {sec / best['automix']:.2f}x |")


if __name__ == "__main__":
    main()
