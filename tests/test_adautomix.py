"""AdAutoMix: the properties of the specification (docs/adautomix.md, section 8) on CPU.

Model: timm's own ``test_resnet`` at 32 px (feature tap ``layer3`` through ``forward_intermediates``);
data: a fixed batch of scikit-learn digits upscaled to 32 px RGB.
"""

from __future__ import annotations

import copy
import math
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import torch

from timm_ext.train.features import FeatureError, default_feature_index, tap_features
from timm_ext.train.methods.adautomix import AdAutoMixNet
from timm_ext.train.mixing import (
    MaskGenerator,
    draw_mix_plan,
    ema_update_,
    margin_fires,
    mask_entropy,
    mix_ce,
    mix_images,
    teacher_momentum,
)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small tensors: one intra-op thread is many times faster than two on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    import cv2
    from sklearn.datasets import load_digits

    digits = load_digits()
    gray = (digits.images[:12] / 16.0).astype(np.float32)
    x = torch.from_numpy(np.stack([cv2.resize(img, (32, 32)) for img in gray]))[:, None].repeat(1, 3, 1, 1)
    return (x - 0.5) / 0.5, torch.from_numpy(digits.target[:12]).long()


def _net(beta: float = 0.3, seed: int = 0) -> AdAutoMixNet:
    import timm

    torch.manual_seed(seed)
    model = timm.create_model("test_resnet", num_classes=10)
    net = AdAutoMixNet(model, 10, default_feature_index(model), beta=beta)
    return net.train()


@pytest.fixture(scope="module")
def net() -> AdAutoMixNet:
    return _net()


def _plan(batch_size: int, seed: int = 0, sources: int = 3):
    return draw_mix_plan(np.random.default_rng(seed), batch_size, sources=sources)


# --------------------------------------------------------------------------- generator and masks
def test_generator_size_and_initial_masks():
    """66,049 parameters at C = 256 (Q, K: 256 -> 128 with bias; V: 256 -> 1); masks start near 1/N."""
    gen = MaskGenerator(256)
    assert sum(p.numel() for p in gen.parameters()) == 66_049
    torch.manual_seed(0)
    masks = gen(torch.randn(3, 4, 256, 8, 8), torch.tensor([0.5, 0.3, 0.2]), (32, 32))
    assert masks.shape == (4, 3, 32, 32)
    torch.testing.assert_close(masks, torch.full_like(masks, 1 / 3), atol=0.02, rtol=0)


@pytest.mark.parametrize("sources", [2, 3])
def test_masks_are_convex_and_mixed_pixels_lie_between_their_sources(sources):
    torch.manual_seed(1)
    gen = MaskGenerator(16, lam_concat=True)
    for p in gen.parameters():  # larger weights than the init, so the masks are far from uniform
        torch.nn.init.normal_(p, 0.0, 1.0)
    feats, lam = torch.randn(sources, 5, 16, 4, 4), torch.full((sources,), 1 / sources)
    masks = gen(feats, lam, (16, 16))
    assert (masks >= 0).all()
    torch.testing.assert_close(masks.sum(1), torch.ones(5, 16, 16))
    assert masks.std() > 0.05  # not constant
    x = torch.rand(5, 3, 16, 16)
    index = torch.stack([torch.randperm(5) for _ in range(sources)])
    mixed = mix_images(x, index, masks)
    stacked = torch.stack([x[i] for i in index])
    assert (mixed >= stacked.min(0).values - 1e-6).all() and (mixed <= stacked.max(0).values + 1e-6).all()


def test_mask_entropy_bounds():
    one_hot = torch.zeros(2, 3, 4, 4)
    one_hot[:, 0] = 1
    assert float(mask_entropy(one_hot)) == pytest.approx(0.0, abs=1e-9)
    assert float(mask_entropy(torch.full((2, 3, 4, 4), 1 / 3))) == pytest.approx(math.log(3), rel=1e-6)


# --------------------------------------------------------------------------- gradients
def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    return [p.grad for p in module.parameters()]


