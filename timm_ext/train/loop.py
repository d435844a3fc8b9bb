"""The ``timm train`` loop: set-up, :func:`train_one_epoch`, :func:`validate` and :func:`train`.

Shaped like timm's ``train.py`` (``train_one_epoch`` and ``validate`` apart from the orchestration);
what differs between training methods lives in ``methods/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .build import create_model
from .checks import validate as validate_config
from .config import RESUME_FORMAT_VERSION, RESUME_KIND, RUN_FILES, TrainConfig, TrainError
from .data import Data, Loaders, build_loaders, load_data
from .features import FeatureError
from .methods import TrainMethod, create_method
from .state import atomic_write_text, load_resume_state, rng_state, set_rng_state, write_metrics

__all__ = ["Run", "train", "train_one_epoch", "validate"]


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
    best: dict[str, Any] = field(default_factory=lambda: {"top1": -math.inf, "epoch": 0})

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def primary(self) -> bool:
        return self.rank == 0

    @property
    def updates_per_epoch(self) -> int:
        return len(self.loaders.train)


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    if not cfg.amp:
        return torch.autocast(device.type, enabled=False)
    dtype = torch.bfloat16 if (device.type == "cpu" or cfg.amp_dtype == "bfloat16") else torch.float16
    return torch.autocast(device.type, dtype=dtype)


@torch.no_grad()
def validate(
    model: nn.Module, loader: Any, cfg: TrainConfig, device: torch.device, distributed: bool
) -> dict[str, float]:
    """Mean loss, top-1 and top-5 (%) of ``model`` over ``loader`` (summed over ranks when distributed)."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, top1, top5, count
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with _autocast(cfg, device):
            out = model(x)
        out = out.float()
        hit = out.topk(min(5, out.shape[1]), dim=1).indices.eq(y[:, None])
        sums += torch.stack(
            [
                F.cross_entropy(out, y, reduction="sum").double(),
                hit[:, 0].sum().double(),
                hit.any(dim=1).sum().double(),
                torch.tensor(float(len(y)), dtype=torch.float64, device=device),
            ]
        )
    if distributed:
        torch.distributed.all_reduce(sums)
    n = max(float(sums[3]), 1.0)
    return {
        "loss": float(sums[0]) / n,
        "top1": 100.0 * float(sums[1]) / n,
        "top5": 100.0 * float(sums[2]) / n,
    }


def _optimizer_step(run: Run, loss: torch.Tensor) -> None:
    cfg, optimizer = run.cfg, run.optimizer
    params = [p for g in optimizer.param_groups for p in g["params"]]
    optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler(loss, optimizer, clip_grad=cfg.clip_grad, parameters=params)
    else:
        loss.backward()
        if cfg.clip_grad is not None:
            nn.utils.clip_grad_norm_(params, cfg.clip_grad)
        optimizer.step()
    run.num_updates += 1
    if run.ema is not None:
        run.ema.update(run.method.model, step=run.num_updates)
    run.method.after_update(run.num_updates, run.cfg.epochs * run.updates_per_epoch)
    if cfg.sched_on_updates:
        run.scheduler.step_update(num_updates=run.num_updates)
    run.method.adjust_lr(optimizer)


