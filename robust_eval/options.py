"""The option table of the evaluation commands (``robust-eval all``, the single-suite commands,
``baseline``): one :class:`robust_mix.cli.Option` per option with its flag, help, default and range.

Imports Typer and the constants only, so ``--help`` never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from robust_eval.constants import (
    AMP_MODES,
    ATTACKS,
    DECODERS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_DEVICE,
    DEFAULT_SEED,
    DEFAULT_THREAT_MODEL,
    DEFAULT_WORKERS,
    IMAGENET_C_PROTOCOLS,
    PGD_ALPHA_255,
    PGD_EPS_255,
    PGD_STEPS,
)
from robust_mix.cli import MAX_CLASSES, Option, Range

#: Where results, reports, plots and the cell cache go unless --out says otherwise.
DEFAULT_OUT = Path("robust-eval-out")


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
Amp = Annotated[
    str,
    typer.Option(
        "--amp",
        help="Mixed precision of the forward passes: off (float32), bf16 or fp16 (CUDA only; on the CPU use "
        "bf16). Recorded in the result; compare refuses it beside float32 rows unless --allow-mismatch.",
    ),
]
ChannelsLast = Annotated[
    bool,
    typer.Option("--channels-last", help="Model and inputs in channels-last (NHWC) memory format."),
]
Compile = Annotated[
    bool, typer.Option("--compile", help="torch.compile the model before the first batch (slow start).")
]
Decode = Annotated[
    str,
    typer.Option(
        "--decode",
        help="Image files decoded on the cpu (Pillow, the default), the gpu (batched nvJPEG: pixels differ "
        "from Pillow's by a few levels, see docs/scaling.md) or auto (gpu on a CUDA device, else cpu).",
    ),
]
PgdAmp = Annotated[
    bool,
    typer.Option(
        "--pgd-amp",
        help="Also run PGD under --amp. Off by default: low-precision input gradients round small "
        "components to zero or flip their sign, which weakens the attack and overstates robustness.",
    ),
]
RandomStart = Annotated[
    bool,
    typer.Option(
        "--random-start/--no-random-start", help="Start PGD at a uniform random point in the eps ball."
    ),
]


#: Options of every evaluation command (after the checkpoint argument), in --help order.
COMMON_OPTIONS: tuple[Option, ...] = (
    Option("data_dir", DataDir),
    Option("model", ModelName),
    Option("num_classes", NumClasses, range=Range(1, MAX_CLASSES)),
    Option("dataset", Dataset),
    Option("split", Split),
    Option("out", OutDir, DEFAULT_OUT),
    Option("json", JsonFlag, False),
    Option("subset", Subset, range=Range(1, 10**9)),
    Option("batch_size", BatchSize, DEFAULT_BATCH_SIZE, range=Range(1, 65_536)),
    Option("workers", Workers, DEFAULT_WORKERS, range=Range(0, 1024)),
    Option("device", Device, DEFAULT_DEVICE),
    Option("ema", Ema, False),
    Option("fresh", Fresh, False),
    Option("progress", ShowProgress, True),
    Option("seed", Seed, DEFAULT_SEED, range=Range(0, 2**32 - 1)),
    Option("baseline", BaselineName),
    # input-contract overrides and RobustBench's zoo
    Option("mean", Mean),
    Option("std", Std),
    Option("input_size", InputSize),
    Option("crop_pct", CropPct, range=Range(0.0, 1.0, low_open=True)),
    Option("model_dir", ModelDir),
    Option("threat_model", ThreatModel, DEFAULT_THREAT_MODEL),
    # speed: precision, memory format, compilation, decoder (robust_eval.speed)
    Option("amp", Amp, AMP_MODES[0]),
    Option("channels_last", ChannelsLast, False),
    Option("compile", Compile, False),
    Option("decode", Decode, DECODERS[0]),
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
    Option("eps", Eps, PGD_EPS_255, range=Range(0.0, 255.0, low_open=True), unit="in 1/255 units"),
    Option("alpha", Alpha, PGD_ALPHA_255, range=Range(0.0, 255.0, low_open=True), unit="in 1/255 units"),
    Option("steps", Steps, PGD_STEPS, range=Range(1, 100_000)),
    Option("random_start", RandomStart, True),
    Option("pgd_amp", PgdAmp, False),
)
Attack = Annotated[
    str,
    typer.Option(
        "--attack",
        help="Adversarial attack: pgd (PixMix/IPMix protocol, --eps/--alpha/--steps) or autoattack "
        "(torchattacks' standard AutoAttack, L-inf, RobustBench's eps and first --n-examples).",
    ),
]
AutoattackEps = Annotated[
    float | None,
    typer.Option(
        "--autoattack-eps",
        help="AutoAttack L-inf budget in 1/255 units (default RobustBench's: 8 on CIFAR-10/100 and other "
        "sets, 4 on ImageNet).",
    ),
]
NExamples = Annotated[
    int | None,
    typer.Option(
        "--n-examples",
        help="AutoAttack: the first N clean test examples (default RobustBench's: 10000 CIFAR-10/100, "
        "5000 ImageNet, all elsewhere).",
    ),
]
#: The attack choice and AutoAttack's settings (the adversarial suite beside PGD_OPTIONS).
ATTACK_OPTIONS: tuple[Option, ...] = (
    Option("attack", Attack, ATTACKS[0]),
    Option("autoattack_eps", AutoattackEps, range=Range(0.0, 255.0, low_open=True), unit="in 1/255 units"),
    Option("n_examples", NExamples, range=Range(1, 10**9)),
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
    *ATTACK_OPTIONS,
)


OPTIONS_BY_NAME: dict[str, Option] = {o.name: o for o in ALL_OPTIONS}
