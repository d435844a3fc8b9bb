"""The ``make-c`` and ``make-p`` commands (thin wrappers over :mod:`robust_eval.generate`)."""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer

from robust_mix.cifar import DataLayoutError
from robust_mix.cli import MAX_SIDE, Option, Range, command, fail
from robust_mix.distributed import Shard, ShardError, detect, process_group
from robust_mix.files import FileProblem, OutputLock
from robust_mix.shard_parts import PartsMissing, check_merge, rerun_hint

__all__ = ["main", "register"]


#: Input problems (exit 2) and problems of the machine: disk full, read-only folder (exit 1).
_USAGE_ERRORS = (ValueError, DataLayoutError, FileExistsError, FileNotFoundError)
_RUN_ERRORS = (FileProblem, RuntimeError, OSError)


def _run(
    job: Callable[[Shard], dict[str, Any]],
    shard_text: str | None,
    merge: bool,
    out: Path | None = None,
    command: str = "make-c",
) -> dict[str, Any]:
    """Run ``job`` for this process's shard (``--shard``, torchrun or a SLURM array; see
    :mod:`robust_mix.distributed`) inside the job's process group, with one-line failures.

    The process that writes the final layout (a single run, ``--merge``, torchrun's rank 0) locks
    ``out`` (:class:`~robust_mix.files.OutputLock`): a second run into it refuses with one line.
    A ``--shard`` / SLURM array task writes only its part, which :mod:`robust_mix.shard_parts` locks.
    """
    try:
        shard = detect(shard_text)
        check_merge(shard, merge)
        final = out is not None and shard.is_main and (merge or not shard.partial)
        lock = OutputLock(out, f"robust-eval {command}") if final else None
        with process_group(shard, "cpu"), lock or contextlib.nullcontext():
            return job(shard)
    except PartsMissing as exc:
        fail("robust-eval", rerun_hint(exc, "robust-eval", sys.argv[1:]), 2)
    except (*_USAGE_ERRORS, ShardError) as exc:
        fail("robust-eval", exc, 2)
    except _RUN_ERRORS as exc:
        fail("robust-eval", exc, 1)
    raise AssertionError("unreachable")  # pragma: no cover


def _report(m: dict[str, Any], what: str) -> None:
    """The one line a run prints: the set written, or the part a shard wrote (other ranks: nothing)."""
    if "shard" not in m:
        typer.echo(f"wrote {m['benchmark']} ({len(m['files'])} {what}) in {m['folder']}")
    elif m["launcher"] != "torchrun":
        first, stop = m["span"]
        what = f"images {first}..{stop - 1}" if stop > first else "no images: more shards than chunks"
        typer.echo(
            f"wrote shard {m['shard']} of {m['benchmark']} ({what}) in {m['folder']}; "
            "when every shard is done, run the same command with --merge"
        )


_SHARD_HELP = (
    "K/N: compute only shard K (0-based) of N into OUT/.../.shards/K-of-N, then assemble with --merge "
    "(a SLURM array sets it by itself; under torchrun ranks split the work and rank 0 merges)"
)
_MERGE_HELP = "assemble the set from the finished --shard / SLURM array parts, then remove them"


#: Options both commands take, declared once.
Source = Annotated[
    Path, typer.Argument(help="CIFAR python folder, ImageFolder root, or .npy of uint8 images")
]
Seed = Annotated[int, typer.Option(help="random seed")]
Size = Annotated[int | None, typer.Option(help="resize/crop images to SIZE x SIZE px")]
Chunk = Annotated[int, typer.Option(help="images per batch (part of the random stream)")]
Force = Annotated[bool, typer.Option(help="replace finished files made with other settings")]
ShowProgress = Annotated[bool, typer.Option(help="show progress bars")]
ShardOpt = Annotated[str | None, typer.Option("--shard", help=_SHARD_HELP)]
Merge = Annotated[bool, typer.Option("--merge", help=_MERGE_HELP)]


def _arguments(suffix: str, preset_help: str) -> list[inspect.Parameter]:
    """SRC, OUT and the required --preset of make-c (``suffix`` C) / make-p (P)."""
    out = Annotated[Path, typer.Argument(help=f"output root; arrays go to OUT/<NAME>-{suffix}/")]
    preset = Annotated[str, typer.Option(help=preset_help)]
    return [
        inspect.Parameter("src", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Source),
        inspect.Parameter("out", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=out),
        inspect.Parameter("preset", inspect.Parameter.KEYWORD_ONLY, annotation=preset),
    ]


