"""Shard parts of an output folder: where each shard of a split job writes, and how a merge finds them.

A generation job split into N shards (:mod:`robust_mix.distributed`: ``--shard K/N``, a SLURM array or
torchrun ranks) never writes the final layout from a shard. Shard K of N writes into the hidden folder
``<root>/.shards/K-of-N/`` (readers and listers skip hidden names) and records there, in
``part.json``, what it was asked to do and what it finished::

    {"shard": [K, N], "job": "<fingerprint>", "options": {...}, "span": [first, stop],
     "files": {key: settings}, "done": true, "sealed": {path: {"size": ..., "sha256": ...}}}

``options`` are the job's settings and the source's fingerprint (``job`` is their hash,
:func:`fingerprint`), ``span`` the items it covered, ``files`` the parts it finished (written
atomically, recorded only once complete) and ``sealed`` a checksum of every file of the part, bound
to the job and to the shard's index. The merge step (``--merge`` after an array job, or rank 0 after
a barrier) asks :func:`find_complete` for an N whose N parts all hold the needed keys with the same
options and pass :func:`verify_part`, assembles the final layout from them (:func:`link_file`,
:func:`link_tree`: regular files only), and removes them with :func:`remove_keys`.

Safety rules, enforced here so that every driver built on this module gets them:

- a part belongs to one job: a run with other options refuses another job's part, never deletes it
  (:func:`open_part`), and a part is locked while its shard writes (:func:`claim_part`);
- a part copied to another shard's folder, a file changed or truncated since its shard wrote it, a
  symbolic link or a hard link to a file elsewhere are refused before anything is merged, naming the
  file and the shard to rerun (:class:`PartInvalid`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from robust_mix.distributed import Shard, ShardError
from robust_mix.errors import RobustMixError
from robust_mix.files import TMP_PREFIX, OutputLock, atomic_write

__all__ = [
    "PART_MANIFEST",
    "SHARDS_DIR",
    "PartConflict",
    "PartInvalid",
    "PartsMissing",
    "check_merge",
    "claim_part",
    "find_complete",
    "fingerprint",
    "link_file",
    "link_tree",
    "open_part",
    "part_dir",
    "record_part",
    "remove_keys",
    "rerun_hint",
    "verify_part",
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


class PartConflict(ValueError, RobustMixError):
    """A shard part folder holds the part of another job (other options); it is refused, never deleted."""


class PartInvalid(ValueError, RobustMixError):
    """A shard part is not the intact part of this shard and job: copied from another shard, changed,
    truncated, or holding a link since its shard wrote it. The message names the file and the shard
    to rerun."""


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


def fingerprint(options: Mapping[str, Any]) -> str:
    """The job's fingerprint: 16 hex digits of the SHA-256 of its options as canonical JSON.

    Two runs with the same options (the same job) have the same fingerprint; any other seed, source,
    preset... gives another one.
    """
    text = json.dumps(_plain(options), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _first_difference(old: Any, new: Any) -> str:
    """``seed 0 (this run: 1)``: the first top-level option that differs, for a message."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return f"{key} {json.dumps(old.get(key))[:60]} (this run: {json.dumps(new.get(key))[:60]})"
    return "other options"


def _rerun(folder: Path) -> str:
    """``delete '<part>' and rerun shard K/N`` for a part folder named ``K-of-N``."""
    shard = folder.name.replace("-of-", "/")
    return f"delete '{folder}' and rerun shard {shard} (the same command with --shard {shard})"


