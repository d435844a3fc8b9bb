"""Published numbers as reference rows for ``robust-eval compare --reference NAME``.

Three sources ship as package data in ``robust_eval/reference_data`` (rebuilt by
``tools/refresh_references.py``; see docs/ood_and_references.md):

- ``robustbench:<leaderboard>/<model>``: RobustBench's corruption leaderboards (CIFAR-10, CIFAR-100,
  ImageNet, ImageNet-3DCC). The per-cell accuracies are RobustBench's ``unaggregated_results*.csv``
  files byte for byte; each model's ``model_info/<dataset>/corruptions/<model>.json`` (clean accuracy,
  the published aggregates, paper, architecture) is kept whole in ``robustbench.json``.
- ``timm:<model>@<img_size>``: timm's ``results/results-imagenet*.csv`` rows for the AugMix-trained
  (``resnet50.am_in1k``, ``resnet50.ram_in1k``) and standard (``resnet50.tv_in1k``, ``resnet50.a1_in1k``)
  ResNet-50s: ImageNet, ReaL labels, ImageNet-V2 matched-frequency, ImageNet-Sketch, ImageNet-A, -R.
- ``paper:<paper>/<row>``: numbers printed in the IPMix and AugMix papers' tables (``papers.json``).

:func:`reference_result` turns a name into a result-like document: the ``suites`` blocks the numbers
fill, in the shape ``robust-eval all`` writes (fractions in [0, 1]; normalized mCE in percent,
baseline = 100), a ``protocol`` block recording what differs from robust-eval's own protocol (so the
comparison's protocol guard names it), and a ``reference`` block with the provenance (repository,
commit, file and git blob; or paper and table). Everything is computed from the shipped cells:
RobustBench's corruption accuracy is the plain mean of the cells, its mCE the AlexNet-normalized
mean of :mod:`robust_eval.metrics` with RobustBench's own AlexNet row as the baseline.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from robust_mix.errors import RobustMixError

__all__ = [
    "REFERENCE_SOURCES",
    "Leaderboard",
    "UnknownReference",
    "parse_leaderboard_csv",
    "print_reference_list",
    "reference_names",
    "reference_result",
    "reference_table",
    "robustbench_leaderboards",
]

#: The prefixes of a reference name.
REFERENCE_SOURCES: tuple[str, ...] = ("robustbench", "timm", "paper")
#: Severities of every RobustBench leaderboard, in file order.
_SEVERITIES = (1, 2, 3, 4, 5)
#: Images per cell and what they are, by RobustBench leaderboard.
_RB_PROTOCOL: dict[str, dict[str, Any]] = {
    "cifar10": {"n": 10000, "data": "the released CIFAR-10-C arrays, all 10,000 test images per cell"},
    "cifar100": {"n": 10000, "data": "the released CIFAR-100-C arrays, all 10,000 test images per cell"},
    "imagenet": {
        "n": 5000,
        "subset": "RobustBench's fixed 5,000 ImageNet validation images (imagenet_test_image_ids.txt)",
        "data": "RobustBench's fixed 5,000-image subset of ImageNet-C "
        "(robustbench/helper_files/imagenet_test_image_ids.txt), resized to 256 and center-cropped to 224",
    },
    "imagenet_3dcc": {
        "n": 5000,
        "subset": "RobustBench's fixed 5,000 ImageNet validation images (imagenet_test_image_ids.txt)",
        "data": "RobustBench's fixed 5,000-image subset of ImageNet-3DCC, resized to 256 and "
        "center-cropped to 224",
    },
}
#: timm result set -> (key in the imagenet_ar block or "clean", images, classes the logits are masked to).
_TIMM_SETS: dict[str, tuple[str, int | None, int | None]] = {
    "imagenet": ("clean", 50000, None),
    "imagenet-real": ("imagenet-real", None, None),
    "imagenet-v2-matched-frequency": ("imagenet-v2-matched-frequency", 10000, None),
    "imagenet-sketch": ("imagenet-sketch", None, None),
    "imagenet-a": ("imagenet-a", 7500, 200),
    "imagenet-r": ("imagenet-r", 30000, 200),
}


class UnknownReference(ValueError, RobustMixError):
    """A ``--reference`` name that is not shipped (the message lists how to see the names)."""


@functools.cache
def _text(name: str) -> str:
    return resources.files("robust_eval.reference_data").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def _json(name: str) -> dict[str, Any]:
    return json.loads(_text(name))


# ------------------------------------------------------------------------------------------------
# RobustBench
# ------------------------------------------------------------------------------------------------


def parse_leaderboard_csv(text: str) -> dict[str, dict[str, dict[int, float]]]:
    """Cells of a RobustBench ``unaggregated_results*.csv``: ``{row: {corruption: {severity: acc}}}``.

    The file has two header rows (corruption names, then severities 1-5 under each) and one row per
    model of accuracies in [0, 1].

    Raises:
        ValueError: the headers are not (corruption, severity 1-5) pairs, a row has the wrong number
            of cells, or a value is not a number in [0, 1].
    """
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2 or len(rows[0]) != len(rows[1]):
        raise ValueError("a RobustBench results CSV starts with a corruption row and a severity row")
    columns = list(zip(rows[0][1:], (int(s) for s in rows[1][1:])))
    corruptions = list(dict.fromkeys(c for c, _ in columns))
    if sorted(columns) != sorted((c, s) for c in corruptions for s in _SEVERITIES):
        raise ValueError("every corruption of a RobustBench results CSV needs severities 1-5 once each")
    out: dict[str, dict[str, dict[int, float]]] = {}
    for row in rows[2:]:
        if len(row) != len(columns) + 1:
            raise ValueError(f"row {row[0]!r} has {len(row) - 1} cells, expected {len(columns)}")
        cells: dict[str, dict[int, float]] = {c: {} for c in corruptions}
        for (c, s), value in zip(columns, row[1:]):
            acc = float(value)
            if not 0.0 <= acc <= 1.0:
                raise ValueError(f"row {row[0]!r}, {c} severity {s}: accuracy {value} outside [0, 1]")
            cells[c][s] = acc
        out[row[0]] = cells
    return out


@dataclass(frozen=True)
class Leaderboard:
    """One RobustBench corruption leaderboard: its cells and each model's published metadata.

    ``accuracy[model][corruption][severity]`` are fractions; ``published[model]`` is the model's
    ``model_info`` JSON as RobustBench commits it (percent strings: ``clean_acc``,
    ``corruptions_acc``, ``corruptions_mce``, or the ``_3d`` variants for ImageNet-3DCC)."""

    key: str
    dataset: str
    corruptions: tuple[str, ...]
    accuracy: dict[str, dict[str, dict[int, float]]]
    published: dict[str, dict[str, Any]]
    provenance: dict[str, Any]

    @property
    def suffix(self) -> str:
        """Suffix of the published aggregate keys (``_3d`` for ImageNet-3DCC)."""
        return "_3d" if self.key == "imagenet_3dcc" else ""

    def errors(self, model: str) -> dict[str, dict[str, float]]:
        """Top-1 error per cell (fractions), keyed as in a result file: ``{corruption: {"1": e}}``."""
        return {c: {str(s): 1.0 - a for s, a in per.items()} for c, per in self.accuracy[model].items()}

    def aggregates(self, model: str) -> dict[str, float | None]:
        """RobustBench's aggregates recomputed from the cells: ``corruption_accuracy`` (percent, plain
        mean of the cells) and ``mce`` (percent, CE normalized by this leaderboard's AlexNet row; None
        where the leaderboard has no AlexNet row: CIFAR)."""
        from robust_eval import metrics

        errors = self.errors(model)
        out: dict[str, float | None] = {
            "corruption_accuracy": 100.0 * (1.0 - metrics.mean_corruption_error(errors, self.corruptions)),
            "mce": None,
        }
        if "AlexNet" in self.accuracy:
            out["mce"] = metrics.mce_normalized(errors, self.errors("AlexNet"), self.corruptions)
        return out


@functools.cache
def robustbench_leaderboards() -> dict[str, Leaderboard]:
    """The shipped RobustBench leaderboards by key: cifar10, cifar100, imagenet, imagenet_3dcc."""
    doc = _json("robustbench.json")
    out = {}
    for key, board in doc["leaderboards"].items():
        cells = parse_leaderboard_csv(_text(board["shipped"]))
        models = board["models"]
        by_row = {m["csv_row"]: name for name, m in models.items()}
        out[key] = Leaderboard(
            key=key,
            dataset=board["dataset"],
            corruptions=tuple(board["corruptions"]),
            accuracy={by_row[row]: per for row, per in cells.items()},
            published={name: m["metadata"] for name, m in models.items()},
            provenance={
                "source": "robustbench",
                "repository": doc["repository"],
                "commit": doc["commit"],
                "commit_date": doc["commit_date"],
                "license": doc["license"],
                "files": [
                    {"file": board["file"], "blob": board["blob"], "shipped": board["shipped"]},
                ],
                "model_files": {name: {"file": m["file"], "blob": m["blob"]} for name, m in models.items()},
            },
        )
    return out


def _pct(value: Any) -> float | None:
    """A RobustBench percent string ("77.34") as a fraction; None for "", "null" or None."""
    try:
        return float(value) / 100.0
    except (TypeError, ValueError):
        return None


def _ordered(names: tuple[str, ...]) -> list[str]:
    """``names`` in robust-eval's order when they are the 15 benchmark corruptions, else as given."""
    from robust_eval.constants import BENCHMARK_CORRUPTIONS

    return list(BENCHMARK_CORRUPTIONS) if sorted(names) == sorted(BENCHMARK_CORRUPTIONS) else list(names)


