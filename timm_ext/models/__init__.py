"""CIFAR architectures registered with timm, one module per family, each in the layout of the
checkpoints it has to read, with a ``checkpoint_filter_fn`` for every foreign layout.

==========================  ===============================================================  ====================
family (module)             timm names                                                       foreign layouts read
==========================  ===============================================================  ====================
:mod:`.wide_resnet`         ``wrn40_2``, ``wrn40_4``, ``wrn28_10``, ``wrn34_10``, ``wrn_cifar``  cifar.py, RobustBench, earlier timm_ext
:mod:`.resnext`             ``resnext29_4x32d`` (alias ``resnext29_32x4d``)                  cifar.py, RobustBench, earlier timm_ext
:mod:`.densenet`            ``densenet40_k12``                                               cifar.py
:mod:`.resnet`              ``resnet18_cifar``                                               cifar.py, RobustBench (PRIME), earlier timm_ext
:mod:`.preact_resnet`       ``preact_resnet18_cifar``                                        RobustBench
:mod:`.dm_wide_resnet`      ``dm_wrn70_16``                                                  RobustBench
==========================  ===============================================================  ====================

The first four are the AugMix / PixMix / IPMix reference nets, with exactly the parameter names and
shapes of the reference code (``models/`` of the IPMix repository), so a reference ``state_dict``
(minus DataParallel's ``module.``) loads with ``strict=True`` and weights trained here load into the
reference code; the last two are RobustBench zoo nets in the names of its files.

All follow timm's conventions: built by ``build_model_with_cfg`` with a ``pretrained_cfg`` from
``generate_default_cfgs`` (``input_size=(3, 32, 32)``, the papers' ``mean=std=(0.5, 0.5, 0.5)`` or
RobustBench's CIFAR mean/std, ``crop_pct=1.0``, ``pool_size``), ``num_features``,
``head_hidden_size``, ``forward_features`` / ``forward_head(pre_logits=...)``, ``get_classifier`` /
``reset_classifier(num_classes, global_pool)``, ``feature_info`` naming the module whose output is
each level (post-activation), ``forward_intermediates`` with timm's signature, ``features_only=True``
(default ``feature_cls='getter'``; ``'hook'`` and ``'fx'`` return the same maps), TorchScript and
torch.fx (also fx then TorchScript). There are no released weights: ``pretrained=True`` needs a local
file, e.g. ``pretrained_cfg_overlay={"file": "checkpoint.pth.tar"}``, converted by the family's
``checkpoint_filter_fn``.

Example:
    >>> import timm, timm_ext.models
    >>> model = timm.create_model("wrn40_4", num_classes=100, drop_rate=0.3)
    >>> model.num_classes, model.pretrained_cfg["input_size"], model.feature_info[2]["num_chs"]
    (100, (3, 32, 32), 128)
"""

import sys
from collections.abc import Callable, Mapping

import timm
import torch
from timm.models import model_entrypoint
from torch import nn

from timm_ext.models import densenet, dm_wide_resnet, preact_resnet, resnet, resnext, wide_resnet
from timm_ext.models._base import (
    CIFAR10_MEAN_STD,
    CIFAR100_MEAN_STD,
    PAPERS_MEAN_STD,
    CifarNet,
    StateDict,
    has_legacy_blocks,
    strip_prefixes,
)
from timm_ext.models.densenet import CifarDenseNet
from timm_ext.models.dm_wide_resnet import DMWideResNet
from timm_ext.models.preact_resnet import PreActResNet
from timm_ext.models.resnet import CifarResNet
from timm_ext.models.resnext import CifarResNeXt
from timm_ext.models.wide_resnet import WideResNet

__all__ = [
    "CIFAR10_MEAN_STD",
    "CIFAR100_MEAN_STD",
    "FAMILIES",
    "PAPERS_MEAN_STD",
    "CifarDenseNet",
    "CifarNet",
    "CifarResNeXt",
    "CifarResNet",
    "DMWideResNet",
    "PreActResNet",
    "WideResNet",
    "checkpoint_filter",
    "has_legacy_blocks",
    "model_names",
    "strip_prefixes",
]

#: The family modules, each with ``default_cfgs`` and ``checkpoint_filter_fn``.
FAMILIES = (wide_resnet, resnext, densenet, resnet, preact_resnet, dm_wide_resnet)

FilterFn = Callable[[Mapping[str, torch.Tensor], nn.Module | None], StateDict]


def model_names() -> list[str]:
    """Every timm name this package registers, sorted."""
    return sorted(name for family in FAMILIES for name in family.default_cfgs)


def checkpoint_filter(model_name: str) -> FilterFn | None:
    """The ``checkpoint_filter_fn`` of a model registered here (None for any other timm model): it
    maps a foreign state_dict layout (the papers' ``cifar.py``, RobustBench, this package's earlier
    layout) to the model's names; a state_dict already in them passes through unchanged."""
    if not timm.is_model(model_name):
        return None
    module = sys.modules[model_entrypoint(model_name).__module__]
    return getattr(module, "checkpoint_filter_fn", None) if module in FAMILIES else None
