"""-C and -C-bar sets: CIFAR ``.npy`` folders (``<corruption>.npy`` + ``labels.npy``, rows by severity),
ImageNet-C(-bar) severity folders, and the manifests ``robust-eval make-c`` writes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from robust_eval.constants import SEVERITIES
from robust_eval.data.images import load_npy_images, open_npy
from robust_eval.data.sources import ArraySource
from robust_mix.cifar import DataLayoutError

__all__ = [
    "corruption_severities",
    "generator_manifest",
    "load_corruption_cell",
    "load_corruption_labels",
    "severity_folders",
]


def generator_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``manifest.json`` that ``robust-eval make-c`` / ``make-p`` wrote into ``folder`` ({} when the
    folder is a published set or the file is someone else's)."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    ours = isinstance(manifest, dict) and manifest.get("generator") == "robust_eval.generate"
    return manifest if ours else {}


def corruption_severities(folder: str | os.PathLike[str]) -> tuple[int, ...]:
    """The severities stored in a CIFAR-layout -C folder, in row order.

    Published folders hold all five; a folder written by ``robust-eval make-c --severities 1,3,5``
    records its severities in its manifest (:func:`generator_manifest`), and its arrays hold only
    those, in that order.
    """
    sevs = generator_manifest(folder).get("severities")
    if isinstance(sevs, list) and sevs:
        if any(not isinstance(v, int) or v not in SEVERITIES for v in sevs):
            raise DataLayoutError(
                f"'{Path(folder) / 'manifest.json'}' lists severities {sevs}; expected 1..5"
            )
        return tuple(sevs)
    return tuple(SEVERITIES)


def load_corruption_labels(folder: str | os.PathLike[str], n_per_severity: int | None = None) -> np.ndarray:
    """``labels.npy`` of a CIFAR -C / -C-bar folder as int64 (stored uint8; the test labels repeated once
    per stored severity, see :func:`corruption_severities`)."""
    path = Path(folder) / "labels.npy"
    if not path.is_file():
        raise DataLayoutError(f"'{path}' is missing; the -C folder needs the labels file next to the arrays")
    labels = open_npy(path)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataLayoutError(f"'{path}' holds {labels.dtype} {labels.shape}; expected integer (5*N,)")
    k = len(corruption_severities(folder))
    if n_per_severity is not None and len(labels) != k * n_per_severity:
        raise DataLayoutError(f"'{path}' has {len(labels)} labels, expected {k} x {n_per_severity}")
    return np.asarray(labels, dtype=np.int64)


def load_corruption_cell(
    folder: str | os.PathLike[str], corruption: str, severity: int, labels: np.ndarray
) -> ArraySource:
    """One (corruption, severity) cell of a CIFAR -C / -C-bar ``.npy`` folder, memory-mapped.

    With the stored severities ``S`` (:func:`corruption_severities`, 1..5 for published folders), rows
    ``[n*i, n*(i+1))`` of ``<corruption>.npy`` are severity ``S[i]``, where ``n = len(array) / len(S)``.
    """
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be 1..5, got {severity}")
    sevs = corruption_severities(folder)
    if severity not in sevs:
        raise DataLayoutError(f"'{folder}' holds severities {list(sevs)} only, not {severity}")
    arr = load_npy_images(Path(folder) / f"{corruption}.npy")
    k = len(sevs)
    if len(arr) == 0 or len(arr) % k or len(arr) != len(labels):
        raise DataLayoutError(
            f"'{Path(folder) / corruption}.npy' has {len(arr)} rows and labels.npy {len(labels)}; "
            f"expected {k} severities x N rows (N >= 1) in both"
        )
    n = len(arr) // k
    i = sevs.index(severity)
    return ArraySource(arr[n * i : n * (i + 1)], labels[n * i : n * (i + 1)])


def severity_folders(corruption_dir: str | os.PathLike[str]) -> list[Path]:
    """The 5 severity folders of an ImageNet-C(-bar) corruption folder, severity 1..5 in order.

    ImageNet-C names them ``1``..``5``; ImageNet-C-bar by parameter value (``"%.2f"``), sorted ascending.
    """
    folder = Path(corruption_dir)
    subdirs = [d for d in folder.iterdir() if d.is_dir()] if folder.is_dir() else []
    try:
        ordered = sorted(subdirs, key=lambda d: float(d.name))
    except ValueError as exc:
        raise DataLayoutError(f"'{folder}' has non-numeric severity folders: {exc}") from exc
    if len(ordered) != 5:
        raise DataLayoutError(f"'{folder}' has {len(ordered)} severity folders, expected 5")
    return ordered
