"""Throughput of robust_eval.metrics on CIFAR/ImageNet-sized inputs, against peers in the same process.

Usage: python benchmarks/metrics.py   (prints a Markdown table; best of several runs, milliseconds)
       python benchmarks/metrics.py --smoke   (tiny inputs: checks that the script runs)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from sklearn.metrics import roc_auc_score, top_k_accuracy_score

from robust_eval import metrics


def best_ms(fn: Callable[[], object], reps: int = 5) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def loop_flip_probability(preds: np.ndarray) -> float:
    """Per-frame Python loop, the shape of the reference -P scripts."""
    return float(np.mean([np.mean([seq[t] != seq[t - 1] for t in range(1, len(seq))]) for seq in preds]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny inputs: checks that the script runs")
    args = parser.parse_args(argv)
    n = 200 if args.smoke else 10_000  # the CIFAR test-set size; row labels below assume the full size
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(n, 100)).astype(np.float32)  # CIFAR-100 test set
    labels = rng.integers(0, 100, n)
    frames10 = rng.normal(size=(n * 31, 10)).astype(np.float32)  # one CIFAR-10-P perturbation
    frames1k = rng.normal(size=(2 * n, 1000)).astype(np.float32)  # ImageNet-P-like frames
    top5 = metrics.topk_indices(frames10, 5).reshape(n, 31, 5)
    preds = top5[..., 0]
    conf = rng.uniform(size=n)
    correct = rng.uniform(size=n) < conf
    ins, outs = rng.normal(size=n), rng.normal(1, 1, n // 5)
    y_ood = np.r_[np.ones(n // 5), np.zeros(n)]
    rows = [
        (
            "topk_error k=5, 10k x 100",
            best_ms(lambda: metrics.topk_error(logits, labels, 5)),
            "sklearn top_k_accuracy_score",
            best_ms(lambda: top_k_accuracy_score(labels, logits, k=5, labels=np.arange(100))),
        ),
        (
            "topk_indices k=5, 310k x 10",
            best_ms(lambda: metrics.topk_indices(frames10, 5), 3),
            "np.argsort stable",
            best_ms(lambda: np.argsort(-frames10, axis=1, kind="stable")[:, :5], 3),
        ),
        (
            "topk_indices k=5, 20k x 1000",
            best_ms(lambda: metrics.topk_indices(frames1k, 5), 3),
            "np.argsort stable",
            best_ms(lambda: np.argsort(-frames1k, axis=1, kind="stable")[:, :5], 3),
        ),
        (
            "flip_probability 10k x 31",
            best_ms(lambda: metrics.flip_probability(preds, False)),
            "Python frame loop",
            best_ms(lambda: loop_flip_probability(preds), 1),
        ),
        (
            "ood_metrics 10k in + 2k out",
            best_ms(lambda: metrics.ood_metrics(ins, outs)),
            "sklearn roc_auc_score alone",
            best_ms(lambda: roc_auc_score(y_ood, np.r_[outs, ins])),
        ),
    ]
    solo = [
        ("top5_distance 10k x 31", best_ms(lambda: metrics.top5_distance(top5, False), 3)),
        ("rms_calibration_error 10k", best_ms(lambda: metrics.rms_calibration_error(conf, correct))),
        (
            "expected_calibration_error 10k",
            best_ms(lambda: metrics.expected_calibration_error(conf, correct)),
        ),
    ]
    print("| metric | ms | peer | peer ms | ratio |")
    print("|---|---:|---|---:|---:|")
    for name, ms, peer, peer_ms in rows:
        print(f"| {name} | {ms:.1f} | {peer} | {peer_ms:.1f} | {ms / peer_ms:.2f} |")
    for name, ms in solo:
        print(f"| {name} | {ms:.1f} | - | - | - |")


if __name__ == "__main__":
    main()
