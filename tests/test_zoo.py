"""RobustBench's corruption zoo from local files, and its leaderboard entry.

The RobustBench key layouts are generated here from their description (docs/checkpoints.md
section 3: the TRADES-style WideResNet with ``convShortcut`` / ``sub_block1``, PreActResNet-18 with
PreActBlockV2, the CIFAR ResNet-18 of PRIME, DeepMind's WideResNet; torchvision's ImageNet nets),
never from our own models. Big entries are checked on the meta device (names and shapes, strict);
small ones are written to a RobustBench folder and compared with independent functional forwards.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference_nets import bn, conv, linear_head, ref_resnext, ref_wrn
from robust_eval_fixtures import digits_32, write_c_folder
from typer.testing import CliRunner

from robust_eval import zoo
from robust_eval.baselines import ALEXNET_IMAGENET_C_ERRORS
from robust_eval.checkpoints.formats import CheckpointError, load_checkpoint
from robust_eval.cli import app
from robust_eval.constants import BENCHMARK_CORRUPTIONS
from robust_eval.data import CIFAR_FOLDERS, write_cifar

runner = CliRunner()


# ------------------------------------------------------------------ RobustBench layouts (descriptions)
def _bn_shapes(p: str, c: int) -> dict[str, tuple[int, ...]]:
    return {
        p + "weight": (c,),
        p + "bias": (c,),
        p + "running_mean": (c,),
        p + "running_var": (c,),
        p + "num_batches_tracked": (),
    }


def rb_wrn(depth: int, k: int, classes: int, sub_block1: bool = False) -> dict[str, tuple[int, ...]]:
    """RobustBench's WideResNet: block{1,2,3}.layer.i.{bn1,conv1,bn2,conv2[,convShortcut]}, bn1, fc."""
    n, w = (depth - 4) // 6, [16, 16 * k, 32 * k, 64 * k]
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (16, 3, 3, 3)}
    groups = [("block1", w[0], w[1]), *([("sub_block1", w[0], w[1])] if sub_block1 else [])]
    for name, cin, cout in [*groups, ("block2", w[1], w[2]), ("block3", w[2], w[3])]:
        for i in range(n):
            p, c_in = f"{name}.layer.{i}.", cin if i == 0 else cout
            out.update(_bn_shapes(p + "bn1.", c_in) | _bn_shapes(p + "bn2.", cout))
            out[p + "conv1.weight"], out[p + "conv2.weight"] = (cout, c_in, 3, 3), (cout, cout, 3, 3)
            if c_in != cout:
                out[p + "convShortcut.weight"] = (cout, c_in, 1, 1)
    return out | _bn_shapes("bn1.", w[3]) | {"fc.weight": (classes, w[3]), "fc.bias": (classes,)}


def rb_preact18(classes: int) -> dict[str, tuple[int, ...]]:
    """PreActResNet-18 (PreActBlockV2, bn_before_fc): layer{1..4}.i.{bn1,conv1,bn2,conv2[,shortcut.0]}, bn, linear."""
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 3, 3)}
    cin = 64
    for s in range(4):
        cout = 64 * 2**s
        for i in range(2):
            p, c_in = f"layer{s + 1}.{i}.", cin if i == 0 else cout
            out.update(_bn_shapes(p + "bn1.", c_in) | _bn_shapes(p + "bn2.", cout))
            out[p + "conv1.weight"], out[p + "conv2.weight"] = (cout, c_in, 3, 3), (cout, cout, 3, 3)
            if i == 0 and s > 0:
                out[p + "shortcut.0.weight"] = (cout, c_in, 1, 1)
        cin = cout
    return out | _bn_shapes("bn.", 512) | {"linear.weight": (classes, 512), "linear.bias": (classes,)}


def rb_resnet18(classes: int) -> dict[str, tuple[int, ...]]:
    """PRIME's CIFAR ResNet-18: conv1, bn1, layer{1..4}.i.{conv1,bn1,conv2,bn2[,shortcut.{0,1}]}, linear, mu, sigma."""
    out: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 3, 3), **_bn_shapes("bn1.", 64)}
    cin = 64
    for s in range(4):
        cout = 64 * 2**s
        for i in range(2):
            p, c_in = f"layer{s + 1}.{i}.", cin if i == 0 else cout
            out.update(_bn_shapes(p + "bn1.", cout) | _bn_shapes(p + "bn2.", cout))
            out[p + "conv1.weight"], out[p + "conv2.weight"] = (cout, c_in, 3, 3), (cout, cout, 3, 3)
            if i == 0 and s > 0:
                out[p + "shortcut.0.weight"] = (cout, c_in, 1, 1)
                out.update(_bn_shapes(p + "shortcut.1.", cout))
        cin = cout
    return out | {
        "linear.weight": (classes, 512),
        "linear.bias": (classes,),
        "mu": (1, 3, 1, 1),
        "sigma": (1, 3, 1, 1),
    }


