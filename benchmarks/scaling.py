"""Scaling out: throughput of the sharded commands with 1 and 2 processes, as ratios.

Section ``make-c``: ``robust-eval make-c`` on a CIFAR-sized array set (scikit-image photo crops,
32 x 32; 4,096 images, 5 corruptions x 5 severities by default), run three ways on the same input:

- ``1 process``: the plain command (the peer of the ratios);
- ``torchrun x2``: ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m robust_mix
  robust-eval make-c ...`` (the ranks split the chunks, rank 0 merges after a barrier);
- ``2 x --shard + --merge``: ``--shard 0/2`` and ``--shard 1/2`` started together, then ``--merge``
  (what a SLURM array does), timed from the start of the shards to the end of the merge.

Every process gets ``OMP_NUM_THREADS=1`` and ``OPENCV_FOR_THREADS_NUM=1`` (one core each, so the
ratio measures processes, not library threads). Times are wall-clock of the whole commands, process
start-up (Python, torch) and the merge included, as a user would see them. Images/s counts corrupted
images written (images x corruptions x severities). The ``same files`` column checks that each run
wrote the bytes of the one-process run. Goal: >= 1.8x with 2 processes on 2 free cores.

Section ``robust-eval corruptions``: the evaluation of a CPU model (timm resnet18 at 32 px, random
weights) over a CIFAR-10-C folder with 1 process (1 thread, then every core) and torchrun with 2 ranks
of 1 thread (``benchmarks/scaling_eval.py``). Section ``ImageNet-C decode``: the folder reader with
0, 1 and 2 decode worker processes against a bare PIL decode loop (its peer).

The table is built from :data:`SECTIONS`: functions ``(args, workdir) -> list[Row]``; more sections
are added by appending to that list.

Usage::

    python benchmarks/scaling.py            # ~1 min on 2 free cores
    python benchmarks/scaling.py --smoke    # tiny, seconds (tests/test_benchmarks.py)
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # scaling_eval, eval (benchmark helpers)


class Row(NamedTuple):
    """One line of the table: a variant of a section, and its ratio to the section's 1-process peer."""

    section: str
    variant: str
    processes: int
    items: int
    seconds: float
    ratio: float  # throughput / the 1-process throughput of the same section
    note: str = ""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_ARRAY_", "RANK", "WORLD_SIZE"))}
    env.update(NO_ALBUMENTATIONS_UPDATE="1", OMP_NUM_THREADS="1", OPENCV_FOR_THREADS_NUM="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _start(argv: Sequence[object], torchrun: int = 0) -> subprocess.Popen:
    launcher = [sys.executable]
    if torchrun:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={torchrun}"]
    cmd = [*launcher, "-m", "robust_mix", *map(str, argv)]
    return subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait(*procs: subprocess.Popen) -> None:
    for proc in procs:
        _out, err = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, proc.args))} failed:\n{err[-2000:]}")


def _timed(*groups: Callable[[], Sequence[subprocess.Popen]]) -> float:
    """Seconds to run the groups one after the other (the processes of a group run together)."""
    start = time.perf_counter()
    for group in groups:
        _wait(*group())
    return time.perf_counter() - start


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _clean_set(folder: Path, n: int) -> tuple[Path, Path]:
    """``n`` 32 x 32 crops of four scikit-image photographs (seeded positions) and 10-class labels."""
    rng = np.random.default_rng(0)
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    crops = []
    for i in range(n):
        im = photos[i % 4]
        side = int(rng.integers(64, min(im.shape[:2])))
        top, left = (int(rng.integers(0, d - side + 1)) for d in im.shape[:2])
        crops.append(
            cv2.resize(im[top : top + side, left : left + side], (32, 32), interpolation=cv2.INTER_AREA)
        )
    np.save(folder / "clean.npy", np.stack(crops))
    np.save(folder / "labels.npy", np.arange(n) % 10)
    return folder / "clean.npy", folder / "labels.npy"


def _make_c_runs(
    src: Path, labels: Path, corruptions: str, work: Path, variants: Sequence[str], rounds: int
) -> dict[str, float]:
    """Best seconds of each variant of ``make-c`` on ``src`` over ``rounds`` (outputs in
    ``work/<variant>``; each run starts from an empty folder)."""

    def argv(out: str, *extra: object) -> list[object]:
        base = ["robust-eval", "make-c", src, work / out, "--preset", "cifar", "--labels", labels]
        return [*base, "--corruptions", corruptions, "--no-progress", *extra]

    runs: dict[str, Sequence[Callable[[], Sequence[subprocess.Popen]]]] = {
        "one": [lambda: [_start(argv("one"))]],
        "torchrun": [lambda: [_start(argv("torchrun"), torchrun=2)]],
        "shards": [
            lambda: [_start(argv("shards", "--shard", f"{k}/2")) for k in range(2)],
            lambda: [_start(argv("shards", "--merge"))],
        ],
    }

    def run(variant: str) -> float:
        shutil.rmtree(work / variant, ignore_errors=True)
        return _timed(*runs[variant])

    best: dict[str, float] = {}
    for _ in range(rounds):  # interleaved, best round of each: the least disturbed by other jobs
        for variant in variants:
            best[variant] = min(best.get(variant, float("inf")), run(variant))
    return best


