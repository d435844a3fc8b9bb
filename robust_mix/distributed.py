"""Which part of a job this process does: torchrun ranks, SLURM array tasks or an explicit ``--shard K/N``.

The one place of the project that knows the launchers. A job is split into ``count`` shards numbered
``0 .. count - 1``; this process does shard ``index``. Three ways to say it, first match wins:

1. ``--shard K/N`` given on the command line (0 <= K < N): a job without a process group, e.g. one
   task of an array job or a hand-started process. Shards only write their own part; a later
   ``--merge`` step assembles the result.
2. torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` set by ``torchrun`` / ``torch.distributed.run``):
   a process group is started (``gloo`` on CPU, ``nccl`` for CUDA devices), ranks can exchange
   results, rank 0 writes what the user sees.
3. A SLURM array (``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_COUNT``, ``SLURM_ARRAY_TASK_MIN``):
   like ``--shard`` with ``K = TASK_ID - TASK_MIN`` and ``N = TASK_COUNT``.

Otherwise the process is the whole job (``Shard.single()``). Work is split in contiguous blocks
(:meth:`Shard.span`), so shard ``k`` of ``n`` items does items ``[n*k//N, n*(k+1)//N)``: the blocks
cover every item once, their sizes differ by at most one, and the split depends only on ``n`` and
``N``, never on timing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from robust_mix.errors import RobustMixError

__all__ = [
    "Shard",
    "ShardError",
    "all_gather_object",
    "barrier",
    "broadcast_object",
    "detect",
    "parse_shard",
    "process_group",
]

Launcher = Literal["single", "shard", "torchrun", "slurm-array"]


class ShardError(ValueError, RobustMixError):
    """A shard specification that cannot be honoured (the message says what to change)."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``, and how this process learned it.

    Attributes:
        index: this process's shard, ``0 <= index < count``.
        count: the number of shards the job is split into (>= 1).
        launcher: ``"single"``, ``"shard"`` (``--shard K/N``), ``"torchrun"`` or ``"slurm-array"``.
        local_rank: the process's index on its node (torchrun's ``LOCAL_RANK``; 0 otherwise): the
            CUDA device it should use.
    """

    index: int = 0
    count: int = 1
    launcher: Launcher = "single"
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ShardError(f"shard {self.index}/{self.count}: expected 0 <= K < N and N >= 1")

    @classmethod
    def single(cls) -> Shard:
        """The whole job in this one process."""
        return cls()

    @property
    def is_main(self) -> bool:
        """Whether this is shard 0: the one that prints progress and, in a process group, writes results."""
        return self.index == 0

    @property
    def grouped(self) -> bool:
        """Whether the shards form a torch.distributed process group (torchrun with >= 2 ranks)."""
        return self.launcher == "torchrun" and self.count > 1

    @property
    def partial(self) -> bool:
        """Whether this process does only part of the job and another step assembles the result."""
        return self.launcher in ("shard", "slurm-array")

    def span(self, n: int) -> range:
        """The items ``[n*k//N, n*(k+1)//N)`` of ``n`` that this shard does (may be empty)."""
        return range(n * self.index // self.count, n * (self.index + 1) // self.count)

    def device(self, requested: str) -> str:
        """The device for this process: ``cuda`` becomes ``cuda:<local_rank>`` under torchrun."""
        if self.launcher == "torchrun" and requested == "cuda":
            return f"cuda:{self.local_rank}"
        return requested

    def describe(self) -> str:
        """One line for logs, e.g. ``shard 1/4 (torchrun)``; empty for a single process."""
        return "" if self.launcher == "single" else f"shard {self.index}/{self.count} ({self.launcher})"


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` -> ``(K, N)`` with ``0 <= K < N``; :class:`ShardError` otherwise."""
    parts = text.strip().split("/")
    try:
        if len(parts) != 2:
            raise ValueError
        index, count = int(parts[0]), int(parts[1])
    except ValueError:
        raise ShardError(
            f"--shard {text!r}: expected K/N with integers, e.g. 0/4 (shards are 0-based)"
        ) from None
    if count < 1 or not 0 <= index < count:
        raise ShardError(
            f"--shard {text!r}: expected 0 <= K < N (shards are numbered 0 .. N-1), e.g. 0/{max(count, 2)}"
        )
    return index, count


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ShardError(f"environment variable {name}={value!r} is not an integer") from None


def detect(shard: str | None = None, env: Mapping[str, str] | None = None) -> Shard:
    """The shard of this process from ``--shard`` (``shard``), torchrun's or SLURM's variables.

    Args:
        shard: the ``--shard K/N`` text, or None when the option was not given.
        env: the environment to read (default ``os.environ``).

    Raises:
        ShardError: a malformed ``--shard``, or ``--shard`` under torchrun with more than one rank.
    """
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE") or 1
    if shard is not None:
        if world > 1:
            raise ShardError(
                f"--shard {shard} under torchrun with WORLD_SIZE={world}: use one of them, not both"
            )
        index, count = parse_shard(shard)
        return Shard(index, count, "shard")
    if world > 1:
        rank = _env_int(env, "RANK")
        if rank is None:
            raise ShardError(f"WORLD_SIZE={world} but RANK is not set: start the job with torchrun")
        return Shard(rank, world, "torchrun", _env_int(env, "LOCAL_RANK") or 0)
    task, count = _env_int(env, "SLURM_ARRAY_TASK_ID"), _env_int(env, "SLURM_ARRAY_TASK_COUNT")
    if task is not None and count is not None and count > 1:
        first = _env_int(env, "SLURM_ARRAY_TASK_MIN") or 0
        if not 0 <= task - first < count:
            raise ShardError(
                f"SLURM array task {task} is outside {first}..{first + count - 1}: "
                "use a contiguous --array range, or pass --shard K/N"
            )
        return Shard(task - first, count, "slurm-array")
    return Shard.single()


@contextmanager
def process_group(shard: Shard, device: str = "cpu") -> Iterator[Shard]:
    """Join torchrun's process group for the duration of the block (no-op unless ``shard.grouped``).

    ``nccl`` when ``device`` is a CUDA device, else ``gloo``. A group that is already initialized
    (by the caller) is used as it is and left alone at exit.
    """
    if not shard.grouped:
        yield shard
        return
    import torch.distributed as dist

    own = not dist.is_initialized()
    if own:
        backend = "nccl" if str(device).startswith("cuda") else "gloo"
        if backend == "nccl":
            import torch

            torch.cuda.set_device(shard.local_rank)
        dist.init_process_group(backend=backend)
    try:
        yield shard
    finally:
        if own and dist.is_initialized():
            dist.destroy_process_group()


def _group_active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if _group_active():
        import torch.distributed as dist

        dist.barrier()


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` without a process group).

    The objects travel pickled between the job's own processes (never from a file); keep them small
    (numpy arrays of predictions, not images).
    """
    if not _group_active():
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (``obj`` itself without a process group)."""
    if not _group_active():
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