def rb_dmwrn(depth: int, width: int, classes: int) -> dict[str, tuple[int, ...]]:
    """DeepMind's WRN: init_conv, layer.g.block.i.{batchnorm_0,conv_0,batchnorm_1,conv_1[,shortcut]}, batchnorm, logits."""
    n, w = (depth - 4) // 6, [16, 16 * width, 32 * width, 64 * width]
    out: dict[str, tuple[int, ...]] = {"init_conv.weight": (16, 3, 3, 3)}
    for g in range(3):
        for i in range(n):
            p, c_in, cout = f"layer.{g}.block.{i}.", w[g] if i == 0 else w[g + 1], w[g + 1]
            out.update(_bn_shapes(p + "batchnorm_0.", c_in) | _bn_shapes(p + "batchnorm_1.", cout))
            out[p + "conv_0.weight"], out[p + "conv_1.weight"] = (cout, c_in, 3, 3), (cout, cout, 3, 3)
            if c_in != cout:
                out[p + "shortcut.weight"] = (cout, c_in, 1, 1)
    return (
        out | _bn_shapes("batchnorm.", w[3]) | {"logits.weight": (classes, w[3]), "logits.bias": (classes,)}
    )


def _imagenet_layout(build: str) -> dict[str, tuple[int, ...]]:
    import timm
    import torchvision

    kind, _, name = build.partition(":")
    with torch.device("meta"):
        net = (
            getattr(torchvision.models, name)()
            if kind == "torchvision" or name in ("resnet50", "wide_resnet50_2")
            else timm.create_model(name)
        )
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def layout(entry: zoo.ZooEntry, dataset: str) -> dict[str, tuple[int, ...]]:
    classes = {"cifar10": 10, "cifar100": 100, "imagenet": 1000}[dataset]
    if entry.name == "Hendrycks2020AugMix_WRN":
        return rb_wrn(40, 2, classes)
    if entry.name == "Standard":
        return rb_wrn(28, 10, classes)
    if entry.name.startswith("Addepalli") and "WRN" in entry.name:
        return rb_wrn(34, 10, classes, sub_block1=entry.name == "Addepalli2021Towards_WRN34")
    if entry.build == "timm:preact_resnet18_cifar":
        return rb_preact18(classes)
    if entry.name == "Modas2021PRIMEResNet18":
        return rb_resnet18(classes)
    if entry.build == "timm:dm_wrn70_16":
        return rb_dmwrn(70, 16, classes)
    if (
        entry.name == "Hendrycks2020AugMix_ResNeXt"
    ):  # CifarResNeXt: the reference layout, tested in test_timm_models
        import timm

        import timm_ext.models  # noqa: F401

        with torch.device("meta"):
            return {
                k: tuple(v.shape)
                for k, v in timm.create_model("resnext29_4x32d", num_classes=classes).state_dict().items()
            }
    return _imagenet_layout(entry.build)


def random_state(shapes: dict[str, tuple[int, ...]], seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in shapes.items():
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            out[k] = torch.rand(shape, generator=g) + 0.5
        elif k.endswith(("running_mean", "bias")):
            out[k] = torch.randn(shape, generator=g) * 0.1
        elif len(shape) == 1:
            out[k] = 1 + torch.randn(shape, generator=g) * 0.1
        else:
            out[k] = torch.randn(shape, generator=g) * (1.5 / max(1, int(np.prod(shape[1:])))) ** 0.5
    return out


def test_the_table_has_the_documented_entries():
    counts = {ds: len(zoo.supported_names(ds)) for ds in ("cifar10", "cifar100", "imagenet")}
    # RobustBench's corruption leaderboards minus the 4 + 4 Diffenderfer2021Winning entries
    assert counts == {"cifar10": 17 - 4, "cifar100": 12 - 4, "imagenet": 12}
    assert "Kireev2021Effectiveness_RLATAugMix" in zoo.supported_names("cifar10")


@pytest.mark.parametrize("key", sorted(zoo.ZOO), ids=lambda k: f"{k[0]}-{k[1]}")
def test_every_entry_loads_its_robustbench_layout_strictly(key):
    dataset = key[0]
    entry = zoo.ZOO[key]
    shapes = layout(entry, dataset)
    # parameters on the meta device (names and shapes only); PRIME's mu / sigma buffers hold values
    raw: object = {
        f"module.{k}": torch.full(s, 0.5) if k in ("mu", "sigma") else torch.empty(s, device="meta")
        for k, s in shapes.items()
    }
    if entry.container:
        raw = {entry.container: raw, "best": {}}
    sd, norm, _ = zoo.unwrap(entry, raw, dataset)
    with torch.device("meta"):
        net = zoo.build(entry, {"cifar10": 10, "cifar100": 100, "imagenet": 1000}[dataset])
    own = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in sd.items()} == own
    net.load_state_dict(sd, strict=True, assign=True)
    if entry.name.startswith(("Rebuffi", "Gowal", "Kireev")):
        assert norm == (zoo.CIFAR10_MEAN_STD if dataset == "cifar10" else zoo.CIFAR100_MEAN_STD)
    elif dataset == "imagenet":
        assert norm == zoo.IMAGENET_MEAN_STD and entry.size == 224 and entry.crop_pct == 0.875


