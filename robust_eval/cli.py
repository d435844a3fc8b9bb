"""The ``robust-eval`` command: one run measures a checkpoint's whole safety suite.

Thin Typer commands parse options and delegate: command -> suite (robust_eval.suites) -> (reader,
model) -> metric (robust_eval.metrics) -> report (robust_eval.report). Bad input exits with code 2
and one line on stderr.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from robust_eval.constants import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_SEED,
    DEFAULT_THREAT_MODEL,
    DEFAULT_WORKERS,
    ECE_BINS,
    IMAGENET_C_PROTOCOLS,
    PGD_ALPHA_255,
    PGD_EPS_255,
    PGD_STEPS,
    RMS_BIN_SIZE,
)
from robust_mix.cli import fail, run

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from robust_eval import baseline_cmd, generate_cli

METRICS_HELP = (
    "Metrics (exact definitions: README, robust-eval section). Errors are fractions in the JSON, % on screen.\n\n"
    "- clean: top-1 / top-5 error on the test split.\n\n"
    "- corruptions: top-1 error per (corruption, severity) cell of -C (15 benchmark + 4 extras, extras never "
    "averaged) and -C-bar. mCE unnormalized = plain mean over the 15x5 cells (CIFAR convention); normalized "
    "CE_c = 100 * sum_s E(c,s) / sum_s E_base(c,s), mCE = mean CE_c (AlexNet constants for ImageNet, or "
    "--baseline FILE); relative mCE uses (E - E_clean) in both sums.\n\n"
    "- perturbations: flip probability per -P perturbation (noise: every frame vs frame 0; others: consecutive "
    "frames), top-5 distance (T5D); mFR / mT5D = plain mean (CIFAR) or mean of 100 * FP / FP_base.\n\n"
    f"- adversarial: error under L-inf PGD (torchattacks; eps {PGD_EPS_255:g}/255, step {PGD_ALPHA_255:g}/255, "
    f"{PGD_STEPS} steps, random start by default) on the clean test set in [0, 1] space.\n\n"
    f"- calibration: RMS calibration error (equal-count bins of {RMS_BIN_SIZE} by confidence, all bins; the "
    f"reference-compatible variant that skips the last bin is reported separately) and ECE ({ECE_BINS} bins).\n\n"
    "- ood: anomaly score = -max softmax, OOD = positive class; AUROC, AUPR (scikit-learn), FPR95 (FPR on "
    "in-distribution data at the threshold whose OOD recall is closest to 95%, ties to the larger FPR). "
    "Synthetic Gaussian / Rademacher / Blobs always, real sets from DATA/ood/<name>(.npy)."
)

app = typer.Typer(
    name="robust-eval",
    help="Measure a classifier's corruption, perturbation, adversarial, calibration and anomaly-detection "
    "robustness (the IPMix paper's safety suite) in one command.\n\n" + METRICS_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect the data root.", no_args_is_help=True)
app.add_typer(data_app, name="data")

err_console = Console(stderr=True)
#: Where results, reports, plots and the cell cache go unless --out says otherwise.
DEFAULT_OUT = Path("robust-eval-out")
#: Commands that skip a suite whose data is absent or malformed (one line each) instead of failing.
_SKIPPING = ("all", "baseline")


class UsageProblem(Exception):
    """Bad input: reported as one line, exit code 2."""


def _fail(message: str, code: int = 2) -> None:
    fail("robust-eval", message, code)


def _resolve_data_dir(data_dir: Path | None) -> Path:
    if data_dir is not None:
        return data_dir
    env = os.environ.get("ROBUST_EVAL_DATA")
    return Path(env) if env else Path("data")


class _Bar:
    """What a suite advances: one task of the progress display (or nothing when it is off)."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


class _Bars:
    """The progress display of a run: an overall bar over the suites (``suite i/n: name``) and one
    transient bar per cell (``track(description, total)``, what :class:`robust_eval.suites.Context`
    calls). ``progress`` None: no display at all (``--no-progress``)."""

    def __init__(self, progress: Any, suites: Sequence[str]) -> None:
        self._progress = progress
        self._names = list(suites)
        self.overall_done = 0
        self._started = False
        self._overall = progress.add_task("suites", total=len(self._names)) if progress is not None else None

    def next_suite(self, name: str) -> None:
        """Mark the previous suite done and show ``name`` as the one running."""
        if self._started:
            self.overall_done += 1
        self._started = True
        if self._progress is not None:
            i = self._names.index(name) + 1 if name in self._names else self.overall_done + 1
            description = f"suite {i}/{len(self._names)}: {name}"
            self._progress.update(self._overall, completed=self.overall_done, description=description)

    @contextlib.contextmanager
    def track(self, description: str, total: int) -> Iterator[_Bar]:
        if self._progress is None:
            yield _Bar()
            return
        task = self._progress.add_task(f"  {description}", total=total)
        try:
            yield _Bar(self._progress, task)
        finally:
            self._progress.remove_task(task)


