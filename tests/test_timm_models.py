"""timm_ext.models: the papers' CIFAR architectures, in the reference layout, through timm's registry.

The conformance checks mirror timm's own tests/test_models.py (forward, backward, default cfgs,
TorchScript, features_only, forward_intermediates) plus torch.fx tracing; the fidelity checks compare
with the independent reference forwards of tests/reference_nets.py on the same random weights.
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import warnings

import pytest
import timm
import torch
from reference_nets import REFERENCE_NETS, randomize, ref_wrn, write_reference_checkpoint
from timm.data import resolve_data_config

import timm_ext.models  # noqa: F401 - registers the models

#: name -> (trainable values at 10 classes, state_dict tensors); the tensor counts and values of
#: WRN-40-4 (at 100 classes: 8,972,340), ResNeXt-29 and DenseNet-40 are those of docs/checkpoints.md.
EXPECTED = {
    "wrn40_2": (2_243_546, 227),
    "wrn40_4": (8_949_210, 227),
    "wrn28_10": (36_479_194, 155),
    "wrn34_10": (46_160_474, 191),
    "resnext29_4x32d": (6_807_882, 188),
    "resnext29_32x4d": (6_807_882, 188),
    "densenet40_k12": (1_059_298, 236),
    "resnet18_cifar": (11_173_962, 122),
}
#: the models small enough for the per-model conformance battery on 2 CPU cores
SMALL = ["wrn40_2", "resnext29_4x32d", "densenet40_k12", "resnet18_cifar"]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_create_model_by_name_and_size(name):
    model = timm.create_model(name, num_classes=10)
    values, tensors = EXPECTED[name]
    assert sum(p.numel() for p in model.parameters()) == values
    assert len(model.state_dict()) == tensors
    assert model.pretrained_cfg["architecture"] == name
    assert model.num_classes == 10


def test_wrn40_4_at_100_classes_matches_the_reference_count():
    model = timm.create_model("wrn40_4", num_classes=100)
    assert sum(p.numel() for p in model.parameters()) == 8_972_340


def test_registry_lists_and_data_config():
    assert set(EXPECTED) | {"wrn_cifar"} <= set(timm.list_models())
    model = timm.create_model("wrn40_4", num_classes=10)
    cfg = resolve_data_config({}, model=model)
    assert cfg["input_size"] == (3, 32, 32)
    assert cfg["crop_pct"] == 1.0
    assert cfg["mean"] == (0.5, 0.5, 0.5) and cfg["std"] == (0.5, 0.5, 0.5)
    over = timm.create_model("wrn40_4", pretrained_cfg_overlay={"mean": (0.4, 0.4, 0.4)})
    assert resolve_data_config({}, model=over)["mean"] == (0.4, 0.4, 0.4)


@pytest.mark.parametrize("kind", sorted(REFERENCE_NETS))
def test_outputs_equal_the_reference_forward_on_the_same_weights(kind):
    name, reference = REFERENCE_NETS[kind]
    model = timm.create_model(name, num_classes=100).eval()
    sd = randomize(model, seed=1)
    x = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(sd, x), rtol=1e-4, atol=1e-4)


def test_any_wrn_depth_and_width():
    model = timm.create_model("wrn_cifar", depth=16, widen_factor=3, num_classes=7).eval()
    assert len(model.block1.layer) == 2 and model.block1.layer[0].conv1.out_channels == 48
    sd = randomize(model, seed=2)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref_wrn(sd, x), rtol=1e-4, atol=1e-4)


def test_reference_checkpoint_loads_as_pretrained_file(tmp_path):
    src = timm.create_model("densenet40_k12", num_classes=10).eval()
    randomize(src, seed=3)
    path = write_reference_checkpoint(tmp_path / "checkpoint.pth.tar", src, "densenet", "cifar10")
    net = timm.create_model(
        "densenet40_k12", pretrained=True, pretrained_cfg_overlay={"file": str(path)}
    ).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), src(x))


def test_weights_move_to_the_reference_layout_unchanged():
    """A state_dict of ours is a reference state_dict: same names, shapes and tensor count."""
    ours = timm.create_model("resnet18_cifar", num_classes=100).state_dict()
    assert "conv2_x.0.residual_function.3.weight" in ours and "conv3_x.0.shortcut.1.running_var" in ours
    wrn = timm.create_model("wrn40_4", num_classes=100).state_dict()
    assert wrn["block2.layer.0.conv_shortcut.weight"].shape == (128, 64, 1, 1)
    assert "block2.layer.1.conv_shortcut.weight" not in wrn
    assert wrn["conv1.weight"].shape == (16, 3, 3, 3) and wrn["fc.weight"].shape == (100, 256)


def test_pretrained_true_without_a_file_is_a_clear_error():
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("resnext29_4x32d", pretrained=True)


def test_wrn_dropout_inside_blocks():
    model = timm.create_model("wrn40_2", num_classes=10, drop_rate=0.3)
    blocks = [b for g in (model.block1, model.block2, model.block3) for b in g.layer]
    assert all(block.drop_rate == 0.3 for block in blocks)
    x = torch.randn(2, 3, 32, 32)
    model.train()
    torch.manual_seed(0)
    assert not torch.allclose(model(x), model(x))  # dropout active in training
    model.eval()
    assert torch.allclose(model(x), model(x))


@pytest.mark.parametrize("name", SMALL)
def test_timm_head_interface(name):
    model = timm.create_model(name, num_classes=10).eval()
    x = torch.randn(2, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape[1] == model.num_features == model.head_hidden_size
    assert tuple(feats.shape[-2:]) == model.pretrained_cfg["pool_size"]
    assert model.forward_head(feats, pre_logits=True).shape == (2, model.num_features)
    classifier = model.pretrained_cfg["classifier"]
    assert model.get_classifier() is getattr(model, classifier)
    model.reset_classifier(7)
    assert model(x).shape == (2, 7) and model.get_classifier().out_features == 7
    model.reset_classifier(0)
    assert model(x).shape == (2, model.num_features)
    model.reset_classifier(0, "")
    assert model(x).shape == feats.shape


@pytest.mark.parametrize("name", SMALL)
def test_timm_default_cfg_names_exist(name):
    model = timm.create_model(name)
    sd = model.state_dict()
    cfg = model.pretrained_cfg
    assert cfg["first_conv"] + ".weight" in sd and cfg["classifier"] + ".weight" in sd


@pytest.mark.parametrize("name", SMALL)
def test_backward_reaches_every_parameter(name):
    model = timm.create_model(name, num_classes=42).train()
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 42)
    out.mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


@pytest.mark.parametrize("name", SMALL)
def test_torchscript_and_fx(name):
    model = timm.create_model(name).eval()
    x = torch.randn(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated in torch 2.x
        scripted = torch.jit.script(model)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(scripted(x), expected)
        torch.testing.assert_close(traced(x), expected)


def test_torchscript_wrn40_4():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(timm.create_model("wrn40_4").eval())
    assert scripted(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("name", SMALL)
def test_features_only_returns_the_feature_maps(name):
    model = timm.create_model(name, features_only=True).eval()
    channels, reductions = model.feature_info.channels(), model.feature_info.reduction()
    assert len(channels) >= 4
    outs = model(torch.randn(1, 3, 32, 32))
    assert [o.shape[1] for o in outs] == channels
    assert [32 // o.shape[-1] for o in outs] == reductions
    picked = timm.create_model(name, features_only=True, out_indices=(2,)).eval()
    assert [o.shape[1] for o in picked(torch.randn(1, 3, 32, 32))] == [channels[2]]


#: adautomix.md section 6: the generator's tap is the second-to-last stage.
TAPS = {
    "resnet18_cifar": (3, (256, 8, 8)),
    "resnext29_4x32d": (2, (512, 16, 16)),
    "wrn40_4": (2, (128, 16, 16)),
    "wrn28_10": (2, (320, 16, 16)),
}


@pytest.mark.parametrize("name", sorted(TAPS))
def test_forward_intermediates_taps(name):
    model = timm.create_model(name, num_classes=10).eval()
    x = torch.randn(1, 3, 32, 32)
    index, shape = TAPS[name]
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, indices=[index])
        assert tuple(inter[0].shape[1:]) == shape
        torch.testing.assert_close(final, model.forward_features(x))
        everything = model.forward_intermediates(x, intermediates_only=True)
        assert [t.shape[1] for t in everything] == [f["num_chs"] for f in model.feature_info]
        torch.testing.assert_close(everything[index], inter[0])
        last_two = model.forward_intermediates(x, indices=2, intermediates_only=True)
        torch.testing.assert_close(last_two[0], everything[-2])
        early, _ = model.forward_intermediates(x, indices=[1], stop_early=True)
        torch.testing.assert_close(early, everything[1])


def test_other_input_sizes_and_channels():
    model = timm.create_model("resnext29_4x32d", num_classes=5, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 48, 48)).shape == (1, 5)


def test_bad_depth_is_rejected():
    from timm_ext.models import CifarDenseNet, CifarResNeXt, WideResNet

    with pytest.raises(ValueError, match="6n\\+4"):
        WideResNet(depth=30)
    with pytest.raises(ValueError, match="9n\\+2"):
        CifarResNeXt(depth=30)
    with pytest.raises(ValueError, match="3n\\+4"):
        CifarDenseNet(depth=41)


def _earlier_layout(sd: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """This package's earlier names (checked once against timm_ext/models.py at commit ed89f31), from
    their description: one flat ``blocks.N`` sequence; WRN
    ``shortcut`` and final ``bn``; ResNeXt stem ``conv1``/``bn1`` and head ``fc``; ResNet-18 blocks
    ``conv1, bn1, conv2, bn2, downsample``."""
    import re

    per_stage = {"wrn40_2": 6, "resnext29_4x32d": 3, "resnet18_cifar": 2}[name]
    block_names = {
        "residual_function.0": "conv1",
        "residual_function.1": "bn1",
        "residual_function.3": "conv2",
    }
    block_names |= {"residual_function.4": "bn2", "shortcut": "downsample", "conv_shortcut": "shortcut"}
    out = {}
    for key, value in sd.items():
        if m := re.match(r"(?:block(\d)\.layer|stage_(\d)|conv(\d)_x)\.(\d+)\.(.*)$", key):
            stage = int(m[1] or m[2] or int(m[3]) - 1) - 1
            rest = m[5]
            for new, old in block_names.items():
                if rest.startswith(new + "."):
                    rest = old + rest[len(new) :]
                    break
            key = f"blocks.{stage * per_stage + int(m[4])}.{rest}"
        else:
            for new, old in (
                ("bn1.", "bn."),
                ("conv_1_3x3.", "conv1."),
                ("bn_1.", "bn1."),
                ("classifier.", "fc."),
                ("conv1.0.", "conv1."),
                ("conv1.1.", "bn1."),
            ):
                if key.startswith(new) and not (name != "wrn40_2" and new == "bn1."):
                    key = old + key[len(new) :]
                    break
        out[key] = value
    return out


@pytest.mark.parametrize("name", ["wrn40_2", "resnext29_4x32d", "resnet18_cifar"])
def test_earlier_layout_converts_back(name):
    from timm_ext.models import checkpoint_filter

    filter_fn = checkpoint_filter(name)
    sd = timm.create_model(name, num_classes=10).state_dict()
    old = _earlier_layout(sd, name)
    assert any(k.startswith("blocks.") for k in old) and "fc.weight" in old
    back = filter_fn(old, None)
    assert back.keys() == sd.keys() and all(back[k] is sd[k] for k in sd)
    same = filter_fn(sd, None)  # the current layout passes through
    assert list(same) == list(sd) and all(same[k] is sd[k] for k in sd)
