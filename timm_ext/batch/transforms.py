"""IPMix, PixMix and AugMix on a batch: every draw per sample, ops applied by group, no loop over samples.

Each module takes the per-image transform's parameters and defaults and draws everything that
transform draws - chain count and depth, op, level and sign, mixing weights, mixing op and its
weights, patch size, shape and position, random masks, the mixing picture and its crop - once per
sample from the explicit ``torch.Generator`` passed to ``forward``. Chain states are uint8 and every
op is the batched kernel of :mod:`timm_ext.batch.kernels`.

Evaluation (``strategy``): ``"group"`` applies each op to the samples that drew it only (one
``index_select`` / ``index_copy`` per op and step: work proportional to the batch); ``"mask"``
applies every op to the whole batch and keeps each sample's own result (PRIME's way: work
proportional to ops x batch, but no data-dependent shapes). ``benchmarks/batch_mixing.py`` measures
both; ``"group"`` is the default because it was faster at every size measured (see
``docs/batch_mixing.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import nn

from albumentations_ipmix import functional as AF
from albumentations_ipmix.ops import AUGMIX_OPS, IMAGE_OPS, OpContext, float_param, int_param

from . import kernels as K
from .bank import DEFAULT_BANK_SIZE, PictureBank
from .random import beta, dirichlet, draw_image_ops, get_ab, uniform

__all__ = ["STRATEGIES", "TIMM_AUGMIX_OPS", "BatchAugMix", "BatchIPMix", "BatchPixMix", "apply_ops"]

Strategy = Literal["group", "mask"]
#: Ways to evaluate per-sample ops on a batch (see the module docstring).
STRATEGIES: tuple[str, ...] = ("group", "mask")

#: Ops that need a statistic of the whole image (computed once per batch of originals) and then
#: act pointwise, so that a patch partner is computed on its window only: statistic and application.
_WINDOW_STATS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "equalize": lambda x: K.equalize_luts(K.histograms(x)),
    "autocontrast": K.histograms,
    "contrast": K.mean_luma,
}
_WINDOW_APPLY: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "equalize": lambda region, luts, mag: K.apply_luts(region, luts),
    "autocontrast": lambda region, hist, mag: K.apply_luts(region, K.autocontrast_luts(hist, mag)),
    "contrast": lambda region, mean, mag: K.blend_lut(region, mean, mag),
}


def apply_ops(
    x: torch.Tensor,
    index: torch.Tensor,
    magnitude: torch.Tensor,
    names: Sequence[str],
    strategy: str = "group",
    fill: torch.Tensor | None = None,
    kernels: dict[str, K.BatchKernel] = K.BATCH_KERNELS,
) -> torch.Tensor:
    """Apply op ``names[index[n]]`` with ``magnitude[n]`` to sample ``n`` (``index < 0``: unchanged).

    Args:
        x: uint8 ``[N, C, H, W]``.
        index: int64 ``[N]`` into ``names``; negative leaves the sample as it is.
        magnitude: float64 ``[N]`` in the op's unit (see :data:`albumentations_ipmix.ops.IMAGE_OPS`).
        names: op names, keys of ``kernels``.
        strategy: ``"group"`` or ``"mask"``.
        fill: uint8 ``[C]`` value brought in by geometric ops (None: 0).

    Returns:
        a new uint8 tensor ``[N, C, H, W]``.
    """
    out = x.clone()
    for k, name in enumerate(names):
        chosen = index == k
        if strategy == "mask":
            out = torch.where(chosen.view(-1, 1, 1, 1), kernels[name](x, magnitude, fill), out)
            continue
        rows = chosen.nonzero().squeeze(1)
        if rows.numel():
            out.index_copy_(0, rows, kernels[name](x.index_select(0, rows), magnitude[rows], fill))
    return out


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 passes; float [0, 1] is rounded to uint8 (the per-image transforms' ``to_uint8``)."""
    if images.dtype == torch.uint8:
        return images
    return torch.round(images.to(torch.float32) * 255.0).clamp(0, 255).to(torch.uint8)