def make_c_section(args: argparse.Namespace, work: Path) -> list[Row]:
    """``robust-eval make-c``: 1 process, torchrun x2, and 2 shards + merge (not in ``--smoke``).

    Besides the whole-command ratio, the note gives the ratio without the fixed cost (start-up,
    process group, merge of a 4-image set with one corruption, measured the same way); not in
    ``--smoke``.
    """
    n = 64 if args.smoke else args.images
    corruptions = "contrast,gaussian_noise" if args.smoke else args.corruptions
    variants = ["one", "torchrun"] if args.smoke else ["one", "torchrun", "shards"]
    (work / "set").mkdir()
    rounds = 1 if args.smoke else args.rounds
    seconds = _make_c_runs(*_clean_set(work / "set", n), corruptions, work / "set", variants, rounds)
    fixed: dict[str, float] = {}
    if not args.smoke:
        (work / "fixed").mkdir()
        fixed = _make_c_runs(*_clean_set(work / "fixed", 4), "contrast", work / "fixed", variants, rounds)
    items = n * len(corruptions.split(",")) * 5
    peer = _tree(work / "set" / "one")
    names = {"one": "1 process", "torchrun": "torchrun x2", "shards": "2 x --shard + --merge"}
    rows = []
    for variant in variants:
        note = (
            "peer"
            if variant == "one"
            else ("same files" if _tree(work / "set" / variant) == peer else "FILES DIFFER")
        )
        if fixed:
            work_ratio = (seconds["one"] - fixed["one"]) / max(seconds[variant] - fixed[variant], 1e-9)
            note += f"; fixed cost {fixed[variant]:.1f} s, {work_ratio:.2f}x without it"
        processes = 1 if variant == "one" else 2
        rows.append(
            Row(
                "make-c",
                names[variant],
                processes,
                items,
                seconds[variant],
                seconds["one"] / seconds[variant],
                note,
            )
        )
    return rows


def _rows(section: str, measured: Sequence[dict[str, Any]]) -> list[Row]:
    """Rows of ``benchmarks/scaling_eval.py`` (dicts) as rows of this table."""
    return [
        Row(
            section,
            r["setting"],
            _processes(r["setting"]),
            r["images"],
            r["seconds"],
            r["ratio"],
            r.get("note", ""),
        )
        for r in measured
    ]


def _processes(setting: str) -> int:
    return 2 if "2 ranks" in setting else 1


def eval_section(args: argparse.Namespace, work: Path) -> list[Row]:
    """``robust-eval corruptions`` on a CPU model: 1 process (1 thread, every core) and torchrun x2;
    seconds are the evaluation time (a rerun from the cell cache is subtracted: start-up excluded)."""
    from scaling_eval import corruption_rows

    rows = corruption_rows(args.smoke, args.model, args.eval_images, args.eval_corruptions)
    return _rows("robust-eval corruptions", rows)


def decode_section(args: argparse.Namespace, work: Path) -> list[Row]:
    """The ImageNet-C folder reader with 0, 1 and 2 decode workers; the peer is a bare PIL decode loop."""
    from scaling_eval import decode_rows

    return _rows("ImageNet-C decode", decode_rows(args.smoke, args.decode_images))


#: The sections of the table, in order; each returns its rows (its first row is the peer of its ratios).
SECTIONS: list[Callable[[argparse.Namespace, Path], list[Row]]] = [
    make_c_section,
    eval_section,
    decode_section,
]


def print_table(rows: Sequence[Row]) -> None:
    print("| section | run | processes | images | seconds | images/s | vs 1 process | check |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(
            f"| {r.section} | {r.variant} | {r.processes} | {r.items:,} | {r.seconds:.1f} | "
            f"{r.items / r.seconds:,.0f} | {r.ratio:.2f}x | {r.note} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds), for the test suite")
    parser.add_argument("--images", type=int, default=4096, help="clean images of the make-c set")
    parser.add_argument(
        "--corruptions",
        default="gaussian_noise,defocus_blur,contrast,fog,pixelate",
        help="make-c corruptions (comma-separated; all 5 severities each)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of each variant; the best one counts")
    parser.add_argument("--model", default="resnet18", help="timm model of the evaluation section")
    parser.add_argument("--eval-images", type=int, default=400, help="images per -C cell (evaluation)")
    parser.add_argument("--eval-corruptions", type=int, default=3, help="-C corruptions x 5 (evaluation)")
    parser.add_argument("--decode-images", type=int, default=512, help="JPEGs of the decode section")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f} at the start")
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        for k, section in enumerate(SECTIONS):
            work = Path(tmp) / str(k)
            work.mkdir()
            rows += section(args, work)
    print_table(rows)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
