"""One runner per suite: clean, corruptions (-C / -C-bar), perturbations (-P), adversarial (PGD),
calibration, ood, imagenet_ar (ImageNet-A / -R).

Data flows one way: a runner finds its data (``robust_eval.data`` readers), streams it through the
wrapped model (:class:`robust_eval.checkpoints.formats.InputContract`, images in [0, 1]), hands predictions to the
pure functions of ``robust_eval.metrics`` and returns a typed result (``robust_eval.report.results``) that
``robust_eval.report.write`` renders; :data:`SUITES` is the registry (``SUITES[name].run(ctx)``), and
``run_<name>(ctx)`` gives the same result as its JSON block.
Each finished cell is cached (``robust_eval.cache``) so an interrupted run resumes.

A runner raises :class:`SuiteSkipped` (with "put X at Y") when its data is absent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robust_eval import data as rdata
from robust_eval.cache import CellCache, fingerprint
from robust_eval.constants import (
    ALL_CORRUPTIONS,
    ATTACKS,
    AUTOATTACK_EPS_255,
    AUTOATTACK_EPS_255_OTHER,
    AUTOATTACK_N_EXAMPLES,
    AUTOATTACK_TARGET_CLASSES,
    BENCHMARK_CORRUPTIONS,
    CIFAR_CBAR_CORRUPTIONS,
    CIFAR_P_PERTURBATIONS,
    DEFAULT_BATCH_SIZE,
    DEFAULT_SEED,
    DEFAULT_WORKERS,
    ECE_BINS,
    EXTRA_CORRUPTIONS,
    IMAGENET_C_PROTOCOLS,
    IMAGENET_CBAR_CORRUPTIONS,
    P_DIFFICULTIES,
    PGD_ALPHA_255,
    PGD_EPS_255,
    PGD_STEPS,
    RMS_BIN_SIZE,
    SEVERITIES,
    TEST_PERTURBATIONS,
    is_noise_perturbation,
    split_difficulty,
)
from robust_eval.metrics import topk_correct
from robust_eval.report.results import (
    AdversarialResult,
    CalibrationResult,
    CleanResult,
    CorruptionSet,
    CorruptionsResult,
    CorruptionSummary,
    ImagenetARResult,
    OODResult,
    PerturbationsResult,
    SuiteResult,
)
from robust_eval.sharding import BatchPlan, decode_in_workers, gathered
from robust_eval.speed import SpeedSettings
from robust_mix.distributed import Shard
from robust_mix.errors import RobustMixError

__all__ = [
    "SUITES",
    "AutoAttackSettings",
    "Context",
    "PGDSettings",
    "Suite",
    "SuiteSkipped",
    "default_perturbations",
    "run_adversarial",
    "run_calibration",
    "run_clean",
    "run_corruptions",
    "run_imagenet_ar",
    "run_ood",
    "run_perturbations",
]

#: Examples per PGD cell (fixed, so cached chunks stay valid whatever the batch size).
PGD_CHUNK = 1000
#: Clean images per on-the-fly corruption chunk (each chunk has its own seeded generator).
GENERATE_CHUNK = 1000
#: Precision of the softmax behind every anomaly score and confidence (the reference's float32).
SOFTMAX = "float32"
#: Bins of the stored anomaly-score histograms (scores = -max softmax lie in [-1, 0]).
HIST_BINS = 50


class SuiteSkipped(RobustMixError):
    """The suite's data is not there; the message says why and what to put where."""


@dataclass
class PGDSettings:
    """L-inf PGD (PixMix / IPMix protocol by default): budgets in [0, 1] pixel units."""

    eps: float = PGD_EPS_255 / 255
    alpha: float = PGD_ALPHA_255 / 255
    steps: int = PGD_STEPS
    random_start: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"eps": self.eps, "alpha": self.alpha, "steps": self.steps, "random_start": self.random_start}


@dataclass
class AutoAttackSettings:
    """torchattacks' standard AutoAttack (L-inf). ``None`` = RobustBench's leaderboard value for the
    data set (:func:`autoattack_plan`): eps in [0, 1] pixel units, ``n_examples`` = the first N
    examples of the clean test split."""

    eps: float | None = None
    n_examples: int | None = None


class _NoProgress:
    def advance(self, n: int = 1) -> None:
        pass


@contextlib.contextmanager
def _no_progress(description: str, total: int) -> Iterator[_NoProgress]:
    yield _NoProgress()


def default_perturbations(dataset: str) -> tuple[str, ...]:
    """The -P list of the authors' evaluation scripts: CIFAR-10/100-P average spatter instead of snow
    (``cifar-p-eval.py``); ImageNet-P (and anything else) the 10 test perturbations of the paper."""
    return CIFAR_P_PERTURBATIONS if dataset in rdata.CIFAR_FOLDERS else TEST_PERTURBATIONS


@dataclass
class Context:
    """Everything a runner needs: the wrapped model, where data lives, and the run's options."""

    model: torch.nn.Module
    metadata: dict[str, Any]
    data_dir: Path
    cache: CellCache
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    batch_size: int = DEFAULT_BATCH_SIZE
    workers: int = DEFAULT_WORKERS
    subset: int | None = None
    split: str | None = None
    seed: int = DEFAULT_SEED
    pgd: PGDSettings = field(default_factory=PGDSettings)
    #: Attack of the adversarial suite (robust_eval.constants.ATTACKS): "pgd" or "autoattack".
    attack: str = ATTACKS[0]
    autoattack: AutoAttackSettings = field(default_factory=AutoAttackSettings)
    #: -P list averaged into mFR / mT5D; None = the data set's default (:func:`default_perturbations`).
    perturbations: tuple[str, ...] | None = None
    generate: bool = False
    imagenet_c_protocol: str = IMAGENET_C_PROTOCOLS[0]
    baseline: Any = None  # robust_eval.baselines.Baseline
    track: Callable[[str, int], contextlib.AbstractContextManager[Any]] = _no_progress
    shard: Shard = field(default_factory=Shard.single)  # torchrun rank (robust_eval.sharding)
    #: OOD detectors (robust_eval.ood_scores); more than the default adds the "detectors" block.
    ood_scores: tuple[str, ...] = ("msp",)
    #: Add NLL / Brier / AURC and temperature scaling to the calibration suite (robust_eval.calibration).
    calibration_extras: bool = False
    #: --amp / --channels-last / --compile / --decode / --pgd-amp (robust_eval.speed); the defaults
    #: change nothing, not even the cache keys.
    speed: SpeedSettings = field(default_factory=SpeedSettings)
    _clean: dict[str, Any] | None = None

    @property
    def dataset(self) -> str:
        return str(self.metadata["dataset"])

    @property
    def perturbation_list(self) -> tuple[str, ...]:
        """The -P perturbations averaged into mFR: the explicit list, else the data set's default."""
        return tuple(self.perturbations) if self.perturbations else default_perturbations(self.dataset)

    @property
    def size(self) -> int:
        return int(self.metadata["data_config"]["input_size"][-1])

    @property
    def crop_pct(self) -> float:
        return float(self.metadata["data_config"]["crop_pct"])

    @property
    def interpolation(self) -> str:
        return str(self.metadata["data_config"]["interpolation"])

    def options(self, **extra: Any) -> dict[str, Any]:
        """Protocol options that key a cached cell."""
        return {
            "data_dir": str(Path(self.data_dir).resolve()),
            "subset": self.subset,
            "dataset": self.dataset,
            "split": self.split,
            "ema": self.metadata.get("ema", False),
            "model": self.metadata.get("model"),
            "data_config": self.metadata.get("data_config"),
            **({"speed": self.speed.protocol()} if not self.speed.is_default else {}),
            **extra,
        }


# ------------------------------------------------------------------------------------------------
# streaming forward passes
# ------------------------------------------------------------------------------------------------


