"""timm_ext.transforms / registry / enable: config strings, the PIL adapter, the factory hook."""

from __future__ import annotations

import importlib
import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import AugMixDataset, create_loader, create_transform
from timm.data.auto_augment import AutoAugment

import timm_ext.registry as registry
from timm_ext.transforms import (
    FRACTALS_ENV,
    AlbumentationsAdapter,
    is_mixing_config,
    mixing_transform,
    parse_mixing_config,
    resolve_fractals,
    set_default_fractals,
)


@pytest.fixture(scope="module")
def pictures() -> np.ndarray:
    """Real photos (scikit-image) as an in-memory mixing set."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    return np.stack([np.asarray(Image.fromarray(p).resize((64, 64))) for p in photos])


@pytest.fixture
def photo() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.rocket()).resize((40, 32))


@pytest.fixture(autouse=True)
def _clean_registry():
    registry.unregister()
    yield
    registry.unregister()


# --------------------------------------------------------------------------- config strings
def test_parse_ipmix_all_keys():
    method, kwargs = parse_mixing_config("ipmix-w2-d1-a0.5-b4-s1-p0.25-clip1-all")
    assert method == "ipmix"
    assert kwargs == {
        "width": 2,
        "depth": 1,
        "alpha": 0.5,
        "beta": 4.0,
        "severity": 1.0,
        "fractal_prob": 0.25,
        "overflow": "clip",
        "all_ops": True,
    }


def test_parse_only_given_keys_and_switch_forms():
    assert parse_mixing_config("ipmix") == ("ipmix", {})
    assert parse_mixing_config("ipmix-clip0-all0") == ("ipmix", {"overflow": "wrap", "all_ops": False})
    assert parse_mixing_config("pixmix-k2-b3-s3-all1") == (
        "pixmix",
        {"k": 2, "beta": 3.0, "severity": 3.0, "all_ops": True},
    )


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("mixmix-w3", "unknown mixing method"),
        ("ipmix-q3", "unknown key 'q'"),
        ("pixmix-w3", "unknown key 'w'"),  # width is IPMix-only
        ("ipmix-w", "needs a number"),
        ("ipmix-w0", "width ('w')"),
        ("ipmix-w2.5", "must be an integer"),
        ("ipmix-p1.5", "<= 1.0"),
        ("ipmix-b0", "> 0.0"),
        ("ipmix-w3-w2", "given twice"),
        ("ipmix-w3_d3", "malformed section"),
        ("ipmix-all2", "is a switch"),
        ("", "non-empty string"),
    ],
)
def test_parse_rejects_bad_strings(config, fragment):
    with pytest.raises(ValueError, match=None) as info:
        parse_mixing_config(config)
    assert fragment in str(info.value)


def test_is_mixing_config():
    assert is_mixing_config("ipmix-w3")
    assert is_mixing_config("pixmix")
    assert not is_mixing_config("augmix-m3")
    assert not is_mixing_config("rand-m9")
    assert not is_mixing_config(None)


def test_mixing_transform_applies_config(pictures):
    adapter = mixing_transform("ipmix-w2-d1-b4-s1-p0-clip1-all", fractals=pictures)
    t = adapter.transform
    assert type(t).__name__ == "IPMix"
    assert (t.width, t.depth, t.beta, t.severity, t.fractal_prob, t.overflow, t.all_ops) == (
        2,
        1,
        4.0,
        1.0,
        0.0,
        "clip",
        True,
    )
    pix = mixing_transform("pixmix-k2", {"fractals": pictures}).transform
    assert type(pix).__name__ == "PixMix"
    assert pix.k == 2
    assert pix.beta == 3.0  # default kept


# --------------------------------------------------------------------------- mixing source
def test_resolve_fractals_precedence(tmp_path, monkeypatch, pictures):
    monkeypatch.delenv(FRACTALS_ENV, raising=False)
    assert resolve_fractals() is None  # procedural default
    monkeypatch.setenv(FRACTALS_ENV, str(tmp_path))
    assert resolve_fractals() == str(tmp_path)
    set_default_fractals(pictures)
    assert resolve_fractals() is pictures
    assert resolve_fractals(tmp_path / "x") == str(tmp_path / "x")
    set_default_fractals(None)
    monkeypatch.setenv(FRACTALS_ENV, str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=FRACTALS_ENV):
        resolve_fractals()


def test_env_folder_is_used(tmp_path, monkeypatch, pictures, photo):
    for i, p in enumerate(pictures):
        Image.fromarray(p).save(tmp_path / f"{i}.png")
    monkeypatch.setenv(FRACTALS_ENV, str(tmp_path))
    adapter = mixing_transform("ipmix-w1-d1-p1", seed=0)
    assert isinstance(adapter(photo), Image.Image)
    assert str(tmp_path) in repr(adapter.transform) or adapter.transform.fractals == str(tmp_path)


# --------------------------------------------------------------------------- adapter
def test_adapter_pil_roundtrip_changes_pixels(pictures, photo):
    adapter = mixing_transform("ipmix-w3-d3", fractals=pictures, seed=1)
    out = adapter(photo)
    assert isinstance(out, Image.Image)
    assert out.size == photo.size and out.mode == "RGB"
    assert not np.array_equal(np.asarray(out), np.asarray(photo))
    assert "IPMix" in repr(adapter)


def test_adapter_gray_and_ndarray(pictures, photo):
    adapter = mixing_transform("ipmix-w2-d2", fractals=pictures, seed=2)
    gray = adapter(photo.convert("L"))
    assert gray.mode == "L" and gray.size == photo.size
    rgba = adapter(photo.convert("RGBA"))
    assert rgba.mode == "RGB"
    arr = np.asarray(photo)
    out = adapter(arr)
    assert isinstance(out, np.ndarray) and out.shape == arr.shape and out.dtype == np.uint8
    with pytest.raises(TypeError, match="PIL image"):
        adapter([1, 2, 3])


def test_adapter_seed_is_reproducible(pictures, photo):
    a = mixing_transform("ipmix-w3-d3", fractals=pictures, seed=5)
    b = mixing_transform("ipmix-w3-d3", fractals=pictures, seed=5)
    assert np.array_equal(np.asarray(a(photo)), np.asarray(b(photo)))
    assert not np.array_equal(np.asarray(a(photo)), np.asarray(a(photo)))  # the stream moves on


def test_adapter_wraps_any_albumentations_transform(photo):
    import albumentations as A

    adapter = AlbumentationsAdapter(A.HorizontalFlip(p=1.0))
    assert np.array_equal(np.asarray(adapter(photo)), np.asarray(photo)[:, ::-1])
    with pytest.raises(TypeError):
        AlbumentationsAdapter(3)


# --------------------------------------------------------------------------- registry / enable
def test_register_is_idempotent_and_reversible():
    import timm.data.transforms_factory as factory

    original = factory.auto_augment_transform
    registry.register()
    hooked = factory.auto_augment_transform
    registry.register()
    assert factory.auto_augment_transform is hooked is not original
    assert registry.is_registered()
    registry.unregister()
    registry.unregister()
    assert factory.auto_augment_transform is original
    assert not registry.is_registered()


def test_create_transform_builds_ipmix_and_delegates_others(pictures):
    with pytest.raises((AssertionError, KeyError, ValueError)):
        create_transform(32, is_training=True, auto_augment="ipmix-w3-d3")  # timm alone rejects it
    registry.register(fractals=pictures)
    t = create_transform(32, is_training=True, auto_augment="ipmix-w3-d3-b3-s3")
    adapters = [s for s in t.transforms if isinstance(s, AlbumentationsAdapter)]
    assert len(adapters) == 1 and adapters[0].transform.width == 3
    timm_aa = create_transform(32, is_training=True, auto_augment="v0")  # timm's AutoAugment, unchanged
    assert any(isinstance(s, AutoAugment) for s in timm_aa.transforms)
    out = t(Image.fromarray(pictures[0]))
    assert out.shape == (3, 32, 32) and torch.isfinite(out).all()


def test_import_enable_registers():
    import timm

    import timm_ext.enable

    importlib.reload(timm_ext.enable)
    assert registry.is_registered()
    assert timm.is_model("wrn40_4")


class _SameImage(torch.utils.data.Dataset):
    """``n`` copies of one photo, timm-dataset style (PIL images, a ``transform`` attribute)."""

    def __init__(self, image: Image.Image, n: int) -> None:
        self.image, self.n, self.transform = image, n, None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        img = self.image if self.transform is None else self.transform(self.image)
        return img, 0


def test_create_loader_augmix_dataset_two_workers(pictures, photo):
    """Through timm's create_loader: 3 views per image, the views differ, the two workers differ."""
    registry.register(fractals=pictures)
    dataset = AugMixDataset(_SameImage(photo.resize((32, 32)), 16), num_splits=3)
    torch.manual_seed(0)
    loader = create_loader(
        dataset,
        input_size=(3, 32, 32),
        batch_size=4,
        is_training=True,
        auto_augment="ipmix-w3-d3-p1",
        num_aug_splits=3,
        scale=(1.0, 1.0),
        ratio=(1.0, 1.0),
        hflip=0.0,
        color_jitter=None,
        num_workers=2,
        use_prefetcher=False,
        persistent_workers=False,
    )
    batches = [x for x, _ in loader]  # worker 0 makes batches 0 and 2, worker 1 batches 1 and 3
    assert len(batches) == 4
    for views in batches:
        assert isinstance(views, list) and len(views) == 3
        clean, aug1, aug2 = views
        assert clean.shape == (4, 3, 32, 32)
        assert torch.equal(clean, batches[0][0])  # same image, no crop/flip randomness: clean views equal
        assert not torch.equal(aug1, clean)
        assert not torch.equal(aug1, aug2)
    # Albumentations 2.0.8 would give every worker the same stream: batch 0 == batch 1
    assert not torch.equal(batches[0][1], batches[1][1])
    assert not torch.equal(batches[2][1], batches[3][1])


