"""AdAutoMix (Qin et al., ICLR 2024): adversarial automatic mixup with an EMA teacher and a mask generator.

One module (:class:`AdAutoMixNet`) holds the online classifier q with its mix head, the generator G
and the frozen EMA teacher k with its mix head, and runs the whole step in ``forward`` (so DDP wraps
one module and every trainable parameter gets a gradient each step). The step (spec section 1):

1. draw lambda and the source indices from ``default_rng([seed, rank, step])``;
2. k's feature tap on the clean batch (no grad, train mode);
3. masks ``M_g = G(f[g])`` (grad to G) and ``M_c = G(f[c])`` detached, or constant lambda when the
   margin rule fires; ``x_g``, ``x_c`` the mixed images;
4. classifier loss ``mixCE(hm_q(q(x_c))) + (1 - r) CE(h1_q(q(x))) + r mixCE(hm_q(q(mixup)))``
   (N = 2: ``mixCE + CE``), three separate q forwards;
5. generator loss ``mixCE(hm_k(k(x_g)))``; on adversarial (even) steps ``-beta mixCE + (1 - beta) cos``
   with ``cos`` the lambda-weighted cosine between the mix's and the sources' teacher logits;
6. one backward of the sum; after the optimizer step, the teacher's parameters follow q by EMA.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..features import default_feature_index, is_vit, tap_features
from ..mixing import (
    MaskGenerator,
    MixPlan,
    draw_mix_plan,
    ema_update_,
    margin_fires,
    mask_entropy,
    mix_ce,
    mix_images,
    source_cosine,
    teacher_momentum,
)
from .base import StepOutput, TrainMethod

__all__ = ["AdAutoMix", "AdAutoMixNet"]


def _pooled(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(x), pre_logits=True)


def _mix_head(model: nn.Module, num_classes: int) -> nn.Linear:
    width = int(getattr(model, "head_hidden_size", None) or model.num_features)
    head = nn.Linear(width, num_classes)
    nn.init.normal_(head.weight, 0.0, 0.01)
    nn.init.zeros_(head.bias)
    return head.to(next(model.parameters()).device)


class AdAutoMixNet(nn.Module):
    """q + hm_q + G + frozen k + hm_k; ``forward(x, y, plan, adversarial)`` is one training step's loss.

    Args:
        model: the online timm classifier q (its ``get_classifier()`` is h1).
        num_classes: K.
        feature_index: ``forward_intermediates`` index of the teacher's feature tap.
        beta: the step's hyperparameters (see the CLI's ``--adautomix-*``), as are the next three.
        cos_sign: see ``beta``.
        margin: see ``beta``.
        mix_weight: see ``beta``.
        lam_concat: the generator's options, as are the next two.
        gen_norm: see ``lam_concat``.
        upsample: see ``lam_concat``.
        reuse_clean: take the sources' teacher logits from k's clean pass.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int,
        feature_index: int,
        beta: float = 0.3,
        cos_sign: float = 1.0,
        margin: float = 0.03,
        mix_weight: float = 0.5,
        lam_concat: bool = False,
        gen_norm: bool = False,
        upsample: str = "bilinear",
        reuse_clean: bool = False,
    ) -> None:
        super().__init__()
        self.online = model
        self.online_mix = _mix_head(model, num_classes)
        self.teacher = copy.deepcopy(model)
        self.teacher_mix = copy.deepcopy(self.online_mix)
        for p in (*self.teacher.parameters(), *self.teacher_mix.parameters()):
            p.requires_grad_(False)
        self.feature_index = int(feature_index)
        self.beta, self.cos_sign, self.margin, self.mix_weight = beta, cos_sign, margin, mix_weight
        self.reuse_clean = reuse_clean
        self.generator = MaskGenerator(self._feature_channels(), lam_concat, gen_norm, upsample).to(
            next(model.parameters()).device
        )

    def _feature_channels(self) -> int:
        info = getattr(self.teacher, "feature_info", None)
        if info and not is_vit(self.teacher) and self.feature_index < len(info):
            return int(info[self.feature_index]["num_chs"])
        return int(getattr(self.teacher, "embed_dim", 0) or getattr(self.teacher, "num_features", 0))

    def forward(
        self, x: torch.Tensor, y: torch.Tensor, plan: MixPlan, adversarial: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(L_q + L_g, stats)``; stats = [mask entropy (nats), masks' spatial std, teacher mixCE]."""
        loss_q, loss_g, stats = self.losses(x, y, plan, adversarial)
        return loss_q + loss_g, stats

    def losses(
        self, x: torch.Tensor, y: torch.Tensor, plan: MixPlan, adversarial: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(L_q, L_g, stats)`` of one step: L_q reaches only q and hm_q, L_g only G (through k)."""
        size = (x.shape[-2], x.shape[-1])
        with torch.no_grad():
            final, feats = tap_features(self.teacher, x, self.feature_index)
            clean = (
                self.teacher_mix(self.teacher.forward_head(final, pre_logits=True))
                if self.reuse_clean
                else None
            )
        masks_g = self.generator(feats[plan.idx_g], plan.lam_g, size)
        loss_q = self._classifier_loss(x, y, feats, plan, size)
        z = self.teacher_mix(_pooled(self.teacher, mix_images(x, plan.idx_g, masks_g)))
        mixce_k = mix_ce(z, y, plan.idx_g, plan.lam_g)
        loss_g = mixce_k
        if adversarial:
            with torch.no_grad():
                if clean is not None:
                    sources = clean[plan.idx_g]
                else:
                    sources = torch.stack([self.teacher_mix(_pooled(self.teacher, x[i])) for i in plan.idx_g])
            cos = source_cosine(z, sources, plan.lam_g)
            loss_g = -self.beta * mixce_k + (1.0 - self.beta) * self.cos_sign * cos
        with torch.no_grad():
            m = masks_g.detach()
            stats = torch.stack([mask_entropy(m), m.flatten(2).std(2).mean(), mixce_k.detach().float()])
        return loss_q, loss_g, stats

    def _classifier_loss(
        self, x: torch.Tensor, y: torch.Tensor, feats: torch.Tensor, plan: MixPlan, size: tuple[int, int]
    ) -> torch.Tensor:
        lam_c = plan.lam_c
        constant = lam_c.view(1, -1, 1, 1).to(x.dtype)
        if margin_fires(float(lam_c[0]), self.margin):
            masks_c = constant
        else:
            with torch.no_grad():
                masks_c = self.generator(feats[plan.idx_c], lam_c, size)
        x_c = mix_images(x, plan.idx_c, masks_c)
        loss = mix_ce(self.online_mix(_pooled(self.online, x_c)), y, plan.idx_c, lam_c)
        ce = F.cross_entropy(self.online.get_classifier()(_pooled(self.online, x)), y)
        if plan.idx_c.shape[0] == 2:
            return loss + ce
        x_mixup = mix_images(x, plan.idx_c, constant)
        mixup = mix_ce(self.online_mix(_pooled(self.online, x_mixup)), y, plan.idx_c, lam_c)
        return loss + (1.0 - self.mix_weight) * ce + self.mix_weight * mixup

    @torch.no_grad()
    def update_teacher(self, momentum: float) -> None:
        """EMA of q's and hm_q's parameters into k and hm_k (buffers untouched)."""
        ema_update_(
            [*self.teacher.parameters(), *self.teacher_mix.parameters()],
            [*self.online.parameters(), *self.online_mix.parameters()],
            momentum,
        )


class AdAutoMix(TrainMethod):
    """``--aug adautomix``: adversarial steps on even global steps, cooperative (AutoMix) on odd ones."""

    name = "adautomix"
    adversarial = True
    step_stats = ("mask_entropy", "mask_spatial_std", "teacher_mix_loss")
    csv_columns = (*step_stats, "online_val_top1")

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        cfg = self.cfg
        index = cfg.adautomix_feature_index
        upsample = cfg.adautomix_upsample
        if upsample == "auto":
            upsample = "nearest" if is_vit(self.model) else "bilinear"
        self.net = AdAutoMixNet(
            self.model,
            self.num_classes,
            default_feature_index(self.model) if index is None else index,
            beta=cfg.adautomix_beta if self.adversarial else 0.0,
            cos_sign=cfg.adautomix_cos_sign,
            margin=cfg.adautomix_margin,
            mix_weight=cfg.adautomix_mix_weight,
            lam_concat=cfg.adautomix_lam_concat,
            gen_norm=cfg.adautomix_gen_norm,
            upsample=upsample,
            reuse_clean=cfg.adautomix_reuse_clean,
        )

    @property
    def network(self) -> nn.Module:
        return self.net

    def param_groups(self) -> list[dict[str, Any]]:
        """{q + hm_q} and {G, lr = --adautomix-gen-lr}: weight decay on every parameter (the configs')."""
        net = self.net
        groups: list[dict[str, Any]] = [
            {"params": [*net.online.parameters(), *net.online_mix.parameters()]},
            {"params": list(net.generator.parameters())},
        ]
        if self.cfg.adautomix_gen_lr is not None:
            groups[1]["lr"] = self.cfg.adautomix_gen_lr
        return groups

    def plan(self, batch: int, num_updates: int) -> MixPlan:
        """The draws of global step ``num_updates`` on this rank (a function of seed, rank and step)."""
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, self.rank, num_updates])
        return draw_mix_plan(
            rng, batch, cfg.adautomix_sources, cfg.adautomix_alpha, cfg.adautomix_random_sources
        )

    def is_adversarial(self, num_updates: int) -> bool:
        """Step parity: adversarial when the 0-based global step is even (the first step is)."""
        return self.adversarial and num_updates % 2 == 0

    def step(self, net: nn.Module, x: torch.Tensor, y: torch.Tensor, num_updates: int) -> StepOutput:
        plan = self.plan(len(y), num_updates).to(x.device)
        loss, stats = net(x, y, plan, self.is_adversarial(num_updates))
        return StepOutput(loss, None, dict(zip(self.step_stats, stats)))

    def after_update(self, num_updates: int, total_updates: int) -> None:
        cfg = self.cfg
        m = teacher_momentum(
            num_updates - 1, total_updates, cfg.adautomix_momentum, cfg.adautomix_momentum_end,
            cfg.adautomix_momentum_start,
        )  # fmt: skip
        self.net.update_teacher(m)

    def adjust_lr(self, optimizer: torch.optim.Optimizer) -> None:
        """Give G its own floor: G's lr follows the main group's schedule position, mapped onto
        [--adautomix-gen-min-lr, G's base lr]."""
        gen_min = self.cfg.adautomix_gen_min_lr
        if gen_min is None or len(optimizer.param_groups) < 2:
            return
        main, gen = optimizer.param_groups[0], optimizer.param_groups[1]
        base, low = float(main.get("initial_lr", main["lr"])), float(self.cfg.min_lr)
        progress = (float(main["lr"]) - low) / (base - low) if base != low else 1.0
        gen_base = float(gen.get("initial_lr", gen["lr"]))
        gen["lr"] = gen_min + (gen_base - gen_min) * progress

    def eval_model(self) -> nn.Module:
        return self.net.teacher

    def online_model(self) -> nn.Module:
        return self.net.online

    def state_dict(self) -> dict[str, Any]:
        net = self.net
        return {
            "online_mix": net.online_mix.state_dict(),
            "generator": net.generator.state_dict(),
            "teacher": net.teacher.state_dict(),
            "teacher_mix": net.teacher_mix.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        net = self.net
        for name in ("online_mix", "generator", "teacher", "teacher_mix"):
            getattr(net, name).load_state_dict(state[name])
