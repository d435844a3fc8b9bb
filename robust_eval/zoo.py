"""RobustBench's corruption model zoo from local files, and its leaderboard entry format.

``robust-eval all robustbench:NAME --model-dir DIR [--dataset D] [--threat-model corruptions]``
reads ``DIR/<dataset>/<threat_model>/<NAME>.pt`` (RobustBench's own layout; nothing is ever
downloaded) and builds the entry's network from :data:`ZOO`: architecture, constructor arguments,
input normalization (RobustBench entries take [0, 1] inputs and normalize inside the model, or not
at all) and how the file is unwrapped (``["last"]`` for Kireev2021, then ``["state_dict"]`` if
present, else the whole file; true prefix stripping of ``module.`` then ``model.``). Every network is
built by ``timm.create_model`` (the CIFAR ones are :mod:`timm_ext.models`, whose
``checkpoint_filter_fn`` maps RobustBench's names to theirs) except torchvision's AlexNet. Weights load strictly: every parameter of the network must be in the file and
nothing else may be (RobustBench's loader tolerates missing keys for ImageNet; this one does not).

Not supported: the Diffenderfer2021Winning entries (LRR ResNet / binary WidePreActResNet, four of
them 6-file ensembles) and every Linf / L2 entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from timm_ext.models import (
    CIFAR10_MEAN_STD,
    CIFAR100_MEAN_STD,
    PAPERS_MEAN_STD,
    checkpoint_filter,
    strip_prefixes,
)

__all__ = ["PREFIX", "THREAT_MODELS", "ZOO", "ZooEntry", "ZooError", "leaderboard_entry", "zoo_entry"]

PREFIX = "robustbench:"
THREAT_MODELS: tuple[str, ...] = ("corruptions", "Linf", "L2")
IMAGENET_MEAN_STD = (tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD))
PAPERS = (PAPERS_MEAN_STD, PAPERS_MEAN_STD)
#: RobustBench's ImageNet preprocessing "Res256Crop224": resize 256, center crop 224 (crop_pct 0.875).
IMAGENET_CROP_PCT = 224 / 256


class ZooError(ValueError):
    """An unknown entry, a missing file or a file that does not fit the entry's network."""


@dataclass(frozen=True)
class ZooEntry:
    """One RobustBench corruptions entry.

    ``build``: ``timm:<name>`` (a timm or :mod:`timm_ext.models` name) or ``torchvision:alexnet``;
    ``kwargs`` its constructor arguments. ``mean_std``: the normalization inside RobustBench's model
    (None: raw [0, 1] inputs) per data set; ``buffers``: the file keys that hold it when present
    (used instead of ``mean_std``; ``buffers_required``: they must be there, e.g. PRIME).
    ``container``: a key to descend into first. RobustBench's parameter names are mapped to the
    network's by its family's ``checkpoint_filter_fn``.
    """

    name: str
    datasets: tuple[str, ...]
    architecture: str
    build: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    mean_std: dict[str, tuple[tuple[float, ...], tuple[float, ...]] | None] = field(default_factory=dict)
    buffers: tuple[str, str] | None = None
    buffers_required: bool = False
    container: str | None = None
    size: int = 32
    crop_pct: float = 1.0
    interpolation: str = "bilinear"