@contextlib.contextmanager
def _progress(enabled: bool, suites: Sequence[str], console: Console | None = None) -> Iterator[_Bars]:
    """The rich progress display of a run on ``console`` (stderr; off when it is not a terminal or
    ``enabled`` is false)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = console or err_console
    if not (enabled and console.is_terminal):
        yield _Bars(None, suites)
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        yield _Bars(progress, suites)


# ------------------------------------------------------------------------------------------------
# evaluation commands
# ------------------------------------------------------------------------------------------------


def _protocol(ctx: Any, opts: dict[str, Any], suites: Sequence[str]) -> dict[str, Any]:
    from robust_eval import constants
    from robust_eval.baselines import ALEXNET_CLEAN_ERROR, ALEXNET_IMAGENET_C_ERRORS

    return {
        "suites_requested": list(suites),
        "data_dir": str(ctx.data_dir),
        "subset": ctx.subset,
        "split": ctx.split,
        "device": _device_name(opts),  # auto resolved; cuda, not cuda:<rank>: the same under torchrun
        "batch_size": ctx.batch_size,
        "seed": ctx.seed,
        "preprocessing": {
            "input_contract": ctx.metadata["input_contract"],
            "data_config": ctx.metadata["data_config"],
            "image_files": "decoded with Pillow (EXIF orientation applied), shorter side resized to round(size / crop_pct), center crop",
            "imagenet_c_protocol": ctx.imagenet_c_protocol,
        },
        "corruption_lists": {
            "benchmark": list(constants.BENCHMARK_CORRUPTIONS),
            "extras": list(constants.EXTRA_CORRUPTIONS),
            "cifar_c_bar": list(constants.CIFAR_CBAR_CORRUPTIONS),
            "imagenet_c_bar": list(constants.IMAGENET_CBAR_CORRUPTIONS),
            "severities": list(constants.SEVERITIES),
        },
        "perturbations": list(ctx.perturbation_list),
        "perturbations_default": not ctx.perturbations,
        "generate_corruptions": ctx.generate,
        "pgd": ctx.pgd.as_dict(),
        "calibration": {"rms_bin_size": constants.RMS_BIN_SIZE, "ece_bins": constants.ECE_BINS},
        "ood": {
            "score": "-max softmax",
            "positive": "ood",
            "n_per_set": "in-distribution size // 5",
            **({"detectors": list(ctx.ood_scores)} if tuple(ctx.ood_scores) != ("msp",) else {}),
        },
        "constants": {
            "alexnet_imagenet_c_errors": {k: list(v) for k, v in ALEXNET_IMAGENET_C_ERRORS.items()},
            "alexnet_clean_error": ALEXNET_CLEAN_ERROR,
        },
        "baseline": ctx.baseline.to_dict() if ctx.baseline is not None else None,
    }


def _evaluate(command: str, suites: Sequence[str], opts: dict[str, Any]) -> None:
    from robust_eval.sharding import evaluation_group, quiet_unless_main

    try:
        with evaluation_group(_device_name(opts)) as shard, quiet_unless_main(shard, err_console):
            _evaluate_inner(command, suites, opts, shard)
    except typer.Exit:
        raise
    except UsageProblem as exc:
        _fail(str(exc))
    except (ValueError, OSError) as exc:  # CheckpointError, DataLayoutError, BaselineError, ResultError
        _fail(f"{exc}")


def _evaluate_inner(command: str, suites: Sequence[str], opts: dict[str, Any], shard: Any) -> None:
    """Check the options, load the checkpoint, run the suites, write and print the result. Under
    torchrun every rank runs the suites (its part of every set, robust_eval.sharding); rank 0 alone
    locks ``--out``, shows progress and writes."""
    from albumentations_ipmix.files import OutputLock

    _check_options(opts)
    ctx = _make_context(opts, shard)
    out: Path = opts["out"]
    _check_targets(command, out, ctx.metadata)  # before the lock: a refused run creates nothing
    lock = OutputLock(out, f"robust-eval {command}") if shard.is_main else contextlib.nullcontext()
    with lock:  # one run per --out folder
        _check_targets(command, out, ctx.metadata)
        with _progress(_option(opts, "progress") and shard.is_main, suites) as bars:
            ctx.track = bars.track
            results, skipped = _run_suites(command, suites, ctx, bars)
        if not results:
            raise UsageProblem(f"no suite could run ({len(skipped)} skipped, reasons above); nothing written")
        if shard.is_main:  # under torchrun rank 0 alone writes and prints the results
            _write_outputs(command, suites, ctx, opts, results, skipped)


def _check_targets(command: str, out: Path, metadata: dict[str, Any]) -> None:
    """Refuse a run whose ``<out>/<command>.json`` holds another checkpoint's result or is not a
    result, or whose ``<out>/<command>.md`` is not a robust-eval report (nothing is overwritten)."""
    from robust_eval.report import check_report_target, check_result_target

    check_result_target(out / f"{command}.json", metadata["sha256"], hint="pass another --out")
    check_report_target(out / f"{command}.md", force=False, hint="pass another --out")


def _option(opts: dict[str, Any], name: str) -> Any:
    """The value of option ``name``: given, else its default (commands lack the options of others)."""
    return opts[name] if name in opts else OPTIONS_BY_NAME[name].default


def _check_options(opts: dict[str, Any]) -> None:
    """Every check of the options that needs neither the checkpoint nor the data (one line, exit 2)."""
    _check_ranges(opts)
    if opts.get("device") == "meta":
        raise UsageProblem("--device meta holds no data and cannot evaluate; use cpu, cuda or cuda:N")
    save_baseline_path: Path | None = opts.get("save_baseline")
    if save_baseline_path is not None:
        _check_save_baseline(save_baseline_path)
    protocol = _option(opts, "imagenet_c_protocol")
    if protocol not in IMAGENET_C_PROTOCOLS:
        raise UsageProblem(f"--imagenet-c-protocol must be resize_crop or center_crop, got {protocol!r}")
    leaderboard_path: Path | None = opts.get("robustbench_json")
    if leaderboard_path is not None and leaderboard_path.exists():
        raise UsageProblem(
            f"--robustbench-json: '{leaderboard_path}' already exists; remove it or choose another path"
        )
    _perturbation_list(opts.get("perturbations"))
    _ood_scores(opts)
    _overrides(opts)


def _auto_device(name: str) -> str:
    """``auto`` resolved: ``cuda`` when CUDA is available, else ``cpu``; other names unchanged."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _device_name(opts: dict[str, Any]) -> str:
    """``--device`` (default ``auto``) with ``auto`` resolved."""
    return _auto_device(str(_option(opts, "device")))