def test_a_missing_parameter_is_an_error_not_a_silent_partial_load(tmp_path):
    shapes = layout(zoo.ZOO[("imagenet", "Hendrycks2020AugMix")], "imagenet")
    del shapes["fc.bias"]
    folder = tmp_path / "imagenet" / "corruptions"
    folder.mkdir(parents=True)
    torch.save(
        random_state({k: s for k, s in shapes.items() if k.startswith(("fc", "conv1", "bn1"))}),
        folder / "Hendrycks2020AugMix.pt",
    )
    with pytest.raises(CheckpointError, match=r"missing keys .*layer1"):
        load_checkpoint("robustbench:Hendrycks2020AugMix", model_dir=tmp_path)


# ------------------------------------------------------------------ functional forwards (small entries)
def ref_preact18(sd, x):
    x = conv(sd, "conv1.", x)
    for s in range(1, 5):
        for i in range(2):
            p, stride = f"layer{s}.{i}.", 2 if (s > 1 and i == 0) else 1
            o = F.relu(bn(sd, p + "bn1.", x))
            short = conv(sd, p + "shortcut.0.", o, stride) if p + "shortcut.0.weight" in sd else x
            x = conv(sd, p + "conv2.", F.relu(bn(sd, p + "bn2.", conv(sd, p + "conv1.", o, stride)))) + short
    return linear_head(sd, "linear.", F.relu(bn(sd, "bn.", x)))


def ref_prime(sd, x):
    x = F.relu(bn(sd, "bn1.", conv(sd, "conv1.", (x - sd["mu"]) / sd["sigma"])))
    for s in range(1, 5):
        for i in range(2):
            p, stride = f"layer{s}.{i}.", 2 if (s > 1 and i == 0) else 1
            y = bn(
                sd,
                p + "bn2.",
                conv(sd, p + "conv2.", F.relu(bn(sd, p + "bn1.", conv(sd, p + "conv1.", x, stride)))),
            )
            short = (
                bn(sd, p + "shortcut.1.", conv(sd, p + "shortcut.0.", x, stride))
                if p + "shortcut.0.weight" in sd
                else x
            )
            x = F.relu(y + short)
    return linear_head(sd, "linear.", x)


def ref_dmwrn(sd, x, swish=True):
    act = F.silu if swish else F.relu
    x = conv(sd, "init_conv.", x)
    for g in range(3):
        i = 0
        while f"layer.{g}.block.{i}.conv_0.weight" in sd:
            p, stride = f"layer.{g}.block.{i}.", 2 if (g > 0 and i == 0) else 1
            o = act(bn(sd, p + "batchnorm_0.", x))
            padded = F.pad(o, (1, 1, 1, 1) if stride == 1 else (0, 1, 0, 1))
            y = F.conv2d(padded, sd[p + "conv_0.weight"], None, stride)
            y = conv(sd, p + "conv_1.", act(bn(sd, p + "batchnorm_1.", y)))
            x = (
                F.conv2d(o, sd[p + "shortcut.weight"], None, stride) if p + "shortcut.weight" in sd else x
            ) + y
            i += 1
    return linear_head(sd, "logits.", act(bn(sd, "batchnorm.", x)))


def _rename_wrn(sd):
    return {k.replace("convShortcut", "conv_shortcut"): v for k, v in sd.items()}


