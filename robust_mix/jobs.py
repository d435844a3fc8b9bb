"""One driver for every sharded set writer (``make-c``, ``make-p``, ``ipmix-fractals generate``), and the
worker pool.

A *set* is a folder of *units* (one file or sub-folder each: a corruption's ``.npy``, the fractal
pictures) whose items are split in contiguous blocks over processes (:mod:`robust_mix.distributed`).
A writer describes its set with :class:`SetWriter` and :class:`Unit`; :func:`write_set` runs it in
one of three ways, the same for every writer:

- **single**: the whole set in this process, unit after unit, straight into the final layout;
- **part** (``--shard K/N``, a SLURM array task, a torchrun rank): only this shard's block, into
  ``<root>/.shards/K-of-N`` (:mod:`robust_mix.shard_parts`), recorded unit by unit in ``part.json``;
- **merge** (``--merge``, or rank 0 after a torchrun barrier): the final layout assembled from N
  finished parts made with the same options, exactly as the single run writes it; the parts are then
  removed.

A unit already finished in the final layout is kept in every mode; one finished in this shard's
part is kept by a rerun of that shard. The driver knows nothing of images, arrays or manifests:
those are the writer's.

The worker pool (:func:`worker_pool`, :func:`pool_map`) runs picklable jobs in ``spawn``-started
processes that die with the command, even when the command is killed by SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from robust_mix.distributed import Shard, barrier
from robust_mix.shard_parts import (
    check_merge,
    claim_part,
    find_complete,
    record_part,
    remove_keys,
)

__all__ = [
    "Outcome",
    "SetWriter",
    "Status",
    "Tick",
    "Unit",
    "command_alive",
    "pool_map",
    "worker_pool",
    "write_set",
]

#: What to do about a unit's final file: keep it (finished with these settings), make it (absent),
#: or replace it (left half-done by a killed run, or ``--force``).
Status = Literal["keep", "make", "replace"]
#: Progress callback: ``tick(n)`` after ``n`` more items (rows, pictures) are written.
Tick = Callable[[float], Any]

T = TypeVar("T")
R = TypeVar("R")


class Unit(Protocol):
    """One file or folder of a set; its items are the set's items (``weight`` rows each).

    Attributes:
        key: the unit's name in the part records (``"fog"``, ``"pictures"``).
        label: what the progress bar calls it.
        settings: what a part must have finished it with to be merged (JSON-able).
        weight: rows written per item (the severities of a -C file; 1 otherwise); the progress total
            of the unit is ``weight * items``.
        part_paths: the paths, relative to a part folder, that a merge removes once the unit is in place.
    """

    key: str
    label: str
    settings: Any
    weight: int
    part_paths: Sequence[str]

    def status(self) -> Status:
        """The final file's state (decides only; nothing is removed here). May raise to refuse."""
        ...

    def clear(self) -> None:
        """Remove the final file before it is written again (status ``"replace"``)."""
        ...

    def begin(self) -> None:
        """Just before the final file is written (announce it in the set's manifest)."""
        ...

    def produce(self, folder: Path, span: range, tick: Tick) -> None:
        """Write the unit's ``span`` (split indices) into ``folder``: the set's root or a part folder."""
        ...

    def assemble(self, parts: Mapping[int, Path], tick: Tick) -> None:
        """Write the final file from the part folders of shards ``0 .. N-1``."""
        ...

    def finish(self) -> None:
        """After the final file is in place (record it as finished)."""
        ...


