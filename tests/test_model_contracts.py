"""timm's model contracts on every architecture timm_ext registers.

The contracts of timm's own ``tests/test_models.py`` (forward, backward, default cfg and head
interface, features_only, forward_intermediates, TorchScript, torch.fx forward and backward, fx then
TorchScript), written here for our registry, plus the feature contract of issue 19: ``features_only``
through timm's hook and fx extractors returns exactly ``forward_intermediates``. Every registered name
is covered (a new one without a small configuration below fails ``test_every_model_has_a_small_size``);
the models are built small (fewer blocks, narrower) so the whole file runs in seconds on 2 cores.
"""

import math
import warnings

import pytest
import timm
import torch
from timm.models import model_entrypoint

from timm_ext import models

#: per family module: constructor arguments that keep the architecture and make it small
SMALL_BY_FAMILY = {
    "wide_resnet": {"depth": 10, "widen_factor": 1},
    "resnext": {"depth": 11, "cardinality": 2, "base_width": 4},
    "densenet": {"depth": 7, "growth_rate": 4},
    "resnet": {"layers": (1, 1, 1, 1)},
    "preact_resnet": {"layers": (1, 1, 1, 1)},
    "dm_wide_resnet": {"depth": 10, "width": 1},
}
NAMES = models.model_names()
X = (3, 32, 32)


def small(name: str) -> dict:
    return dict(SMALL_BY_FAMILY[model_entrypoint(name).__module__.rsplit(".", 1)[1]])


def create(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, **small(name), **kwargs)


def _script(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in torch 2.x
        # torch's own GraphModule.__init__ annotates an empty dict: not about our models
        warnings.filterwarnings("ignore", "The TorchScript type system", UserWarning)
        return torch.jit.script(module)


def test_every_model_has_a_small_size():
    assert len(NAMES) >= 11
    for name in NAMES:
        assert small(name), name
    assert {"preact_resnet18_cifar", "dm_wrn70_16", "resnext29_4x32d", "densenet40_k12"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_forward(name):
    model = create(name).eval()
    with torch.no_grad():
        out = model(torch.randn(1, *X))
    assert out.shape == (1, model.num_classes) and not out.isnan().any()


@pytest.mark.parametrize("name", NAMES)
def test_backward_reaches_every_parameter(name):
    model = create(name, num_classes=42).train()
    out = model(torch.randn(2, *X))
    assert out.shape == (2, 42)
    out.mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", NAMES)
def test_default_cfg_and_head_interface(name):
    model = create(name).eval()
    cfg = model.pretrained_cfg
    assert cfg["architecture"] == name and tuple(cfg["input_size"]) == X
    assert model.num_classes == cfg["num_classes"] and model.num_features > 0 and model.head_hidden_size > 0
    sd = model.state_dict()
    assert cfg["first_conv"] + ".weight" in sd and cfg["classifier"] + ".weight" in sd
    assert model.get_classifier() is model.get_submodule(cfg["classifier"])
    x = torch.randn(1, *X)
    with torch.no_grad():
        feats = model.forward_features(x)
        assert feats.shape[1] == model.num_features and tuple(feats.shape[-2:]) == cfg["pool_size"]
        pre = model.forward_head(feats, pre_logits=True)
        assert pre.shape == (1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model.num_classes == 0 and model(x).shape == pre.shape
        model.reset_classifier(0, "")
        assert model(x).shape == feats.shape
        bare = create(name, num_classes=0, global_pool="").eval()
        assert bare(x).shape == feats.shape


@pytest.mark.parametrize("name", NAMES)
def test_forward_intermediates(name):
    model = create(name).eval()
    x = torch.randn(1, *X)
    with torch.no_grad():
        final, maps = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x))
    assert len(maps) == len(model.feature_info) >= 4
    for info, m in zip(model.feature_info, maps):
        assert m.shape[1] == info["num_chs"] and m.shape[-1] == math.ceil(X[-1] / info["reduction"])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("feature_cls", ["getter", "hook", "fx"])
def test_features_only_equals_forward_intermediates(name, feature_cls):
    """feature_info names the module whose output each level is, so timm's hook and fx extractors
    return exactly the maps of forward_intermediates (post-activation, not a BN's output)."""
    x = torch.randn(2, *X)
    with torch.no_grad():
        expected = create(name).eval().forward_intermediates(x, intermediates_only=True)
        net = create(name, features_only=True, feature_cls=feature_cls).eval()
        out = net(x)
    out = list(out.values()) if isinstance(out, dict) else out
    assert net.feature_info.channels() == [m.shape[1] for m in expected]
    assert len(out) == len(expected)
    for got, want in zip(out, expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    picked = create(name, features_only=True, feature_cls=feature_cls, out_indices=(1, 2)).eval()
    with torch.no_grad():
        two = picked(x)
    two = list(two.values()) if isinstance(two, dict) else two
    torch.testing.assert_close(two, expected[1:3], rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_torchscript(name):
    model = create(name).eval()
    x = torch.randn(1, *X)
    with torch.no_grad():
        torch.testing.assert_close(_script(model)(x), model(x))


@pytest.mark.parametrize("name", NAMES)
def test_fx_forward_backward_and_fx_then_torchscript(name):
    """torch.fx traces the model; the graph computes the same outputs and gradients, and the traced
    graph scripts (no ``from __future__ import annotations`` in the model modules)."""
    model = create(name, num_classes=7)
    traced = torch.fx.symbolic_trace(model)
    x = torch.randn(2, *X)
    model.eval(), traced.eval()
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(traced(x), expected)
        torch.testing.assert_close(_script(traced)(x), expected)
    traced.train()
    traced(x).mean().backward()
    assert [n for n, p in traced.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_filter_passes_our_layout_through(name):
    """A state_dict already in the model's names (or DataParallel-wrapped) loads strictly after the
    family's checkpoint_filter_fn, unchanged."""
    model = create(name)
    sd = model.state_dict()
    filter_fn = models.checkpoint_filter(name)
    assert filter_fn is not None
    for given in (sd, {f"module.{k}": v for k, v in sd.items()}):
        out = filter_fn(given, model)
        assert list(out) == list(sd) and all(out[k] is sd[k] for k in sd)
    assert models.checkpoint_filter("resnet50") is None  # timm's own models are not ours to filter
