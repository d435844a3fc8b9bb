"""The ``timm train`` loop: set-up, :func:`train_one_epoch`, :func:`validate` and :func:`train`.

Shaped like timm's ``train.py`` (``train_one_epoch`` and ``validate`` apart from the orchestration);
what differs between training methods lives in ``methods/``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checks import validate as validate_config
from .config import RESUME_FORMAT_VERSION, RESUME_KIND, TrainConfig, TrainError, TrainInterrupted
from .loggers import EpochLoggers
from .setup import Run, check_output, init_processes, output_dir, restore, setup
from .state import (
    gather_rng_states,
    interrupt_between_batches,
    load_resume_state,
    summary_rows,
    torch_write_errors,
    write_csv,
    write_metrics,
)

__all__ = ["EpochProgress", "Run", "train", "train_one_epoch", "validate"]


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


def _backward(run: Run, loss: torch.Tensor, need_update: bool) -> None:
    """Back-propagate one batch's (already divided) loss; on the last batch of an accumulation, clip
    and step the optimizer (timm's ``NativeScaler(need_update=...)`` with AMP)."""
    cfg, optimizer = run.cfg, run.optimizer
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if run.scaler is not None:
        run.scaler(loss, optimizer, clip_grad=cfg.clip_grad, parameters=params, need_update=need_update)
    else:
        loss.backward()
        if need_update:
            if cfg.clip_grad is not None:
                nn.utils.clip_grad_norm_(params, cfg.clip_grad)
            optimizer.step()
    if need_update:
        optimizer.zero_grad(set_to_none=True)
        _after_update(run)


def _after_update(run: Run) -> None:
    run.num_updates += 1
    if run.ema is not None:
        run.ema.update(run.method.model, step=run.num_updates)
    run.method.after_update(run.num_updates, run.cfg.epochs * run.updates_per_epoch)
    if run.cfg.sched_on_updates:
        run.scheduler.step_update(num_updates=run.num_updates)
    run.method.adjust_lr(run.optimizer)


class EpochProgress:
    """The progress bar of one epoch (rich): batches done, mean loss so far, time remaining.

    Refreshed after the first batch, then every ``min(log_interval, total // 10)`` batches and after
    the last, so an epoch shorter than ``--log-interval`` still moves and shows an ETA (rich needs two
    refreshes to estimate the speed). Use as a context manager; :meth:`advance` after every batch.

    Args:
        console: the rich console (stderr).
        label: e.g. ``epoch 3/100``.
        total: batches in the epoch.
        log_interval: ``--log-interval``.
        enabled: show the bar (primary process, ``--progress``, a terminal).
        get_time: clock for rich (tests pass a fake one).
    """

    def __init__(
        self,
        console: Any,
        label: str,
        total: int,
        log_interval: int,
        enabled: bool,
        get_time: Any = None,
    ) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.total = total
        self.every = max(1, min(log_interval, total // 10))
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not enabled,
            get_time=get_time,
        )
        self.task = self.progress.add_task("train", total=total, loss="-")

    def __enter__(self) -> EpochProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def advance(self, step: int, mean_loss: Any) -> None:
        """Batch ``step`` (0-based) is done; ``mean_loss()`` (called only when refreshing) is the mean so far."""
        done = step + 1
        if step == 0 or done % self.every == 0 or done == self.total:
            self.progress.update(self.task, completed=done, loss=f"{float(mean_loss()):.4f}")


def train_one_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """One pass over the training loader; returns the epoch's training columns of ``metrics.csv``.

    Raises:
        TrainError: the loss became NaN or infinite.
    """
    cfg, device, method = run.cfg, run.device, run.method
    run.loaders.sampler.set_epoch(epoch, skip=run.skip_batches * cfg.batch_size)
    run.skip_batches = 0
    method.start_epoch(epoch)
    run.net.train()
    run.optimizer.zero_grad(set_to_none=True)
    batches, accum = len(run.loaders.train), cfg.grad_accum_steps
    last_group = batches - batches % accum  # the first batch of a shorter final accumulation
    memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
    t0 = time.perf_counter()
    sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss*n, correct, n, images
    extra = {name: torch.zeros((), dtype=torch.float64, device=device) for name in method.step_stats}
    soft_targets = False
    show = run.primary and cfg.progress and run.console.is_terminal
    label = f"epoch {epoch + 1}/{cfg.epochs}"
    with (
        EpochProgress(run.console, label, batches, cfg.log_interval, show) as bar,
        interrupt_between_batches() as stop,
    ):
        for step, (x, y) in enumerate(stop.guard(run.loaders.train)):
            if isinstance(x, (list, tuple)):
                x = torch.cat(list(x), dim=0)
            if run.mixer is not None:  # --mix-device: views mixed and normalised on the device
                x = run.mixer(x)
                if run.erasing is not None:
                    x = run.erasing(x)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = x.contiguous(memory_format=memory)
            need_update = step + 1 == batches or (step + 1) % accum == 0
            group = batches % accum if step >= last_group else accum  # batches in this accumulation
            sync = run.ddp.no_sync() if run.ddp is not None and not need_update else contextlib.nullcontext()
            with sync:
                with _autocast(cfg, device):
                    out = method.step(run.net, x, y, run.num_updates)
                if not torch.isfinite(out.loss):
                    raise TrainError(
                        f"the loss became {out.loss.item()} at epoch {epoch + 1}, batch {step + 1}; lower --lr "
                        "or turn off --amp"
                    )
                _backward(run, out.loss / group if group > 1 else out.loss, need_update)
            stop.check()
            every = cfg.recovery_interval
            if need_update and every and run.num_updates % every == 0 and step + 1 < batches:
                _save_recovery(run, epoch, step + 1)  # (an epoch's end writes last.pth instead)
            n = len(y)
            soft_targets = out.logits is None
            with torch.no_grad():
                correct = sums[1] * 0 if soft_targets else out.logits.argmax(1).eq(y).sum().double()
                for name in extra:
                    extra[name] += out.stats[name].double() * n
                counts = torch.tensor([float(n), float(x.shape[0])], dtype=torch.float64, device=device)
                sums += torch.stack([out.loss.detach().double() * n, correct, counts[0], counts[1]])
            bar.advance(step, lambda s=sums: s[0] / s[2])
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


def _eval_weights(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module``'s state_dict as a plain timm model holds it: ``--split-bn``'s auxiliary BatchNorms
    (one per augmented view, ``*.aux_bn.*``) are dropped; the main one is what evaluation uses."""
    return {k: v for k, v in module.state_dict().items() if ".aux_bn." not in f".{k}"}


def _weights_extra(run: Run, epoch: int, row: dict[str, Any]) -> dict[str, Any]:
    extra: dict[str, Any] = {"epoch": epoch, "metrics": row}
    if run.ema is not None:
        extra["state_dict_ema"] = _eval_weights(run.ema.module)
    online = run.method.online_model()
    if online is not None:
        extra["state_dict_online"] = _eval_weights(online)
    return extra


def _save_weights(run: Run, path: Path, epoch: int, row: dict[str, Any]) -> None:
    """A robust-eval checkpoint of the evaluated model (best.pth, final.pth, checkpoint-N.pth)."""
    from robust_mix.checkpoint import save_checkpoint

    weights = _eval_weights(run.method.eval_model())
    with torch_write_errors(path):
        save_checkpoint(path, weights, **run.ckpt_meta, **_weights_extra(run, epoch, row))


def _metric(run: Run, row: dict[str, Any]) -> float | None:
    """The epoch's ``--eval-metric``, signed so that larger is better (None without validation)."""
    value = row.get(f"val_{run.cfg.eval_metric}")
    if value is None:
        return None
    return -float(value) if run.cfg.eval_metric == "loss" else float(value)


def _keep_best(run: Run, epoch: int, row: dict[str, Any]) -> None:
    """best.pth when the epoch beats the best so far, and ``--checkpoint-hist``: the N best epochs as
    checkpoint-<epoch>.pth (ties keep the earlier epoch, as timm's CheckpointSaver)."""
    score = _metric(run, row)
    if score is None:
        return
    if run.best["value"] is None or score > run.best["value"]:
        run.best = {"value": score, "epoch": epoch}
        _save_weights(run, run.out_dir / "best.pth", epoch, row)
    keep = run.cfg.checkpoint_hist
    if not keep:
        return
    ranked = sorted([*run.checkpoints, {"value": score, "epoch": epoch}], key=lambda c: -c["value"])
    if {"value": score, "epoch": epoch} in ranked[:keep]:
        _save_weights(run, run.out_dir / f"checkpoint-{epoch}.pth", epoch, row)
    for dropped in ranked[keep:]:
        (run.out_dir / f"checkpoint-{dropped['epoch']}.pth").unlink(missing_ok=True)
    run.checkpoints = ranked[:keep]


def _resume_state(run: Run, epochs_done: int, rng: list[dict[str, Any]], batch: int = 0) -> dict[str, Any]:
    """What last.pth (``batch = 0``) or recovery.pth (``batch`` batches into the next epoch) holds."""
    method = run.method
    return {
        "kind": RESUME_KIND,
        "format_version": RESUME_FORMAT_VERSION,
        "epoch": epochs_done,
        "batch": batch,
        "num_updates": run.num_updates,
        "world_size": run.world,
        "model": method.model.state_dict(),
        "method": method.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "ema": run.ema.module.state_dict() if run.ema is not None else None,
        "rng": rng,  # one entry per rank
        "history": run.history,
        "best": run.best,
        "checkpoints": run.checkpoints,
        "train_args": run.cfg.to_dict(),
    }


def _save_recovery(run: Run, epoch: int, batches_done: int) -> None:
    """``--recovery-interval``: recovery.pth, ``batches_done`` batches into 0-based ``epoch``."""
    from robust_mix.checkpoint import atomic_save

    rng = gather_rng_states(run.mixer)  # a collective: every rank
    if run.primary:
        path = run.out_dir / "recovery.pth"
        with torch_write_errors(path):
            atomic_save(_resume_state(run, epoch, rng, batch=batches_done), path)


def _save_epoch(run: Run, epoch: int, row: dict[str, Any], rng: list[dict[str, Any]]) -> None:
    """best.pth / checkpoint-N.pth (by ``--eval-metric``), last.pth, metrics.csv and summary.csv, each
    written atomically; a recovery.pth of this epoch is superseded and goes.

    ``rng``: every rank's random state (:func:`~timm_ext.train.state.gather_rng_states`)."""
    from robust_mix.checkpoint import atomic_save

    out_dir = run.out_dir
    _keep_best(run, epoch + 1, row)
    with torch_write_errors(out_dir / "last.pth"):
        atomic_save(_resume_state(run, epoch + 1, rng), out_dir / "last.pth")
    (out_dir / "recovery.pth").unlink(missing_ok=True)
    write_metrics(out_dir / "metrics.csv", run.history, run.method.csv_columns)
    write_csv(out_dir / "summary.csv", *summary_rows(run.history))
    if not run.args_saved:
        # written with the first resume state, never before: a run killed in its first epoch leaves a
        # folder the same command can reuse
        _save_args(run)
        run.args_saved = True


def _save_args(run: Run) -> None:
    import yaml

    from robust_mix.files import atomic_write

    atomic_write(run.out_dir / "args.yaml", yaml.safe_dump(run.cfg.to_dict(), sort_keys=False))


def _announce(run: Run) -> None:
    cfg = run.cfg
    aa = run.loaders.aa
    size = run.ckpt_meta["data_config"]["input_size"][-1]
    run.console.print(
        f"timm train: {cfg.model} on {run.data.dataset} ({len(run.data.train)} train images, "
        f"{run.ckpt_meta['num_classes']} classes) at {size} px, --aug {cfg.aug}{f' ({aa})' if aa else ''}"
        f"{' + JSD' if cfg.jsd else ''}, {run.world} process(es) on {run.device.type}, "
        f"epochs {run.start_epoch + 1}..{cfg.epochs}"
    )
    if run.loaders.val is None:
        from robust_mix.files import EVAL_SPLITS

        run.console.print(
            f"no validation split ({', '.join(n + '/' for n in EVAL_SPLITS)} under --data-dir): no validation "
            "metrics, no best.pth"
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


def _distribute_bn(run: Run) -> None:
    """``--dist-bn``: BatchNorm statistics averaged over ranks (reduce) or rank 0's (broadcast), for the
    model and its EMA, before validation (timm's ``distribute_bn``)."""
    if not run.distributed or run.cfg.dist_bn not in ("reduce", "broadcast"):
        return
    from timm.utils import distribute_bn

    reduce = run.cfg.dist_bn == "reduce"
    distribute_bn(run.method.network, run.world, reduce)
    if run.ema is not None:
        distribute_bn(run.ema, run.world, reduce)


def _epochs(run: Run) -> dict[str, Any]:
    """Train and evaluate the remaining epochs, then write ``final.pth``; returns the last row."""
    cfg, out_dir = run.cfg, run.out_dir
    row: dict[str, Any] = run.history[-1] if run.history else {}
    for epoch in range(run.start_epoch, cfg.epochs):
        row = train_one_epoch(run, epoch)
        _distribute_bn(run)
        _evaluate_epoch(run, row)
        run.history.append(row)
        rng = gather_rng_states(run.mixer)  # every rank's, after validation: where the next epoch starts
        if run.primary:
            _save_epoch(run, epoch, row, rng)
            _report_epoch(run, row)
            if run.loggers is not None:
                run.loggers.log(row)
    if run.primary:
        _save_weights(run, out_dir / "final.pth", max(cfg.epochs, run.start_epoch), row)
        names = ", ".join(n for n in ("final.pth", "best.pth", "last.pth") if (out_dir / n).exists())
        run.console.print(f"checkpoints in {out_dir}/ ({names}), metrics in metrics.csv")
    return row


def _remove_if_empty(folder: Path, created: bool) -> None:
    """A run folder this run created and left empty (it failed before its first checkpoint) goes."""
    if created and folder.is_dir() and not any(folder.iterdir()):
        with contextlib.suppress(OSError):
            folder.rmdir()


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run a training job described by ``cfg``; returns the last epoch's metrics row.

    The first process locks the run folder (:class:`~robust_mix.files.OutputLock`): a second
    run into the same ``--output`` is refused. ``cfg`` is used as given; the CLI fills a resumed run's
    unset options from its saved settings (:func:`~timm_ext.train.state.resume_settings`).

    Raises:
        TrainError: bad settings, data or resume files (reported by the CLI as one line, exit 2).
        FileProblem: the run folder cannot be written (read-only, full; exit 1).
        TrainInterrupted: Ctrl-C; says whether the folder holds a ``last.pth`` to resume from.
    """
    from robust_mix.files import OutputLock

    cfg = dataclasses.replace(cfg)
    if cfg.jsd and cfg.aug_splits == 0:
        cfg.aug_splits = 3
    validate_config(cfg)
    resume_state = load_resume_state(cfg.resume) if cfg.resume else None
    out_dir = output_dir(cfg)
    info = init_processes(cfg)
    lock = OutputLock(out_dir, "timm train") if info["global_rank"] == 0 else contextlib.nullcontext()
    created = not out_dir.exists()
    try:
        with lock:
            check_output(out_dir, cfg, resume_state)
            run = setup(cfg, info, out_dir)
            if resume_state is not None:
                restore(run, resume_state)
                del resume_state
            if run.primary:
                _announce(run)
                run.loggers = EpochLoggers(cfg, out_dir) if cfg.log_wandb or cfg.log_tensorboard else None
            try:
                return _epochs(run)
            finally:
                if run.loggers is not None:
                    run.loggers.close()
    except KeyboardInterrupt:
        _remove_if_empty(out_dir, created)
        raise TrainInterrupted(out_dir, (out_dir / "last.pth").is_file()) from None
    except BaseException:
        _remove_if_empty(out_dir, created)
        raise
    finally:
        if info["distributed"] and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
