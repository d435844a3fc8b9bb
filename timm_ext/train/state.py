"""Run state of ``timm train``: random generators, augmentation seeding, resume files, metrics, checkpoints."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import errno
import io
import os
import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robust_mix.files import FileProblem, atomic_write
from robust_mix.seeding import derive_seed, derive_seeds, find_transforms

from .config import RESUME_KIND, TrainConfig, TrainError, config_from_dict

__all__ = [
    "StopRequest",
    "augmentation_adapters",
    "gather_rng_states",
    "interrupt_between_batches",
    "load_resume_state",
    "own_rng_state",
    "reseed_augmentations",
    "reseed_worker",
    "resume_settings",
    "rng_state",
    "set_rng_state",
    "summary_rows",
    "torch_write_errors",
    "write_csv",
    "write_metrics",
]


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()  # noqa: NPY002 - the global stream timm's workers seed
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [random.getstate()[0], list(random.getstate()[1]), None],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def gather_rng_states(mixer: Any = None) -> list[dict[str, Any]]:
    """Every rank's random state, in rank order (a collective: every rank calls it, at the same point).

    Each entry holds the process's global generators (:func:`rng_state`) under ``"global"`` and the
    ``--mix-device`` generator (or None) under ``"mix"``. Each rank draws from its own streams (its
    seed adds its rank, and dropout, crops in the main process and timm's Mixup draw from them), so a
    resume state must carry all of them: restoring rank 0's on every rank was why a resumed torchrun
    run drifted from an uninterrupted one.
    """
    from robust_mix.distributed import all_gather_object

    mine = {"global": rng_state(), "mix": mixer.state_dict() if mixer is not None else None}
    return all_gather_object(mine)


def own_rng_state(state: dict[str, Any], rank: int, world: int) -> dict[str, Any] | None:
    """This rank's entry of a resume state's random states (see :func:`gather_rng_states`); None when
    the run had another number of processes (the streams then start afresh from the seed).

    Format 2 files hold one process's ``rng`` dict and ``mix_rng``: they resume a one-process run.
    """
    saved = state.get("rng")
    if isinstance(saved, dict):  # format 2
        saved = [{"global": saved, "mix": state.get("mix_rng")}] if state.get("world_size", 1) == 1 else []
    if not isinstance(saved, list) or len(saved) != world or state.get("world_size", 1) != world:
        return None
    return saved[rank]


def load_resume_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``last.pth`` (or the run folder holding one) with ``weights_only=True``.

    Raises:
        TrainError: missing file, or a file that is not a ``timm train`` resume state.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "last.pth"
    if not path.is_file():
        raise TrainError(
            f"--resume '{path}' does not exist; pass the last.pth of a previous run or its folder"
        )
    if path.stat().st_size == 0:
        raise TrainError(f"--resume '{path}' is empty (0 bytes); pass the last.pth of a previous run")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise TrainError(f"--resume '{path}' could not be read as a safe torch file: {reason}") from None
    if not isinstance(state, dict) or state.get("kind") != RESUME_KIND:
        raise TrainError(
            f"--resume '{path}' is not a `timm train` resume state (last.pth); checkpoints like best.pth/final.pth "
            "hold weights only"
        )
    return state


#: Settings of a resumed run that are not taken over from its saved ones: where to write and what to
#: resume are the new command's (the run folder may have moved since).
_NOT_INHERITED = ("output", "resume")


def resume_settings(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The saved settings of the run ``--resume path`` continues (the ``train_args`` of its ``last.pth``,
    the same values as its ``args.yaml``), without ``output`` and ``resume``; settings unknown to this
    version are dropped.

    Raises:
        TrainError: as :func:`load_resume_state`, or saved settings of the wrong type.
    """
    known = {f.name for f in dataclasses.fields(TrainConfig)} - set(_NOT_INHERITED)
    saved = load_resume_state(path).get("train_args") or {}
    values = {k: v for k, v in dict(saved).items() if k in known}
    config_from_dict(values, where=f"the saved settings of --resume '{path}'")
    return values


@contextlib.contextmanager
def torch_write_errors(path: Path) -> Iterator[None]:
    """Report a failed ``torch.save`` of ``path`` as a :class:`FileProblem` naming the file.

    torch's zip writer turns the ``OSError`` of a full or read-only disk into a ``RuntimeError``
    (``unexpected pos ...``); this gives it back its meaning.
    """
    try:
        yield
    except FileProblem:
        raise
    except (OSError, RuntimeError) as exc:
        code = getattr(exc, "errno", None) or errno.EIO
        reason = getattr(exc, "strerror", None) or "the write failed"
        raise FileProblem(
            code,
            f"cannot write '{path}': {reason}; is the disk full or read-only? free some space or "
            "choose another --output",
        ) from None


_CSV_COLUMNS = (
    "epoch",
    "lr",
    "train_loss",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
    "ema_val_top1",
    "epoch_time_s",
    "train_images_per_s",
)


def write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """Write ``rows`` (``columns`` in order, None as empty) to a CSV file atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in columns})
    atomic_write(path, buf.getvalue())


def write_metrics(path: Path, history: list[dict[str, Any]], extra_columns: Sequence[str] = ()) -> None:
    """Write ``metrics.csv`` atomically: the standard columns, then the method's ``extra_columns``."""
    write_csv(path, history, [*_CSV_COLUMNS, *extra_columns])


def summary_rows(history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """(rows, columns) of ``summary.csv`` as timm's ``train.py`` writes it (``update_summary``): ``epoch``
    (0-based, as timm counts), ``train_loss``, then ``eval_loss``, ``eval_top1``, ``eval_top5`` when
    the run validates, and ``lr``."""
    validated = any(row.get("val_top1") is not None for row in history)
    columns = ["epoch", "train_loss", *(["eval_loss", "eval_top1", "eval_top5"] if validated else []), "lr"]
    rows = [
        {
            "epoch": int(row["epoch"]) - 1,
            "train_loss": row["train_loss"],
            "eval_loss": row.get("val_loss"),
            "eval_top1": row.get("val_top1"),
            "eval_top5": row.get("val_top5"),
            "lr": row["lr"],
        }
        for row in history
    ]
    return rows, columns


class StopRequest:
    """Whether Ctrl-C asked the run to stop (see :func:`interrupt_between_batches`)."""

    def __init__(self) -> None:
        self.requested = False

    def check(self) -> None:
        """Raise :class:`KeyboardInterrupt` when a stop was requested (call between batches)."""
        if self.requested:
            raise KeyboardInterrupt

    def guard(self, batches: Iterable[Any]) -> Iterator[Any]:
        """``batches`` (a loader); once a stop was requested, a loader failure (its workers got the
        terminal's Ctrl-C too and stopped) is the interruption, not an error."""
        iterator = iter(batches)
        while True:
            try:
                batch = next(iterator)
            except StopIteration:
                return
            except RuntimeError:
                if self.requested:
                    raise KeyboardInterrupt from None
                raise
            yield batch


@contextlib.contextmanager
def interrupt_between_batches() -> Iterator[StopRequest]:
    """Ctrl-C stops the run at the next batch boundary: the first SIGINT only records the request
    (:meth:`StopRequest.check` raises it after the step in progress, so a stop never waits for more
    than one batch and never leaves a half-applied update); a second SIGINT raises at once. Outside
    the main thread (where signals cannot be handled) nothing is installed."""
    import signal
    import threading

    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def stop(signum: int, frame: Any) -> None:
        if request.requested:
            raise KeyboardInterrupt
        request.requested = True

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield request
    finally:
        signal.signal(signal.SIGINT, previous)


def augmentation_adapters(obj: Any) -> list[Any]:
    """Every :class:`~timm_ext.transforms.AlbumentationsAdapter` reachable from a data set or transform
    (:func:`robust_mix.seeding.find_transforms`: timm's and torchvision's containers, ``AugMixDataset``,
    dataset wrappers)."""
    from ..transforms import AlbumentationsAdapter

    return find_transforms(obj, lambda item: isinstance(item, AlbumentationsAdapter))


def _epoch_seeds(seed: int, epoch: int, rank: int, worker: int) -> list[int]:
    """Four 32-bit seeds (Python, NumPy, torch, adapters) for one process's epoch, as timm derives a
    worker's seed from the run seed, the rank and the worker id (``worker = -1``: main process)."""
    return derive_seeds([int(seed) % 2**63, int(epoch), int(rank), int(worker) + 1, 0x5EED], 4)


def reseed_augmentations(dataset: Any, seed: int, epoch: int, rank: int, worker: int = -1) -> None:
    """Seed every IPMix/PixMix adapter of ``dataset`` for ``epoch`` (each adapter its own stream)."""
    base = _epoch_seeds(seed, epoch, rank, worker)[3]
    for i, adapter in enumerate(augmentation_adapters(dataset)):
        adapter.reseed(derive_seed([base, i]))


def reseed_worker(dataset: Any, seed: int, epoch: int, rank: int, worker: int) -> None:
    """In a DataLoader worker: seed Python's, NumPy's and torch's global generators (timm's AugMix /
    RandAugment and torchvision's crops draw from them) and the adapters, for ``epoch``."""
    py_seed, np_seed, torch_seed, _ = _epoch_seeds(seed, epoch, rank, worker)
    random.seed(py_seed)
    np.random.seed(np_seed)  # noqa: NPY002 - the global stream timm's auto-augment ops use
    torch.manual_seed(torch_seed)
    reseed_augmentations(dataset, seed, epoch, rank, worker)