def _progress(run: Run, epoch: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(f"epoch {epoch + 1}/{run.cfg.epochs}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeRemainingColumn(),
        console=run.console,
        transient=True,
        disable=not (run.primary and run.cfg.progress and run.console.is_terminal),
    )


def train_one_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """One pass over the training loader; returns the epoch's training columns of ``metrics.csv``.

    Raises:
        TrainError: the loss became NaN or infinite.
    """
    cfg, device, method = run.cfg, run.device, run.method
    run.loaders.sampler.set_epoch(epoch)
    run.net.train()
    t0 = time.perf_counter()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss*n, correct, n, images
    extra = {name: torch.zeros((), dtype=torch.float64, device=device) for name in method.step_stats}
    soft_targets = False
    with _progress(run, epoch) as progress:
        task = progress.add_task("train", total=run.updates_per_epoch, loss=float("nan"))
        for step, (x, y) in enumerate(run.loaders.train):
            if isinstance(x, (list, tuple)):
                x = torch.cat(list(x), dim=0)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with _autocast(cfg, device):
                out = method.step(run.net, x, y, run.num_updates)
            if not torch.isfinite(out.loss):
                raise TrainError(
                    f"the loss became {out.loss.item()} at epoch {epoch + 1}, batch {step + 1}; lower --lr "
                    "or turn off --amp"
                )
            _optimizer_step(run, out.loss)
            n = len(y)
            soft_targets = out.logits is None
            with torch.no_grad():
                correct = sums[1] * 0 if soft_targets else out.logits.argmax(1).eq(y).sum().double()
                for name in extra:
                    extra[name] += out.stats[name].double() * n
                counts = torch.tensor([float(n), float(x.shape[0])], dtype=torch.float64, device=device)
                sums += torch.stack([out.loss.detach().double() * n, correct, counts[0], counts[1]])
            if (step + 1) % cfg.log_interval == 0 or step + 1 == run.updates_per_epoch:
                progress.update(task, completed=step + 1, loss=float(sums[0] / sums[2]))
    if not cfg.sched_on_updates:
        run.scheduler.step(epoch + 1)
        method.adjust_lr(run.optimizer)
    stacked = torch.cat([sums, torch.stack(list(extra.values()))]) if extra else sums
    if run.distributed:
        torch.distributed.all_reduce(stacked)
    elapsed = time.perf_counter() - t0
    row = {
        "epoch": epoch + 1,
        "lr": float(run.optimizer.param_groups[0]["lr"]),
        "train_loss": float(stacked[0] / stacked[2]),
        "train_top1": None if soft_targets else 100.0 * float(stacked[1] / stacked[2]),
        "epoch_time_s": round(elapsed, 3),
        "train_images_per_s": round(float(stacked[3]) / max(elapsed, 1e-9), 1),
    }
    for i, name in enumerate(extra):
        row[name] = float(stacked[4 + i] / stacked[2])
    return row


def _output_dir(cfg: TrainConfig, resume_state: dict[str, Any] | None) -> Path:
    if cfg.output is None:
        resume_path = Path(cfg.resume) if cfg.resume else None
        if resume_path is None:
            cfg.output = "output/train"
        else:
            cfg.output = str(resume_path if resume_path.is_dir() else resume_path.parent)
    out_dir = Path(cfg.output)
    if resume_state is None and out_dir.is_dir():
        existing = [name for name in RUN_FILES if (out_dir / name).exists()]
        if existing:
            raise TrainError(
                f"output folder '{out_dir}' already holds a run ({', '.join(existing)}); pass --resume {out_dir} "
                "to continue it or choose another --output"
            )
    if resume_state is not None and resume_state["train_args"].get("model") != cfg.model:
        raise TrainError(
            f"--resume state was trained with --model {resume_state['train_args'].get('model')}, not {cfg.model}"
        )
    return out_dir


def _init_processes(cfg: TrainConfig) -> dict[str, Any]:
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


def _build_model(cfg: TrainConfig, num_classes: int, device: torch.device) -> tuple[nn.Module, dict, dict]:
    """(model on device, data config, extra create_model kwargs to record in checkpoints)."""
    from timm.data import resolve_data_config

    model_kwargs: dict[str, Any] = {"num_classes": num_classes, "drop_rate": cfg.drop}
    model = create_model(cfg, **model_kwargs)
    base_cfg = resolve_data_config({}, model=model)
    extra_model_kwargs: dict[str, Any] = {}
    img_size = cfg.img_size or int(base_cfg["input_size"][-1])
    if img_size != int(base_cfg["input_size"][-1]):
        with contextlib.suppress(TypeError):  # ViTs need their input size; conv nets take any
            model = create_model(cfg, img_size=img_size, **model_kwargs)
            extra_model_kwargs["img_size"] = img_size
    data_cfg = dict(base_cfg)
    data_cfg["input_size"] = (3, img_size, img_size)
    if cfg.interpolation:
        data_cfg["interpolation"] = cfg.interpolation
    if cfg.dataset != "imagefolder":
        data_cfg["crop_pct"] = 1.0
    return model.to(device), data_cfg, extra_model_kwargs


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
    ema = ModelEmaV3(method.model, decay=cfg.model_ema_decay) if cfg.model_ema else None
    return optimizer, scheduler, scaler, ema


def _ckpt_meta(cfg: TrainConfig, data: Data, num_classes: int, data_cfg: dict, model_kwargs: dict) -> dict:
    return {
        "model": cfg.model,
        "num_classes": num_classes,
        "dataset": data.dataset,
        "data_config": {
            "input_size": list(data_cfg["input_size"]),
            "mean": list(data_cfg["mean"]),
            "std": list(data_cfg["std"]),
            "interpolation": str(data_cfg["interpolation"]),
            "crop_pct": float(data_cfg["crop_pct"]),
        },
        "class_names": list(data.class_names),
        "model_kwargs": model_kwargs,
        "train_args": cfg.to_dict(),
    }


def _setup(cfg: TrainConfig, info: dict[str, Any], out_dir: Path) -> Run:
    from .. import models  # noqa: F401 - registers the CIFAR architectures

    device, rank, world = torch.device(info["device"]), info["global_rank"], info["world_size"]
    data = load_data(cfg)
    num_classes = cfg.num_classes or data.num_classes
    if num_classes < data.num_classes:
        raise TrainError(
            f"--num-classes {num_classes} is smaller than the {data.num_classes} classes of the data"
        )
    model, data_cfg, model_kwargs = _build_model(cfg, num_classes, device)
    try:
        method = create_method(cfg, model, num_classes, rank)
    except FeatureError as exc:
        raise TrainError(f"--model {cfg.model}: {exc}") from exc
    loaders = build_loaders(cfg, data, data_cfg, rank, world, device)
    optimizer, scheduler, scaler, ema = _build_optimization(cfg, method, device, len(loaders.train))
    net = method.network
    if world > 1:
        net = nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    meta = _ckpt_meta(cfg, data, num_classes, data_cfg, model_kwargs)
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
    )


