"""Draws from an explicit ``torch.Generator``: uniform, Gamma, Beta, Dirichlet, ``get_ab``, image ops.

torch's own Gamma / Beta / Dirichlet samplers take no generator, so Gamma is drawn here with
Marsaglia and Tsang's method (rejection rounds over the whole batch; no loop over samples), and Beta
and Dirichlet from it. Every function draws on the generator's device and returns float64 tensors
(int64 for op indices) there; callers move them to the images' device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from albumentations_ipmix.ops import IMAGE_OPS, OpContext

__all__ = ["beta", "dirichlet", "draw_image_ops", "gamma", "get_ab", "uniform"]


def uniform(shape: Sequence[int], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """U[0, 1) float64 of ``shape``."""
    return torch.rand(tuple(shape), generator=generator, device=device, dtype=torch.float64)


def gamma(
    alpha: float, shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Gamma(alpha, 1) draws (Marsaglia & Tsang 2000; alpha < 1 boosted by ``U^(1/alpha)``)."""
    if alpha <= 0:
        raise ValueError(f"gamma shape must be > 0, got {alpha}")
    shape = tuple(shape)
    boost = alpha < 1.0
    a = alpha + 1.0 if boost else alpha
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    out = torch.empty(shape, dtype=torch.float64, device=device)
    pending = torch.ones(shape, dtype=torch.bool, device=device)
    while bool(pending.any()):  # each round accepts > 95% of what is left
        z = torch.randn(shape, generator=generator, device=device, dtype=torch.float64)
        u = uniform(shape, generator, device)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (
            torch.log(u.clamp_min(1e-300)) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300))
        )
        take = pending & ok
        out = torch.where(take, d * v, out)
        pending = pending & ~ok
    if boost:
        out = out * uniform(shape, generator, device).clamp_min(1e-300) ** (1.0 / alpha)
    return out


def beta(
    a: float, b: float, shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Beta(a, b) draws. ``Beta(a, 1)`` and ``Beta(1, b)`` use the exact inverse CDF (one uniform)."""
    if b == 1.0:
        return uniform(shape, generator, device) ** (1.0 / a)
    if a == 1.0:
        return 1.0 - uniform(shape, generator, device) ** (1.0 / b)
    x, y = gamma(a, shape, generator, device), gamma(b, shape, generator, device)
    return x / (x + y)


def dirichlet(
    alpha: float, shape: Sequence[int], width: int, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Symmetric Dirichlet(alpha, ..., alpha) weights ``[*shape, width]`` (rows sum to 1)."""
    g = gamma(alpha, (*shape, width), generator, device)
    return g / g.sum(-1, keepdim=True)


def get_ab(
    beta_param: float, shape: Sequence[int], generator: torch.Generator | None, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """ipmix.md's ``get_ab(beta)`` per element: ``(Beta(beta, 1), Beta(1, beta))`` with probability 0.5,
    else ``(1 + Beta(1, beta), -Beta(1, beta))`` (independent draws)."""
    first = uniform(shape, generator, device) < 0.5
    a1, b1 = beta(beta_param, 1.0, shape, generator, device), beta(1.0, beta_param, shape, generator, device)
    a2, b2 = beta(1.0, beta_param, shape, generator, device), beta(1.0, beta_param, shape, generator, device)
    return torch.where(first, a1, 1.0 + a2), torch.where(first, b1, -b2)


def draw_image_ops(
    ops: Sequence[str],
    severity: float,
    context: OpContext,
    shape: Sequence[int],
    generator: torch.Generator | None,
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image op per element: ``(index into ops, magnitude)``, as the per-image sampler draws them.

    The op is uniform on ``ops``, ``level = U(0.1, severity)``, and the magnitude is the op's level
    rule in :data:`albumentations_ipmix.ops.IMAGE_OPS` (evaluated on the float64 level tensor), its
    sign flipped with probability 0.5 for signed ops.
    """
    u = uniform((*shape, 3), generator, device)
    index = (u[..., 0] * len(ops)).to(torch.int64)
    level = 0.1 + (severity - 0.1) * u[..., 1]
    negate = u[..., 2] < 0.5
    magnitude = torch.zeros(tuple(shape), dtype=torch.float64, device=device)
    for k, name in enumerate(ops):
        spec = IMAGE_OPS[name]
        if spec.level_to_arg is None:
            continue
        value = torch.as_tensor(spec.level_to_arg(level, context), dtype=torch.float64, device=device)
        if spec.signed:
            value = torch.where(negate, -value, value)
        magnitude = torch.where(index == k, value, magnitude)
    return index, magnitude
