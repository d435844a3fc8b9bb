"""Post-hoc OOD detectors (MSP, MaxLogit, Energy, ODIN, Mahalanobis, KNN, ViM) and OpenOOD's metrics.

Every score is returned in OpenOOD v1.5's convention, a *confidence*: larger means more
in-distribution (the anomaly score of ``robust_eval.metrics`` is its negative). Each function equals
OpenOOD's postprocessor of the same name with its default hyper-parameters (``configs/postprocessors/
*.yml`` at commit 3c35632) on the same logits / penultimate features; ``tests/test_ood_scores.py``
checks that against golden values computed once with OpenOOD's own code.

Detectors that need the training split (Mahalanobis, KNN, ViM) are split into a ``fit_*`` function
(training-split penultimate features -> a small frozen state) and a score function; both are pure
(no I/O, no randomness). ODIN needs input gradients and therefore the model (:func:`odin`).

``pytorch-ood`` 0.4.0 was evaluated on the same golden inputs and is not a dependency: its MSP,
MaxLogit, Energy and ViM equal OpenOOD's up to the sign (max difference 3e-5 for ViM); its KNN returns
the Euclidean distance (OpenOOD: the squared distance of faiss' ``IndexFlatL2``, of features
normalized as ``x / ||x|| + 1e-10``); its Mahalanobis differs by up to 53.6 (its own covariance
estimate plus a 1e-6 ridge). What it gets right is one to five lines here, checked against OpenOOD
directly, so a package (and its torchvision requirement) buys nothing.

Example:
    >>> import numpy as np
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    >>> [round(float(v), 4) for v in msp(logits)]
    [0.787, 0.3333]
    >>> [round(float(v), 4) for v in energy(logits)]
    [2.2395, 1.0986]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "DEFAULT_SCORES",
    "OOD_SCORES",
    "OPENOOD_COLUMNS",
    "KNNState",
    "MahalanobisState",
    "ScoreSpec",
    "ViMState",
    "energy",
    "fit_knn",
    "fit_mahalanobis",
    "fit_vim",
    "knn",
    "mahalanobis",
    "max_logit",
    "msp",
    "odin",
    "openood_metrics",
    "parse_scores",
    "vim",
    "vim_dim",
]

#: OpenOOD's defaults (configs/postprocessors/{ebo,odin,knn,vim}.yml).
ENERGY_TEMPERATURE = 1.0
ODIN_TEMPERATURE = 1000.0
ODIN_NOISE = 0.0014
KNN_K = 50
VIM_DIM = 256
#: OpenOOD's KNN feature normalizer adds this after dividing by the norm (``x / ||x|| + 1e-10``).
KNN_EPS = 1e-10
#: OpenOOD's evaluator table columns (values in %), in its order.
OPENOOD_COLUMNS = ("FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC")


def _logits(logits: Any) -> np.ndarray:
    arr = np.asarray(logits, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"logits must have shape (N, classes), got {arr.shape}")
    return arr


def _logsumexp(arr: np.ndarray) -> np.ndarray:
    top = arr.max(axis=1, keepdims=True)
    return (top + np.log(np.exp(arr - top).sum(axis=1, keepdims=True)))[:, 0]


def msp(logits: Any) -> np.ndarray:
    """Maximum softmax probability, in (0, 1] (OpenOOD ``msp``, the baseline of Hendrycks & Gimpel)."""
    arr = _logits(logits)
    return np.exp(arr.max(axis=1) - _logsumexp(arr))


def max_logit(logits: Any) -> np.ndarray:
    """Largest logit (OpenOOD ``mls``, Hendrycks et al. 2022), in logit units."""
    return _logits(logits).max(axis=1)


def energy(logits: Any, temperature: float = ENERGY_TEMPERATURE) -> np.ndarray:
    """Negative free energy ``T * logsumexp(logits / T)`` (OpenOOD ``ebo``, Liu et al. 2020; T = 1)."""
    if not temperature > 0:
        raise ValueError(f"energy temperature must be > 0, got {temperature}")
    return temperature * _logsumexp(_logits(logits) / temperature)


def odin(
    model: Callable[[Any], Any],
    x: Any,
    temperature: float = ODIN_TEMPERATURE,
    noise: float = ODIN_NOISE,
    input_std: Sequence[float] | None = None,
) -> np.ndarray:
    """ODIN (Liang et al. 2018; OpenOOD ``odin``: T = 1000, noise 0.0014): max softmax at temperature
    ``T`` of the input moved by ``noise`` against the gradient sign of the cross-entropy of ``f(x)/T``
    with its own prediction.

    ``x`` is a float tensor (N, C, H, W) in the model's input space; the step per channel is
    ``noise / input_std[c]`` (OpenOOD divides by the data set's normalization std because its models
    take normalized inputs). A model that normalizes inside (robust-eval's [0, 1] input contract)
    takes ``input_std=None`` (steps of ``noise`` in [0, 1] pixel units), which is the same
    perturbation of the image. Gradient signs follow OpenOOD: a zero gradient counts as +1. The
    perturbed input is not clipped. Needs autograd (not under ``torch.inference_mode``).
    """
    import torch

    if not temperature > 0:
        raise ValueError(f"ODIN temperature must be > 0, got {temperature}")
    with torch.inference_mode(False), torch.enable_grad():
        data = x.detach().clone().requires_grad_(True)
        out = model(data)
        labels = out.detach().argmax(dim=1)
        loss = torch.nn.functional.cross_entropy(out / temperature, labels)
        (grad,) = torch.autograd.grad(loss, data)
        step = torch.where(grad >= 0, 1.0, -1.0).to(data.dtype)
        if input_std is not None:
            std = torch.as_tensor(list(input_std), dtype=data.dtype, device=data.device)
            step = step / std.view(1, -1, *([1] * (data.dim() - 2)))
        with torch.no_grad():
            logits = model(data.detach() - noise * step) / temperature
    return msp(logits.double().cpu().numpy())


# ------------------------------------------------------------------------------------------------
# feature-based detectors: fit on the training split's penultimate features, then score
# ------------------------------------------------------------------------------------------------


def _features(features: Any, what: str = "features") -> np.ndarray:
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 1:
        raise ValueError(f"{what} must have shape (N, D) with N >= 1, got {arr.shape}")
    return arr


@dataclass(frozen=True)
class MahalanobisState:
    """Class means ``(K, D)`` and the shared precision matrix ``(D, D)`` of the training features."""

    class_means: np.ndarray
    precision: np.ndarray


def fit_mahalanobis(features: Any, labels: Any, num_classes: int) -> MahalanobisState:
    """Per-class means and the precision (pseudo-inverse, as scikit-learn's ``EmpiricalCovariance``)
    of the class-centred training features, pooled over classes (Lee et al. 2018; OpenOOD ``mds``).
    Every class needs at least one training example."""
    feats = _features(features, "training features")
    lab = np.asarray(labels).astype(np.int64)
    if lab.shape != (len(feats),):
        raise ValueError(f"labels must have shape ({len(feats)},), got {lab.shape}")
    counts = np.bincount(lab, minlength=num_classes)
    if len(counts) > num_classes or (counts == 0).any():
        raise ValueError(
            f"every class 0..{num_classes - 1} needs training features; counts {counts.tolist()}"
        )
    means = np.stack([feats[lab == c].mean(axis=0) for c in range(num_classes)])
    centred = feats - means[lab]
    centred = centred - centred.mean(axis=0)  # EmpiricalCovariance(assume_centered=False)
    cov = centred.T @ centred / len(centred)
    return MahalanobisState(class_means=means, precision=np.linalg.pinv(cov, hermitian=True))


def mahalanobis(state: MahalanobisState, features: Any) -> np.ndarray:
    """Negative squared Mahalanobis distance to the closest class mean (<= 0)."""
    feats = _features(features)
    best = np.full(len(feats), -np.inf)
    for mean in state.class_means:
        d = feats - mean
        best = np.maximum(best, -np.einsum("nd,de,ne->n", d, state.precision, d))
    return best


@dataclass(frozen=True)
class KNNState:
    """The normalized training features (float32, ``(N, D)``) and the neighbour rank ``k``."""

    bank: np.ndarray
    k: int


def _knn_normalize(feats: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(feats, axis=1, keepdims=True)
    return feats / np.where(norm > 0, norm, 1.0) + KNN_EPS


def fit_knn(features: Any, k: int = KNN_K) -> KNNState:
    """Store the training features normalized as OpenOOD does (``x / ||x|| + 1e-10``)."""
    feats = _features(features, "training features")
    if not 1 <= k <= len(feats):
        raise ValueError(f"KNN k must be in [1, {len(feats)}] (training features), got {k}")
    return KNNState(bank=_knn_normalize(feats).astype(np.float32), k=int(k))


def knn(state: KNNState, features: Any, chunk: int = 1024) -> np.ndarray:
    """Negative squared Euclidean distance to the k-th nearest normalized training feature (Sun et
    al. 2022; OpenOOD ``knn``, K = 50, exact search), in [-4, 0]. Computed in chunks of ``chunk``
    queries with torch (``|a|^2 + |b|^2 - 2 a.b`` in float64)."""
    import torch

    queries = torch.from_numpy(_knn_normalize(_features(features)))
    bank = torch.from_numpy(state.bank.astype(np.float64))
    bank_sq = (bank * bank).sum(1)
    out = np.empty(len(queries))
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        d2 = (q * q).sum(1, keepdim=True) + bank_sq[None, :] - 2.0 * q @ bank.T
        kth = torch.topk(d2, state.k, dim=1, largest=False).values[:, -1]
        out[start : start + len(q)] = -kth.clamp_min(0).numpy()
    return out


@dataclass(frozen=True)
class ViMState:
    """ViM's origin ``u`` (D,), residual basis ``(D, D - dim)`` and scale ``alpha``."""

    origin: np.ndarray
    residual: np.ndarray
    alpha: float
    dim: int


def vim_dim(feature_dim: int) -> int:
    """The principal-space dimension: OpenOOD's default 256 (for 512-d ResNet-18 features), or half
    the feature dimension when that is not larger than 256 (a residual space must remain)."""
    return VIM_DIM if feature_dim > VIM_DIM else max(1, feature_dim // 2)


def fit_vim(features: Any, weight: Any, bias: Any, dim: int | None = None) -> ViMState:
    """Fit ViM (Wang et al. 2022; OpenOOD ``vim``) on training features and the final linear layer
    (``weight`` (K, D), ``bias`` (K,)): origin ``u = -pinv(W) b``, residual space = eigenvectors of
    the uncentred covariance of ``features - u`` beyond the ``dim`` largest eigenvalues, ``alpha`` =
    mean max training logit / mean residual norm."""
    feats = _features(features, "training features")
    w = np.asarray(weight, dtype=np.float64)
    b = np.asarray(bias, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != feats.shape[1] or b.shape != (w.shape[0],):
        raise ValueError(f"ViM needs weight (K, {feats.shape[1]}) and bias (K,), got {w.shape} and {b.shape}")
    dim = vim_dim(feats.shape[1]) if dim is None else int(dim)
    if not 0 < dim < feats.shape[1]:
        raise ValueError(f"ViM dim must be in [1, {feats.shape[1] - 1}], got {dim}")
    origin = -np.linalg.pinv(w) @ b
    shifted = feats - origin
    _, vecs = np.linalg.eigh(shifted.T @ shifted / len(shifted))  # ascending eigenvalues
    residual = np.ascontiguousarray(vecs[:, : feats.shape[1] - dim])
    alpha = float((feats @ w.T + b).max(axis=1).mean() / np.linalg.norm(shifted @ residual, axis=1).mean())
    return ViMState(origin=origin, residual=residual, alpha=alpha, dim=dim)


def vim(state: ViMState, features: Any, logits: Any) -> np.ndarray:
    """``logsumexp(logits) - alpha * ||(features - u) @ residual||`` (energy minus the virtual logit)."""
    feats = _features(features)
    virtual = np.linalg.norm((feats - state.origin) @ state.residual, axis=1) * state.alpha
    return _logsumexp(_logits(logits)) - virtual


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSpec:
    """One detector: its OpenOOD postprocessor name and what it needs."""

    name: str
    openood: str
    needs: str  # "logits", "features" (penultimate + training fit) or "gradients" (the model)
    definition: str


#: Detector name (``--ood-scores``) -> spec, in OpenOOD's table order.
OOD_SCORES: dict[str, ScoreSpec] = {
    s.name: s
    for s in (
        ScoreSpec("msp", "msp", "logits", "max softmax probability"),
        ScoreSpec(
            "odin",
            "odin",
            "gradients",
            f"max softmax at T={ODIN_TEMPERATURE:g} after an input step {ODIN_NOISE}",
        ),
        ScoreSpec(
            "mahalanobis", "mds", "features", "-min_c squared Mahalanobis distance (shared covariance)"
        ),
        ScoreSpec("energy", "ebo", "logits", f"T*logsumexp(logits/T), T={ENERGY_TEMPERATURE:g}"),
        ScoreSpec("maxlogit", "mls", "logits", "max logit"),
        ScoreSpec("vim", "vim", "features", "energy - alpha * ||residual of (feature - u)||"),
        ScoreSpec(
            "knn", "knn", "features", f"-squared distance to the {KNN_K}th normalized training feature"
        ),
    )
}
#: The papers' score (PixMix / IPMix / Outlier Exposure).
DEFAULT_SCORES = ("msp",)


def parse_scores(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"msp,energy"`` -> ``("msp", "energy")`` (duplicates dropped, order kept); None -> the
    default. Raises ValueError naming an unknown detector and listing the known ones."""
    if text is None:
        return DEFAULT_SCORES
    items = text.split(",") if isinstance(text, str) else list(text)
    names = [n.strip().lower() for n in items if n.strip()]
    unknown = [n for n in names if n not in OOD_SCORES]
    if unknown or not names:
        raise ValueError(f"unknown OOD score {unknown or [text]}: choose from {', '.join(OOD_SCORES)}")
    return tuple(dict.fromkeys(names))


# ------------------------------------------------------------------------------------------------
# OpenOOD's metrics
# ------------------------------------------------------------------------------------------------


def openood_metrics(conf_id: Any, conf_ood: Any) -> dict[str, float]:
    """FPR@95, AUROC, AUPR-In and AUPR-Out (fractions) as OpenOOD's ``compute_all_metrics``: OOD is
    the positive class scored by ``-conf``; FPR@95 is the FPR at the first ROC point (scikit-learn's
    ``roc_curve``, thresholds descending) whose TPR >= 0.95; AUROC and both AUPRs are trapezoidal
    areas (``sklearn.metrics.auc``) under the ROC / precision-recall curves (AUPR-In: ID positive,
    scored by ``conf``). Note the AUPRs are trapezoids, not ``average_precision_score``."""
    from sklearn import metrics as skm

    cid = np.asarray(conf_id, dtype=np.float64).ravel()
    cood = np.asarray(conf_ood, dtype=np.float64).ravel()
    if len(cid) == 0 or len(cood) == 0:
        raise ValueError(f"need in-distribution and OOD scores, got {len(cid)} and {len(cood)}")
    conf = np.r_[cid, cood]
    ood = np.r_[np.zeros(len(cid)), np.ones(len(cood))]
    fpr, tpr, _ = skm.roc_curve(ood, -conf)
    p_in, r_in, _ = skm.precision_recall_curve(1 - ood, conf)
    p_out, r_out, _ = skm.precision_recall_curve(ood, -conf)
    return {
        "fpr95": float(fpr[np.argmax(tpr >= 0.95)]),
        "auroc": float(skm.auc(fpr, tpr)),
        "aupr_in": float(skm.auc(r_in, p_in)),
        "aupr_out": float(skm.auc(r_out, p_out)),
    }


def openood_row(values: Mapping[str, float], accuracy: float) -> list[float]:
    """One row of OpenOOD's table (``OPENOOD_COLUMNS``, in %) from :func:`openood_metrics` values."""
    return [
        100 * values["fpr95"],
        100 * values["auroc"],
        100 * values["aupr_in"],
        100 * values["aupr_out"],
        100 * accuracy,
    ]
