"""Sharded evaluation: the ranks of a torchrun job split every set's batches and share the predictions.

``torchrun --nproc-per-node N robust-eval all CKPT ...`` starts N copies of the same command. Each
copy walks the same suites, sets and cells in the same order (the work list depends only on the data
and the options, never on the rank), and for every set:

1. the set is cut into the batches of a one-process run (``batch_size`` examples, the last one
   shorter): batch ``b`` is examples ``[b*B, min((b+1)*B, n))``;
2. the batches are taken in *exchange windows* of ``N * per_rank`` consecutive batches; inside a
   window rank ``r`` runs the contiguous block :meth:`robust_mix.distributed.Shard.span` gives it;
3. after each window the per-batch outputs (logits as numpy arrays, or PGD counts) are exchanged with
   ``all_gather_object`` and concatenated in batch order, so every rank holds the whole window and
   the metric code downstream runs unchanged, on identical numbers, on every rank.

Why whole batches rather than per-example or whole-cell splits: a batch with the same members as in a
one-process run gives the same logits bit for bit (the model sees the same tensor), and the PGD
random start is seeded per (chunk, batch) index (``suites._pgd_chunk``), so the result JSON is
byte-identical to one process for any world size. Whole cells would balance badly (a run has cells
of very different sizes: one clean pass, 95 -C cells, a few OOD sets) and would need a scheduler;
per-example splits would change the batch composition, which changes float rounding in batched
kernels. The window bounds memory: at most ``N * per_rank`` batches of logits are held at a time.

The cell cache (:class:`robust_eval.cache.CellCache`) is read and written by rank 0 only; it tells
the other ranks whether a cell is finished (``broadcast_object``), so all ranks skip or compute the
same cells, and a killed run resumes under any world size. Rank 0 alone prints progress and writes the
result, report and plots.

Image files are decoded in worker processes (:func:`decode_in_workers`, ``--workers N``) so the
device is not starved; the batches come back in order, so decoding never changes a result.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch.utils.data

from robust_eval import data as rdata
from robust_mix.distributed import Shard, ShardError, all_gather_object, detect, process_group

__all__ = [
    "BatchPlan",
    "decode_in_workers",
    "evaluation_group",
    "evaluation_shard",
    "gather_ordered",
    "gathered",
    "quiet_unless_main",
]

#: Batches a rank runs between two exchanges (bounds the logits held in memory to N * this batches).
PER_RANK = 16

T = TypeVar("T")


@dataclass(frozen=True)
class BatchPlan:
    """Which batches of an ``n``-example set this rank runs, and when the ranks exchange them.

    Attributes:
        n: examples in the set (>= 0).
        batch_size: examples per batch (>= 1), the one-process batch boundaries.
        shard: this process's rank (:class:`~robust_mix.distributed.Shard`).
        per_rank: batches per rank per exchange window (>= 1); a single process uses windows of one
            batch, so it streams exactly as before.
    """

    n: int
    batch_size: int
    shard: Shard
    per_rank: int = PER_RANK

    @property
    def n_batches(self) -> int:
        return -(-self.n // self.batch_size)

    def bounds(self, batch: int) -> tuple[int, int]:
        """``(start, stop)`` example indices of batch ``batch``."""
        start = batch * self.batch_size
        return start, min(start + self.batch_size, self.n)

    def windows(self) -> list[range]:
        """Consecutive batch ranges between exchanges (every batch in exactly one window)."""
        size = self.shard.count * self.per_rank if self.shard.grouped else 1
        return [range(w, min(w + size, self.n_batches)) for w in range(0, self.n_batches, size)]

    def mine(self, window: range) -> range:
        """The contiguous block of ``window`` this rank runs (may be empty)."""
        if not self.shard.grouped:
            return window
        span = self.shard.span(len(window))
        return window[span.start : span.stop]

    def my_batches(self) -> list[int]:
        """Every batch this rank runs, in order (the concatenation of its blocks)."""
        return [b for w in self.windows() for b in self.mine(w)]


def gather_ordered(shard: Shard, local: Sequence[T]) -> list[T]:
    """Every rank's ``local`` items concatenated in rank order (= batch order for :class:`BatchPlan`
    blocks); ``list(local)`` without a process group. Collective: every rank must call it."""
    if not shard.grouped:
        return list(local)
    return [item for part in all_gather_object(list(local)) for item in part]


def gathered(plan: BatchPlan, local: Iterable[T]) -> Iterator[T]:
    """Every batch's item, in batch order, on every rank.

    ``local`` yields this rank's items for :meth:`BatchPlan.my_batches`, in that order (computed
    lazily: window by window, so at most one window is held). Collective: every rank must exhaust
    the iterator. Without a process group it is ``local`` itself.
    """
    it = iter(local)
    if not plan.shard.grouped:
        yield from it
        return
    for window in plan.windows():
        yield from gather_ordered(plan.shard, list(itertools.islice(it, len(plan.mine(window)))))


def evaluation_shard() -> Shard:
    """This process's rank for ``robust-eval``: torchrun's ranks, else the whole job.

    A SLURM array task (or ``--shard``-style partial job) evaluates everything itself: evaluation
    has no merge step, and an array of ``robust-eval`` jobs is usually one checkpoint per task.
    """
    shard = detect()
    return shard if shard.grouped else Shard.single()


@contextlib.contextmanager
def evaluation_group(requested_device: str) -> Iterator[Shard]:
    """Join torchrun's process group (nccl for an available CUDA device, else gloo) for the block.

    Yields the :class:`Shard`; a no-op outside torchrun. An unavailable CUDA device is left to the
    caller's device check (the group then uses gloo, so that check reports it as one line).
    """
    shard = evaluation_shard()
    if shard.grouped and str(requested_device).startswith("cuda:"):
        raise ShardError(
            f"--device {requested_device} under torchrun: pass --device cuda, each rank then uses "
            "cuda:<LOCAL_RANK>"
        )
    backend_device = "cpu"
    if str(requested_device).startswith("cuda") and shard.grouped:
        import torch

        if torch.cuda.is_available():
            backend_device = shard.device(str(requested_device))
    with process_group(shard, backend_device):
        yield shard


@contextlib.contextmanager
def quiet_unless_main(shard: Shard, console: Any) -> Iterator[None]:
    """Silence a rich ``console`` on every rank but 0 for the block (errors go through
    ``robust_mix.cli.fail``, which does not use it, so they still show)."""
    before = console.quiet
    console.quiet = before or not shard.is_main
    try:
        yield
    finally:
        console.quiet = before


class _BatchReads(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Item ``i``: ``(start, images)`` of the ``i``-th ``(start, stop)`` of ``bounds`` (decoded in
    a worker process, by a thread-free copy of the source)."""

    def __init__(
        self, source: rdata.FileSource, bounds: Sequence[tuple[int, int]], as_tensor: bool = False
    ) -> None:
        self.source = source.with_paths(source.paths, source.labels)
        self.source.workers = 0  # one process decodes its whole batch; no thread pool to fork
        self.bounds = list(bounds)
        self.as_tensor = as_tensor  # a tensor can be pinned by the loader; an array cannot

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, i: int) -> tuple[int, np.ndarray | torch.Tensor]:
        start, stop = self.bounds[i]
        images = self.source.batch(start, stop)
        return start, torch.from_numpy(images) if self.as_tensor else images


def _as_is(item: T) -> T:
    return item


def decode_in_workers(
    source: rdata.FileSource, bounds: Sequence[tuple[int, int]], pin: bool = False
) -> Iterator[tuple[int, np.ndarray | torch.Tensor]]:
    """``(start, images)`` for each ``(start, stop)`` of ``bounds``, in order, decoded by
    ``source.workers`` worker processes (a torch ``DataLoader``, two batches in flight per worker).

    The images are exactly ``source.batch(start, stop)`` (same decoder, same resize), so results do
    not depend on the worker count. ``pin`` (for a CUDA device): the images come as uint8 tensors in
    pinned memory, so their copy to the device can overlap the forward pass (same pixels)."""
    loader = torch.utils.data.DataLoader(
        _BatchReads(source, bounds, as_tensor=pin),
        batch_size=None,
        num_workers=max(1, min(source.workers, len(bounds))),
        collate_fn=_as_is,
        pin_memory=pin,
        prefetch_factor=2,
    )
    yield from loader