def open_part(folder: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """The finished files of the part in ``folder`` (created if needed); ``{}`` for a new part.

    A part belongs to one job: a part made with other options (another seed, another source...) is
    refused, never deleted, so that a second job into the same output cannot destroy the first job's
    finished work. Call it with the part locked (:func:`claim_part` does both).

    Raises:
        PartConflict: ``folder`` holds a part of another job.
    """
    data = _read(folder)
    if data is not None and data.get("options") != _plain(options):
        raise PartConflict(
            f"'{folder}' holds the part of another job ({_first_difference(data.get('options'), _plain(options))}); "
            f"finish and --merge that job first, write into another folder, or delete '{folder}' to discard it"
        )
    folder.mkdir(parents=True, exist_ok=True)
    return dict(data["files"]) if data is not None else {}


@contextlib.contextmanager
def claim_part(
    root: str | os.PathLike[str], shard: Shard, options: Mapping[str, Any], command: str
) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Lock shard ``shard``'s part folder under ``root`` and open it: ``(folder, finished files)``.

    The lock (:class:`~robust_mix.files.OutputLock`, ``.lock`` in the part folder) keeps two runs of
    the same shard from writing into one part at once; the second one refuses with one line naming
    the first. ``command`` is the name shown in that line.

    Raises:
        FileProblem: the part is in use by another live run.
        PartConflict: the part belongs to another job (see :func:`open_part`).
    """
    folder = part_dir(root, shard)
    with OutputLock(folder, command):
        yield folder, open_part(folder, options)


def _seal(job: str, shard: tuple[int, int], rel: str, path: Path) -> str:
    """SHA-256 of a part file's bytes, bound to the job, the shard and the file's place in the part.

    A file copied from another part or another job therefore fails the check even with its content
    intact.
    """
    digest = hashlib.sha256(f"robust-mix part\0{job}\0{shard[0]}/{shard[1]}\0{rel}\0".encode())
    with open(path, "rb", buffering=0) as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _walk(folder: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """``(relative posix path, path, lstat)`` of every entry of a part but its own records.

    Skips ``part.json``, the lock and hidden (temporary) names; yields links and other non-regular
    entries too, so that a caller can refuse them.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames) + [d for d in dirnames if (here / d).is_symlink()]:
            if name.startswith(".") or (here == folder and name == PART_MANIFEST):
                continue
            path = here / name
            yield path.relative_to(folder).as_posix(), path, path.lstat()


def _seal_all(folder: Path, job: str, shard: tuple[int, int], old: Mapping[str, Any]) -> dict[str, Any]:
    """The seals of every file in ``folder``: kept from ``old`` for a file unchanged since (size,
    modification time, inode), computed for a new one.

    Raises:
        PartInvalid: a link (symbolic, or a hard link to a file elsewhere) where the command writes
            only regular files of its own.
    """
    sealed: dict[str, Any] = {}
    for rel, path, st in _walk(folder):
        if not stat.S_ISREG(st.st_mode):
            raise PartInvalid(
                f"'{path}' is a link or special file, not a file this command wrote; {_rerun(folder)}"
            )
        stamp = [st.st_size, st.st_mtime_ns, st.st_ino]
        prior = old.get(rel)
        if isinstance(prior, dict) and prior.get("stamp") == stamp and prior.get("sha256"):
            sealed[rel] = prior  # sealed before (and maybe linked into the set by a merge since)
        else:
            if st.st_nlink > 1:
                raise PartInvalid(f"'{path}' is a hard link to a file outside its part; {_rerun(folder)}")
            sealed[rel] = {"size": st.st_size, "stamp": stamp, "sha256": _seal(job, shard, rel, path)}
    return sealed


def record_part(
    folder: Path,
    shard: Shard,
    options: Mapping[str, Any],
    span: range,
    files: Mapping[str, Any],
    done: bool,
) -> None:
    """Write the part's ``part.json`` atomically (call after each finished file, and at the end).

    The record carries the shard's index, the job's :func:`fingerprint` and a checksum of every file
    in the part (bound to both); :func:`verify_part` checks them before anything is merged.
    """
    job = fingerprint(options)
    old = _read(folder) or {}
    prior = (
        old.get("sealed")
        if old.get("job") == job and old.get("shard") == [shard.index, shard.count]
        else None
    )
    data = {
        "shard": [shard.index, shard.count],
        "job": job,
        "options": options,
        "span": [span.start, span.stop],
        "files": dict(files),
        "done": done,
        "sealed": _seal_all(
            folder, job, (shard.index, shard.count), prior if isinstance(prior, dict) else {}
        ),
    }
    atomic_write(folder / PART_MANIFEST, json.dumps(_plain(data), indent=2) + "\n")


