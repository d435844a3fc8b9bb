"""Settings of ``timm train``: the :class:`TrainConfig` dataclass, its type coercion and config files.

Every option is a field of :class:`TrainConfig`; the CLI (``timm_ext.cli``) exposes each field as a
flag named like timm's ``train.py`` where the concept exists, and ``--config FILE.yaml`` sets any of
them from a file (keys are the field names, ``-`` or ``_``; flags given on the command line win).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from robust_mix.cli import MAX_CLASSES, MAX_SIDE, Range
from robust_mix.errors import RobustMixError

__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "DEFAULT_AA",
    "DIST_BACKENDS",
    "INTERPOLATIONS",
    "RESUME_KIND",
    "SCHEDULERS",
    "VIEW_AUGS",
    "Range",
    "TrainConfig",
    "TrainError",
    "TrainInterrupted",
    "config_from_dict",
    "field_kind",
    "load_config_file",
]

#: ``--aug`` choices.
AUGMENTATIONS: tuple[str, ...] = (
    "none",
    "ipmix",
    "pixmix",
    "augmix",
    "randaugment",
    "mixup",
    "cutmix",
    "cutout",
    "adautomix",
    "automix",
)
#: ``--dataset`` choices.
DATASETS: tuple[str, ...] = ("cifar10", "cifar100", "imagefolder")
#: ``--sched`` choices (timm schedulers that need no validation metric).
SCHEDULERS: tuple[str, ...] = ("cosine", "step", "multistep", "tanh", "poly", "constant")
#: ``--interpolation`` choices (names both timm and torchvision resize with).
INTERPOLATIONS: tuple[str, ...] = ("nearest", "bilinear", "bicubic", "box", "hamming", "lanczos")
#: ``--dist-backend`` choices.
DIST_BACKENDS: tuple[str, ...] = ("nccl", "gloo", "mpi")
#: Augmentations applied as timm's auto-augment stage (they produce the views of ``--aug-splits``).
VIEW_AUGS: tuple[str, ...] = ("ipmix", "pixmix", "augmix", "randaugment")
#: Training methods that mix images inside the batch (their targets are soft: no train accuracy).
BATCH_MIX_AUGS: tuple[str, ...] = ("mixup", "cutmix", "adautomix", "automix")
#: Default config string per ``--aug`` (override with ``--aa``).
DEFAULT_AA: dict[str, str] = {
    "ipmix": "ipmix-w3-d3-b3-s3",
    "pixmix": "pixmix-k4-b3-s3",
    "augmix": "augmix-m3-w3",
    "randaugment": "rand-m9-mstd0.5-inc1",
}
AA_PREFIX: dict[str, str] = {"ipmix": "ipmix", "pixmix": "pixmix", "augmix": "augmix", "randaugment": "rand"}
RESUME_KIND = "timm_ext.train.resume"
RESUME_FORMAT_VERSION = 3  # 3: per-rank random states
RUN_FILES: tuple[str, ...] = (
    "last.pth",
    "final.pth",
    "best.pth",
    "metrics.csv",
    "summary.csv",
    "args.yaml",
    "recovery.pth",
)


class TrainError(ValueError, RobustMixError):
    """Bad user input (flags, config file, data folder): reported as one line, exit code 2."""


class TrainInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run. ``out_dir``: the run folder; ``saved``: whether it holds a ``last.pth`` to
    resume from (else the folder holds no run and the same command starts over)."""

    def __init__(self, out_dir: Path, saved: bool) -> None:
        super().__init__(str(out_dir))
        self.out_dir, self.saved = out_dir, saved


