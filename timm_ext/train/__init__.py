"""The ``timm train`` trainer: one command for the IPMix paper's comparison table, and AdAutoMix.

Built on timm's public API (``create_model``, ``resolve_data_config``, ``create_transform``,
``AugMixDataset``, ``create_optimizer_v2``, ``create_scheduler_v2``, ``Mixup``, ``JsdCrossEntropy``,
``SoftTargetCrossEntropy``, ``ModelEmaV3``, ``NativeScaler``, ``timm.utils.distributed``,
``forward_intermediates``). The parts:

=================  ===================================================================================
``config.py``      :class:`TrainConfig` (every option; field name = config-file key = flag), coercion
``checks.py``      validation of values and combinations (one-line :class:`TrainError`)
``build.py``       model creation (local or cached pretrained weights, never a download)
``data.py``        data sets, transforms, loaders, per-epoch augmentation seeding
``state.py``       random generators, resume files, ``metrics.csv``
``setup.py``       a run's set-up (:class:`~timm_ext.train.setup.Run`): processes, model, loaders, resume
``loop.py``        :func:`train_one_epoch`, :func:`validate`, :func:`train`
``methods/``       one class per training method: plain, mixup/cutmix, JSD, AdAutoMix, AutoMix
``mixing.py``      AdAutoMix kernels (mask generator, mixing, losses, EMA teacher)
``features.py``    feature taps through timm's ``forward_intermediates``
=================  ===================================================================================

Output folder (``--output``; one run at a time: a ``.lock`` file refuses a second run, and a lock
left by a killed run is taken over)::

    args.yaml     the resolved configuration (feed it back with --config to repeat the run), written
                  with the first last.pth: a run killed before it leaves a folder the same command
                  reuses (a run folder holds a run exactly when it holds one of these files)
    metrics.csv   one row per epoch (rewritten atomically after every epoch)
    last.pth      resume state: model, method state (AdAutoMix: mix heads, generator, teacher),
                  optimizer, AMP scaler, EMA, epoch, update count, RNG states, metrics history
                  (the schedule is rebuilt from the settings and fast-forwarded)
    best.pth      best validation top-1 so far  } robust_eval checkpoint format
    final.pth     the model after the last epoch } (``robust-eval all final.pth``)

All ``.pth`` files load with ``torch.load(path, weights_only=True)``. ``timm train --resume RUN``
(the folder, or its ``last.pth``) continues a run with its saved settings; flags given override them;
a resumed run writes into its own folder or an empty one, never into another run's.
"""

from __future__ import annotations

import importlib
from typing import Any

from .config import (
    AUGMENTATIONS,
    DATASETS,
    RESUME_KIND,
    TrainConfig,
    TrainError,
    config_from_dict,
    field_kind,
    load_config_file,
)

#: Name -> (module, attribute) of what needs torch: imported on first use, so that the ``timm``
#: command reads its options (``config``) without importing torch.
_LAZY: dict[str, tuple[str, str]] = {
    "create_model": ("build", "create_model"),
    "_create_model": ("build", "create_model"),  # the names other code and older tests import
    "validate_config": ("checks", "validate"),
    "_validate": ("checks", "validate"),
    "ArrayImageDataset": ("data", "ArrayImageDataset"),
    "Cutout": ("data", "Cutout"),
    "train": ("loop", "train"),
    "train_one_epoch": ("loop", "train_one_epoch"),
    "validate": ("loop", "validate"),
    "load_resume_state": ("state", "load_resume_state"),
}
_field_kind = field_kind


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _LAZY[name]
    value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    globals()[name] = value
    return value


__all__ = [
    "AUGMENTATIONS",
    "DATASETS",
    "RESUME_KIND",
    "ArrayImageDataset",
    "Cutout",
    "TrainConfig",
    "TrainError",
    "config_from_dict",
    "create_model",
    "field_kind",
    "load_config_file",
    "load_resume_state",
    "train",
    "train_one_epoch",
    "validate",
    "validate_config",
]