def _check(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(
            f"{name} expects a [B, C, H, W] tensor, got {shape}; stack the images into one batch"
        )
    if images.dtype != torch.uint8 and not images.is_floating_point():
        raise TypeError(
            f"{name} got a {images.dtype} batch; expected uint8 (0..255) or float (0..1): "
            "convert with images.float() / 255"
        )


class _BatchMixing(nn.Module):
    """What the three modules share: the generator's device, the strategy, the repr."""

    def __init__(self, strategy: str) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        self.strategy = strategy

    @staticmethod
    def _draw_device(images: torch.Tensor, generator: torch.Generator | None) -> torch.device:
        return generator.device if generator is not None else images.device

    def _ops(
        self, x: torch.Tensor, index: torch.Tensor, magnitude: torch.Tensor, names: Sequence[str]
    ) -> torch.Tensor:
        return apply_ops(x, index, magnitude, names, self.strategy, getattr(self, "_fill", None))

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={getattr(self, k)!r}" for k in self._repr_keys)

    _repr_keys: tuple[str, ...] = ()


class _WithBank(_BatchMixing):
    def __init__(self, fractals: Any, bank_size: int, strategy: str) -> None:
        super().__init__(strategy)
        self.bank = PictureBank(fractals, bank_size)

    def _pictures(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b, c, h, w = x.shape
        return self.bank.draw(b, h, w, c, x.device, generator)


# ----------------------------------------------------------------------------------------------
# IPMix
# ----------------------------------------------------------------------------------------------
class BatchIPMix(_WithBank):
    """IPMix on a batch ``[B, C, H, W]`` (uint8 0..255 or float 0..1), random per sample.

    Arguments and defaults are :class:`albumentations_ipmix.IPMix`'s (``p`` and ``metadata_key``
    aside: every sample is mixed), plus:

    Args:
        bank_size: mixing pictures held on the device (see :class:`~timm_ext.batch.bank.PictureBank`).
        strategy: ``"group"`` (default) or ``"mask"`` (see the module docstring).

    Example:
        >>> import numpy as np, torch
        >>> pictures = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
        >>> mix = BatchIPMix(fractals=pictures)
        >>> images = torch.zeros(8, 3, 32, 32, dtype=torch.uint8)
        >>> mix(images, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([8, 3, 32, 32])
    """

    _repr_keys = (
        "width",
        "depth",
        "alpha",
        "beta",
        "severity",
        "all_ops",
        "mixing_ops",
        "patch_shapes",
        "patch_sizes",
        "fractal_prob",
        "overflow",
        "strategy",
    )

    def __init__(
        self,
        fractals: Any = None,
        width: int = 3,
        depth: int = 3,
        alpha: float = 1.0,
        beta: float = 3.0,
        severity: float = 3.0,
        all_ops: bool = False,
        mixing_ops: Sequence[str] = AF.MIXING_OPS,
        patch_shapes: Sequence[str] = AF.PATCH_SHAPES,
        patch_sizes: Sequence[int] | None = None,
        fractal_prob: float = 0.5,
        overflow: str = "wrap",
        bank_size: int = DEFAULT_BANK_SIZE,
        strategy: Strategy = "group",
    ) -> None:
        super().__init__(fractals, bank_size, strategy)
        _require(width >= 1 and depth >= 0, "width >= 1 and depth >= 0", f"width={width}, depth={depth}")
        _require(alpha > 0 and beta > 0, "alpha > 0 and beta > 0", f"alpha={alpha}, beta={beta}")
        _require(0.1 <= severity <= 10, "severity in [0.1, 10]", f"severity={severity}")
        _require(0 <= fractal_prob <= 1, "fractal_prob in [0, 1]", f"fractal_prob={fractal_prob}")
        _require(overflow in AF.OVERFLOW_MODES, f"overflow in {AF.OVERFLOW_MODES}", f"overflow={overflow!r}")
        unknown = [op for op in mixing_ops if op not in AF.MIXING_OP_TABLE] or not mixing_ops
        _require(not unknown, f"mixing_ops a non-empty subset of {AF.MIXING_OPS}", f"{list(mixing_ops)}")
        bad_shapes = [s for s in patch_shapes if s not in AF.PATCH_SHAPES] or not patch_shapes
        _require(
            not bad_shapes, f"patch_shapes a non-empty subset of {AF.PATCH_SHAPES}", f"{list(patch_shapes)}"
        )
        if patch_sizes is not None:
            _require(
                len(patch_sizes) > 0 and min(patch_sizes) >= 2, "patch sizes >= 2", f"{list(patch_sizes)}"
            )
        self.width, self.depth, self.alpha, self.beta, self.severity = width, depth, alpha, beta, severity
        self.all_ops = all_ops
        self.mixing_ops = list(mixing_ops)
        self.patch_shapes = list(patch_shapes)
        self.patch_sizes = None if patch_sizes is None else [int(s) for s in patch_sizes]
        self.fractal_prob = fractal_prob
        self.overflow = overflow

    @property
    def image_ops(self) -> tuple[str, ...]:
        """The image-level ops in use (IPMix's 10, or 15 with ``all_ops``)."""
        return AF.IPMIX_ALL_OPS if self.all_ops else AF.IPMIX_OPS

    def _boxes(self, u: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Patch boxes ``[..., 6]`` (top, left, h, w, window h, window w) from uniforms ``u[..., 0:6]``,
        clipped to the image; the window is the ``s x s`` square at (top, left) that holds the box
        (clipped to the image when ``s`` exceeds it)."""
        sizes = torch.tensor(self.patch_sizes or AF.default_patch_sizes(height, width), device=u.device)
        s = sizes[(u[..., 0] * len(sizes)).to(torch.int64)]
        top = (u[..., 1] * ((height - s).clamp_min(0) + 1)).to(torch.int64)
        left = (u[..., 2] * ((width - s).clamp_min(0) + 1)).to(torch.int64)
        shapes = torch.tensor([name == "square" for name in self.patch_shapes], device=u.device)
        square = shapes[(u[..., 3] * len(self.patch_shapes)).to(torch.int64)]
        box_h = torch.where(square, s, 2 + (u[..., 4] * (s - 1)).to(torch.int64))
        box_w = torch.where(square, s, 2 + (u[..., 5] * (s - 1)).to(torch.int64))
        box_h, box_w = torch.minimum(box_h, height - top), torch.minimum(box_w, width - left)
        return torch.stack([top, left, box_h, box_w, s.clamp_max(height), s.clamp_max(width)], -1)

    def _mix(
        self,
        y: torch.Tensor,
        partner: torch.Tensor,
        op: torch.Tensor,
        a: torch.Tensor,
        b: torch.Tensor,
        keep: torch.Tensor,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """Mixing op ``self.mixing_ops[op[n]]`` of rows ``y`` and ``partner`` (uint8), whole images or windows."""
        gen_device = generator.device if generator is not None else y.device
        c, h, w = y.shape[1:]

        def mixer(
            name: str,
        ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
            spec = AF.MIXING_OP_TABLE[name]
            if spec.mask is None:
                table = K.add_255 if name == "add" else K.multiply_255
                return lambda ys, ps, aa, bb, kk: K.quantize(table(ys, ps, aa, bb), self.overflow)
            mask_channels = 1 if spec.mask == "pixel" else c

            def masked(
                ys: torch.Tensor, ps: torch.Tensor, aa: torch.Tensor, bb: torch.Tensor, kk: torch.Tensor
            ) -> torch.Tensor:
                u = torch.rand((ys.shape[0], mask_channels, h, w), generator=generator, device=gen_device)
                return K.select(u.to(ys.device) < kk.view(-1, 1, 1, 1).to(torch.float32), ys, ps)

            return masked

        out = y.clone()
        for k, name in enumerate(self.mixing_ops):
            if self.strategy == "mask":
                out = torch.where((op == k).view(-1, 1, 1, 1), mixer(name)(y, partner, a, b, keep), out)
                continue
            rows = (op == k).nonzero().squeeze(1)
            if rows.numel():
                mixed = mixer(name)(y[rows], partner[rows], a[rows], b[rows], keep[rows])
                out.index_copy_(0, rows, mixed)
        return out

    def _patch_step_whole(self, y, x8, pictures, sample, rows, j, boxes, mix_op, a, b, keep,
                          partner_is_op, p_i, p_m, generator) -> None:  # fmt: skip
        """Patch step ``j`` of chain rows ``rows`` on whole images, masked to the box (``"mask"``)."""
        h, w = y.shape[2:]
        src = x8[sample[rows]]
        partner_op = torch.where(partner_is_op[rows, j], p_i[rows, j], -1)
        partner = torch.where(
            partner_is_op[rows, j].view(-1, 1, 1, 1),
            self._ops(src, partner_op, p_m[rows, j], self.image_ops),
            pictures[sample[rows]],
        )
        mixed = self._mix(y[rows], partner, mix_op[rows, j], a[rows, j], b[rows, j], keep[rows, j], generator)
        top, left, bh, bw = (v.view(-1, 1, 1, 1) for v in boxes[rows, j, :4].unbind(-1))
        ys, xs = (
            torch.arange(h, device=y.device).view(1, 1, h, 1),
            torch.arange(w, device=y.device).view(1, 1, 1, w),
        )
        inside = (ys >= top) & (ys < top + bh) & (xs >= left) & (xs < left + bw)
        y.index_copy_(0, rows, K.select(inside, mixed, y[rows]))

    def _partner_windows(self, x8, pictures, samples, top, left, window, use_op, op, magnitude, stats):
        """The partners' windows ``[G, C, sh, sw]``: the mixing picture's, or op ``op`` applied to the
        original and cut to the window. Pointwise ops run on the window alone (equalize, autocontrast
        and contrast with the whole original's histogram / mean luma); the others on the whole original."""
        shape = tuple(x8.shape[1:])
        out = pictures.reshape(-1).index_select(0, K.window_index(samples, top, left, shape, window).view(-1))
        out = out.view(-1, shape[0], *window)
        for k, name in enumerate(self.image_ops):
            sel = (use_op & (op == k)).nonzero().squeeze(1)
            if sel.numel() == 0:
                continue
            rows, mag = samples[sel], magnitude[sel]
            index = K.window_index(rows, top[sel], left[sel], shape, window)
            if name in _WINDOW_STATS or (IMAGE_OPS[name].pointwise and name in K.BATCH_KERNELS):
                region = x8.reshape(-1)[index.view(-1)].view(index.shape)
                if name in _WINDOW_STATS:
                    if name not in stats:
                        stats[name] = _WINDOW_STATS[name](x8)
                    result = _WINDOW_APPLY[name](region, stats[name][rows], mag)
                else:
                    result = K.BATCH_KERNELS[name](region, mag, None)
            else:
                whole = K.BATCH_KERNELS[name](x8.index_select(0, rows), mag, None)
                local = torch.arange(sel.numel(), device=x8.device)
                result = whole.reshape(-1)[K.window_index(local, top[sel], left[sel], shape, window).view(-1)]
            out.index_copy_(0, sel, result.view(-1, *out.shape[1:]))
        return out

    def _patch_step_windows(self, y, x8, pictures, sample, rows, j, window, boxes, mix_op, a, b, keep,
                            partner_is_op, p_i, p_m, stats, generator) -> None:  # fmt: skip
        """Patch step ``j`` of chain rows ``rows`` whose boxes share the window size ``window``: only
        the ``sh x sw`` windows are gathered, mixed, cut to the box and scattered back."""
        c = y.shape[1]
        top, left, bh, bw = boxes[rows, j, :4].unbind(-1)
        flat = K.window_index(rows, top, left, tuple(y.shape[1:]), window).view(-1)
        region = y.view(-1)[flat].view(-1, c, *window)
        partner = self._partner_windows(
            x8,
            pictures,
            sample[rows],
            top,
            left,
            window,
            partner_is_op[rows, j],
            p_i[rows, j],
            p_m[rows, j],
            stats,
        )
        mixed = self._mix(region, partner, mix_op[rows, j], a[rows, j], b[rows, j], keep[rows, j], generator)
        dev = y.device
        inside = (torch.arange(window[0], device=dev).view(1, 1, -1, 1) < bh.view(-1, 1, 1, 1)) & (
            torch.arange(window[1], device=dev).view(1, 1, 1, -1) < bw.view(-1, 1, 1, 1)
        )
        y.view(-1).index_copy_(0, flat, K.select(inside, mixed, region).view(-1))

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """IPMix every image of ``images`` with its own draws from ``generator``; same dtype, shape, device."""
        _check(images, "BatchIPMix")
        x8 = _to_uint8(images)
        bsz, ch, h, w = x8.shape
        dev, gdev = x8.device, self._draw_device(images, generator)
        k, t = self.width, self.depth
        ctx = OpContext(h, w, autocontrast_cutoff=self.all_ops)

        def draw(*shape: int) -> torch.Tensor:
            return uniform(shape, generator, gdev)

        weights = dirichlet(self.alpha, (bsz,), k, generator, gdev).to(dev)
        m = beta(self.alpha, self.alpha, (bsz,), generator, gdev).to(dev)
        chain = draw(bsz, k, 2)
        image_level = (chain[..., 0] < 0.5).to(dev).reshape(-1)
        n_steps = (chain[..., 1] * (t + 1)).to(torch.int64).to(dev).reshape(-1)
        rows_shape = (bsz * k, t)
        op_i, op_m = (
            v.to(dev).reshape(rows_shape)
            for v in draw_image_ops(self.image_ops, self.severity, ctx, (bsz, k, t), generator, gdev)
        )
        u = draw(bsz, k, t, 8).to(dev).reshape(*rows_shape, 8)
        boxes = self._boxes(u[..., :6], h, w)
        mix_op = (u[..., 6] * len(self.mixing_ops)).to(torch.int64)
        partner_is_op = u[..., 7] >= self.fractal_prob
        a, b = (v.to(dev).reshape(rows_shape) for v in get_ab(self.beta, (bsz, k, t), generator, gdev))
        keep = draw(bsz, k, t).to(dev).reshape(rows_shape)
        p_i, p_m = (
            v.to(dev).reshape(rows_shape)
            for v in draw_image_ops(self.image_ops, self.severity, ctx, (bsz, k, t), generator, gdev)
        )
        pictures = self._pictures(x8, generator)

        y = x8.repeat_interleave(k, dim=0)  # row r = sample r // k, chain r % k
        sample = torch.arange(bsz * k, device=dev) // k
        stats: dict[str, torch.Tensor] = {}
        for j in range(t):
            active = n_steps > j
            y = self._ops(y, torch.where(active & image_level, op_i[:, j], -1), op_m[:, j], self.image_ops)
            rows = (active & ~image_level).nonzero().squeeze(1)
            if rows.numel() == 0:
                continue
            if self.strategy == "mask":
                self._patch_step_whole(y, x8, pictures, sample, rows, j, boxes, mix_op, a, b, keep,
                                       partner_is_op, p_i, p_m, generator)  # fmt: skip
                continue
            sizes = boxes[rows, j, 4] * (w + 1) + boxes[rows, j, 5]
            for key in sizes.unique().tolist():
                group = rows[sizes == key]
                window = (key // (w + 1), key % (w + 1))
                self._patch_step_windows(y, x8, pictures, sample, group, j, window, boxes, mix_op, a, b, keep,
                                         partner_is_op, p_i, p_m, stats, generator)  # fmt: skip

        used = (n_steps > 0).view(bsz, k).to(torch.float64)
        coef = m.view(-1, 1) * weights * used
        image_coef = (1.0 - m + m * (weights * (1.0 - used)).sum(1)).to(torch.float32).view(-1, 1, 1, 1)
        coef = coef.to(torch.float32)
        y = y.view(bsz, k, ch, h, w)
        if images.dtype == torch.uint8:
            acc = x8.to(torch.float32).mul_(image_coef)
            for i in range(k):
                acc += y[:, i].to(torch.float32).mul_(coef[:, i].view(-1, 1, 1, 1))
            return acc.round_().clamp_(0, 255).to(torch.uint8)
        acc = image_coef * images.to(torch.float32)
        for i in range(k):
            acc = acc + (coef[:, i] / 255.0).view(-1, 1, 1, 1) * y[:, i].to(torch.float32)
        return acc.clamp(0.0, 1.0).to(images.dtype)


# ----------------------------------------------------------------------------------------------
# PixMix
# ----------------------------------------------------------------------------------------------
class BatchPixMix(_WithBank):
    """PixMix on a batch ``[B, C, H, W]`` (uint8 or float 0..1), random per sample.

    Arguments and defaults are :class:`albumentations_ipmix.PixMix`'s, plus ``bank_size`` and
    ``strategy`` as for :class:`BatchIPMix`.

    Example:
        >>> import numpy as np, torch
        >>> pictures = np.random.default_rng(0).integers(0, 256, (4, 40, 40, 3), dtype=np.uint8)
        >>> out = BatchPixMix(fractals=pictures)(torch.rand(4, 3, 32, 32), torch.Generator().manual_seed(1))
        >>> out.dtype, bool(out.min() >= 0 and out.max() <= 1)
        (torch.float32, True)
    """

    _repr_keys = ("k", "beta", "severity", "all_ops", "strategy")

    def __init__(
        self,
        fractals: Any = None,
        k: int = 4,
        beta: float = 3.0,
        severity: float = 3.0,
        all_ops: bool = False,
        bank_size: int = DEFAULT_BANK_SIZE,
        strategy: Strategy = "group",
    ) -> None:
        super().__init__(fractals, bank_size, strategy)
        _require(k >= 0 and beta > 0, "k >= 0 and beta > 0", f"k={k}, beta={beta}")
        _require(0.1 <= severity <= 10, "severity in [0.1, 10]", f"severity={severity}")
        self.k, self.beta, self.severity, self.all_ops = k, beta, severity, all_ops

    @property
    def image_ops(self) -> tuple[str, ...]:
        """The image-level ops in use (9, or 13 with ``all_ops``)."""
        return AF.PIXMIX_ALL_OPS if self.all_ops else AF.PIXMIX_OPS

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """PixMix every image of ``images`` with its own draws; same dtype, shape, device."""
        _check(images, "BatchPixMix")
        x8 = _to_uint8(images)
        bsz, _, h, w = x8.shape
        dev, gdev = x8.device, self._draw_device(images, generator)
        ctx = OpContext(h, w)
        ops = self.image_ops
        inv255 = torch.tensor(1.0 / 255.0, dtype=torch.float32)
        u = uniform((bsz, 2), generator, gdev).to(dev)
        first_i, first_m = (
            v.to(dev) for v in draw_image_ops(ops, self.severity, ctx, (bsz,), generator, gdev)
        )
        rounds = (u[:, 1] * (self.k + 1)).to(torch.int64)
        first = torch.where(u[:, 0] < 0.5, first_i, -1)
        if images.dtype == torch.uint8:
            mixed = self._ops(x8, first, first_m, ops).to(torch.float32) * inv255
        else:
            start = self._ops(x8, first, first_m, ops).to(torch.float32) * inv255
            mixed = torch.where((first >= 0).view(-1, 1, 1, 1), start, images.to(torch.float32))
        shape = (bsz, self.k)
        r = uniform((*shape, 2), generator, gdev).to(dev)
        p_i, p_m = (v.to(dev) for v in draw_image_ops(ops, self.severity, ctx, shape, generator, gdev))
        a, b = (v.to(dev) for v in get_ab(self.beta, shape, generator, gdev))
        pictures = self._pictures(x8, generator)
        add_index = AF.PIXMIX_MIXING_OPS.index("add")
        for j in range(self.k):
            rows = (
                torch.arange(bsz, device=dev)
                if self.strategy == "mask"
                else (rounds > j).nonzero().squeeze(1)
            )
            if rows.numel() == 0:
                continue
            with_op = r[rows, j, 0] < 0.5
            other = self._ops(x8[rows], torch.where(with_op, p_i[rows, j], -1), p_m[rows, j], ops)
            other = torch.where(with_op.view(-1, 1, 1, 1), other, pictures[rows]).to(torch.float32) * inv255
            use_add = (r[rows, j, 1] * len(AF.PIXMIX_MIXING_OPS)).to(torch.int64) == add_index
            current, aj, bj = mixed[rows], a[rows, j], b[rows, j]
            if self.strategy == "mask":
                step = torch.where(
                    use_add.view(-1, 1, 1, 1),
                    K.add_float(current, other, aj, bj),
                    K.multiply_float(current, other, aj, bj),
                )
                step = torch.where((rounds > j).view(-1, 1, 1, 1), step.clamp(0.0, 1.0), current)
            else:
                step = torch.empty_like(current)
                for chosen, kernel in ((use_add, K.add_float), (~use_add, K.multiply_float)):
                    sel = chosen.nonzero().squeeze(1)
                    if sel.numel():
                        step[sel] = kernel(current[sel], other[sel], aj[sel], bj[sel]).clamp(0.0, 1.0)
            mixed[rows] = step
        if images.dtype == torch.uint8:
            return torch.round(mixed * 255.0).clamp(0, 255).to(torch.uint8)
        return mixed.to(images.dtype)


# ----------------------------------------------------------------------------------------------
# AugMix (timm's AugMixAugment)
# ----------------------------------------------------------------------------------------------
#: timm's AugMix op list (``auto_augment._AUGMIX_TRANSFORMS``) in this project's op names: AugMix's
#: base list plus the four enhance ops.
TIMM_AUGMIX_OPS: tuple[str, ...] = (*AUGMIX_OPS, *AF.ENHANCE_OPS)


def _timm_level_rules(translate_pct: float) -> dict[str, Callable[[torch.Tensor, int, int], torch.Tensor]]:
    """timm's ``LEVEL_TO_ARG`` rules of the AugMix ops (level in [0, 10]) before the random sign;
    ``(level, height, width) -> magnitude`` in this project's units."""

    def zero(v: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return torch.zeros_like(v)

    def enhance(v: torch.Tensor, h: int, w: int) -> torch.Tensor:
        return float_param(v, 0.9)

    return {
        "autocontrast": zero,
        "equalize": zero,
        "posterize": lambda v, h, w: 4 - int_param(v, 4),
        "rotate": lambda v, h, w: float_param(v, 30),
        "solarize": lambda v, h, w: 256 - int_param(v, 256),
        "shear_x": lambda v, h, w: float_param(v, 0.3),
        "shear_y": lambda v, h, w: float_param(v, 0.3),
        "translate_x": lambda v, h, w: float_param(v, translate_pct) * w,
        "translate_y": lambda v, h, w: float_param(v, translate_pct) * h,
        **dict.fromkeys(AF.ENHANCE_OPS, enhance),
    }


_SIGNED_TIMM = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y", *AF.ENHANCE_OPS)


class BatchAugMix(_BatchMixing):
    """timm's AugMix (``augment_and_mix_transform``, the non-blended path) on a batch, random per sample.

    Args:
        magnitude: severity ``m`` (timm's ``augmix-m3``), 0..10. Default 3.
        width: chains, >= 1. Default 3.
        depth: ops per chain; -1 (default) draws 1..3 per chain.
        alpha: Dirichlet / Beta concentration, > 0. Default 1.
        magnitude_std: timm's ``mstd``: ``inf`` (default, timm's AugMix) draws each op's level
            uniformly on [0, magnitude], 0 uses ``magnitude``, other values a normal around it.
        translate_pct: translation range as a fraction of the side (timm: 0.45; its training
            transforms set 0.3).
        fill: uint8 RGB value for pixels geometric ops bring in (timm's ``img_mean``; default 128).
        strategy: ``"group"`` or ``"mask"``.

    Example:
        >>> import torch
        >>> out = BatchAugMix()(torch.zeros(2, 3, 32, 32, dtype=torch.uint8), torch.Generator().manual_seed(0))
        >>> out.shape, out.dtype
        (torch.Size([2, 3, 32, 32]), torch.uint8)
    """

    _repr_keys = ("magnitude", "width", "depth", "alpha", "magnitude_std", "translate_pct", "strategy")

    def __init__(
        self,
        magnitude: float = 3,
        width: int = 3,
        depth: int = -1,
        alpha: float = 1.0,
        magnitude_std: float = float("inf"),
        translate_pct: float = 0.45,
        fill: Sequence[int] = (128, 128, 128),
        strategy: Strategy = "group",
    ) -> None:
        super().__init__(strategy)
        _require(0 <= magnitude <= 10, "magnitude in [0, 10]", f"magnitude={magnitude}")
        _require(
            width >= 1 and (depth == -1 or depth >= 1),
            "width >= 1, depth -1 or >= 1",
            f"width={width}, depth={depth}",
        )
        _require(
            alpha > 0 and magnitude_std >= 0,
            "alpha > 0 and magnitude_std >= 0",
            f"alpha={alpha}, mstd={magnitude_std}",
        )
        self.magnitude, self.width, self.depth, self.alpha = magnitude, width, depth, alpha
        self.magnitude_std, self.translate_pct = magnitude_std, translate_pct
        self.fill = tuple(int(v) for v in fill)
        self._rules = _timm_level_rules(translate_pct)

    def _levels(
        self, shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device
    ) -> torch.Tensor:
        if math.isinf(self.magnitude_std):
            level = uniform(shape, generator, device) * self.magnitude
        elif self.magnitude_std > 0:
            noise = torch.randn(shape, generator=generator, device=device, dtype=torch.float64)
            level = self.magnitude + self.magnitude_std * noise
        else:
            level = torch.full(shape, float(self.magnitude), dtype=torch.float64, device=device)
        return level.clamp(0.0, 10.0)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """AugMix every image of ``images`` with its own draws; same dtype, shape, device."""
        _check(images, "BatchAugMix")
        x8 = _to_uint8(images)
        bsz, ch, h, w = x8.shape
        dev, gdev = x8.device, self._draw_device(images, generator)
        fill = torch.tensor([self.fill[c % len(self.fill)] for c in range(ch)], dtype=torch.uint8, device=dev)
        k, max_depth = self.width, (self.depth if self.depth > 0 else 3)
        weights = dirichlet(self.alpha, (bsz,), k, generator, gdev).to(torch.float32).to(dev)
        m = beta(self.alpha, self.alpha, (bsz,), generator, gdev).to(torch.float32).to(dev)
        u = uniform((bsz, k, max_depth + 2), generator, gdev)
        depth = (
            torch.full((bsz, k), max_depth, device=gdev)
            if self.depth > 0
            else 1 + (u[..., -1] * 3).to(torch.int64)
        )
        op = (u[..., :max_depth] * len(TIMM_AUGMIX_OPS)).to(torch.int64)
        level = self._levels((bsz, k, max_depth), generator, gdev)
        negate = uniform((bsz, k, max_depth), generator, gdev) > 0.5
        magnitude = torch.zeros_like(level)
        for i, name in enumerate(TIMM_AUGMIX_OPS):
            value = self._rules[name](level, h, w)
            if name in _SIGNED_TIMM:
                value = torch.where(negate, -value, value)
            if name in AF.ENHANCE_OPS:
                value = (1.0 + value).clamp_min(0.1)
            magnitude = torch.where(op == i, value, magnitude)
        depth, op, magnitude = (
            depth.to(dev).reshape(-1),
            op.to(dev).reshape(bsz * k, -1),
            magnitude.to(dev).reshape(bsz * k, -1),
        )
        y = x8.repeat_interleave(k, dim=0)
        for j in range(max_depth):
            index = torch.where(depth > j, op[:, j], -1)
            y = apply_ops(y, index, magnitude[:, j], TIMM_AUGMIX_OPS, self.strategy, fill)
        y = y.view(bsz, k, ch, h, w)
        mixed = torch.zeros(bsz, ch, h, w, dtype=torch.float32, device=dev)
        for i in range(k):
            mixed = mixed + weights[:, i].view(-1, 1, 1, 1) * y[:, i].to(torch.float32)
        mixed = mixed.clamp(0.0, 255.0).trunc()  # timm: np.clip then astype(uint8)
        mv = m.view(-1, 1, 1, 1)
        if images.dtype == torch.uint8:  # Image.blend: in1 + m * (in2 - in1), truncated
            base = x8.to(torch.float32)
            return (base + mv * (mixed - base)).trunc().clamp(0, 255).to(torch.uint8)
        base = images.to(torch.float32)
        return (base + mv * (mixed / 255.0 - base)).clamp(0.0, 1.0).to(images.dtype)


def _require(ok: bool, expected: str, got: str) -> None:
    if not ok:
        raise ValueError(f"batched mixing: expected {expected}, got {got}")
