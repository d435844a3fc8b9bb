"""What every CIFAR family of :mod:`timm_ext.models` shares: timm's head and feature interface, the
reference initialization, the ``pretrained_cfg`` template, the builder and the key-renaming helpers
used by the families' ``checkpoint_filter_fn``.

No ``from __future__ import annotations`` in the model modules: ``torch.jit.script`` of an fx-traced
model reads the annotations as strings and fails (``Unknown type name '_torch_Tensor_'``).
"""

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import build_model_with_cfg
from timm.models._features import feature_take_indices
from torch import nn

__all__ = [
    "CIFAR10_MEAN_STD",
    "CIFAR100_MEAN_STD",
    "PAPERS_MEAN_STD",
    "CifarNet",
    "StateDict",
    "build_cifar",
    "cifar_cfg",
    "feature_info",
    "has_legacy_blocks",
    "init_weights",
    "rename_keys",
    "split_legacy_blocks",
    "strip_prefixes",
]

StateDict = dict[str, torch.Tensor]

#: The papers' CIFAR normalization (``transforms.Normalize([0.5] * 3, [0.5] * 3)``), in [0, 1] units.
PAPERS_MEAN_STD = (0.5, 0.5, 0.5)
#: RobustBench's CIFAR normalization constants (``dm_wide_resnet.py``, Kireev2021's buffers), [0, 1] units.
CIFAR10_MEAN_STD = ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616))
CIFAR100_MEAN_STD = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))


def cifar_cfg(
    first_conv: str,
    classifier: str,
    pool: int,
    mean_std: tuple[tuple[float, ...], tuple[float, ...]] = (PAPERS_MEAN_STD, PAPERS_MEAN_STD),
    **overrides: Any,
) -> dict[str, Any]:
    """A ``pretrained_cfg`` for a 32 x 32 CIFAR net with no released weights.

    Args:
        first_conv, classifier: module names of the stem convolution and the classifier.
        pool: side of the final feature map at 32 px (``pool_size``).
        mean_std: input normalization in [0, 1] units (default: the papers' 0.5 / 0.5).
        overrides: further ``pretrained_cfg`` fields.
    """
    cfg = {
        "url": "",
        "num_classes": 10,
        "input_size": (3, 32, 32),
        "pool_size": (pool, pool),
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": mean_std[0],
        "std": mean_std[1],
        "first_conv": first_conv,
        "classifier": classifier,
        "license": "mit",
    }
    cfg.update(overrides)
    return cfg


class CifarNet(nn.Module):
    """timm's classifier and feature interface shared by the CIFAR nets.

    Subclasses build their layers, call :meth:`_init_head`, set ``feature_info`` (one entry per level:
    the module whose output is that level's map) and implement ``forward_features`` and
    ``_feature_steps`` (the levels, in order, as callables whose composition is ``forward_features``).
    A classifier not named ``fc`` needs its own ``forward_head`` (TorchScript calls it by name).
    """

    # (no class-level annotations: TorchScript would read them as unknown string types)

    def _init_head(
        self, num_features: int, num_classes: int, head_drop_rate: float, global_pool: str, attr: str = "fc"
    ) -> None:
        self.num_features = self.head_hidden_size = num_features
        self.num_classes = num_classes
        self.head_drop_rate = float(head_drop_rate)
        self.global_pool = self._checked_pool(global_pool)
        self.head_attr = attr
        setattr(self, attr, nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity())

    @staticmethod
    def _checked_pool(global_pool: str) -> str:
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '' (no pooling), got {global_pool!r}")
        return global_pool

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - overridden
        raise NotImplementedError

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == "avg":
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if self.head_drop_rate > 0.0:
            x = F.dropout(x, p=self.head_drop_rate, training=self.training)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Global average pool, dropout, classifier (``pre_logits=True`` stops before the classifier)."""
        x = self._pool(x)
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return getattr(self, self.head_attr)

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the classifier with a fresh one for ``num_classes`` (0: identity, pooled features
        out); ``global_pool=''`` also removes the pooling (feature maps out)."""
        if global_pool is not None:
            self.global_pool = self._checked_pool(global_pool)
        self.num_classes = num_classes
        new = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        setattr(self, self.head_attr, new)

    def _feature_steps(self) -> list[Callable[[torch.Tensor], torch.Tensor]]:  # pragma: no cover
        raise NotImplementedError

    @torch.jit.ignore
    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """timm's feature API: the output of every ``feature_info`` level, in order.

        Args:
            x: input batch, NCHW.
            indices: None = all, int n = the last n, list = those indices (negative from the end).
            norm: accepted for timm compatibility; the last feature map always includes the final
                BN-activation of the pre-activation nets (it equals ``forward_features``).
            stop_early: stop after the last requested index (the returned final map is that one).
            output_fmt: only ``"NCHW"``.
            intermediates_only: return only the list of feature maps.

        Returns:
            ``[maps]`` or ``(final map, [maps])``.
        """
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        steps = self._feature_steps()
        take, max_index = feature_take_indices(len(steps), indices)
        last = max_index if (stop_early or intermediates_only) else len(steps) - 1
        intermediates: list[torch.Tensor] = []
        for i, step in enumerate(steps[: last + 1]):
            x = step(x)
            if i in take:
                intermediates.append(x)
        return intermediates if intermediates_only else (x, intermediates)