def _torch_device(name: str) -> Any:
    """``--device`` as a torch device (``auto`` resolved; CUDA must be available for a cuda device)."""
    import torch

    name = _auto_device(name)
    try:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageProblem(f"--device {name}: CUDA is not available here (use --device cpu)")
    except RuntimeError as exc:
        raise UsageProblem(f"--device {name!r} is not a torch device: {exc}") from None
    return device


def _perturbation_list(text: str | None) -> tuple[str, ...] | None:
    """``--perturbations`` as a tuple of known -P names; None = the data set's default list."""
    if not text:
        return None
    from robust_eval.constants import TEST_PERTURBATIONS as TP
    from robust_eval.constants import VALIDATION_PERTURBATIONS as VP

    perturbations = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in perturbations if p not in (*TP, *VP)]
    if unknown:
        raise UsageProblem(f"--perturbations: unknown {unknown}; known: {', '.join((*TP, *VP))}")
    return perturbations


def _ood_scores(opts: dict[str, Any]) -> tuple[str, ...]:
    """``--ood-scores`` as a tuple of known detectors (robust_eval.ood_scores; default msp)."""
    from robust_eval.ood_scores import parse_scores

    try:
        return parse_scores(opts.get("ood_scores"))
    except ValueError as exc:
        raise UsageProblem(f"--ood-scores: {exc}") from None


def _overrides(opts: dict[str, Any]) -> dict[str, Any]:
    """The input-contract flags (``--mean --std --input-size --crop-pct``), checked."""
    from robust_eval.data_config import parse_overrides

    return parse_overrides(opts.get("mean"), opts.get("std"), opts.get("input_size"), opts.get("crop_pct"))


def _precheck(opts: dict[str, Any]) -> None:
    """:func:`_check_options` as a command's first step (one line, exit 2), for commands that look at
    other files (``baseline``'s network) before they evaluate."""
    try:
        _check_options(opts)
    except (UsageProblem, ValueError) as exc:
        _fail(str(exc))


def _make_context(opts: dict[str, Any], shard: Any) -> Any:
    """Load the checkpoint and build the suites' :class:`robust_eval.suites.Context` (on this rank's
    device: ``cuda`` is ``cuda:<LOCAL_RANK>`` under torchrun)."""
    from robust_eval import suites as S
    from robust_eval.cache import CellCache
    from robust_eval.models import load_checkpoint

    device = _torch_device(shard.device(_device_name(opts)))
    baseline = None
    if opts.get("baseline"):
        from robust_eval.baselines import get_baseline

        baseline = get_baseline(opts["baseline"])
    overrides = _overrides(opts)
    model, info = load_checkpoint(
        opts["checkpoint"],
        model=opts.get("model"),
        num_classes=opts.get("num_classes"),
        dataset=opts.get("dataset"),
        ema=opts.get("ema", False),
        device=device,
        data_overrides=overrides,
        model_dir=opts.get("model_dir"),
        threat_model=_option(opts, "threat_model"),
    )
    metadata = info.to_dict()
    if baseline is not None:
        baseline.check_dataset(info.dataset)
    out: Path = opts["out"]
    pgd = S.PGDSettings(
        eps=_option(opts, "eps") / 255,
        alpha=_option(opts, "alpha") / 255,
        steps=_option(opts, "steps"),
        random_start=_option(opts, "random_start"),
    )
    return S.Context(
        model=model,
        metadata=metadata,
        data_dir=_data_dir(opts, metadata),
        cache=CellCache(out / ".cache", metadata["sha256"], fresh=opts.get("fresh", False), shard=shard),
        device=device,
        batch_size=_option(opts, "batch_size"),
        workers=_option(opts, "workers"),
        subset=opts.get("subset"),
        split=opts.get("split"),
        seed=_option(opts, "seed"),
        pgd=pgd,
        perturbations=_perturbation_list(opts.get("perturbations")),
        generate=opts.get("generate", False),
        imagenet_c_protocol=_option(opts, "imagenet_c_protocol"),
        baseline=baseline,
        shard=shard,
        ood_scores=_ood_scores(opts),
        calibration_extras=bool(opts.get("calibration_extras", False)),
    )


