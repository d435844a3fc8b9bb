"""Result JSON (versioned), Markdown report, PNG plots and the terminal summary table.

The result JSON is the source of truth: ``robust-eval report RESULT.json`` re-renders the Markdown
and every plot from it alone. Numbers inside are fractions in [0, 1] (errors, calibration errors,
AUROC/AUPR/FPR95, flip probabilities), rank distances for T5D, and percentages (AlexNet = 100) for
baseline-normalized CE / mCE / relative mCE / mFR; the Markdown shows fractions as percentages.
The JSON holds no timestamps or timings, so an interrupted-then-resumed run writes the same file as
an uninterrupted one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from albumentations_ipmix.files import atomic_writer
from robust_eval.cache import atomic_write_text
from robust_eval.markdown import escape_tree, md_table, md_text

__all__ = [
    "SCHEMA_VERSION",
    "ResultError",
    "build_result",
    "load_result",
    "make_plots",
    "package_versions",
    "print_summary",
    "render_markdown",
    "summary_rows",
    "write_report",
    "write_result",
]

SCHEMA_VERSION = 1


class ResultError(ValueError):
    """A result file is missing, not JSON, or not a robust-eval result of a readable schema."""


def package_versions() -> dict[str, str]:
    """Versions of the packages that shape the numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "robust-mix",
        "torch",
        "torchvision",
        "timm",
        "numpy",
        "torchattacks",
        "scikit-learn",
        "opencv-python-headless",
        "scipy",
    ):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def build_result(
    command: str,
    checkpoint: Mapping[str, Any],
    protocol: Mapping[str, Any],
    suites: Mapping[str, Any],
    skipped: Mapping[str, str],
) -> dict[str, Any]:
    """Assemble the versioned result document."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": "robust-eval",
        "command": command,
        "checkpoint": dict(checkpoint),
        "protocol": {**protocol, "package_versions": package_versions()},
        "suites": dict(suites),
        "skipped": dict(skipped),
    }


def write_result(path: str | os.PathLike[str], result: Mapping[str, Any]) -> Path:
    """Write the result JSON atomically (temp file + ``os.replace``)."""
    path = Path(path)
    atomic_write_text(path, json.dumps(result, indent=2, sort_keys=False, allow_nan=True) + "\n")
    return path


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a result JSON written by :func:`write_result`."""
    path = Path(path)
    if not path.is_file():
        raise ResultError(f"result file '{path}' does not exist")
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultError(f"'{path}' is not a JSON result file: {exc}") from None
    if not isinstance(result, dict) or result.get("tool") != "robust-eval":
        raise ResultError(f'\'{path}\' is not a robust-eval result (no "tool": "robust-eval")')
    version = result.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultError(f"'{path}' has schema_version {version!r}; this version reads <= {SCHEMA_VERSION}")
    return result


# ------------------------------------------------------------------------------------------------
# numbers for people
# ------------------------------------------------------------------------------------------------


