"""RobustBench's corruption model zoo from local files, and its leaderboard entry format.

``robust-eval all robustbench:NAME --model-dir DIR [--dataset D] [--threat-model corruptions]``
reads ``DIR/<dataset>/<threat_model>/<NAME>.pt`` (RobustBench's own layout; nothing is ever
downloaded) and builds the entry's network from :data:`ZOO`: architecture, constructor arguments,
input normalization (RobustBench entries take [0, 1] inputs and normalize inside the model, or not
at all) and how the file is unwrapped (``["last"]`` for Kireev2021, then ``["state_dict"]`` if
present, else the whole file; true prefix stripping of ``module.`` then ``model.``; renames to our
parameter names). Weights load strictly: every parameter of the network must be in the file and
nothing else may be (RobustBench's loader tolerates missing keys for ImageNet; this one does not).

Not supported: the Diffenderfer2021Winning entries (LRR ResNet / binary WidePreActResNet, four of
them 6-file ensembles) and every Linf / L2 entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from timm_ext.models import PAPERS_MEAN_STD

__all__ = ["PREFIX", "THREAT_MODELS", "ZOO", "ZooEntry", "ZooError", "leaderboard_entry", "zoo_entry"]

PREFIX = "robustbench:"
THREAT_MODELS: tuple[str, ...] = ("corruptions", "Linf", "L2")
#: RobustBench's CIFAR normalization constants (``dm_wide_resnet.py``, Kireev2021's buffers).
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
CIFAR100_MEAN_STD = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
IMAGENET_MEAN_STD = (tuple(IMAGENET_DEFAULT_MEAN), tuple(IMAGENET_DEFAULT_STD))
PAPERS = (PAPERS_MEAN_STD, PAPERS_MEAN_STD)
#: RobustBench's ImageNet preprocessing "Res256Crop224": resize 256, center crop 224 (crop_pct 0.875).
IMAGENET_CROP_PCT = 224 / 256


class ZooError(ValueError):
    """An unknown entry, a missing file or a file that does not fit the entry's network."""


@dataclass(frozen=True)
class ZooEntry:
    """One RobustBench corruptions entry.

    ``build``: ``timm:<name>``, ``torchvision:<name>``, ``preact18`` or ``dmwrn``; ``kwargs`` its
    constructor arguments. ``mean_std``: the normalization inside RobustBench's model (None: raw
    [0, 1] inputs) per data set; ``buffers``: the file keys that hold it when present (used instead
    of ``mean_std``; ``buffers_required``: they must be there, e.g. PRIME). ``container``: a key to
    descend into first; ``rename``: maps a file key to ours; ``drop``: prefixes of modules the
    network has in RobustBench but never uses (``sub_block1``).
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
    rename: Callable[[str], str] | None = None
    drop: tuple[str, ...] = ()
    size: int = 32
    crop_pct: float = 1.0
    interpolation: str = "bilinear"


def _wrn_key(key: str) -> str:
    """RobustBench's WideResNet names the 1x1 shortcut ``convShortcut``; ours ``conv_shortcut``."""
    return key.replace(".convShortcut.", ".conv_shortcut.")


_PRIME_BLOCK = {"conv1": "residual_function.0", "bn1": "residual_function.1"}
_PRIME_BLOCK.update(conv2="residual_function.3", bn2="residual_function.4")