def test_gradient_isolation(net, batch):
    """L_q gives G and the teacher no gradient; L_g gives the classifier (q, hm_q) none."""
    x, y = batch
    net = copy.deepcopy(net)
    loss_q, loss_g, _ = net.losses(x, y, _plan(len(y)), adversarial=True)
    loss_q.backward(retain_graph=True)
    assert all(g is None for g in _grads(net.generator))
    assert all(g is None for g in [*_grads(net.teacher), *_grads(net.teacher_mix)])
    assert any(g is not None and g.abs().sum() > 0 for g in _grads(net.online))
    net.zero_grad(set_to_none=True)
    loss_g.backward()
    assert all(g is None for g in [*_grads(net.online), *_grads(net.online_mix)])
    assert all(g is None for g in [*_grads(net.teacher), *_grads(net.teacher_mix)])
    assert all(g is not None for g in _grads(net.generator))


def _generator_grads(net: AdAutoMixNet, batch, adversarial: bool) -> list[torch.Tensor]:
    x, y = batch
    net = copy.deepcopy(net)
    _, loss_g, _ = net.losses(x, y, _plan(len(y)), adversarial)
    return list(torch.autograd.grad(loss_g, list(net.generator.parameters())))


def test_beta_one_adversarial_gradient_is_minus_the_cooperative(batch):
    net = _net(beta=1.0)
    adversarial = _generator_grads(net, batch, True)
    cooperative = _generator_grads(net, batch, False)
    assert any(g.abs().max() > 0 for g in cooperative)
    for a, c in zip(adversarial, cooperative):
        torch.testing.assert_close(a, -c, rtol=1e-5, atol=1e-12)


def test_cooperative_loss_is_the_teachers_mixed_cross_entropy(net, batch):
    """With the adversarial step off, L_g = mixCE of the teacher on the generator's mix (AutoMix)."""
    x, y = batch
    net = copy.deepcopy(net)
    plan = _plan(len(y))
    _, loss_g, stats = net.losses(x, y, plan, adversarial=False)
    masks = net.generator(
        tap_features(net.teacher, x, net.feature_index)[1][plan.idx_g], plan.lam_g, (32, 32)
    )
    z = net.teacher_mix(
        net.teacher.forward_head(
            net.teacher.forward_features(mix_images(x, plan.idx_g, masks)), pre_logits=True
        )
    )
    torch.testing.assert_close(loss_g, mix_ce(z, y, plan.idx_g, plan.lam_g))
    assert float(stats[2]) == pytest.approx(float(loss_g.detach()))


@pytest.mark.parametrize(("adversarial", "direction"), [(True, 1.0), (False, -1.0)])
def test_one_generator_step_moves_the_teachers_mixed_loss(batch, adversarial, direction):
    """beta = 1: an adversarial step on G raises the teacher's mixCE on a fixed batch; a cooperative
    step lowers it (one plain SGD step on G alone, lr 1)."""
    x, y = batch
    net = _net(beta=1.0)
    plan = _plan(len(y))
    before = float(net.losses(x, y, plan, adversarial)[2][2])
    opt = torch.optim.SGD(net.generator.parameters(), lr=1.0)
    _, loss_g, _ = net.losses(x, y, plan, adversarial)
    loss_g.backward()
    opt.step()
    after = float(net.losses(x, y, plan, adversarial)[2][2])
    assert (after - before) * direction > 1e-4, (before, after)


# --------------------------------------------------------------------------- rules and schedules
def test_margin_rule_of_the_original_repository():
    assert margin_fires(0.03, 0.03) and margin_fires(0.0, 0.03) and margin_fires(0.9701, 0.03)
    assert not margin_fires(0.0301, 0.03) and not margin_fires(0.97, 0.03) and not margin_fires(0.5, 0.03)
    # how often it fires on the N = 3 draws (spec: 3.1%; OpenMixup's inverted test: 99.98%)
    rng = np.random.default_rng(0)
    fired = np.mean([margin_fires(float(draw_mix_plan(rng, 4).lam_c[0]), 0.03) for _ in range(8_000)])
    assert fired == pytest.approx(0.031, abs=0.008)


def test_draws_follow_the_spec():
    plan3 = _plan(6, seed=3)
    assert float(plan3.lam_g.sum()) == pytest.approx(1.0) and torch.equal(plan3.lam_g, plan3.lam_c)
    assert all(sorted(row.tolist()) == list(range(6)) for row in (*plan3.idx_g, *plan3.idx_c))
    plan2 = _plan(6, seed=3, sources=2)
    assert torch.equal(plan2.idx_g[0], torch.arange(6)) and torch.equal(plan2.idx_c[0], torch.arange(6))
    assert float(plan2.lam_g.sum()) == pytest.approx(1.0) and float(plan2.lam_c.sum()) == pytest.approx(1.0)
    assert float(plan2.lam_g[0]) != pytest.approx(float(plan2.lam_c[0]))  # two independent ratios
    again = _plan(6, seed=3)
    assert torch.equal(again.idx_g, plan3.idx_g) and torch.equal(again.lam_g, plan3.lam_g)