def _data_dir(opts: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """``--data-dir``, else $ROBUST_EVAL_DATA, else ./data - or, when ./data lacks the data, the folder
    recorded in the checkpoint (said in one line)."""
    data_dir = _resolve_data_dir(opts.get("data_dir"))
    if opts.get("data_dir") is None and not os.environ.get("ROBUST_EVAL_DATA"):
        from robust_eval.data import fallback_data_dir

        data_dir, note = fallback_data_dir(data_dir, metadata)
        if note is not None:
            err_console.print(note, highlight=False, soft_wrap=True, markup=False)
    return data_dir


def _skip(skipped: dict[str, str], suite: str, reason: str) -> None:
    skipped[suite] = reason
    err_console.print(f"[yellow]skipped {suite}:[/yellow] {reason}", highlight=False, soft_wrap=True)


def _run_suites(
    command: str, suites: Sequence[str], ctx: Any, bars: _Bars | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON blocks of the suites that ran, and why the others were skipped. A single-suite command
    fails on absent or malformed data; ``all`` skips that suite with one line and goes on."""
    from robust_eval import suites as S
    from robust_eval.data import DataLayoutError

    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for suite in suites:
        if command == "all" and not S.SUITES[suite].applies(ctx):
            continue  # e.g. ImageNet-A/-R only exist for ImageNet classifiers
        if bars is not None:
            bars.next_suite(suite)
        try:
            results[suite] = S.SUITES[suite].run(ctx).to_dict()
        except S.SuiteSkipped as exc:
            if command not in _SKIPPING:
                raise UsageProblem(f"{suite}: {exc}") from None
            _skip(skipped, suite, str(exc))
        except DataLayoutError as exc:
            if command not in _SKIPPING:
                raise
            _skip(skipped, suite, f"malformed data: {exc}")
    return results, skipped


def _write_outputs(
    command: str,
    suites: Sequence[str],
    ctx: Any,
    opts: dict[str, Any],
    results: dict[str, Any],
    skipped: dict[str, str],
) -> None:
    """Write ``<out>/<command>.json``, the Markdown report, plots and the optional extra files, and
    print the summary."""
    from robust_eval.data_config import describe
    from robust_eval.report import build_result, print_summary, write_report, write_result

    out: Path = opts["out"]
    result = build_result(command, ctx.metadata, _protocol(ctx, opts, suites), results, skipped)
    json_path = write_result(out / f"{command}.json", result)
    md_path, _ = write_report(result, out, command)
    save_baseline_path: Path | None = opts.get("save_baseline")
    if save_baseline_path is not None:
        _save_baseline(save_baseline_path, result)
    leaderboard_path: Path | None = opts.get("robustbench_json")
    if leaderboard_path is not None:
        _write_leaderboard(leaderboard_path, result)
    _write_openood_tables(out, result)
    if opts.get("json"):
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        print_summary(err_console, result)
    else:
        print_summary(Console(), result)
    err_console.print(describe(ctx.metadata["data_config"]), highlight=False, soft_wrap=True, markup=False)
    err_console.print(f"wrote {json_path} and {md_path}", highlight=False, soft_wrap=True)


def _write_openood_tables(out: Path, result: dict[str, Any]) -> None:
    """``<out>/ood-openood-<score>.csv`` per detector when the OOD suite ran more than msp."""
    from robust_eval.cache import atomic_write_text
    from robust_eval.ood_detectors import openood_csv

    block = result.get("suites", {}).get("ood", {}).get("detectors")
    for score in block["per_score"] if block else ():
        atomic_write_text(out / f"ood-openood-{score}.csv", openood_csv(block, score))


def _check_save_baseline(path: Path) -> None:
    """Refuse, before the run, a --save-baseline target that could not be written after it."""
    from robust_eval.baselines import check_baseline_target

    try:
        check_baseline_target(path)
    except OSError as exc:
        raise UsageProblem(f"--save-baseline: {exc}") from None


def _save_baseline(path: Path, result: dict[str, Any]) -> None:
    """Write the run's -C / -P numbers as a baseline file (robust_eval.baselines.Baseline.from_result)."""
    from robust_eval.baselines import Baseline, BaselineError, save_baseline
    from robust_eval.constants import split_difficulty

    left_out: list[str] = []
    try:
        baseline = Baseline.from_result(result, left_out=left_out)
    except BaselineError as exc:
        what = "baseline" if result["command"] == "baseline" else "--save-baseline"
        raise UsageProblem(f"{what}: {exc}") from None
    save_baseline(path, baseline)
    levels = sum(split_difficulty(p)[1] > 1 for p in baseline.flip_probability)
    err_console.print(
        f"wrote baseline {path} ({baseline.dataset}): {len(baseline.corruption_errors)} corruptions x 5 "
        f"severities, {len(baseline.flip_probability)} perturbation entries ({levels} at difficulty 2-3), "
        f"clean error {'yes' if baseline.clean_error is not None else 'no'}",
        highlight=False,
        soft_wrap=True,
    )
    if left_out:
        err_console.print(
            f"[yellow]left out of the baseline[/yellow] (0: nothing can be divided by it): {', '.join(left_out)}",
            highlight=False,
            soft_wrap=True,
        )


def _write_leaderboard(path: Path, result: dict[str, Any]) -> None:
    from robust_eval.cache import atomic_write_text
    from robust_eval.zoo import ZooError, leaderboard_entry

    try:
        entry = leaderboard_entry(result)
    except ZooError as exc:
        raise UsageProblem(str(exc)) from None
    atomic_write_text(path, json.dumps(entry, indent=2) + "\n")
    err_console.print(f"wrote RobustBench leaderboard entry {path}", highlight=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------------
# options: one Annotated alias per option (flag + help), one table row (default + valid range)
# ------------------------------------------------------------------------------------------------

Checkpoint = Annotated[
    Path,
    typer.Argument(
        help="Checkpoint file (.pth/.pt; loaded with torch.load(weights_only=True)) or robustbench:NAME."
    ),
]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Data root (default: $ROBUST_EVAL_DATA, else ./data).")
]
ModelName = Annotated[
    str | None, typer.Option("--model", help="timm model name, for checkpoints without metadata.")
]
NumClasses = Annotated[
    int | None, typer.Option("--num-classes", help="Output classes, for checkpoints without metadata.")
]
Dataset = Annotated[
    str | None,
    typer.Option(
        "--dataset", help="cifar10 | cifar100 | imagenet | imagefolder, when the checkpoint does not say."
    ),
]
Split = Annotated[
    str | None,
    typer.Option(
        "--split", help="Split folder of an ImageFolder root (default: first of test, val, validation)."
    ),
]
OutDir = Annotated[
    Path, typer.Option("--out", help="Folder for <command>.json, <command>.md, plots/ and the cell cache.")
]
JsonFlag = Annotated[
    bool, typer.Option("--json", help="Print the result JSON on stdout (the table goes to stderr).")
]
Subset = Annotated[
    int | None,
    typer.Option(
        "--subset",
        help="Evaluate a seeded, class-stratified sample of N examples of every set (smoke runs; --seed picks it).",
    ),
]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")]
Workers = Annotated[
    int, typer.Option("--workers", help="Processes decoding image files (0: in the main process).")
]
Device = Annotated[
    str,
    typer.Option("--device", help="torch device: auto (cuda if available, else cpu), cpu, cuda, cuda:1, ..."),
]
ShowProgress = Annotated[
    bool,
    typer.Option("--progress/--no-progress", help="Show progress bars (overall and per cell) on a terminal."),
]
Ema = Annotated[bool, typer.Option("--ema", help="Use the checkpoint's EMA weights (state_dict_ema).")]
Fresh = Annotated[
    bool, typer.Option("--fresh", help="Recompute every cell instead of resuming from the cache.")
]
Seed = Annotated[
    int,
    typer.Option("--seed", help="Seed of PGD starts, synthetic OOD sets, OOD subsampling and --generate."),
]
BaselineName = Annotated[
    str | None,
    typer.Option(
        "--baseline", help="Baseline for normalized mCE / mFR: 'alexnet' or a JSON file from --save-baseline."
    ),
]
SaveBaseline = Annotated[
    Path | None,
    typer.Option(
        "--save-baseline", help="Write this run's -C/-P numbers as a baseline JSON file (never overwrites)."
    ),
]
Mean = Annotated[
    str | None,
    typer.Option("--mean", help="Per-channel mean, comma-separated, 0..1 scale (overrides the checkpoint)."),
]
Std = Annotated[
    str | None,
    typer.Option("--std", help="Per-channel std, comma-separated, 0..1 scale (overrides the checkpoint)."),
]
InputSize = Annotated[
    str | None,
    typer.Option("--input-size", help="Model input side in px (32) or C,H,W (overrides the checkpoint)."),
]
CropPct = Annotated[
    float | None,
    typer.Option("--crop-pct", help="Center-crop fraction when resizing, (0, 1] (overrides the checkpoint)."),
]
ModelDir = Annotated[
    Path | None,
    typer.Option(
        "--model-dir",
        help="RobustBench model folder DIR/<dataset>/<threat_model>/<NAME>.pt, for CHECKPOINT = robustbench:NAME.",
    ),
]
ThreatModel = Annotated[
    str,
    typer.Option(
        "--threat-model", help="RobustBench threat-model folder (only corruptions entries are supported)."
    ),
]
RobustbenchJson = Annotated[
    Path | None,
    typer.Option(
        "--robustbench-json",
        help="Also write RobustBench's leaderboard entry (clean_acc, corruptions_acc[, corruptions_mce]) to FILE.",
    ),
]
Generate = Annotated[
    bool,
    typer.Option(
        "--generate",
        help="No -C arrays on disk: corrupt the clean CIFAR test set on the fly (flagged 'regenerated').",
    ),
]
ImagenetCProtocol = Annotated[
    str,
    typer.Option(
        "--imagenet-c-protocol",
        help="ImageNet-C preprocessing: resize_crop (AugMix/PixMix/IPMix: 256-resize + 224-crop) or center_crop "
        "(official script).",
    ),
]
Perturbations = Annotated[
    str | None,
    typer.Option(
        "--perturbations",
        help="Comma-separated -P list averaged into mFR (default: the authors' list per data set; "
        "CIFAR-P: spatter instead of snow, ImageNet-P: the 10 test perturbations).",
    ),
]
Eps = Annotated[float, typer.Option("--eps", help="PGD L-inf budget in 1/255 units.")]
Alpha = Annotated[float, typer.Option("--alpha", help="PGD step size in 1/255 units.")]
Steps = Annotated[int, typer.Option("--steps", help="PGD iterations.")]
RandomStart = Annotated[
    bool,
    typer.Option(
        "--random-start/--no-random-start", help="Start PGD at a uniform random point in the eps ball."
    ),
]


@dataclass(frozen=True)
class Option:
    """One option of the evaluation commands: its alias (flag, help), default and valid range."""

    name: str  # the parameter name (the flag with '-' for '_')
    alias: Any
    default: Any = None
    at_least: int | None = None  # inclusive lower bound of an integer option
    positive_finite: str | None = None  # a float option that must be finite and > 0: its unit

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """Raise :class:`UsageProblem` (one line) when ``value`` is out of range (None passes)."""
        if value is None:
            return
        if self.at_least is not None and value < self.at_least:
            raise UsageProblem(f"{self.flag} must be >= {self.at_least}, got {value}")
        if self.positive_finite is not None and not (math.isfinite(value) and value > 0):
            raise UsageProblem(
                f"{self.flag} must be a finite number > 0 ({self.positive_finite}), got {value}"
            )


#: Options of every evaluation command (after the checkpoint argument), in --help order.
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("data_dir", DataDir),
    Option("model", ModelName),
    Option("num_classes", NumClasses, at_least=1),
    Option("dataset", Dataset),
    Option("split", Split),
    Option("out", OutDir, DEFAULT_OUT),
    Option("json", JsonFlag, False),
    Option("subset", Subset, at_least=1),
    Option("batch_size", BatchSize, DEFAULT_BATCH_SIZE, at_least=1),
    Option("workers", Workers, DEFAULT_WORKERS, at_least=0),
    Option("device", Device, DEFAULT_DEVICE),
    Option("ema", Ema, False),
    Option("fresh", Fresh, False),
    Option("progress", ShowProgress, True),
    Option("seed", Seed, DEFAULT_SEED, at_least=0),
    Option("baseline", BaselineName),
    # input-contract overrides and RobustBench's zoo
    Option("mean", Mean),
    Option("std", Std),
    Option("input_size", InputSize),
    Option("crop_pct", CropPct),
    Option("model_dir", ModelDir),
    Option("threat_model", ThreatModel, DEFAULT_THREAT_MODEL),
)
CORRUPTION_OPTIONS: tuple[Option, ...] = (
    Option("robustbench_json", RobustbenchJson),
    Option("generate", Generate, False),
    Option("imagenet_c_protocol", ImagenetCProtocol, IMAGENET_C_PROTOCOLS[0]),
)
PERTURBATION_OPTIONS: tuple[Option, ...] = (Option("perturbations", Perturbations),)
#: Only the commands that measure -C / -P numbers can write them as a baseline.
SAVE_BASELINE_OPTIONS: tuple[Option, ...] = (Option("save_baseline", SaveBaseline),)
PGD_OPTIONS: tuple[Option, ...] = (
    Option("eps", Eps, PGD_EPS_255, positive_finite="in 1/255 units"),
    Option("alpha", Alpha, PGD_ALPHA_255, positive_finite="in 1/255 units"),
    Option("steps", Steps, PGD_STEPS, at_least=1),
    Option("random_start", RandomStart, True),
)
OodScores = Annotated[
    str | None,
    typer.Option(
        "--ood-scores",
        help="Comma-separated OOD detectors: msp (default, the papers' score), maxlogit, energy, odin, "
        "mahalanobis, knn, vim (OpenOOD v1.5 definitions; the last three fit on the training split's "
        "penultimate features). More than msp adds OpenOOD's table and ood-openood-<score>.csv.",
    ),
]
OOD_OPTIONS: tuple[Option, ...] = (Option("ood_scores", OodScores),)
CalibrationExtras = Annotated[
    bool,
    typer.Option(
        "--calibration-extras",
        help="Calibration suite: also NLL, Brier, AURC, and every calibration metric after temperature "
        "scaling fitted on the held-out fifth (index % 5 == 0) of the clean test split.",
    ),
]
CALIBRATION_OPTIONS: tuple[Option, ...] = (Option("calibration_extras", CalibrationExtras, False),)
ALL_OPTIONS: tuple[Option, ...] = (
    *COMMON_OPTIONS,
    *OOD_OPTIONS,
    *CALIBRATION_OPTIONS,
    *CORRUPTION_OPTIONS,
    *PERTURBATION_OPTIONS,
    *SAVE_BASELINE_OPTIONS,
    *PGD_OPTIONS,
)
OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in ALL_OPTIONS}