def verify_part(folder: Path, index: int, count: int, options: Mapping[str, Any]) -> None:
    """Check that ``folder`` holds shard ``index`` of ``count`` of this job, intact.

    The part's record must name this shard and this job, every file it recorded must be a regular
    file of the recorded size and checksum, and the part must hold no link. A part copied to another
    shard's folder, a file changed, truncated or replaced by a link since its shard wrote it, and a
    part of another job are refused, naming the file and the shard to rerun.

    Raises:
        PartInvalid: the first problem found.
    """
    data = _read(folder)
    label = f"{index}/{count}"
    if data is None:
        raise PartInvalid(f"'{folder / PART_MANIFEST}' is missing or unreadable; {_rerun(folder)}")
    if data.get("shard") != [index, count]:
        raise PartInvalid(
            f"'{folder}' holds the part of shard {data.get('shard')} (a copy of another part?), "
            f"not of shard {label}; {_rerun(folder)}"
        )
    job, sealed = fingerprint(options), data.get("sealed")
    if data.get("job") != job or data.get("options") != _plain(options):
        raise PartInvalid(f"'{folder}' holds the part of another job; {_rerun(folder)}")
    if not isinstance(sealed, dict):
        raise PartInvalid(f"'{folder}' has no checksums (made by an older version); {_rerun(folder)}")
    present = {}
    for rel, path, st in _walk(folder):
        if not stat.S_ISREG(st.st_mode):
            raise PartInvalid(
                f"'{path}' is a link or special file, not a file shard {label} wrote; {_rerun(folder)}"
            )
        present[rel] = (path, st)
    for rel, seal in sorted(sealed.items()):
        path = folder / rel
        if rel not in present:
            raise PartInvalid(f"'{path}' of shard {label} is missing; {_rerun(folder)}")
        size = present[rel][1].st_size
        if not isinstance(seal, dict) or size != seal.get("size"):
            want = seal.get("size") if isinstance(seal, dict) else "?"
            raise PartInvalid(
                f"'{path}' is {size} bytes, {want} when shard {label} wrote it (truncated?); {_rerun(folder)}"
            )
        if _seal(job, (index, count), rel, path) != seal.get("sha256"):
            raise PartInvalid(
                f"'{path}' does not match the checksum recorded when shard {label} wrote it "
                f"(changed or copied from elsewhere since); {_rerun(folder)}"
            )


def _parts(root: Path) -> dict[int, dict[int, Path]]:
    """``{N: {K: folder}}`` of the ``K-of-N`` folders under ``<root>/.shards``."""
    found: dict[int, dict[int, Path]] = {}
    base = root / SHARDS_DIR
    if not base.is_dir():
        return found
    for entry in base.iterdir():
        index, sep, count = entry.name.partition("-of-")
        if sep and index.isdigit() and count.isdigit() and entry.is_dir() and not entry.is_symlink():
            found.setdefault(int(count), {})[int(index)] = entry
    return found