def _entries() -> list[ZooEntry]:
    c10, c100, both = ("cifar10",), ("cifar100",), ("cifar10", "cifar100")
    none = {"cifar10": None, "cifar100": None}
    cifar = {"cifar10": CIFAR10_MEAN_STD, "cifar100": CIFAR100_MEAN_STD}
    papers = {"cifar10": PAPERS, "cifar100": PAPERS}
    out = [
        ZooEntry(
            "Hendrycks2020AugMix_WRN",
            both,
            "WideResNet-40-2",
            "timm:wrn40_2",
            mean_std=papers,
            buffers=("mu", "sigma"),
        ),
        ZooEntry(
            "Hendrycks2020AugMix_ResNeXt",
            both,
            "ResNeXt29_32x4d",
            "timm:resnext29_4x32d",
            mean_std=papers,
            buffers=("mu", "sigma"),
        ),
        ZooEntry("Standard", c10, "WideResNet-28-10", "timm:wrn28_10", mean_std=none),
        ZooEntry(
            "Addepalli2021Towards_WRN34",
            both,
            "WideResNet-34-10",
            "timm:wrn34_10",
            mean_std=none,
        ),
        ZooEntry(
            "Addepalli2022Efficient_WRN_34_10",
            both,
            "WideResNet-34-10",
            "timm:wrn34_10",
            mean_std=none,
        ),
        ZooEntry(
            "Addepalli2021Towards_PARN18",
            c100,
            "PreActResNet-18",
            "timm:preact_resnet18_cifar",
            mean_std=none,
        ),
        ZooEntry(
            "Modas2021PRIMEResNet18",
            both,
            "ResNet-18",
            "timm:resnet18_cifar",
            mean_std=none,
            buffers=("mu", "sigma"),
            buffers_required=True,
        ),
    ]
    for variant in ("Gauss50percent", "AugMixNoJSD", "RLAT", "RLATAugMixNoJSD", "RLATAugMix"):
        out.append(
            ZooEntry(
                f"Kireev2021Effectiveness_{variant}",
                c10,
                "PreActResNet-18",
                "timm:preact_resnet18_cifar",
                mean_std={"cifar10": CIFAR10_MEAN_STD},
                buffers=("mu", "sigma"),
                container="last",
            )
        )
    for name, ds in (
        ("Rebuffi2021Fixing_70_16_cutmix_extra_Linf", c10),
        ("Rebuffi2021Fixing_70_16_cutmix_extra_L2", c10),
        ("Gowal2020Uncovering_Linf", c100),
        ("Gowal2020Uncovering_extra_Linf", c100),
    ):
        out.append(ZooEntry(name, ds, "WideResNet-70-16", "timm:dm_wrn70_16", mean_std=cifar))
    imagenet = {"imagenet": IMAGENET_MEAN_STD}
    in_kw = {
        "mean_std": imagenet,
        "buffers": ("normalize.mean", "normalize.std"),
        "size": 224,
        "crop_pct": IMAGENET_CROP_PCT,
    }
    for name in (
        "Erichson2022NoisyMix",
        "Erichson2022NoisyMix_new",
        "Geirhos2018_SIN",
        "Geirhos2018_SIN_IN",
        "Geirhos2018_SIN_IN_IN",
        "Hendrycks2020Many",
        "Hendrycks2020AugMix",
        "Standard_R50",
    ):
        out.append(ZooEntry(name, ("imagenet",), "ResNet-50", "timm:resnet50", **in_kw))
    out += [
        ZooEntry("Salman2020Do_50_2_Linf", ("imagenet",), "WideResNet-50-2", "timm:wide_resnet50_2", **in_kw),
        ZooEntry("AlexNet", ("imagenet",), "AlexNet", "torchvision:alexnet", **in_kw),
        ZooEntry("Tian2022Deeper_DeiT-S", ("imagenet",), "DeiT-S", "timm:deit_small_patch16_224", **in_kw),
        ZooEntry("Tian2022Deeper_DeiT-B", ("imagenet",), "DeiT-B", "timm:deit_base_patch16_224", **in_kw),
    ]
    return out


#: (dataset, name) -> entry, for the corruptions threat model.
ZOO: dict[tuple[str, str], ZooEntry] = {(ds, e.name): e for e in _entries() for ds in e.datasets}


def supported_names(dataset: str | None = None) -> list[str]:
    """Entry names (of one data set, or all), sorted."""
    return sorted({name for ds, name in ZOO if dataset in (None, ds)})


def zoo_entry(
    name: str, dataset: str | None, threat_model: str, model_dir: Path | None
) -> tuple[ZooEntry, str, Path]:
    """Find the entry and its file: ``(entry, dataset, path)``.

    Raises:
        ZooError: unknown threat model / name / data set, no ``--model-dir``, or the file is absent.
    """
    if threat_model not in THREAT_MODELS:
        raise ZooError(f"--threat-model must be one of {', '.join(THREAT_MODELS)}, got {threat_model!r}")
    if threat_model != "corruptions":
        raise ZooError(f"only RobustBench's corruptions entries are supported, not {threat_model!r}")
    datasets = [ds for ds, n in ZOO if n == name]
    if not datasets:
        raise ZooError(
            f"unknown RobustBench corruptions entry {name!r}; supported: {', '.join(supported_names())}"
        )
    if model_dir is None:
        raise ZooError(
            f"{PREFIX}{name}: pass --model-dir DIR (RobustBench's layout DIR/<dataset>/{threat_model}/{name}.pt)"
        )
    if dataset is None:
        present = [ds for ds in datasets if (model_dir / ds / threat_model / f"{name}.pt").is_file()]
        if len(datasets) > 1 and len(present) != 1:
            raise ZooError(f"{name} exists for {', '.join(datasets)}: pass --dataset")
        dataset = present[0] if present else datasets[0]
    if dataset not in datasets:
        raise ZooError(
            f"{name} is an entry for {', '.join(datasets)}, not {dataset!r}; "
            f"{dataset} entries: {', '.join(supported_names(dataset)) or 'none'}"
        )
    path = model_dir / dataset / threat_model / f"{name}.pt"
    if not path.is_file():
        raise ZooError(f"put RobustBench's {name}.pt at '{path}' (nothing is downloaded)")
    return ZOO[(dataset, name)], dataset, path