def _check_ranges(opts: dict[str, Any]) -> None:
    """Every option's range, in one place (one line and exit 2 for the first value out of range)."""
    for option in ALL_OPTIONS:
        if option.name in opts:
            option.check(opts[option.name])


def _parameters(options: Sequence[Option]) -> list[inspect.Parameter]:
    """Keyword-only signature parameters (what Typer reads) of ``options``."""
    kw = inspect.Parameter.KEYWORD_ONLY
    return [inspect.Parameter(o.name, kw, default=o.default, annotation=o.alias) for o in options]


def _register(command: str, suites: Sequence[str], extra: Sequence[Option], doc: str) -> None:
    """Add the evaluation command ``command`` running ``suites``: Typer reads the signature built from
    the checkpoint argument, :data:`COMMON_OPTIONS` and ``extra``."""

    def run(**kwargs: Any) -> None:
        _evaluate(command, suites, kwargs)

    params = [inspect.Parameter("checkpoint", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Checkpoint)]
    params += _parameters((*COMMON_OPTIONS, *extra))
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__doc__ = doc
    run.__name__ = command
    app.command(command)(run)


_register(
    "all",
    ("clean", "corruptions", "perturbations", "adversarial", "calibration", "ood", "imagenet_ar"),
    [
        *CORRUPTION_OPTIONS,
        *PERTURBATION_OPTIONS,
        *SAVE_BASELINE_OPTIONS,
        *PGD_OPTIONS,
        *OOD_OPTIONS,
        *CALIBRATION_OPTIONS,
    ],
    "Every suite whose data is present; one line per skipped suite says why and what to put where.\n\n"
    + METRICS_HELP,
)
_register("clean", ("clean",), [], "Top-1 / top-5 error on the clean test split.")
_register(
    "corruptions",
    ("corruptions",),
    [*CORRUPTION_OPTIONS, *SAVE_BASELINE_OPTIONS],
    "-C and -C-bar: error per (corruption, severity), mCE unnormalized (plain mean over the 15 x 5 "
    "benchmark cells) and normalized (CE_c = 100 * sum_s E / sum_s E_base; AlexNet for ImageNet or "
    "--baseline), relative mCE. Extras (speckle_noise, gaussian_blur, spatter, saturate) reported separately.",
)
_register(
    "perturbations",
    ("perturbations",),
    [*PERTURBATION_OPTIONS, *SAVE_BASELINE_OPTIONS],
    "-P: flip probability (noise perturbations vs frame 0, others consecutive frames) and top-5 "
    "distance per perturbation; mFR / mT5D plain means, normalized with --baseline.",
)
_register(
    "adversarial",
    ("adversarial",),
    PGD_OPTIONS,
    "Error under L-inf PGD (torchattacks) on the clean test set in [0, 1] space; defaults are the "
    f"PixMix/IPMix protocol: eps {PGD_EPS_255:g}/255, step {PGD_ALPHA_255:g}/255, {PGD_STEPS} steps, random start.",
)
_register(
    "calibration",
    ("calibration",),
    [*CALIBRATION_OPTIONS],
    f"RMS calibration error (equal-count bins of {RMS_BIN_SIZE}, corrected: all bins; the reference-compatible "
    f"variant skips the last bin) and ECE ({ECE_BINS} equal-width bins), from the clean pass.",
)
_register(
    "ood",
    ("ood",),
    [*OOD_OPTIONS],
    "Anomaly detection with score = -max softmax (OOD positive): AUROC, AUPR, FPR95 per OOD set "
    "(synthetic Gaussian, Rademacher, Blobs; DATA/ood/<name>.npy or DATA/ood/<name>/ image trees; "
    "ImageNet-O for ImageNet checkpoints).",
)