def _pct(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * float(value):.{digits}f}"


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def summary_rows(result: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, note) rows of the headline numbers, in the paper's table order."""
    s = result.get("suites", {})
    rows: list[tuple[str, str, str]] = []
    if "clean" in s:
        rows.append(("Clean top-1 error (%)", _pct(s["clean"]["top1_error"]), f"n={s['clean']['n']}"))
        rows.append(("Clean top-5 error (%)", _pct(s["clean"]["top5_error"]), ""))
    corr = s.get("corruptions")
    if corr and corr.get("summary"):
        summ = corr["summary"]
        note = "plain mean over 15x5 cells (CIFAR)"
        if summ["missing_benchmark_corruptions"]:
            note = f"missing: {', '.join(summ['missing_benchmark_corruptions'])}"
        rows.append(("mCE, unnormalized (%)", _pct(summ["mce_unnormalized"]), note))
        if summ.get("extras_mean_error") is not None:
            rows.append(("Extra corruptions mean error (%)", _pct(summ["extras_mean_error"]), "not in mCE"))
        norm = summ.get("normalized")
        if norm and "mce" in norm:
            rows.append(("mCE, normalized", _num(norm["mce"]), f"baseline {norm['baseline']} = 100"))
            if norm.get("relative_mce") is not None:
                rows.append(
                    ("Relative mCE", _num(norm["relative_mce"]), f"baseline {norm['baseline']} = 100")
                )
        if corr["c"] and corr["c"].get("regenerated"):
            rows.append(("-C data", "regenerated", "generated on the fly, not the released arrays"))
    if corr and corr.get("c_bar"):
        rows.append(("-C-bar mean error (%)", _pct(corr["c_bar"].get("mean_error")), ""))
    pert = s.get("perturbations")
    if pert:
        level = f"difficulty {pert.get('difficulty', 1)}, "
        rows.append(("mFR (%)", _pct(pert["mfr"]), f"{level}over {len(pert['perturbations'])} perturbations"))
        rows.append(("mT5D", _num(pert["mt5d"], 3), ""))
        for d, block in (pert.get("difficulties") or {}).items():
            note = "" if block["complete"] else f"only {', '.join(block['perturbations'])}"
            rows.append((f"mFR, difficulty {d} (%)", _pct(block["mfr"]), note or "not in the headline"))
        if pert.get("normalized"):
            rows.append(
                (
                    "mFR, normalized",
                    _num(pert["normalized"]["mfr"]),
                    f"baseline {pert['normalized']['baseline']}",
                )
            )
    adv = s.get("adversarial")
    if adv:
        eps = adv["attack"]["eps"] * 255
        rows.append(
            (
                "PGD error (%)",
                _pct(adv["adversarial_error"]),
                f"eps {eps:g}/255, {adv['attack']['steps']} steps",
            )
        )
    cal = s.get("calibration")
    if cal:
        rows.append(
            (
                "RMS calibration error (%)",
                _pct(cal["rms_calibration_error"]),
                "ours (all bins, ties averaged)",
            )
        )
        if cal.get("rms_calibration_error_reference_compatible") is not None:
            rows.append(
                (
                    "RMS calib. error, reference-compatible (%)",
                    _pct(cal["rms_calibration_error_reference_compatible"]),
                    "skips the last bin",
                )
            )
        rows.append(("ECE (%)", _pct(cal["ece"]), "15 bins"))
    under = (corr or {}).get("calibration") or {}
    if under.get("corrupted_mean"):
        mean = under["corrupted_mean"]
        rows.append(
            ("RMS calib. error under -C (%)", _pct(mean["rms_calibration_error"]), "mean over 15x5 cells")
        )
        rows.append(("ECE under -C (%)", _pct(mean["ece"]), "mean over 15x5 cells"))
    ood = s.get("ood")
    if ood:
        rows.append(("OOD AUROC (%)", _pct(ood["mean_auroc"]), f"mean over {len(ood['sets'])} sets"))
        rows.append(("OOD AUPR (%)", _pct(ood["mean_aupr"]), ""))
        rows.append(("OOD FPR95 (%)", _pct(ood["mean_fpr95"]), ""))
        io = ood.get("imagenet_o")
        if io and "aupr" in io:
            rows.append(("ImageNet-O AUPR (%)", _pct(io["aupr"]), "200-class masked"))
    ar = s.get("imagenet_ar")
    if ar:
        for name, v in ar.items():
            if "top1_error" in v:
                rows.append((f"{name} top-1 error (%)", _pct(v["top1_error"]), "200-class masked"))
    return rows


def print_summary(console: Any, result: Mapping[str, Any]) -> None:
    """A rich table of :func:`summary_rows` on ``console``."""
    from rich.table import Table

    ck = result.get("checkpoint", {})
    table = Table(title=f"robust-eval {result.get('command', '')}: {ck.get('model')} ({ck.get('dataset')})")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("note", style="dim")
    for row in summary_rows(result):
        table.add_row(*row)
    for suite, reason in result.get("skipped", {}).items():
        table.add_row(f"[yellow]{suite}[/yellow]", "skipped", reason)
    console.print(table)


_md_table = md_table