def unwrap(
    entry: ZooEntry, raw: Any, dataset: str
) -> tuple[dict[str, torch.Tensor], tuple[Any, Any] | None, str]:
    """The network's state_dict (in its names), the normalization and where it came from (file
    buffers or entry)."""
    if entry.container is not None:
        if not isinstance(raw, Mapping) or entry.container not in raw:
            raise ZooError(f"{entry.name}: expected the weights under [{entry.container!r}] of the file")
        raw = raw[entry.container]
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        found = sorted(map(str, raw))[:6] if isinstance(raw, Mapping) else type(raw).__name__
        raise ZooError(f"{entry.name}: the file holds no state_dict of tensors (found {found})")
    sd = strip_prefixes(raw, ("module.", "model."))
    norm, source = entry.mean_std.get(dataset), f"RobustBench entry {entry.name}"
    if entry.buffers is not None and all(b in sd for b in entry.buffers):
        mean, std = (sd.pop(b).flatten().tolist() for b in entry.buffers)
        norm, source = (
            (tuple(mean), tuple(std)),
            f"RobustBench entry {entry.name}: {'/'.join(entry.buffers)} buffers of the file",
        )
    elif entry.buffers_required:
        raise ZooError(f"{entry.name}: the file lacks the normalization buffers {list(entry.buffers or ())}")
    kind, _, name = entry.build.partition(":")
    filter_fn = checkpoint_filter(name) if kind == "timm" else None
    return (filter_fn(sd, None) if filter_fn is not None else sd), norm, source


def build(entry: ZooEntry, num_classes: int) -> nn.Module:
    """The entry's network with random weights: ``timm.create_model`` (torchvision's for AlexNet, which
    timm does not have)."""
    kind, _, name = entry.build.partition(":")
    if kind == "torchvision":
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    import timm

    return timm.create_model(name, pretrained=False, num_classes=num_classes, **entry.kwargs)


def _percent(fraction: float) -> str:
    return f"{100.0 * fraction:.2f}"


def leaderboard_entry(result: Mapping[str, Any]) -> dict[str, Any]:
    """RobustBench's ``model_info/<dataset>/corruptions/<name>.json`` fields from a result document.

    ``clean_acc`` = 100 - clean top-1 error; ``corruptions_acc`` = 100 - the plain mean error over
    the 15 x 5 benchmark cells; for ImageNet ``corruptions_mce`` = mean over corruptions of the mean
    error over severities divided by AlexNet's (robust_eval.baselines), x100. Percentages are strings
    with two decimals, as RobustBench writes them; fields this run cannot know are empty.

    Raises:
        ZooError: the run has no complete -C benchmark or no clean error.
    """
    from robust_eval import metrics
    from robust_eval.baselines import ALEXNET_IMAGENET_C_ERRORS
    from robust_eval.constants import BENCHMARK_CORRUPTIONS

    suites = result.get("suites", {})
    corr = suites.get("corruptions") or {}
    c = corr.get("c") or {}
    errors = c.get("errors") or {}
    missing = [n for n in BENCHMARK_CORRUPTIONS if len(errors.get(n, {})) != 5]
    if missing:
        raise ZooError(f"--robustbench-json needs all 15 x 5 -C cells; this run lacks {missing[:3]}")
    clean = (suites.get("clean") or {}).get("top1_error", corr.get("clean_error"))
    if clean is None:
        raise ZooError(
            "--robustbench-json needs the clean error (run 'all' or 'corruptions' with the test set)"
        )
    ck = result.get("checkpoint", {})
    cells = {n: {int(s): float(v) for s, v in errors[n].items()} for n in BENCHMARK_CORRUPTIONS}
    entry: dict[str, Any] = {
        "link": "",
        "name": str(ck.get("zoo_entry") or ck.get("model", "")),
        "authors": "",
        "additional_data": None,
        "number_forward_passes": 1,
        "dataset": ck.get("dataset"),
        "venue": "",
        "architecture": str(ck.get("architecture") or ck.get("model", "")),
        "eps": None,
        "clean_acc": _percent(1.0 - float(clean)),
        "reported": "",
        "corruptions_acc": _percent(1.0 - metrics.mean_corruption_error(cells)),
    }
    if ck.get("dataset") == "imagenet":
        entry["corruptions_mce"] = f"{metrics.mce_normalized(cells, ALEXNET_IMAGENET_C_ERRORS):.2f}"
    return entry
