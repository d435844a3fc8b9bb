"""Rebuild ``robust_eval/reference_data`` from local clones of RobustBench and timm.

Usage (clones or bare mirrors; nothing is downloaded)::

    python tools/refresh_references.py --robustbench PATH/robustbench --timm PATH/pytorch-image-models

RobustBench: the four ``unaggregated_results*.csv`` files of the corruption leaderboards are copied
byte for byte (their sha256 is recorded) and every ``model_info/<dataset>/corruptions/*.json`` is
kept whole in ``robustbench.json``, keyed by model, with the CSV row it belongs to. timm: the rows of
:data:`TIMM_MODELS` from every ``results/results-*.csv`` of :data:`TIMM_FILES`. Both record the
repository, the commit and each file's git blob id. ``papers.json`` is written by hand.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "robust_eval" / "reference_data"

#: leaderboard key -> (dataset folder, CSV file name in model_info/<dataset>/corruptions/)
LEADERBOARDS = {
    "cifar10": ("cifar10", "unaggregated_results.csv"),
    "cifar100": ("cifar100", "unaggregated_results.csv"),
    "imagenet": ("imagenet", "unaggregated_results.csv"),
    "imagenet_3dcc": ("imagenet", "unaggregated_results_3d.csv"),
}
#: CSV row names that differ from the model's JSON file name.
CSV_ALIASES = {
    ("cifar10", "Hendrycks2020AugMixWRN"): "Hendrycks2020AugMix_WRN",
    ("cifar10", "Hendrycks2020AugMixResNeXt"): "Hendrycks2020AugMix_ResNeXt",
}
#: timm result set -> file under results/
TIMM_FILES = {
    "imagenet": "results/results-imagenet.csv",
    "imagenet-real": "results/results-imagenet-real.csv",
    "imagenet-v2-matched-frequency": "results/results-imagenetv2-matched-frequency.csv",
    "imagenet-sketch": "results/results-sketch.csv",
    "imagenet-a": "results/results-imagenet-a.csv",
    "imagenet-a-clean": "results/results-imagenet-a-clean.csv",
    "imagenet-r": "results/results-imagenet-r.csv",
    "imagenet-r-clean": "results/results-imagenet-r-clean.csv",
}
#: AugMix-trained and standard ResNet-50s in timm's results.
TIMM_MODELS = ("resnet50.am_in1k", "resnet50.ram_in1k", "resnet50.tv_in1k", "resnet50.a1_in1k")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def show(repo: Path, commit: str, path: str) -> str:
    return git(repo, "show", f"{commit}:{path}")


def blob(repo: Path, commit: str, path: str) -> str:
    return git(repo, "rev-parse", f"{commit}:{path}").strip()


def commit_of(repo: Path) -> tuple[str, str]:
    sha, date = git(repo, "log", "-1", "--format=%H %cI").split()
    return sha, date


def robustbench(repo: Path) -> dict:
    commit, date = commit_of(repo)
    files = git(repo, "ls-tree", "-r", "--name-only", commit, "model_info").split()
    boards = {}
    for key, (dataset, name) in LEADERBOARDS.items():
        path = f"model_info/{dataset}/corruptions/{name}"
        text = show(repo, commit, path)
        shipped = f"robustbench_{key}.csv"
        (OUT / shipped).write_text(text, newline="")
        rows = list(csv.reader(io.StringIO(text)))
        corruptions = list(dict.fromkeys(rows[0][1:]))
        models = {}
        for row in rows[2:]:
            model = CSV_ALIASES.get((dataset, row[0]), row[0])
            meta_path = f"model_info/{dataset}/corruptions/{model}.json"
            if meta_path not in files:
                raise SystemExit(f"{path}: row {row[0]!r} has no {meta_path}")
            models[model] = {
                "csv_row": row[0],
                "file": meta_path,
                "blob": blob(repo, commit, meta_path),
                "metadata": json.loads(show(repo, commit, meta_path)),
            }
        boards[key] = {
            "dataset": dataset,
            "file": path,
            "blob": blob(repo, commit, path),
            "shipped": shipped,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "corruptions": corruptions,
            "models": models,
        }
    return {
        "repository": "RobustBench/robustbench",
        "commit": commit,
        "commit_date": date,
        "license": "MIT",
        "leaderboards": boards,
    }


def timm(repo: Path) -> dict:
    commit, date = commit_of(repo)
    sets = {}
    for key, path in TIMM_FILES.items():
        rows = list(csv.DictReader(io.StringIO(show(repo, commit, path))))
        kept = [r for r in rows if r["model"] in TIMM_MODELS]
        sets[key] = {"file": path, "blob": blob(repo, commit, path), "rows": kept}
    return {
        "repository": "huggingface/pytorch-image-models",
        "commit": commit,
        "commit_date": date,
        "license": "Apache-2.0",
        "models": list(TIMM_MODELS),
        "sets": sets,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--robustbench", type=Path, required=True, help="clone of RobustBench/robustbench")
    parser.add_argument("--timm", type=Path, required=True, help="clone of huggingface/pytorch-image-models")
    args = parser.parse_args()
    for name, doc in (("robustbench.json", robustbench(args.robustbench)), ("timm.json", timm(args.timm))):
        (OUT / name).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