def _name(suffix: str) -> Option:
    help = f"data set name for OUT/<NAME>-{suffix} (default from SRC)"
    return Option("name", Annotated[str | None, typer.Option(help=help)])


_SEED = Option("seed", Seed, 0, Range(0, 2**32 - 1))
_SIZE = Option(
    "size", Size, None, Range(8, MAX_SIDE), message=f"at least 8 and at most {MAX_SIDE} pixels"
)  # 8: robust_eval.generate.MIN_SIZE (that module imports torch)
_SHARDING = (Option("shard", ShardOpt), Option("merge", Merge, False))

#: ``make-c``'s options after SRC, OUT and --preset.
MAKE_C_OPTIONS: tuple[Option, ...] = (
    Option(
        "corruptions",
        Annotated[
            list[str] | None,
            typer.Option(help="corruptions to make (comma-separated or repeated); default all 19"),
        ],
    ),
    Option(
        "severities", Annotated[list[str] | None, typer.Option(help="severities, e.g. 1,2,3; default 1..5")]
    ),
    Option("labels", Annotated[Path | None, typer.Option(help="labels .npy (N,) for an .npy SRC")]),
    _SEED,
    _name("C"),
    _SIZE,
    Option(
        "image_format",
        Annotated[str, typer.Option("--format", help="JPEG or PNG (ImageFolder sources)")],
        "JPEG",
    ),
    Option("chunk", Chunk, 256, Range(1, 65_536)),
    Option("force", Force, False),
    Option("progress", ShowProgress, True),
    Option(
        "frost_images",
        Annotated[
            Path | None,
            typer.Option(
                help="folder with the reference's frost photographs (frost1.png .. frost6.jpg of "
                "hendrycks/robustness); default: procedural frost textures"
            ),
        ],
    ),
    *_SHARDING,
)
#: ``make-p``'s options after SRC, OUT and --preset.
MAKE_P_OPTIONS: tuple[Option, ...] = (
    Option(
        "perturbations",
        Annotated[
            list[str] | None, typer.Option(help="perturbations (comma-separated or repeated); default all 14")
        ],
    ),
    Option(
        "difficulties", Annotated[list[str] | None, typer.Option(help="noise difficulties, default 1,2,3")]
    ),
    _SEED,
    _name("P"),
    _SIZE,
    Option(
        "fps",
        Annotated[float, typer.Option(help="frame rate of MP4 files (ImageFolder sources)")],
        10.0,
        Range(0.0, 1000.0, low_open=True),
        unit="frames per second",
    ),
    Option("chunk", Chunk, 64, Range(1, 65_536)),
    Option("force", Force, False),
    Option("progress", ShowProgress, True),
    *_SHARDING,
)


def _make_c(src: Path, out: Path, preset: str, shard: str | None, merge: bool, **options: Any) -> None:
    """Regenerate a -C benchmark (15 corruptions + 4 extras x 5 severities) from a clean data set."""
    from robust_eval.generate import make_c  # torch and Albumentations: after the options parsed

    m = _run(lambda part: make_c(src, out, preset, shard=part, merge=merge, **options), shard, merge, out)
    _report(m, "corruptions")


def _make_p(src: Path, out: Path, preset: str, shard: str | None, merge: bool, **options: Any) -> None:
    """Regenerate a -P benchmark (10 test + 4 validation perturbation sequences) from a clean data set."""
    from robust_eval.generate import make_p  # torch and Albumentations: after the options parsed

    m = _run(
        lambda part: make_p(src, out, preset, shard=part, merge=merge, **options), shard, merge, out, "make-p"
    )
    _report(m, "files")


def register(app: typer.Typer) -> None:
    """Add the ``make-c`` and ``make-p`` commands to a Typer app."""
    command(
        app,
        "make-c",
        _make_c,
        MAKE_C_OPTIONS,
        leading=_arguments("C", "parameter table: cifar (32 px) or imagenet (224 px)"),
    )
    command(
        app,
        "make-p",
        _make_p,
        MAKE_P_OPTIONS,
        leading=_arguments("P", "settings: cifar (32 px) or imagenet (224 px)"),
    )


def main() -> None:
    """Entry point: ``python -m robust_eval.generate_cli make-c|make-p ...`` (also ``robust-eval make-c``)."""
    app = typer.Typer(
        name="robust-eval",
        help="Regenerate -C / -P robustness benchmarks from a clean data set.",
        add_completion=False,
    )
    register(app)
    app()


if __name__ == "__main__":
    main()
