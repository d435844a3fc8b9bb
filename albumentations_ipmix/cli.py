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
import inspect
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

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

from robust_mix.cli import Option, Range, check_options, command, fail, progress, run
from robust_mix.distributed import Shard, ShardError, detect, process_group
from robust_mix.errors import RobustMixError, UsageError
from robust_mix.files import MAX_PIXELS, TMP_PREFIX, FileProblem, OutputLock, atomic_write
from robust_mix.jobs import Tick, command_alive, pool_map, write_set
from robust_mix.shard_parts import (
    SHARDS_DIR,
    PartsMissing,
    check_merge,
    link_file,
    part_dir,
    rerun_hint,
)

from .fractals import DEFAULT_KINDS, RENDERER_VERSION, kind_of, parse_kinds, render_fractal

__all__ = ["MANIFEST_NAME", "app", "main", "picture_path"]

#: Manifest written into every folder ``generate`` creates (its parameters; used to resume safely).
MANIFEST_NAME = "ipmix-fractals.json"
#: Size limits (pixels) accepted by the commands.
MIN_SIZE, MAX_SIZE = 16, 2048
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


def _check_common(kinds: str) -> tuple[str, ...]:
    """The fractal kinds of ``--kinds`` (the numeric options are checked by their :class:`Option` rows)."""
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
    if not command_alive():
        os._exit(1)  # the command was killed: write nothing more
    kind = kind_of(index, kinds)
    atomic_write(
        picture_path(Path(out), kind, index), _encode_png(render_fractal(kind, seed, index, size, size))
    )
    return index


def _progress(console: Console, disable: bool) -> Progress:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return progress(console, *columns, enabled=not disable)


def _missing(folder: Path, kinds: tuple[str, ...], indices: range, keep: bool) -> list[int]:
    """The pictures of ``indices`` not yet in ``folder`` (all of them unless ``keep``)."""
    return [i for i in indices if not (keep and picture_path(folder, kind_of(i, kinds), i).is_file())]


@dataclass
class _FractalSet:
    """A fractal set as a :class:`robust_mix.jobs.SetWriter` of one unit (the pictures) split by picture.

    ``mode`` (from :func:`_prepare_out`): ``"resume"`` keeps the pictures already in OUT. ``written``
    and ``kept`` count the pictures of the last run (for the summary line).
    """

    root: Path
    manifest: dict[str, Any]
    mode: str
    workers: int
    console: Console
    written: int = 0
    kept: int = 0
    key: str = "pictures"
    settings: bool = True
    weight: int = 1
    command: str = "ipmix-fractals generate"

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.manifest["kinds"])

    @property
    def split(self) -> int:
        return int(self.manifest["count"])

    items = split

    @property
    def units(self) -> list[_FractalSet]:
        return [self]

    @property
    def label(self) -> str:
        return f"fractals -> {self.root}"

    @property
    def part_paths(self) -> list[str]:
        return sorted(set(self.kinds))

    def options(self) -> dict[str, Any]:
        return self.manifest

    def item_span(self, span: range) -> range:
        return span

    def lock(self, folder: Path) -> OutputLock:
        return OutputLock(folder, "ipmix-fractals generate" + (" --shard" if folder != self.root else ""))

    def progress(self, enabled: bool) -> Progress:
        return _progress(self.console, disable=not enabled)

    def before_final(self) -> None:
        pass

    def after_final(self) -> None:
        pass

    def status(self) -> str:
        todo = _missing(self.root, self.kinds, range(self.split), keep=self.mode == "resume")
        self.written, self.kept = 0, self.split - len(todo)
        return "make" if todo else "keep"

    def clear(self) -> None:
        pass

    def _open(self, folder: Path) -> None:
        for kind in set(self.kinds):
            (folder / kind).mkdir(parents=True, exist_ok=True)
        _clean_temporaries(folder, self.kinds)

    def begin(self) -> None:
        self._open(self.root)
        atomic_write(self.root / MANIFEST_NAME, json.dumps(self.manifest, indent=2) + "\n")

    def produce(self, folder: Path, span: range, tick: Tick) -> None:
        """Render the missing pictures of ``span`` into ``folder`` (OUT, or a shard's part folder, where
        the pictures already there are kept: each is written atomically, so one that exists is whole)."""
        todo = _missing(folder, self.kinds, span, keep=self.mode == "resume" or folder != self.root)
        self.written, self.kept = len(todo), len(span) - len(todo)
        tick(self.kept)
        self._open(folder)
        jobs = [(str(folder), self.kinds, self.manifest["seed"], self.manifest["size"], i) for i in todo]
        for _ in pool_map(_render_to_file, jobs, self.workers):
            tick(1)

    def assemble(self, parts: Mapping[int, Path], tick: Tick) -> None:
        todo = _missing(self.root, self.kinds, range(self.split), keep=self.mode == "resume")
        self.written, self.kept = len(todo), self.split - len(todo)
        tick(self.kept)
        owner = {i: k for k in parts for i in Shard(k, len(parts), "shard").span(self.split)}
        for index in todo:
            kind = kind_of(index, self.kinds)
            link_file(picture_path(parts[owner[index]], kind, index), picture_path(self.root, kind, index))
            tick(1)

    def finish(self) -> None:
        pass


