"""The ``robust-eval`` command: one run measures a checkpoint's whole safety suite.

Thin Typer commands parse options and delegate: command -> suite (robust_eval.suites) -> (reader,
model) -> metric (robust_eval.metrics) -> report (robust_eval.report.write). Bad input exits with code 2
and one line on stderr.
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from robust_eval import baseline_cmd, generate_cli
from robust_eval.constants import ECE_BINS, PGD_ALPHA_255, PGD_EPS_255, PGD_STEPS, RMS_BIN_SIZE
from robust_eval.evaluate import PROG, err_console, evaluate, resolve_data_dir
from robust_eval.options import (
    ATTACK_OPTIONS,
    CALIBRATION_OPTIONS,
    COMMON_OPTIONS,
    CORRUPTION_OPTIONS,
    OOD_OPTIONS,
    PERTURBATION_OPTIONS,
    PGD_OPTIONS,
    SAVE_BASELINE_OPTIONS,
    Checkpoint,
)
from robust_mix.cli import Option, command, fail, run

METRICS_HELP = (
    "Metrics (exact definitions: docs/metrics.md). Errors are fractions in the JSON, % on screen.\n\n"
    "- clean: top-1 / top-5 error on the test split.\n\n"
    "- corruptions: top-1 error per (corruption, severity) cell of -C (15 benchmark + 4 extras, extras never "
    "averaged) and -C-bar. mCE unnormalized = plain mean over the 15x5 cells (CIFAR convention); normalized "
    "CE_c = 100 * sum_s E(c,s) / sum_s E_base(c,s), mCE = mean CE_c (AlexNet constants for ImageNet, or "
    "--baseline FILE); relative mCE uses (E - E_clean) in both sums.\n\n"
    "- perturbations: flip probability per -P perturbation (noise: every frame vs frame 0; others: consecutive "
    "frames), top-5 distance (T5D); mFR / mT5D = plain mean (CIFAR) or mean of 100 * FP / FP_base.\n\n"
    f"- adversarial: error under L-inf PGD (torchattacks; eps {PGD_EPS_255:g}/255, step {PGD_ALPHA_255:g}/255, "
    f"{PGD_STEPS} steps, random start by default) on the clean test set in [0, 1] space.\n\n"
    f"- calibration: RMS calibration error (equal-count bins of {RMS_BIN_SIZE} by confidence, all bins; the "
    f"reference-compatible variant that skips the last bin is reported separately) and ECE ({ECE_BINS} bins).\n\n"
    "- ood: anomaly score = -max softmax, OOD = positive class; AUROC, AUPR (scikit-learn), FPR95 (FPR on "
    "in-distribution data at the threshold whose OOD recall is closest to 95%, ties to the larger FPR). "
    "Synthetic Gaussian / Rademacher / Blobs always, real sets from DATA/ood/<name>(.npy)."
)

app = typer.Typer(
    name="robust-eval",
    help="Measure a classifier's corruption, perturbation, adversarial, calibration and anomaly-detection "
    "robustness (the IPMix paper's safety suite) in one command.\n\n" + METRICS_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect the data root.", no_args_is_help=True)
app.add_typer(data_app, name="data")


_CHECKPOINT = inspect.Parameter("checkpoint", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Checkpoint)


def _register(name: str, suites: Sequence[str], extra: Sequence[Option], doc: str) -> None:
    """Add the evaluation command ``name`` running ``suites``: the checkpoint argument,
    :data:`~robust_eval.options.COMMON_OPTIONS` and ``extra``."""

    def body(**values: Any) -> None:
        evaluate(name, suites, values)

    command(app, name, body, (*COMMON_OPTIONS, *extra), doc, leading=[_CHECKPOINT])


_register(
    "all",
    ("clean", "corruptions", "perturbations", "adversarial", "calibration", "ood", "imagenet_ar"),
    [
        *CORRUPTION_OPTIONS,
        *PERTURBATION_OPTIONS,
        *SAVE_BASELINE_OPTIONS,
        *PGD_OPTIONS,
        *ATTACK_OPTIONS,
        *OOD_OPTIONS,
        *CALIBRATION_OPTIONS,
    ],
    "Every suite whose data is present; one line per skipped suite says why and what to put where.\n\n"
    + METRICS_HELP,
)
_register("clean", ("clean",), [], "Top-1 / top-5 error on the clean test split.")
_register(
    "corruptions",
    ("corruptions",),
    [*CORRUPTION_OPTIONS, *SAVE_BASELINE_OPTIONS],
    "-C and -C-bar: error per (corruption, severity), mCE unnormalized (plain mean over the 15 x 5 "
    "benchmark cells) and normalized (CE_c = 100 * sum_s E / sum_s E_base; AlexNet for ImageNet or "
    "--baseline), relative mCE. Extras (speckle_noise, gaussian_blur, spatter, saturate) reported separately.",
)
_register(
    "perturbations",
    ("perturbations",),
    [*PERTURBATION_OPTIONS, *SAVE_BASELINE_OPTIONS],
    "-P: flip probability (noise perturbations vs frame 0, others consecutive frames) and top-5 "
    "distance per perturbation; mFR / mT5D plain means, normalized with --baseline.",
)
_register(
    "adversarial",
    ("adversarial",),
    [*PGD_OPTIONS, *ATTACK_OPTIONS],
    "Error under L-inf PGD (torchattacks) on the clean test set in [0, 1] space; defaults are the "
    f"PixMix/IPMix protocol: eps {PGD_EPS_255:g}/255, step {PGD_ALPHA_255:g}/255, {PGD_STEPS} steps, random start. "
    "--attack autoattack: torchattacks' standard AutoAttack with RobustBench's eps (8/255 CIFAR, 4/255 ImageNet) "
    "on the first --n-examples test examples.",
)
_register(
    "calibration",
    ("calibration",),
    [*CALIBRATION_OPTIONS],
    f"RMS calibration error (equal-count bins of {RMS_BIN_SIZE}, corrected: all bins; the reference-compatible "
    f"variant skips the last bin) and ECE ({ECE_BINS} equal-width bins), from the clean pass.",
)
_register(
    "ood",
    ("ood",),
    [*OOD_OPTIONS],
    "Anomaly detection with score = -max softmax (OOD positive): AUROC, AUPR, FPR95 per OOD set "
    "(synthetic Gaussian, Rademacher, Blobs; DATA/ood/<name>.npy or DATA/ood/<name>/ image trees; "
    "ImageNet-O for ImageNet checkpoints).",
)


@app.command("report")
def report_cmd(
    result: Annotated[Path, typer.Argument(help="A result JSON written by a robust-eval run.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the Markdown and plots (default: next to the JSON)."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace <stem>.md even when it is not a report robust-eval wrote."),
    ] = False,
) -> None:
    """Re-render the Markdown report and the PNG plots from a saved result JSON. A <stem>.md that is
    not a robust-eval report (a file of yours) is never replaced unless --force."""
    from robust_eval.report.write import ResultError, load_result, print_summary, write_report

    try:
        loaded = load_result(result)
        folder = out if out is not None else result.parent
        md, plots = write_report(loaded, folder, result.stem, force=force)
    except (ResultError, OSError, KeyError, TypeError) as exc:
        fail(
            PROG,
            f"{exc}" if not isinstance(exc, (KeyError, TypeError)) else f"'{result}' is incomplete: {exc!r}",
        )
        return
    print_summary(Console(), loaded)
    err_console.print(f"wrote {md} and {len(plots)} plot(s)", highlight=False, soft_wrap=True)


@app.command("compare")
def compare_cmd(
    results: Annotated[
        list[Path] | None,
        typer.Argument(help="Result JSON files (robust-eval all/...); the first is the reference row."),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for compare.md, compare.json and plots/compare-*.png.")
    ] = Path("robust-eval-compare"),
    labels: Annotated[
        str | None,
        typer.Option("--labels", help="Comma-separated row names (default: the folder of each result file)."),
    ] = None,
    allow_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-mismatch",
            help="Compare results measured under different protocols (the table is marked).",
        ),
    ] = False,
    reference: Annotated[
        list[str] | None,
        typer.Option(
            "--reference",
            help="Published numbers to put beside the results (robustbench:..., timm:..., paper:...; "
            "repeatable); 'list' prints the shipped names with their provenance.",
        ),
    ] = None,
) -> None:
    """Compare models side by side: every headline metric with its difference to the first (reference)
    row, per-corruption and per-OOD-set tables, and plots. Refuses results measured under different
    protocols (data, corruption/perturbation lists, PGD settings, normalization, regenerated -C)
    unless --allow-mismatch."""
    from robust_eval.references import UnknownReference, print_reference_list
    from robust_eval.report.compare import ComparisonError, headline_rows, write_comparison
    from robust_eval.report.write import ResultError
    from robust_mix.files import OutputLock

    if reference and "list" in reference:
        print_reference_list(Console(width=200))
        return
    names = [n.strip() for n in labels.split(",")] if labels else None
    try:
        with OutputLock(out, "robust-eval compare"):  # one run per --out, as every command
            cmp, written = write_comparison(
                results or [], out, labels=names, allow_mismatch=allow_mismatch, references=reference or ()
            )
    except (ComparisonError, ResultError, UnknownReference, OSError) as exc:
        fail(PROG, exc)
        return
    _print_comparison(cmp, headline_rows(cmp))
    err_console.print(
        f"wrote {written['md']}, {written['json']} and {len(written) - 2} plot(s)", highlight=False
    )


def _print_comparison(cmp: dict[str, Any], table_rows: tuple[list[str], list[list[str]]]) -> None:
    """The headline table on screen, transposed to fit a terminal: one row per metric, one column
    per model (the same cells as compare.md)."""
    from rich.markup import escape
    from rich.table import Table

    header, rows = table_rows
    title = f"robust-eval compare: reference {escape(cmp['reference'])}, differences to it in parentheses"
    if cmp["protocol_mismatches"]:
        title = "[bold red]PROTOCOL MISMATCH (--allow-mismatch)[/] " + title
    table = Table(title=title)
    table.add_column("metric")
    for row in rows:
        table.add_column(escape(row[0]), justify="right")
    for j, metric in enumerate(header[1:], start=1):
        table.add_row(escape(metric), *[escape(row[j]) for row in rows])
    console = Console(width=max(100, 22 + 18 * len(rows)))
    console.print(table)
    for line in cmp["protocol_mismatches"]:
        console.print(f"[red]mismatch:[/] {escape(line)}", highlight=False)
    for line in cmp.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


@data_app.command("check")
def data_check(
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Data root (default: $ROBUST_EVAL_DATA, else ./data).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Validate every layout robust-eval reads (shapes, dtypes, label files, file counts) and print
    what is present, missing or malformed. Exits 1 when something is malformed."""
    from dataclasses import asdict

    from rich.table import Table

    from robust_eval.data import check_layouts

    root = resolve_data_dir(data_dir)
    if data_dir is not None and not root.exists():
        fail(PROG, f"--data-dir '{root}' does not exist; pass the folder that holds your data sets")
    if root.exists() and not root.is_dir():
        fail(PROG, f"--data-dir '{root}' is a file, expected a folder")
    entries = check_layouts(root)
    if json_out:
        sys.stdout.write(json.dumps([asdict(e) for e in entries], indent=2) + "\n")
    else:
        table = Table(title=f"data root: {root}")
        for col in ("data set", "status", "path", "detail"):
            table.add_column(col, overflow="fold")
        colors = {"present": "green", "partial": "yellow", "missing": "dim", "malformed": "red"}
        for e in entries:
            table.add_row(e.name, f"[{colors[e.status]}]{e.status}[/]", e.path, e.detail)
        Console(width=200).print(table)
    if any(e.status == "malformed" for e in entries):
        raise typer.Exit(1)


