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

from robust_eval.cache import atomic_write_text
from robust_eval.report.markdown import escape_tree, md_table, md_text
from robust_eval.report.results import (
    Presenter,
    ResultValueError,
    check_result,
    dump_json,
    load_suites,
    presenters,
)
from robust_mix.errors import RobustMixError
from robust_mix.files import atomic_writer

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


class ResultError(ValueError, RobustMixError):
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
    atomic_write_text(path, dump_json(result))
    return path


def _read_result(path: Path) -> dict[str, Any]:
    """A JSON file that says it is a robust-eval result of a schema this version reads."""
    if not path.is_file():
        raise ResultError(f"result file '{path}' does not exist")
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultError(f"'{path}' is not a JSON result file: {exc}") from None
    except RecursionError:
        raise ResultError(f"'{path}' is not a robust-eval result: its JSON is nested too deep") from None
    if not isinstance(result, dict) or result.get("tool") != "robust-eval":
        raise ResultError(f'\'{path}\' is not a robust-eval result (no "tool": "robust-eval")')
    version = result.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise ResultError(f"'{path}' has schema_version {version!r}; this version reads <= {SCHEMA_VERSION}")
    return result


def load_result(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a result JSON written by :func:`write_result`: its kinds, and the range of
    every metric (:func:`robust_eval.report.results.check_result`), so a damaged or edited file is refused
    in one line naming the file and the key, never shown with impossible numbers.

    Raises:
        ResultError: the file is missing, not a robust-eval result, or holds a value it cannot hold.
    """
    path = Path(path)
    result = _read_result(path)
    try:
        check_result(result)
    except ResultValueError as exc:
        raise ResultError(
            f"'{path}' is damaged or was edited: {exc} (rerun robust-eval to write it again)"
        ) from None
    return result


# ------------------------------------------------------------------------------------------------
# numbers for people: a loop over the typed suite results (robust_eval.report.results)
# ------------------------------------------------------------------------------------------------


def _presenters(result: Mapping[str, Any]) -> list[Presenter]:
    return list(presenters(load_suites(result.get("suites", {}))))


def summary_rows(result: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(metric, value, note) rows of the headline numbers, in the paper's table order."""
    return [row for part in _presenters(result) for row in part.summary_rows()]


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


def _header(result: Mapping[str, Any], data_config: str) -> list[str]:
    ck = result["checkpoint"]
    return [
        f"# robust-eval report: {ck.get('model')} on {ck.get('dataset')}",
        "",
        f"Checkpoint {ck.get('path')} (sha256 `{str(ck.get('sha256'))[:16]}...`, {ck.get('kind')}"
        f"{', EMA weights' if ck.get('ema') else ''}). Result schema v{result['schema_version']}.",
        "",
        f"**Input contract:** {ck.get('input_contract')}. Data config: {data_config}.",
        "",
    ]


def render_markdown(result: Mapping[str, Any], plots: Mapping[str, str] | None = None) -> str:
    """The human-readable report (errors in %, every per-cell number, protocol notes): the header,
    the summary table, the skipped suites, each suite's own section, the protocol.

    Every string of ``result`` (names and messages that may come from a checkpoint or a file) is
    rendered as literal text (:func:`robust_eval.report.markdown.md_text`).
    """
    plots = plots or {}
    data_config = md_text(json.dumps(result.get("checkpoint", {}).get("data_config")))
    result = escape_tree(result)
    parts = _presenters(result)
    rows = [list(row) for part in parts for row in part.summary_rows()]
    out = [*_header(result, data_config), "## Summary", "", md_table(["metric", "value", "note"], rows), ""]
    if result.get("skipped"):
        out += ["## Skipped suites", ""]
        out += [f"- **{k}**: {v}" for k, v in result["skipped"].items()]
        out.append("")
    for part in parts:
        out += part.markdown(plots)
    out += ["## Protocol", "", "```json", json.dumps(dict(result.get("protocol", {})), indent=2), "```", ""]
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

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}

    def save(fig: Any, kind: str) -> None:
        name = f"{stem}-{kind}.png"
        save_png(fig, folder / name)
        made[kind] = name

    for part in _presenters(result):
        part.plots(save)
    return made


#: The first line of every Markdown report robust-eval writes starts with this.
REPORT_TITLE = "# robust-eval report: "


def is_report(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a Markdown report robust-eval wrote (its first line is the report title)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.readline().startswith(REPORT_TITLE)
    except OSError:
        return False


def check_report_target(path: str | os.PathLike[str], force: bool, hint: str = "pass --out DIR") -> None:
    """Refuse to replace ``path`` unless it does not exist, is a robust-eval report, or ``force``.

    Raises:
        ResultError: naming the file, ``--force`` and ``hint`` (another place to write).
    """
    path = Path(path)
    if path.exists() and not force and not is_report(path):
        raise ResultError(
            f"'{path}' exists and is not a report robust-eval wrote; {hint} or pass --force to replace it"
        )


def check_result_target(path: str | os.PathLike[str], sha256: str, hint: str = "pass another --out") -> None:
    """Refuse to replace ``path`` unless it does not exist or is the result of the same checkpoint
    (``sha256``: rerunning resumes into the same folder).

    Raises:
        ResultError: ``path`` is not a robust-eval result, or holds another checkpoint's result.
    """
    path = Path(path)
    if not path.exists():
        return
    try:
        old = _read_result(path)
    except ResultError:
        raise ResultError(
            f"'{path}' exists and is not a robust-eval result; {hint} or move the file away"
        ) from None
    ck = old.get("checkpoint") if isinstance(old.get("checkpoint"), dict) else {}
    if ck.get("sha256") != sha256:
        raise ResultError(
            f"'{path}' holds the result of another checkpoint ('{ck.get('path')}', sha256 "
            f"{str(ck.get('sha256'))[:12]}...); {hint} for this checkpoint, or remove the file"
        )


def write_report(
    result: Mapping[str, Any], folder: str | os.PathLike[str], stem: str, *, force: bool = False
) -> tuple[Path, dict[str, str]]:
    """Markdown report ``<folder>/<stem>.md`` plus plots under ``<folder>/plots``; returns their paths.

    A ``<stem>.md`` that is not a robust-eval report is not replaced unless ``force``
    (:func:`check_report_target`, raised before anything is written)."""
    folder = Path(folder)
    check_report_target(folder / f"{stem}.md", force)
    plots = make_plots(result, folder / "plots", stem)
    md = render_markdown(result, {k: f"plots/{v}" for k, v in plots.items()})
    path = folder / f"{stem}.md"
    atomic_write_text(path, md)
    return path, plots
