"""The calibration suite's extended block (``--calibration-extras``): NLL, Brier, AURC, RMS and ECE
before and after temperature scaling on the clean test split (:mod:`robust_eval.calibration`).

The clean logits come from one cached pass (cell ``calibration/logits``); the temperature is fitted
on the held-out fifth (:func:`robust_eval.calibration.heldout_split`) and every number of this block
is measured on the other examples, before and after dividing the logits by it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robust_eval import calibration as C

__all__ = ["extended_block", "metrics_at"]


def metrics_at(logits: np.ndarray, labels: np.ndarray, temperature: float) -> dict[str, float | None]:
    """NLL, Brier, AURC and the RMS / reference RMS / ECE of ``logits / temperature`` (fractions)."""
    from robust_eval.suites import calibration_values

    probs = np.exp(C.log_softmax(logits, temperature))
    confidence = probs.max(axis=1)
    correct = logits.argmax(axis=1) == labels
    return {
        "nll": C.nll(logits, labels, temperature),
        "brier": C.brier(logits, labels, temperature),
        "aurc": C.aurc(confidence, correct),
        **calibration_values(confidence, correct),
    }


def extended_block(ctx: Any) -> dict[str, Any]:
    """Temperature fitted on the held-out fifth of the clean test split; metrics before and after it
    on the rest."""
    from robust_eval.ood_detectors import content_key
    from robust_eval.suites import clean_source, forward

    source, where = clean_source(ctx)
    assert source.labels is not None

    def compute() -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        parts = [
            logits.numpy().astype(np.float64) for _, logits in forward(ctx, source, "calibration logits")
        ]
        return {"n": len(source)}, {"logits": np.concatenate(parts)}

    key = content_key(source)
    _, arrays = ctx.cache.cell("calibration", "logits", ctx.options(inputs=key), compute)
    logits, labels = arrays["logits"], np.asarray(source.labels, np.int64)
    fit, ev = C.heldout_split(len(labels))
    t = C.fit_temperature(logits[fit], labels[fit])
    return {
        "source": where,
        "heldout": f"examples i % {C.HELDOUT_EVERY} == 0 of the clean test split (after --subset) fit the "
        "temperature (NLL, bounded search over log T in [-5, 5]); all values below are on the other examples",
        "n_fit": len(fit),
        "n_eval": len(ev),
        "temperature": t,
        "before": metrics_at(logits[ev], labels[ev], 1.0),
        "after_temperature_scaling": metrics_at(logits[ev], labels[ev], t),
    }
