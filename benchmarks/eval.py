"""Evaluation overhead of `robust-eval corruptions` vs bare forward passes, in one process.

The peer is the cheapest possible evaluation: the same images, already decoded, normalized and
batched as float tensors in memory, pushed through the bare network with ``model(x)``. The suite
run includes everything a user pays for: checkpoint loading (sha256, timm model build), memory-mapped
reads of the -C ``.npy`` cells and the clean CIFAR folder, uint8 -> [0, 1] conversion, the input
contract wrapper, the metric functions, per-cell atomic caching and result assembly. Goal: the
suite takes at most 10% longer than the bare loop (CPU).

    python benchmarks/eval.py                       # resnet18_cifar, 3 corruptions x 5 severities
    python benchmarks/eval.py --images 500 --corruptions 5 --repeats 3

Rows alternate (bare, suite, bare, suite, ...) and the minimum of the repeats is reported, which
keeps noise from other processes on a shared machine out of the ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from robust_eval.cache import CellCache
from robust_eval.checkpoints.checkpoint import save_checkpoint
from robust_eval.checkpoints.formats import load_checkpoint
from robust_eval.constants import ALL_CORRUPTIONS, SEVERITIES
from robust_eval.data import write_cifar
from robust_eval.suites import Context, run_corruptions

MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)


def build_data(root: Path, n: int, corruptions: list[str], seed: int = 0) -> None:
    """A CIFAR-10 test folder with n images and a CIFAR-10-C folder of the given corruptions."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    write_cifar(root / "cifar-10-batches-py", "cifar10", images, labels)
    folder = root / "CIFAR-10-C"
    folder.mkdir(parents=True)
    for c in corruptions:
        np.save(folder / f"{c}.npy", rng.integers(0, 256, (5 * n, 32, 32, 3), dtype=np.uint8))
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))


def write_checkpoint(path: Path, net: torch.nn.Module, name: str) -> Path:
    """``net`` (timm ``name``, 10 classes) as a CIFAR-10 checkpoint: 32 px inputs, CIFAR mean / std."""
    config = {
        "input_size": [3, 32, 32],
        "mean": MEAN,
        "std": STD,
        "interpolation": "bilinear",
        "crop_pct": 1.0,
    }
    save_checkpoint(path, net.state_dict(), model=name, num_classes=10, dataset="cifar10", data_config=config)
    return path


