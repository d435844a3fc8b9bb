"""Set-up of a ``timm train`` run: output folder, processes, model, method, loaders, optimizer, resume."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robust_mix.checkpoint import normalize_data_config

from .build import create_model
from .config import RUN_FILES, TrainConfig, TrainError
from .data import Data, Loaders, build_loaders, load_data
from .device_mixing import DeviceMixing, mix_device
from .features import FeatureError
from .methods import TrainMethod, create_method
from .state import own_rng_state, set_rng_state

__all__ = ["Run", "check_output", "init_processes", "output_dir", "restore", "setup"]


@dataclass
class Run:
    """Everything one training process holds (built by :func:`_setup`)."""

    cfg: TrainConfig
    device: torch.device
    rank: int
    world: int
    out_dir: Path
    data: Data
    loaders: Loaders
    method: TrainMethod
    net: nn.Module  # the method's network, DDP-wrapped when distributed
    optimizer: Any
    scheduler: Any
    scaler: Any
    ema: Any
    ckpt_meta: dict[str, Any]
    console: Any
    start_epoch: int = 0
    num_updates: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=lambda: {"value": None, "epoch": 0})  # by --eval-metric
    args_saved: bool = False  # args.yaml is written with this invocation's first last.pth
    mixer: DeviceMixing | None = None  # --mix-device: batched mixing in the transfer step
    erasing: Any = None  # --reprob with --mix-device: timm's RandomErasing on the device batches
    ddp: nn.Module | None = None  # the DDP wrapper (no_sync between accumulated batches)
    skip_batches: int = 0  # batches of the first epoch already done (a resume from recovery.pth)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)  # --checkpoint-hist: kept epochs
    loggers: Any = None  # --log-wandb / --log-tensorboard (primary process)
    updates: int = 0  # optimizer updates per epoch (batches / --grad-accum-steps, rounded up)

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def primary(self) -> bool:
        return self.rank == 0

    @property
    def updates_per_epoch(self) -> int:
        """Optimizer updates in a full epoch (the last one may accumulate fewer batches)."""
        return self.updates


def output_dir(cfg: TrainConfig) -> Path:
    """The run folder: ``--output``, else the ``--resume`` folder, else ``output/train`` (set on ``cfg``)."""
    if cfg.output is None:
        resume_path = Path(cfg.resume) if cfg.resume else None
        if resume_path is None:
            cfg.output = "output/train"
        else:
            cfg.output = str(resume_path if resume_path.is_dir() else resume_path.parent)
    return Path(cfg.output)


def _same_folder(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()


def check_output(out_dir: Path, cfg: TrainConfig, resume_state: dict[str, Any] | None) -> None:
    """Refuse to write a run into a folder that holds another one (a fresh run, or a resumed run sent
    to a folder other than its own); a folder without any of the run files is free.

    Raises:
        TrainError: the folder holds another run, or the resume state is of another model.
    """
    existing = [name for name in RUN_FILES if (out_dir / name).exists()] if out_dir.is_dir() else []
    if resume_state is None and existing:
        raise TrainError(
            f"output folder '{out_dir}' already holds a run ({', '.join(existing)}); pass --resume {out_dir} "
            "to continue it or choose another --output"
        )
    if resume_state is not None:
        resume_path = Path(str(cfg.resume))
        source = resume_path if resume_path.is_dir() else resume_path.parent
        if existing and not _same_folder(out_dir, source):
            raise TrainError(
                f"--output '{out_dir}' already holds another run ({', '.join(existing)}); a resumed run "
                f"continues in its own folder ('{source}') or in an empty one: drop --output or choose an "
                "empty folder"
            )
        if resume_state["train_args"].get("model") != cfg.model:
            raise TrainError(
                f"--resume state was trained with --model {resume_state['train_args'].get('model')}, "
                f"not {cfg.model}"
            )


def init_processes(cfg: TrainConfig) -> dict[str, Any]:
    from timm.utils import distributed as tdist
    from timm.utils import random_seed

    device_name = cfg.device
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    if device_name.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {cfg.device}: CUDA is not available on this machine; use --device cpu")
    info = tdist.init_distributed_device_so(device=device_name, dist_backend=cfg.dist_backend)
    random_seed(cfg.seed, info["global_rank"])
    return info


def _build_model(
    cfg: TrainConfig, data: Data, num_classes: int, device: torch.device
) -> tuple[nn.Module, dict, dict]:
    """(model on device, data config, extra create_model kwargs to record in checkpoints).

    The image side is ``--img-size``, else the data's own for fixed-size data sets (CIFAR: 32), else
    the model's default."""
    from timm.data import resolve_data_config

    model_kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": cfg.drop}
    if cfg.drop_path is not None:
        model_kwargs["drop_path_rate"] = cfg.drop_path
    try:
        model = create_model(cfg, **model_kwargs)
    except TypeError as exc:  # e.g. --drop-path for a model without stochastic depth
        raise TrainError(f"--model {cfg.model}: {str(exc).splitlines()[0]}") from None
    base_cfg = resolve_data_config({}, model=model)
    extra_model_kwargs: dict[str, Any] = {}
    img_size = cfg.img_size or data.native_size or int(base_cfg["input_size"][-1])
    if img_size != int(base_cfg["input_size"][-1]) and _takes_img_size(model):
        # ViTs are built for their input size; conv nets take any (and have no such argument)
        model = create_model(cfg, img_size=img_size, **model_kwargs)
        extra_model_kwargs["img_size"] = img_size
    data_cfg = dict(base_cfg)
    data_cfg["input_size"] = (3, img_size, img_size)
    if cfg.interpolation:
        data_cfg["interpolation"] = cfg.interpolation
    if cfg.dataset != "imagefolder":
        data_cfg["crop_pct"] = 1.0
    return model.to(device), data_cfg, extra_model_kwargs


