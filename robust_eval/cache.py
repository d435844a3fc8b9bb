"""Per-cell result cache: every finished cell is written atomically, so a killed run resumes.

A cell is the smallest unit of work whose result is stored (one corruption x severity, one OOD set,
one chunk of PGD examples, the clean pass). Its key is (checkpoint sha256, suite, cell name,
protocol options); the options are hashed into the file name, so changing any protocol choice
(subset, EMA, attack settings, ...) never reuses a stale number. Layout::

    <root>/<sha256[:16]>/<suite>/<cell>.<options-hash>.json   (+ .npz when the cell has arrays)

The ``.npz`` is written first and the ``.json`` last: a cell counts as finished only when its JSON
exists, so a kill between the two writes just recomputes that cell.

Under torchrun (``shard`` of a process group) rank 0 alone reads and writes the files and hands what
it read to the other ranks, so every rank skips or computes the same cells. Nothing in a key or a file
depends on the world size: a run killed under N ranks resumes under any other number, or one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robust_mix.distributed import Shard, broadcast_object
from robust_mix.files import atomic_write

__all__ = ["CellCache", "atomic_write_bytes", "atomic_write_text", "fingerprint"]


def fingerprint(paths: Iterable[str | os.PathLike[str]]) -> str:
    """A short key that changes when any of the data files changes (so a cached cell is not reused).

    Each existing file contributes its resolved path, size, modification time (ns) and inode; a folder
    contributes every file below it. Replacing ``fog.npy``, editing a picture or adding one changes
    the key; paths that do not exist contribute nothing. Stat calls only: no file is read.
    """
    h = hashlib.sha256()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files = [path]
        else:
            continue
        for f in files:
            st = f.stat()
            h.update(
                f"{f.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode(
                    "utf-8", "surrogateescape"
                )
            )
    return h.hexdigest()[:16]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` onto ``path`` atomically (parent folders created); see
    :func:`robust_mix.files.atomic_write` (full or read-only disks raise ``FileProblem``)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """UTF-8 version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class CellCache:
    """Atomic, resumable store of per-cell results for one checkpoint.

    ``fresh=True`` ignores (and overwrites) entries written by earlier runs, but still reuses cells
    computed earlier in the same run. ``shard``: this process's rank under torchrun; only rank 0
    touches the files, and :meth:`get` is then collective (every rank calls it, in the same order).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        checkpoint_sha256: str,
        fresh: bool = False,
        shard: Shard | None = None,
    ) -> None:
        self.root = Path(root) / checkpoint_sha256[:16]
        self.fresh = fresh
        self.shard = shard or Shard.single()
        self._written: set[Path] = set()
        self.hits = 0
        self.misses = 0

    def finished_cells(self) -> int:
        """How many finished cells this checkpoint has here (their JSON files: a rerun reads them)."""
        return sum(1 for _ in self.root.glob("*/*.json")) if self.root.is_dir() else 0

    def _paths(self, suite: str, cell: str, options: Mapping[str, Any]) -> tuple[Path, Path]:
        blob = json.dumps(dict(options), sort_keys=True, default=str).encode()
        digest = hashlib.sha256(blob).hexdigest()[:12]
        base = self.root / _safe_name(suite) / f"{_safe_name(cell)}.{digest}"
        return base.with_suffix(base.suffix + ".json"), base.with_suffix(base.suffix + ".npz")

    def get(
        self, suite: str, cell: str, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        """The stored ``(values, arrays)`` of a finished cell, or None (rank 0's answer on every rank)."""
        found = self._read(suite, cell, options) if self.shard.is_main else None
        return broadcast_object(found) if self.shard.grouped else found

    def _read(
        self, suite: str, cell: str, options: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
        jpath, npath = self._paths(suite, cell, options)
        if self.fresh and jpath not in self._written:
            return None
        if not jpath.is_file():
            return None
        try:
            record = json.loads(jpath.read_text())
            arrays: dict[str, np.ndarray] = {}
            if record.get("has_arrays"):
                with np.load(npath, allow_pickle=False) as npz:
                    arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, KeyError):
            return None  # unreadable entry: recompute it
        return record["values"], arrays

    def put(
        self,
        suite: str,
        cell: str,
        options: Mapping[str, Any],
        values: Mapping[str, Any],
        arrays: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        """Store a finished cell (arrays first, then the JSON that marks it finished); rank 0 only."""
        jpath, npath = self._paths(suite, cell, options)
        if not self.shard.is_main:
            self._written.add(jpath)
            return
        if arrays:
            import io

            buf = io.BytesIO()
            np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
            atomic_write_bytes(npath, buf.getvalue())
        record = {
            "suite": suite,
            "cell": cell,
            "options": options,
            "values": values,
            "has_arrays": bool(arrays),
        }
        atomic_write_text(jpath, json.dumps(record, default=str))  # key order kept: resumed == fresh
        self._written.add(jpath)

    def cell(
        self,
        suite: str,
        cell: str,
        options: Mapping[str, Any],
        compute: Callable[[], tuple[dict[str, Any], dict[str, np.ndarray]]],
    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return the cached cell or ``compute()`` it and store the result.

        Values go through a JSON round trip either way, so a resumed run and an uninterrupted one
        hand identical numbers to the report.
        """
        hit = self.get(suite, cell, options)
        if hit is not None:
            self.hits += 1
            return hit
        self.misses += 1
        values, arrays = compute()
        self.put(suite, cell, options, values, arrays)
        return json.loads(json.dumps(values, default=str)), dict(arrays)