SMALL = {
    # name, dataset: (state layout, reference forward on [0, 1] inputs, container)
    ("Hendrycks2020AugMix_WRN", "cifar100"): (
        rb_wrn(40, 2, 100),
        lambda sd, x: ref_wrn(_rename_wrn(sd), (x - 0.5) / 0.5),
        None,
    ),
    ("Kireev2021Effectiveness_RLAT", "cifar10"): (
        rb_preact18(10),
        lambda sd, x: ref_preact18(
            sd,
            (x - torch.tensor(zoo.CIFAR10_MEAN_STD[0]).view(1, 3, 1, 1))
            / torch.tensor(zoo.CIFAR10_MEAN_STD[1]).view(1, 3, 1, 1),
        ),
        "last",
    ),
    ("Addepalli2021Towards_PARN18", "cifar100"): (rb_preact18(100), ref_preact18, None),
    ("Modas2021PRIMEResNet18", "cifar10"): (rb_resnet18(10), ref_prime, None),
}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    for (name, ds), (shapes, _, container) in SMALL.items():
        sd = random_state(shapes, seed=len(name))
        if "mu" in sd:
            sd["mu"], sd["sigma"] = (
                torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1),
                torch.tensor([0.2, 0.3, 0.25]).view(1, 3, 1, 1),
            )
        wrapped = {"state_dict": {f"module.{k}": v for k, v in sd.items()}}
        folder = root / ds / "corruptions"
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({container: wrapped} if container else wrapped, folder / f"{name}.pt")
    return root


@pytest.mark.parametrize("key", sorted(SMALL), ids=lambda k: k[0])
def test_small_entries_equal_their_reference_forward(key, zoo_dir):
    name, ds = key
    _, reference, _ = SMALL[key]
    model, info = load_checkpoint(f"robustbench:{name}", model_dir=zoo_dir)  # dataset found from the folder
    meta = info.to_dict()
    assert meta["dataset"] == ds and meta["zoo_entry"] == name and meta["kind"] == "robustbench"
    assert meta["data_config"]["source"] == "reference format"
    raw = torch.load(zoo_dir / ds / "corruptions" / f"{name}.pt", weights_only=True)
    raw = raw.get("last", raw)["state_dict"]
    sd = {k.removeprefix("module."): v for k, v in raw.items()}
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(sd, x), rtol=1e-4, atol=1e-4)


def test_prime_normalization_comes_from_the_file(zoo_dir):
    _, info = load_checkpoint("robustbench:Modas2021PRIMEResNet18", model_dir=zoo_dir, dataset="cifar10")
    meta = info.to_dict()
    assert meta["data_config"]["mean"] == pytest.approx([0.4, 0.5, 0.6])
    assert "mu/sigma buffers of the file" in meta["data_config"]["detail"]


def test_dm_wide_resnet_equals_its_description():
    from timm_ext.models import DMWideResNet

    for act in ("swish", "relu"):
        net = DMWideResNet(num_classes=10, depth=10, width=2, activation=act).eval()
        sd = random_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, seed=3)
        assert set(sd) == set(rb_dmwrn(10, 2, 10))
        net.load_state_dict(sd)
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(net(x), ref_dmwrn(sd, x, act == "swish"), rtol=1e-4, atol=1e-4)


def test_timm_resnet50_equals_torchvision_on_robustbench_weights():
    import timm
    import torchvision

    tv = torchvision.models.resnet50().eval()
    ours = timm.create_model("resnet50").eval()
    ours.load_state_dict(tv.state_dict(), strict=True)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-4)


def test_resnext_entry_equals_the_reference(tmp_path):
    import timm

    net = timm.create_model("resnext29_4x32d", num_classes=10)
    sd = random_state({k: tuple(v.shape) for k, v in net.state_dict().items()}, seed=4)
    (tmp_path / "cifar10" / "corruptions").mkdir(parents=True)
    torch.save(
        sd, tmp_path / "cifar10" / "corruptions" / "Hendrycks2020AugMix_ResNeXt.pt"
    )  # the whole file is the state_dict
    model, _ = load_checkpoint(
        "robustbench:Hendrycks2020AugMix_ResNeXt", model_dir=tmp_path, dataset="cifar10"
    )
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref_resnext(sd, (x - 0.5) / 0.5), rtol=1e-4, atol=1e-4)