def _c_set(board: Leaderboard, model: str) -> dict[str, Any]:
    n = _RB_PROTOCOL[board.key]["n"]
    names = _ordered(board.corruptions)
    errors = board.errors(model)
    return {
        "generated_on_the_fly": False,
        "regenerated": False,
        "source": f"RobustBench {board.provenance['files'][0]['file']}",
        "corruptions": names,
        "errors": {c: errors[c] for c in names},
        "top5_errors": {},
        "n_per_cell": dict.fromkeys(names, n),
        "missing": [],
        "calibration": None,
    }


def _normalized(board: Leaderboard, model: str) -> dict[str, Any] | None:
    from robust_eval import metrics

    if "AlexNet" not in board.accuracy:
        return None
    base = board.errors("AlexNet")
    errors = board.errors(model)
    return {
        "baseline": "AlexNet (RobustBench)",
        "baseline_source": f"RobustBench's AlexNet row of {board.provenance['files'][0]['file']} "
        f"({_RB_PROTOCOL[board.key]['n']} images per cell), not the published ImageNet-C AlexNet errors",
        "ce": metrics.corruption_error_normalized(errors, base, board.corruptions),
        "mce": metrics.mce_normalized(errors, base, board.corruptions),
        "relative_mce": None,
    }


def _robustbench_result(board_key: str, model: str) -> dict[str, Any]:
    from robust_eval import metrics

    boards = robustbench_leaderboards()
    board = boards[board_key]
    meta = board.published[model]
    proto = _RB_PROTOCOL[board_key]
    clean_acc = _pct(meta.get("clean_acc"))
    errors = board.errors(model)
    summary = {
        "benchmark_corruptions": _ordered(board.corruptions),
        "missing_benchmark_corruptions": [],
        "per_corruption_mean_error": {c: sum(errors[c].values()) / 5 for c in _ordered(board.corruptions)},
        "mce_unnormalized": metrics.mean_corruption_error(errors, board.corruptions),
        "extras_mean_error": None,
        "normalized": _normalized(board, model),
    }
    corruptions: dict[str, Any] = {"c": _c_set(board, model), "c_bar": None}
    if clean_acc is not None:
        corruptions["clean_error"] = 1.0 - clean_acc
    corruptions["summary"] = summary
    provenance = dict(board.provenance)
    files = list(provenance["files"])
    three_d = boards.get("imagenet_3dcc")
    if board_key == "imagenet" and three_d is not None and model in three_d.accuracy:
        block = _c_set(three_d, model)
        block["mean_error"] = metrics.mean_corruption_error(block["errors"], three_d.corruptions)
        block["normalized"] = _normalized(three_d, model)
        corruptions["c_3dcc"] = block
        files += three_d.provenance["files"]
    provenance.update(
        name=f"robustbench:{board_key}/{model}",
        files=files,
        model_files={model: board.provenance["model_files"][model]},
        paper={k: meta.get(k) for k in ("name", "authors", "link", "venue")},
        published={k: v for k, v in meta.items() if k.startswith(("clean_acc", "corruptions_", "reported"))},
        notes=[
            f"-C cells: {proto['data']}",
            "clean accuracy: RobustBench's clean_acc (two decimals) on "
            + ("the same 5,000 images" if proto["n"] == 5000 else "the 10,000 test images"),
        ],
    )
    suites: dict[str, Any] = {"corruptions": corruptions}
    if clean_acc is not None:
        suites = {
            "clean": {"n": proto["n"], "top1_error": 1.0 - clean_acc, "source": "RobustBench"},
            **suites,
        }
    return _document(
        dataset=board.dataset,
        model=f"{meta.get('architecture')} (RobustBench {model})",
        protocol={
            "subset": proto.get("subset"),
            "preprocessing": {"imagenet_c_protocol": "resize_crop"} if board.dataset == "imagenet" else {},
        },
        suites=suites,
        reference=provenance,
    )


