"""timm_ext.batch: batched kernels equal the per-image kernels, the batched transforms match the
per-image transforms in distribution, draws are per sample and repeat from the generator's seed."""

from __future__ import annotations

import os
import random

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp

from albumentations_ipmix import IPMix, PixMix
from albumentations_ipmix.functional import MIXING_OPS, mix_region_uint8
from albumentations_ipmix.ops import IMAGE_OPS, IPMIX_OPS, OpContext, apply_image_op
from timm_ext.batch import BatchAugMix, BatchIPMix, BatchPixMix, create_batch_mixing
from timm_ext.batch import kernels as K
from timm_ext.batch.random import beta, dirichlet, draw_image_ops, get_ab

#: magnitudes per op covering each op's range (units of IMAGE_OPS)
MAGNITUDES = {
    "posterize": [0, 1, 2, 3, 4, 4],
    "solarize": [0, 10, 128, 200, 254, 256],
    "rotate": [-30, -7, 0, 13, 30, 3],
    "shear_x": [-0.3, -0.1, 0.05, 0.2, 0.3, 0.0],
    "shear_y": [-0.3, -0.1, 0.05, 0.2, 0.3, 0.0],
    "translate_x": [-10, -3, 0, 4, 10, 1],
    "translate_y": [-10, -3, 0, 4, 10, 1],
    "autocontrast": [0, 1.5, 5, 9.9, 0, 3.3],
    **{name: [0.1, 0.5, 1.0, 1.5, 1.9, 0.118] for name in ("color", "contrast", "brightness", "sharpness")},
}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the shared CI cores are slower with two busy-waiting threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _images(n: int, h: int, w: int, channels: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (n, h, w, channels), dtype=np.uint8)
    imgs[1] //= 4  # low contrast (autocontrast / equalize tables differ)
    imgs[2] = imgs[2] // 2 + 60
    imgs[3] = 7  # flat image
    return imgs


def _photos(size: int, names=("astronaut", "coffee", "chelsea", "rocket")) -> np.ndarray:
    from skimage import data

    pictures = [np.atleast_3d(getattr(data, n)())[:, :, :3] for n in names]
    pictures = [np.repeat(p, 3, axis=2) if p.shape[2] == 1 else p for p in pictures]
    return np.stack([cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA) for p in pictures])


