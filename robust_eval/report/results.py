"""Typed suite results: what each suite of ``robust_eval.suites`` returns, and how it presents itself.

Each suite result is a dataclass with ``to_dict()`` (the JSON-native block stored under
``result["suites"][<name>]``, keys in a fixed order so a result file is byte-identical run to run)
and ``from_dict()`` (reads a stored block back; keys a block lacks take their defaults, so results of
older versions still render and compare). A result renders its own terminal / Markdown summary rows
(:meth:`SuiteResult.summary_rows`), its Markdown section (:meth:`SuiteResult.markdown`) and its
plots (:meth:`SuiteResult.plots`); ``robust_eval.report`` is a loop over them, in the order of
:attr:`SuiteResult.rank` (the paper's table order).

Numbers are fractions in [0, 1] (errors, calibration errors, AUROC / AUPR / FPR95, flip
probabilities), rank distances for T5D, and percentages (baseline = 100) for normalized CE / mCE /
mFR; rows and Markdown show fractions as percentages.

Adding a field to a suite is one edit here (the field, in JSON order) plus the line of the suite
that fills it; adding a suite is one class here plus its runner in ``robust_eval.suites``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from robust_eval.constants import BENCHMARK_CORRUPTIONS, ECE_BINS, EXTRA_CORRUPTIONS, RMS_BIN_SIZE, SEVERITIES
from robust_eval.report.markdown import md_table

__all__ = [
    "RESULT_TYPES",
    "AdversarialResult",
    "CalibrationResult",
    "CleanResult",
    "CorruptionSet",
    "CorruptionSummary",
    "CorruptionsResult",
    "ImagenetARResult",
    "OODResult",
    "PerturbationsResult",
    "Presenter",
    "ResultValueError",
    "Row",
    "SuiteResult",
    "check_result",
    "load_suites",
    "num",
    "pct",
    "presenters",
]

#: One summary row: (metric, value, note).
Row = tuple[str, str, str]
#: ``save(fig, kind)`` writes one matplotlib figure and records its file under ``kind``.
SaveFigure = Callable[[Any, str], None]

#: Field metadata: leave the key out of ``to_dict`` when the value is None (conditional keys).
OPTIONAL = {"omit_none": True}


def pct(value: Any, digits: int = 2) -> str:
    """A fraction as a percentage string ("-" for None)."""
    return "-" if value is None else f"{100 * float(value):.{digits}f}"


def num(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals ("-" for None)."""
    return "-" if value is None else f"{float(value):.{digits}f}"


def _plain(value: Any) -> Any:
    return value.to_dict() if isinstance(value, Block) else value


@dataclass
class Block:
    """A JSON block with a fixed key order: the dataclass fields in order (a field whose metadata is
    :data:`OPTIONAL` is left out while None), then keys this version does not know (``extra``)."""

    extra: dict[str, Any] = field(default_factory=dict, kw_only=True, repr=False)

    #: Field name -> Block type of a nested block (None stays None).
    NESTED: ClassVar[dict[str, type[Block]]] = {}
    #: The one field a block is stored as (its JSON block is that field's value), else None.
    STORED_AS: ClassVar[str | None] = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.metadata.get("omit_none"):
                continue
            out[f.name] = _plain(value)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Any:
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key not in names:
                continue
            nested = cls.NESTED.get(key)
            kwargs[key] = nested.from_dict(value) if nested is not None and value else value
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in names})


class Presenter:
    """Something the report shows: summary rows, a Markdown section and plots, placed by ``rank``."""

    #: Position in the summary table and the Markdown (the paper's table order).
    rank: ClassVar[int] = 0

    def summary_rows(self) -> list[Row]:
        return []

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        """Markdown lines of this section (``plots``: kind -> relative path of a plot made)."""
        return []

    def plots(self, save: SaveFigure) -> None:
        """Draw this result's figures and hand each to ``save(fig, kind)``."""


class SuiteResult(Block, Presenter):
    """The typed result of one suite (see the module docstring)."""

    #: The suite's key under ``result["suites"]``.
    suite: ClassVar[str] = ""

    def presenters(self) -> list[Presenter]:
        """What this result shows (itself; a suite may add a part shown elsewhere in the order)."""
        return [self]


# ------------------------------------------------------------------------------------------------
# clean
# ------------------------------------------------------------------------------------------------


@dataclass
class CleanResult(SuiteResult):
    """Top-1 / top-5 error on the clean test split (fractions)."""

    suite: ClassVar[str] = "clean"
    rank: ClassVar[int] = 10

    n: int = 0
    top1_error: float | None = None
    top5_error: float | None = None
    source: str | None = None

    def summary_rows(self) -> list[Row]:
        return [
            ("Clean top-1 error (%)", pct(self.top1_error), f"n={self.n}"),
            ("Clean top-5 error (%)", pct(self.top5_error), ""),
        ]


# ------------------------------------------------------------------------------------------------
# corruptions
# ------------------------------------------------------------------------------------------------