def _to_tensor(batch: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 (or float [0, 1]) NHWC numpy or tensor (pinned or on ``device`` already) -> float32
    NCHW [0, 1] on ``device``."""
    if isinstance(batch, torch.Tensor):
        t = batch.to(device, non_blocking=batch.is_pinned())
    else:
        t = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
    t = t.permute(0, 3, 1, 2)
    if t.dtype == torch.uint8:
        return t.float().div_(255.0)
    return t.float()


def _batches(
    source: rdata.ImageSource,
    batch_size: int,
    batches: Sequence[int] | None = None,
    device: torch.device | None = None,
    decode: str = "cpu",
) -> Iterator[tuple[int, np.ndarray | torch.Tensor]]:
    """(start, images) of the batches numbered ``batches`` (default: all) of ``batch_size`` examples, in
    that order; batch ``b`` is examples ``[b * batch_size, ...)``, as in a one-process run.

    Image files (:class:`robust_eval.data.FileSource` with ``workers`` >= 1) are decoded in that many
    worker processes (a torch ``DataLoader``, one batch per worker, order kept) so a GPU is not
    starved (into pinned memory when ``device`` is CUDA, so the copy overlaps the forward pass);
    ``decode="gpu"`` decodes JPEGs batched on ``device`` (:mod:`robust_eval.data.gpu_decode`); other
    sources read the next batch in a thread while the caller computes.
    """
    plan = BatchPlan(len(source), batch_size, Shard.single())
    bounds = [plan.bounds(b) for b in (range(plan.n_batches) if batches is None else batches)]
    if not bounds:
        return
    if isinstance(source, rdata.FileSource) and decode == "gpu" and device is not None:
        from robust_eval.data.gpu_decode import decode_batches

        yield from decode_batches(source, bounds, device)
        return
    if isinstance(source, rdata.FileSource) and source.workers > 0:
        yield from decode_in_workers(source, bounds, pin=device is not None and device.type == "cuda")
        return
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(source.batch, *bounds[0])
        for i, (start, _) in enumerate(bounds):
            images = pending.result()
            if i + 1 < len(bounds):
                pending = pool.submit(source.batch, *bounds[i + 1])
            yield start, images


def forward(ctx: Context, source: rdata.ImageSource, description: str) -> Iterator[tuple[int, torch.Tensor]]:
    """Logits (float32, CPU) batch by batch in example order, under ``inference_mode``, with a progress
    bar. Under torchrun each rank runs its blocks of batches (:class:`robust_eval.sharding.BatchPlan`)
    and every rank yields every batch (collective: all ranks iterate every set to the end)."""
    plan = BatchPlan(len(source), ctx.batch_size, ctx.shard)
    with (
        ctx.track(description, len(source)) as bar,
        contextlib.closing(
            _batches(source, ctx.batch_size, plan.my_batches(), ctx.device, ctx.speed.decode)
        ) as stream,
    ):
        local = ((start, _logits(ctx, images)) for start, images in stream)
        for start, logits in gathered(plan, local):
            bar.advance(len(logits))
            yield start, torch.from_numpy(logits)


def _logits(ctx: Context, images: np.ndarray | torch.Tensor) -> np.ndarray:
    with torch.inference_mode(), ctx.speed.autocast(ctx.device):
        return ctx.model(ctx.speed.inputs(_to_tensor(images, ctx.device))).float().cpu().numpy()


class TopK:
    """The one top-k counter of the suites: hits of every ``k`` in ``ks`` summed over batches with
    :func:`robust_eval.metrics.topk_correct` (ties split evenly; the per-sample form of
    ``metrics.topk_error``), in batch order.

    >>> counter = TopK((1, 2))
    >>> counter.add(np.array([[0.1, 0.9], [0.8, 0.2]]), np.array([0, 0]))
    >>> counter.hits, counter.errors(2)
    ([1.0, 2.0], [0.5, 0.0])
    """

    def __init__(self, ks: Sequence[int] = (1,)) -> None:
        self.ks = tuple(int(k) for k in ks)
        self.hits = [0.0] * len(self.ks)

    def add(self, logits: np.ndarray, labels: np.ndarray) -> None:
        """Count the hits of one batch: ``logits`` ``(B, K)``, integer ``labels`` ``(B,)``."""
        for i, k in enumerate(self.ks):
            self.hits[i] += float(topk_correct(logits, labels, k=k).sum())

    def errors(self, n: int) -> list[float]:
        """The error fraction of every ``k`` over ``n`` examples, in [0, 1]."""
        return [(n - hit) / n for hit in self.hits]


#: The calibration errors reported per set, and per -C cell.
CALIBRATION_KEYS = ("rms_calibration_error", "rms_calibration_error_reference_compatible", "ece")


def calibration_values(confidence: np.ndarray, correct: np.ndarray) -> dict[str, float | None]:
    """RMS (ours: ties averaged, every bin), the reference-compatible RMS (None below 100 samples,
    where the reference code fails) and ECE, all fractions, from max-softmax confidences."""
    from robust_eval import metrics

    ref = None
    if len(confidence) >= RMS_BIN_SIZE:
        ref = metrics.rms_calibration_error(confidence, correct, RMS_BIN_SIZE, reference_compatible=True)
    return {
        "rms_calibration_error": metrics.rms_calibration_error(confidence, correct, RMS_BIN_SIZE),
        "rms_calibration_error_reference_compatible": ref,
        "ece": metrics.expected_calibration_error(confidence, correct, n_bins=ECE_BINS),
    }


def _error_counts(ctx: Context, source: rdata.ImageSource, description: str) -> dict[str, Any]:
    """Top-1 / top-5 errors of a labelled source, streamed over batches with ``metrics.topk_correct``
    (the per-sample form of ``metrics.topk_error``), and its calibration errors (float32 max softmax,
    as the reference)."""
    from robust_eval.metrics import anomaly_scores

    assert source.labels is not None
    counter = TopK((1, min(5, int(ctx.metadata["num_classes"]))))
    n = len(source)
    confidence, correct = np.empty(n), np.empty(n, bool)
    for start, logits in forward(ctx, source, description):
        lab = source.labels[start : start + len(logits)]
        arr = logits.numpy()
        counter.add(arr, lab)
        confidence[start : start + len(arr)] = -anomaly_scores(arr)
        correct[start : start + len(arr)] = arr.argmax(1) == lab
    top1, top5 = counter.errors(n)
    return {"n": n, "top1_error": top1, "top5_error": top5, **calibration_values(confidence, correct)}


# ------------------------------------------------------------------------------------------------
# clean
# ------------------------------------------------------------------------------------------------


def _class_count_check(ctx: Context, classes: Sequence[str], where: Path) -> None:
    """Refuse an image folder whose class count is not the model's, naming what the checkpoint was
    trained on (its data set, the folder it records) and any other data set's folder found instead."""
    k = int(ctx.metadata["num_classes"])
    if len(classes) == k:
        return
    recorded = rdata.recorded_data_dir(ctx.metadata)
    trained = f"the checkpoint was trained on {ctx.dataset}" + (f" from '{recorded}'" if recorded else "")
    others = [f"{name} ({folder}/)" for name, folder in rdata.CIFAR_FOLDERS.items() if folder in classes]
    if others:
        raise ValueError(
            f"'{where}' is a data root holding {', '.join(others)}, not an image folder with the model's "
            f"{k} class folders; {trained}: pass --data-dir <that image folder>, or evaluate a checkpoint "
            f"trained on {' or '.join(n.split()[0] for n in others)}"
        )
    raise ValueError(
        f"'{where}' has {len(classes)} class folders but the model has {k} outputs ({trained}); pass "
        "--data-dir <the folder with its class folders>"
    )


def _p_fingerprint(folder: Path, name: str) -> str:
    """Cache key part of one -P perturbation's data: ``<name>.npy`` or the ``<name>/`` video folder."""
    return fingerprint([Path(folder) / f"{name}.npy", Path(folder) / name])


def _trained_on(ctx: Context, folder: Path) -> Path | None:
    """The training data folder the checkpoint records, when ``folder`` is the one ``timm train`` read
    its training images from (``<data-dir>/train``, else ``<data-dir>`` itself); else None."""
    recorded = rdata.recorded_data_dir(ctx.metadata)
    if recorded is None:
        return None
    train = recorded / rdata.TRAIN_SPLIT if (recorded / rdata.TRAIN_SPLIT).is_dir() else recorded
    return recorded if train.resolve() == folder.resolve() else None


def clean_source(ctx: Context) -> tuple[rdata.ImageSource, str]:
    """The clean test set of the checkpoint's data set, with a description of where it came from.

    Its place is the data set's record in :data:`robust_eval.data.LAYOUTS`. An image folder's
    training images are evaluated only when asked for with ``--split`` (see
    :func:`robust_eval.data.imagefolder_split`).
    """
    ds = ctx.dataset
    layout = rdata.clean_layout(ds)
    found = rdata.clean_root(ctx.data_dir, ds)
    if found is None:
        raise SuiteSkipped(f"no {layout.name} test set: {layout.hint(ctx.data_dir)}")
    if ds in rdata.CIFAR_FOLDERS:
        images, labels, _ = rdata.load_cifar(found, ds)
        return rdata.ArraySource(images, labels).sample(ctx.subset, ctx.seed), f"{found} (test split)"
    try:
        split_root = rdata.imagefolder_split(found, ctx.split)
    except rdata.DataLayoutError as exc:
        raise SuiteSkipped(str(exc)) from None
    recorded = _trained_on(ctx, split_root)
    if recorded is not None and ctx.split is None:
        raise SuiteSkipped(
            f"'{split_root}' holds the images the model was trained on (its checkpoint records --data-dir "
            f"'{recorded}'); give a held-out {'/, '.join(rdata.EVAL_SPLITS)}/ split, or pass --split . to "
            "measure the training images (optimistic numbers)"
        )
    paths, labels, classes = rdata.list_imagefolder(split_root)
    _class_count_check(ctx, classes, split_root)
    src = rdata.FileSource(paths, labels, ctx.size, ctx.crop_pct, ctx.interpolation, ctx.workers)
    where = f"{split_root} (training images, as asked)" if recorded is not None else str(split_root)
    return src.sample(ctx.subset, ctx.seed), where


def _clean_cell(ctx: Context) -> dict[str, Any]:
    """The clean pass (cached): errors plus per-example anomaly scores and correctness."""
    if ctx._clean is not None:
        return ctx._clean
    from robust_eval.metrics import anomaly_scores

    source, where = clean_source(ctx)

    def compute() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        assert source.labels is not None
        counter = TopK((1, min(5, int(ctx.metadata["num_classes"]))))
        scores, correct = np.empty(len(source)), np.empty(len(source), bool)
        for start, logits in forward(ctx, source, "clean"):
            arr = logits.numpy()
            lab = source.labels[start : start + len(arr)]
            scores[start : start + len(arr)] = anomaly_scores(arr)
            correct[start : start + len(arr)] = arr.argmax(1) == lab  # the prediction calibration judges
            counter.add(arr, lab)
        n = len(source)
        top1, top5 = counter.errors(n)
        values = {"n": n, "top1_error": top1, "top5_error": top5, "source": where}
        return values, {"scores": scores, "correct": correct}

    if isinstance(source, rdata.FileSource):
        inputs = fingerprint(source.paths)
    else:
        inputs = fingerprint([rdata.find_cifar_folder(ctx.data_dir, ctx.dataset)])
    values, arrays = ctx.cache.cell("clean", "test", ctx.options(softmax=SOFTMAX, inputs=inputs), compute)
    ctx._clean = {**values, "scores": arrays["scores"], "correct": arrays["correct"].astype(bool)}
    return ctx._clean


def _clean_result(ctx: Context) -> CleanResult:
    """Top-1 / top-5 error on the clean test split (fractions in [0, 1])."""
    cell = _clean_cell(ctx)
    return CleanResult(
        n=cell["n"], top1_error=cell["top1_error"], top5_error=cell["top5_error"], source=cell["source"]
    )


# ------------------------------------------------------------------------------------------------
# corruptions
# ------------------------------------------------------------------------------------------------


def _sev_map(table: dict[str, dict[str, float]], names: Sequence[str]) -> dict[str, dict[int, float]]:
    return {c: {int(s): float(v) for s, v in table[c].items()} for c in names if c in table}


def _baseline_for(ctx: Context) -> Any:
    """The normalizing baseline: the one given, else AlexNet for ImageNet, else None."""
    if ctx.baseline is None and ctx.dataset == "imagenet":
        from robust_eval.baselines import get_baseline

        return get_baseline("alexnet")
    return ctx.baseline


def _normalized(
    baseline: Any, errors: dict[str, dict[str, float]], extras: list[str], clean_error: float | None
) -> dict[str, Any]:
    """Baseline-normalized CE / mCE / relative mCE (percentages, baseline = 100) of complete -C errors."""
    from robust_eval import metrics

    base_err = baseline.corruption_errors
    lacking = [c for c in BENCHMARK_CORRUPTIONS if c not in base_err]
    if lacking:
        return {"baseline": baseline.name, "error": f"baseline lacks {lacking}"}
    errs = _sev_map(errors, BENCHMARK_CORRUPTIONS)
    norm: dict[str, Any] = {
        "baseline": baseline.name,
        "baseline_source": baseline.source,
        "ce": metrics.corruption_error_normalized(errs, base_err),
        "mce": metrics.mce_normalized(errs, base_err),
        "relative_mce": None,
    }
    if clean_error is not None and baseline.clean_error is not None:
        norm["relative_mce"] = metrics.relative_mce(errs, clean_error, base_err, baseline.clean_error)
    extras_base = [c for c in extras if c in base_err]
    if extras_base:
        norm["extras_ce"] = metrics.corruption_error_normalized(
            _sev_map(errors, extras_base), base_err, corruptions=extras_base
        )
    return norm


def _summaries(
    ctx: Context, errors: dict[str, dict[str, float]], clean_error: float | None
) -> CorruptionSummary:
    from robust_eval import metrics

    present = [c for c in BENCHMARK_CORRUPTIONS if c in errors and len(errors[c]) == len(SEVERITIES)]
    missing = [c for c in BENCHMARK_CORRUPTIONS if c not in present]
    out = CorruptionSummary(
        benchmark_corruptions=list(BENCHMARK_CORRUPTIONS),
        missing_benchmark_corruptions=missing,
        per_corruption_mean_error={c: float(np.mean(list(errors[c].values()))) for c in errors},
    )
    if not missing:
        out.mce_unnormalized = metrics.mean_corruption_error(_sev_map(errors, BENCHMARK_CORRUPTIONS))
    extras = [c for c in EXTRA_CORRUPTIONS if c in errors]
    if extras:
        out.extras_mean_error = float(np.mean([out.per_corruption_mean_error[c] for c in extras]))
    baseline = _baseline_for(ctx)
    if baseline is not None and not missing:
        out.normalized = _normalized(baseline, errors, extras, clean_error)
    return out


def _generated_cell(
    ctx: Context, clean: rdata.ArraySource, corruption: str, severity: int
) -> rdata.ArraySource:
    """Corrupt the clean set on the fly (seeded per chunk), for when no -C arrays are on disk."""
    from robust_eval.corruptions import apply_corruption

    preset = "cifar" if ctx.dataset in rdata.CIFAR_FOLDERS else "imagenet"
    c_idx = ALL_CORRUPTIONS.index(corruption)
    parts = []
    for chunk, start in enumerate(range(0, len(clean), GENERATE_CHUNK)):
        rng = np.random.default_rng([ctx.seed, c_idx, severity, chunk])
        images = clean.batch(start, min(start + GENERATE_CHUNK, len(clean)))
        parts.append(np.asarray(apply_corruption(images, corruption, severity, preset, rng), dtype=np.uint8))
    return rdata.ArraySource(np.concatenate(parts), clean.labels)


def _imagenet_classes(ctx: Context) -> list[str] | None:
    """The model's class folder names in label order: those of the clean split folder (ImageNet: the
    1000 sorted wnids; an image folder: its classes) when their count matches the model, else the
    checkpoint's class names; None when neither is known."""
    k = int(ctx.metadata["num_classes"])
    root = rdata.clean_root(ctx.data_dir, ctx.dataset)
    with contextlib.suppress(rdata.DataLayoutError):
        if root is not None:
            split = rdata.imagefolder_split(root, ctx.split)
            classes = sorted(d.name for d in split.iterdir() if d.is_dir() and not d.name.startswith("."))
            if len(classes) == k:
                return classes
    names = ctx.metadata.get("class_names")
    return list(names) if names and len(names) == k else None


def _tree_source(ctx: Context, folder: Path, classes: list[str] | None, crop_pct: float) -> rdata.FileSource:
    paths, labels, folder_classes = rdata.list_imagefolder(folder)
    if classes is not None:
        index = {c: i for i, c in enumerate(classes)}
        unknown = [c for c in folder_classes if c not in index]
        if unknown:
            raise ValueError(f"'{folder}' has class folders not in the model's classes: {unknown[:3]}")
        labels = np.asarray([index[folder_classes[v]] for v in labels], dtype=np.int64)
    else:
        _class_count_check(ctx, folder_classes, folder)
    return rdata.FileSource(paths, labels, ctx.size, crop_pct, ctx.interpolation, ctx.workers).sample(
        ctx.subset, ctx.seed
    )


#: One -C cell to measure: (corruption, severity, reader, data files whose fingerprint keys the cache).
_CCell = tuple[str, int, Callable[[], rdata.ImageSource], tuple[Path, ...]]


def _c_names(dataset: str, bar: bool) -> Sequence[str] | None:
    """The corruptions of the data set's -C (all 19) or -C-bar: CIFAR's, else ImageNet's (ImageNet-C, or
    the ``make-c`` set of an image folder, which has the same tree layout)."""
    if dataset in rdata.CIFAR_FOLDERS:
        return CIFAR_CBAR_CORRUPTIONS if bar else ALL_CORRUPTIONS
    return IMAGENET_CBAR_CORRUPTIONS if bar else ALL_CORRUPTIONS


def _generated_c_cells(ctx: Context) -> tuple[dict[str, Any], list[_CCell]]:
    """Every -C cell corrupted on the fly from the clean CIFAR test set (``--generate``)."""
    clean, where = clean_source(ctx)
    assert isinstance(clean, rdata.ArraySource)
    info = {
        "source": f"generated from {where} with robust_eval.corruptions (not bit-identical to the release)",
        "seed": ctx.seed,
    }
    cells: list[_CCell] = [
        (c, s, lambda c=c, s=s: _generated_cell(ctx, clean, c, s), ())
        for c in ALL_CORRUPTIONS
        for s in SEVERITIES
    ]
    return info, cells


def _cifar_c_cells(ctx: Context, folder: Path, names: Sequence[str]) -> tuple[dict[str, Any], list[_CCell]]:
    """The cells of a CIFAR -C / -C-bar folder (``<corruption>.npy`` + ``labels.npy``)."""
    labels = rdata.load_corruption_labels(folder)
    stored = rdata.corruption_severities(folder)
    info = {"source": str(folder), "severities": list(stored)}

    def reader(c: str, s: int) -> Callable[[], rdata.ImageSource]:
        return lambda: rdata.load_corruption_cell(folder, c, s, labels).sample(ctx.subset, ctx.seed)

    files = (folder / "labels.npy",)
    cells: list[_CCell] = [
        (c, s, reader(c, s), (folder / f"{c}.npy", *files))
        for c in names
        if (folder / f"{c}.npy").is_file()
        for s in stored
    ]
    return info, cells


def _imagenet_c_cells(
    ctx: Context, folder: Path, names: Sequence[str]
) -> tuple[dict[str, Any], list[_CCell]]:
    """The cells of an ImageNet -C / -C-bar tree (``<corruption>/<1..5>/<wnid>/``)."""
    classes = _imagenet_classes(ctx)
    crop = ctx.crop_pct if ctx.imagenet_c_protocol == "resize_crop" else 1.0
    info = {"source": str(folder), "imagenet_c_protocol": ctx.imagenet_c_protocol, "crop_pct_used": crop}
    cells: list[_CCell] = [
        (c, s, lambda d=sev_dir: _tree_source(ctx, d, classes, crop), (sev_dir,))
        for c in names
        if (folder / c).is_dir()
        for s, sev_dir in zip(SEVERITIES, rdata.severity_folders(folder / c))
    ]
    return info, cells


def _c_cells(ctx: Context, bar: bool, names: Sequence[str]) -> tuple[dict[str, Any], list[_CCell]] | None:
    """Provenance (the JSON keys before the tables) and the cells of -C or -C-bar; None if absent."""
    ds = ctx.dataset
    folder = rdata.corruption_folder(ctx.data_dir, ds, bar=bar)
    if folder is None and not (ctx.generate and not bar and ds in rdata.CIFAR_FOLDERS):
        return None
    if folder is None:
        info, cells = _generated_c_cells(ctx)
        return {"generated_on_the_fly": True, "regenerated": True, **info}, cells
    flags = {
        "generated_on_the_fly": False,
        "regenerated": bool(rdata.generator_manifest(folder).get("regenerated")),  # made by make-c
    }
    info, cells = (_cifar_c_cells if ds in rdata.CIFAR_FOLDERS else _imagenet_c_cells)(ctx, folder, names)
    return {**flags, **info}, cells


def _measure_c_cells(
    ctx: Context, bar: bool, generated: bool, cells: list[_CCell]
) -> dict[str, dict[str, Any]]:
    """Errors, top-5 errors, image counts and calibration errors of every cell (cached per cell)."""
    options = ctx.options(
        generated=generated,
        seed=ctx.seed if generated else None,
        cell_metrics="errors+calibration",
        softmax=SOFTMAX,
    )
    if ctx.dataset == "imagenet":
        options["imagenet_c_protocol"] = ctx.imagenet_c_protocol
    tables: dict[str, dict[str, Any]] = {"errors": {}, "top5_errors": {}, "n_per_cell": {}, "calibration": {}}
    for c, s, make, inputs in cells:
        values, _ = ctx.cache.cell(
            "corruptions_bar" if bar else "corruptions",
            f"{c}-{s}",
            {**options, "inputs": fingerprint(inputs)} if inputs else options,
            lambda c=c, s=s, make=make: (_error_counts(ctx, make(), f"{c} s{s}"), {}),
        )
        tables["errors"].setdefault(c, {})[str(s)] = values["top1_error"]
        tables["top5_errors"].setdefault(c, {})[str(s)] = values["top5_error"]
        for key in CALIBRATION_KEYS:
            tables["calibration"].setdefault(key, {}).setdefault(c, {})[str(s)] = values[key]
        tables["n_per_cell"][c] = values["n"]
    return tables


def _run_c_set(ctx: Context, bar: bool) -> CorruptionSet | None:
    """Errors of every present (corruption, severity) cell of -C or -C-bar; None if the set is absent."""
    names = _c_names(ctx.dataset, bar)
    found = _c_cells(ctx, bar, names) if names is not None else None
    if names is None or found is None:
        return None
    info, cells = found
    tables = _measure_c_cells(ctx, bar, info["generated_on_the_fly"], cells)
    errors = tables["errors"]
    averaged = [c for c in (names if bar else BENCHMARK_CORRUPTIONS) if c in errors]
    out = CorruptionSet(
        generated_on_the_fly=info.pop("generated_on_the_fly"),
        regenerated=info.pop("regenerated"),
        corruptions=[c for c in names if c in errors],
        errors=errors,
        top5_errors=tables["top5_errors"],
        n_per_cell=tables["n_per_cell"],
        missing=[c for c in names if c not in errors],
        calibration=_cell_calibration(tables["calibration"], averaged),
        is_bar=bar,
        extra=info,
    )
    if bar and not out.missing:
        from robust_eval.metrics import mean_corruption_error

        out.mean_error = mean_corruption_error(_sev_map(errors, names), corruptions=names)
    return out


def _cell_calibration(
    calib: dict[str, dict[str, dict[str, float | None]]], averaged: list[str]
) -> dict[str, Any]:
    """Per-cell RMS / reference RMS / ECE tables and their means over the cells of ``averaged``
    (the 15 benchmark corruptions for -C, every -C-bar corruption); a mean is None when a cell lacks it."""
    out: dict[str, Any] = {
        "per_cell": calib,
        "mean_over": averaged,
        "confidence": f"max softmax ({SOFTMAX}, as the reference)",
    }
    for key in CALIBRATION_KEYS:
        values = [v for c in averaged for v in calib.get(key, {}).get(c, {}).values()]
        out[f"mean_{key}"] = float(np.mean(values)) if values and None not in values else None
    return out


def _corruptions_result(ctx: Context) -> CorruptionsResult:
    """-C (15 benchmark + 4 extras, extras reported separately) and -C-bar errors per cell, mCE both
    unnormalized (CIFAR convention) and baseline-normalized, relative mCE."""
    c_set = _run_c_set(ctx, bar=False)
    cbar = _run_c_set(ctx, bar=True)
    if c_set is None and cbar is None:
        if ctx.dataset not in (*rdata.CIFAR_FOLDERS, "imagenet"):
            raise SuiteSkipped(rdata.generated_hint(ctx.data_dir, ctx.dataset, "C", ctx.split))
        where = rdata.expected_corruption_folder(ctx.data_dir, ctx.dataset)
        hint = "<corruption>.npy + labels.npy" if ctx.dataset != "imagenet" else "<corruption>/<1..5>/<wnid>/"
        gen = (
            " (or pass --generate to corrupt the clean test set on the fly)"
            if ctx.dataset != "imagenet"
            else ""
        )
        raise SuiteSkipped(f"no corruption data: put {hint} in '{where}'{gen}")
    out = CorruptionsResult(c=c_set, c_bar=cbar)
    if c_set is not None:
        with contextlib.suppress(SuiteSkipped):
            out.clean_error = _clean_cell(ctx)["top1_error"]
        out.summary = _summaries(ctx, c_set.errors, out.clean_error)
        clean_cal = None
        with contextlib.suppress(SuiteSkipped):
            cell = _clean_cell(ctx)
            clean_cal = calibration_values(-np.asarray(cell["scores"]), np.asarray(cell["correct"], bool))
        assert c_set.calibration is not None
        mean = {k: c_set.calibration[f"mean_{k}"] for k in CALIBRATION_KEYS}
        out.calibration = {"clean": clean_cal, "corrupted_mean": mean, "mean_over": "-C benchmark cells"}
    return out


# ------------------------------------------------------------------------------------------------
# perturbations
# ------------------------------------------------------------------------------------------------


#: Bumped when a cached -P cell gains fields (old cells are then recomputed, not misread).
_P_CELL_VERSION = 2

#: How the headline -P numbers treat difficulty levels (recorded in every -P result).
P_DIFFICULTY_AGGREGATION = (
    "mfr / mt5d (and their normalized values) are difficulty 1 only, the level of the published "
    "ImageNet-P tables and the default of the reference script (ImageNet-P/test.py --difficulty 1), "
    "which evaluates one level per run and never averages levels. Levels 2 and 3 are reported "
    "separately under 'difficulties': noise perturbations from their '<p>_<d>' folders (frames vs "
    "frame 0), the others from the level-1 videos with frames d apart."
)


def _perturbation_cell(
    ctx: Context, seqs: rdata.SequenceSource, name: str, strides: Sequence[int] = ()
) -> dict[str, Any]:
    """FP / T5D of one perturbation's sequences; ``strides`` > 1 add the stride-d values (the
    difficulty-d comparisons of a non-noise perturbation) from the same predictions."""
    from robust_eval.metrics import flip_probability, top5_distance, topk_indices

    t = seqs.frames
    per_batch = max(1, ctx.batch_size // t)
    k = min(5, int(ctx.metadata["num_classes"]))
    top = np.empty((len(seqs), t, k), np.int64)
    plan = BatchPlan(len(seqs), per_batch, ctx.shard)  # torchrun: each rank its blocks of sequences

    def local() -> Iterator[tuple[int, np.ndarray]]:
        for b in plan.my_batches():
            block = seqs.sequences(*plan.bounds(b))
            flat = block.reshape(-1, *block.shape[2:])
            yield plan.bounds(b)[0], topk_indices(_logits(ctx, flat), k).reshape(len(block), t, k)

    with ctx.track(f"{name} ({t} frames)", len(seqs) * t) as bar:
        for start, tops in gathered(plan, local()):
            top[start : start + len(tops)] = tops
            bar.advance(len(tops) * t)
    noise = is_noise_perturbation(name)

    def at(stride: int) -> dict[str, Any]:
        return {
            "flip_probability": flip_probability(top[..., 0], noise=noise, stride=stride),
            "top5_distance": top5_distance(top, noise=noise, stride=stride) if k == 5 else None,
        }

    values: dict[str, Any] = {"n": len(seqs), "frames": t, "noise_rule": noise, **at(1)}
    if not noise:
        values["by_stride"] = {str(d): at(d) for d in strides if 1 < d < t}
    return values


def _p_means(
    ctx: Context, fp: dict[str, float], t5d: dict[str, float], names: Sequence[str], level: int
) -> dict[str, Any]:
    """mFR / mT5D over ``names`` (plain; normalized when the baseline has every name at ``level``:
    ``<p>`` for level 1, ``<p>_<level>`` above)."""
    from robust_eval.metrics import mean_flip_rate

    out: dict[str, Any] = {"mfr": None, "mt5d": None, "normalized": None}
    if not names or any(p not in fp for p in names):
        return out
    out["mfr"] = mean_flip_rate(fp, None, perturbations=names)
    has_t5d = all(p in t5d for p in names)
    if has_t5d:
        out["mt5d"] = mean_flip_rate(t5d, None, perturbations=names)
    b = ctx.baseline
    key = {p: p if level == 1 else f"{p}_{level}" for p in names}
    if b is not None and all(key[p] in b.flip_probability for p in names):
        base_fp = {p: b.flip_probability[key[p]] for p in names}
        norm: dict[str, Any] = {"baseline": b.name, "mfr": mean_flip_rate(fp, base_fp, names)}
        if has_t5d and all(key[p] in b.top5_distance for p in names):
            base_t5d = {p: b.top5_distance[key[p]] for p in names}
            norm["mt5d"] = mean_flip_rate(t5d, base_t5d, names)
        out["normalized"] = norm
    return out


def _difficulty_levels(
    ctx: Context, folder: Path, per: dict[str, Any], strides: Sequence[int]
) -> dict[str, Any]:
    """Levels 2..3: the noise perturbations' ``<p>_<d>`` sets that are present, and the stride-d
    values of the others; per level the FP / T5D per perturbation and their means."""
    levels: dict[str, Any] = {}
    for level in P_DIFFICULTIES[1:]:
        cells: dict[str, Any] = {}
        for name, values in per.items():
            base, d = split_difficulty(name)
            if d != 1:
                continue
            if not values["noise_rule"]:
                if str(level) in values.get("by_stride", {}):
                    cells[base] = {
                        **values["by_stride"][str(level)],
                        "source": f"{name}, frames {level} apart",
                    }
                continue
            seqs = rdata.load_perturbation(folder, f"{base}_{level}")
            if seqs is None:
                continue
            seqs = seqs.sample(ctx.subset, ctx.seed)
            got, _ = ctx.cache.cell(
                "perturbations",
                f"{base}_{level}",
                ctx.options(p_cell=_P_CELL_VERSION, inputs=_p_fingerprint(folder, f"{base}_{level}")),
                lambda s=seqs, n=f"{base}_{level}": (_perturbation_cell(ctx, s, n), {}),
            )
            cells[base] = {k: got[k] for k in ("flip_probability", "top5_distance", "n", "frames")}
            cells[base]["source"] = f"{base}_{level}"
        if not cells:
            continue
        names = [p for p in (split_difficulty(n)[0] for n in per) if p in cells]
        fp = {p: cells[p]["flip_probability"] for p in names}
        t5d = {p: cells[p]["top5_distance"] for p in names if cells[p]["top5_distance"] is not None}
        levels[str(level)] = {
            "per_perturbation": cells,
            "perturbations": names,
            "complete": len(names) == len(per),
            **_p_means(ctx, fp, t5d, names, level),
        }
    return levels


def _no_p_data(ctx: Context) -> SuiteSkipped:
    """Why -P cannot run, with where to put the data (the layout table's hint) or how to make it."""
    layout = rdata.perturbation_layout(ctx.dataset)
    if layout is not None:
        return SuiteSkipped(f"no -P data: {layout.hint(ctx.data_dir)}")
    return SuiteSkipped(rdata.generated_hint(ctx.data_dir, ctx.dataset, "P", ctx.split))


def _perturbations_result(ctx: Context) -> PerturbationsResult:
    """-P stability: flip probability and top-5 distance per perturbation, mFR / mT5D (plain mean for
    CIFAR; baseline-normalized when a baseline with -P numbers is given), at difficulty 1 (the
    headline) and, where the data allow, at difficulties 2 and 3 (see :data:`P_DIFFICULTY_AGGREGATION`).

    The noise rule (every frame vs frame 0) follows the name, difficulty suffix included
    (``gaussian_noise_2``); the averaged list defaults per data set (:func:`default_perturbations`)."""
    folder = rdata.perturbation_folder(ctx.data_dir, ctx.dataset)
    if folder is None:
        raise _no_p_data(ctx)
    names = ctx.perturbation_list
    # the reference ImageNet-P script's --difficulty is a frame stride for non-noise perturbations
    strides = P_DIFFICULTIES[1:] if ctx.dataset == "imagenet" else ()
    per: dict[str, Any] = {}
    for name in names:
        sequences = rdata.load_perturbation(folder, name)
        if sequences is None:
            continue
        seqs = sequences.sample(ctx.subset, ctx.seed)
        values, _ = ctx.cache.cell(
            "perturbations",
            name,
            ctx.options(p_cell=_P_CELL_VERSION, strides=list(strides), inputs=_p_fingerprint(folder, name)),
            lambda s=seqs, n=name: (_perturbation_cell(ctx, s, n, strides), {}),
        )
        per[name] = values
    if not per:
        raise SuiteSkipped(f"'{folder}' has none of the perturbations {list(names)}")
    fp = {p: v["flip_probability"] for p, v in per.items()}
    t5d = {p: v["top5_distance"] for p, v in per.items() if v["top5_distance"] is not None}
    missing = [p for p in names if p not in per]
    return PerturbationsResult(
        source=str(folder),
        perturbations=list(names),
        perturbations_default=not ctx.perturbations,
        perturbation_list="explicit" if ctx.perturbations else f"default for {ctx.dataset}",
        per_perturbation=per,
        missing=missing,
        **_p_means(ctx, fp, t5d, names if not missing else [], 1),
        difficulty=1,
        difficulty_aggregation=P_DIFFICULTY_AGGREGATION,
        difficulties=_difficulty_levels(ctx, folder, per, strides),
    )


# ------------------------------------------------------------------------------------------------
# adversarial
# ------------------------------------------------------------------------------------------------


def pgd_attack(model: torch.nn.Module, settings: PGDSettings) -> Any:
    """torchattacks PGD on the [0, 1]-input wrapper (normalization stays inside the model); build it
    after the model is on its device."""
    import torchattacks

    return torchattacks.PGD(
        model,
        eps=settings.eps,
        alpha=settings.alpha,
        steps=settings.steps,
        random_start=settings.random_start,
    )


def _pgd_batch(ctx: Context, attack: Any, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict[str, Any]:
    """PGD on one batch from a random start seeded by ``seed``: top-1 errors (clean, adversarial),
    the largest L-inf perturbation and whether the adversarial images stay in [0, 1]."""
    devices = [ctx.device] if ctx.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        with torch.enable_grad(), ctx.speed.autocast(ctx.device, pgd=True):
            adv = attack(x, y).detach()
    with torch.inference_mode(), ctx.speed.autocast(ctx.device, pgd=True):
        logits_clean = ctx.model(x).float().cpu().numpy()
        logits_adv = ctx.model(adv).float().cpu().numpy()
    lab = y.cpu().numpy()
    clean, adversarial = TopK(), TopK()
    clean.add(logits_clean, lab)
    adversarial.add(logits_adv, lab)
    return {
        "n": len(lab),
        "clean_errors": len(lab) - clean.hits[0],
        "adversarial_errors": len(lab) - adversarial.hits[0],
        "max_linf": float((adv - x).abs().max()),
        "inside_box": bool(adv.min() >= 0) and bool(adv.max() <= 1),
    }


def autoattack_plan(ctx: Context, n_available: int | None = None) -> dict[str, Any]:
    """The AutoAttack settings of this run, resolved: eps (RobustBench's 8/255 on CIFAR-10/100, 4/255
    on ImageNet, unless given), the first ``n_examples`` of the clean test split (RobustBench's
    10,000 / 5,000, all elsewhere, at most ``n_available``), and ``n_classes`` as passed to
    torchattacks, which reads it only as "attack n_classes - 1 target classes" in APGD-T and FAB-T:
    min(model classes, 10), i.e. AutoAttack's 9 target classes (fewer for a smaller label set)."""
    aa = ctx.autoattack
    eps = (
        aa.eps if aa.eps is not None else AUTOATTACK_EPS_255.get(ctx.dataset, AUTOATTACK_EPS_255_OTHER) / 255
    )
    n = aa.n_examples if aa.n_examples is not None else AUTOATTACK_N_EXAMPLES.get(ctx.dataset)
    if n_available is not None:
        n = n_available if n is None else min(n, n_available)
    model_classes = int(ctx.metadata.get("num_classes") or 10)
    return {
        "eps": eps,
        "n_examples": n,
        "eps_default": aa.eps is None,
        "n_examples_default": aa.n_examples is None,
        "selection": "first n_examples of the clean test split (RobustBench's convention)",
        "model_classes": model_classes,
        "n_classes": min(model_classes, AUTOATTACK_TARGET_CLASSES + 1),
    }


def autoattack_attack(model: torch.nn.Module, eps: float, n_classes: int, seed: int) -> Any:
    """torchattacks' standard AutoAttack (APGD-CE, APGD-T, FAB-T, Square; L-inf) on the [0, 1]-input
    wrapper with the number of classes explicit (torchattacks' default is 10) and a fixed seed
    (its default, the clock, is not reproducible)."""
    import torchattacks

    return torchattacks.AutoAttack(
        model, norm="Linf", eps=eps, version="standard", n_classes=n_classes, seed=seed
    )


def autoattack_components(attack: Any) -> list[dict[str, Any]]:
    """What the built AutoAttack runs, read from its component attacks (for the result block)."""
    out = []
    for a in attack._autoattack.attacks:
        row: dict[str, Any] = {"name": type(a).__name__}
        for key in ("loss", "steps", "n_restarts", "n_target_classes", "n_queries"):
            if hasattr(a, key):
                row[key] = getattr(a, key)
        if getattr(a, "multi_targeted", None) is not None:
            row["multi_targeted"] = bool(a.multi_targeted)
        out.append(row)
    return out


def _batch_attack(ctx: Context, seed: int) -> Any:
    """The attack of one batch: PGD (its random start drawn under ``seed``), or AutoAttack built with
    ``seed`` (its components reseed torch themselves)."""
    if ctx.attack == "autoattack":
        plan = autoattack_plan(ctx)
        return autoattack_attack(ctx.model, plan["eps"], plan["n_classes"], seed)
    return pgd_attack(ctx.model, ctx.pgd)


def _pgd_chunk(ctx: Context, source: rdata.ImageSource, chunk: int, bar: Any) -> dict[str, Any]:
    """The attack over one chunk of examples. Batch ``b``'s random start is seeded by (seed, chunk, b)
    alone, so under torchrun each rank attacks its block of the chunk's batches and the gathered totals
    equal one process's (sums of whole counts and a max: order-free)."""
    assert source.labels is not None
    plan = BatchPlan(len(source), ctx.batch_size, ctx.shard, per_rank=len(source))
    mine = plan.my_batches()
    local = []
    for b, (start, images) in zip(mine, _batches(source, ctx.batch_size, mine, ctx.device, ctx.speed.decode)):
        x = ctx.speed.inputs(_to_tensor(images, ctx.device))
        if ctx.attack == "autoattack":
            x = x.contiguous()  # torchattacks' FAB .view()s the input gradient, which takes x's strides
        y = torch.from_numpy(source.labels[start : start + len(images)]).to(ctx.device)
        seed = ctx.seed * 1_000_003 + chunk * 1009 + b
        local.append(_pgd_batch(ctx, _batch_attack(ctx, seed), x, y, seed))
        bar.advance(len(images))
    per_batch = list(gathered(plan, local))  # one window: the whole chunk
    bar.advance(len(source) - sum(v["n"] for v in local))  # the other ranks' blocks
    return {
        "n": len(source),
        "clean_errors": sum((v["clean_errors"] for v in per_batch), 0.0),
        "adversarial_errors": sum((v["adversarial_errors"] for v in per_batch), 0.0),
        "max_linf": max((v["max_linf"] for v in per_batch), default=0.0),
        "inside_box": all(v["inside_box"] for v in per_batch),
    }


def _attack_block(ctx: Context, n: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the result's ``attack`` block, the options keying its cached chunks)."""
    if ctx.attack != "autoattack":
        block = {"name": "PGD (torchattacks, L-inf, untargeted, cross-entropy)", **ctx.pgd.as_dict()}
        return block, {"pgd": ctx.pgd.as_dict()}
    import torchattacks

    plan = autoattack_plan(ctx, n)
    built = autoattack_attack(ctx.model, plan["eps"], plan["n_classes"], ctx.seed)
    block = {
        "name": f"AutoAttack (torchattacks {torchattacks.__version__}, standard, L-inf)",
        "kind": "autoattack",
        "version": "standard",
        "norm": "Linf",
        **plan,
        "components": autoattack_components(built),
    }
    return block, {"autoattack": {k: plan[k] for k in ("eps", "n_examples", "n_classes")}}


def _adversarial_result(ctx: Context) -> AdversarialResult:
    """Error under PGD (or AutoAttack, ``ctx.attack``) on the clean test set (fractions), cached in
    chunks of 1000 examples. AutoAttack takes the first ``n_examples`` (:func:`autoattack_plan`)."""
    source, where = clean_source(ctx)
    attack, keyed = _attack_block(ctx, len(source))
    if ctx.attack == "autoattack":
        source = source.head(attack["n_examples"])
        where = f"{where}, first {attack['n_examples']}"
    totals = {"n": 0, "clean_errors": 0, "adversarial_errors": 0}
    max_linf, box_ok = 0.0, True
    options = ctx.options(**keyed, seed=ctx.seed, batch_size=ctx.batch_size)
    title = "AutoAttack" if ctx.attack == "autoattack" else f"PGD-{ctx.pgd.steps}"
    with ctx.track(title, len(source)) as bar:
        for chunk, start in enumerate(range(0, len(source), PGD_CHUNK)):
            stop = min(start + PGD_CHUNK, len(source))
            part = source.subset(np.arange(start, stop))
            hit = ctx.cache.get("adversarial", f"chunk{chunk:04d}", options)
            if hit is None:
                values = _pgd_chunk(ctx, part, chunk, bar)
                ctx.cache.put("adversarial", f"chunk{chunk:04d}", options, values)
            else:
                values = hit[0]
                bar.advance(stop - start)
            for k in totals:
                totals[k] += values[k]
            max_linf = max(max_linf, values["max_linf"])
            box_ok = box_ok and values["inside_box"]
    n = totals["n"]
    return AdversarialResult(
        source=where,
        attack=attack,
        n=n,
        clean_error=totals["clean_errors"] / n,
        adversarial_error=totals["adversarial_errors"] / n,
        max_linf_perturbation=max_linf,
        inside_unit_box=box_ok,
    )


# ------------------------------------------------------------------------------------------------
# calibration
# ------------------------------------------------------------------------------------------------


def _calibration_result(ctx: Context) -> CalibrationResult:
    """RMS calibration error (ours; reference-compatible variant labelled), ECE (15 bins) and
    reliability bins, from the clean pass (confidence = float32 max softmax, as the reference).
    Per -C cell calibration is part of the corruptions suite (``c.calibration``)."""
    from robust_eval import metrics

    cell = _clean_cell(ctx)
    confidence = -np.asarray(cell["scores"], dtype=np.float64)
    correct = np.asarray(cell["correct"], dtype=bool)
    out = CalibrationResult(
        n=len(confidence),
        **calibration_values(confidence, correct),
        bin_size=RMS_BIN_SIZE,
        ece_bins=ECE_BINS,
        confidence=f"max softmax ({SOFTMAX}, as the reference)",
        rms_ties="tied confidences share their mean accuracy (order-free); the reference-compatible "
        "value keeps the reference's sort order and skips its last bin",
    )
    if out.rms_calibration_error_reference_compatible is None:
        out.reference_compatible_note = (
            f"the reference-compatible RMS needs at least bin_size = {RMS_BIN_SIZE} samples (got "
            f"{len(confidence)}); the reference code fails there"
        )
    bins = metrics.reliability_bins(confidence, correct, n_bins=ECE_BINS)
    out.reliability = {k: np.asarray(v).tolist() for k, v in bins.items()}
    if ctx.calibration_extras:
        from robust_eval.calibration_extras import extended_block

        out.extra["extended"] = extended_block(ctx)
    return out


# ------------------------------------------------------------------------------------------------
# OOD detection
# ------------------------------------------------------------------------------------------------


def _curves(in_scores: np.ndarray, out_scores: np.ndarray) -> dict[str, Any]:
    """Histogram counts and a 101-point ROC (for plots only; the metrics come from robust_eval.metrics)."""
    from sklearn.metrics import roc_curve

    edges = np.linspace(-1.0, 0.0, HIST_BINS + 1)
    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    fpr, tpr, _ = roc_curve(y, np.r_[in_scores, out_scores])
    grid = np.linspace(0.0, 1.0, 101)
    return {
        "hist_edges": edges.tolist(),
        "hist_in": np.histogram(np.clip(in_scores, -1, 0), edges)[0].tolist(),
        "hist_out": np.histogram(np.clip(out_scores, -1, 0), edges)[0].tolist(),
        "roc_fpr": grid.tolist(),
        "roc_tpr": np.interp(grid, fpr, tpr).tolist(),
    }


def _scores(
    ctx: Context, source: rdata.ImageSource, description: str, mask: np.ndarray | None = None
) -> np.ndarray:
    from robust_eval.metrics import anomaly_scores

    out = np.empty(len(source))
    for start, logits in forward(ctx, source, description):
        arr = logits.numpy()
        out[start : start + len(arr)] = anomaly_scores(arr[:, mask] if mask is not None else arr)
    return out


def _ood_cell(ctx: Context, in_scores: np.ndarray, source: rdata.ImageSource, name: str) -> dict[str, Any]:
    from robust_eval.metrics import ood_metrics

    out_scores = _scores(ctx, source, f"ood {name}")
    values = {k: float(v) for k, v in ood_metrics(in_scores, out_scores).items()}
    return {"n": len(source), **values, **_curves(in_scores, out_scores)}


def _real_ood_sets(
    ctx: Context, in_scores: np.ndarray, n_ood: int, sources: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """AUROC / AUPR / FPR95 of every real OOD set present (``robust_eval.ood_data``; arrays -- SVHN,
    the other CIFAR, ``.npy`` -- are fed at their stored size, as the reference does), and the sets
    that could not be read, with why."""
    from robust_eval import data as ood_data

    found, _ = ood_data.find_ood_sets(ctx.data_dir, ctx.dataset)
    sets: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for entry in found:
        try:
            src = ood_data.ood_source(entry, ctx.size, ctx.workers)
        except rdata.DataLayoutError as exc:
            skipped[entry.name] = str(exc)
            continue
        src = src.sample(ctx.subset, ctx.seed)
        if len(src) > n_ood:
            rng = np.random.default_rng([ctx.seed, len(src)])
            src = src.subset(np.sort(rng.choice(len(src), n_ood, replace=False)))
        opts = ctx.options(
            n_ood=n_ood,
            seed=ctx.seed,
            path=str(entry.path),
            softmax=SOFTMAX,
            reader=entry.kind,
            inputs=fingerprint([entry.path]),
        )
        values, _ = ctx.cache.cell(
            "ood",
            f"real-{entry.name}",
            opts,
            lambda s=src, n=entry.name: (_ood_cell(ctx, in_scores, s, n), {}),
        )
        sets[entry.name] = {"kind": "real", "format": entry.kind, "path": str(entry.path), **values}
        if sources is not None:
            sources[entry.name] = src
    return sets, skipped


def _ood_result(ctx: Context) -> OODResult:
    """Anomaly detection with -max softmax (OOD = positive): AUROC, AUPR, FPR95 per OOD set against the
    clean test set. The sets of the published CIFAR protocol (Outlier Exposure): Gaussian, Rademacher
    and Blobs always, Textures, SVHN, Places365, LSUN and the other CIFAR when present in their
    published formats (``robust_eval.ood_data``), plus any other ``<data>/ood`` set; means over the
    sets present (listed). ImageNet-O (200-class masking) for ImageNet checkpoints."""
    from robust_eval.data import PROTOCOL_OOD_SETS, find_ood_sets

    cell = _clean_cell(ctx)
    in_scores = np.asarray(cell["scores"], dtype=np.float64)
    n_ood = max(1, len(in_scores) // 5)
    sets: dict[str, Any] = {}
    sources: dict[str, Any] = {}  # what the extra detectors (--ood-scores) score
    for name in rdata.SYNTHETIC_OOD:
        opts = ctx.options(n_ood=n_ood, seed=ctx.seed, size=ctx.size, softmax=SOFTMAX, blobs="3d")
        src = rdata.SyntheticSource(name, n_ood, ctx.size, seed=ctx.seed)
        values, _ = ctx.cache.cell(
            "ood", f"synthetic-{name}", opts, lambda s=src, n=name: (_ood_cell(ctx, in_scores, s, n), {})
        )
        sets[name] = {"kind": "synthetic", **values}
        sources[name] = src
    real, skipped = _real_ood_sets(ctx, in_scores, n_ood, sources)
    sets.update(real)
    _, missing = find_ood_sets(ctx.data_dir, ctx.dataset)
    means = {
        f"mean_{key}": float(np.mean([s[key] for s in sets.values()])) for key in ("auroc", "aupr", "fpr95")
    }
    out = OODResult(
        score="negative max softmax probability; OOD is the positive class",
        softmax=f"{SOFTMAX} (as the reference: confident predictions tie at exactly 1.0)",
        n_in_distribution=len(in_scores),
        n_ood_per_set=n_ood,
        selection="first --subset examples, then a seeded random choice of n_ood (sorted indices)",
        sets=sets,
        sets_present=list(sets),
        protocol_sets=list(PROTOCOL_OOD_SETS),
        protocol_sets_missing=missing,
        skipped_sets=skipped,
        mean_over=list(sets),
        **means,
        imagenet_o=_imagenet_o(ctx) if ctx.dataset == "imagenet" else None,
    )
    if tuple(ctx.ood_scores) != ("msp",):
        from robust_eval.ood_detectors import detector_block

        out.extra["detectors"] = detector_block(ctx, ctx.ood_scores, clean_source(ctx)[0], sources)
    return out


def _imagenet_mask(ctx: Context, folder: Path) -> tuple[np.ndarray, list[str]] | str:
    classes = _imagenet_classes(ctx)
    if classes is None:
        return f"needs the ImageNet wnid list: put the val set at '{ctx.data_dir / 'imagenet' / 'val'}'"
    subset = sorted(d.name for d in folder.iterdir() if d.is_dir())
    mask = np.isin(np.asarray(classes), subset)
    return mask, classes


def _imagenet_o(ctx: Context) -> dict[str, Any] | None:
    from robust_eval.metrics import ood_metrics

    folder = ctx.data_dir / "imagenet-o"
    if not folder.is_dir():
        return {"skipped": f"put ImageNet-O (<wnid>/*.jpg, 200 classes) at '{folder}'"}
    got = _imagenet_mask(ctx, folder)
    if isinstance(got, str):
        return {"skipped": got}
    mask, _ = got
    clean_src, _ = clean_source(ctx)
    assert clean_src.labels is not None
    keep = np.flatnonzero(mask[clean_src.labels])
    in_src = clean_src.subset(keep)
    out_src = rdata.FileSource(
        rdata.list_image_files(folder), None, ctx.size, ctx.crop_pct, ctx.interpolation, ctx.workers
    ).sample(ctx.subset, ctx.seed)

    def compute() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        ins = _scores(ctx, in_src, "imagenet-val (200)", mask)
        outs = _scores(ctx, out_src, "imagenet-o", mask)
        return {"n_in": len(ins), "n_out": len(outs), **ood_metrics(ins, outs), **_curves(ins, outs)}, {}

    values, _ = ctx.cache.cell("ood", "imagenet-o", ctx.options(softmax=SOFTMAX), compute)
    return {"masked_to_classes": int(mask.sum()), "headline": "aupr", **values}


def _imagenet_ar_result(ctx: Context) -> ImagenetARResult:
    """ImageNet-A / ImageNet-R top-1 error with logits masked to each set's 200 classes."""
    if ctx.dataset != "imagenet":
        raise SuiteSkipped(f"ImageNet-A/-R need an ImageNet checkpoint (this one is {ctx.dataset})")
    out: dict[str, Any] = {}
    for name in ("imagenet-a", "imagenet-r"):
        folder = ctx.data_dir / name
        if not folder.is_dir():
            out[name] = {"skipped": f"put {name} (<wnid>/*.jpg, 200 classes) at '{folder}'"}
            continue
        got = _imagenet_mask(ctx, folder)
        if isinstance(got, str):
            out[name] = {"skipped": got}
            continue
        mask, classes = got
        src = _tree_source(ctx, folder, classes, ctx.crop_pct)
        remap = np.cumsum(mask) - 1  # full class index -> index among the masked classes

        def compute(
            src: rdata.FileSource = src, mask: np.ndarray = mask, remap: np.ndarray = remap, name: str = name
        ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
            assert src.labels is not None
            counter = TopK()
            for start, logits in forward(ctx, src, name):
                counter.add(logits.numpy()[:, mask], remap[src.labels[start : start + len(logits)]])
            return {
                "n": len(src),
                "top1_error": counter.errors(len(src))[0],
                "masked_to_classes": int(mask.sum()),
            }, {}

        out[name], _ = ctx.cache.cell("imagenet_ar", name, ctx.options(), compute)
    if all("skipped" in v for v in out.values()):
        raise SuiteSkipped("; ".join(v["skipped"] for v in out.values()))
    return ImagenetARResult(sets=out)


@dataclass(frozen=True)
class Suite:
    """One suite of the safety benchmark: ``run(ctx)`` measures it and returns its typed result
    (:mod:`robust_eval.report.results`), or raises :class:`SuiteSkipped` when its data is absent."""

    #: Key of the suite under ``result["suites"]`` and its CLI command name.
    name: str
    measure: Callable[[Context], SuiteResult]
    #: The only data set ``robust-eval all`` runs the suite for (None: every data set).
    only_for: str | None = None

    def run(self, ctx: Context) -> SuiteResult:
        return self.measure(ctx)

    def applies(self, ctx: Context) -> bool:
        """Whether ``robust-eval all`` runs this suite for the checkpoint (else it is left out silently)."""
        return self.only_for is None or ctx.dataset == self.only_for


#: Suite name -> suite, in the order `robust-eval all` runs them.
SUITES: dict[str, Suite] = {
    s.name: s
    for s in (
        Suite("clean", _clean_result),
        Suite("corruptions", _corruptions_result),
        Suite("perturbations", _perturbations_result),
        Suite("adversarial", _adversarial_result),
        Suite("calibration", _calibration_result),
        Suite("ood", _ood_result),
        Suite("imagenet_ar", _imagenet_ar_result, only_for="imagenet"),  # ImageNet-A/-R: ImageNet only
    )
}


def _as_dict(name: str, doc: str | None) -> Callable[[Context], dict[str, Any]]:
    def runner(ctx: Context) -> dict[str, Any]:
        return SUITES[name].run(ctx).to_dict()

    runner.__name__ = runner.__qualname__ = f"run_{name}"
    runner.__doc__ = f"``SUITES[{name!r}].run(ctx).to_dict()``: the JSON block of the suite. {doc or ''}"
    return runner


run_clean = _as_dict("clean", _clean_result.__doc__)
run_corruptions = _as_dict("corruptions", _corruptions_result.__doc__)
run_perturbations = _as_dict("perturbations", _perturbations_result.__doc__)
run_adversarial = _as_dict("adversarial", _adversarial_result.__doc__)
run_calibration = _as_dict("calibration", _calibration_result.__doc__)
run_ood = _as_dict("ood", _ood_result.__doc__)
run_imagenet_ar = _as_dict("imagenet_ar", _imagenet_ar_result.__doc__)