def default_workers(preferred: int = 4) -> int:
    """``--workers`` default: ``preferred``, or the CPU cores this process may use when fewer (>= 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(preferred, cores))


def _opt(
    help: str,
    *flags: str,
    range: Range | None = None,
    choices: tuple[Any, ...] | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """Field metadata: help text, flags, and the declared constraint (numeric range, choices, or the
    kind of path: ``file``, ``dir``, ``file-or-dir`` (must exist) or ``new-dir`` (a folder to create))."""
    return {"help": help, "flags": flags, "range": range, "choices": choices, "path": path}


@dataclass
class TrainConfig:
    """Every setting of ``timm train`` (field name = config-file key = flag name with ``-``)."""

    # data
    data_dir: str | None = field(
        default=None,
        metadata=_opt(
            "Data folder: for cifar10/cifar100 the folder holding the extracted python archive "
            "(cifar-10-batches-py / cifar-100-python); for imagefolder a folder with train/ and "
            "optionally val/ class sub-folders (or the class folders directly).",
            "--data-dir",
            path="dir",
        ),
    )
    dataset: str = field(
        default="cifar10", metadata=_opt("cifar10 | cifar100 | imagefolder.", "--dataset", choices=DATASETS)
    )
    num_classes: int | None = field(
        default=None,
        metadata=_opt(
            "Classifier outputs (default: from the data set).", "--num-classes", range=Range(1, MAX_CLASSES)
        ),
    )
    img_size: int | None = field(
        default=None,
        metadata=_opt(
            "Training/eval image side in px (default: the data's own for cifar10/cifar100, 32; the model's "
            "for imagefolder).",
            "--img-size",
            range=Range(8, MAX_SIDE),
        ),
    )
    # model
    model: str = field(
        default="wrn40_4",
        metadata=_opt("timm model name (wrn40_4, resnet50, vit_small_patch16_224, ...).", "--model"),
    )
    pretrained: bool = field(
        default=False,
        metadata=_opt(
            "Start from timm's pretrained weights, read from the local cache only (nothing is downloaded "
            "during a run: fetch them once beforehand, or use --pretrained-file).",
            "--pretrained",
        ),
    )
    pretrained_file: str | None = field(
        default=None,
        metadata=_opt(
            "Start from the weights in this local file (.pth/.safetensors; loaded by timm with "
            "weights_only=True; the classifier is re-initialized for fine-tuning, as with --pretrained).",
            "--pretrained-file",
            path="file",
        ),
    )
    drop: float = field(
        default=0.0,
        metadata=_opt(
            "Dropout rate (WRN: inside blocks; 0.3 in the paper).",
            "--drop",
            range=Range(0.0, 1.0, high_open=True),
        ),
    )
    drop_path: float | None = field(
        default=None,
        metadata=_opt(
            "Stochastic depth rate (timm's --drop-path; models that take drop_path_rate).",
            "--drop-path",
            range=Range(0.0, 1.0, high_open=True),
        ),
    )
    channels_last: bool = field(
        default=False,
        metadata=_opt(
            "Model and batches in channels-last memory format (timm's --channels-last).", "--channels-last"
        ),
    )
    torchcompile: bool = field(
        default=False,
        metadata=_opt(
            "torch.compile the training network (timm's --torchcompile; the backend is --torchcompile-backend).",
            "--torchcompile",
        ),
    )
    torchcompile_backend: str = field(
        default="inductor",
        metadata=_opt(
            "torch.compile backend: inductor | cudagraphs | aot_eager | eager.",
            "--torchcompile-backend",
            choices=("inductor", "cudagraphs", "aot_eager", "eager"),
        ),
    )
    torchcompile_mode: str | None = field(
        default=None,
        metadata=_opt(
            "torch.compile mode (timm's --torchcompile-mode).",
            "--torchcompile-mode",
            choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
        ),
    )
    split_bn: bool = field(
        default=False,
        metadata=_opt(
            "One BatchNorm per --aug-splits view (timm's --split-bn: SplitBatchNorm2d; the clean view's is "
            "the one saved in best.pth / final.pth).",
            "--split-bn",
        ),
    )
    sync_bn: bool = field(
        default=False,
        metadata=_opt(
            "SyncBatchNorm across processes under torchrun (timm's --sync-bn; CUDA only).", "--sync-bn"
        ),
    )
    dist_bn: str = field(
        default="reduce",
        metadata=_opt(
            "BatchNorm statistics after each epoch under torchrun: reduce (average over ranks) | broadcast "
            "(rank 0's) | none or '' (each rank its own) (timm's --dist-bn).",
            "--dist-bn",
            choices=("reduce", "broadcast", "none", ""),
        ),
    )
    # augmentation
    aug: str = field(
        default="none",
        metadata=_opt(
            "none | ipmix | pixmix | augmix | randaugment | mixup | cutmix | cutout | adautomix | automix.",
            "--aug",
            choices=AUGMENTATIONS,
        ),
    )
    aa: str | None = field(
        default=None,
        metadata=_opt(
            "Config string for the --aug method in timm's grammar (default ipmix-w3-d3-b3-s3, pixmix-k4-b3-s3, "
            "augmix-m3-w3, rand-m9-mstd0.5-inc1).",
            "--aa",
        ),
    )
    fractals: str | None = field(
        default=None,
        metadata=_opt(
            "Folder of mixing pictures for ipmix/pixmix (default: $TIMM_EXT_FRACTALS, else procedural).",
            "--fractals",
            path="dir",
        ),
    )
    mix_device: str = field(
        default="workers",
        metadata=_opt(
            "Where ipmix/pixmix/augmix run: workers (per image in the loader workers) | auto (batched on the "
            "training device) | cpu | cuda | cuda:N (batched there; workers only decode, crop and flip).",
            "--mix-device",
        ),
    )
    jsd: bool = field(
        default=False,
        metadata=_opt(
            "Jensen-Shannon consistency loss over the clean + augmented views.", "--jsd", "--jsd-loss"
        ),
    )
    aug_splits: int = field(
        default=0,
        metadata=_opt(
            "Views per image (clean + augmented); 3 when --jsd and unset.", "--aug-splits", range=Range(0, 64)
        ),
    )
    jsd_alpha: float = field(
        default=12.0, metadata=_opt("Weight of the JSD term.", "--jsd-alpha", range=Range(0.0, 1e4))
    )
    smoothing: float = field(
        default=0.0, metadata=_opt("Label smoothing.", "--smoothing", range=Range(0.0, 1.0, high_open=True))
    )
    mixup: float | None = field(
        default=None,
        metadata=_opt(
            "MixUp alpha (timm's --mixup). Default 1.0 with --aug mixup; with --aug cutmix, a value turns MixUp "
            "on beside CutMix (--mixup-switch-prob picks one per batch).",
            "--mixup",
            range=Range(0.0, 1e3),
        ),
    )
    cutmix: float | None = field(
        default=None,
        metadata=_opt(
            "CutMix alpha (timm's --cutmix). Default 1.0 with --aug cutmix; with --aug mixup, a value turns "
            "CutMix on beside MixUp.",
            "--cutmix",
            range=Range(0.0, 1e3),
        ),
    )
    mixup_prob: float = field(
        default=1.0,
        metadata=_opt(
            "Probability of mixing a batch (timm's --mixup-prob).", "--mixup-prob", range=Range(0.0, 1.0)
        ),
    )
    mixup_switch_prob: float = field(
        default=0.5,
        metadata=_opt(
            "Probability of CutMix instead of MixUp when both are on (timm's --mixup-switch-prob).",
            "--mixup-switch-prob",
            range=Range(0.0, 1.0),
        ),
    )
    mixup_mode: str = field(
        default="batch",
        metadata=_opt(
            "batch | pair | elem: one draw per batch, pair of samples or sample (timm's --mixup-mode).",
            "--mixup-mode",
            choices=("batch", "pair", "elem"),
        ),
    )
    mixup_off_epoch: int = field(
        default=0,
        metadata=_opt(
            "Stop mixing from this epoch on (1-based count of epochs done; 0 = never; timm's --mixup-off-epoch).",
            "--mixup-off-epoch",
            range=Range(0, 100_000),
        ),
    )
    reprob: float = field(
        default=0.0,
        metadata=_opt(
            "Random erasing probability per image (timm's --reprob; every view, as timm without --resplit).",
            "--reprob",
            range=Range(0.0, 1.0),
        ),
    )
    remode: str = field(
        default="pixel",
        metadata=_opt(
            "Random erasing fill: const (zeros) | rand (one normal colour) | pixel (normal noise per pixel).",
            "--remode",
            choices=("const", "rand", "pixel"),
        ),
    )
    recount: int = field(
        default=1,
        metadata=_opt(
            "Most random-erasing boxes per image (timm's --recount).", "--recount", range=Range(1, 100)
        ),
    )
    cutout_size: int | None = field(
        default=None,
        metadata=_opt(
            "Cutout square side in px (default: half the image side).",
            "--cutout-size",
            range=Range(1, MAX_SIDE),
        ),
    )
    hflip: float = field(
        default=0.5, metadata=_opt("Horizontal flip probability.", "--hflip", range=Range(0.0, 1.0))
    )
    crop_pad: int = field(
        default=4, metadata=_opt("CIFAR random-crop padding in px.", "--crop-pad", range=Range(0, MAX_SIDE))
    )
    interpolation: str | None = field(
        default=None,
        metadata=_opt(
            "Resize interpolation (default: the model's).", "--interpolation", choices=INTERPOLATIONS
        ),
    )
    # optimization
    epochs: int = field(default=100, metadata=_opt("Training epochs.", "--epochs", range=Range(1, 100_000)))
    batch_size: int = field(
        default=128,
        metadata=_opt(
            "Images per batch and process (before --aug-splits).",
            "-b",
            "--batch-size",
            range=Range(1, 65_536),
        ),
    )
    lr: float = field(
        default=0.1, metadata=_opt("Base learning rate.", "--lr", range=Range(0.0, 1e3, low_open=True))
    )
    min_lr: float = field(
        default=1e-6,
        metadata=_opt("Lowest learning rate of the schedule.", "--min-lr", range=Range(0.0, 1e3)),
    )
    opt: str = field(
        default="sgd",
        metadata=_opt("timm optimizer name (sgd = SGD with Nesterov momentum, adamw, ...).", "--opt"),
    )
    momentum: float = field(
        default=0.9, metadata=_opt("Optimizer momentum.", "--momentum", range=Range(0.0, 1.0, high_open=True))
    )
    weight_decay: float = field(
        default=5e-4, metadata=_opt("Weight decay.", "--weight-decay", range=Range(0.0, 1e3))
    )
    sched: str = field(
        default="cosine",
        metadata=_opt(
            "Schedule: cosine | step | multistep | tanh | poly | constant.", "--sched", choices=SCHEDULERS
        ),
    )
    sched_on_updates: bool = field(
        default=True,
        metadata=_opt("Step the schedule every update (else every epoch).", "--sched-on-updates"),
    )
    warmup_epochs: int = field(
        default=0, metadata=_opt("Linear warm-up epochs.", "--warmup-epochs", range=Range(0, 100_000))
    )
    warmup_lr: float = field(
        default=1e-5, metadata=_opt("Warm-up start learning rate.", "--warmup-lr", range=Range(0.0, 1e3))
    )
    decay_epochs: float = field(
        default=30.0,
        metadata=_opt(
            "Epochs between decays (step schedule).",
            "--decay-epochs",
            range=Range(0.0, 100_000, low_open=True),
        ),
    )
    decay_rate: float = field(
        default=0.1,
        metadata=_opt("Decay factor (step/multistep).", "--decay-rate", range=Range(0.0, 1.0, low_open=True)),
    )
    grad_accum_steps: int = field(
        default=1,
        metadata=_opt(
            "Batches whose gradients add up to one optimizer update (timm's --grad-accum-steps).",
            "--grad-accum-steps",
            range=Range(1, 10_000),
        ),
    )
    clip_grad: float | None = field(
        default=None,
        metadata=_opt(
            "Clip the gradient norm to this value.", "--clip-grad", range=Range(0.0, 1e6, low_open=True)
        ),
    )
    # precision, EMA
    amp: bool = field(
        default=False,
        metadata=_opt("Mixed precision (float16 + loss scaling on GPU, bfloat16 on CPU).", "--amp"),
    )
    amp_dtype: str = field(
        default="float16",
        metadata=_opt("float16 | bfloat16 (GPU).", "--amp-dtype", choices=("float16", "bfloat16")),
    )
    model_ema: bool = field(
        default=False, metadata=_opt("Keep an exponential moving average of the weights.", "--model-ema")
    )
    model_ema_decay: float = field(
        default=0.9998,
        metadata=_opt("EMA decay per update.", "--model-ema-decay", range=Range(0.0, 1.0, high_open=True)),
    )
    model_ema_warmup: bool = field(
        default=False,
        metadata=_opt(
            "Warm the EMA decay up over the first updates (timm's --model-ema-warmup).", "--model-ema-warmup"
        ),
    )
    # checkpoints and logs
    eval_metric: str = field(
        default="top1",
        metadata=_opt(
            "Validation metric that picks best.pth and --checkpoint-hist: top1 | top5 (higher is better) | loss.",
            "--eval-metric",
            choices=("top1", "top5", "loss"),
        ),
    )
    checkpoint_hist: int = field(
        default=0,
        metadata=_opt(
            "Keep the N best epochs by --eval-metric as checkpoint-<epoch>.pth (timm's --checkpoint-hist; "
            "timm's default is 10, here 0: best.pth is the best one).",
            "--checkpoint-hist",
            range=Range(0, 1_000),
        ),
    )
    recovery_interval: int = field(
        default=0,
        metadata=_opt(
            "Write recovery.pth every N updates within an epoch (timm's --recovery-interval; 0 = off); "
            "--resume recovery.pth continues after its last update (not bitwise: last.pth at epoch ends is).",
            "--recovery-interval",
            range=Range(0, 10**9),
        ),
    )
    log_wandb: bool = field(
        default=False,
        metadata=_opt(
            "Log epoch rows to Weights & Biases (needs wandb installed; timm's --log-wandb).", "--log-wandb"
        ),
    )
    log_tensorboard: bool = field(
        default=False,
        metadata=_opt(
            "Log epoch rows to TensorBoard under <output>/tensorboard (needs tensorboard installed).",
            "--log-tensorboard",
        ),
    )
    # system
    workers: int = field(
        default_factory=lambda: default_workers(),
        metadata=_opt(
            "DataLoader worker processes per training process (default: 4, or the CPU cores this process may "
            "use when fewer).",
            "-j",
            "--workers",
            range=Range(0, 1024),
        ),
    )
    seed: int = field(
        default=42,
        metadata=_opt("Random seed (each process adds its rank).", "--seed", range=Range(0, 2**32 - 1)),
    )
    device: str = field(default="auto", metadata=_opt("auto | cpu | cuda | cuda:N.", "--device"))
    dist_backend: str | None = field(
        default=None,
        metadata=_opt(
            "torch.distributed backend (default nccl on GPU, gloo on CPU).",
            "--dist-backend",
            choices=DIST_BACKENDS,
        ),
    )
    output: str | None = field(
        default=None,
        metadata=_opt(
            "Run folder for checkpoints, metrics.csv and args.yaml (default: the --resume folder, else "
            "output/train).",
            "--output",
            path="new-dir",
        ),
    )
    resume: str | None = field(
        default=None,
        metadata=_opt(
            "Continue from a last.pth (or the run folder holding it).", "--resume", path="file-or-dir"
        ),
    )
    log_interval: int = field(
        default=50,
        metadata=_opt("Refresh the progress bar every N batches.", "--log-interval", range=Range(1, 10**9)),
    )
    progress: bool = field(default=True, metadata=_opt("Show rich progress bars.", "--progress"))

    # AdAutoMix / AutoMix (--aug adautomix | automix); defaults: the CIFAR-100 ResNet-18 setting
    adautomix_sources: int = field(
        default=3, metadata=_opt("Images mixed per sample N (2 or 3).", "--adautomix-sources", choices=(2, 3))
    )
    adautomix_random_sources: bool = field(
        default=False,
        metadata=_opt(
            "Draw N uniformly from 2..--adautomix-sources every step.", "--adautomix-random-sources"
        ),
    )
    adautomix_alpha: float = field(
        default=1.0,
        metadata=_opt(
            "Beta(alpha, alpha) of the mixing ratios (> 0).",
            "--adautomix-alpha",
            range=Range(0.0, 1e3, low_open=True),
        ),
    )
    adautomix_beta: float = field(
        default=0.3,
        metadata=_opt(
            "Adversarial weight beta in [0, 1]: L_g = -beta mixCE + (1 - beta) cos on adversarial steps.",
            "--adautomix-beta",
            range=Range(0.0, 1.0),
        ),
    )
    adautomix_cos_sign: float = field(
        default=1.0,
        metadata=_opt(
            "Sign of the cosine term (+1 = the official code; -1 only for ablations).",
            "--adautomix-cos-sign",
            choices=(1.0, -1.0),
        ),
    )
    adautomix_margin: float = field(
        default=0.03,
        metadata=_opt(
            "lam_margin in [0, 0.5): the classifier sees plain mixup when lambda_0 <= m or > 1 - m.",
            "--adautomix-margin",
            range=Range(0.0, 0.5, high_open=True),
        ),
    )
    adautomix_mix_weight: float = field(
        default=0.5,
        metadata=_opt(
            "r in [0, 1]: weight of the plain-mixup term of the classifier loss (N = 3).",
            "--adautomix-mix-weight",
            range=Range(0.0, 1.0),
        ),
    )
    adautomix_lam_concat: bool = field(
        default=False,
        metadata=_opt(
            "Feed each source's lambda to the generator as an extra channel.", "--adautomix-lam-concat"
        ),
    )
    adautomix_gen_norm: bool = field(
        default=False,
        metadata=_opt(
            "BatchNorm in the generator's query/key projections (ResNet-50 ImageNet).", "--adautomix-gen-norm"
        ),
    )
    adautomix_gen_lr: float | None = field(
        default=None,
        metadata=_opt(
            "Generator learning rate (default: --lr).",
            "--adautomix-gen-lr",
            range=Range(0.0, 1e3, low_open=True),
        ),
    )
    adautomix_gen_min_lr: float | None = field(
        default=None,
        metadata=_opt(
            "Generator's lowest learning rate (default: --min-lr).",
            "--adautomix-gen-min-lr",
            range=Range(0.0, 1e3),
        ),
    )
    adautomix_momentum: float = field(
        default=0.999,
        metadata=_opt(
            "EMA teacher momentum before and at the start of its cosine ramp.",
            "--adautomix-momentum",
            range=Range(0.0, 1.0),
        ),
    )
    adautomix_momentum_end: float = field(
        default=1.0 - 1e-6,
        metadata=_opt(
            "EMA teacher momentum at the end of training (1 - 1e-6 CIFAR/Tiny, 1 - 1e-5 ImageNet).",
            "--adautomix-momentum-end",
            range=Range(0.0, 1.0),
        ),
    )
    adautomix_momentum_start: float = field(
        default=0.1,
        metadata=_opt(
            "Fraction of training before the momentum's cosine ramp starts (0.25 Swin/DeiT).",
            "--adautomix-momentum-start",
            range=Range(0.0, 1.0),
        ),
    )
    adautomix_feature_index: int | None = field(
        default=None,
        metadata=_opt(
            "forward_intermediates index of the feature tap (default: the second-to-last stage; ViT: block "
            "depth // 2 - 1).",
            "--adautomix-feature-index",
            range=Range(-1000, 1000),
        ),
    )
    adautomix_upsample: str = field(
        default="auto",
        metadata=_opt(
            "Mask upsampling: auto (bilinear for CNNs, nearest for ViTs) | bilinear | nearest.",
            "--adautomix-upsample",
            choices=("auto", "bilinear", "nearest"),
        ),
    )
    adautomix_reuse_clean: bool = field(
        default=False,
        metadata=_opt(
            "Take the sources' teacher logits from the teacher's clean pass (3 fewer forwards; the teacher's "
            "BatchNorm statistics then see fewer updates).",
            "--adautomix-reuse-clean",
        ),
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (what ``args.yaml`` and the checkpoints' ``train_args`` hold)."""
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(TrainConfig)}