def _error_grid(errors: Mapping[str, Mapping[str, float]], names: Iterable[str]) -> str:
    rows = []
    for c in names:
        per = errors[c]
        vals = [per.get(str(s)) for s in range(1, 6)]
        mean = sum(v for v in vals if v is not None) / max(1, sum(v is not None for v in vals))
        rows.append([c, *[pct(v) for v in vals], pct(mean)])
    return md_table(["corruption", "s1", "s2", "s3", "s4", "s5", "mean"], rows)


@dataclass
class CorruptionSet(Block):
    """-C or -C-bar: error per (corruption, severity) cell; ``errors[c][str(s)]`` fractions.

    ``extra`` holds where the cells came from (``source``, ``severities``, ``seed``,
    ``imagenet_c_protocol``, ``crop_pct_used``: which of them depends on the layout read)."""

    generated_on_the_fly: bool = False
    regenerated: bool = False
    corruptions: list[str] = field(default_factory=list)
    errors: dict[str, dict[str, float]] = field(default_factory=dict)
    top5_errors: dict[str, dict[str, float]] = field(default_factory=dict)
    n_per_cell: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    #: Per-cell calibration tables and their means (``suites._cell_calibration``).
    calibration: dict[str, Any] | None = None
    #: -C-bar only: plain mean over every cell (None while a corruption is missing).
    mean_error: float | None = None
    #: Whether this is a -C-bar set (its JSON block has ``mean_error``; a -C block has not).
    is_bar: bool = field(default=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        # "source" and the other provenance keys come right after the two flags (the JSON order)
        head = {"generated_on_the_fly": self.generated_on_the_fly, "regenerated": self.regenerated}
        body = {
            "corruptions": self.corruptions,
            "errors": self.errors,
            "top5_errors": self.top5_errors,
            "n_per_cell": self.n_per_cell,
            "missing": self.missing,
            "calibration": self.calibration,
        }
        if self.is_bar:
            body["mean_error"] = self.mean_error
        return {**head, **self.extra, **body}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorruptionSet:
        out = super().from_dict(data)
        out.is_bar = "mean_error" in data
        return out

    @property
    def source(self) -> Any:
        return self.extra.get("source")

    @property
    def origin(self) -> str | None:
        """Where regenerated cells came from, in words (None: the released arrays)."""
        if self.generated_on_the_fly:
            return "generated on the fly from the clean test set (--generate), not the released arrays"
        if self.regenerated:
            return "regenerated by robust-eval make-c and read from disk, not the released arrays"
        return None

    def markdown(self, title: str) -> list[str]:
        flag = f" ({self.origin})" if self.origin else ""
        out = [f"### {title}: top-1 error (%) per severity{flag}", "", f"Source: {self.source}", ""]
        out += [_error_grid(self.errors, self.corruptions), ""]
        if self.missing:
            out += [f"Missing: {', '.join(self.missing)}", ""]
        return out


@dataclass
class CorruptionSummary(Block):
    """mCE of the -C benchmark cells: unnormalized (plain mean over 15 x 5 cells), the extras' mean
    error, and the baseline-normalized CE / mCE / relative mCE (``normalized``, percentages)."""

    benchmark_corruptions: list[str] = field(default_factory=list)
    missing_benchmark_corruptions: list[str] = field(default_factory=list)
    per_corruption_mean_error: dict[str, float] = field(default_factory=dict)
    mce_unnormalized: float | None = None
    extras_mean_error: float | None = None
    #: {baseline, baseline_source, ce, mce, relative_mce[, extras_ce]} or {baseline, error}.
    normalized: dict[str, Any] | None = None

    def summary_rows(self) -> list[Row]:
        note = "plain mean over 15x5 cells (CIFAR)"
        if self.missing_benchmark_corruptions:
            note = f"missing: {', '.join(self.missing_benchmark_corruptions)}"
        rows = [("mCE, unnormalized (%)", pct(self.mce_unnormalized), note)]
        if self.extras_mean_error is not None:
            rows.append(("Extra corruptions mean error (%)", pct(self.extras_mean_error), "not in mCE"))
        norm = self.normalized
        if norm and "mce" in norm:
            rows.append(("mCE, normalized", num(norm["mce"]), f"baseline {norm['baseline']} = 100"))
            if norm.get("relative_mce") is not None:
                rows.append(("Relative mCE", num(norm["relative_mce"]), f"baseline {norm['baseline']} = 100"))
        return rows

    def markdown(self) -> list[str]:
        norm = self.normalized
        if not (norm and "ce" in norm):
            return []
        rows = [[c, num(v)] for c, v in norm["ce"].items()]
        rows += [[f"{c} (extra)", num(v)] for c, v in norm.get("extras_ce", {}).items()]
        return [
            f"### Normalized CE (baseline {norm['baseline']} = 100)",
            "",
            md_table(["corruption", "CE"], rows),
            "",
        ]


def _mean_over_severities(per: Mapping[str, Mapping[str, Any]], key: str, name: str) -> Any:
    values = list(per.get(key, {}).get(name, {}).values())
    return None if not values or None in values else sum(values) / len(values)


@dataclass
class CalibrationUnderCorruption(Presenter):
    """RMS / ECE per -C corruption and over the 15 x 5 benchmark cells, beside the clean values;
    shown after the clean calibration section."""

    rank: ClassVar[int] = 55

    c: CorruptionSet | None
    calibration: dict[str, Any] | None  # CorruptionsResult.calibration: clean, corrupted_mean, mean_over

    def cells(self, sep: str = "x") -> str:
        """What the means are over: ``"15x5 cells"`` (corruptions x severities of the -C cells
        averaged), and which benchmark corruptions are missing from them."""
        cal = self.c.calibration if self.c is not None else None
        names = cal.get("mean_over") if cal else None
        if not isinstance(names, list):
            return "the -C benchmark cells"
        per = cal.get("per_cell", {}).get("rms_calibration_error", {})
        counts = {len(per.get(name, {})) for name in names}
        text = f"{len(names)}{sep}{counts.pop()} cells" if len(counts) == 1 else f"{len(names)} corruptions"
        missing = [c for c in BENCHMARK_CORRUPTIONS if c not in names]
        if missing:
            text += f"; missing {len(missing)} of {len(BENCHMARK_CORRUPTIONS)}: {', '.join(missing)}"
        return text

    def summary_rows(self) -> list[Row]:
        mean = (self.calibration or {}).get("corrupted_mean")
        if not mean:
            return []
        note = f"mean over {self.cells()}"
        return [
            ("RMS calib. error under -C (%)", pct(mean["rms_calibration_error"]), note),
            ("ECE under -C (%)", pct(mean["ece"]), note),
        ]

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        cal = self.c.calibration if self.c is not None else None
        if not cal:
            return []
        per = cal["per_cell"]
        rows = [
            [
                name if name in cal["mean_over"] else f"{name} (extra)",
                pct(_mean_over_severities(per, "rms_calibration_error", name)),
                pct(_mean_over_severities(per, "ece", name)),
            ]
            for name in per.get("rms_calibration_error", {})
        ]
        rows.append(
            [f"**mean ({self.cells(' x ')})**", pct(cal["mean_rms_calibration_error"]), pct(cal["mean_ece"])]
        )
        clean = (self.calibration or {}).get("clean")
        if clean:
            rows.append(["clean test set", pct(clean["rms_calibration_error"]), pct(clean["ece"])])
        return [
            "### Calibration under corruption",
            "",
            f"Per -C cell, confidence = {cal['confidence']}; per corruption the mean over severities 1-5.",
            "",
            md_table(["corruption", "RMS (%)", "ECE (%)"], rows),
            "",
        ]


@dataclass
class CorruptionsResult(SuiteResult):
    """-C (15 benchmark + 4 extras) and -C-bar cells, mCE, calibration under corruption."""

    suite: ClassVar[str] = "corruptions"
    rank: ClassVar[int] = 20
    NESTED: ClassVar[dict[str, type[Block]]] = {
        "c": CorruptionSet,
        "c_bar": CorruptionSet,
        "summary": CorruptionSummary,
    }

    c: CorruptionSet | None = None
    c_bar: CorruptionSet | None = None
    #: Clean top-1 error (fraction) used by relative mCE; absent when the clean set is absent.
    clean_error: float | None = field(default=None, metadata=OPTIONAL)
    summary: CorruptionSummary | None = field(default=None, metadata=OPTIONAL)
    #: {clean, corrupted_mean, mean_over}: calibration errors of the clean set and over -C cells.
    calibration: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)

    def presenters(self) -> list[Presenter]:
        return [self, CalibrationUnderCorruption(self.c, self.calibration)]

    def _parts(self) -> list[tuple[str, CorruptionSet]]:
        return [(title, part) for title, part in (("-C", self.c), ("-C-bar", self.c_bar)) if part]

    def summary_rows(self) -> list[Row]:
        rows: list[Row] = []
        if self.summary:
            rows += self.summary.summary_rows()
            if self.c and self.c.origin:
                rows.append(("-C data", "regenerated", self.c.origin))
        if self.c_bar:
            rows.append(("-C-bar mean error (%)", pct(self.c_bar.mean_error), ""))
        return rows

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        out = ["## Corruptions", ""]
        for title, part in self._parts():
            out += part.markdown(title)
        out += (self.summary or CorruptionSummary()).markdown()
        if "corruption_errors" in plots:
            out += [f"![corruption errors]({plots['corruption_errors']})", ""]
        return out

    def plots(self, save: SaveFigure) -> None:
        """One bar chart per set (-C, -C-bar): per corruption, one bar per severity (light = 1, dark
        = 5); extras marked ``*`` on a grey band; the clean error as a dashed line."""
        import matplotlib.pyplot as plt

        parts = self._parts()
        if not parts:
            return
        width = max(8.0, 0.55 * max(len(part.corruptions) for _, part in parts) + 3)
        fig, axes = plt.subplots(len(parts), 1, figsize=(width, 4.2 * len(parts)), squeeze=False)
        for ax, (title, part) in zip(axes[:, 0], parts):
            _severity_bars(ax, title, part, self.clean_error)
        fig.tight_layout()
        save(fig, "corruption_errors")


