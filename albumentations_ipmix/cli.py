"""``ipmix-fractals``: materialize a procedural fractal mixing set, or preview one as a contact sheet.

The pictures are exactly those of the procedural source (``IPMix()``'s default, or
``IPMix(fractals={"type": "procedural", "seed": K, "kinds": [...], "count": N})``): picture ``i`` of
seed ``K`` has kind ``kinds[i % len(kinds)]`` and is a pure function of ``(K, i, size)``.

``generate`` splits over processes (:mod:`robust_mix.distributed`): under torchrun the ranks render
contiguous blocks of indices and rank 0 assembles the set after a barrier; with ``--shard K/N`` (or
a SLURM array) a process renders its block into ``OUT/.shards/K-of-N`` and ``--merge`` assembles the
set once every block is done. The files are those of one process, for every N.

Run ``ipmix-fractals --help`` (or ``python -m albumentations_ipmix.cli --help``) for the documentation.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from robust_mix.cli import fail, progress, run
from robust_mix.distributed import Shard, ShardError, barrier, detect, process_group
from robust_mix.errors import RobustMixError, UsageError
from robust_mix.files import MAX_PIXELS, TMP_PREFIX, FileProblem, OutputLock, atomic_write
from robust_mix.shard_parts import (
    SHARDS_DIR,
    PartsMissing,
    check_merge,
    claim_part,
    find_complete,
    link_file,
    part_dir,
    record_part,
    remove_keys,
    rerun_hint,
)

from .fractals import DEFAULT_KINDS, RENDERER_VERSION, kind_of, parse_kinds, render_fractal

__all__ = ["MANIFEST_NAME", "app", "main", "picture_path"]

#: Manifest written into every folder ``generate`` creates (its parameters; used to resume safely).
MANIFEST_NAME = "ipmix-fractals.json"
#: Size limits (pixels) accepted by the commands.
MIN_SIZE, MAX_SIZE = 16, 2048
#: Most pictures one set holds (IPMix's published set has 13,000): a larger --count is a typo.
MAX_COUNT = 1_000_000
#: Prefix of the temporary files (the project-wide one; leftovers of a killed run are deleted).
TMP_MARK = TMP_PREFIX

app = typer.Typer(
    name="ipmix-fractals",
    help=(
        "Procedural fractal mixing sets for IPMix / PixMix.\n\n"
        "Pictures are IFS fractals (chaos game, random colours and backgrounds) and Mandelbrot / Julia "
        "escape-time fractals with orbit-trap colouring, each a pure function of (seed, index, size). "
        "Picture i has kind KINDS[i % len(KINDS)], so the default kinds give an even mix. The same "
        "pictures back IPMix() when no fractals= is given."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_KINDS_HELP = (
    "Comma-separated fractal kinds, cycled through by index: any of ifs, mandelbrot, julia (repeats "
    "weight the mix, e.g. ifs,ifs,julia)."
)


PROG = "ipmix-fractals"


def picture_path(out: Path, kind: str, index: int) -> Path:
    """Where ``generate`` writes picture ``index``: ``OUT/<kind>/<kind>_<index:05d>.png``."""
    return out / kind / f"{kind}_{index:05d}.png"


def _check_common(count: int, size: int, seed: int, kinds: str) -> tuple[str, ...]:
    if not 1 <= count <= MAX_COUNT:
        raise UsageError(f"--count must be between 1 and {MAX_COUNT:,} pictures, got {count}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels, got {size}")
    if seed < 0:
        raise UsageError(f"--seed must be a non-negative integer, got {seed}")
    try:
        return parse_kinds(kinds)
    except ValueError as exc:
        raise UsageError(f"--kinds: {exc}") from exc


def _manifest(count: int, size: int, seed: int, kinds: tuple[str, ...]) -> dict[str, Any]:
    return {
        "tool": "ipmix-fractals",
        "renderer": RENDERER_VERSION,
        "count": count,
        "size": size,
        "seed": seed,
        "kinds": list(kinds),
        "layout": "<kind>/<kind>_<index:05d>.png",
    }


def _encode_png(image: np.ndarray, compression: int = 3) -> bytes:
    """RGB uint8 -> PNG bytes (``compression`` 0-9: zlib level; 3 is fast, 9 smallest)."""
    params = [cv2.IMWRITE_PNG_COMPRESSION, compression]
    ok, buffer = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]), params)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buffer.tobytes()


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("tool") == "ipmix-fractals" else None


def _prepare_out(out: Path, manifest: dict[str, Any], resume: bool, force: bool) -> str:
    """Decide how to write into ``out``: returns ``"new"``, ``"resume"`` or ``"force"`` (or raises)."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUT '{out}' exists and is not a folder; pass a folder path")
    ours = (OutputLock.NAME, SHARDS_DIR)
    entries = [e for e in out.iterdir() if e.name not in ours] if out.exists() else []
    if not entries:
        if resume:
            raise UsageError(
                f"--resume: '{out}' holds no run to resume (it is empty or missing); drop --resume"
            )
        return "new"
    manifest_path = out / MANIFEST_NAME
    existing = _read_manifest(manifest_path) if manifest_path.is_file() else None
    if existing is None:
        if force:
            return "force"
        raise UsageError(
            f"'{out}' is not empty and was not created by ipmix-fractals (no valid {MANIFEST_NAME}); "
            "choose an empty or new folder, or pass --force to write into it anyway"
        )
    differing = sorted(k for k in manifest if existing.get(k) != manifest[k])
    if differing:
        if force:
            return "force"
        shown = ", ".join(f"{k}={existing.get(k)!r} (now {manifest[k]!r})" for k in differing)
        raise UsageError(
            f"'{out}' holds a set made with different parameters: {shown}; use the same parameters to "
            "resume, another folder, or --force to re-render every picture"
        )
    return "force" if force else "resume"


