"""Does IPMix make a classifier more robust, at no cost in clean accuracy? The whole job, end to end,
on real data that ships with scikit-learn, with the project's public commands only.

    python examples/digits_study.py --out study            # what `make demo` runs (~10 min, 2 CPUs)
    python examples/digits_study.py --print-commands       # the same steps as shell commands

Steps (each is one public command; ``--print-commands`` lists them so you can run them yourself):

1. ``robust-eval data digits DATA``: the 1,797 handwritten digits as a CIFAR-10 python folder
   (32 x 32 RGB, fixed stratified 80/20 split) + a real OOD set of photo crops (``DATA/ood``);
2. ``robust-eval make-c`` / ``make-p`` (CIFAR preset): regenerate -C and -P from the test split;
3. ``timm train`` the same architecture with ``--aug none | ipmix | pixmix | augmix`` (IPMix and
   AugMix with the JSD loss, as in their papers; PixMix without), once per seed;
4. ``robust-eval all`` on every final checkpoint: clean, -C mCE, -P mFR, PGD, calibration, OOD;
5. ``robust-eval compare`` of all results, the first (``none``, seed 0) being the reference row.

Resumable: finished steps are skipped (a training run with a ``final.pth`` of the requested length,
an evaluation whose ``all.json`` belongs to the current checkpoint), an interrupted training run
continues from its ``last.pth``, and ``make-c`` / ``make-p`` / ``robust-eval all`` resume by
themselves. The commands run inside this Python process (same arguments as on the shell; this
saves the ~5 s of imports per command that 25 separate processes would spend).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

#: ``--aug`` -> extra ``timm train`` flags: the papers' training settings (IPMix and AugMix use the
#: JSD consistency loss over clean + two augmented views; PixMix trains on one view with plain CE).
AUG_FLAGS: dict[str, list[str]] = {"none": [], "ipmix": ["--jsd"], "pixmix": [], "augmix": ["--jsd"]}


@dataclass
class Step:
    """One public command, with a test that says whether its result is already there."""

    title: str
    program: str  # "robust-eval" | "timm"
    argv: list[str]
    done: Callable[[], bool] = lambda: False

    def shell(self) -> str:
        return shlex.join([self.program, *self.argv])


def _epochs_done(run: Path) -> int:
    metrics = run / "metrics.csv"
    if not metrics.is_file():
        return 0
    with open(metrics, newline="") as fh:
        return sum(1 for _ in csv.DictReader(fh))


def _train_step(args: argparse.Namespace, data: Path, aug: str, seed: int) -> Step:
    run = args.out / "runs" / f"{aug}-s{seed}"
    argv = ["train", "--dataset", "cifar10", "--data-dir", str(data), "--model", args.model]
    argv += [
        "--img-size",
        "32",
        "--epochs",
        str(args.epochs),
        "-b",
        str(args.batch_size),
        "--lr",
        str(args.lr),
    ]
    argv += ["--hflip", "0", "-j", "2", "--seed", str(seed), "--aug", aug, *AUG_FLAGS[aug], "--no-progress"]
    if (run / "last.pth").is_file():
        argv += ["--resume", str(run)]  # continues an interrupted (or shorter) run
    else:
        argv += ["--output", str(run)]

    def done() -> bool:
        return (run / "final.pth").is_file() and _epochs_done(run) >= args.epochs

    return Step(f"train {aug} seed {seed} ({args.epochs} epochs)", "timm", argv, done)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _eval_step(args: argparse.Namespace, data: Path, name: str) -> Step:
    ckpt = args.out / "runs" / name / "final.pth"
    out = args.out / "eval" / name
    argv = ["all", str(ckpt), "--data-dir", str(data), "--out", str(out), "--batch-size", "250"]
    if args.eval_subset:
        argv += ["--subset", str(args.eval_subset)]
    if args.perturbations:
        argv += ["--perturbations", args.perturbations]

    def done() -> bool:
        result = out / "all.json"
        if not (result.is_file() and ckpt.is_file()):
            return False
        return json.loads(result.read_text()).get("checkpoint", {}).get("sha256") == _sha256(ckpt)

    return Step(f"evaluate {name}", "robust-eval", argv, done)


def plan(args: argparse.Namespace) -> list[Step]:
    """Every command of the study, in order."""
    data = args.out / "data"
    clean = data / "cifar-10-batches-py"
    make_c = ["make-c", str(clean), str(data), "--preset", "cifar", "--no-progress"]
    if args.corruptions:
        make_c += ["--corruptions", args.corruptions]
    make_p = ["make-p", str(clean), str(data), "--preset", "cifar", "--difficulties", "1", "--no-progress"]
    if args.perturbations:
        make_p += ["--perturbations", args.perturbations]
    steps = [
        Step("write the digits data set and the photo OOD set", "robust-eval", ["data", "digits", str(data)]),
        Step("regenerate CIFAR-10-C from the test split", "robust-eval", make_c),
        Step("regenerate CIFAR-10-P from the test split", "robust-eval", make_p),
    ]
    names = []
    for seed in args.seeds:
        for aug in args.augs:
            steps.append(_train_step(args, data, aug, seed))
            names.append(f"{aug}-s{seed}")
    steps += [_eval_step(args, data, name) for name in names]
    results = [str(args.out / "eval" / name / "all.json") for name in names]
    steps.append(Step("compare", "robust-eval", ["compare", *results, "--out", str(args.out / "compare")]))
    return steps


def _invoke(step: Step) -> None:
    """Run a public command in this process, exactly as its console script would."""
    import typer.main

    if step.program == "timm":
        from timm_ext.cli import RESUME_HINT_ENV, app

        # on Ctrl-C the trainer's own advice (timm train --resume RUN) would skip the study's other steps
        os.environ[RESUME_HINT_ENV] = (
            "run `make demo` (or this digits_study.py command) again: it continues here"
        )
    else:
        from robust_eval.cli import app
    code = typer.main.get_command(app).main(args=step.argv, prog_name=step.program, standalone_mode=False)
    if code:
        raise SystemExit(f"step failed (exit {code}): {step.shell()}")


def run(steps: Sequence[Step]) -> None:
    """Run the steps, skipping finished ones; one status line per step with its wall and CPU time
    (CPU time counts every thread of this process: on an idle 2-core machine wall ~ CPU / 2)."""
    start, cpu_start = time.perf_counter(), time.process_time()
    for i, step in enumerate(steps, 1):
        head = f"[{i}/{len(steps)}] {step.title}"
        if step.done():
            print(f"{head}: done already, skipped", flush=True)
            continue
        print(f"{head}\n  $ {step.shell()}", flush=True)
        t0, c0 = time.perf_counter(), time.process_time()
        _invoke(step)
        print(f"  ({time.perf_counter() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU)", flush=True)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"study finished in {wall:.0f} s wall, {cpu:.0f} s CPU (all threads){load}", flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=Path("study"), help="folder for data, runs, eval, compare"
    )
    parser.add_argument("--augs", default="none,ipmix,pixmix,augmix", help="--aug values (first = reference)")
    parser.add_argument("--seeds", default="0", help="training seeds, comma-separated")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per model")
    parser.add_argument("--model", default="test_resnet", help="timm model (the same for every run)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate (cosine schedule)")
    parser.add_argument(
        "--eval-subset",
        type=int,
        default=None,
        help="evaluate a seeded, class-stratified sample of N test images (robust-eval --subset)",
    )
    parser.add_argument("--corruptions", default=None, help="-C corruptions to make (default: all 19)")
    parser.add_argument("--perturbations", default=None, help="-P perturbations (default: robust-eval's)")
    parser.add_argument("--print-commands", action="store_true", help="print the shell commands and exit")
    args = parser.parse_args(argv)
    args.augs = [a.strip() for a in args.augs.split(",") if a.strip()]
    unknown = [a for a in args.augs if a not in AUG_FLAGS]
    if unknown:
        parser.error(f"--augs: unknown {unknown}; choose from {', '.join(AUG_FLAGS)}")
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    steps = plan(args)
    if args.print_commands:
        print("\n".join(step.shell() for step in steps))
        return
    run(steps)
    print(f"report: {args.out / 'compare' / 'compare.md'} (plots in {args.out / 'compare' / 'plots'})")


if __name__ == "__main__":
    sys.exit(main())