def _severity_bars(ax: Any, title: str, part: CorruptionSet, clean_error: float | None) -> None:
    """Grouped bars of ``part.errors`` on ``ax`` (see :meth:`CorruptionsResult.plots`)."""
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(part.corruptions)
    x = np.arange(len(names))
    width = 0.8 / len(SEVERITIES)
    shades = plt.get_cmap("Blues")(np.linspace(0.35, 0.95, len(SEVERITIES)))
    for k, s in enumerate(SEVERITIES):
        heights = [100 * v if (v := part.errors[c].get(str(s))) is not None else np.nan for c in names]
        ax.bar(x - 0.4 + width * (k + 0.5), heights, width, color=shades[k], label=f"severity {s}")
    extras = [i for i, c in enumerate(names) if c in EXTRA_CORRUPTIONS]
    if extras:
        ax.axvspan(min(extras) - 0.5, max(extras) + 0.5, color="0.9", zorder=0, label="* extra: not in mCE")
    if clean_error is not None:
        ax.axhline(100 * clean_error, color="k", ls="--", lw=1, label=f"clean ({pct(clean_error, 1)}%)")
    ax.set_xticks(x)
    ax.set_xticklabels([c + ("*" if c in EXTRA_CORRUPTIONS else "") for c in names], rotation=45, ha="right")
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_ylabel("top-1 error (%)")
    origin = " (regenerated)" if part.origin else ""
    ax.set_title(f"{title}{origin}: top-1 error per corruption and severity")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