def _clean_temporaries(out: Path, kinds: tuple[str, ...]) -> int:
    removed = 0
    for kind in set(kinds):
        folder = out / kind
        if folder.is_dir():
            for leftover in folder.glob(f"{TMP_MARK}*"):
                leftover.unlink(missing_ok=True)
                removed += 1
    return removed


def _render_to_file(job: tuple[str, tuple[str, ...], int, int, int]) -> int:
    """Render picture ``index`` of a set and write it atomically (runs in worker processes too)."""
    out, kinds, seed, size, index = job
    if not _command_alive():
        os._exit(1)  # the command was killed: write nothing more
    kind = kind_of(index, kinds)
    atomic_write(
        picture_path(Path(out), kind, index), _encode_png(render_fractal(kind, seed, index, size, size))
    )
    return index


def _start_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of rendering processes that die with the command.

    Workers are started with ``spawn`` (never ``fork``: a forked copy of a process whose BLAS or
    OpenCV threads are running can deadlock), so their parent is the command itself. Each worker
    watches the command (:func:`_init_worker`): when the command is killed, even by SIGKILL, the
    workers stop before writing another picture.
    """
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(os.getpid(),)
    )


def _init_worker(command_pid: int) -> None:
    """Worker set-up: one OpenCV thread (the workers already use every core), and die with the command.

    On Linux the kernel sends SIGKILL to the worker when its parent exits (``PR_SET_PDEATHSIG``); on
    every platform a daemon thread checks every 0.1 s that the command is alive and ends the worker
    otherwise, and :func:`_render_to_file` checks again before each picture.
    """
    cv2.setNumThreads(1)
    global _COMMAND_PID
    _COMMAND_PID = command_pid
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    import threading

    threading.Thread(target=_watch_command, daemon=True, name="watch-command").start()


def _command_alive() -> bool:
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
    while _command_alive():
        time.sleep(0.1)
    os._exit(1)


_COMMAND_PID: int | None = None  # set in worker processes only


def _progress(console: Console, disable: bool) -> Progress:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return progress(console, *columns, enabled=not disable)


def _render(folder: Path, manifest: dict[str, Any], todo: list[int], workers: int, tick: Any) -> None:
    """Render pictures ``todo`` of the set into ``folder``, ``workers`` processes; ``tick()`` after each."""
    kind_list = tuple(manifest["kinds"])
    for kind in set(kind_list):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    _clean_temporaries(folder, kind_list)
    jobs = [(str(folder), kind_list, manifest["seed"], manifest["size"], index) for index in todo]
    with contextlib.ExitStack() as stack:
        pool = None
        if workers > 1 and len(todo) > 1:
            pool = stack.enter_context(_start_pool(min(workers, len(todo))))
        results = pool.map(_render_to_file, jobs, chunksize=4) if pool else map(_render_to_file, jobs)
        for _ in results:
            tick()


def _missing(folder: Path, manifest: dict[str, Any], indices: range, keep: bool) -> list[int]:
    """The pictures of ``indices`` not yet in ``folder`` (all of them unless ``keep``)."""
    kind_list = tuple(manifest["kinds"])
    return [i for i in indices if not (keep and picture_path(folder, kind_of(i, kind_list), i).is_file())]


def _generate_into(
    out: Path, manifest: dict[str, Any], mode: str, workers: int, console: Console, quiet: bool
) -> tuple[list[int], int, float]:
    """Render the missing pictures of a set into ``out`` (locked by the caller); returns (todo, kept, s)."""
    count = manifest["count"]
    todo = _missing(out, manifest, range(count), keep=mode == "resume")
    atomic_write(out / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    kept = count - len(todo)
    start = time.perf_counter()
    with _progress(console, disable=quiet) as progress:
        task = progress.add_task(f"fractals -> {out}", total=count, completed=kept)
        _render(out, manifest, todo, workers, lambda: progress.advance(task))
    return todo, kept, time.perf_counter() - start


def _generate_part(
    out: Path, manifest: dict[str, Any], shard: Shard, workers: int, console: Console, quiet: bool
) -> tuple[list[int], int, float]:
    """Render shard ``shard``'s block of pictures into ``OUT/.shards/K-of-N`` (never the final layout).

    Pictures already in the part are kept (each is written atomically, so one that exists is
    whole): a killed shard resumes. Under torchrun rank 0's bar shows the whole set, its own count
    times N / its share (an estimate; the ranks do not report counts while they work).
    """
    span = shard.span(manifest["count"])
    start = time.perf_counter()
    with claim_part(out, shard, manifest, "ipmix-fractals generate --shard") as (folder, done):
        todo = [] if done.get("pictures") else _missing(folder, manifest, span, keep=True)
        kept = len(span) - len(todo)
        scale = manifest["count"] / len(span) if shard.grouped and span else 1.0
        total = manifest["count"] if shard.grouped else len(span)
        with _progress(console, disable=quiet or not shard.is_main) as progress:
            task = progress.add_task(f"fractals shard {shard.index}/{shard.count}", total=total)
            progress.advance(task, kept * scale)
            _render(folder, manifest, todo, workers, lambda: progress.advance(task, scale))
        record_part(folder, shard, manifest, span, {"pictures": True}, done=True)
    return todo, kept, time.perf_counter() - start


def _merge_into(
    out: Path, manifest: dict[str, Any], mode: str, prefer: int | None, console: Console, quiet: bool
) -> tuple[list[int], int, float]:
    """Assemble the set in ``out`` (locked by the caller) from the shard parts, exactly as one process
    writes it, then remove the parts; returns (pictures placed, kept, seconds)."""
    count, kind_list = manifest["count"], tuple(manifest["kinds"])
    start = time.perf_counter()
    todo = _missing(out, manifest, range(count), keep=mode == "resume")
    parts = find_complete(out, manifest, {"pictures": True}, prefer)[1] if todo else {}
    for kind in set(kind_list):
        (out / kind).mkdir(parents=True, exist_ok=True)
    _clean_temporaries(out, kind_list)
    atomic_write(out / MANIFEST_NAME, json.dumps(manifest, indent=2) + "\n")
    owner = {i: k for k in parts for i in Shard(k, len(parts), "shard").span(count)}
    with _progress(console, disable=quiet) as progress:
        task = progress.add_task(f"merge -> {out}", total=count, completed=count - len(todo))
        for index in todo:
            kind = kind_of(index, kind_list)
            link_file(picture_path(parts[owner[index]], kind, index), picture_path(out, kind, index))
            progress.advance(task)
    remove_keys(parts.values(), {"pictures": sorted(set(kind_list))})
    return todo, count - len(todo), time.perf_counter() - start


@app.command()
def generate(
    out: Path = typer.Argument(
        ..., help="Output folder (created if missing). Gets OUT/<kind>/<kind>_<index>.png."
    ),
    count: int = typer.Option(1000, "--count", "-n", help="Number of pictures (indices 0 .. N-1)."),
    size: int = typer.Option(256, "--size", "-s", help=f"Square side in pixels ({MIN_SIZE}-{MAX_SIZE})."),
    seed: int = typer.Option(
        0, "--seed", help="Set seed (non-negative integer); with the index it fixes each picture."
    ),
    kinds: str = typer.Option(",".join(DEFAULT_KINDS), "--kinds", "-k", help=_KINDS_HELP),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue an interrupted run in OUT (must have been made with the same parameters).",
    ),
    force: bool = typer.Option(
        False,
        "--force",
        help="Write into a non-empty folder not made by ipmix-fractals, or one made with other parameters: "
        "every picture is rendered again and files at its path are replaced; other files are left alone.",
    ),
    workers: int = typer.Option(
        1,
        "--workers",
        "-j",
        help="Processes rendering in parallel (0: one per CPU core). Output is the same.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary (for scripts) instead of text."),
    shard: str | None = typer.Option(
        None,
        "--shard",
        help="K/N: render only shard K (0-based) of N into OUT/.shards/K-of-N, then assemble with --merge "
        "(a SLURM array sets it by itself; under torchrun the ranks split the set and rank 0 merges).",
    ),
    merge: bool = typer.Option(
        False,
        "--merge",
        help="Assemble the set from the finished --shard / SLURM array parts, then remove them.",
    ),
) -> None:
    """Write COUNT fractal pictures as PNGs in an ImageFolder layout (one folder per kind).

    A manifest (ipmix-fractals.json) records the parameters. Running the same command again resumes:
    finished pictures are kept as they are (each file is written to a temporary name and renamed, so a
    file that exists is complete) and only missing ones are rendered; the result is identical to an
    uninterrupted run. The command refuses to write into a non-empty folder it did not create, and to
    resume with different parameters, unless --force is given.

    Split over processes with torchrun (--nproc-per-node N), a SLURM array or --shard K/N + --merge:
    the pictures are the same for every N.

    Example: ipmix-fractals generate fractals/ --count 13000 --size 256 --seed 0 --workers 0
    """
    try:
        kind_list = _check_common(count, size, seed, kinds)
        if workers < 0:
            raise UsageError(f"--workers must be >= 0 (0: one per CPU core), got {workers}")
        workers = workers or os.cpu_count() or 1
        manifest = _manifest(count, size, seed, kind_list)
        part = detect(shard)
        check_merge(part, merge)
        split = part.partial or part.grouped
        mode = _prepare_out(out, manifest, resume and not split and not merge, force)
    except (UsageError, ShardError) as exc:
        fail(PROG, str(exc))
    console = Console(stderr=True)
    quiet = quiet or as_json
    try:
        with process_group(part, "cpu"):
            if split:
                todo, kept, seconds = _generate_part(out, manifest, part, workers, console, quiet)
                barrier()
            if split and not part.grouped:
                _summary_line(out, count, todo, kept, seconds, as_json, quiet, part)
                return
            if part.is_main:
                with OutputLock(out, "ipmix-fractals generate"):
                    if merge or split:
                        prefer = part.count if split else None
                        todo, kept, seconds = _merge_into(out, manifest, mode, prefer, console, quiet)
                    else:
                        todo, kept, seconds = _generate_into(out, manifest, mode, workers, console, quiet)
                _summary_line(out, count, todo, kept, seconds, as_json, quiet, None)
    except PartsMissing as exc:
        fail(PROG, rerun_hint(exc, "ipmix-fractals", sys.argv[1:]))
    except FileProblem as exc:
        fail(PROG, str(exc), code=1)
    except RobustMixError as exc:  # a shard part of another job, or not intact (robust_mix.shard_parts)
        fail(PROG, str(exc), exc.exit_code)


def _summary_line(
    out: Path,
    count: int,
    todo: list[int],
    kept: int,
    seconds: float,
    as_json: bool,
    quiet: bool,
    part: Shard | None,
) -> None:
    """What ``generate`` prints at the end: the set written, or the part a shard wrote."""
    summary: dict[str, Any] = {
        "out": str(out),
        "count": count,
        "written": len(todo),
        "kept": kept,
        "seconds": round(seconds, 3),
    }
    if part is not None:
        span = part.span(count)
        summary.update(shard=f"{part.index}/{part.count}", span=[span.start, span.stop])
    if as_json:
        typer.echo(json.dumps(summary))
    elif quiet:
        return
    elif part is None:
        Console(stderr=True).print(
            f"wrote {len(todo)} picture(s), kept {kept} existing, in {seconds:.1f} s -> {out}"
        )
    else:
        what = f"pictures {span.start}..{span.stop - 1}" if span else "no pictures: more shards than pictures"
        Console(stderr=True).print(
            f"wrote shard {part.index}/{part.count} ({what}): rendered {len(todo)}, kept {kept}, in "
            f"{seconds:.1f} s -> {part_dir(out, part)}; when every shard is done, run the same command "
            "with --merge"
        )


@app.command()
def preview(
    out: Path = typer.Argument(..., help="Contact sheet to write (.png)."),
    count: int = typer.Option(
        24, "--count", "-n", help="Number of pictures on the sheet (indices 0 .. N-1)."
    ),
    size: int = typer.Option(
        128, "--size", "-s", help=f"Side of each picture in pixels ({MIN_SIZE}-{MAX_SIZE})."
    ),
    seed: int = typer.Option(0, "--seed", help="Set seed (the same pictures as generate with this seed)."),
    kinds: str = typer.Option(",".join(DEFAULT_KINDS), "--kinds", "-k", help=_KINDS_HELP),
    columns: int = typer.Option(0, "--columns", "-c", help="Pictures per row (0: about square)."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it exists."),
) -> None:
    """Render a contact sheet: a grid of the first COUNT pictures, 2 px apart on a dark background.

    Example: ipmix-fractals preview sheet.png --count 24 --size 128
    """
    try:
        kind_list = _check_common(count, size, seed, kinds)
        if columns < 0:
            raise UsageError(f"--columns must be >= 0, got {columns}")
        if out.suffix.lower() != ".png":
            raise UsageError(f"OUT '{out}' must end in .png")
        if out.exists() and not force:
            raise UsageError(f"'{out}' exists; pass --force to replace it")
        if out.exists() and not out.is_file():
            raise UsageError(f"OUT '{out}' exists and is not a file")
        if not out.parent.is_dir():
            raise UsageError(f"folder '{out.parent}' of OUT does not exist; create it first")
        if count > 4096:
            raise UsageError(f"--count {count} is too many for one sheet (at most 4096)")
        cols = min(columns or math.ceil(math.sqrt(count)), count)
        rows = math.ceil(count / cols)
        gap = 2
        pixels = (rows * (size + gap) + gap) * (cols * (size + gap) + gap)
        if pixels > MAX_PIXELS:  # larger than any picture the project decodes (a bomb to a reader)
            raise UsageError(
                f"a {rows}x{cols} sheet of {size} px pictures is {pixels:,} pixels, more than "
                f"{MAX_PIXELS:,}; lower --count or --size"
            )
    except UsageError as exc:
        fail(PROG, str(exc))
    sheet = np.full((rows * (size + gap) + gap, cols * (size + gap) + gap, 3), 24, np.uint8)
    console = Console(stderr=True)
    lock = OutputLock(out.parent, "ipmix-fractals preview", name=f".{out.name}.lock")
    with _held(lock), _progress(console, disable=False) as progress:
        task = progress.add_task("preview", total=count)
        for index in range(count):
            row, col = divmod(index, cols)
            top, left = gap + row * (size + gap), gap + col * (size + gap)
            sheet[top : top + size, left : left + size] = render_fractal(
                kind_of(index, kind_list), seed, index, size, size
            )
            progress.advance(task)
        try:
            atomic_write(out, _encode_png(sheet, compression=9))
        except FileProblem as exc:
            fail(PROG, exc)
    console.print(f"wrote a {rows}x{cols} contact sheet ({sheet.shape[1]}x{sheet.shape[0]} px) -> {out}")


@contextlib.contextmanager
def _held(lock: OutputLock) -> Iterator[None]:
    """Hold ``lock``; a run that holds it already ends this one with one line (exit 2)."""
    try:
        lock.acquire()
    except FileProblem as exc:
        fail(PROG, exc)
    try:
        yield
    finally:
        lock.release()


def main() -> None:
    """Console entry point: one-line errors and exit status 2 for bad input (see robust_mix.cli)."""
    run(app, PROG)


if __name__ == "__main__":
    main()