def _takes_img_size(model: nn.Module) -> bool:
    """Whether the model's class is built for one input size (``img_size`` argument: ViTs, Swin)."""
    import inspect

    try:
        return "img_size" in inspect.signature(type(model).__init__).parameters
    except (TypeError, ValueError):
        return False


def _convert_norms(cfg: TrainConfig, model: nn.Module, world: int, device: torch.device) -> nn.Module:
    """``--split-bn`` (timm's SplitBatchNorm2d, one BN per view) and ``--sync-bn`` (under torchrun).

    Raises:
        TrainError: ``--sync-bn`` with several CPU processes (torch's SyncBatchNorm runs on GPUs only).
    """
    if cfg.split_bn:
        from timm.layers.split_batchnorm import convert_splitbn_model

        model = convert_splitbn_model(model, max(cfg.aug_splits, 2))
    if cfg.sync_bn and world > 1:
        if device.type != "cuda":
            raise TrainError(
                "--sync-bn needs CUDA devices (torch's SyncBatchNorm does not run on the CPU); drop it"
            )
        from timm.layers import convert_sync_batchnorm

        model = convert_sync_batchnorm(model)
    return model


def _build_optimization(cfg: TrainConfig, method: TrainMethod, device: torch.device, updates: int) -> tuple:
    """(optimizer, scheduler, AMP scaler or None, ModelEmaV3 or None)."""
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    from timm.utils import ModelEmaV3, NativeScaler

    try:
        optimizer = create_optimizer_v2(
            method.param_groups(),
            opt=cfg.opt,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            momentum=cfg.momentum,
        )
    except ValueError as exc:  # unknown --opt
        raise TrainError(f"--opt {cfg.opt}: {str(exc).splitlines()[0]} (e.g. sgd, momentum, adamw)") from exc
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=cfg.sched,
        num_epochs=cfg.epochs,
        decay_epochs=cfg.decay_epochs,
        decay_rate=cfg.decay_rate,
        min_lr=cfg.min_lr,
        warmup_lr=cfg.warmup_lr,
        warmup_epochs=cfg.warmup_epochs,
        step_on_epochs=not cfg.sched_on_updates,
        updates_per_epoch=updates,
    )
    method.adjust_lr(optimizer)
    use_scaler = cfg.amp and device.type == "cuda" and cfg.amp_dtype == "float16"
    scaler = NativeScaler(device=device.type) if use_scaler else None
    ema = (
        ModelEmaV3(method.model, decay=cfg.model_ema_decay, use_warmup=cfg.model_ema_warmup)
        if cfg.model_ema
        else None
    )
    return optimizer, scheduler, scaler, ema


