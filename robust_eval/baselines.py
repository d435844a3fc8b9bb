"""Baselines for normalized robustness metrics: the AlexNet ImageNet-C constants and baseline files.

A :class:`Baseline` holds the numbers a model is normalized by -- per-cell corruption errors, the clean
error, and per-perturbation flip probabilities / top-5 distances -- keyed by NAME, never by position.
The built-in ``"alexnet"`` baseline carries the published AlexNet ImageNet-C errors (no -P numbers:
those were never published in code and must come from a baseline run). Any other baseline is a JSON
file, written by ``robust-eval baseline FILE`` (torchvision's AlexNet, or any baseline checkpoint) or
``robust-eval corruptions BASE.pth --save-baseline b.json`` (:meth:`Baseline.from_result` turns a
result document into a baseline)::

    {
      "format": "robust_eval.baseline",
      "format_version": 1,
      "name": "resnet18-vanilla",
      "dataset": "cifar10",
      "source": "robust-eval 0.1.0 on CIFAR-10-C, checkpoint sha256 ...",
      "clean_error": 0.0512,
      "corruption_errors": {"gaussian_noise": {"1": 0.21, "2": 0.35, "3": 0.48, "4": 0.53, "5": 0.58}},
      "flip_probability": {"rotate": 0.031},
      "top5_distance": {"rotate": 0.42}
    }

Severity keys are the strings ``"1".."5"`` on disk (JSON object keys are strings) and ints in memory.
All errors and flip probabilities are fractions in [0, 1]; top-5 distances are in [0, 18].
``dataset`` is the data set the numbers were measured on: a baseline normalizes only models of that
data set (:meth:`Baseline.check_dataset`; files without it, written before it was recorded, are not
checked). Files are read with :mod:`json` only (never unpickled) and written atomically.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robust_eval.constants import (
    ALL_CORRUPTIONS,
    CIFAR_CBAR_CORRUPTIONS,
    IMAGENET_CBAR_CORRUPTIONS,
    MAX_TOP5_DISTANCE,
    SEVERITIES,
    TEST_PERTURBATIONS,
    VALIDATION_PERTURBATIONS,
)
from robust_mix.checkpoint import DATASETS
from robust_mix.errors import RobustMixError
from robust_mix.files import atomic_write

__all__ = [
    "ALEXNET_CLEAN_ERROR",
    "ALEXNET_IMAGENET_C_ERRORS",
    "ALEXNET_SOURCE",
    "BUILTIN_BASELINES",
    "FORMAT",
    "FORMAT_VERSION",
    "KNOWN_CORRUPTIONS",
    "KNOWN_PERTURBATIONS",
    "Baseline",
    "BaselineError",
    "alexnet_baseline",
    "check_baseline_target",
    "get_baseline",
    "load_baseline",
    "save_baseline",
]

FORMAT = "robust_eval.baseline"
FORMAT_VERSION = 1

#: AlexNet top-1 error on ImageNet-C per corruption, severities 1..5 (fractions; each cell is over the
#: 50,000 ImageNet validation images, so every value times 50,000 is an integer). Hendrycks &
#: Dietterich (2019); the normalizer of the ImageNet-C CE / mCE.
ALEXNET_IMAGENET_C_ERRORS: dict[str, tuple[float, float, float, float, float]] = {
    "gaussian_noise": (0.69528, 0.82542, 0.93554, 0.98138, 0.99452),
    "shot_noise": (0.71224, 0.85108, 0.93574, 0.98182, 0.99146),
    "impulse_noise": (0.78374, 0.89808, 0.94870, 0.98720, 0.99548),
    "defocus_blur": (0.65624, 0.73202, 0.85036, 0.91364, 0.94714),
    "glass_blur": (0.64308, 0.75054, 0.88806, 0.91622, 0.93344),
    "motion_blur": (0.58430, 0.70048, 0.82108, 0.89750, 0.92638),
    "zoom_blur": (0.70008, 0.76992, 0.80784, 0.84198, 0.87198),
    "snow": (0.71726, 0.88392, 0.86468, 0.91870, 0.94952),
    "frost": (0.61390, 0.79734, 0.88790, 0.89942, 0.93430),
    "fog": (0.67474, 0.76050, 0.84378, 0.87260, 0.94500),
    "brightness": (0.45140, 0.48502, 0.54048, 0.62166, 0.72440),
    "contrast": (0.64548, 0.76150, 0.88874, 0.97760, 0.99270),
    "elastic_transform": (0.52596, 0.70116, 0.55686, 0.64076, 0.80554),
    "pixelate": (0.52218, 0.54620, 0.73728, 0.87092, 0.91262),
    "jpeg_compression": (0.51002, 0.54718, 0.57294, 0.65458, 0.74778),
}

#: AlexNet's clean top-1 error on the ImageNet validation set (the E_clean of relative mCE).
ALEXNET_CLEAN_ERROR: float = 0.43478

ALEXNET_SOURCE = (
    "AlexNet top-1 errors on ImageNet-C (15 benchmark corruptions x severities 1-5, 50,000 images per "
    "cell) and clean ImageNet-val error 0.43478, as published by Hendrycks & Dietterich (2019, ICLR) and "
    "used by their ImageNet-C evaluation code; no published values for the 4 extra corruptions or for "
    "ImageNet-P (compute a baseline file for those)"
)

#: Corruption names a baseline may hold: -C (benchmark + extras) and the -C-bar sets.
KNOWN_CORRUPTIONS: frozenset[str] = frozenset(
    ALL_CORRUPTIONS + CIFAR_CBAR_CORRUPTIONS + IMAGENET_CBAR_CORRUPTIONS
)
#: Perturbation names a baseline may hold; ImageNet-P difficulty folders (``gaussian_noise_2``) too.
KNOWN_PERTURBATIONS: frozenset[str] = frozenset(TEST_PERTURBATIONS + VALIDATION_PERTURBATIONS)
_DIFFICULTY_SUFFIX = re.compile(r"^(?P<base>.+)_(?P<d>[1-9])$")


_JSON_KEYS = frozenset(
    {
        "format",
        "format_version",
        "name",
        "dataset",
        "source",
        "clean_error",
        "corruption_errors",
        "flip_probability",
        "top5_distance",
    }
)


class BaselineError(ValueError, RobustMixError):
    """A baseline name, file or content is invalid (unknown name, malformed JSON, bad values)."""


# --------------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------------


def _number(value: object, where: str, *, high: float) -> float:
    if isinstance(value, bool):
        raise BaselineError(f"{where} must be a number, got {value!r}")
    try:
        v = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BaselineError(f"{where} must be a number, got {value!r}") from None
    if not math.isfinite(v) or not 0.0 <= v <= high:
        unit = "a fraction (0.372 means 37.2%)" if high == 1.0 else f"a rank distance in [0, {high:g}]"
        raise BaselineError(f"{where} = {value!r} is outside [0, {high:g}]: it must be {unit}")
    return v


def _severity(key: object, where: str) -> int:
    if isinstance(key, bool):
        raise BaselineError(f"{where}: severity key {key!r} is not one of 1..5")
    if isinstance(key, int):
        s = key
    elif isinstance(key, str) and key.strip().isdecimal():
        s = int(key)
    else:
        raise BaselineError(f"{where}: severity key {key!r} is not one of 1..5")
    if s not in SEVERITIES:
        raise BaselineError(f"{where}: severity {s} is outside 1..5")
    return s


def _check_corruption_name(name: object) -> str:
    if not isinstance(name, str) or name not in KNOWN_CORRUPTIONS:
        raise BaselineError(
            f"unknown corruption {name!r} in baseline; known names: {sorted(KNOWN_CORRUPTIONS)} "
            "(names are matched exactly, e.g. 'jpeg_compression', 'elastic_transform')"
        )
    return name


def _check_perturbation_name(name: object) -> str:
    if isinstance(name, str):
        match = _DIFFICULTY_SUFFIX.match(name)
        if name in KNOWN_PERTURBATIONS or (match is not None and match.group("base") in KNOWN_PERTURBATIONS):
            return name
    raise BaselineError(
        f"unknown perturbation {name!r} in baseline; known names: {sorted(KNOWN_PERTURBATIONS)}, "
        "optionally with an ImageNet-P difficulty suffix such as 'gaussian_noise_2'"
    )


def _normalize_corruption_errors(raw: object) -> dict[str, dict[int, float]]:
    if not isinstance(raw, Mapping):
        raise BaselineError(
            f"corruption_errors must be a mapping {{corruption: {{severity: error}}}}, got {type(raw).__name__}"
        )
    out: dict[str, dict[int, float]] = {}
    for name, per in raw.items():
        name = _check_corruption_name(name)
        where = f"corruption_errors[{name!r}]"
        if isinstance(per, Mapping):
            cells: dict[int, float] = {}
            for key, value in per.items():
                s = _severity(key, where)
                if s in cells:
                    raise BaselineError(f"{where}: severity {s} appears twice")
                cells[s] = _number(value, f"{where}[{s}]", high=1.0)
        elif isinstance(per, (list, tuple)) and len(per) == len(SEVERITIES):
            cells = {s: _number(v, f"{where}[{s}]", high=1.0) for s, v in zip(SEVERITIES, per)}
        else:
            raise BaselineError(
                f"{where} must be a mapping {{severity: error}} or a list of the 5 errors of severities 1..5"
            )
        missing = [s for s in SEVERITIES if s not in cells]
        if missing:
            raise BaselineError(
                f"{where} lacks severities {missing}; a baseline lists all 5 severities of each corruption"
            )
        out[name] = {s: cells[s] for s in SEVERITIES}
    return out


def _normalize_per_perturbation(raw: object, what: str, high: float) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise BaselineError(f"{what} must be a mapping {{perturbation: value}}, got {type(raw).__name__}")
    return {
        _check_perturbation_name(name): _number(value, f"{what}[{name!r}]", high=high)
        for name, value in raw.items()
    }


# --------------------------------------------------------------------------------------------------
# the Baseline record
# --------------------------------------------------------------------------------------------------


@dataclass
class Baseline:
    """The numbers a model's robustness is normalized by, keyed by corruption / perturbation name.

    Attributes
    ----------
    name : str
        Short identifier, recorded in results (``"alexnet"``, ``"resnet18-vanilla"``).
    corruption_errors : dict corruption -> {severity 1..5: top-1 error fraction}
        Every listed corruption has all 5 severities. Construction also accepts a 5-sequence per
        corruption and string severity keys; both are normalized to ``{1: e1, ..., 5: e5}``.
    clean_error : float in [0, 1] or None
        Clean top-1 error (needed for relative mCE).
    flip_probability : dict perturbation -> flip probability in [0, 1]
    top5_distance : dict perturbation -> top-5 distance in [0, 18]
    source : str
        Provenance: paper, or the run (checkpoint hash, data, package version) that produced it.
    dataset : str or None
        The data set the numbers were measured on (``cifar10``, ``cifar100``, ``imagenet``,
        ``imagefolder``); None = not recorded (files from before it was).

    Raises
    ------
    BaselineError
        Unknown corruption/perturbation names, missing severities, values out of range.

    Examples
    --------
    >>> b = Baseline("mine", corruption_errors={"fog": [0.1, 0.2, 0.3, 0.4, 0.5]}, clean_error=0.05)
    >>> b.corruption_errors["fog"][3]
    0.3
    >>> Baseline.from_json(b.to_json()) == b
    True
    """

    name: str
    corruption_errors: dict[str, dict[int, float]] = field(default_factory=dict)
    clean_error: float | None = None
    flip_probability: dict[str, float] = field(default_factory=dict)
    top5_distance: dict[str, float] = field(default_factory=dict)
    source: str = ""
    dataset: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise BaselineError(f"a baseline needs a non-empty name, got {self.name!r}")
        if self.dataset is not None and self.dataset not in DATASETS:
            raise BaselineError(f"dataset must be one of {', '.join(DATASETS)} or null, got {self.dataset!r}")
        if not isinstance(self.source, str):
            raise BaselineError(f"source must be a string, got {type(self.source).__name__}")
        self.corruption_errors = _normalize_corruption_errors(self.corruption_errors)
        if self.clean_error is not None:
            self.clean_error = _number(self.clean_error, "clean_error", high=1.0)
        self.flip_probability = _normalize_per_perturbation(self.flip_probability, "flip_probability", 1.0)
        self.top5_distance = _normalize_per_perturbation(
            self.top5_distance, "top5_distance", MAX_TOP5_DISTANCE
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-native dict (severity keys as strings ``"1".."5"``), e.g. to embed in a result file."""
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "dataset": self.dataset,
            "source": self.source,
            "clean_error": self.clean_error,
            "corruption_errors": {
                c: {str(s): e for s, e in per.items()} for c, per in self.corruption_errors.items()
            },
            "flip_probability": dict(self.flip_probability),
            "top5_distance": dict(self.top5_distance),
        }

    def to_json(self, indent: int | None = 2) -> str:
        """The baseline file's text (see the module docstring for the format)."""
        return json.dumps(self.to_dict(), indent=indent) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Baseline:
        """Rebuild from :meth:`to_dict`'s output; checks the format tag and version."""
        if not isinstance(data, Mapping):
            raise BaselineError(f"a baseline must be a JSON object, got {type(data).__name__}")
        if data.get("format", FORMAT) != FORMAT:
            raise BaselineError(f"not a baseline: format is {data.get('format')!r}, expected {FORMAT!r}")
        version = data.get("format_version", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise BaselineError(
                f"baseline format_version {version!r} is not supported (this version reads {FORMAT_VERSION}); "
                "upgrade robust-eval or regenerate the file"
            )
        unknown = sorted(set(data) - _JSON_KEYS)
        if unknown:
            raise BaselineError(f"unknown key(s) {unknown} in baseline; allowed: {sorted(_JSON_KEYS)}")
        if "name" not in data:
            raise BaselineError("baseline lacks its 'name'")
        return cls(
            name=data["name"],
            corruption_errors=data.get("corruption_errors") or {},
            clean_error=data.get("clean_error"),
            flip_probability=data.get("flip_probability") or {},
            top5_distance=data.get("top5_distance") or {},
            source=data.get("source", ""),
            dataset=data.get("dataset"),
        )

    @classmethod
    def from_result(
        cls, result: Mapping[str, Any], *, name: str | None = None, left_out: list[str] | None = None
    ) -> Baseline:
        """A baseline from a robust-eval result document (``<command>.json``, or its dict).

        Takes every -C and -C-bar corruption measured at all 5 severities (top-1 errors), the clean
        error (the clean suite's, else the one the corruption suite measured), and the flip
        probability / top-5 distance of every -P perturbation, difficulty levels 2-3 as
        ``<perturbation>_<level>``. Numbers nothing can be divided by are left out (a corruption
        with error 0 at every severity, a flip probability or top-5 distance of 0): their names
        are appended to ``left_out`` when a list is given, and recorded in ``source``. ``name``
        defaults to ``<model>-<sha256[:8]>``; the data set and the provenance (checkpoint, data
        folder, subset) come from the result.

        Raises
        ------
        BaselineError
            The result holds no corruption or perturbation numbers.
        """
        suites = result.get("suites") or {}
        corruptions = suites.get("corruptions") or {}
        errors = {
            c: {int(s): e for s, e in per.items()}
            for block in (corruptions.get("c"), corruptions.get("c_bar"))
            for c, per in ((block or {}).get("errors") or {}).items()
            if len(per) == len(SEVERITIES)
        }
        pert = suites.get("perturbations") or {}
        per_p = dict(pert.get("per_perturbation") or {})
        for level, block in (pert.get("difficulties") or {}).items():
            per_p.update({f"{p}_{level}": v for p, v in block["per_perturbation"].items()})
        if not errors and not per_p:
            raise BaselineError(
                "this run measured no corruption (all 5 severities) or perturbation numbers to make a baseline of"
            )
        fp = {p: v["flip_probability"] for p, v in per_p.items()}
        t5d = {p: v["top5_distance"] for p, v in per_p.items() if v.get("top5_distance") is not None}
        zero = [c for c, per in errors.items() if not any(per.values())]
        zero += [p for p, v in fp.items() if v == 0] + [
            f"{p} (top-5 distance)" for p, v in t5d.items() if v == 0
        ]
        ck, protocol = result.get("checkpoint") or {}, result.get("protocol") or {}
        source = (
            f"robust-eval {result.get('command')} on '{ck.get('path')}' (sha256 {ck.get('sha256')}), "
            f"data {protocol.get('data_dir')}, subset {protocol.get('subset')}"
        )
        if left_out is not None:
            left_out.extend(zero)
        return cls(
            name=name or f"{ck.get('model')}-{str(ck.get('sha256', ''))[:8]}",
            corruption_errors={c: per for c, per in errors.items() if any(per.values())},
            clean_error=(suites.get("clean") or {}).get("top1_error", corruptions.get("clean_error")),
            flip_probability={p: v for p, v in fp.items() if v > 0},
            top5_distance={p: v for p, v in t5d.items() if v > 0},
            source=source + (f"; left out, 0 cannot normalize: {', '.join(zero)}" if zero else ""),
            dataset=ck.get("dataset"),
        )

    def check_dataset(self, dataset: str) -> None:
        """Refuse to normalize a ``dataset`` model by numbers measured on another data set.

        Raises
        ------
        BaselineError
            ``self.dataset`` is recorded and differs from ``dataset``.
        """
        if self.dataset is not None and self.dataset != dataset:
            raise BaselineError(
                f"baseline {self.name!r} was measured on {self.dataset}, but the checkpoint is a {dataset} "
                f"model: its numbers cannot normalize {dataset} results; compute a {dataset} baseline "
                "(robust-eval baseline FILE --checkpoint BASE.pth, or --save-baseline) or drop --baseline"
            )

    @classmethod
    def from_json(cls, text: str) -> Baseline:
        """Parse a baseline file's text (JSON only; nothing is unpickled or executed)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BaselineError(f"baseline is not valid JSON: {exc}") from exc
        return cls.from_dict(data)


# --------------------------------------------------------------------------------------------------
# built-ins, files
# --------------------------------------------------------------------------------------------------


def alexnet_baseline() -> Baseline:
    """The built-in AlexNet ImageNet-C baseline (a fresh copy; mCE-normalizing with it gives AlexNet 100).

    Examples
    --------
    >>> b = alexnet_baseline()
    >>> len(b.corruption_errors), b.clean_error, b.corruption_errors["fog"][5]
    (15, 0.43478, 0.945)
    """
    return Baseline(
        name="alexnet",
        corruption_errors={c: dict(zip(SEVERITIES, errs)) for c, errs in ALEXNET_IMAGENET_C_ERRORS.items()},
        clean_error=ALEXNET_CLEAN_ERROR,
        source=ALEXNET_SOURCE,
        dataset="imagenet",
    )


#: Registry of built-in baselines, by lower-case name.
BUILTIN_BASELINES: dict[str, Callable[[], Baseline]] = {"alexnet": alexnet_baseline}


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read a baseline JSON file; :class:`BaselineError` names the file on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"baseline file {str(p)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"cannot read baseline file {str(p)!r}: {exc}") from exc
    try:
        return Baseline.from_json(text)
    except BaselineError as exc:
        raise BaselineError(f"{p}: {exc}") from exc


def get_baseline(name_or_path: str | os.PathLike[str]) -> Baseline:
    """A built-in baseline by name (``"alexnet"``, case-insensitive) or a baseline JSON file by path.

    Built-in names win over a file of the same name in the working directory (write ``./alexnet`` to
    mean the file).

    Raises
    ------
    BaselineError
        Neither a built-in name nor an existing file, or the file is not a valid baseline.

    Examples
    --------
    >>> get_baseline("AlexNet").name
    'alexnet'
    """
    key = os.fspath(name_or_path)
    builtin = BUILTIN_BASELINES.get(key.strip().lower())
    if builtin is not None:
        return builtin()
    p = Path(key)
    if not p.is_file():
        raise BaselineError(
            f"unknown baseline {key!r}: not a built-in name ({', '.join(sorted(BUILTIN_BASELINES))}) and no "
            "such file. Pass a built-in name or the path of a JSON file written by "
            "`robust-eval baseline FILE` or `robust-eval corruptions BASE.pth --save-baseline FILE`"
        )
    return load_baseline(p)


def check_baseline_target(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Whether :func:`save_baseline` can write ``path``, checked before a run that ends by writing it.

    Returns the path. Raises :class:`IsADirectoryError` (``path`` is a folder),
    :class:`FileExistsError` (it exists and ``overwrite`` is False), :class:`NotADirectoryError`
    (a parent is a file) or :class:`PermissionError` (the nearest existing parent is not writable).
    """
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(
            f"{str(target)!r} is a folder; give a file path such as {str(target / 'baseline.json')!r}"
        )
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"refusing to overwrite existing file {str(target)!r}: it already exists; remove it or choose "
            "another path (overwrite=True in Python)"
        )
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise NotADirectoryError(f"cannot write {str(target)!r}: {str(parent)!r} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {str(target)!r}: folder {str(parent)!r} is not writable")
    return target


def save_baseline(path: str | os.PathLike[str], baseline: Baseline, *, overwrite: bool = False) -> Path:
    """Write ``baseline`` as JSON to ``path`` atomically (temp file in the same folder + ``os.replace``).

    Parent folders are created. An existing file is never replaced unless ``overwrite=True``; a
    crash mid-write leaves either the old file or none, never a truncated one.

    Returns
    -------
    The path written.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(baseline, Baseline):
        raise TypeError(f"save_baseline needs a Baseline, got {type(baseline).__name__}")
    target = check_baseline_target(path, overwrite=overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(target, baseline.to_json(), overwrite=overwrite)
    except FileExistsError:
        raise FileExistsError(
            f"refusing to overwrite existing file {str(target)!r}; choose another path or pass overwrite=True"
        ) from None
    return target
