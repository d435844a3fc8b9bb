"""Side-by-side comparison of robust-eval results (``robust-eval compare A.json B.json ... --out DIR``).

The first result is the reference row: every other row shows each metric with its difference to it
(in percentage points for errors and rates, in the metric's own unit otherwise) and its ratio.

Results are only put side by side when they were measured under the same protocol
(:func:`protocol_differences`): the same test data, the same corruption / perturbation lists, the
same PGD settings, the same normalization of mCE / mFR, regenerated vs published -C alike. A
mismatch is refused with one line naming it (:class:`ProtocolMismatch`) unless the caller allows
it, in which case every output is marked. Keys a result does not have are shown as ``-`` (results
written by older or newer versions of robust-eval still compare).

Outputs (all written atomically, see :func:`write_comparison`): ``compare.json`` (every number),
``compare.md`` (text from the result files escaped) and ``plots/compare-*.png``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robust_eval.cache import atomic_write_text
from robust_eval.constants import BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS, SEVERITIES
from robust_eval.report.results import (
    CorruptionSet,
    CorruptionsResult,
    CorruptionSummary,
    SuiteResult,
    load_suites,
)
from robust_mix.errors import RobustMixError

__all__ = [
    "METRICS",
    "ComparisonError",
    "Metric",
    "ProtocolMismatch",
    "build_comparison",
    "md_escape",
    "protocol_differences",
    "render_markdown",
    "write_comparison",
]

COMPARE_SCHEMA_VERSION = 1


class ComparisonError(ValueError, RobustMixError):
    """The inputs cannot be compared (too few, unreadable, or output files in the way)."""


class ProtocolMismatch(ComparisonError):
    """Two results were measured under different protocols; the message names the difference."""


def typed(result: Mapping[str, Any]) -> dict[str, SuiteResult]:
    """The typed suite results of a loaded result file (:func:`robust_eval.report.results.load_suites`)."""
    suites = result.get("suites", {})
    return load_suites(suites) if isinstance(suites, Mapping) else {}


@dataclass(frozen=True)
class Metric:
    """A headline number of a result: which suite's typed result holds it, how to read it there, how
    to show it, which direction is better."""

    key: str
    label: str
    suite: str  # key of the typed result (robust_eval.report.results.RESULT_TYPES)
    read: Callable[[Any], Any]  # typed suite result -> the number (None when absent)
    percent: bool  # a fraction in [0, 1], shown (and differenced) in % / percentage points
    lower_is_better: bool = True

    def value(self, result: Mapping[str, Any]) -> float | None:
        suite = typed(result).get(self.suite)
        node = self.read(suite) if suite is not None else None
        if isinstance(node, bool) or not isinstance(node, (int, float)) or math.isnan(node):
            return None
        return float(node) * (100.0 if self.percent else 1.0)


def _attacked(r: Any, kind: str) -> float | None:
    """The adversarial error when the suite ran attack ``kind`` (pgd | autoattack), else None."""
    return r.adversarial_error if r.kind == kind else None


def _summary(c: CorruptionsResult) -> CorruptionSummary:
    return c.summary or CorruptionSummary()


#: The headline metrics, in the paper's table order (values in % where ``percent``).
METRICS: tuple[Metric, ...] = (
    Metric("clean_error", "clean err. (%)", "clean", lambda r: r.top1_error, True),
    Metric("mce", "mCE (%)", "corruptions", lambda r: _summary(r).mce_unnormalized, True),
    Metric(
        "mce_normalized", "mCE norm.", "corruptions", lambda r: _get(_summary(r).normalized, "mce"), False
    ),
    Metric("extras_error", "extras err. (%)", "corruptions", lambda r: _summary(r).extras_mean_error, True),
    Metric("c_bar_error", "C-bar err. (%)", "corruptions", lambda r: r.c_bar and r.c_bar.mean_error, True),
    Metric("mfr", "mFR (%)", "perturbations", lambda r: r.mfr, True),
    Metric("mt5d", "mT5D", "perturbations", lambda r: r.mt5d, False),
    Metric("pgd_error", "PGD err. (%)", "adversarial", lambda r: _attacked(r, "pgd"), True),
    Metric(
        "autoattack_error", "AutoAttack err. (%)", "adversarial", lambda r: _attacked(r, "autoattack"), True
    ),
    Metric("rms_calibration", "RMS cal. (%)", "calibration", lambda r: r.rms_calibration_error, True),
    Metric("ece", "ECE (%)", "calibration", lambda r: r.ece, True),
    Metric("ood_auroc", "OOD AUROC (%)", "ood", lambda r: r.mean_auroc, True, lower_is_better=False),
    Metric("ood_fpr95", "OOD FPR95 (%)", "ood", lambda r: r.mean_fpr95, True),
)


def _detector(r: Any, score: str, key: str) -> Any:
    """OpenOOD metric ``key`` of detector ``score`` averaged over the OOD sets (``--ood-scores``)."""
    return _get(r.extra, "detectors", "per_score", score, "mean", key)


def _detector_metrics() -> tuple[Metric, ...]:
    from robust_eval.ood_scores import OOD_SCORES

    return tuple(
        Metric(
            f"ood_{key}_{s}", f"{label} {s} (%)", "ood", lambda r, s=s, k=key: _detector(r, s, k), True, lower
        )
        for s in OOD_SCORES
        for key, label, lower in (("auroc", "AUROC", False), ("fpr95", "FPR@95", True))
    )


#: ImageNet test sets of the imagenet_ar block (ImageNet-A / -R; V2, Sketch, ReaL in timm's reference rows).
_IMAGENET_SETS = (
    ("imagenet-a", "ImageNet-A"),
    ("imagenet-r", "ImageNet-R"),
    ("imagenet-v2-matched-frequency", "ImageNet-V2"),
    ("imagenet-sketch", "ImageNet-Sketch"),
    ("imagenet-real", "ReaL"),
)


def _calibration(r: Any, when: str, key: str) -> Any:
    """Extended calibration metric (``--calibration-extras``) before / after temperature scaling."""
    return _get(r.extra, "extended", when, key)


METRICS = (
    *METRICS,
    *_detector_metrics(),
    *(
        Metric(
            f"{key}{tag}",
            f"{label}{suffix}",
            "calibration",
            lambda r, w=when, k=key: _calibration(r, w, k),
            pct,
        )
        for when, tag, suffix in (("before", "", ""), ("after_temperature_scaling", "_ts", " after TS"))
        for key, label, pct in (
            ("nll", "NLL", False),
            ("brier", "Brier", False),
            ("aurc", "AURC (%)", True),
            ("ece", "ECE (%)", True),
        )
        if not (key == "ece" and when == "before")
    ),
    *(
        Metric(
            f"{key}_error",
            f"{label} err. (%)",
            "imagenet_ar",
            lambda r, k=key: _get(r.sets, k, "top1_error"),
            True,
        )
        for key, label in _IMAGENET_SETS
    ),
    Metric(
        "c_3dcc_error", "3DCC err. (%)", "corruptions", lambda r: _get(r.extra, "c_3dcc", "mean_error"), True
    ),
    Metric(
        "mce_3dcc",
        "3DCC mCE norm.",
        "corruptions",
        lambda r: _get(r.extra, "c_3dcc", "normalized", "mce"),
        False,
    ),
)


# ------------------------------------------------------------------------------------------------
# protocol
# ------------------------------------------------------------------------------------------------


def _get(mapping: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(mapping, Mapping) or key not in mapping:
            return None
        mapping = mapping[key]
    return mapping


def _suite(result: Mapping[str, Any], name: str) -> Any:
    """The typed result of suite ``name`` in ``result``, or None."""
    return typed(result).get(name)


def _c_set(result: Mapping[str, Any]) -> CorruptionSet | None:
    corr = _suite(result, "corruptions")
    return corr.c if corr is not None else None


def _c_origin(result: Mapping[str, Any]) -> str | None:
    c = _c_set(result)
    if c is None:
        return None
    if c.generated_on_the_fly:
        return "generated on the fly"
    return "regenerated" if c.regenerated else "read from disk"


def _ood_sets(result: Mapping[str, Any]) -> list[str] | None:
    ood = _suite(result, "ood")
    return sorted(ood.sets) if ood is not None and isinstance(ood.sets, Mapping) else None


def _field(result: Mapping[str, Any], suite: str, name: str) -> Any:
    """Attribute ``name`` of the typed result of ``suite``, None when the suite is absent."""
    got = _suite(result, suite)
    return getattr(got, name) if got is not None else None


def _precision(result: Mapping[str, Any]) -> str | None:
    """The precision of a result's forward passes and of its PGD: "float32" unless ``protocol.speed``
    (robust_eval.speed) says otherwise; None for a result without a protocol."""
    if not isinstance(result.get("protocol"), Mapping):
        return None
    amp = _get(result, "protocol", "speed", "amp") or "off"
    pgd = _get(result, "protocol", "speed", "pgd_precision") or "float32"
    return "float32" if amp == "off" else f"{amp} (PGD {pgd})"


#: (name, extractor) of every protocol fact two comparable results must share. A fact one of the
#: two results does not record is not compared (results of other versions stay comparable).
PROTOCOL_FACTS: tuple[tuple[str, Callable[[Mapping[str, Any]], Any]], ...] = (
    ("data set", lambda r: _get(r, "checkpoint", "dataset")),
    ("data fingerprint", lambda r: _get(r, "protocol", "data_fingerprint")),
    ("data folder", lambda r: _get(r, "protocol", "data_dir")),
    ("split", lambda r: _get(r, "protocol", "split")),
    ("subset", lambda r: _get(r, "protocol", "subset")),
    ("clean test size", lambda r: _field(r, "clean", "n")),
    ("evaluation seed", lambda r: _get(r, "protocol", "seed")),
    ("corruption lists", lambda r: _get(r, "protocol", "corruption_lists")),
    ("corruptions measured", lambda r: c.corruptions if (c := _c_set(r)) is not None else None),
    ("-C data origin", _c_origin),
    ("-C generated on the fly", lambda r: _get(r, "protocol", "generate_corruptions")),
    ("ImageNet-C protocol", lambda r: _get(r, "protocol", "preprocessing", "imagenet_c_protocol")),
    ("perturbation list", lambda r: _get(r, "protocol", "perturbations")),
    ("perturbations measured", lambda r: _field(r, "perturbations", "perturbations")),
    ("PGD settings", lambda r: _get(r, "protocol", "pgd")),
    ("adversarial attack", lambda r: _field(r, "adversarial", "kind")),
    ("AutoAttack settings", lambda r: _get(r, "protocol", "autoattack")),
    ("forward precision (--amp)", lambda r: _precision(r)),
    ("calibration settings", lambda r: _get(r, "protocol", "calibration")),
    ("OOD protocol", lambda r: _get(r, "protocol", "ood")),
    ("OOD sets", _ood_sets),
    ("mCE/mFR normalization baseline", lambda r: _get(r, "protocol", "baseline", "name")),
    (
        "mCE normalized by",
        lambda r: _get(getattr(_field(r, "corruptions", "summary"), "normalized", None), "baseline"),
    ),
    (
        "images per -C cell",
        lambda r: sorted(set(c.n_per_cell.values())) if (c := _c_set(r)) and c.n_per_cell else None,
    ),
    ("normalization source", lambda r: _get(r, "protocol", "normalization_source")),
)


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def protocol_differences(results: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[str]:
    """One sentence per protocol fact in which a result differs from the reference (``results[0]``)."""
    out = []
    for name, extract in PROTOCOL_FACTS:
        ref = extract(results[0])
        for label, result in zip(labels[1:], results[1:]):
            value = extract(result)
            if ref is not None and value is not None and value != ref:
                out.append(f"{name} differs: {_short(ref)} in '{labels[0]}' vs {_short(value)} in '{label}'")
                break
    return out


# ------------------------------------------------------------------------------------------------
# the comparison document
# ------------------------------------------------------------------------------------------------


def _delta(value: float | None, ref: float | None) -> tuple[float | None, float | None]:
    if value is None or ref is None:
        return None, None
    return value - ref, (value / ref if ref != 0 else None)


def _per_corruption(result: Mapping[str, Any]) -> dict[str, float]:
    corr = _suite(result, "corruptions")
    per = _summary(corr).per_corruption_mean_error if corr is not None else {}
    return {c: float(v) for c, v in (per or {}).items()}


def _per_severity(result: Mapping[str, Any]) -> dict[str, float] | None:
    """Mean error over the benchmark corruptions at each severity (fractions), '0' = clean."""
    c = _c_set(result)
    errors = c.errors if c is not None else None
    if not isinstance(errors, Mapping):
        return None
    out: dict[str, float] = {}
    clean = _field(result, "clean", "top1_error")
    if clean is not None:
        out["0"] = float(clean)
    for s in SEVERITIES:
        vals = [errors[c][str(s)] for c in BENCHMARK_CORRUPTIONS if str(s) in errors.get(c, {})]
        if vals:
            out[str(s)] = float(sum(vals) / len(vals))
    return out


def _model_block(label: str, path: str, result: Mapping[str, Any]) -> dict[str, Any]:
    ck = result.get("checkpoint", {})
    ood_sets = _field(result, "ood", "sets") or {}
    per_pert = _field(result, "perturbations", "per_perturbation") or {}
    return {
        "label": label,
        "result": path,
        "checkpoint": {k: ck.get(k) for k in ("path", "sha256", "model", "dataset", "ema")},
        "per_corruption_mean_error": _per_corruption(result),
        "per_severity_error": _per_severity(result),
        "flip_probability": {p: v.get("flip_probability") for p, v in per_pert.items()},
        "ood_auroc": {n: v.get("auroc") for n, v in ood_sets.items()},
        "reliability": _field(result, "calibration", "reliability"),
        "pgd": {
            "clean_error": _field(result, "adversarial", "clean_error"),
            "adversarial_error": _field(result, "adversarial", "adversarial_error"),
        },
        "skipped": dict(result.get("skipped", {})),
        "reference": result.get("reference"),  # provenance of a published row (robust_eval.references)
    }


def same_result_warnings(
    results: Sequence[Mapping[str, Any]], labels: Sequence[str], paths: Sequence[str | os.PathLike[str]]
) -> list[str]:
    """One sentence per row that repeats an earlier one: the same file given twice, or two files
    holding the same result (their differences would all be zero, not a finding)."""
    out = []
    for j in range(len(results)):
        for i in range(j):
            same_file = Path(paths[i]).resolve() == Path(paths[j]).resolve()
            if same_file or results[i] == results[j]:
                what = "are the same file" if same_file else "hold identical results"
                out.append(
                    f"rows '{labels[i]}' and '{labels[j]}' {what} ('{paths[j]}'): every difference "
                    "between them is zero by construction"
                )
                break
    return out


def build_comparison(
    results: Sequence[Mapping[str, Any]],
    labels: Sequence[str],
    paths: Sequence[str],
    mismatches: Sequence[str] = (),
) -> dict[str, Any]:
    """The ``compare.json`` document: headline metrics with differences and ratios to the reference,
    the per-corruption / per-severity / OOD / PGD / reliability numbers behind the plots, and
    ``warnings`` (:func:`same_result_warnings`)."""
    metrics = []
    for m in METRICS:
        values = [m.value(r) for r in results]
        if all(v is None for v in values):
            continue
        deltas = [_delta(v, values[0]) for v in values]
        metrics.append(
            {
                "key": m.key,
                "label": m.label,
                "unit": "%" if m.percent else "",
                "lower_is_better": m.lower_is_better,
                "values": values,
                "differences": [d for d, _ in deltas],
                "ratios": [q for _, q in deltas],
            }
        )
    return {
        "schema_version": COMPARE_SCHEMA_VERSION,
        "tool": "robust-eval",
        "command": "compare",
        "reference": labels[0],
        "protocol_mismatches": list(mismatches),
        "warnings": same_result_warnings(results, labels, paths),
        "models": [_model_block(lab, p, r) for lab, p, r in zip(labels, paths, results)],
        "metrics": metrics,
    }


# ------------------------------------------------------------------------------------------------
# text
# ------------------------------------------------------------------------------------------------

_MD_SPECIAL = set("\\`*_{}[]()#+!|~")


def md_escape(text: Any) -> str:
    """``text`` safe to place in Markdown (and the HTML it renders to): HTML-escaped, Markdown
    punctuation backslash-escaped, newlines flattened."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = "".join(f"\\{ch}" if ch in _MD_SPECIAL else ch for ch in s)
    return " ".join(s.splitlines())