@data_app.command("digits")
def data_digits(
    data_dir: Annotated[Path, typer.Argument(help="Data root to write into (e.g. ./data).")],
    ood: Annotated[
        bool, typer.Option("--ood/--no-ood", help="Also write ood/photos.npy (scikit-image photo crops).")
    ] = True,
) -> None:
    """Write scikit-learn's handwritten digits as a CIFAR-10 python folder (32 x 32 RGB, fixed
    stratified 80/20 train/test split) under DATA_DIR/cifar-10-batches-py, and a real OOD set of
    photo crops at DATA_DIR/ood/photos.npy. Rerunning keeps identical files; never overwrites others."""
    from robust_eval.data import DataLayoutError
    from robust_eval.digits import write_digits

    try:
        status = write_digits(data_dir, ood=ood)
    except (DataLayoutError, OSError) as exc:
        fail(PROG, exc)
        return
    for path, what in status.items():
        err_console.print(f"{what} {path}", highlight=False, soft_wrap=True)


generate_cli.register(app)  # make-c, make-p: -C / -P regeneration (robust_eval.generate)
baseline_cmd.register(app)  # baseline


def main() -> None:
    """Console-script entry point: one-line errors, exit status 2 for bad input (robust_mix.cli)."""
    run(app, "robust-eval")


if __name__ == "__main__":
    main()