# ------------------------------------------------------------------------------------------------
# perturbations
# ------------------------------------------------------------------------------------------------


@dataclass
class PerturbationsResult(SuiteResult):
    """-P: flip probability and T5D per perturbation, mFR / mT5D at difficulty 1 (the headline) and
    per difficulty level 2-3 (``difficulties``)."""

    suite: ClassVar[str] = "perturbations"
    rank: ClassVar[int] = 30

    source: str | None = None
    perturbations: list[str] = field(default_factory=list)
    perturbations_default: bool = True
    perturbation_list: str | None = None
    #: name -> {n, frames, noise_rule, flip_probability, top5_distance[, by_stride]}
    per_perturbation: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    mfr: float | None = None
    mt5d: float | None = None
    normalized: dict[str, Any] | None = None
    difficulty: int = 1
    difficulty_aggregation: str | None = None
    #: str(level) -> {per_perturbation, perturbations, complete, mfr, mt5d, normalized}
    difficulties: dict[str, dict[str, Any]] = field(default_factory=dict)

    def measured(self) -> str:
        """What mFR / mT5D are over: every perturbation of the list, or why they are not computed."""
        if self.missing:
            return (
                f"not computed: {len(self.missing)} of {len(self.perturbations)} perturbations missing "
                f"({', '.join(self.missing)})"
            )
        return f"over {len(self.perturbations)} perturbations"

    def summary_rows(self) -> list[Row]:
        level = f"difficulty {self.difficulty}, "
        rows = [
            ("mFR (%)", pct(self.mfr), f"{level}{self.measured()}"),
            ("mT5D", num(self.mt5d, 3), ""),
        ]
        for d, block in (self.difficulties or {}).items():
            note = "" if block["complete"] else f"only {', '.join(block['perturbations'])}"
            rows.append((f"mFR, difficulty {d} (%)", pct(block["mfr"]), note or "not in the headline"))
        if self.normalized:
            rows.append(
                ("mFR, normalized", num(self.normalized["mfr"]), f"baseline {self.normalized['baseline']}")
            )
        return rows

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        out = ["## Perturbations", "", f"Averaged list: {', '.join(self.perturbations)}", ""]
        if self.missing:
            out += [f"mFR / mT5D {self.measured()}: they average every perturbation of the list.", ""]
        rows = [
            [
                p,
                str(v["frames"]),
                "frame 0" if v["noise_rule"] else "consecutive",
                pct(v["flip_probability"]),
                num(v["top5_distance"], 3),
            ]
            for p, v in self.per_perturbation.items()
        ]
        out += [md_table(["perturbation", "frames", "compared with", "FP (%)", "T5D"], rows), ""]
        if self.difficulty_aggregation:
            out += [f"Difficulty levels: {self.difficulty_aggregation}", ""]
        for d, block in (self.difficulties or {}).items():
            rows = [
                [p, v["source"], pct(v["flip_probability"]), num(v["top5_distance"], 3)]
                for p, v in block["per_perturbation"].items()
            ]
            complete = "complete" if block["complete"] else "partial"
            rows.append(["**mean**", complete, pct(block["mfr"]), num(block["mt5d"], 3)])
            out += [f"### Difficulty {d}", "", md_table(["perturbation", "from", "FP (%)", "T5D"], rows), ""]
        return out


# ------------------------------------------------------------------------------------------------
# adversarial
# ------------------------------------------------------------------------------------------------