def _restore(run: Run, state: dict[str, Any]) -> None:
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
    if state.get("world_size", 1) == run.world:
        set_rng_state(state["rng"])
    # the schedule is rebuilt from this run's settings (so --epochs can be raised) and fast-forwarded
    run.scheduler.step(run.start_epoch)
    if cfg.sched_on_updates:
        run.scheduler.step_update(num_updates=run.num_updates)
    run.method.adjust_lr(run.optimizer)


def _evaluate_epoch(run: Run, row: dict[str, Any]) -> None:
    row.update(val_loss=None, val_top1=None, val_top5=None, ema_val_top1=None)
    loader = run.loaders.val
    if loader is None:
        return
    args = (loader, run.cfg, run.device, run.distributed)
    metrics = validate(run.method.eval_model(), *args)
    row.update(val_loss=metrics["loss"], val_top1=metrics["top1"], val_top5=metrics["top5"])
    if run.ema is not None:
        row["ema_val_top1"] = validate(run.ema.module, *args)["top1"]
    online = run.method.online_model()
    if online is not None:
        row["online_val_top1"] = validate(online, *args)["top1"]


def _weights_extra(run: Run, epoch: int, row: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"epoch": epoch, "metrics": row}
    if run.ema is not None:
        extra["state_dict_ema"] = run.ema.module.state_dict()
    online = run.method.online_model()
    if online is not None:
        extra["state_dict_online"] = online.state_dict()
    return extra