def test_zoo_errors_say_what_to_do(zoo_dir, tmp_path):
    cases = [
        (
            ("robustbench:NoSuchNet2099", {}),
            "unknown RobustBench corruptions entry 'NoSuchNet2099'; supported: .*Hendrycks2020AugMix_WRN",
        ),
        (("robustbench:Standard", {}), "pass --model-dir"),
        (
            ("robustbench:Standard", {"model_dir": tmp_path}),
            r"put RobustBench's Standard.pt at '.*cifar10/corruptions/Standard.pt'",
        ),
        (
            ("robustbench:Standard", {"model_dir": tmp_path, "dataset": "cifar100"}),
            "entry for cifar10, not 'cifar100'",
        ),
        (
            ("robustbench:Standard", {"model_dir": tmp_path, "threat_model": "Linf"}),
            "only RobustBench's corruptions entries",
        ),
        (("robustbench:Hendrycks2020AugMix_ResNeXt", {"model_dir": tmp_path}), "pass --dataset"),
    ]
    for (spec, kwargs), match in cases:
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(spec, **kwargs)


# ------------------------------------------------------------------ leaderboard entry
def _result(errors, clean, dataset):
    return {
        "checkpoint": {"model": "m", "dataset": dataset, "zoo_entry": "X", "architecture": "ResNet-50"},
        "suites": {"corruptions": {"clean_error": clean, "c": {"errors": errors}}},
    }


def test_leaderboard_entry_formulas_and_formats():
    alex = {c: {str(s): e for s, e in zip(range(1, 6), v)} for c, v in ALEXNET_IMAGENET_C_ERRORS.items()}
    entry = zoo.leaderboard_entry(_result(alex, 0.43478, "imagenet"))
    assert entry["corruptions_mce"] == "100.00"  # AlexNet's own errors normalize to 100
    mean_err = np.mean([ALEXNET_IMAGENET_C_ERRORS[c] for c in BENCHMARK_CORRUPTIONS])
    assert entry["corruptions_acc"] == f"{100 * (1 - mean_err):.2f}" and entry["clean_acc"] == "56.52"
    half = {c: {s: e / 2 for s, e in v.items()} for c, v in alex.items()}
    assert zoo.leaderboard_entry(_result(half, 0.2, "imagenet"))["corruptions_mce"] == "50.00"
    cifar = zoo.leaderboard_entry(
        _result(
            {c: {str(s): 0.1 * s / 5 for s in range(1, 6)} for c in BENCHMARK_CORRUPTIONS}, 0.05, "cifar10"
        )
    )
    assert cifar["corruptions_acc"] == "94.00" and "corruptions_mce" not in cifar
    expected_fields = {
        "link",
        "name",
        "authors",
        "additional_data",
        "number_forward_passes",
        "dataset",
        "venue",
        "architecture",
        "eps",
        "clean_acc",
        "reported",
        "corruptions_acc",
    }
    assert set(cifar) == expected_fields and cifar["eps"] is None and cifar["name"] == "X"
    missing = {c: v for c, v in alex.items() if c != "fog"}
    with pytest.raises(zoo.ZooError, match="fog"):
        zoo.leaderboard_entry(_result(missing, 0.2, "imagenet"))


@pytest.mark.slow
def test_corruptions_run_writes_the_leaderboard_json(zoo_dir, tmp_path):
    images, labels = digits_32()[0][:12], np.arange(12) % 10
    data = tmp_path / "data"
    write_cifar(data / CIFAR_FOLDERS["cifar100"], "cifar100", images, labels)
    write_c_folder(data / "CIFAR-100-C", images, labels, BENCHMARK_CORRUPTIONS)
    out, board = tmp_path / "out", tmp_path / "entry.json"
    args = [
        "corruptions",
        "robustbench:Hendrycks2020AugMix_WRN",
        "--model-dir",
        zoo_dir,
        "--data-dir",
        data,
        "--out",
        out,
    ]
    result = runner.invoke(app, [*map(str, args), "--robustbench-json", str(board)])
    assert result.exit_code == 0, result.output
    entry, res = json.loads(board.read_text()), json.loads((out / "corruptions.json").read_text())
    summary = res["suites"]["corruptions"]["summary"]
    assert entry["corruptions_acc"] == f"{100 * (1 - summary['mce_unnormalized']):.2f}"
    assert entry["clean_acc"] == f"{100 * (1 - res['suites']['corruptions']['clean_error']):.2f}"
    assert all(re.fullmatch(r"\d+\.\d\d", entry[k]) for k in ("clean_acc", "corruptions_acc"))
    assert (entry["name"], entry["architecture"], entry["dataset"]) == (
        "Hendrycks2020AugMix_WRN",
        "WideResNet-40-2",
        "cifar100",
    )
    again = runner.invoke(app, [*map(str, args), "--robustbench-json", str(board)])
    assert again.exit_code == 2 and "already exists" in again.stderr
