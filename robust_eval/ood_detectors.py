"""The OOD suite's extra detectors (``--ood-scores``): penultimate features, the training-split fit,
every detector of :mod:`robust_eval.ood_scores` on every OOD set, and OpenOOD v1.5's near-/far-OOD
grouping and table.

Data flow: the OOD suite hands over its in-distribution and OOD sources; this module streams them
through the model once for logits and penultimate features (cached per set, like cells), fits the
feature-based detectors on the training split's features (cached, keyed by the content of the
training data), scores, and returns one JSON block (:func:`detector_block`). ``openood_csv`` renders a
detector's table in OpenOOD's columns.

Features: timm's ``forward_features`` then ``forward_head(pre_logits=True)`` of the model inside the
[0, 1] input contract (:class:`robust_eval.checkpoints.formats.InputContract`); logits from ``forward_head``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robust_eval import ood_scores as S

__all__ = [
    "OPENOOD_V15_GROUPS",
    "content_key",
    "detector_block",
    "group_of",
    "openood_csv",
    "penultimate",
]

#: OpenOOD v1.5's near- / far-OOD sets (``openood/evaluation_api/datasets.py``, names as published).
OPENOOD_V15_GROUPS: dict[str, dict[str, tuple[str, ...]]] = {
    "cifar10": {"near": ("cifar100", "tin"), "far": ("mnist", "svhn", "texture", "places365")},
    "cifar100": {"near": ("cifar10", "tin"), "far": ("mnist", "svhn", "texture", "places365")},
    "imagenet": {"near": ("ssb_hard", "ninco"), "far": ("inaturalist", "textures", "openimage_o")},
}
#: robust-eval's set names that hold an OpenOOD set (the CIFAR protocol's "textures" is OpenOOD's
#: CIFAR "texture", both the DTD images).
_ALIASES = {"texture": ("textures", "dtd")}
#: Examples per forward pass of the training split.
_FIT_BATCH = 256


def group_of(dataset: str, set_name: str) -> tuple[str, str] | None:
    """(group, OpenOOD name) of one of our OOD sets for a ``dataset`` model, or None when OpenOOD v1.5
    does not list it (synthetic noise, LSUN, a user's own set)."""
    for group, names in OPENOOD_V15_GROUPS.get(dataset, {}).items():
        for published in names:
            if set_name == published or set_name in _ALIASES.get(published, ()):
                return group, published
    return None


def penultimate(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, penultimate features) of a batch of [0, 1] images through an input-contract wrapper
    (``model.model`` a timm model: ``forward_features`` + ``forward_head(pre_logits=True)``)."""
    net = getattr(model, "model", None)
    if net is None or not hasattr(net, "forward_head") or not hasattr(net, "forward_features"):
        raise ValueError(
            f"feature-based OOD scores need a timm model with forward_features / forward_head, got "
            f"{type(net if net is not None else model).__name__}; use msp, maxlogit, energy or odin"
        )
    z = (model.resize(x) - model.mean) / model.std
    pooled = net.forward_features(z)
    return net.forward_head(pooled), net.forward_head(pooled, pre_logits=True).flatten(1)


def _head(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """Weight (K, D) and bias (K,) of the final linear layer (ViM)."""
    fc = model.model.get_classifier()
    if not isinstance(fc, torch.nn.Linear):
        raise ValueError(f"ViM needs a linear classifier, this model's head is {type(fc).__name__}")
    bias = fc.bias if fc.bias is not None else torch.zeros(fc.out_features)
    return fc.weight.detach().double().cpu().numpy(), bias.detach().double().cpu().numpy()


def _pass(ctx: Any, source: Any, odin: bool) -> dict[str, np.ndarray]:
    """Logits and features of every example of ``source`` (and ODIN confidences when asked)."""
    from robust_eval.suites import _to_tensor

    logits, feats, odin_conf = [], [], []
    with ctx.track(f"features ({len(source)})", len(source)) as bar:
        for start in range(0, len(source), ctx.batch_size):
            x = _to_tensor(source.batch(start, min(start + ctx.batch_size, len(source))), ctx.device)
            with torch.inference_mode():
                lg, ft = penultimate(ctx.model, x)
            logits.append(lg.double().cpu().numpy())
            feats.append(ft.double().cpu().numpy())
            if odin:
                odin_conf.append(S.odin(ctx.model, x))
            bar.advance(len(x))
    out = {"logits": np.concatenate(logits), "features": np.concatenate(feats)}
    if odin:
        out["odin"] = np.concatenate(odin_conf)
    return out


def content_key(source: Any) -> str:
    """sha256 (16 hex) of an in-memory source's pixels and labels; of the file list plus each file's
    size and modification time for image files (reading a million JPEGs to key a cache is not cheap)."""
    h = hashlib.sha256()
    paths = getattr(source, "paths", None)
    if paths is not None:
        from robust_eval.cache import fingerprint

        h.update(fingerprint(paths).encode())
    else:
        h.update(np.ascontiguousarray(source.batch(0, len(source))).tobytes())
    if source.labels is not None:
        h.update(np.asarray(source.labels, np.int64).tobytes())
    return h.hexdigest()[:16]


def training_source(ctx: Any) -> tuple[Any, str]:
    """The training split of the checkpoint's data set (CIFAR python batches, else ``<root>/train``)."""
    from robust_eval import data as rdata
    from robust_eval.suites import SuiteSkipped

    root = rdata.clean_root(ctx.data_dir, ctx.dataset)
    if root is None:
        raise SuiteSkipped(
            f"feature-based OOD scores need the training split: {rdata.clean_layout(ctx.dataset).hint(ctx.data_dir)}"
        )
    if ctx.dataset in rdata.CIFAR_FOLDERS:
        try:
            images, labels, _ = rdata.load_cifar(root, ctx.dataset, train=True)
        except rdata.DataLayoutError as exc:
            raise SuiteSkipped(f"feature-based OOD scores need the training split: {exc}") from None
        return rdata.ArraySource(images, labels), f"{root} (train split)"
    train = Path(root) / rdata.TRAIN_SPLIT
    if not train.is_dir():
        raise SuiteSkipped(
            f"feature-based OOD scores need the training split: put <class>/<image> at '{train}'"
        )
    paths, labels, _ = rdata.list_imagefolder(train)
    return rdata.FileSource(paths, labels, ctx.size, ctx.crop_pct, ctx.interpolation, ctx.workers), str(train)


def _fit(ctx: Any, names: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fitted states of the feature-based detectors in ``names`` and the fit's provenance."""
    needed = [n for n in names if S.OOD_SCORES[n].needs == "features"]
    if not needed:
        return {}, {}
    source, where = training_source(ctx)
    key = content_key(source)
    arrays = _cached_pass(ctx, source, f"train-{key}", {"train_content": key}, odin=False)
    feats, labels = arrays["features"], np.asarray(source.labels)
    states: dict[str, Any] = {}
    info = {"training_split": where, "n": len(feats), "feature_dim": int(feats.shape[1]), "content_key": key}
    if "mahalanobis" in needed:
        states["mahalanobis"] = S.fit_mahalanobis(feats, labels, int(ctx.metadata["num_classes"]))
    if "knn" in needed:
        states["knn"] = S.fit_knn(feats, k=min(S.KNN_K, len(feats)))
        info["knn_k"] = states["knn"].k
    if "vim" in needed:
        w, b = _head(ctx.model)
        states["vim"] = S.fit_vim(feats, w, b)
        info["vim_dim"], info["vim_alpha"] = states["vim"].dim, states["vim"].alpha
    return states, info


def _cached_pass(
    ctx: Any, source: Any, cell: str, key: Mapping[str, Any], odin: bool
) -> dict[str, np.ndarray]:
    opts = ctx.options(features="forward_features+forward_head(pre_logits=True)", odin=odin, **key)
    _, arrays = ctx.cache.cell(
        "ood_features", cell, opts, lambda: ({"n": len(source)}, _pass(ctx, source, odin))
    )
    return arrays


def _confidences(name: str, arrays: Mapping[str, np.ndarray], states: Mapping[str, Any]) -> np.ndarray:
    logits, feats = arrays["logits"], arrays["features"]
    if name == "msp":
        return S.msp(logits)
    if name == "maxlogit":
        return S.max_logit(logits)
    if name == "energy":
        return S.energy(logits)
    if name == "odin":
        return arrays["odin"]
    if name == "mahalanobis":
        return S.mahalanobis(states[name], feats)
    if name == "knn":
        return S.knn(states[name], feats)
    return S.vim(states[name], feats, logits)


def _mean(rows: Sequence[Mapping[str, float]]) -> dict[str, float] | None:
    if not rows:
        return None
    return {k: float(np.mean([r[k] for r in rows])) for k in ("fpr95", "auroc", "aupr_in", "aupr_out")}


def detector_block(
    ctx: Any, names: Sequence[str], in_source: Any, ood_sources: Mapping[str, Any]
) -> dict[str, Any]:
    """Every detector in ``names`` on every OOD set: OpenOOD's metrics (fractions) per set, their mean
    over all sets, and the near- / far-OOD means of OpenOOD v1.5 over the grouped sets present.

    ``in_source``: the clean test set (labelled); ``ood_sources``: set name -> source. Each pass is
    cached under the content key of its source (:func:`content_key`).
    """
    from robust_eval.suites import SuiteSkipped

    odin = "odin" in names
    try:
        states, fit = _fit(ctx, names)
    except SuiteSkipped as exc:  # no training split: the logit / gradient scores still run
        states, fit = {}, {"skipped": str(exc)}
        names = [n for n in names if S.OOD_SCORES[n].needs != "features"]
    ind = _cached_pass(ctx, in_source, "in-distribution", {"inputs": content_key(in_source)}, odin)
    accuracy = float((ind["logits"].argmax(1) == np.asarray(in_source.labels)).mean())
    outs = {
        n: _cached_pass(ctx, src, f"ood-{n}", {"inputs": content_key(src)}, odin)
        for n, src in ood_sources.items()
    }
    groups = {n: group_of(ctx.dataset, n) for n in outs}
    per_score: dict[str, Any] = {}
    for name in names:
        conf_in = _confidences(name, ind, states)
        sets = {n: S.openood_metrics(conf_in, _confidences(name, arr, states)) for n, arr in outs.items()}
        block: dict[str, Any] = {"sets": sets, "mean": _mean(list(sets.values()))}
        for group in ("near", "far"):
            block[group] = _mean([m for n, m in sets.items() if (groups[n] or ("",))[0] == group])
        per_score[name] = block
    published = OPENOOD_V15_GROUPS.get(ctx.dataset, {})
    return {
        "scores": list(names),
        "convention": "OpenOOD v1.5: confidence (larger = in-distribution), OOD positive; FPR@95 at TPR >= 0.95, trapezoidal AUROC / AUPR",
        "definitions": {n: S.OOD_SCORES[n].definition for n in names},
        "openood_postprocessor": {n: S.OOD_SCORES[n].openood for n in names},
        "accuracy": accuracy,
        "fit": fit,
        "groups": {
            g: {
                "published": list(published.get(g, ())),
                "present": [n for n in outs if (groups[n] or ("",))[0] == g],
            }
            for g in ("near", "far")
        },
        "openood_names": {n: v[1] for n, v in groups.items() if v is not None},
        "per_score": per_score,
    }


def openood_csv(block: Mapping[str, Any], score: str) -> str:
    """One detector's table as OpenOOD's evaluator prints it: rows = near sets, ``nearood``, far sets,
    ``farood`` (then robust-eval's ungrouped sets and their ``mean``); columns ``dataset`` +
    :data:`robust_eval.ood_scores.OPENOOD_COLUMNS` in %; a group with no set present is left out."""
    res = block["per_score"][score]
    acc = float(block["accuracy"])
    lines = ["dataset," + ",".join(S.OPENOOD_COLUMNS)]

    def row(label: str, values: Mapping[str, float]) -> None:
        lines.append(label + "," + ",".join(f"{v:.2f}" for v in S.openood_row(values, acc)))

    grouped: list[str] = []
    for group in ("near", "far"):
        present = block["groups"][group]["present"]
        for name in present:
            row(block["openood_names"].get(name, name), res["sets"][name])
        if present:
            row(f"{group}ood", res[group])
        grouped += present
    others = [n for n in res["sets"] if n not in grouped]
    for name in others:
        row(name, res["sets"][name])
    if res["mean"] is not None:
        row("mean", res["mean"])
    return "\n".join(lines) + "\n"