def _opt(flags: tuple[str, ...], help: str, kind: Any = int) -> Any:
    return Annotated[kind, typer.Option(*flags, help=help)]


_OUT_DIR = inspect.Parameter(
    "out",
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    annotation=Annotated[
        Path, typer.Argument(help="Output folder (created if missing). Gets OUT/<kind>/<kind>_<index>.png.")
    ],
)
_SHEET = inspect.Parameter(
    "out",
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    annotation=Annotated[Path, typer.Argument(help="Contact sheet to write (.png).")],
)
_SIZE = Range(MIN_SIZE, MAX_SIZE)
#: Most pictures one set holds (IPMix's published set has 13,000): a larger --count is a typo.
MAX_COUNT = 1_000_000
_SIZE_MESSAGE = f"between {MIN_SIZE} and {MAX_SIZE} pixels"
#: The options of ``generate``, declared once with their ranges (robust_mix.cli.Option).
GENERATE_OPTIONS: tuple[Option, ...] = (
    Option(
        "count",
        _opt(("--count", "-n"), "Number of pictures (indices 0 .. N-1)."),
        1000,
        Range(1, MAX_COUNT),
        message=f"between 1 and {MAX_COUNT:,} pictures",
    ),
    Option(
        "size",
        _opt(("--size", "-s"), f"Square side in pixels ({MIN_SIZE}-{MAX_SIZE})."),
        256,
        _SIZE,
        message=_SIZE_MESSAGE,
    ),
    Option(
        "seed",
        _opt(("--seed",), "Set seed (non-negative integer); with the index it fixes each picture."),
        0,
        Range(0, 2**32 - 1),
        message="a non-negative integer below 2**32",
    ),
    Option("kinds", _opt(("--kinds", "-k"), _KINDS_HELP, str), ",".join(DEFAULT_KINDS)),
    Option(
        "resume",
        _opt(
            ("--resume",),
            "Continue an interrupted run in OUT (must have been made with the same parameters).",
            bool,
        ),
        False,
    ),
    Option(
        "force",
        _opt(
            ("--force",),
            "Write into a non-empty folder not made by ipmix-fractals, or one made with other parameters: "
            "every picture is rendered again and files at its path are replaced; other files are left alone.",
            bool,
        ),
        False,
    ),
    Option(
        "workers",
        _opt(
            ("--workers", "-j"), "Processes rendering in parallel (0: one per CPU core). Output is the same."
        ),
        1,
        Range(0, 1024),
        message="in [0, 1024] (0: one per CPU core)",
    ),
    Option("quiet", _opt(("--quiet", "-q"), "No progress bar.", bool), False),
    Option("as_json", _opt(("--json",), "Print a JSON summary (for scripts) instead of text.", bool), False),
    Option(
        "shard",
        _opt(
            ("--shard",),
            "K/N: render only shard K (0-based) of N into OUT/.shards/K-of-N, then assemble with --merge "
            "(a SLURM array sets it by itself; under torchrun the ranks split the set and rank 0 merges).",
            str | None,
        ),
        None,
    ),
    Option(
        "merge",
        _opt(
            ("--merge",),
            "Assemble the set from the finished --shard / SLURM array parts, then remove them.",
            bool,
        ),
        False,
    ),
)
#: The options of ``preview``.
PREVIEW_OPTIONS: tuple[Option, ...] = (
    Option(
        "count",
        _opt(("--count", "-n"), "Number of pictures on the sheet (indices 0 .. N-1)."),
        24,
        Range(1, MAX_COUNT),
        message=f"between 1 and {MAX_COUNT:,} pictures",
    ),
    Option(
        "size",
        _opt(("--size", "-s"), f"Side of each picture in pixels ({MIN_SIZE}-{MAX_SIZE})."),
        128,
        _SIZE,
        message=_SIZE_MESSAGE,
    ),
    Option(
        "seed",
        _opt(("--seed",), "Set seed (the same pictures as generate with this seed)."),
        0,
        Range(0, 2**32 - 1),
        message="a non-negative integer below 2**32",
    ),
    Option("kinds", _opt(("--kinds", "-k"), _KINDS_HELP, str), ",".join(DEFAULT_KINDS)),
    Option(
        "columns", _opt(("--columns", "-c"), "Pictures per row (0: about square)."), 0, Range(0, MAX_COUNT)
    ),
    Option("force", _opt(("--force",), "Replace OUT if it exists.", bool), False),
)