def _brightness_batches(adapter: AlbumentationsAdapter, photo: Image.Image) -> list[torch.Tensor]:
    from torchvision.transforms import functional as TF

    class _Aug(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 8

        def __getitem__(self, i: int) -> torch.Tensor:
            return TF.pil_to_tensor(adapter(photo))

    torch.manual_seed(0)
    return list(torch.utils.data.DataLoader(_Aug(), batch_size=2, num_workers=2))


def test_adapter_reseeds_each_worker(photo):
    """Any Albumentations transform (here not IPMix, which reseeds itself) differs across workers."""
    import albumentations as A

    adapter = AlbumentationsAdapter(A.RandomBrightnessContrast(p=1.0), seed=3)
    batches = _brightness_batches(adapter, photo)
    assert not torch.equal(batches[0], batches[1])  # worker 0 vs worker 1, same position in their streams
    again = _brightness_batches(adapter, photo)  # same torch seed -> same worker seeds -> same images
    assert all(torch.equal(a, b) for a, b in zip(batches, again))


def test_procedural_default_when_no_source(monkeypatch, photo):
    monkeypatch.delenv(FRACTALS_ENV, raising=False)
    set_default_fractals(None)
    adapter = mixing_transform(
        "ipmix-w2-d2-p1", seed=0
    )  # fractals=None: albumentations_ipmix's procedural set
    out = adapter(photo)
    assert out.size == photo.size
    assert not np.array_equal(np.asarray(out), np.asarray(photo))


def test_create_loader_with_prefetcher_and_random_erasing(pictures, photo):
    """timm train.py's path: the prefetcher (works on CPU) stacks the views and normalizes them."""
    registry.register(fractals=pictures)
    dataset = AugMixDataset(_SameImage(photo.resize((32, 32)), 8), num_splits=3)
    loader = create_loader(
        dataset,
        input_size=(3, 32, 32),
        batch_size=4,
        is_training=True,
        auto_augment="ipmix-w3-d3",
        num_aug_splits=3,
        re_prob=0.25,
        re_split=True,
        num_workers=2,
        use_prefetcher=True,
        device=torch.device("cpu"),
    )
    x, y = next(iter(loader))
    assert x.shape == (12, 3, 32, 32) and x.dtype == torch.float32
    assert y.shape == (12,)
    assert torch.isfinite(x).all()
    clean, aug1, aug2 = x.split(4)
    assert not torch.equal(clean, aug1) and not torch.equal(aug1, aug2)


def test_timm_randaugment_survives_zero_bit_posterize_on_current_pillow():
    """rand-m9-mstd0.5-inc1 reaches magnitude 10 -> posterize 0 bits, which Pillow >= 12 rejects;
    timm_ext.register() restores the old black-image behaviour (and unregister() removes the fix)."""
    import numpy as np
    from PIL import Image
    from timm.data import auto_augment
    from timm.data.auto_augment import NAME_TO_OP, rand_augment_transform

    import timm_ext

    timm_own = NAME_TO_OP["PosterizeIncreasing"]
    timm_ext.register()
    img = Image.fromarray(np.full((8, 8, 3), 200, np.uint8))
    assert np.asarray(NAME_TO_OP["PosterizeIncreasing"](img, 0)).max() == 0
    assert np.array_equal(np.asarray(NAME_TO_OP["PosterizeIncreasing"](img, 4)), np.full((8, 8, 3), 192))
    transform = rand_augment_transform("rand-m10-n3-mstd0-inc1", {"translate_const": 3})
    for _ in range(200):
        transform(img)
    timm_ext.unregister()
    assert NAME_TO_OP["PosterizeIncreasing"] is timm_own and auto_augment.posterize is timm_own


def test_importing_the_packages_changes_neither_the_environment_nor_timm():
    """A library must not change its host on import: no environment variables, no patched timm."""
    code = """
import os, socket, sys
def offline(*a, **k):
    raise OSError("offline")
socket.getaddrinfo = offline  # Albumentations' update check fails at once instead of waiting
import cv2, albumentations  # third-party imports first: cv2 itself sets LD_LIBRARY_PATH
import timm, timm.data, timm.data.auto_augment, timm.data.transforms_factory, timm.models
mods = [m for n, m in sorted(sys.modules.items()) if n == "timm" or n.startswith("timm.")]
before_env = dict(os.environ)
before = {(m.__name__, k): id(v) for m in mods for k, v in vars(m).items()}
import albumentations_ipmix, timm_ext, robust_eval
after = {(m.__name__, k): id(v) for m in mods for k, v in vars(m).items()}
changed = sorted(k for k in before if after.get(k) != before[k])
assert dict(os.environ) == before_env, set(os.environ.items()) ^ set(before_env.items())
assert not changed, changed
print("clean")
"""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "clean"