@app.command("report")
def report_cmd(
    result: Annotated[Path, typer.Argument(help="A result JSON written by a robust-eval run.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the Markdown and plots (default: next to the JSON)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace <stem>.md even when it is not a report robust-eval wrote."),
    ] = False,
) -> None:
    """Re-render the Markdown report and the PNG plots from a saved result JSON. A <stem>.md that is
    not a robust-eval report (a file of yours) is never replaced unless --force."""
    from robust_eval.report import ResultError, load_result, print_summary, write_report

    try:
        loaded = load_result(result)
        folder = out if out is not None else result.parent
        md, plots = write_report(loaded, folder, result.stem, force=force)
    except (ResultError, OSError, KeyError, TypeError) as exc:
        _fail(
            f"{exc}" if not isinstance(exc, (KeyError, TypeError)) else f"'{result}' is incomplete: {exc!r}"
        )
        return
    print_summary(Console(), loaded)
    err_console.print(f"wrote {md} and {len(plots)} plot(s)", highlight=False, soft_wrap=True)


@app.command("compare")
def compare_cmd(
    results: Annotated[
        list[Path],
        typer.Argument(help="Result JSON files (robust-eval all/...); the first is the reference row."),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder for compare.md, compare.json and plots/compare-*.png.")
    ] = Path("robust-eval-compare"),
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Comma-separated row names (default: the folder of each result file)."),
    ] = None,
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-mismatch",
            help="Compare results measured under different protocols (the table is marked).",
        ),
    ] = False,
) -> None:
    """Compare models side by side: every headline metric with its difference to the first (reference)
    row, per-corruption and per-OOD-set tables, and plots. Refuses results measured under different
    protocols (data, corruption/perturbation lists, PGD settings, normalization, regenerated -C)
    unless --allow-mismatch."""
    from robust_eval.compare import ComparisonError, headline_rows, write_comparison
    from robust_eval.report import ResultError

    names = [n.strip() for n in labels.split(",")] if labels else None
    try:
        cmp, written = write_comparison(results, out, labels=names, allow_mismatch=allow_mismatch)
    except (ComparisonError, ResultError, OSError) as exc:
        _fail(str(exc))
        return
    _print_comparison(cmp, headline_rows(cmp))
    err_console.print(
        f"wrote {written['md']}, {written['json']} and {len(written) - 2} plot(s)", highlight=False
    )