@dataclass
class AdversarialResult(SuiteResult):
    """Error under L-inf PGD (or AutoAttack: ``attack["kind"]``) on the clean test set (fractions);
    budgets in [0, 1] pixel units."""

    suite: ClassVar[str] = "adversarial"
    rank: ClassVar[int] = 40

    source: str | None = None
    #: PGD: {name, eps, alpha, steps, random_start}; AutoAttack: {name, kind: "autoattack", eps,
    #: n_examples, n_classes, components, ...} (robust_eval.suites.autoattack_plan)
    attack: dict[str, Any] = field(default_factory=dict)
    n: int = 0
    clean_error: float | None = None
    adversarial_error: float | None = None
    max_linf_perturbation: float = 0.0
    inside_unit_box: bool = True

    @property
    def kind(self) -> str:
        """Which attack: "pgd" (results before AutoAttack say nothing) or "autoattack"."""
        return str(self.attack.get("kind", "pgd"))

    def summary_rows(self) -> list[Row]:
        eps = self.attack["eps"] * 255
        if self.kind == "autoattack":
            return [("AutoAttack error (%)", pct(self.adversarial_error), f"eps {eps:g}/255, first {self.n}")]
        note = f"eps {eps:g}/255, {self.attack['steps']} steps"
        return [("PGD error (%)", pct(self.adversarial_error), note)]

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        a = self.attack
        if self.kind == "autoattack":
            parts = ", ".join(c.get("name", "?") for c in a.get("components", []))
            return [
                "## Adversarial (AutoAttack)",
                "",
                f"{a['name']}: {parts}; eps {a['eps'] * 255:g}/255, {a.get('n_classes')} classes passed "
                f"(model {a.get('model_classes')}), on the first {self.n} clean test images in [0, 1]: error "
                f"{pct(self.adversarial_error)}% (clean {pct(self.clean_error)}%). Largest perturbation "
                f"{self.max_linf_perturbation * 255:.3f}/255; inside [0, 1]: {self.inside_unit_box}.",
                "",
            ]
        return [
            "## Adversarial (PGD)",
            "",
            f"L-inf PGD, eps {a['eps'] * 255:g}/255, step {a['alpha'] * 255:g}/255, {a['steps']} steps, "
            f"random start {a['random_start']}, on {self.n} clean test images in [0, 1]: error "
            f"{pct(self.adversarial_error)}% (clean {pct(self.clean_error)}%). Largest perturbation "
            f"{self.max_linf_perturbation * 255:.3f}/255; inside [0, 1]: {self.inside_unit_box}.",
            "",
        ]


# ------------------------------------------------------------------------------------------------
# calibration
# ------------------------------------------------------------------------------------------------