def test_ema_update_is_parameters_only():
    torch.manual_seed(0)
    student, teacher = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        student.weight.fill_(2.0)
        teacher.weight.fill_(1.0)
        student.running_mean.fill_(5.0)
    before = teacher.running_mean.clone()
    ema_update_(teacher.parameters(), student.parameters(), 0.9)
    torch.testing.assert_close(teacher.weight, torch.full((3,), 0.9 * 1.0 + 0.1 * 2.0))
    assert torch.equal(teacher.running_mean, before)  # buffers come only from the teacher's own forwards


def test_teacher_momentum_schedule():
    total, end = 1000, 1 - 1e-6
    assert teacher_momentum(0, total) == 0.999
    assert teacher_momentum(99, total) == 0.999  # t < 0.1 T
    assert teacher_momentum(100, total) == pytest.approx(
        end - (end - 0.999) * (1 + math.cos(0.1 * math.pi)) / 2
    )
    assert teacher_momentum(500, total) == pytest.approx(end - (end - 0.999) / 2)
    assert teacher_momentum(999, total) == pytest.approx(end, abs=1e-7)
    assert teacher_momentum(200, 1000, end=0.99996, start=0.25) == 0.999


def test_step_parity_and_automix():
    import timm

    from timm_ext.train import TrainConfig
    from timm_ext.train.methods import create_method

    model = timm.create_model("test_resnet", num_classes=10)
    ada = create_method(TrainConfig(aug="adautomix", model="test_resnet"), model, 10)
    assert [ada.is_adversarial(t) for t in range(4)] == [True, False, True, False]
    auto = create_method(TrainConfig(aug="automix", model="test_resnet"), copy.deepcopy(model), 10)
    assert not any(auto.is_adversarial(t) for t in range(4))


# --------------------------------------------------------------------------- feature taps
@pytest.mark.parametrize(
    ("name", "index", "channels"), [("resnet18", 3, 256), ("test_convnext", 2, 48), ("test_vit", 2, 64)]
)
def test_feature_tap_of_timm_models(name, index, channels):
    import timm

    model = timm.create_model(name, num_classes=5).eval()
    assert default_feature_index(model) == index
    _, feats = tap_features(model, torch.randn(2, 3, 32, 32), index)
    assert feats.ndim == 4 and feats.shape[:2] == (2, channels)
    net = AdAutoMixNet(model, 5, index)
    assert net.generator.query[0].in_channels == channels


def test_model_without_forward_intermediates_is_a_clear_error():
    with pytest.raises(FeatureError, match=r"has no forward_intermediates\(\)"):
        default_feature_index(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3)))


def test_parameter_groups_and_the_generators_own_floor():
    """{q + hm_q} and {G, its lr}; G's lr follows the main schedule's position onto [gen_min_lr, gen_lr]."""
    import timm

    from timm_ext.train import TrainConfig
    from timm_ext.train.methods import create_method

    cfg = TrainConfig(
        aug="adautomix",
        model="test_resnet",
        lr=0.1,
        min_lr=0.0,
        adautomix_gen_lr=0.2,
        adautomix_gen_min_lr=1e-3,
    )
    method = create_method(cfg, timm.create_model("test_resnet", num_classes=10), 10)
    groups = method.param_groups()
    net = method.net
    assert {id(p) for p in groups[0]["params"]} == {
        id(p) for p in [*net.online.parameters(), *net.online_mix.parameters()]
    }
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in net.generator.parameters()}
    assert groups[1]["lr"] == 0.2
    opt = torch.optim.SGD(groups, lr=0.1, weight_decay=1e-4)
    for g in opt.param_groups:
        g["initial_lr"] = g["lr"]
    opt.param_groups[0]["lr"] = 0.05  # halfway down a schedule to 0
    method.adjust_lr(opt)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-3 + (0.2 - 1e-3) * 0.5)
    opt.param_groups[0]["lr"] = 0.0
    method.adjust_lr(opt)
    assert opt.param_groups[1]["lr"] == pytest.approx(1e-3)
