"""The plots of ``robust-eval compare`` (matplotlib, Agg), drawn from the ``compare.json`` document.

One colour per model, the same in every plot; the reference model is the first colour and its
label says "(ref)".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from robust_eval.constants import BENCHMARK_CORRUPTIONS, ECE_BINS, EXTRA_CORRUPTIONS, TEST_PERTURBATIONS
from robust_eval.report.write import save_png

__all__ = ["make_comparison_plots"]


def _labels(cmp: Mapping[str, Any]) -> list[str]:
    return [m["label"] + (" (ref)" if i == 0 else "") for i, m in enumerate(cmp["models"])]


def _grouped_bars(
    ax: Any,
    groups: Sequence[str],
    series: Sequence[Sequence[float | None]],
    labels: Sequence[str],
    annotate: bool = False,
) -> None:
    """Bars of ``series[model][group]`` side by side per group; missing values leave a gap;
    ``annotate`` writes each value above its bar (so a zero still shows)."""
    import numpy as np

    n = max(1, len(series))
    width = 0.8 / n
    x = np.arange(len(groups))
    for i, (vals, label) in enumerate(zip(series, labels)):
        heights = [np.nan if v is None else v for v in vals]
        bars = ax.bar(x - 0.4 + width * (i + 0.5), heights, width, label=label, color=f"C{i % 10}")
        if annotate:
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=45, ha="right")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _pct(v: Any) -> float | None:
    return None if v is None else 100.0 * float(v)


def _corruptions(cmp: Mapping[str, Any], plt: Any) -> Any:
    models = cmp["models"]
    names = [
        c
        for c in (*BENCHMARK_CORRUPTIONS, *EXTRA_CORRUPTIONS)
        if any(c in m["per_corruption_mean_error"] for m in models)
    ]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(names) * max(1, len(models)) ** 0.5 + 3), 4.5))
    series = [[_pct(m["per_corruption_mean_error"].get(c)) for c in names] for m in models]
    groups = [c + ("*" if c in EXTRA_CORRUPTIONS else "") for c in names]
    _grouped_bars(ax, groups, series, _labels(cmp))
    ax.set_ylabel("top-1 error (%), mean over severities 1-5")
    ax.set_title("Error per corruption (* = extra, not in mCE)")
    return fig


def _severity(cmp: Mapping[str, Any], plt: Any) -> Any:
    models = [(lab, m["per_severity_error"]) for lab, m in zip(_labels(cmp), cmp["models"])]
    if not any(per for _, per in models):
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for i, (label, per) in enumerate(models):
        if per:
            sev = sorted(per, key=int)
            ax.plot(
                [int(s) for s in sev],
                [100 * per[s] for s in sev],
                marker="o",
                color=f"C{i % 10}",
                label=label,
            )
    ax.set_xticks(range(6))
    ax.set_xticklabels(["clean", "1", "2", "3", "4", "5"])
    ax.set_xlabel("corruption severity")
    ax.set_ylabel("top-1 error (%), mean over the 15 corruptions")
    ax.set_title("Error against severity")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def _reliability(cmp: Mapping[str, Any], plt: Any) -> Any:
    models = [(lab, m["reliability"]) for lab, m in zip(_labels(cmp), cmp["models"])]
    if not any(r for _, r in models):
        return None
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for i, (label, r) in enumerate(models):
        if not r:
            continue
        pts = [
            (c, a, n)
            for c, a, n in zip(r.get("confidence", []), r.get("accuracy", []), r.get("count", []))
            if n and c == c and a == a  # skip empty bins and NaN
        ]
        if pts:
            conf, acc, count = zip(*pts)
            ax.plot(conf, acc, color=f"C{i % 10}", label=label, alpha=0.85)
            sizes = [12 + 200 * n / max(count) for n in count]
            ax.scatter(conf, acc, s=sizes, color=f"C{i % 10}", alpha=0.5, edgecolors="k", linewidths=0.5)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (max softmax), per bin")
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(f"Reliability ({ECE_BINS} bins; dot area ~ images in the bin)")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def _ood(cmp: Mapping[str, Any], plt: Any) -> Any:
    models = cmp["models"]
    sets = list(dict.fromkeys(n for m in models for n in m["ood_auroc"]))
    if not sets:
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(sets) + 3), 4.5))
    series = [[_pct(m["ood_auroc"].get(n)) for n in sets] for m in models]
    ax.axhline(50, color="k", ls=":", lw=1, label="chance (50%)")
    _grouped_bars(ax, sets, series, _labels(cmp), annotate=len(models) <= 4)
    ax.set_ylim(0, 105)
    ax.set_ylabel("AUROC (%), higher is better")
    ax.set_title("Anomaly detection: OOD AUROC per set (score = -max softmax)")
    return fig


def _pgd(cmp: Mapping[str, Any], plt: Any) -> Any:
    models = cmp["models"]
    if not any(m["pgd"]["adversarial_error"] is not None for m in models):
        return None
    fig, ax = plt.subplots(figsize=(max(5, 0.8 * len(models) + 3), 4.5))
    groups = ["clean", "PGD"]
    series = [[_pct(m["pgd"]["clean_error"]), _pct(m["pgd"]["adversarial_error"])] for m in models]
    _grouped_bars(ax, groups, series, _labels(cmp), annotate=True)
    ax.set_xticklabels(groups, rotation=0)
    ax.set_ylabel("top-1 error (%)")
    ax.set_title("Error on clean and PGD-attacked test images")
    return fig


def _perturbations(cmp: Mapping[str, Any], plt: Any) -> Any:
    models = cmp["models"]
    names = list(dict.fromkeys(p for m in models for p in m["flip_probability"]))
    if not names:
        return None
    names.sort(key=lambda p: (TEST_PERTURBATIONS.index(p) if p in TEST_PERTURBATIONS else 99, p))
    fig, ax = plt.subplots(figsize=(max(7, 0.7 * len(names) + 3), 4.5))
    series = [[_pct(m["flip_probability"].get(p)) for p in names] for m in models]
    _grouped_bars(ax, names, series, _labels(cmp))
    ax.set_ylabel("flip probability (%), lower is better")
    ax.set_title("Prediction flips along -P sequences")
    return fig


_PLOTS = {
    "corruption_errors": _corruptions,
    "severity": _severity,
    "reliability": _reliability,
    "ood": _ood,
    "pgd": _pgd,
    "perturbations": _perturbations,
}


def make_comparison_plots(cmp: Mapping[str, Any], folder: str | os.PathLike[str]) -> dict[str, str]:
    """Write ``compare-<kind>.png`` for every plot the document has data for; {kind: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}
    for kind, draw in _PLOTS.items():
        fig = draw(cmp, plt)
        if fig is None:
            continue
        name = f"compare-{kind}.png"
        save_png(fig, folder / name)
        made[kind] = name
    return made
