"""AdAutoMix kernels: the mask generator, mixing, losses, the EMA teacher's update and momentum, draws.

Pure functions and one module (:class:`MaskGenerator`); the random draws are made by
:func:`draw_mix_plan` from an explicit NumPy generator, never from a global one.
See ``docs/adautomix.md`` of the project for the specification these follow.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MaskGenerator",
    "MixPlan",
    "draw_mix_plan",
    "ema_update_",
    "margin_fires",
    "mask_entropy",
    "mix_ce",
    "mix_images",
    "source_cosine",
    "teacher_momentum",
]


def _projection(in_ch: int, out_ch: int, norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


class MaskGenerator(nn.Module):
    """Pixel-wise mixing masks from feature maps by 1x1 query/key/value cross-attention.

    For sources ``i = 1..N`` with features ``f_i`` (``[B, C, h, w]``): ``Q_i, K_i = ReLU(conv1x1(f_i))``
    (width ``d = C // 2``), ``V_i = conv1x1(f_i)`` (one channel), ``A_i = softmax_keys(sum_{j != i}
    Q_i K_j^T / sqrt(d))``, ``m_i = A_i V_i``; the ``m_i`` are upsampled to the image size and a
    softmax over ``i`` makes per-pixel convex weights. Projections are shared by the sources.

    Args:
        in_channels: C of the feature maps.
        lam_concat: append each source's lambda as a constant input channel.
        norm: BatchNorm before the ReLU of Q and K (instead of a bias).
        upsample: ``"bilinear"`` (CNN features) or ``"nearest"`` (ViT tokens).
    """

    def __init__(
        self, in_channels: int, lam_concat: bool = False, norm: bool = False, upsample: str = "bilinear"
    ):
        super().__init__()
        if in_channels < 2:
            raise ValueError(f"the generator needs feature maps with >= 2 channels, got {in_channels}")
        if upsample not in ("bilinear", "nearest"):
            raise ValueError(f"upsample must be bilinear or nearest, got {upsample!r}")
        self.lam_concat, self.upsample = bool(lam_concat), upsample
        in_ch = in_channels + int(lam_concat)
        self.dim = in_channels // 2
        self.query = _projection(in_ch, self.dim, norm)
        self.key = _projection(in_ch, self.dim, norm)
        self.value = nn.Conv2d(in_ch, 1, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, feats: torch.Tensor, lam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Masks ``[B, N, H, W]`` (>= 0, summing to 1 over N) from ``feats`` ``[N, B, C, h, w]`` and
        ``lam`` ``[N]``; ``size`` = (H, W) of the images."""
        n, b, _, h, w = feats.shape
        with torch.autocast(feats.device.type, enabled=False):
            f = feats.float().flatten(0, 1)
            if self.lam_concat:
                lam_map = lam.float().view(n, 1, 1, 1, 1).expand(n, b, 1, h, w).flatten(0, 1)
                f = torch.cat([f, lam_map], dim=1)
            q = self.query(f).flatten(2).view(n, b, self.dim, h * w)
            k = self.key(f).flatten(2).view(n, b, self.dim, h * w)
            v = self.value(f).flatten(2).view(n, b, 1, h * w)
            logits = self._attend(q, k, v)
            if not torch.isfinite(logits).all():  # overflow in Q K^T: redo in float64
                logits = self._attend(q.double(), k.double(), v.double()).float()
            logits = logits.view(n, b, h, w).transpose(0, 1)
            kwargs = {"align_corners": False} if self.upsample == "bilinear" else {}
            up = F.interpolate(logits, size=size, mode=self.upsample, **kwargs)
            return up.softmax(dim=1)

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        others = k.sum(0, keepdim=True) - k  # sum over j != i of K_j: [N, B, d, hw]
        scores = (q.transpose(2, 3) @ others / math.sqrt(self.dim)).clamp(-1e25, 1e25)
        return (scores.softmax(dim=-1) @ v.transpose(2, 3)).squeeze(-1)  # [N, B, hw]