def init_weights(model: nn.Module) -> None:
    """The reference code's initialization: conv N(0, sqrt(2 / (k*k*out))), BN (1, 0), linear bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


def feature_info(chs: list[int], reductions: list[int], modules: list[str]) -> list[dict[str, Any]]:
    """timm's ``feature_info`` list: channels, reduction (input px per map px) and the module name."""
    return [{"num_chs": c, "reduction": r, "module": m} for c, r, m in zip(chs, reductions, modules)]


def build_cifar(
    name: str,
    cls: type[CifarNet],
    pretrained: bool,
    arch: dict[str, Any],
    kwargs: dict[str, Any],
    filter_fn: Callable[[StateDict, nn.Module | None], StateDict],
    levels: int,
) -> nn.Module:
    """``build_model_with_cfg`` with the architecture defaults (overridable by ``kwargs``).

    ``features_only=True`` defaults to timm's ``getter`` (over ``forward_intermediates``);
    ``feature_cls='hook'`` and ``'fx'`` (also as ``feature_cfg={'feature_cls': ...}``) give the same maps. ``pretrained=True`` needs a local file
    (``pretrained_cfg_overlay={'file': ...}``), converted by the family's ``filter_fn``.
    """
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    if pretrained and not any(overlay.get(k) for k in ("file", "url", "hf_hub_id", "state_dict")):
        raise ValueError(
            f"timm_ext model '{name}' has no pretrained weights (nothing to download); create it with "
            "pretrained=False and train it with `timm train`, or pass a local file: "
            "pretrained_cfg_overlay={'file': 'checkpoint.pth'} (a reference checkpoint works as is)"
        )
    kwargs.pop("drop_path_rate", None)  # timm's train.py passes it; these nets have no stochastic depth
    feature_cfg = {
        "feature_cls": "getter",
        "out_indices": tuple(range(levels)),
        **kwargs.pop("feature_cfg", {}),
    }
    return build_model_with_cfg(
        cls,
        name,
        pretrained,
        feature_cfg=feature_cfg,
        pretrained_filter_fn=filter_fn,
        **{**arch, **kwargs},
    )


# --------------------------------------------------------------------------- key renaming helpers
def strip_prefixes(state_dict: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]) -> StateDict:
    """Remove each of ``prefixes``, in order, from the start of every key (true prefix stripping:
    ``module.`` of DataParallel, ``model.`` of RobustBench's normalizing wrapper)."""
    out: StateDict = {}
    for key, value in state_dict.items():
        for prefix in prefixes:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def rename_keys(
    state_dict: Mapping[str, torch.Tensor],
    rules: list[tuple[str, str | Callable[[re.Match[str]], str]]],
    drop: tuple[str, ...] = (),
) -> StateDict:
    """Apply regular-expression ``(pattern, replacement)`` rules to every key (the first matching rule
    wins, ``re.sub`` once; a replacement may be a function of the match); keys starting with a
    ``drop`` prefix are left out."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: StateDict = {}
    for key, value in state_dict.items():
        if drop and key.startswith(drop):
            continue
        for pattern, replacement in compiled:
            if pattern.search(key):
                key = pattern.sub(replacement, key, count=1)
                break
        out[key] = value
    return out


def split_legacy_blocks(
    state_dict: Mapping[str, torch.Tensor],
    stages: int,
    stage_fmt: str,
    block_names: Mapping[str, str],
    top_names: Mapping[str, str],
    first: int = 1,
) -> StateDict:
    """This package's earlier layout -> the current one: one flat ``blocks.<j>`` sequence of ``stages``
    equal stages becomes ``stage_fmt.format(j // n + first).<j % n>``, with the block's module names
    mapped by ``block_names`` and the top-level prefixes (``conv1.``, ``bn.``, ``fc.``) by ``top_names``."""
    count = 1 + max(int(k.split(".")[1]) for k in state_dict if k.startswith("blocks."))
    n = count // stages
    out: StateDict = {}
    for key, value in state_dict.items():
        if key.startswith("blocks."):
            _, j, rest = key.split(".", 2)
            head, _, tail = rest.partition(".")
            stage = stage_fmt.format(int(j) // n + first)
            out[f"{stage}.{int(j) % n}.{block_names.get(head, head)}.{tail}"] = value
        else:
            prefix = next((p for p in top_names if key.startswith(p)), None)
            out[top_names[prefix] + key[len(prefix) :] if prefix else key] = value
    return out


def has_legacy_blocks(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for a state_dict of this package's earlier layout (a flat ``blocks.N`` sequence)."""
    return any(k.startswith("blocks.") for k in state_dict)