def _print_comparison(cmp: dict[str, Any], table_rows: tuple[list[str], list[list[str]]]) -> None:
    """The headline table on screen, transposed to fit a terminal: one row per metric, one column
    per model (the same cells as compare.md)."""
    from rich.markup import escape
    from rich.table import Table

    header, rows = table_rows
    title = f"robust-eval compare: reference {escape(cmp['reference'])}, differences to it in parentheses"
    if cmp["protocol_mismatches"]:
        title = "[bold red]PROTOCOL MISMATCH (--allow-mismatch)[/] " + title
    table = Table(title=title)
    table.add_column("metric")
    for row in rows:
        table.add_column(escape(row[0]), justify="right")
    for j, metric in enumerate(header[1:], start=1):
        table.add_row(escape(metric), *[escape(row[j]) for row in rows])
    console = Console(width=max(100, 22 + 18 * len(rows)))
    console.print(table)
    for line in cmp["protocol_mismatches"]:
        console.print(f"[red]mismatch:[/] {escape(line)}", highlight=False)


@data_app.command("check")
def data_check(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data root (default: $ROBUST_EVAL_DATA, else ./data).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Validate every layout robust-eval reads (shapes, dtypes, label files, file counts) and print
    what is present, missing or malformed. Exits 1 when something is malformed."""
    from dataclasses import asdict

    from rich.table import Table

    from robust_eval.data import check_layouts

    root = _resolve_data_dir(data_dir)
    if data_dir is not None and not root.exists():
        _fail(f"--data-dir '{root}' does not exist; pass the folder that holds your data sets")
    if root.exists() and not root.is_dir():
        _fail(f"--data-dir '{root}' is a file, expected a folder")
    entries = check_layouts(root)
    if json_out:
        sys.stdout.write(json.dumps([asdict(e) for e in entries], indent=2) + "\n")
    else:
        table = Table(title=f"data root: {root}")
        for col in ("data set", "status", "path", "detail"):
            table.add_column(col, overflow="fold")
        colors = {"present": "green", "partial": "yellow", "missing": "dim", "malformed": "red"}
        for e in entries:
            table.add_row(e.name, f"[{colors[e.status]}]{e.status}[/]", e.path, e.detail)
        Console(width=200).print(table)
    if any(e.status == "malformed" for e in entries):
        raise typer.Exit(1)


@data_app.command("digits")
def data_digits(
    data_dir: Annotated[Path, typer.Argument(help="Data root to write into (e.g. ./data).")],
    ood: Annotated[
        bool, typer.Option("--ood/--no-ood", help="Also write ood/photos.npy (scikit-image photo crops).")
    ] = True,
) -> None:
    """Write scikit-learn's handwritten digits as a CIFAR-10 python folder (32 x 32 RGB, fixed
    stratified 80/20 train/test split) under DATA_DIR/cifar-10-batches-py, and a real OOD set of
    photo crops at DATA_DIR/ood/photos.npy. Rerunning keeps identical files; never overwrites others."""
    from robust_eval.data import DataLayoutError
    from robust_eval.digits import write_digits

    try:
        status = write_digits(data_dir, ood=ood)
    except (DataLayoutError, OSError) as exc:
        _fail(str(exc))
        return
    for path, what in status.items():
        err_console.print(f"{what} {path}", highlight=False, soft_wrap=True)


generate_cli.register(app)  # make-c, make-p: -C / -P regeneration (robust_eval.generate)
baseline_cmd.register(
    app, _evaluate, _parameters((*COMMON_OPTIONS, *CORRUPTION_OPTIONS)), _precheck
)  # baseline


def main() -> None:
    """Console-script entry point: one-line errors, exit status 2 for bad input (robust_mix.cli)."""
    run(app, "robust-eval")


if __name__ == "__main__":
    main()
