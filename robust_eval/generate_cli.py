"""The ``make-c`` and ``make-p`` commands (thin wrappers over :mod:`robust_eval.generate`)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer

from robust_mix.cifar import DataLayoutError
from robust_mix.cli import fail
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


def register(app: typer.Typer) -> None:
    """Add the ``make-c`` and ``make-p`` commands to a Typer app."""

    @app.command("make-c")
    def make_c_cmd(
        src: Source,
        out: Annotated[Path, typer.Argument(help="output root; arrays go to OUT/<NAME>-C/")],
        preset: Annotated[str, typer.Option(help="parameter table: cifar (32 px) or imagenet (224 px)")],
        corruptions: Annotated[
            list[str] | None,
            typer.Option(help="corruptions to make (comma-separated or repeated); default all 19"),
        ] = None,
        severities: Annotated[
            list[str] | None, typer.Option(help="severities, e.g. 1,2,3; default 1..5")
        ] = None,
        labels: Annotated[Path | None, typer.Option(help="labels .npy (N,) for an .npy SRC")] = None,
        seed: Seed = 0,
        name: Annotated[
            str | None, typer.Option(help="data set name for OUT/<NAME>-C (default from SRC)")
        ] = None,
        size: Size = None,
        image_format: Annotated[
            str, typer.Option("--format", help="JPEG or PNG (ImageFolder sources)")
        ] = "JPEG",
        chunk: Chunk = 256,
        force: Force = False,
        progress: ShowProgress = True,
        frost_images: Annotated[
            Path | None,
            typer.Option(
                help="folder with the reference's frost photographs (frost1.png .. frost6.jpg of "
                "hendrycks/robustness); default: procedural frost textures"
            ),
        ] = None,
        shard: ShardOpt = None,
        merge: Merge = False,
    ) -> None:
        """Regenerate a -C benchmark (15 corruptions + 4 extras x 5 severities) from a clean data set."""
        from robust_eval.generate import make_c  # torch and Albumentations: after the options parsed

        m = _run(
            lambda part: make_c(
                src,
                out,
                preset,
                corruptions=corruptions,
                severities=severities,
                labels=labels,
                seed=seed,
                name=name,
                size=size,
                image_format=image_format,
                force=force,
                chunk=chunk,
                progress=progress,
                frost_images=frost_images,
                shard=part,
                merge=merge,
            ),
            shard,
            merge,
            out,
        )
        _report(m, "corruptions")

    @app.command("make-p")
    def make_p_cmd(
        src: Source,
        out: Annotated[Path, typer.Argument(help="output root; arrays go to OUT/<NAME>-P/")],
        preset: Annotated[str, typer.Option(help="settings: cifar (32 px) or imagenet (224 px)")],
        perturbations: Annotated[
            list[str] | None, typer.Option(help="perturbations (comma-separated or repeated); default all 14")
        ] = None,
        difficulties: Annotated[
            list[str] | None, typer.Option(help="noise difficulties, default 1,2,3")
        ] = None,
        seed: Seed = 0,
        name: Annotated[
            str | None, typer.Option(help="data set name for OUT/<NAME>-P (default from SRC)")
        ] = None,
        size: Size = None,
        fps: Annotated[float, typer.Option(help="frame rate of MP4 files (ImageFolder sources)")] = 10.0,
        chunk: Chunk = 64,
        force: Force = False,
        progress: ShowProgress = True,
        shard: ShardOpt = None,
        merge: Merge = False,
    ) -> None:
        """Regenerate a -P benchmark (10 test + 4 validation perturbation sequences) from a clean data set."""
        from robust_eval.generate import make_p  # torch and Albumentations: after the options parsed

        m = _run(
            lambda part: make_p(
                src,
                out,
                preset,
                perturbations=perturbations,
                difficulties=difficulties,
                seed=seed,
                name=name,
                size=size,
                fps=fps,
                force=force,
                chunk=chunk,
                progress=progress,
                shard=part,
                merge=merge,
            ),
            shard,
            merge,
            out,
            "make-p",
        )
        _report(m, "files")


def main() -> None:
    """Entry point: ``python -m robust_eval.generate_cli make-c|make-p ...`` (also ``robust-eval make-c``)."""
    app = typer.Typer(
        help="Regenerate -C / -P robustness benchmarks from a clean data set.", add_completion=False
    )
    register(app)
    app()


if __name__ == "__main__":
    main()