def find_complete(
    root: str | os.PathLike[str],
    options: Mapping[str, Any],
    needed: Mapping[str, Any],
    prefer: int | None = None,
) -> tuple[int, dict[int, Path]]:
    """An N whose N parts under ``root`` were made with ``options`` and finished every key of ``needed``.

    The parts returned have passed :func:`verify_part` (index, job, checksums, no links), so a
    merge built on this function never reads a copied, damaged or planted part.

    Args:
        root: the output folder holding ``.shards``.
        options: the options the parts must have been made with (compared after a JSON round trip).
        needed: ``{key: settings}`` every part must have finished, with exactly these settings.
        prefer: the N to try first (the world size of a torchrun job).

    Returns:
        ``(N, {K: folder})``.

    Raises:
        PartsMissing: no N has all its parts; names the missing shards of the most complete set.
        PartInvalid: a part of the complete set fails :func:`verify_part`.
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
            parts = {k: groups[count][k] for k in range(count)}
            for k, folder in parts.items():
                verify_part(folder, k, count, options)
            return count, parts
        if ready and (best is None or len(ready) > best[1]):
            best = (count, len(ready), sorted(set(range(count)) - set(ready)))
    if best is None:
        raise PartsMissing(root, None, [])
    raise PartsMissing(root, best[0], best[2])


def _place(src: Path, dst: Path) -> None:
    """Make ``dst`` the file ``src``: a hard link (a copy where links are impossible).

    A new ``dst`` is linked directly (no temporary name at all); an existing one is replaced through
    a temporary name that is removed again if anything, a termination signal included, interrupts.
    """
    try:
        os.link(src, dst, follow_symlinks=False)
        return
    except FileExistsError:
        if os.path.samefile(src, dst):
            return
    except OSError:
        pass  # another file system, or links not allowed: copy below
    tmp = dst.with_name(f"{TMP_PREFIX}{dst.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        try:
            os.link(src, tmp, follow_symlinks=False)
        except OSError:
            shutil.copyfile(src, tmp, follow_symlinks=False)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def link_file(src: Path, dst: Path) -> None:
    """Make ``dst`` the part file ``src``, atomically: ``dst`` is whole or absent at every moment.

    Only a regular file is placed: a symbolic link (to ``/etc/passwd``, say) or a special file in a
    part is refused, and a file with hard links elsewhere (a link to a file outside the part) is
    copied, never shared. ``src`` is left as it is (a merge killed half-way can start again from the
    parts).

    Raises:
        PartInvalid: ``src`` is not a regular file.
    """
    st = os.lstat(src)
    if not stat.S_ISREG(st.st_mode):
        raise PartInvalid(
            f"'{src}' is a link or special file, not a file a shard wrote; refusing to merge it"
        )
    if st.st_nlink > 1 and not (dst.exists() and os.path.samefile(src, dst)):
        tmp = dst.with_name(f"{TMP_PREFIX}{dst.name}.copy")
        try:
            shutil.copyfile(src, tmp, follow_symlinks=False)
            os.replace(tmp, dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    _place(src, dst)


def _part_of(path: Path) -> Path | None:
    """The ``K-of-N`` part folder that ``path`` lies in (None outside ``.shards``)."""
    for parent in [path, *path.parents]:
        if parent.parent.name == SHARDS_DIR:
            return parent
    return None


def link_tree(src: Path, dst: Path) -> int:
    """:func:`link_file` every file under ``src`` to the same relative path under ``dst``; returns the count.

    Inside a shard part only the files its record lists (checked by :func:`verify_part`) are placed;
    a link, or a file planted after the shard finished, is refused.

    Raises:
        PartInvalid: ``src`` holds a link, or a file its part did not record.
    """
    part = _part_of(src)
    sealed = (_read(part) or {}).get("sealed") if part is not None else None
    count = 0
    for rel, path, st in _walk(src):
        if not stat.S_ISREG(st.st_mode):
            raise PartInvalid(
                f"'{path}' is a link or special file, not a file a shard wrote; refusing to merge it"
            )
        if part is not None and path.relative_to(part).as_posix() not in (sealed or {}):
            raise PartInvalid(f"'{path}' was not written by its shard (not in its record); {_rerun(part)}")
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        link_file(path, target)
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
        sealed = data.get("sealed") if isinstance(data.get("sealed"), dict) else {}
        for key, paths in keys.items():
            for rel in paths:
                path = folder / rel
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
                prefix = Path(rel).as_posix()
                for name in [n for n in sealed if n == prefix or n.startswith(prefix + "/")]:
                    del sealed[name]
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
