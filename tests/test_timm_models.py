"""timm_ext.models: the papers' CIFAR architectures through timm's registry."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest
import timm
import torch
from timm.data import resolve_data_config

import timm_ext.models  # noqa: F401 - registers the models

#: name -> (parameters in millions with 10 classes, tolerance)
EXPECTED_PARAMS = {
    "wrn40_4": (8.95, 0.05),
    "wrn28_10": (36.48, 0.05),
    "resnext29_32x4d": (6.81, 0.05),
    "resnet18_cifar": (11.17, 0.05),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_create_model_by_name(name):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=100).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 100)
    assert torch.isfinite(out).all()
    assert model.num_classes == 100
    assert model.pretrained_cfg["architecture"] == name


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_parameter_counts_match_the_papers_architectures(name):
    model = timm.create_model(name, num_classes=10)
    millions = sum(p.numel() for p in model.parameters()) / 1e6
    expected, tol = EXPECTED_PARAMS[name]
    assert abs(millions - expected) < tol, f"{name}: {millions:.3f} M parameters"


def test_registry_lists_and_data_config():
    assert {"wrn40_4", "wrn28_10", "resnext29_32x4d", "resnet18_cifar"} <= set(timm.list_models())
    model = timm.create_model("wrn40_4", num_classes=10)
    cfg = resolve_data_config({}, model=model)
    assert cfg["input_size"] == (3, 32, 32)
    assert cfg["crop_pct"] == 1.0
    assert cfg["mean"] == (0.5, 0.5, 0.5)


def test_pretrained_true_is_a_clear_error():
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("resnext29_32x4d", pretrained=True)


def test_wrn_dropout_inside_blocks():
    model = timm.create_model("wrn40_4", num_classes=10, drop_rate=0.3)
    assert all(block.drop_rate == 0.3 for block in model.blocks)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    torch.manual_seed(0)
    a = model(x)
    b = model(x)
    assert not torch.allclose(a, b)  # dropout active in training
    model.eval()
    assert torch.allclose(model(x), model(x))


def test_timm_head_interface():
    model = timm.create_model("resnet18_cifar", num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, 512, 4, 4)
    assert model.forward_head(feats, pre_logits=True).shape == (2, 512)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.get_classifier().out_features == 7
    model.reset_classifier(0)
    assert model(x).shape == (2, 512)


def test_other_input_sizes_and_channels():
    model = timm.create_model("resnext29_32x4d", num_classes=5, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 48, 48)).shape == (1, 5)


def test_bad_depth_is_rejected():
    from timm_ext.models import CifarResNeXt, WideResNet

    with pytest.raises(ValueError, match="6n\\+4"):
        WideResNet(depth=30)
    with pytest.raises(ValueError, match="9n\\+2"):
        CifarResNeXt(depth=30)
