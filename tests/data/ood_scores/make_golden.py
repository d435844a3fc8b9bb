"""Regenerate ``openood_golden.npz`` with OpenOOD's own postprocessors (run once, outside the project).

Throwaway environment (nothing of it enters the project)::

    mkdir /tmp/oogold && cd /tmp/oogold
    git -C <OpenOOD clone at 3c35632ee91b54b09d1f085d04f94744cece7d0b> archive HEAD openood | tar x
    for d in openood openood/postprocessors openood/preprocessors openood/utils openood/evaluators; do
        : > $d/__init__.py; done          # skip the package imports that pull in every method's deps
    pip install --target /tmp/oogold/deps faiss-cpu==1.15.1 && rm -rf /tmp/oogold/deps/numpy*
    PYTHONPATH=/tmp/oogold/deps:/tmp/oogold python tests/data/ood_scores/make_golden.py

Inputs are seeded random features / logits of a 10-class linear head (OpenOOD's ``cifar10`` class
count) and a small 3-channel network for ODIN, stored in the same file.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from openood.evaluators.metrics import compute_all_metrics
from openood.postprocessors.base_postprocessor import BasePostprocessor
from openood.postprocessors.ebo_postprocessor import EBOPostprocessor
from openood.postprocessors.knn_postprocessor import KNNPostprocessor
from openood.postprocessors.maxlogit_postprocessor import MaxLogitPostprocessor
from openood.postprocessors.mds_postprocessor import MDSPostprocessor
from openood.postprocessors.odin_postprocessor import ODINPostprocessor
from openood.postprocessors.vim_postprocessor import VIMPostprocessor

K, D, N_TRAIN, N_TEST = 10, 24, 300, 60
VIM_DIM = 12
OUT = Path(__file__).with_name("openood_golden.npz")


def config(**args: object) -> SimpleNamespace:
    return SimpleNamespace(
        dataset=SimpleNamespace(name="cifar10"),
        postprocessor=SimpleNamespace(postprocessor_args=SimpleNamespace(**args), postprocessor_sweep={}),
    )


class Head(torch.nn.Module):
    """OpenOOD's network interface over given features: the data IS the penultimate feature."""

    def __init__(self, w: np.ndarray, b: np.ndarray) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(D, K)
        self.fc.weight.data = torch.from_numpy(w)
        self.fc.bias.data = torch.from_numpy(b)

    def forward(self, data: torch.Tensor, return_feature: bool = False):
        logits = self.fc(data)
        return (logits, data) if return_feature else logits

    def get_fc(self) -> tuple[np.ndarray, np.ndarray]:
        return self.fc.weight.detach().numpy(), self.fc.bias.detach().numpy()


def main() -> None:
    rng = np.random.default_rng(20261207)
    centres = rng.normal(0, 2.0, (K, D)).astype(np.float32)
    train_labels = np.arange(N_TRAIN) % K
    train = (centres[train_labels] + rng.normal(0, 1.0, (N_TRAIN, D))).astype(np.float32)
    id_labels = rng.integers(0, K, N_TEST)
    feats_id = (centres[id_labels] + rng.normal(0, 1.0, (N_TEST, D))).astype(np.float32)
    feats_ood = rng.normal(0, 2.5, (N_TEST, D)).astype(np.float32)
    w = rng.normal(0, 0.5, (K, D)).astype(np.float32)
    b = rng.normal(0, 0.5, K).astype(np.float32)
    net = Head(w, b).eval()
    loader = {"train": [{"data": torch.from_numpy(train), "label": torch.from_numpy(train_labels)}]}
    torch.Tensor.cuda = lambda self, *a, **k: self  # CPU run of the .cuda() calls in setup()

    out: dict[str, np.ndarray] = {
        "train_features": train,
        "train_labels": train_labels,
        "weight": w,
        "bias": b,
        "features_id": feats_id,
        "features_ood": feats_ood,
    }
    processors = {
        "msp": BasePostprocessor(config()),
        "maxlogit": MaxLogitPostprocessor(config()),
        "energy": EBOPostprocessor(config(temperature=1)),
        "mahalanobis": MDSPostprocessor(config()),
        "knn": KNNPostprocessor(config(K=50)),
        "vim": VIMPostprocessor(config(dim=VIM_DIM)),
    }
    for name, proc in processors.items():
        proc.setup(net, loader, {})
        for part in ("id", "ood"):
            _, conf = proc.postprocess(net, torch.from_numpy(out[f"features_{part}"]))
            out[f"{name}_{part}"] = np.asarray(conf, dtype=np.float64)

    # ODIN through a small 3-channel network on normalized inputs (OpenOOD's cifar10 std)
    torch.manual_seed(0)
    odin_net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(48, 16), torch.nn.Tanh(), torch.nn.Linear(16, K)
    ).eval()
    odin_in = torch.from_numpy(rng.normal(0, 1, (N_TEST, 3, 4, 4)).astype(np.float32))
    _, conf = ODINPostprocessor(config(temperature=1000, noise=0.0014)).postprocess(odin_net, odin_in.clone())
    out["odin_inputs_normalized"] = odin_in.numpy()
    out["odin"] = conf.numpy().astype(np.float64)
    for k, v in odin_net.state_dict().items():
        out[f"odin_net.{k}"] = v.numpy()

    # OpenOOD's metrics of every score above (OOD label -1), as [fpr, auroc, aupr_in, aupr_out, acc]
    for name in processors:
        conf = np.r_[out[f"{name}_id"], out[f"{name}_ood"]]
        label = np.r_[id_labels, -np.ones(N_TEST, int)]
        pred = np.r_[id_labels, np.zeros(N_TEST, int)]
        out[f"metrics_{name}"] = np.asarray(compute_all_metrics(conf, label, pred), dtype=np.float64)
    np.savez_compressed(OUT, **out)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