def _error_grid(errors: Mapping[str, Mapping[str, float]], names: list[str]) -> str:
    rows = []
    for c in names:
        per = errors[c]
        vals = [per.get(str(s)) for s in range(1, 6)]
        mean = sum(v for v in vals if v is not None) / max(1, sum(v is not None for v in vals))
        rows.append([c, *[_pct(v) for v in vals], _pct(mean)])
    return _md_table(["corruption", "s1", "s2", "s3", "s4", "s5", "mean"], rows)


def _calibration_under_corruption(corr: Mapping[str, Any] | None) -> list[str]:
    """Markdown lines: RMS / ECE per -C corruption (mean over severities), their means over the
    15 x 5 benchmark cells, and the clean-set values beside them."""
    c = (corr or {}).get("c") or {}
    cal = c.get("calibration")
    if not cal:
        return []
    per = cal["per_cell"]

    def mean_of(key: str, name: str) -> Any:
        values = list(per.get(key, {}).get(name, {}).values())
        return None if not values or None in values else sum(values) / len(values)

    rows = [
        [
            name if name in cal["mean_over"] else f"{name} (extra)",
            _pct(mean_of("rms_calibration_error", name)),
            _pct(mean_of("ece", name)),
        ]
        for name in per.get("rms_calibration_error", {})
    ]
    rows.append(["**mean (15 x 5 cells)**", _pct(cal["mean_rms_calibration_error"]), _pct(cal["mean_ece"])])
    clean = ((corr or {}).get("calibration") or {}).get("clean")
    if clean:
        rows.append(["clean test set", _pct(clean["rms_calibration_error"]), _pct(clean["ece"])])
    return [
        "### Calibration under corruption",
        "",
        f"Per -C cell, confidence = {cal['confidence']}; per corruption the mean over severities 1-5.",
        "",
        _md_table(["corruption", "RMS (%)", "ECE (%)"], rows),
        "",
    ]