def _prime_key(key: str) -> str:
    """RobustBench's CIFAR ResNet-18 (``layer{1..4}``, ``linear``) -> IPMix's (``conv{2..5}_x``, ``fc``)."""
    if m := re.match(r"layer(\d)\.(\d+)\.(conv1|bn1|conv2|bn2)\.(.*)$", key):
        return f"conv{int(m[1]) + 1}_x.{m[2]}.{_PRIME_BLOCK[m[3]]}.{m[4]}"
    if m := re.match(r"layer(\d)\.(\d+)\.(shortcut\..*)$", key):
        return f"conv{int(m[1]) + 1}_x.{m[2]}.{m[3]}"
    for old, new in (("conv1.", "conv1.0."), ("bn1.", "conv1.1."), ("linear.", "fc.")):
        if key.startswith(old):
            return new + key[len(old) :]
    return key


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
            rename=_wrn_key,
        ),
        ZooEntry(
            "Hendrycks2020AugMix_ResNeXt",
            both,
            "ResNeXt29_32x4d",
            "timm:resnext29_4x32d",
            mean_std=papers,
            buffers=("mu", "sigma"),
        ),
        ZooEntry("Standard", c10, "WideResNet-28-10", "timm:wrn28_10", mean_std=none, rename=_wrn_key),
        ZooEntry(
            "Addepalli2021Towards_WRN34",
            both,
            "WideResNet-34-10",
            "timm:wrn34_10",
            mean_std=none,
            rename=_wrn_key,
            drop=("sub_block1.",),
        ),
        ZooEntry(
            "Addepalli2022Efficient_WRN_34_10",
            both,
            "WideResNet-34-10",
            "timm:wrn34_10",
            mean_std=none,
            rename=_wrn_key,
        ),
        ZooEntry("Addepalli2021Towards_PARN18", c100, "PreActResNet-18", "preact18", mean_std=none),
        ZooEntry(
            "Modas2021PRIMEResNet18",
            both,
            "ResNet-18",
            "timm:resnet18_cifar",
            mean_std=none,
            buffers=("mu", "sigma"),
            buffers_required=True,
            rename=_prime_key,
        ),
    ]
    for variant in ("Gauss50percent", "AugMixNoJSD", "RLAT", "RLATAugMixNoJSD", "RLATAugMix"):
        out.append(
            ZooEntry(
                f"Kireev2021Effectiveness_{variant}",
                c10,
                "PreActResNet-18",
                "preact18",
                mean_std={"cifar10": CIFAR10_MEAN_STD},
                buffers=("mu", "sigma"),
                container="last",
            )
        )
    dm = {"depth": 70, "width": 16, "activation": "swish"}
    for name, ds in (
        ("Rebuffi2021Fixing_70_16_cutmix_extra_Linf", c10),
        ("Rebuffi2021Fixing_70_16_cutmix_extra_L2", c10),
        ("Gowal2020Uncovering_Linf", c100),
        ("Gowal2020Uncovering_extra_Linf", c100),
    ):
        out.append(ZooEntry(name, ds, "WideResNet-70-16", "dmwrn", dm, mean_std=cifar))
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


def _strip(key: str, prefix: str) -> str:
    return key[len(prefix) :] if key.startswith(prefix) else key


def unwrap(
    entry: ZooEntry, raw: Any, dataset: str
) -> tuple[dict[str, torch.Tensor], tuple[Any, Any] | None, str]:
    """The network's state_dict, the normalization and where it came from (file buffers or entry)."""
    if entry.container is not None:
        if not isinstance(raw, Mapping) or entry.container not in raw:
            raise ZooError(f"{entry.name}: expected the weights under [{entry.container!r}] of the file")
        raw = raw[entry.container]
    if isinstance(raw, Mapping) and isinstance(raw.get("state_dict"), Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        found = sorted(map(str, raw))[:6] if isinstance(raw, Mapping) else type(raw).__name__
        raise ZooError(f"{entry.name}: the file holds no state_dict of tensors (found {found})")
    sd: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        key = _strip(_strip(key, "module."), "model.")
        if not any(key.startswith(p) for p in entry.drop):
            sd[entry.rename(key) if entry.rename else key] = value
    norm, source = entry.mean_std.get(dataset), f"RobustBench entry {entry.name}"
    if entry.buffers is not None and all(b in sd for b in entry.buffers):
        mean, std = (sd.pop(b).flatten().tolist() for b in entry.buffers)
        norm, source = (
            (tuple(mean), tuple(std)),
            f"RobustBench entry {entry.name}: {'/'.join(entry.buffers)} buffers of the file",
        )
    elif entry.buffers_required:
        raise ZooError(f"{entry.name}: the file lacks the normalization buffers {list(entry.buffers or ())}")
    return sd, norm, source


def build(entry: ZooEntry, num_classes: int) -> nn.Module:
    """The entry's network with random weights."""
    kind, _, name = entry.build.partition(":")
    if kind == "timm":
        import timm

        import timm_ext.models  # noqa: F401 - registers the CIFAR nets

        return timm.create_model(name, pretrained=False, num_classes=num_classes, **entry.kwargs)
    if kind == "torchvision":
        import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
    from robust_eval import zoo_models

    if kind == "preact18":
        return zoo_models.PreActResNet18(num_classes=num_classes, bn_before_fc=True)
    return zoo_models.DMWideResNet(num_classes=num_classes, **entry.kwargs)


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