def _save_epoch(run: Run, epoch: int, row: dict[str, Any]) -> None:
    """best.pth (when validation top-1 improved), last.pth and metrics.csv, each written atomically."""
    from robust_eval.checkpoint import atomic_save, save_checkpoint

    out_dir, method = run.out_dir, run.method
    if row["val_top1"] is not None and row["val_top1"] > run.best["top1"]:
        run.best = {"top1": row["val_top1"], "epoch": epoch + 1}
        weights = method.eval_model().state_dict()
        save_checkpoint(out_dir / "best.pth", weights, **run.ckpt_meta, **_weights_extra(run, epoch + 1, row))
    state = {
        "kind": RESUME_KIND,
        "format_version": RESUME_FORMAT_VERSION,
        "epoch": epoch + 1,
        "num_updates": run.num_updates,
        "world_size": run.world,
        "model": method.model.state_dict(),
        "method": method.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "ema": run.ema.module.state_dict() if run.ema is not None else None,
        "rng": rng_state(),
        "history": run.history,
        "best": run.best,
        "train_args": run.cfg.to_dict(),
    }
    atomic_save(state, out_dir / "last.pth")
    write_metrics(out_dir / "metrics.csv", run.history, method.csv_columns)


def _announce(run: Run) -> None:
    import yaml

    cfg = run.cfg
    run.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run.out_dir / "args.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    aa = run.loaders.aa
    run.console.print(
        f"timm train: {cfg.model} on {run.data.dataset} ({len(run.data.train)} train images, "
        f"{run.ckpt_meta['num_classes']} classes), --aug {cfg.aug}{f' ({aa})' if aa else ''}"
        f"{' + JSD' if cfg.jsd else ''}, {run.world} process(es) on {run.device.type}, "
        f"epochs {run.start_epoch + 1}..{cfg.epochs}"
    )
    if run.start_epoch >= cfg.epochs:
        run.console.print(
            f"nothing to do: the run already completed {run.start_epoch} of {cfg.epochs} epochs"
        )


def _report_epoch(run: Run, row: dict[str, Any]) -> None:
    val = (
        f", val loss {row['val_loss']:.4f} top-1 {row['val_top1']:.2f}%"
        if row["val_top1"] is not None
        else ""
    )
    run.console.print(
        f"epoch {row['epoch']}/{run.cfg.epochs}: train loss {row['train_loss']:.4f}{val}, "
        f"{row['train_images_per_s']:.0f} img/s, lr {row['lr']:.3g}"
    )


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run a training job described by ``cfg``; returns the last epoch's metrics row.

    Raises:
        TrainError: bad settings, data or resume files (reported by the CLI as one line, exit 2).
    """
    from robust_eval.checkpoint import save_checkpoint

    cfg = dataclasses.replace(cfg)
    if cfg.jsd and cfg.aug_splits == 0:
        cfg.aug_splits = 3
    validate_config(cfg)
    resume_state = load_resume_state(cfg.resume) if cfg.resume else None
    out_dir = _output_dir(cfg, resume_state)
    info = _init_processes(cfg)
    try:
        run = _setup(cfg, info, out_dir)
        if resume_state is not None:
            _restore(run, resume_state)
        if run.primary:
            _announce(run)
        row: dict[str, Any] = run.history[-1] if run.history else {}
        for epoch in range(run.start_epoch, cfg.epochs):
            row = train_one_epoch(run, epoch)
            _evaluate_epoch(run, row)
            run.history.append(row)
            if run.primary:
                _save_epoch(run, epoch, row)
                _report_epoch(run, row)
        if run.primary:
            weights = run.method.eval_model().state_dict()
            extra = _weights_extra(run, max(cfg.epochs, run.start_epoch), row)
            save_checkpoint(out_dir / "final.pth", weights, **run.ckpt_meta, **extra)
            names = ", ".join(n for n in ("final.pth", "best.pth", "last.pth") if (out_dir / n).exists())
            run.console.print(f"checkpoints in {out_dir}/ ({names}), metrics in metrics.csv")
        return row
    finally:
        if info["distributed"] and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