@dataclass
class CalibrationResult(SuiteResult):
    """RMS calibration error (ours and the reference-compatible variant), ECE and reliability bins of
    the clean pass (fractions)."""

    suite: ClassVar[str] = "calibration"
    rank: ClassVar[int] = 50

    n: int = 0
    rms_calibration_error: float | None = None
    #: None below ``bin_size`` samples, where the reference code fails (``reference_compatible_note``).
    rms_calibration_error_reference_compatible: float | None = None
    ece: float | None = None
    bin_size: int = RMS_BIN_SIZE
    ece_bins: int = ECE_BINS
    confidence: str | None = None
    rms_ties: str | None = None
    reference_compatible_note: str | None = field(default=None, metadata=OPTIONAL)
    #: {bin_lower, bin_upper, confidence, accuracy, count}: lists of ``ece_bins`` numbers.
    reliability: dict[str, list[float]] | None = None

    def summary_rows(self) -> list[Row]:
        rows = [
            ("RMS calibration error (%)", pct(self.rms_calibration_error), "ours (all bins, ties averaged)")
        ]
        if self.rms_calibration_error_reference_compatible is not None:
            ref = pct(self.rms_calibration_error_reference_compatible)
            rows.append(("RMS calib. error, reference-compatible (%)", ref, "skips the last bin"))
        rows.append(("ECE (%)", pct(self.ece), f"{ECE_BINS} bins"))
        return rows

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        out = [
            "## Calibration",
            "",
            f"RMS calibration error {pct(self.rms_calibration_error)}% (ours: equal-count bins of "
            f"{RMS_BIN_SIZE}, all bins, tied confidences share their mean accuracy). Reference-compatible "
            f"(the reference's sort order, skips the last bin): "
            f"{pct(self.rms_calibration_error_reference_compatible)}%. ECE ({ECE_BINS} bins): {pct(self.ece)}%.",
            "",
        ]
        if "reliability" in plots:
            out += [f"![reliability diagram]({plots['reliability']})", ""]
        return out

    def plots(self, save: SaveFigure) -> None:
        import matplotlib.pyplot as plt

        r = self.reliability
        if not r:
            return
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        lower, upper = r["bin_lower"], r["bin_upper"]
        widths = [u - lo for lo, u in zip(lower, upper)]
        acc = [a if n > 0 else 0 for a, n in zip(r["accuracy"], r["count"])]
        ax.bar(lower, acc, width=widths, align="edge", edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.set_xlabel("confidence (max softmax)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"ECE {pct(self.ece)}%, RMS {pct(self.rms_calibration_error)}%")
        ax.legend(loc="upper left")
        save(fig, "reliability")


# ------------------------------------------------------------------------------------------------
# OOD detection
# ------------------------------------------------------------------------------------------------


@dataclass
class OODResult(SuiteResult):
    """Anomaly detection (score -max softmax, OOD positive): AUROC / AUPR / FPR95 per set and their
    means over the sets present (fractions)."""

    suite: ClassVar[str] = "ood"
    rank: ClassVar[int] = 60

    score: str | None = None
    softmax: str | None = None
    n_in_distribution: int = 0
    n_ood_per_set: int = 0
    selection: str | None = None
    #: name -> {kind, [format, path,] n, auroc, aupr, fpr95, hist_edges, hist_in, hist_out, roc_fpr, roc_tpr}
    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    sets_present: list[str] | None = None
    protocol_sets: list[str] = field(default_factory=list)
    protocol_sets_missing: list[str] = field(default_factory=list)
    skipped_sets: dict[str, str] = field(default_factory=dict)
    mean_over: list[str] = field(default_factory=list)
    mean_auroc: float | None = None
    mean_aupr: float | None = None
    mean_fpr95: float | None = None
    #: ImageNet checkpoints only: the 200-class-masked ImageNet-O block (or {"skipped": why}).
    imagenet_o: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)

    def summary_rows(self) -> list[Row]:
        rows = [
            ("OOD AUROC (%)", pct(self.mean_auroc), f"mean over {len(self.sets)} sets"),
            ("OOD AUPR (%)", pct(self.mean_aupr), ""),
            ("OOD FPR95 (%)", pct(self.mean_fpr95), ""),
        ]
        io = self.imagenet_o
        if io and "aupr" in io:
            rows.append(("ImageNet-O AUPR (%)", pct(io["aupr"]), "200-class masked"))
        return rows

    def markdown(self, plots: Mapping[str, str]) -> list[str]:
        out = [
            "## Anomaly detection",
            "",
            f"Score: {self.score}. {self.n_ood_per_set} OOD images per set.",
            "",
        ]
        if self.sets_present is not None:
            missing = self.protocol_sets_missing or []
            out += [
                f"Softmax: {self.softmax or 'float64'}. Means over the {len(self.sets_present)} sets "
                f"present ({', '.join(self.sets_present)}); sets of the published CIFAR protocol not "
                f"found: {', '.join(missing) if missing else 'none'} (`robust-eval data check` says where "
                "each goes).",
                "",
            ]
        rows = [
            [n, v["kind"], str(v["n"]), pct(v["auroc"]), pct(v["aupr"]), pct(v["fpr95"])]
            for n, v in self.sets.items()
        ]
        rows.append(["**mean**", "", "", pct(self.mean_auroc), pct(self.mean_aupr), pct(self.mean_fpr95)])
        out += [md_table(["set", "kind", "n", "AUROC (%)", "AUPR (%)", "FPR95 (%)"], rows), ""]
        if "ood" in plots:
            out += [f"![OOD scores]({plots['ood']})", ""]
        return out

    def plots(self, save: SaveFigure) -> None:
        import matplotlib.pyplot as plt

        if not self.sets:
            return
        n = len(self.sets)
        fig, axes = plt.subplots(1, n + 1, figsize=(3.4 * (n + 1), 3.4), squeeze=False, layout="constrained")
        for ax, (name, v) in zip(axes[0], self.sets.items()):
            edges = v["hist_edges"]
            ax.stairs(v["hist_in"], edges, label="in-dist", fill=True, alpha=0.5)
            ax.stairs(v["hist_out"], edges, label=name, fill=True, alpha=0.5)
            ax.set_title(f"{name}: AUROC {pct(v['auroc'], 1)}%")
            ax.set_xlabel("score (-max softmax)")
            ax.legend(fontsize=7)
        axes[0][0].set_ylabel("images")
        roc = axes[0][-1]
        for name, v in self.sets.items():
            roc.plot(v["roc_fpr"], v["roc_tpr"], label=name)
        roc.plot([0, 1], [0, 1], "k:", lw=1)
        roc.set_xlabel("FPR (in-dist)")
        roc.set_ylabel("TPR (OOD)")
        roc.set_title("ROC")
        roc.legend(fontsize=7)
        save(fig, "ood")


# ------------------------------------------------------------------------------------------------
# ImageNet-A / -R
# ------------------------------------------------------------------------------------------------


@dataclass
class ImagenetARResult(SuiteResult):
    """ImageNet-A / -R top-1 error (200-class masked); ``sets[name]`` is {n, top1_error,
    masked_to_classes} or {skipped: why}. Stored as the mapping itself."""

    suite: ClassVar[str] = "imagenet_ar"
    rank: ClassVar[int] = 70

    sets: dict[str, dict[str, Any]] = field(default_factory=dict)
    STORED_AS: ClassVar[str | None] = "sets"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.sets)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImagenetARResult:
        return cls(sets=dict(data))

    def summary_rows(self) -> list[Row]:
        return [
            (f"{name} top-1 error (%)", pct(v["top1_error"]), "200-class masked")
            for name, v in self.sets.items()
            if "top1_error" in v
        ]


#: Suite name -> its result type, in the order ``robust-eval all`` runs the suites.
RESULT_TYPES: dict[str, type[SuiteResult]] = {
    t.suite: t
    for t in (
        CleanResult,
        CorruptionsResult,
        PerturbationsResult,
        AdversarialResult,
        CalibrationResult,
        OODResult,
        ImagenetARResult,
    )
}