def _robustbench_names() -> list[str]:
    return [
        f"robustbench:{key}/{model}"
        for key, board in robustbench_leaderboards().items()
        if key != "imagenet_3dcc"  # folded into the ImageNet rows (block c_3dcc)
        for model in board.published
    ]


# ------------------------------------------------------------------------------------------------
# timm
# ------------------------------------------------------------------------------------------------


def _timm_rows() -> dict[str, dict[str, dict[str, str]]]:
    """``{model@img_size: {result set: csv row}}`` of the shipped timm results."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for set_name, block in _json("timm.json")["sets"].items():
        for row in block["rows"]:
            out.setdefault(f"{row['model']}@{row['img_size']}", {})[set_name] = row
    return out


def _timm_result(key: str) -> dict[str, Any]:
    doc = _json("timm.json")
    rows = _timm_rows()[key]
    clean = rows.get("imagenet")
    suites: dict[str, Any] = {}
    sets: dict[str, Any] = {}
    for set_name, (slot, n, classes) in _TIMM_SETS.items():
        row = rows.get(set_name)
        if row is None:
            continue
        block: dict[str, Any] = {"n": n, "top1_error": float(row["top1_err"]) / 100}
        block["top5_error"] = float(row["top5_err"]) / 100
        if slot == "clean":
            suites["clean"] = {**block, "source": "timm results-imagenet.csv"}
            continue
        if classes is not None:
            block["masked_to_classes"] = classes
            same = rows.get(f"{set_name}-clean")
            if same is not None:
                block["clean_top1_error_same_classes"] = float(same["top1_err"]) / 100
        sets[slot] = block
    if sets:
        suites["imagenet_ar"] = sets
    ref_row = clean or next(iter(rows.values()))
    return _document(
        dataset="imagenet",
        model=f"{ref_row['model']} (timm, {ref_row['param_count']}M parameters)",
        protocol={
            "preprocessing": {
                "data_config": {
                    "input_size": [3, int(ref_row["img_size"]), int(ref_row["img_size"])],
                    "crop_pct": float(ref_row["crop_pct"]),
                    "interpolation": ref_row["interpolation"],
                },
            },
        },
        suites=suites,
        reference={
            "source": "timm",
            "name": f"timm:{key}",
            "repository": doc["repository"],
            "commit": doc["commit"],
            "commit_date": doc["commit_date"],
            "license": doc["license"],
            "files": [{"file": doc["sets"][s]["file"], "blob": doc["sets"][s]["blob"]} for s in rows],
            "notes": [
                "timm validate.py at the listed img_size / crop_pct / interpolation; top-1 and top-5 "
                "in percent with three decimals",
                "ImageNet-A / -R: logits restricted to the set's 200 classes (--valid-labels)",
            ],
        },
    )


# ------------------------------------------------------------------------------------------------
# papers
# ------------------------------------------------------------------------------------------------

#: papers.json value key -> (suite, field) it fills.
_PAPER_FIELDS = {
    "clean_error": ("clean", "top1_error"),
    "mce": ("corruptions", "mce_unnormalized"),
    "rms_calibration": ("calibration", "rms_calibration_error"),
}


def _paper_result(key: str) -> dict[str, Any]:
    row = _json("papers.json")["rows"][key]
    suites: dict[str, Any] = {}
    for name, value in row["values"].items():
        suite, field = _PAPER_FIELDS[name]
        if suite == "corruptions":
            suites["corruptions"] = {"summary": {field: value / 100}}
        else:
            suites[suite] = {field: value / 100}
    return _document(
        dataset=row["dataset"],
        model=row["model"],
        protocol={},
        suites=suites,
        reference={
            "source": "paper",
            "name": f"paper:{key}",
            "paper": row["paper"],
            "read_from": row["read_from"],
            "notes": ["numbers as printed (percent, one decimal); no per-cell values", *row["caveats"]],
        },
    )


# ------------------------------------------------------------------------------------------------
# names
# ------------------------------------------------------------------------------------------------


def _document(
    dataset: str,
    model: str,
    protocol: Mapping[str, Any],
    suites: Mapping[str, Any],
    reference: Mapping[str, Any],
) -> dict[str, Any]:
    """A result-like document (see the module docstring); ``protocol`` keys left out stay unrecorded."""
    return {
        "schema_version": 1,
        "tool": "robust-eval",
        "command": "reference",
        "checkpoint": {"path": None, "sha256": None, "model": model, "dataset": dataset, "ema": None},
        "protocol": dict(protocol),
        "suites": dict(suites),
        "skipped": {},
        "reference": dict(reference),
    }


@functools.cache
def _names() -> dict[str, tuple[str, str]]:
    """name -> (source, key within the source)."""
    out = {n: ("robustbench", n.split(":", 1)[1]) for n in _robustbench_names()}
    out.update({f"timm:{k}": ("timm", k) for k in sorted(_timm_rows())})
    out.update({f"paper:{k}": ("paper", k) for k in _json("papers.json")["rows"]})
    return out


def reference_names() -> list[str]:
    """Every shipped reference name, ``<source>:<key>``, sources in :data:`REFERENCE_SOURCES` order."""
    return list(_names())


def _resolve(name: str) -> tuple[str, str]:
    names = _names()
    if name in names:
        return names[name]
    # timm: "timm:resnet50.am_in1k" names the only size it was measured at
    sized = [n for n in names if n.startswith(f"{name}@")]
    if len(sized) == 1:
        return names[sized[0]]
    hint = f"; sizes: {', '.join(sized)}" if sized else ""
    raise UnknownReference(
        f"unknown reference {name!r}{hint}; `robust-eval compare --reference list` prints the "
        f"{len(names)} shipped names ({', '.join(REFERENCE_SOURCES)})"
    )


def reference_result(name: str) -> dict[str, Any]:
    """The result-like document of reference ``name`` (see the module docstring).

    Raises:
        UnknownReference: ``name`` is not shipped (the message says how to list the names).
    """
    source, key = _resolve(name)
    if source == "robustbench":
        board, model = key.split("/", 1)
        return _robustbench_result(board, model)
    if source == "timm":
        return _timm_result(key)
    return _paper_result(key)


def reference_table() -> list[tuple[str, str, str]]:
    """(name, data set, what it holds) for every shipped reference, for ``--reference list``."""
    out = []
    boards = robustbench_leaderboards()
    for name, (source, key) in _names().items():
        if source == "robustbench":
            board, model = key.split("/", 1)
            meta = boards[board].published[model]
            has_3d = board == "imagenet" and model in boards["imagenet_3dcc"].accuracy
            what = f"{meta.get('architecture')}; -C cells{' + 3DCC cells' if has_3d else ''}, clean"
            out.append((name, boards[board].dataset, what))
        elif source == "timm":
            sets = ", ".join(_timm_rows()[key])
            out.append((name, "imagenet", f"top-1/top-5 on {sets}"))
        else:
            row = _json("papers.json")["rows"][key]
            out.append((name, row["dataset"], f"{row['model']}: {', '.join(row['values'])}"))
    return out


def print_reference_list(console: Any) -> None:
    """Print :func:`reference_table` as a rich table on ``console`` (``--reference list``), with the
    repository and commit (or paper) of each source."""
    from rich.table import Table

    table = Table(title="robust-eval compare --reference NAME: published numbers shipped with robust-eval")
    for column in ("name", "data set", "what"):
        table.add_column(column)
    for row in reference_table():
        table.add_row(*row)
    console.print(table)
    rb, tm = _json("robustbench.json"), _json("timm.json")
    console.print(f"robustbench: {rb['repository']} @ {rb['commit']} ({rb['commit_date']})", highlight=False)
    console.print(f"timm: {tm['repository']} @ {tm['commit']} ({tm['commit_date']})", highlight=False)
    console.print("paper: each row names its paper and table (papers.json)", highlight=False)
