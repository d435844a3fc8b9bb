"""Shard parts of an output folder: where each shard of a split job writes, and how a merge finds them.

A generation job split into N shards (:mod:`robust_mix.distributed`: ``--shard K/N``, a SLURM array or
torchrun ranks) never writes the final layout from a shard. Shard K of N writes into the hidden folder
``<root>/.shards/K-of-N/`` (readers and listers skip hidden names) and records there, in
``part.json``, what it was asked to do and what it finished::

    {"shard": [K, N], "options": {...}, "span": [first, stop], "files": {key: settings}, "done": true}

``options`` are the job's settings and the source's fingerprint, ``span`` the items it covered and
``files`` the parts it finished (written atomically, recorded only once complete). The merge step
(``--merge`` after an array job, or rank 0 after a barrier) asks :func:`find_complete` for an N whose
N parts all hold the needed keys with the same options, assembles the final layout from them, and
removes them with :func:`remove_keys`.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from robust_mix.distributed import Shard, ShardError
from robust_mix.errors import RobustMixError
from robust_mix.files import TMP_PREFIX, atomic_write

__all__ = [
    "PART_MANIFEST",
    "SHARDS_DIR",
    "PartsMissing",
    "check_merge",
    "find_complete",
    "link_file",
    "link_tree",
    "open_part",
    "part_dir",
    "record_part",
    "remove_keys",
    "rerun_hint",
]

#: Hidden folder, inside the output, holding the shard parts (``K-of-N`` sub-folders).
SHARDS_DIR = ".shards"
#: A shard part's record of its options, span and finished files.
PART_MANIFEST = "part.json"


class PartsMissing(ValueError, RobustMixError):
    """A merge found no complete set of shard parts; ``missing`` are the shard numbers still to run.

    Attributes:
        count: N of the best set found (None when no part was made with these options at all).
        missing: the shards ``K`` (0-based) of that set that are absent or unfinished.
    """

    def __init__(self, root: Path, count: int | None, missing: Sequence[int]) -> None:
        self.count, self.missing = count, list(missing)
        if count is None:
            text = (
                f"no shard parts made with these options in '{root / SHARDS_DIR}'; run the command "
                "with --shard K/N (or as a SLURM array) first, with the same options as the --merge"
            )
        else:
            shown = ", ".join(f"{k}/{count}" for k in self.missing)
            text = f"shard(s) {shown} of '{root}' are missing or unfinished"
        super().__init__(text)


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def check_merge(shard: Shard, merge: bool) -> None:
    """Refuse ``--merge`` in a process that is itself one shard of a job.

    Raises:
        ShardError: ``merge`` with ``--shard``, under torchrun (rank 0 merges by itself) or inside a
            SLURM array task (the merge is one separate job after the array).
    """
    if not merge or shard.launcher == "single":
        return
    if shard.launcher == "torchrun":
        raise ShardError(
            "--merge is not needed under torchrun (rank 0 merges after the other ranks); drop it"
        )
    if shard.launcher == "shard":
        raise ShardError("--merge and --shard exclude each other: run the shards, then --merge once")
    raise ShardError(
        f"--merge inside SLURM array task {shard.index} of {shard.count}: run it once, as a separate job "
        "after the array (e.g. sbatch --dependency=afterok:<array job id>)"
    )


def part_dir(root: str | os.PathLike[str], shard: Shard) -> Path:
    """``<root>/.shards/K-of-N``: the folder shard ``shard`` writes its part into."""
    return Path(root) / SHARDS_DIR / f"{shard.index}-of-{shard.count}"


def _read(folder: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((folder / PART_MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def open_part(folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """The finished files of the part in ``folder`` (created if needed); ``{}`` for a new part.

    A part made with other options (another seed, another source...) is stale: the folder is ours
    (hidden, inside the output) and is emptied so that nothing of it can be merged by mistake.
    """
    data = _read(folder)
    if data is not None and data.get("options") != _plain(options):
        shutil.rmtree(folder)
        data = None
    folder.mkdir(parents=True, exist_ok=True)
    return dict(data["files"]) if data is not None else {}


def record_part(
    folder: Path,
    shard: Shard,
    options: Mapping[str, Any],
    span: range,
    files: Mapping[str, Any],
    done: bool,
) -> None:
    """Write the part's ``part.json`` atomically (call after each finished file, and at the end)."""
    data = {
        "shard": [shard.index, shard.count],
        "options": options,
        "span": [span.start, span.stop],
        "files": dict(files),
        "done": done,
    }
    atomic_write(folder / PART_MANIFEST, json.dumps(_plain(data), indent=2) + "\n")