def load_suites(suites: Mapping[str, Any]) -> dict[str, SuiteResult]:
    """Typed results of a stored ``result["suites"]`` mapping (suites this version does not know, and
    empty blocks, are left out)."""
    return {
        name: RESULT_TYPES[name].from_dict(block)
        for name, block in suites.items()
        if name in RESULT_TYPES and isinstance(block, Mapping) and block
    }


# ------------------------------------------------------------------------------------------------
# checking a stored result before anything reads it
# ------------------------------------------------------------------------------------------------


class ResultValueError(ValueError):
    """A stored result holds a value of the wrong kind, outside its range, or nested too deep; the
    message names its key as a dotted path (``suites.clean.top1_error``)."""


#: (lowest, highest, integer): the values a number may take.
Span = tuple[float, float, bool]
_FRACTION: Span = (0.0, 1.0, False)
_COUNT: Span = (0, math.inf, True)
_NON_NEGATIVE: Span = (0.0, math.inf, False)

#: Key name -> the span of every number stored under it in ``result["suites"]`` (the nearest named
#: key of a number's path decides: ``errors.fog.3`` is an error, a fraction). Under ``normalized``
#: the values are percentages of a baseline (:data:`NORMALIZED_SPANS`).
VALUE_SPANS: dict[str, Span] = {
    **dict.fromkeys(
        (
            # errors and error means
            "top1_error", "top5_error", "clean_error", "adversarial_error", "errors", "top5_errors",
            "per_corruption_mean_error", "mce_unnormalized", "extras_mean_error", "mean_error",
            # calibration
            "rms_calibration_error", "rms_calibration_error_reference_compatible", "ece", "mean_ece",
            "mean_rms_calibration_error", "mean_rms_calibration_error_reference_compatible", "aurc",
            "accuracy", "confidence", "bin_lower", "bin_upper",
            # OOD detection
            "auroc", "aupr", "aupr_in", "aupr_out", "fpr95", "mean_auroc", "mean_aupr", "mean_fpr95",
            "roc_fpr", "roc_tpr",
            # flips, attack budgets in [0, 1] pixel units
            "flip_probability", "mfr", "eps", "alpha", "max_linf_perturbation",
        ),
        _FRACTION,
    ),
    **dict.fromkeys(
        (
            "n", "n_per_cell", "count", "frames", "steps", "n_in_distribution", "n_ood_per_set",
            "bin_size", "ece_bins", "hist_in", "hist_out", "n_in", "n_out", "n_fit", "n_eval",
        ),
        _COUNT,
    ),
    **dict.fromkeys(("top5_distance", "mt5d", "nll", "temperature"), _NON_NEGATIVE),
    "brier": (0.0, 2.0, False),
    "severities": (1, 5, True),
    "difficulty": (1, math.inf, True),
}  # fmt: skip
#: Spans under a ``normalized`` block (CE / mCE / mFR / mT5D in % of a baseline; relative mCE may
#: be negative: a model can lose less than the baseline from clean to corrupted).
NORMALIZED_SPANS: dict[str, Span] = {"relative_mce": (-math.inf, math.inf, False)}
_PERCENT_OF_BASELINE: Span = _NON_NEGATIVE

#: Key name -> the JSON kind a value stored under it in ``result["suites"]`` must have (presenters
#: iterate these), where the typed result's annotation says only ``Any``.
CONTAINER_KINDS: dict[str, type] = {
    **dict.fromkeys(
        ("ce", "extras_ce", "per_cell", "corrupted_mean", "attack", "per_perturbation", "by_stride"),
        dict,
    ),
    **dict.fromkeys(("hist_edges", "hist_in", "hist_out", "roc_fpr", "roc_tpr", "perturbations"), list),
}
#: The top-level blocks of a result document and their kinds.
TOP_LEVEL: dict[str, Any] = {
    "checkpoint": dict[str, Any],
    "protocol": dict[str, Any],
    "suites": dict[str, Any],
    "skipped": dict[str, str],
}
#: Deepest nesting a result document may have (robust-eval writes 7 levels).
MAX_DEPTH = 32


def _key(path: Iterable[str | int]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_KIND_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "true or false", int: "an integer"}


def _kind_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float):
        return "a number"
    return _KIND_NAMES.get(type(value), type(value).__name__)