def field_kind(name: str) -> tuple[type, bool]:
    """(base type, optional) of a config field, from its annotation string."""
    annotation = str(_FIELDS[name].type)
    optional = "None" in annotation
    base = annotation.replace("| None", "").strip()
    return {"str": str, "int": int, "float": float, "bool": bool}[base], optional


def _coerce(name: str, value: Any, where: str) -> Any:
    kind, optional = field_kind(name)
    if value is None:
        if optional:
            return None
        raise TrainError(f"{where}: '{name}' cannot be empty; expected a {kind.__name__}")
    if kind is bool:
        if isinstance(value, bool):
            return value
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise TrainError(f"{where}: '{name}' must be a {kind.__name__}, got {value!r}")


def config_from_dict(values: dict[str, Any], where: str = "config") -> TrainConfig:
    """A :class:`TrainConfig` from a dict of field names (``-`` or ``_``), type-checked.

    Raises:
        TrainError: an unknown key (with the valid ones) or a value of the wrong type.
    """
    clean: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in _FIELDS:
            raise TrainError(f"{where}: unknown setting '{raw_key}'; valid settings: {', '.join(_FIELDS)}")
        clean[key] = _coerce(key, value, where)
    return TrainConfig(**clean)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Settings from a YAML file (a mapping of field names to values), checked like the CLI's.

    Raises:
        TrainError: missing file, invalid YAML, not a mapping, unknown key or wrong type.
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainError(f"config file '{path}' does not exist; pass a YAML file of settings (see configs/)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TrainError(f"config file '{path}' is not valid YAML: {first}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise TrainError(f"config file '{path}' must hold a mapping of settings, got {type(data).__name__}")
    config_from_dict(data, where=f"config file '{path}'")  # validates keys and types
    return {str(k).replace("-", "_"): v for k, v in data.items()}