def mix_images(x: torch.Tensor, index: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """``sum_i masks[:, i] * x[index[i]]``: x ``[B, C, H, W]``, index ``[N, B]``, masks ``[B, N, H, W]``
    (or ``[B, N, 1, 1]`` for constant weights)."""
    return sum(masks[:, i : i + 1] * x[index[i]] for i in range(index.shape[0]))  # type: ignore[return-value]


def mix_ce(logits: torch.Tensor, y: torch.Tensor, index: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``sum_i lam_i CE(logits, y[index[i]])`` (batch-mean cross-entropy per source)."""
    return sum(lam[i] * F.cross_entropy(logits, y[index[i]]) for i in range(index.shape[0]))  # type: ignore[return-value]


def source_cosine(z: torch.Tensor, sources: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """``mean_b sum_i lam_i cos(z_b, sources[i, b])``: z ``[B, K]``, sources ``[N, B, K]``."""
    cos = F.cosine_similarity(z.unsqueeze(0).float(), sources.float(), dim=-1)  # [N, B]
    return (lam.float().view(-1, 1) * cos).sum(0).mean()


def mask_entropy(masks: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel entropy of masks ``[B, N, H, W]`` in nats (0 = one-hot, log N = uniform)."""
    m = masks.float().clamp_min(1e-12)
    return -(m * m.log()).sum(1).mean()


def margin_fires(lam0: float, margin: float) -> bool:
    """The classifier gets plain (constant) mixup when ``lam0 <= margin or lam0 > 1 - margin``
    (the original repository's lam_margin test; decision (b) of the spec)."""
    return lam0 <= margin or lam0 > 1.0 - margin


def teacher_momentum(
    t: int, total: int, base: float = 0.999, end: float = 1.0 - 1e-6, start: float = 0.1
) -> float:
    """EMA momentum at 0-based iteration ``t`` of ``total``: ``base`` for ``t < start * total``, then
    ``end - (end - base) * (1 + cos(pi t / total)) / 2``."""
    if t < start * total:
        return base
    return end - (end - base) * (1.0 + math.cos(math.pi * t / max(total, 1))) / 2.0


@torch.no_grad()
def ema_update_(teacher: Iterable[nn.Parameter], student: Iterable[nn.Parameter], momentum: float) -> None:
    """``theta_t <- m theta_t + (1 - m) theta_s`` on parameters only (buffers stay the teacher's own)."""
    t_params, s_params = list(teacher), list(student)
    if len(t_params) != len(s_params):
        raise ValueError(f"teacher has {len(t_params)} parameters, student {len(s_params)}")
    torch._foreach_lerp_(t_params, [p.detach() for p in s_params], 1.0 - momentum)


@dataclass
class MixPlan:
    """The random draws of one step: mixing ratios and source indices for the generator's mix (g)
    and the classifier's mix (c). ``lam_*``: ``[N]`` float; ``idx_*``: ``[N, B]`` long."""

    lam_g: torch.Tensor
    lam_c: torch.Tensor
    idx_g: torch.Tensor
    idx_c: torch.Tensor

    def to(self, device: torch.device) -> MixPlan:
        return MixPlan(*(t.to(device) for t in (self.lam_g, self.lam_c, self.idx_g, self.idx_c)))


def draw_mix_plan(
    rng: np.random.Generator, batch: int, sources: int = 3, alpha: float = 1.0, random_sources: bool = False
) -> MixPlan:
    """Draw a step's plan: ``lambda ~ Beta(alpha, alpha)^N`` (one per batch).

    N = 3: ``lambda /= sum``, shared by g and c, each with 3 fresh permutations. N = 2: g = [id, p1]
    with ``(l0, 1 - l0)``, c = [id, p2] with ``(l1, 1 - l1)``. ``random_sources``: N ~ U{2..sources}.
    """
    n = int(rng.integers(2, sources + 1)) if random_sources and sources > 2 else sources
    lam = rng.beta(alpha, alpha, size=n)
    if n == 2:
        lam_g, lam_c = np.array([lam[0], 1 - lam[0]]), np.array([lam[1], 1 - lam[1]])
        ident = np.arange(batch)
        idx_g, idx_c = np.stack([ident, rng.permutation(batch)]), np.stack([ident, rng.permutation(batch)])
    else:
        lam_g = lam_c = lam / lam.sum()
        idx_g = np.stack([rng.permutation(batch) for _ in range(n)])
        idx_c = np.stack([rng.permutation(batch) for _ in range(n)])
    as_t = torch.from_numpy
    return MixPlan(as_t(lam_g).float(), as_t(np.array(lam_c)).float(), as_t(idx_g).long(), as_t(idx_c).long())