def _expected(hint: Any) -> str:
    """``hint`` in words (``float | None`` -> "a number or null")."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_expected(a) for a in typing.get_args(hint))
    if hint is type(None):
        return "null"
    if hint is float:
        return "a number"
    base = typing.get_origin(hint) or hint
    if isinstance(base, type) and issubclass(base, Block):
        return "an object"
    return _KIND_NAMES.get(base, str(hint))


def _kind_mismatch(
    value: Any, hint: Any, path: tuple[str | int, ...]
) -> tuple[tuple[str | int, ...], Any] | None:
    """(path, expected hint) of the first part of ``value`` that is not of the kind ``hint`` says,
    or None. Ints count as floats (JSON writes 0.0 as 0); bools count as neither."""
    if hint is Any:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if any(_kind_mismatch(value, a, path) is None for a in args):
            return None
        inner = [a for a in args if a is not type(None)]
        bad = _kind_mismatch(value, inner[0], path) if len(inner) == 1 and value is not None else None
        return bad if bad is not None and bad[0] != path else (path, hint)
    if hint is type(None):
        return None if value is None else (path, hint)
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else (path, hint)
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else (path, hint)
    if hint in (str, bool):
        return None if isinstance(value, hint) else (path, hint)
    if isinstance(hint, type) and issubclass(hint, Block):
        return None if isinstance(value, Mapping) else (path, hint)
    if origin is list:
        if not isinstance(value, list):
            return (path, hint)
        return next((m for i, v in enumerate(value) if (m := _kind_mismatch(v, args[0], (*path, i)))), None)
    if origin is dict:
        if not isinstance(value, Mapping):
            return (path, hint)
        return next((m for k, v in value.items() if (m := _kind_mismatch(v, args[1], (*path, k)))), None)
    return None


def _check_block(cls: type[Block], data: Any, path: tuple[str | int, ...]) -> None:
    """The stored fields of a typed block (and of its nested blocks) are of their annotated kinds."""
    if not isinstance(data, Mapping):
        raise ResultValueError(f"{_key(path)} is {_kind_name(data)}; expected an object")
    hints = typing.get_type_hints(cls)
    stored = {cls.STORED_AS: (data, path)} if cls.STORED_AS else {k: (v, (*path, k)) for k, v in data.items()}
    for name, (value, where) in stored.items():
        if name == "extra" or name not in hints or typing.get_origin(hints[name]) is ClassVar:
            continue
        bad = _kind_mismatch(value, hints[name], where)
        if bad is not None:
            got = _at(value, bad[0][len(where) :])
            raise ResultValueError(f"{_key(bad[0])} is {_kind_name(got)}; expected {_expected(bad[1])}")
        nested = cls.NESTED.get(name)
        if nested is not None and value:
            _check_block(nested, value, where)


def _at(tree: Any, path: Iterable[str | int]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _span(path: tuple[str | int, ...]) -> Span | None:
    """The span of the number at ``path`` under ``suites`` (None: any finite number)."""
    for part in reversed(path):
        if part == "normalized":
            return NORMALIZED_SPANS.get(str(path[-1]), _PERCENT_OF_BASELINE)
        if isinstance(part, str) and part in VALUE_SPANS:
            return VALUE_SPANS[part]
    return None


def _check_number(value: float, path: tuple[str | int, ...], in_suites: bool) -> None:
    if math.isnan(value):
        return  # "no value" (an empty reliability bin): shown as such
    span = _span(path) if in_suites else None
    if span is None:
        if math.isinf(value):
            raise ResultValueError(f"{_key(path)} = {value!r} is not a finite number")
        return
    low, high, integer = span
    if integer and not isinstance(value, int):
        raise ResultValueError(f"{_key(path)} = {value!r} is not an integer (a count)")
    if not low <= value <= high or math.isinf(value):
        what = "a fraction" if span == _FRACTION else f"in [{low:g}, {high:g}]"
        raise ResultValueError(f"{_key(path)} = {value!r} is impossible: it must be {what}")


def check_result(result: Mapping[str, Any]) -> None:
    """Check a loaded result document before anything reads it: the top-level blocks and every
    field of the typed suite results are of their kinds, every number is finite (NaN stands for "no
    value") and every metric within its range (:data:`VALUE_SPANS`), nesting at most
    :data:`MAX_DEPTH` levels.

    Raises:
        ResultValueError: naming the first offending key as a dotted path.
    """
    for name, hint in TOP_LEVEL.items():
        if name in result and (bad := _kind_mismatch(result[name], hint, (name,))) is not None:
            raise ResultValueError(
                f"{_key(bad[0])} is {_kind_name(_at(result, bad[0]))}; expected {_expected(bad[1])}"
            )
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), result)]
    while stack:
        path, value = stack.pop()
        if len(path) > MAX_DEPTH:
            raise ResultValueError(f"{_key(path[:3])}... is nested deeper than {MAX_DEPTH} levels")
        in_suites = bool(path) and path[0] == "suites"
        if isinstance(value, Mapping):
            stack += [((*path, k), v) for k, v in value.items()]
        elif isinstance(value, list):
            stack += [((*path, i), v) for i, v in enumerate(value)]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            _check_number(value, path, in_suites)
        if in_suites and value is not None and isinstance(path[-1], str):
            kind = CONTAINER_KINDS.get(path[-1]) if len(path) > 2 else None
            if kind is not None and not isinstance(value, kind):
                raise ResultValueError(f"{_key(path)} is {_kind_name(value)}; expected {_KIND_NAMES[kind]}")
    for name, block in result.get("suites", {}).items():
        if name in RESULT_TYPES:
            _check_block(RESULT_TYPES[name], block, ("suites", name))


def presenters(suites: Mapping[str, SuiteResult]) -> Iterator[Presenter]:
    """Every part to show, in the paper's table order (:attr:`Presenter.rank`)."""
    parts = [p for result in suites.values() for p in result.presenters()]
    yield from sorted(parts, key=lambda p: p.rank)


def dump_json(value: Any) -> str:
    """Result JSON text (2-space indent, key order kept, NaN allowed), newline-terminated."""
    return json.dumps(value, indent=2, sort_keys=False, allow_nan=True) + "\n"