def bare_pass(net: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    """Seconds for ``net(x)`` over pre-made batches (no conversion, no metrics, no I/O)."""
    start = time.perf_counter()
    with torch.inference_mode():
        for x in batches:
            net(x)
    return time.perf_counter() - start


def suite_pass(ckpt: Path, data: Path, cache_root: Path, batch_size: int) -> tuple[float, float, dict]:
    """Seconds for the whole corruption suite (fresh cache) and, within it, inside the network."""
    start = time.perf_counter()
    model, info = load_checkpoint(ckpt)
    meta = info.to_dict()
    inside = [0.0, 0.0]  # accumulated seconds, start of the current call

    def pre(_module, _args):
        inside[1] = time.perf_counter()

    def post(_module, _args, _out):
        inside[0] += time.perf_counter() - inside[1]

    model.model.register_forward_pre_hook(pre)
    model.model.register_forward_hook(post)
    ctx = Context(
        model=model,
        metadata=meta,
        data_dir=data,
        cache=CellCache(cache_root, meta["sha256"]),
        batch_size=batch_size,
    )
    out = run_corruptions(ctx)
    return time.perf_counter() - start, inside[0], out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="resnet18_cifar", help="timm name (falls back to resnet18 at 32 px)"
    )
    parser.add_argument("--images", type=int, default=200, help="images per (corruption, severity) cell")
    parser.add_argument("--corruptions", type=int, default=3, help="how many -C corruptions")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--smoke", action="store_true", help="a few images, one repeat: checks the script runs"
    )
    args = parser.parse_args()
    if args.smoke:
        args.images, args.corruptions, args.repeats, args.model = 8, 1, 1, "test_resnet"
    if args.threads:
        torch.set_num_threads(args.threads)

    import timm

    import timm_ext.models  # noqa: F401 - registers the CIFAR architectures with timm

    name = args.model if timm.is_model(args.model) else "resnet18"
    torch.manual_seed(0)
    net = timm.create_model(name, num_classes=10).eval()
    corruptions = list(ALL_CORRUPTIONS[: args.corruptions])
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        data = tmp_path / "data"
        build_data(data, args.images, corruptions)
        ckpt = write_checkpoint(tmp_path / "ck.pth", net, name)

        # the bare peer: every image the suite sees (clean + all cells), pre-normalized in memory
        mean = torch.tensor(MEAN).view(1, 3, 1, 1)
        std = torch.tensor(STD).view(1, 3, 1, 1)
        arrays = [np.load(data / "CIFAR-10-C" / f"{c}.npy") for c in corruptions]
        from robust_eval.data import load_cifar

        clean, _, _ = load_cifar(data / "cifar-10-batches-py", "cifar10")
        batches = []
        for arr in [clean] + [a[(s - 1) * args.images : s * args.images] for a in arrays for s in SEVERITIES]:
            for i in range(0, len(arr), args.batch_size):
                x = (
                    torch.from_numpy(np.ascontiguousarray(arr[i : i + args.batch_size]))
                    .permute(0, 3, 1, 2)
                    .float()
                )
                batches.append(((x / 255 - mean) / std).contiguous())
        n_images = sum(len(b) for b in batches)
        # the suite hands the network NHWC-backed (channels_last) tensors; time the bare loop in both
        # memory formats and compare with the faster one, so the ratio measures overhead only
        batches_cl = [b.contiguous(memory_format=torch.channels_last) for b in batches]

        bare_pass(net, batches[:2])  # warm-up
        bare_pass(net, batches_cl[:2])
        times: dict[str, list[float]] = {"nchw": [], "cl": [], "suite": [], "inside": []}
        for r in range(args.repeats):
            times["nchw"].append(bare_pass(net, batches))
            times["cl"].append(bare_pass(net, batches_cl))
            t, t_inside, out = suite_pass(ckpt, data, tmp_path / f"cache{r}", args.batch_size)
            times["suite"].append(t)
            times["inside"].append(t_inside)
        assert len(out["c"]["corruptions"]) == len(corruptions)

    bare = min(min(times["nchw"]), min(times["cl"]))
    suite = min(times["suite"])
    print(
        f"model {name}, {n_images} images ({len(corruptions)} corruptions x 5 severities x {args.images} + clean), "
        f"batch {args.batch_size}, torch threads {torch.get_num_threads()}, {args.repeats} repeats (min)"
    )
    header = f"{'run':<34}{'seconds':>10}{'median':>10}{'images/s':>11}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    rows = [
        ("bare model(x), NCHW tensors", times["nchw"]),
        ("bare model(x), channels_last", times["cl"]),
        ("robust-eval corruptions suite", times["suite"]),
    ]
    for label, ts in rows:
        best = min(ts)
        print(
            f"{label:<34}{best:>10.2f}{statistics.median(ts):>10.2f}{n_images / best:>11.0f}{best / bare:>8.3f}"
        )
    print(f"overhead vs the faster bare loop: {100 * (suite / bare - 1):+.1f}% (goal <= +10%)")
    # the same-run view, immune to load changes between runs: suite time outside the network
    within = [100 * (t / i - 1) for t, i in zip(times["suite"], times["inside"])]
    print(
        f"within each suite run, time outside the network's forward: {min(within):+.1f}% (min), "
        f"{statistics.median(within):+.1f}% (median) of the forward time"
    )


if __name__ == "__main__":
    main()