def generate(
    out: Path,
    count: int,
    size: int,
    seed: int,
    kinds: str,
    resume: bool,
    force: bool,
    workers: int,
    quiet: bool,
    as_json: bool,
    shard: str | None,
    merge: bool,
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
        check_options(GENERATE_OPTIONS, locals())
        kind_list = _check_common(kinds)
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
    writer = _FractalSet(out, manifest, mode, workers, console)
    try:
        with process_group(part, "cpu"):
            outcome = write_set(writer, part, merge, show=not quiet)
        if outcome.final or not part.grouped:
            shown = None if outcome.final else part
            _summary_line(out, count, writer.written, writer.kept, outcome.seconds, as_json, quiet, shown)
    except PartsMissing as exc:
        fail(PROG, rerun_hint(exc, "ipmix-fractals", sys.argv[1:]))
    except FileProblem as exc:
        fail(PROG, str(exc), code=1)
    except RobustMixError as exc:  # a shard part of another job, or not intact (robust_mix.shard_parts)
        fail(PROG, str(exc), exc.exit_code)


def _summary_line(
    out: Path,
    count: int,
    written: int,
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
        "written": written,
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
            f"wrote {written} picture(s), kept {kept} existing, in {seconds:.1f} s -> {out}"
        )
    else:
        what = f"pictures {span.start}..{span.stop - 1}" if span else "no pictures: more shards than pictures"
        Console(stderr=True).print(
            f"wrote shard {part.index}/{part.count} ({what}): rendered {written}, kept {kept}, in "
            f"{seconds:.1f} s -> {part_dir(out, part)}; when every shard is done, run the same command "
            "with --merge"
        )


def preview(out: Path, count: int, size: int, seed: int, kinds: str, columns: int, force: bool) -> None:
    """Render a contact sheet: a grid of the first COUNT pictures, 2 px apart on a dark background.

    Example: ipmix-fractals preview sheet.png --count 24 --size 128
    """
    try:
        check_options(PREVIEW_OPTIONS, locals())
        kind_list = _check_common(kinds)
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


command(app, "generate", generate, GENERATE_OPTIONS, leading=[_OUT_DIR])
command(app, "preview", preview, PREVIEW_OPTIONS, leading=[_SHEET])


def main() -> None:
    """Console entry point: one-line errors and exit status 2 for bad input (see robust_mix.cli)."""
    run(app, PROG)


if __name__ == "__main__":
    main()