def format_cell(value: float | None, diff: float | None, is_reference: bool, digits: int = 2) -> str:
    """``"6.21"`` for the reference, ``"6.21 (-3.73)"`` for the others, ``"-"`` when absent."""
    if value is None:
        return "-"
    if is_reference or diff is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({diff:+.{digits}f})"


def headline_rows(cmp: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the headline table: one row per model, one column per metric."""
    header = ["model", *[m["label"] for m in cmp["metrics"]]]
    mce = next((m for m in cmp["metrics"] if m["key"] == "mce"), None)
    if mce is not None:
        header.append("mCE / ref")
    rows = []
    for i, model in enumerate(cmp["models"]):
        row = [model["label"]]
        row += [
            format_cell(m["values"][i], m["differences"][i], i == 0, 2 if m["unit"] else 3)
            for m in cmp["metrics"]
        ]
        if mce is not None:
            ratio = mce["ratios"][i]
            row.append("-" if ratio is None else f"{ratio:.2f}x")
        rows.append(row)
    return header, rows


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def _mismatch_banner(cmp: Mapping[str, Any]) -> list[str]:
    if not cmp["protocol_mismatches"]:
        return []
    lines = ["> **PROTOCOL MISMATCH (compared with --allow-mismatch): these rows are not comparable.**", ">"]
    return lines + [f"> - {md_escape(d)}" for d in cmp["protocol_mismatches"]] + [""]


def _warning_lines(cmp: Mapping[str, Any]) -> list[str]:
    return [line for w in cmp.get("warnings", []) for line in (f"> **Warning:** {md_escape(w)}", "")]


def _fraction_cells(models: Sequence[Mapping[str, Any]], key: str, name: str) -> list[str]:
    """Cells of ``models[i][key][name]`` (a fraction) in %, with the difference to ``models[0]``."""
    ref = models[0][key].get(name)
    cells = []
    for i, m in enumerate(models):
        v = m[key].get(name)
        d = None if v is None or ref is None else 100 * (v - ref)
        cells.append(format_cell(None if v is None else 100 * v, d, i == 0))
    return cells


def _detail_tables(cmp: Mapping[str, Any]) -> list[str]:
    models = cmp["models"]
    labels = [md_escape(m["label"]) for m in models]
    out: list[str] = []
    key = "per_corruption_mean_error"
    names = [c for c in (*BENCHMARK_CORRUPTIONS, *EXTRA_CORRUPTIONS) if c in models[0][key]]
    if names:
        rows = [
            [c + (" (extra)" if c in EXTRA_CORRUPTIONS else ""), *_fraction_cells(models, key, c)]
            for c in names
        ]
        out += [
            "## Error per corruption (%, mean over severities 1-5)",
            "",
            *_md_table(["corruption", *labels], rows),
            "",
        ]
    sets = list(models[0]["ood_auroc"])
    if sets:
        rows = [[md_escape(n), *_fraction_cells(models, "ood_auroc", n)] for n in sets]
        out += ["## OOD AUROC per set (%)", "", *_md_table(["OOD set", *labels], rows), ""]
    return out


def render_markdown(cmp: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """``compare.md``: the headline table (differences to the reference in parentheses), the
    per-corruption and per-OOD-set tables, the plots and where every row came from."""
    plots = plots or {}
    header, rows = headline_rows(cmp)
    rows = [[md_escape(r[0]), *r[1:]] for r in rows]
    out = [
        f"# robust-eval compare: {len(cmp['models'])} models, reference {md_escape(cmp['reference'])}",
        "",
        *_mismatch_banner(cmp),
        *_warning_lines(cmp),
        "Values in % unless noted; in parentheses the difference to the reference row (percentage points).",
        "Errors, mCE, mFR, calibration errors and FPR95: lower is better; AUROC: higher is better.",
        "",
        *_md_table(header, rows),
        "",
        *_detail_tables(cmp),
    ]
    titles = {
        "corruption_errors": "Error per corruption",
        "severity": "Error against severity",
        "reliability": "Reliability diagrams",
        "ood": "OOD AUROC per set",
        "pgd": "PGD error",
        "perturbations": "Flip probability per perturbation",
    }
    if plots:
        out += ["## Plots", ""]
        out += [f"![{titles.get(k, k)}]({v})" for k, v in plots.items()] + [""]
    out += ["## Inputs", ""]
    for m in cmp["models"]:
        ck = m["checkpoint"]
        out.append(
            f"- **{md_escape(m['label'])}**: result {md_escape(m['result'])}, checkpoint "
            f"{md_escape(ck.get('path'))} ({md_escape(ck.get('model'))}, sha256 {md_escape(str(ck.get('sha256'))[:12])})"
        )
        if m.get("reference"):
            out.append(f"  - published numbers: {md_escape(json.dumps(m['reference'], default=str))}")
        for suite, reason in m["skipped"].items():
            out.append(f"  - skipped {md_escape(suite)}: {md_escape(reason)}")
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------
# files
# ------------------------------------------------------------------------------------------------

#: Files ``compare`` writes in its output folder (besides ``plots/compare-*.png``).
OUTPUT_FILES = ("compare.json", "compare.md")
_MARKER = ".robust-eval-compare"


def _check_output(out: Path) -> None:
    """Refuse to overwrite files this command did not write (a marker file records ownership)."""
    if out.exists() and not out.is_dir():
        raise ComparisonError(f"--out '{out}' is a file; pass a folder")
    if (out / _MARKER).is_file():
        return
    taken = [name for name in OUTPUT_FILES if (out / name).exists()]
    taken += [f"plots/{p.name}" for p in sorted((out / "plots").glob("compare-*.png"))]
    if taken:
        raise ComparisonError(
            f"'{out / taken[0]}' exists and was not written by robust-eval compare; choose another --out"
        )


def default_labels(paths: Sequence[Path]) -> list[str]:
    """Row labels from the result paths: the folder holding each file (``eval/ipmix-s0/all.json``
    -> ``ipmix-s0``), numbered when two are the same."""
    names = [p.resolve().parent.name or p.stem for p in paths]
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if names.count(name) == 1 else f"{name}#{seen[name]}")
    return out


def write_comparison(
    paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    allow_mismatch: bool = False,
    references: Sequence[str] = (),
) -> tuple[dict[str, Any], dict[str, Path]]:
    """Load the results, check their protocols, write compare.json / compare.md / plots into ``out``.

    Returns:
        (the comparison document, {"json": ..., "md": ..., <plot kind>: ...} paths).

    Raises:
        ProtocolMismatch: protocols differ and ``allow_mismatch`` is false (nothing is written).
        ComparisonError: fewer than one result, wrong label count, or output files in the way.
        robust_eval.references.UnknownReference: a name in ``references`` is not shipped.
        robust_eval.report.write.ResultError: a result file is missing or not a robust-eval result.
    """
    from robust_eval.references import reference_result
    from robust_eval.report.compare_plots import make_comparison_plots
    from robust_eval.report.write import load_result

    paths = [Path(p) for p in paths]
    if not paths and not references:
        raise ComparisonError("give at least one result JSON (the first is the reference row)")
    results = [load_result(p) for p in paths]
    labels = list(labels) if labels else default_labels(paths)
    if len(labels) != len(paths):
        raise ComparisonError(f"--labels has {len(labels)} names for {len(paths)} result files")
    published = [reference_result(name) for name in references]  # after the files: beside them
    results += published
    labels += [doc["reference"]["name"] for doc in published]
    paths += [Path(doc["reference"]["name"]) for doc in published]
    mismatches = protocol_differences(results, labels)
    if mismatches and not allow_mismatch:
        more = f" (and {len(mismatches) - 1} more)" if len(mismatches) > 1 else ""
        raise ProtocolMismatch(
            f"protocol mismatch: {mismatches[0]}{more}; pass --allow-mismatch to compare anyway"
        )
    out = Path(out)
    _check_output(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).touch()
    cmp = build_comparison(results, labels, [str(p) for p in paths], mismatches)
    plots = make_comparison_plots(cmp, out / "plots")
    written: dict[str, Path] = {k: out / "plots" / v for k, v in plots.items()}
    atomic_write_text(out / "compare.json", json.dumps(cmp, indent=2, allow_nan=True) + "\n")
    atomic_write_text(out / "compare.md", render_markdown(cmp, {k: f"plots/{v}" for k, v in plots.items()}))
    written.update(json=out / "compare.json", md=out / "compare.md")
    return cmp, written
