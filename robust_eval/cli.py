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
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

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
    "- adversarial: error under L-inf PGD (torchattacks; eps 2/255, step 0.5/255, 20 steps, random start by "
    "default) on the clean test set in [0, 1] space.\n\n"
    "- calibration: RMS calibration error (equal-count bins of 100 by confidence, all bins; the "
    "reference-compatible variant that skips the last bin is reported separately) and ECE (15 bins).\n\n"
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


@contextlib.contextmanager
def _progress() -> Iterator[Any]:
    """A rich progress display; yields ``track(description, total)`` for the suites."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as progress:

        @contextlib.contextmanager
        def track(description: str, total: int) -> Iterator[Any]:
            task = progress.add_task(description, total=total)

            class _Bar:
                def advance(self, n: int = 1) -> None:
                    progress.advance(task, n)

            try:
                yield _Bar()
            finally:
                progress.remove_task(task)

        yield track


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
        "device": str(opts.get("device", ctx.device)),  # as requested: the same under torchrun
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
        "calibration": {"rms_bin_size": 100, "ece_bins": 15},
        "ood": {"score": "-max softmax", "positive": "ood", "n_per_set": "in-distribution size // 5"},
        "constants": {
            "alexnet_imagenet_c_errors": {k: list(v) for k, v in ALEXNET_IMAGENET_C_ERRORS.items()},
            "alexnet_clean_error": ALEXNET_CLEAN_ERROR,
        },
        "baseline": ctx.baseline.to_dict() if ctx.baseline is not None else None,
    }


def _evaluate(command: str, suites: Sequence[str], opts: dict[str, Any]) -> None:
    from robust_eval.sharding import evaluation_group, quiet_unless_main

    try:
        with evaluation_group(opts.get("device", "cpu")) as shard, quiet_unless_main(shard, err_console):
            _evaluate_inner(command, suites, opts, shard)
    except typer.Exit:
        raise
    except UsageProblem as exc:
        _fail(str(exc))
    except (ValueError, OSError) as exc:  # CheckpointError, DataLayoutError, BaselineError, ResultError
        _fail(f"{exc}")


def _evaluate_inner(command: str, suites: Sequence[str], opts: dict[str, Any], shard: Any) -> None:
    import torch

    from robust_eval import suites as S
    from robust_eval.cache import CellCache
    from robust_eval.data import DataLayoutError
    from robust_eval.models import load_checkpoint
    from robust_eval.report import build_result, print_summary, write_report, write_result

    ckpt: Path = opts["checkpoint"]
    for name in ("batch_size", "subset", "steps"):
        value = opts.get(name)
        if value is not None and value < 1:
            raise UsageProblem(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("workers", "seed"):
        value = opts.get(name)
        if value is not None and value < 0:
            raise UsageProblem(f"--{name} must be >= 0, got {value}")
    for name in ("eps", "alpha"):  # PGD budget and step, in 1/255 units
        value = opts.get(name)
        if value is not None and not (math.isfinite(value) and value > 0):
            raise UsageProblem(f"--{name} must be a finite number > 0 (in 1/255 units), got {value}")
    if opts.get("device") == "meta":
        raise UsageProblem("--device meta holds no data and cannot evaluate; use cpu, cuda or cuda:N")
    save_baseline_path: Path | None = opts.get("save_baseline")
    if save_baseline_path is not None:
        _check_save_baseline(save_baseline_path)
    try:
        device = torch.device(shard.device(opts["device"]))  # cuda:<LOCAL_RANK> under torchrun
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageProblem(f"--device {opts['device']}: CUDA is not available here (use --device cpu)")
    except RuntimeError as exc:
        raise UsageProblem(f"--device {opts['device']!r} is not a torch device: {exc}") from None
    baseline = None
    if opts.get("baseline"):
        from robust_eval.baselines import get_baseline

        baseline = get_baseline(opts["baseline"])
    perturbations = None  # the data set's default list (suites.default_perturbations)
    if opts.get("perturbations"):
        from robust_eval.constants import TEST_PERTURBATIONS as TP
        from robust_eval.constants import VALIDATION_PERTURBATIONS as VP

        perturbations = tuple(p.strip() for p in opts["perturbations"].split(",") if p.strip())
        unknown = [p for p in perturbations if p not in (*TP, *VP)]
        if unknown:
            raise UsageProblem(f"--perturbations: unknown {unknown}; known: {', '.join((*TP, *VP))}")
    protocol = opts.get("imagenet_c_protocol", "resize_crop")
    if protocol not in ("resize_crop", "center_crop"):
        raise UsageProblem(f"--imagenet-c-protocol must be resize_crop or center_crop, got {protocol!r}")

    from robust_eval.data_config import describe, parse_overrides

    leaderboard_path: Path | None = opts.get("robustbench_json")
    if leaderboard_path is not None and leaderboard_path.exists():
        raise UsageProblem(
            f"--robustbench-json: '{leaderboard_path}' already exists; remove it or choose another path"
        )
    overrides = parse_overrides(
        opts.get("mean"), opts.get("std"), opts.get("input_size"), opts.get("crop_pct")
    )
    model, info = load_checkpoint(
        ckpt,
        model=opts.get("model"),
        num_classes=opts.get("num_classes"),
        dataset=opts.get("dataset"),
        ema=opts.get("ema", False),
        device=device,
        data_overrides=overrides,
        model_dir=opts.get("model_dir"),
        threat_model=opts.get("threat_model") or "corruptions",
    )
    metadata = info.to_dict()
    if baseline is not None:
        baseline.check_dataset(info.dataset)
    out: Path = opts["out"]
    cache = CellCache(out / ".cache", metadata["sha256"], fresh=opts.get("fresh", False), shard=shard)
    pgd = S.PGDSettings(
        eps=opts.get("eps", 2.0) / 255,
        alpha=opts.get("alpha", 0.5) / 255,
        steps=opts.get("steps", 20),
        random_start=opts.get("random_start", True),
    )
    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    data_dir = _resolve_data_dir(opts.get("data_dir"))
    if opts.get("data_dir") is None and not os.environ.get("ROBUST_EVAL_DATA"):
        from robust_eval.data import fallback_data_dir

        data_dir, note = fallback_data_dir(data_dir, metadata)
        if note is not None:
            err_console.print(note, highlight=False, soft_wrap=True, markup=False)
    with _progress() if shard.is_main else contextlib.nullcontext(S.Context.track) as track:
        ctx = S.Context(
            model=model,
            metadata=metadata,
            data_dir=data_dir,
            cache=cache,
            device=device,
            batch_size=opts.get("batch_size", 128),
            workers=opts.get("workers", 0),
            subset=opts.get("subset"),
            split=opts.get("split"),
            seed=opts.get("seed", 0),
            pgd=pgd,
            perturbations=perturbations,
            generate=opts.get("generate", False),
            imagenet_c_protocol=protocol,
            baseline=baseline,
            track=track,
            shard=shard,
        )
        for suite in suites:
            if command == "all" and suite == "imagenet_ar" and ctx.dataset != "imagenet":
                continue  # ImageNet-A/-R only exist for ImageNet classifiers
            try:
                results[suite] = S.SUITES[suite](ctx)
            except S.SuiteSkipped as exc:
                if command not in _SKIPPING:
                    raise UsageProblem(f"{suite}: {exc}") from None
                skipped[suite] = str(exc)
                err_console.print(f"[yellow]skipped {suite}:[/yellow] {exc}", highlight=False, soft_wrap=True)
            except DataLayoutError as exc:
                if command not in _SKIPPING:
                    raise
                skipped[suite] = f"malformed data: {exc}"
                err_console.print(
                    f"[yellow]skipped {suite}:[/yellow] malformed data: {exc}",
                    highlight=False,
                    soft_wrap=True,
                )
    if not results:
        raise UsageProblem(f"no suite could run ({len(skipped)} skipped, reasons above); nothing written")
    if not shard.is_main:
        return  # under torchrun rank 0 alone writes and prints the results

    result = build_result(command, metadata, _protocol(ctx, opts, suites), results, skipped)
    json_path = write_result(out / f"{command}.json", result)
    md_path, _ = write_report(result, out, command)
    if save_baseline_path is not None:
        _save_baseline(save_baseline_path, result)
    if leaderboard_path is not None:
        _write_leaderboard(leaderboard_path, result)
    if opts.get("json"):
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        print_summary(err_console, result)
    else:
        print_summary(Console(), result)
    err_console.print(describe(metadata["data_config"]), highlight=False, soft_wrap=True, markup=False)
    err_console.print(f"wrote {json_path} and {md_path}", highlight=False, soft_wrap=True)


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


def _opt(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


#: Input-contract overrides and RobustBench's zoo: every evaluation command gets these.
INPUT_PARAMS = [
    _opt(
        "mean",
        Annotated[
            str | None,
            typer.Option(
                "--mean", help="Per-channel mean, comma-separated, 0..1 scale (overrides the checkpoint)."
            ),
        ],
    ),
    _opt(
        "std",
        Annotated[
            str | None,
            typer.Option(
                "--std", help="Per-channel std, comma-separated, 0..1 scale (overrides the checkpoint)."
            ),
        ],
    ),
    _opt(
        "input_size",
        Annotated[
            str | None,
            typer.Option(
                "--input-size", help="Model input side in px (32) or C,H,W (overrides the checkpoint)."
            ),
        ],
    ),
    _opt(
        "crop_pct",
        Annotated[
            float | None,
            typer.Option(
                "--crop-pct", help="Center-crop fraction when resizing, (0, 1] (overrides the checkpoint)."
            ),
        ],
    ),
    _opt(
        "model_dir",
        Annotated[
            Path | None,
            typer.Option(
                "--model-dir",
                help="RobustBench model folder DIR/<dataset>/<threat_model>/<NAME>.pt, for CHECKPOINT = robustbench:NAME.",
            ),
        ],
    ),
    _opt(
        "threat_model",
        Annotated[
            str,
            typer.Option(
                "--threat-model",
                help="RobustBench threat-model folder (only corruptions entries are supported).",
            ),
        ],
        "corruptions",
    ),
]

# Shared options: every evaluation command gets these (Typer reads the signature we build).
_P = inspect.Parameter
_KW = _P.KEYWORD_ONLY

COMMON_PARAMS = [
    _P(
        "checkpoint",
        _P.POSITIONAL_OR_KEYWORD,
        annotation=Annotated[
            Path,
            typer.Argument(
                help="Checkpoint file (.pth/.pt; loaded with torch.load(weights_only=True)) or robustbench:NAME."
            ),
        ],
    ),
    _P(
        "data_dir",
        _KW,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option("--data-dir", help="Data root (default: $ROBUST_EVAL_DATA, else ./data)."),
        ],
    ),
    _P(
        "model",
        _KW,
        default=None,
        annotation=Annotated[
            str | None, typer.Option("--model", help="timm model name, for checkpoints without metadata.")
        ],
    ),
    _P(
        "num_classes",
        _KW,
        default=None,
        annotation=Annotated[
            int | None,
            typer.Option("--num-classes", help="Output classes, for checkpoints without metadata."),
        ],
    ),
    _P(
        "dataset",
        _KW,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--dataset",
                help="cifar10 | cifar100 | imagenet | imagefolder, when the checkpoint does not say.",
            ),
        ],
    ),
    _P(
        "split",
        _KW,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--split",
                help="Split folder of an ImageFolder root (default: first of test, val, validation).",
            ),
        ],
    ),
    _P(
        "out",
        _KW,
        default=Path("robust-eval-out"),
        annotation=Annotated[
            Path,
            typer.Option("--out", help="Folder for <command>.json, <command>.md, plots/ and the cell cache."),
        ],
    ),
    _P(
        "json",
        _KW,
        default=False,
        annotation=Annotated[
            bool, typer.Option("--json", help="Print the result JSON on stdout (the table goes to stderr).")
        ],
    ),
    _P(
        "subset",
        _KW,
        default=None,
        annotation=Annotated[
            int | None,
            typer.Option(
                "--subset",
                help="Evaluate a seeded, class-stratified sample of N examples of every set (smoke runs; --seed picks it).",
            ),
        ],
    ),
    _P(
        "batch_size",
        _KW,
        default=128,
        annotation=Annotated[int, typer.Option("--batch-size", help="Images per forward pass.")],
    ),
    _P(
        "workers",
        _KW,
        default=0,
        annotation=Annotated[
            int, typer.Option("--workers", help="Processes decoding image files (0: in the main process).")
        ],
    ),
    _P(
        "device",
        _KW,
        default="cpu",
        annotation=Annotated[str, typer.Option("--device", help="torch device: cpu, cuda, cuda:1, ...")],
    ),
    _P(
        "ema",
        _KW,
        default=False,
        annotation=Annotated[
            bool, typer.Option("--ema", help="Use the checkpoint's EMA weights (state_dict_ema).")
        ],
    ),
    _P(
        "fresh",
        _KW,
        default=False,
        annotation=Annotated[
            bool, typer.Option("--fresh", help="Recompute every cell instead of resuming from the cache.")
        ],
    ),
    _P(
        "seed",
        _KW,
        default=0,
        annotation=Annotated[
            int,
            typer.Option(
                "--seed", help="Seed of PGD starts, synthetic OOD sets, OOD subsampling and --generate."
            ),
        ],
    ),
    _P(
        "baseline",
        _KW,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--baseline",
                help="Baseline for normalized mCE / mFR: 'alexnet' or a JSON file from --save-baseline.",
            ),
        ],
    ),
]
#: Only the commands that measure -C / -P numbers can write them as a baseline.
SAVE_BASELINE_PARAMS = [
    _opt(
        "save_baseline",
        Annotated[
            Path | None,
            typer.Option(
                "--save-baseline",
                help="Write this run's -C/-P numbers as a baseline JSON file (never overwrites).",
            ),
        ],
    ),
]
CORRUPTION_PARAMS = [
    _opt(
        "robustbench_json",
        Annotated[
            Path | None,
            typer.Option(
                "--robustbench-json",
                help="Also write RobustBench's leaderboard entry (clean_acc, corruptions_acc[, corruptions_mce]) to FILE.",
            ),
        ],
    ),
    _P(
        "generate",
        _KW,
        default=False,
        annotation=Annotated[
            bool,
            typer.Option(
                "--generate",
                help="No -C arrays on disk: corrupt the clean CIFAR test set on the fly (flagged 'regenerated').",
            ),
        ],
    ),
    _P(
        "imagenet_c_protocol",
        _KW,
        default="resize_crop",
        annotation=Annotated[
            str,
            typer.Option(
                "--imagenet-c-protocol",
                help="ImageNet-C preprocessing: resize_crop (AugMix/PixMix/IPMix: 256-resize + 224-crop) or center_crop (official script).",
            ),
        ],
    ),
]
PERTURBATION_PARAMS = [
    _P(
        "perturbations",
        _KW,
        default=None,
        annotation=Annotated[
            str | None,
            typer.Option(
                "--perturbations",
                help="Comma-separated -P list averaged into mFR (default: the authors' list per data set; "
                "CIFAR-P: spatter instead of snow, ImageNet-P: the 10 test perturbations).",
            ),
        ],
    ),
]
PGD_PARAMS = [
    _P(
        "eps",
        _KW,
        default=2.0,
        annotation=Annotated[float, typer.Option("--eps", help="PGD L-inf budget in 1/255 units.")],
    ),
    _P(
        "alpha",
        _KW,
        default=0.5,
        annotation=Annotated[float, typer.Option("--alpha", help="PGD step size in 1/255 units.")],
    ),
    _P("steps", _KW, default=20, annotation=Annotated[int, typer.Option("--steps", help="PGD iterations.")]),
    _P(
        "random_start",
        _KW,
        default=True,
        annotation=Annotated[
            bool,
            typer.Option(
                "--random-start/--no-random-start",
                help="Start PGD at a uniform random point in the eps ball.",
            ),
        ],
    ),
]


def _register(command: str, suites: Sequence[str], extra: Sequence[inspect.Parameter], doc: str) -> None:
    def run(**kwargs: Any) -> None:
        _evaluate(command, suites, kwargs)

    run.__signature__ = inspect.Signature([*COMMON_PARAMS, *INPUT_PARAMS, *extra])  # type: ignore[attr-defined]
    run.__doc__ = doc
    run.__name__ = command
    app.command(command)(run)


_register(
    "all",
    ("clean", "corruptions", "perturbations", "adversarial", "calibration", "ood", "imagenet_ar"),
    [*CORRUPTION_PARAMS, *PERTURBATION_PARAMS, *PGD_PARAMS, *SAVE_BASELINE_PARAMS],
    "Every suite whose data is present; one line per skipped suite says why and what to put where.\n\n"
    + METRICS_HELP,
)
_register("clean", ("clean",), [], "Top-1 / top-5 error on the clean test split.")
_register(
    "corruptions",
    ("corruptions",),
    [*CORRUPTION_PARAMS, *SAVE_BASELINE_PARAMS],
    "-C and -C-bar: error per (corruption, severity), mCE unnormalized (plain mean over the 15 x 5 "
    "benchmark cells) and normalized (CE_c = 100 * sum_s E / sum_s E_base; AlexNet for ImageNet or "
    "--baseline), relative mCE. Extras (speckle_noise, gaussian_blur, spatter, saturate) reported separately.",
)
_register(
    "perturbations",
    ("perturbations",),
    [*PERTURBATION_PARAMS, *SAVE_BASELINE_PARAMS],
    "-P: flip probability (noise perturbations vs frame 0, others consecutive frames) and top-5 "
    "distance per perturbation; mFR / mT5D plain means, normalized with --baseline.",
)
_register(
    "adversarial",
    ("adversarial",),
    PGD_PARAMS,
    "Error under L-inf PGD (torchattacks) on the clean test set in [0, 1] space; defaults are the "
    "PixMix/IPMix protocol: eps 2/255, step 0.5/255, 20 steps, random start.",
)
_register(
    "calibration",
    ("calibration",),
    [],
    "RMS calibration error (equal-count bins of 100, corrected: all bins; the reference-compatible "
    "variant skips the last bin) and ECE (15 equal-width bins), from the clean pass.",
)
_register(
    "ood",
    ("ood",),
    [],
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
) -> None:
    """Re-render the Markdown report and the PNG plots from a saved result JSON."""
    from robust_eval.report import ResultError, load_result, print_summary, write_report

    try:
        loaded = load_result(result)
        folder = out if out is not None else result.parent
        md, plots = write_report(loaded, folder, result.stem)
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
    app, _evaluate, [*COMMON_PARAMS, *INPUT_PARAMS, *CORRUPTION_PARAMS]
)  # robust-eval baseline


def main() -> None:
    """Console-script entry point: one-line errors, exit status 2 for bad input (robust_mix.cli)."""
    run(app, "robust-eval")


if __name__ == "__main__":
    main()