def render_markdown(result: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The human-readable report (errors in %, every per-cell number, protocol notes).

    Every string of ``result`` (names and messages that may come from a checkpoint or a file) is
    rendered as literal text (:func:`robust_eval.markdown.md_text`).
    """
    plots = plots or {}
    data_config = md_text(json.dumps(result.get("checkpoint", {}).get("data_config")))
    result = escape_tree(result)
    ck = result["checkpoint"]
    proto = result.get("protocol", {})
    s = result.get("suites", {})
    out = [
        f"# robust-eval report: {ck.get('model')} on {ck.get('dataset')}",
        "",
        f"Checkpoint {ck.get('path')} (sha256 `{str(ck.get('sha256'))[:16]}...`, {ck.get('kind')}"
        f"{', EMA weights' if ck.get('ema') else ''}). Result schema v{result['schema_version']}.",
        "",
        f"**Input contract:** {ck.get('input_contract')}. Data config: {data_config}.",
        "",
        "## Summary",
        "",
        _md_table(["metric", "value", "note"], [list(r) for r in summary_rows(result)]),
        "",
    ]
    if result.get("skipped"):
        out += ["## Skipped suites", ""]
        out += [f"- **{k}**: {v}" for k, v in result["skipped"].items()]
        out.append("")
    corr = s.get("corruptions")
    if corr:
        out += ["## Corruptions", ""]
        for key, title in (("c", "-C"), ("c_bar", "-C-bar")):
            part = corr.get(key)
            if not part:
                continue
            flag = " (regenerated on the fly: not the released arrays)" if part.get("regenerated") else ""
            out += [
                f"### {title}: top-1 error (%) per severity{flag}",
                "",
                f"Source: {part.get('source')}",
                "",
            ]
            out += [_error_grid(part["errors"], part["corruptions"]), ""]
            if part.get("missing"):
                out += [f"Missing: {', '.join(part['missing'])}", ""]
        summ = corr.get("summary") or {}
        norm = summ.get("normalized")
        if norm and "ce" in norm:
            out += [f"### Normalized CE (baseline {norm['baseline']} = 100)", ""]
            rows = [[c, _num(v)] for c, v in norm["ce"].items()]
            rows += [[f"{c} (extra)", _num(v)] for c, v in norm.get("extras_ce", {}).items()]
            out += [_md_table(["corruption", "CE"], rows), ""]
        if "corruption_errors" in plots:
            out += [f"![corruption errors]({plots['corruption_errors']})", ""]
    pert = s.get("perturbations")
    if pert:
        out += ["## Perturbations", "", f"Averaged list: {', '.join(pert['perturbations'])}", ""]
        rows = [
            [
                p,
                str(v["frames"]),
                "frame 0" if v["noise_rule"] else "consecutive",
                _pct(v["flip_probability"]),
                _num(v["top5_distance"], 3),
            ]
            for p, v in pert["per_perturbation"].items()
        ]
        out += [_md_table(["perturbation", "frames", "compared with", "FP (%)", "T5D"], rows), ""]
        if pert.get("difficulty_aggregation"):
            out += [f"Difficulty levels: {pert['difficulty_aggregation']}", ""]
        for d, block in (pert.get("difficulties") or {}).items():
            rows = [
                [p, v["source"], _pct(v["flip_probability"]), _num(v["top5_distance"], 3)]
                for p, v in block["per_perturbation"].items()
            ]
            rows.append(
                [
                    "**mean**",
                    "complete" if block["complete"] else "partial",
                    _pct(block["mfr"]),
                    _num(block["mt5d"], 3),
                ]
            )
            out += [f"### Difficulty {d}", "", _md_table(["perturbation", "from", "FP (%)", "T5D"], rows), ""]
    adv = s.get("adversarial")
    if adv:
        a = adv["attack"]
        out += [
            "## Adversarial (PGD)",
            "",
            f"L-inf PGD, eps {a['eps'] * 255:g}/255, step {a['alpha'] * 255:g}/255, {a['steps']} steps, "
            f"random start {a['random_start']}, on {adv['n']} clean test images in [0, 1]: error "
            f"{_pct(adv['adversarial_error'])}% (clean {_pct(adv['clean_error'])}%). Largest perturbation "
            f"{adv['max_linf_perturbation'] * 255:.3f}/255; inside [0, 1]: {adv['inside_unit_box']}.",
            "",
        ]
    cal = s.get("calibration")
    if cal:
        out += [
            "## Calibration",
            "",
            f"RMS calibration error {_pct(cal['rms_calibration_error'])}% (ours: equal-count bins of 100, all "
            f"bins, tied confidences share their mean accuracy). Reference-compatible (the reference's "
            f"sort order, skips the last bin): "
            f"{_pct(cal['rms_calibration_error_reference_compatible'])}%. ECE (15 bins): {_pct(cal['ece'])}%.",
            "",
        ]
        if "reliability" in plots:
            out += [f"![reliability diagram]({plots['reliability']})", ""]
    out += _calibration_under_corruption(corr)
    ood = s.get("ood")
    if ood:
        out += [
            "## Anomaly detection",
            "",
            f"Score: {ood['score']}. {ood['n_ood_per_set']} OOD images per set.",
            "",
        ]
        if "sets_present" in ood:
            missing = ood.get("protocol_sets_missing") or []
            out += [
                f"Softmax: {ood.get('softmax', 'float64')}. Means over the {len(ood['sets_present'])} sets "
                f"present ({', '.join(ood['sets_present'])}); sets of the published CIFAR protocol not "
                f"found: {', '.join(missing) if missing else 'none'} (`robust-eval data check` says where "
                "each goes).",
                "",
            ]
        rows = [
            [n, v["kind"], str(v["n"]), _pct(v["auroc"]), _pct(v["aupr"]), _pct(v["fpr95"])]
            for n, v in ood["sets"].items()
        ]
        rows.append(
            ["**mean**", "", "", _pct(ood["mean_auroc"]), _pct(ood["mean_aupr"]), _pct(ood["mean_fpr95"])]
        )
        out += [_md_table(["set", "kind", "n", "AUROC (%)", "AUPR (%)", "FPR95 (%)"], rows), ""]
        if "ood" in plots:
            out += [f"![OOD scores]({plots['ood']})", ""]
    out += [
        "## Protocol",
        "",
        "```json",
        json.dumps(dict(proto), indent=2),
        "```",
        "",
    ]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# plots
# ------------------------------------------------------------------------------------------------


def save_png(fig: Any, path: str | os.PathLike[str]) -> None:
    """Write a matplotlib figure as PNG (110 dpi) atomically, through a unique temporary file (so two
    runs into one folder cannot collide), and close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_writer(path) as handle:
            fig.savefig(handle, format="png", dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)


def make_plots(result: Mapping[str, Any], folder: str | os.PathLike[str], stem: str) -> dict[str, str]:
    """PNG plots (matplotlib Agg) for what the result holds; returns {kind: file name in ``folder``}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s = result.get("suites", {})
    made: dict[str, str] = {}

    def save(fig: Any, kind: str) -> None:
        name = f"{stem}-{kind}.png"
        save_png(fig, folder / name)
        made[kind] = name

    corr = s.get("corruptions")
    parts = [(k, corr[k]) for k in ("c", "c_bar") if corr and corr.get(k)]
    if parts:
        fig, axes = plt.subplots(1, len(parts), figsize=(7 * len(parts), 4.5), squeeze=False)
        for ax, (key, part) in zip(axes[0], parts):
            cmap = plt.get_cmap("tab20")
            for i, c in enumerate(part["corruptions"]):
                sev = sorted(int(k) for k in part["errors"][c])
                ax.plot(
                    sev,
                    [100 * part["errors"][c][str(k)] for k in sev],
                    marker="o",
                    color=cmap(i % 20),
                    label=c,
                )
            ax.set_xlabel("severity")
            ax.set_ylabel("top-1 error (%)")
            ax.set_xticks([1, 2, 3, 4, 5])
            ax.set_title("-C" if key == "c" else "-C-bar")
            ax.legend(fontsize=6, ncol=2)
        save(fig, "corruption_errors")
    cal = s.get("calibration")
    if cal and cal.get("reliability"):
        r = cal["reliability"]
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        lower, upper = r["bin_lower"], r["bin_upper"]
        widths = [u - lo for lo, u in zip(lower, upper)]
        acc = [a if n > 0 else 0 for a, n in zip(r["accuracy"], r["count"])]
        ax.bar(lower, acc, width=widths, align="edge", edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
        ax.set_xlabel("confidence (max softmax)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"ECE {_pct(cal['ece'])}%, RMS {_pct(cal['rms_calibration_error'])}%")
        ax.legend(loc="upper left")
        save(fig, "reliability")
    ood = s.get("ood")
    if ood and ood.get("sets"):
        sets = ood["sets"]
        n = len(sets)
        fig, axes = plt.subplots(1, n + 1, figsize=(3.2 * (n + 1), 3.2), squeeze=False)
        for ax, (name, v) in zip(axes[0], sets.items()):
            edges = v["hist_edges"]
            ax.stairs(v["hist_in"], edges, label="in-dist", fill=True, alpha=0.5)
            ax.stairs(v["hist_out"], edges, label=name, fill=True, alpha=0.5)
            ax.set_title(f"{name}: AUROC {_pct(v['auroc'], 1)}")
            ax.set_xlabel("score (-max softmax)")
            ax.legend(fontsize=7)
        roc = axes[0][-1]
        for name, v in sets.items():
            roc.plot(v["roc_fpr"], v["roc_tpr"], label=name)
        roc.plot([0, 1], [0, 1], "k:", lw=1)
        roc.set_xlabel("FPR (in-dist)")
        roc.set_ylabel("TPR (OOD)")
        roc.set_title("ROC")
        roc.legend(fontsize=7)
        save(fig, "ood")
    return made


def write_report(
    result: Mapping[str, Any], folder: str | os.PathLike[str], stem: str
) -> tuple[Path, dict[str, str]]:
    """Markdown report ``<folder>/<stem>.md`` plus plots under ``<folder>/plots``; returns their paths."""
    folder = Path(folder)
    plots = make_plots(result, folder / "plots", stem)
    md = render_markdown(result, {k: f"plots/{v}" for k, v in plots.items()})
    path = folder / f"{stem}.md"
    atomic_write_text(path, md)
    return path, plots