def _ckpt_meta(cfg: TrainConfig, data: Data, num_classes: int, data_cfg: dict, model_kwargs: dict) -> dict:
    return {
        "model": cfg.model,
        "num_classes": num_classes,
        "dataset": data.dataset,
        "data_config": normalize_data_config(data_cfg),
        "class_names": list(data.class_names),
        "model_kwargs": model_kwargs,
        "train_args": cfg.to_dict(),
    }


def setup(cfg: TrainConfig, info: dict[str, Any], out_dir: Path) -> Run:
    from .. import models  # noqa: F401 - registers the CIFAR architectures

    device, rank, world = torch.device(info["device"]), info["global_rank"], info["world_size"]
    data = load_data(cfg)
    num_classes = cfg.num_classes or data.num_classes
    if num_classes < data.num_classes:
        raise TrainError(
            f"--num-classes {num_classes} is smaller than the {data.num_classes} classes of the data"
        )
    model, data_cfg, model_kwargs = _build_model(cfg, data, num_classes, device)
    model = _convert_norms(cfg, model, world, device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    try:
        method = create_method(cfg, model, num_classes, rank)
    except FeatureError as exc:
        raise TrainError(f"--model {cfg.model}: {exc}") from exc
    loaders = build_loaders(cfg, data, data_cfg, rank, world, device)
    updates = -(-len(loaders.train) // cfg.grad_accum_steps)
    optimizer, scheduler, scaler, ema = _build_optimization(cfg, method, device, updates)
    net = method.network
    ddp = None
    if world > 1:
        net = ddp = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    if cfg.torchcompile:
        net = torch.compile(net, backend=cfg.torchcompile_backend, mode=cfg.torchcompile_mode)
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    meta = _ckpt_meta(cfg, data, num_classes, data_cfg, model_kwargs)
    mixer = None
    mixing_on = mix_device(cfg, device)
    if mixing_on is not None and loaders.aa is not None:
        views = cfg.aug_splits if cfg.aug_splits > 1 else 1
        mean, std = data_cfg["mean"], data_cfg["std"]
        mixer = DeviceMixing(loaders.aa, views, mean, std, mixing_on, device, cfg.seed, rank, cfg.fractals)
    erasing = None
    if cfg.reprob > 0 and mixer is not None:  # the workers hand over uint8: erase after normalising
        from timm.data.random_erasing import RandomErasing

        erasing = RandomErasing(cfg.reprob, mode=cfg.remode, max_count=cfg.recount, device=str(device))
    return Run(
        cfg,
        device,
        rank,
        world,
        out_dir,
        data,
        loaders,
        method,
        net,
        optimizer,
        scheduler,
        scaler,
        ema,
        meta,
        console,
        mixer=mixer,
        erasing=erasing,
        ddp=ddp,
        updates=updates,
    )


def restore(run: Run, state: dict[str, Any]) -> None:
    """Continue from a ``last.pth``: weights, method state, optimizer, scaler, EMA, counters, RNG."""
    cfg = run.cfg
    try:
        run.method.model.load_state_dict(state["model"])
        run.method.load_state_dict(state.get("method") or {})
        run.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise TrainError(f"--resume state does not fit this run: {str(exc).splitlines()[0]}") from exc
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    if run.ema is not None and state.get("ema") is not None:
        run.ema.module.load_state_dict(state["ema"])
    run.start_epoch, run.num_updates = int(state["epoch"]), int(state["num_updates"])
    run.history, run.best = list(state["history"]), dict(state["best"])
    if "top1" in run.best:  # format 2: best by top-1
        run.best = {"value": run.best["top1"], "epoch": run.best["epoch"]}
    run.checkpoints = list(state.get("checkpoints") or [])
    run.skip_batches = int(state.get("batch") or 0)  # recovery.pth: batches of this epoch done
    own = own_rng_state(state, run.rank, run.world)
    if own is not None:  # each rank continues its own streams
        set_rng_state(own["global"])
        if run.mixer is not None and own.get("mix") is not None:
            run.mixer.load_state_dict(own["mix"])
    # the schedule is rebuilt from this run's settings (so --epochs can be raised) and fast-forwarded
    run.scheduler.step(run.start_epoch)
    if cfg.sched_on_updates:
        run.scheduler.step_update(num_updates=run.num_updates)
    run.method.adjust_lr(run.optimizer)