def _batch(imgs: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(imgs)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("name", sorted(IMAGE_OPS))
@pytest.mark.parametrize("shape", [(32, 35, 3), (19, 16, 1), (24, 24, 4)])
def test_batched_op_equals_per_image_kernel(name, shape):
    imgs = _images(6, *shape)
    magnitude = MAGNITUDES.get(name, [0.0] * 6)
    out = K.BATCH_KERNELS[name](_batch(imgs), torch.tensor(magnitude, dtype=torch.float64), None)
    out = out.permute(0, 2, 3, 1).numpy()
    ref = np.stack([apply_image_op(imgs[i], name, magnitude[i]) for i in range(6)])
    diff = np.abs(out.astype(int) - ref.astype(int))
    if IMAGE_OPS[name].roi_exact:  # integer arithmetic per image: the same bytes
        assert diff.max() == 0, f"{name}: {np.count_nonzero(diff)} values differ"
    else:  # bilinear warps: float32 sampling on both sides
        assert (diff <= 1).mean() >= 0.99 and (diff == 0).mean() >= 0.95


@pytest.mark.parametrize("op", ["add", "multiply"])
@pytest.mark.parametrize("overflow", ["wrap", "clip"])
def test_batched_mixing_op_equals_per_image(op, overflow):
    imgs, partners = _images(6, 16, 16), _images(6, 16, 16)[::-1].copy()
    a = torch.tensor([0.3, 0.9, 1.2, 1.9, 0.01, 1.0], dtype=torch.float64)
    b = torch.tensor([0.6, 0.1, -0.4, -0.9, 0.99, -0.01], dtype=torch.float64)
    table = K.add_255 if op == "add" else K.multiply_255
    out = K.quantize(table(_batch(imgs), _batch(partners), a, b), overflow).permute(0, 2, 3, 1).numpy()
    for i in range(6):
        ref = mix_region_uint8(imgs[i], partners[i], op, float(a[i]), float(b[i]), None, overflow)
        assert (out[i] == ref).mean() >= 0.999, (op, i)


def _stats(out: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Per image: mean, standard deviation, mean absolute change (grey levels)."""
    out, src = out.reshape(len(out), -1).astype(np.float64), src.reshape(len(src), -1).astype(np.float64)
    return np.stack([out.mean(1), out.std(1), np.abs(out - src).mean(1)], axis=1)


def _per_image(method: str, imgs: np.ndarray, pictures: np.ndarray, draws: int) -> np.ndarray:
    if method == "augmix":
        from PIL import Image
        from timm.data.auto_augment import augment_and_mix_transform

        hparams = {"translate_pct": 0.3, "img_mean": (128, 128, 128), "interpolation": Image.BILINEAR}
        transform = augment_and_mix_transform("augmix-m3-w3", hparams)
        random.seed(0)
        np.random.seed(0)  # noqa: NPY002 - timm's AugMix draws from the global streams
        out = [np.asarray(transform(Image.fromarray(imgs[i % len(imgs)]))) for i in range(draws)]
    else:
        transform = (IPMix if method == "ipmix" else PixMix)(fractals=pictures, p=1.0)
        transform.set_random_seed(0)
        out = [transform(image=imgs[i % len(imgs)])["image"] for i in range(draws)]
    return np.stack(out)


def _batched(method: str, imgs: np.ndarray, pictures: np.ndarray, draws: int) -> np.ndarray:
    if method == "augmix":
        transform = BatchAugMix(translate_pct=0.3, fill=(128, 128, 128))
    else:
        transform = (BatchIPMix if method == "ipmix" else BatchPixMix)(fractals=pictures)
    generator = torch.Generator().manual_seed(1)
    source = _batch(imgs[np.arange(draws) % len(imgs)])
    out = [transform(chunk, generator) for chunk in source.split(250)]
    return torch.cat(out).permute(0, 2, 3, 1).numpy()


def _assert_same_distribution(method: str, size: int, draws: int) -> None:
    imgs = _photos(size)
    pictures = _photos(64, ("brick", "grass", "gravel", "coffee", "rocket", "astronaut"))
    source = imgs[np.arange(draws) % len(imgs)]
    a = _stats(_per_image(method, imgs, pictures, draws), source)
    b = _stats(_batched(method, imgs, pictures, draws), source)
    for column, what in enumerate(("mean", "std", "mean abs change")):
        statistic = ks_2samp(a[:, column], b[:, column]).statistic
        assert statistic <= 0.1, f"{method} at {size} px: KS {statistic:.3f} on the {what}"


@pytest.mark.parametrize("method", ["ipmix", "pixmix", "augmix"])
def test_batched_transform_matches_per_image_distribution_32px(method):
    _assert_same_distribution(method, 32, 2000)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ipmix", "pixmix", "augmix"])
def test_batched_transform_matches_per_image_distribution_224px(method):
    _assert_same_distribution(method, 224, 2000)


def test_op_and_sign_frequencies_within_three_sigma():
    n = 30000
    gen = torch.Generator().manual_seed(3)
    index, magnitude = draw_image_ops(IPMIX_OPS, 3.0, OpContext(32, 32), (n,), gen, torch.device("cpu"))
    counts = torch.bincount(index, minlength=len(IPMIX_OPS)).numpy()
    p = 1 / len(IPMIX_OPS)
    assert np.all(np.abs(counts - n * p) <= 3 * np.sqrt(n * p * (1 - p)))
    rotate = magnitude[index == IPMIX_OPS.index("rotate")]
    rotate = rotate[rotate != 0]
    assert abs(float((rotate < 0).double().mean()) - 0.5) <= 3 * np.sqrt(0.25 / len(rotate))
    assert (
        float(rotate.abs().max()) <= 9 and float(rotate.abs().min()) >= 1
    )  # int(level * 30 / 10), level < 3


def test_beta_dirichlet_and_get_ab_moments():
    gen, cpu = torch.Generator().manual_seed(5), torch.device("cpu")
    for a, b in [(1.0, 1.0), (0.5, 0.5), (3.0, 1.0), (1.0, 3.0), (2.0, 5.0)]:
        draws = beta(a, b, (40000,), gen, cpu)
        mean, var = a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))
        assert abs(float(draws.mean()) - mean) <= 4 * np.sqrt(var / 40000)
    weights = dirichlet(0.7, (20000,), 3, gen, cpu)
    assert torch.allclose(weights.sum(-1), torch.ones(20000, dtype=torch.float64))
    assert abs(float(weights[:, 0].mean()) - 1 / 3) < 0.01
    a, b = get_ab(3.0, (20000,), gen, cpu)
    assert abs(float((a > 1).double().mean()) - 0.5) < 0.02 and bool(((a > 1) == (b < 0)).all())


@pytest.mark.parametrize("cls", [BatchIPMix, BatchPixMix, BatchAugMix])
def test_identical_images_get_independent_draws(cls):
    pictures = _photos(48)
    transform = cls() if cls is BatchAugMix else cls(fractals=pictures)
    images = _batch(_photos(32)[:1]).repeat(64, 1, 1, 1)
    out = transform(images, torch.Generator().manual_seed(0)).flatten(1)
    distinct = torch.unique(out, dim=0).shape[0]
    assert distinct >= 56  # an identity draw (no chain step, m ~ 0) repeats the input: rare
    change = (out.float() - images.flatten(1).float()).abs().mean(1)
    halves = np.corrcoef(change[:32].numpy(), change[32:].numpy())[0, 1]
    assert abs(halves) < 0.5


@pytest.mark.parametrize("config", ["ipmix-w3-d3-b3-s3", "pixmix-k4-b3-s3", "augmix-m3-w3"])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_same_seed_same_output_and_the_contract(config, dtype):
    pictures = None if config.startswith("augmix") else _photos(48)
    transform = create_batch_mixing(config, fractals=pictures)
    images = _batch(_photos(32))
    if dtype == torch.float32:
        images = images.float() / 255
    before = images.clone()
    first = transform(images, torch.Generator().manual_seed(9))
    assert first.dtype == dtype and first.shape == images.shape and first.device == images.device
    assert torch.equal(images, before)  # input untouched
    assert torch.equal(first, transform(images, torch.Generator().manual_seed(9)))
    assert not torch.equal(first, transform(images, torch.Generator().manual_seed(10)))
    if dtype == torch.float32:
        assert float(first.min()) >= 0 and float(first.max()) <= 1


def test_grouped_and_masked_evaluation_agree():
    pictures = _photos(48)
    images = _batch(_photos(32))
    for cls in (BatchIPMix, BatchPixMix):
        group = cls(fractals=pictures, strategy="group")(images, torch.Generator().manual_seed(2))
        mask = cls(fractals=pictures, strategy="mask")(images, torch.Generator().manual_seed(2))
        diff = (group.int() - mask.int()).abs()
        assert (diff == 0).float().mean() >= 0.97  # the random masks of patch mixing are drawn per group


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        BatchAugMix()(torch.zeros(3, 32, 32, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        BatchAugMix()(torch.zeros(1, 3, 8, 8, dtype=torch.int32))
    with pytest.raises(ValueError, match="unknown key"):
        create_batch_mixing("augmix-q3")
    with pytest.raises(ValueError, match="severity"):
        BatchIPMix(severity=20)
    assert set(MIXING_OPS) == set(BatchIPMix().mixing_ops)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("config", ["ipmix-w3-d3-b3-s3", "pixmix-k4-b3-s3", "augmix-m3-w3"])
def test_cuda_agrees_with_cpu_for_the_same_seed(config):
    pictures = None if config.startswith("augmix") else _photos(48)
    images = _batch(_photos(32)).repeat(8, 1, 1, 1)
    cpu = create_batch_mixing(config, fractals=pictures)(images, torch.Generator().manual_seed(4))
    cuda = create_batch_mixing(config, fractals=pictures)(images.cuda(), torch.Generator().manual_seed(4))
    diff = (cpu.int() - cuda.cpu().int()).abs()
    assert (diff <= 1).float().mean() >= 0.99


@pytest.mark.parametrize(("batched", "per_image"), [(BatchIPMix, IPMix), (BatchPixMix, PixMix)])
def test_the_batched_transforms_take_the_per_image_parameters_and_defaults(batched, per_image):
    """Issue 20: the same parameters and defaults as the Albumentations transforms (the two
    signatures are written twice, so this keeps them from drifting apart)."""
    import inspect

    ours = inspect.signature(batched.__init__).parameters
    theirs = inspect.signature(per_image.__init__).parameters
    albumentations_only = {"self", "p", "metadata_key"}
    shared = [name for name in theirs if name not in albumentations_only]
    assert [name for name in ours if name in shared] == shared
    for name in shared:
        assert ours[name].default == theirs[name].default, name