class SetWriter(Protocol):
    """A set: where it goes, how it is split, its units, and the hooks around the final layout.

    Attributes:
        root: the set's folder (holds ``.shards``).
        split: the number of split indices (chunks of images, pictures) shared out over the shards.
        items: the number of items (images, pictures) of the whole set: the progress unit.
        units: the set's units, written in this order.
    """

    root: Path
    split: int
    items: int
    units: Sequence[Unit]

    def options(self) -> Mapping[str, Any]:
        """What every part must have been made with to be merged (JSON-able; the source's fingerprint)."""
        ...

    def item_span(self, span: range) -> range:
        """The items of the split indices ``span``."""
        ...

    def before_final(self) -> None:
        """Before the first unit of the final layout is written (set-wide files: labels)."""
        ...

    def after_final(self) -> None:
        """After the final layout is complete (the set's manifest)."""
        ...

    #: the command that writes the set, named when another run finds its part locked
    command: str

    def lock(self, folder: Path) -> contextlib.AbstractContextManager[Any]:
        """Held while the final layout ``folder`` is written; ``contextlib.nullcontext()`` for none
        (a shard's part is locked by :func:`robust_mix.shard_parts.claim_part`)."""
        ...

    def progress(self, enabled: bool) -> Any:
        """A rich ``Progress`` (disabled when not ``enabled``)."""
        ...


@dataclass
class Outcome:
    """What :func:`write_set` did in this process.

    Attributes:
        final: the final layout was written here (single run or merge); otherwise a part.
        shard: this process's shard.
        folder: the set's root (final) or the part folder.
        span: the items this process wrote (all of them for a final layout).
        files: the units finished in the part, ``{key: settings}`` (empty for a final layout).
        seconds: wall time of the writing, in seconds.
    """

    final: bool
    shard: Shard
    folder: Path
    span: range
    files: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def _kept(bar: Any, label: str, total: int) -> None:
    bar.add_task(f"{label} (kept)", total=total, completed=total)


def write_single(writer: SetWriter, bar: Any) -> None:
    """The whole set in this process, into the final layout."""
    writer.before_final()
    for unit in writer.units:
        status, total = unit.status(), unit.weight * writer.items
        if status == "keep":
            _kept(bar, unit.label, total)
            continue
        if status == "replace":
            unit.clear()
        task = bar.add_task(unit.label, total=total)
        unit.begin()
        unit.produce(writer.root, range(writer.split), lambda n, task=task: bar.advance(task, n))
        unit.finish()
    writer.after_final()


def write_part(writer: SetWriter, shard: Shard, bar: Any) -> Outcome:
    """Shard ``shard``'s block of the set, in ``.shards/K-of-N`` (never the final layout).

    A unit finished in the final layout, or in this part with these settings, is skipped. Under
    torchrun rank 0's bar shows the whole set: its own progress times N / its share (an estimate;
    ranks do not report their counts while they work).
    """
    options = writer.options()
    chunks = shard.span(writer.split)
    span = writer.item_span(chunks)
    scale = writer.items / len(span) if shard.grouped and span else 1.0
    shown = writer.items if shard.grouped else len(span)
    # the part is locked while this shard writes, and refused if another job (other options) made it
    with claim_part(writer.root, shard, options, f"{writer.command} --shard {shard.index}/{shard.count}") as (
        folder,
        done,
    ):
        for unit in writer.units:
            total = unit.weight * shown
            if unit.status() == "keep" or done.get(unit.key) == _plain(unit.settings):
                _kept(bar, unit.label, total)
                continue
            done.pop(unit.key, None)
            task = bar.add_task(unit.label, total=total)
            unit.produce(folder, chunks, lambda n, task=task: bar.advance(task, n * scale))
            done[unit.key] = _plain(unit.settings)
            record_part(folder, shard, options, span, done, done=False)
        record_part(folder, shard, options, span, done, done=True)
    return Outcome(False, shard, folder, span, done)


def _plain(settings: Any) -> Any:
    """``settings`` as a part record holds them (after a JSON round trip)."""
    return json.loads(json.dumps(settings, default=str))


def write_merge(writer: SetWriter, bar: Any, prefer: int | None = None) -> None:
    """Assemble the final layout from the shard parts, exactly as :func:`write_single` writes it, then
    remove the parts.

    Raises:
        robust_mix.shard_parts.PartsMissing: some shard has not finished a unit the set still needs.
    """
    status = {unit.key: unit.status() for unit in writer.units}
    needed = {unit.key: unit.settings for unit in writer.units if status[unit.key] != "keep"}
    parts = find_complete(writer.root, writer.options(), needed, prefer)[1] if needed else {}
    writer.before_final()
    for unit in writer.units:
        total = unit.weight * writer.items
        if status[unit.key] == "keep":
            _kept(bar, unit.label, total)
            continue
        if status[unit.key] == "replace":
            unit.clear()
        task = bar.add_task(f"{unit.label} (merge)", total=total)
        unit.begin()
        unit.assemble(parts, lambda n, task=task: bar.advance(task, n))
        unit.finish()
        remove_keys(parts.values(), {unit.key: list(unit.part_paths)})
    writer.after_final()