def _parts(root: Path) -> dict[int, dict[int, Path]]:
    """``{N: {K: folder}}`` of the ``K-of-N`` folders under ``<root>/.shards``."""
    found: dict[int, dict[int, Path]] = {}
    base = root / SHARDS_DIR
    if not base.is_dir():
        return found
    for entry in base.iterdir():
        index, sep, count = entry.name.partition("-of-")
        if sep and index.isdigit() and count.isdigit() and entry.is_dir():
            found.setdefault(int(count), {})[int(index)] = entry
    return found


def find_complete(
    root: str | os.PathLike[str],
    options: Mapping[str, Any],
    needed: Mapping[str, Any],
    prefer: int | None = None,
) -> tuple[int, dict[int, Path]]:
    """An N whose N parts under ``root`` were made with ``options`` and finished every key of ``needed``.

    Args:
        root: the output folder holding ``.shards``.
        options: the options the parts must have been made with (compared after a JSON round trip).
        needed: ``{key: settings}`` every part must have finished, with exactly these settings.
        prefer: the N to try first (the world size of a torchrun job).

    Returns:
        ``(N, {K: folder})``.

    Raises:
        PartsMissing: no N has all its parts; names the missing shards of the most complete set.
    """
    root = Path(root)
    options, needed = _plain(options), _plain(dict(needed))
    best: tuple[int, int, list[int]] | None = None
    groups = _parts(root)
    for count in sorted(groups, key=lambda c: (c != prefer, c)):
        ready = []
        for index, folder in groups[count].items():
            data = _read(folder)
            if (
                index < count
                and data is not None
                and data.get("options") == options
                and all(data["files"].get(key) == value for key, value in needed.items())
            ):
                ready.append(index)
        if len(ready) == count:
            return count, {k: groups[count][k] for k in range(count)}
        if ready and (best is None or len(ready) > best[1]):
            best = (count, len(ready), sorted(set(range(count)) - set(ready)))
    if best is None:
        raise PartsMissing(root, None, [])
    raise PartsMissing(root, best[0], best[2])


def link_file(src: Path, dst: Path) -> None:
    """Make ``dst`` the file ``src`` (a hard link; a copy where links are impossible), atomically.

    The link is made under a temporary name beside ``dst`` and renamed over it, so ``dst`` is whole
    or absent at every moment, and an existing ``dst`` is replaced. ``src`` is left as it is (a
    merge killed half-way can start again from the parts).
    """
    tmp = dst.with_name(f"{TMP_PREFIX}{dst.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copy2(src, tmp)
    os.replace(tmp, dst)


def link_tree(src: Path, dst: Path) -> int:
    """:func:`link_file` every file under ``src`` to the same relative path under ``dst``; returns the count."""
    count = 0
    for dirpath, _dirnames, filenames in os.walk(src):
        here = Path(dirpath)
        target = dst / here.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in filenames:
            link_file(here / name, target / name)
            count += 1
    return count


def remove_keys(folders: Iterable[Path], keys: Mapping[str, Sequence[str]]) -> None:
    """Remove the merged ``keys`` (``{key: [paths relative to a part folder]}``) from each part.

    A part with nothing left is removed, and so is ``.shards`` once it is empty.
    """
    bases = set()
    for folder in folders:
        bases.add(folder.parent)
        data = _read(folder) or {"files": {}}
        for key, paths in keys.items():
            for rel in paths:
                path = folder / rel
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            data["files"].pop(key, None)
        if data["files"]:
            atomic_write(folder / PART_MANIFEST, json.dumps(data, indent=2) + "\n")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    for base in bases:
        if base.is_dir() and not any(base.iterdir()):
            base.rmdir()


def rerun_hint(exc: PartsMissing, prog: str, argv: Sequence[str]) -> str:
    """``exc`` as one line with the command that runs the missing shards.

    Args:
        exc: what :func:`find_complete` raised.
        prog: the command's name (``robust-eval``, ``ipmix-fractals``).
        argv: the arguments of the ``--merge`` run (``sys.argv[1:]``); the command shown is the same
            one with ``--shard K/N`` in place of ``--merge``.
    """
    if exc.count is None or not exc.missing:
        return str(exc)
    shards = [f"{k}/{exc.count}" for k in exc.missing]
    if "--merge" not in argv:
        return f"{exc}: run the same command with --shard {' and '.join(shards)}, then --merge again"
    cmd = shlex.join([prog, *(a for a in argv if a != "--merge"), "--shard", shards[0]])
    more = f" (and likewise --shard {', '.join(shards[1:])})" if shards[1:] else ""
    tasks = ",".join(str(k) for k in exc.missing)
    return f"{exc}: run `{cmd}`{more} (or resubmit array tasks {tasks}), then --merge again"