def write_set(writer: SetWriter, shard: Shard | None, merge: bool, show: bool) -> Outcome:
    """Run ``writer``: as one process, as shard ``shard``'s part, or as the ``merge`` of the parts.

    Under torchrun every rank writes its part, then rank 0 merges after a barrier (the other ranks
    return their part's outcome). ``show``: progress bars (on stderr, shard 0 only).

    Raises:
        robust_mix.distributed.ShardError: ``merge`` in a process that is itself a shard.
        robust_mix.shard_parts.PartsMissing: a merge that lacks a finished part.
    """
    shard = shard or Shard.single()
    check_merge(shard, merge)
    start = time.perf_counter()
    if merge or not (shard.partial or shard.grouped):
        with writer.lock(writer.root), writer.progress(show) as bar:
            (write_merge if merge else write_single)(writer, bar)
        return Outcome(True, shard, writer.root, range(writer.items), seconds=time.perf_counter() - start)
    with writer.progress(show and shard.is_main) as bar:
        part = write_part(writer, shard, bar)
    part.seconds = time.perf_counter() - start
    if not shard.grouped:
        return part
    barrier()
    if not shard.is_main:
        return part
    with writer.lock(writer.root), writer.progress(show) as bar:
        write_merge(writer, bar, prefer=shard.count)
    return Outcome(True, shard, writer.root, range(writer.items), seconds=time.perf_counter() - start)


# --------------------------------------------------------------------------------------------------
# the worker pool
# --------------------------------------------------------------------------------------------------
_COMMAND_PID: int | None = None  # set in worker processes only


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes that die with the command.

    Workers are started with ``spawn`` (never ``fork``: a forked copy of a process whose BLAS or
    OpenCV threads are running can deadlock), so their parent is the command itself. Each worker
    watches the command: when the command is killed, even by SIGKILL, the workers stop (a job that
    must not start after the command died checks :func:`command_alive` first).
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
    )


def pool_map(fn: Callable[[T], R], jobs: Sequence[T], workers: int, chunksize: int = 4) -> Iterator[R]:
    """``fn`` over ``jobs`` in order: in :func:`worker_pool` processes when ``workers`` > 1 and there is
    more than one job, else in this process. ``fn`` and the jobs must pickle (a module-level function)."""
    if workers <= 1 or len(jobs) <= 1:
        yield from map(fn, jobs)
        return
    with worker_pool(min(workers, len(jobs))) as pool:
        yield from pool.map(fn, jobs, chunksize=chunksize)


def _init_worker(command_pid: int) -> None:
    """Worker set-up: one OpenCV thread (the workers already use every core), and die with the command.

    On Linux the kernel sends SIGKILL to the worker when its parent exits (``PR_SET_PDEATHSIG``); on
    every platform a daemon thread checks every 0.1 s that the command is alive and ends the worker
    otherwise.
    """
    import cv2  # the workers' heavy dependency, imported where it is configured

    cv2.setNumThreads(1)
    global _COMMAND_PID
    _COMMAND_PID = command_pid
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    threading.Thread(target=_watch_command, daemon=True, name="watch-command").start()


def command_alive() -> bool:
    """In a :func:`worker_pool` worker: whether the command that started it still runs (True elsewhere)."""
    if _COMMAND_PID is None:
        return True
    if os.getppid() != _COMMAND_PID:
        return False  # re-parented: the command is gone
    try:
        os.kill(_COMMAND_PID, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_command() -> None:
    while command_alive():
        time.sleep(0.1)
    os._exit(1)
