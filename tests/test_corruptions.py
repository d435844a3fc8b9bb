"""-C corruption kernels: severity ordering, contracts, determinism, preset tables, the Albumentations transform."""

from __future__ import annotations

import json
import os
import pickle

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import itertools

import albumentations as A
import cv2
import numpy as np
import pytest
from skimage import data

from robust_eval.constants import ALL_CORRUPTIONS, BENCHMARK_CORRUPTIONS, EXTRA_CORRUPTIONS
from robust_eval.corruptions import (
    PARAMS,
    PRESETS,
    Corrupt,
    apply_corruption,
    disk_kernel,
    glass_shuffle_indices,
    motion_blur_kernel,
)

SIZES = {"cifar": 32, "imagenet": 224}
DETERMINISTIC = {
    "defocus_blur",
    "zoom_blur",
    "brightness",
    "contrast",
    "pixelate",
    "jpeg_compression",
    "gaussian_blur",
    "saturate",
}

# Where the PUBLISHED parameter tables are not monotone in mean absolute pixel distance (so a faithful
# implementation cannot be): listed with the reason, and checked to really be non-monotone below.
NOT_MONOTONE_BY_TABLE = {
    (
        "cifar",
        "glass_blur",
    ): "severity 3 blurs more (sigma .4) with one shuffle pass, which moves pixels less than sigma .05",
    (
        "cifar",
        "motion_blur",
    ): "(radius 6, sigma 2) and (8, 2): the extra taps weigh exp(-169/8) ~ 1e-9, same image",
    (
        "cifar",
        "elastic_transform",
    ): "the affine jitter shrinks from 2.56 px (s1) to 0.96 px (s5) while the elastic part grows",
    ("cifar", "spatter"): "severities 1-3 are water, 4-5 mud, a different effect",
    ("cifar", "saturate"): "x0.3, x0.1 desaturate; x1.5 changes less than x0.1",
    (
        "imagenet",
        "glass_blur",
    ): "s3 = 3 passes of delta 2, s4 = 2 passes of delta 3: s3 displaces slightly more",
    ("imagenet", "elastic_transform"): "s1, s2 have alpha 488 (global warp), s3-s5 alpha 12-29 (local)",
    ("imagenet", "spatter"): "water (s1-s3) vs mud (s4-s5)",
    ("imagenet", "saturate"): "x0.3, x0.1 desaturate; x2 changes less than x0.1",
    ("imagenet", "frost"): "s3 -> s4 only lowers the image weight .7 -> .65 under a bright frost layer",
    ("cifar", "frost"): "s4, s5 lower the image weight (.9 -> .85 -> .75) under a bright frost layer; the"
    " reference photographs give the same dip (53.4 -> 50.2 -> 49.5 levels)",
    (
        "imagenet",
        "snow",
    ): "s3 zooms the snow layer 4x but keeps only values above .9 (s2: 2x, above .5); AlexNet's published"
    " snow error is lower at s3 (0.865) than at s2 (0.884) too",
}


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    raw = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    return {
        preset: np.stack([cv2.resize(im, (s, s), interpolation=cv2.INTER_AREA) for im in raw])
        for preset, s in SIZES.items()
    }


@pytest.fixture(scope="module")
def distances(photos) -> dict[tuple[str, str], list[float]]:
    out = {}
    for preset in PRESETS:
        x = photos[preset]
        for name in ALL_CORRUPTIONS:
            out[preset, name] = [
                float(
                    np.abs(
                        apply_corruption(x, name, s, preset, np.random.default_rng(0)).astype(float) - x
                    ).mean()
                )
                for s in range(1, 6)
            ]
    return out


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_severity_increases_distance_from_clean(distances, preset, name):
    d = distances[preset, name]
    increasing = all(b > a for a, b in itertools.pairwise(d))
    if (preset, name) in NOT_MONOTONE_BY_TABLE:
        # the exception list must stay minimal: a listed pair that became monotone is a surprise
        assert not increasing, f"{preset}/{name} is monotone now ({d}); remove it from the exceptions"
        assert d[0] > 0.5 and d[4] > 0.5
    else:
        assert increasing, f"{preset}/{name} distances by severity: {[round(v, 2) for v in d]}"


def test_every_corruption_has_both_tables():
    assert set(ALL_CORRUPTIONS) == set(BENCHMARK_CORRUPTIONS) | set(EXTRA_CORRUPTIONS)
    for preset in PRESETS:
        assert set(PARAMS[preset]) == set(ALL_CORRUPTIONS)
        assert all(len(v) == 5 for v in PARAMS[preset].values())


@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_contract_dtype_shape_input_untouched_and_determinism(photos, name):
    x = photos["cifar"][:2].copy()
    x.setflags(write=False)  # like timm's read-only arrays
    before = x.copy()
    y = apply_corruption(x, name, 3, "cifar", np.random.default_rng(7))
    assert y.dtype == np.uint8 and y.shape == x.shape and y.flags.c_contiguous
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(y, apply_corruption(x, name, 3, "cifar", np.random.default_rng(7)))
    assert not np.array_equal(y, x)
    other = apply_corruption(x, name, 3, "cifar", np.random.default_rng(8))
    assert np.array_equal(other, y) == (name in DETERMINISTIC)


def test_non_square_and_odd_sizes(photos):
    x = cv2.resize(photos["imagenet"][0], (50, 37))[None]
    for name in ALL_CORRUPTIONS:
        y = apply_corruption(x, name, 5, "cifar", np.random.default_rng(0))
        assert y.shape == x.shape


@pytest.mark.parametrize(("preset", "sigma"), [("cifar", 0.08), ("imagenet", 0.18)])
def test_gaussian_noise_std_follows_the_preset_table(preset, sigma):
    x = np.full((4, 64, 64, 3), 128, np.uint8)
    y = apply_corruption(x, "gaussian_noise", 3, preset, np.random.default_rng(0))
    measured = (y.astype(float) - x).std() / 255
    assert measured == pytest.approx(sigma, rel=0.05)


@pytest.mark.parametrize(("preset", "lam"), [("cifar", 100), ("imagenet", 12)])
def test_shot_noise_variance_is_poisson(preset, lam):
    x = np.full((4, 64, 64, 3), 128, np.uint8)
    y = apply_corruption(x, "shot_noise", 3, preset, np.random.default_rng(0)).astype(float) / 255
    assert y.var() == pytest.approx((128 / 255) / lam, rel=0.1)


@pytest.mark.parametrize("preset", PRESETS)
def test_impulse_noise_hits_the_table_fraction(preset):
    x = np.full((4, 64, 64, 3), 128, np.uint8)
    y = apply_corruption(x, "impulse_noise", 4, preset, np.random.default_rng(0))
    frac = np.mean(y != 128)
    assert frac == pytest.approx(PARAMS[preset]["impulse_noise"][3], rel=0.1)
    assert set(np.unique(y)) <= {0, 128, 255}


def test_contrast_and_brightness_follow_the_tables(photos):
    x = photos["cifar"]
    for preset in PRESETS:
        c = PARAMS[preset]["contrast"][1]
        y = apply_corruption(x, "contrast", 2, preset, np.random.default_rng(0)).astype(float) / 255
        xf = x.astype(float) / 255
        means = xf.mean(axis=(1, 2), keepdims=True)
        np.testing.assert_allclose(y, np.clip((xf - means) * c + means, 0, 1), atol=1 / 255 + 1e-6)
    dark = np.full((1, 16, 16, 3), 50, np.uint8)
    y = apply_corruption(dark, "brightness", 5, "imagenet", np.random.default_rng(0))
    assert abs(int(y[0, 0, 0, 0]) - (50 + 0.5 * 255)) <= 1


def test_presets_differ_where_the_tables_differ(photos):
    x = photos["cifar"]
    for name in ALL_CORRUPTIONS:
        a = apply_corruption(x, name, 3, "cifar", np.random.default_rng(0))
        b = apply_corruption(x, name, 3, "imagenet", np.random.default_rng(0))
        assert not np.array_equal(a, b), name


def _glass_reference(img: np.ndarray, delta: int, disp: np.ndarray, swap: bool) -> np.ndarray:
    """The reference per-pixel loop (slow; what the vectorized version must equal).

    ``swap=False`` is the reference statement verbatim: its right-hand side holds numpy views, so it
    copies the displaced pixel instead of swapping; ``swap=True`` is a true swap.
    """
    x = img.copy()
    h, w = x.shape[:2]
    for a, hh in enumerate(range(h - delta, delta, -1)):
        for b, ww in enumerate(range(w - delta, delta, -1)):
            dx, dy = disp[a, b]
            h_prime, w_prime = hh + dy, ww + dx
            if swap:
                x[hh, ww], x[h_prime, w_prime] = x[h_prime, w_prime].copy(), x[hh, ww].copy()
            else:
                x[hh, ww], x[h_prime, w_prime] = x[h_prime, w_prime], x[hh, ww]
    return x


def test_reference_glass_statement_copies_instead_of_swapping():
    x = np.arange(12).reshape(2, 2, 3)
    x[0, 0], x[1, 1] = x[1, 1], x[0, 0]
    np.testing.assert_array_equal(x[0, 0], x[1, 1])  # the numpy-view quirk the published sets carry


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize(("h", "w", "delta"), [(12, 12, 1), (16, 11, 2), (20, 20, 3), (18, 17, 4)])
def test_vectorized_glass_shuffle_equals_the_sequential_loop(h, w, delta, swap):
    rng = np.random.default_rng(h * w + delta)
    imgs = rng.integers(0, 256, (3, h, w, 3), dtype=np.uint8)
    disp = rng.integers(-delta, delta, (3, h - 2 * delta, w - 2 * delta, 2))
    idx = glass_shuffle_indices((h, w), delta, disp, swap=swap)
    got = np.take_along_axis(imgs.reshape(3, h * w, 3), idx[..., None], axis=1).reshape(imgs.shape)
    for i in range(3):
        np.testing.assert_array_equal(got[i], _glass_reference(imgs[i], delta, disp[i], swap))
    if swap:
        assert all(np.array_equal(np.sort(row), np.arange(h * w)) for row in idx)


def test_motion_blur_kernel_is_normalized_one_sided_and_oriented():
    k = motion_blur_kernel(6, 2.0, 0.0)
    assert k.sum() == pytest.approx(1.0, abs=1e-6)
    c = k.shape[0] // 2
    assert k[c, c + 3] > 0 and k[c, c - 3] == 0  # streak along +x only
    k90 = motion_blur_kernel(6, 2.0, 90.0)
    assert k90[c + 3, c] > 0 and k90[c, c + 3] < 1e-6


def test_disk_kernel_is_the_reference_kernel_without_denormals():
    small, big = disk_kernel(1.0, 0.2), disk_kernel(10, 0.5)
    assert small.sum() == pytest.approx(1, abs=1e-5)
    # not renormalized after the anti-alias blur, as the reference: radius 10 touches the grid border
    # and the reflected blur adds 1.08% of mass (reference disk(10, 0.5).sum() = 1.0107858)
    assert big.sum() == pytest.approx(1.0107858, abs=1e-6)
    assert big.shape[0] > small.shape[0]
    tiny = np.finfo(np.float32).tiny
    for radius, alias in PARAMS["imagenet"]["defocus_blur"] + PARAMS["cifar"]["defocus_blur"]:
        k = disk_kernel(radius, alias)
        assert not ((k != 0) & (np.abs(k) < tiny)).any(), (radius, alias)  # no float32 denormals


def test_bad_arguments_name_the_problem():
    x = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="unknown corruption 'fogg'"):
        apply_corruption(x, "fogg", 1, "cifar", np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"severity must be an integer in 1\.\.5"):
        apply_corruption(x, "fog", 6, "cifar", np.random.default_rng(0))
    with pytest.raises(ValueError, match="preset"):
        apply_corruption(x, "fog", 1, "svhn", np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"uint8 array \(N, H, W, 3\)"):
        apply_corruption(x[0], "fog", 1, "cifar", np.random.default_rng(0))


# --------------------------------------------------------------------------------------------------
# Albumentations transform
# --------------------------------------------------------------------------------------------------
def test_corrupt_transform_uint8_float_and_input_untouched(photos):
    img = photos["cifar"][0]
    before = img.copy()
    t = A.Compose([Corrupt("gaussian_noise", severity=3, preset="cifar", p=1.0)], seed=0)
    out = t(image=img)["image"]
    assert out.dtype == np.uint8 and out.shape == img.shape and out.flags.c_contiguous
    np.testing.assert_array_equal(img, before)
    t2 = A.Compose([Corrupt("gaussian_noise", severity=3, preset="cifar", p=1.0)], seed=0)
    out_f = t2(image=img.astype(np.float32) / 255)["image"]
    assert out_f.dtype == np.float32 and out_f.shape == img.shape
    assert np.abs(out_f * 255 - out.astype(np.float32)).max() <= 1.0


@pytest.mark.parametrize("shape", [(32, 32), (32, 32, 1), (32, 32, 5)])
def test_corrupt_transform_channel_layouts(shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    out = A.Compose([Corrupt("fog", severity=4, preset="cifar")], seed=1)(image=img)["image"]
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)


def test_corrupt_transform_same_params_for_image2_and_batches(photos):
    img = photos["cifar"][0]
    t = A.Compose([Corrupt("shot_noise", 5, "cifar")], additional_targets={"image2": "image"}, seed=3)
    res = t(image=img, image2=img.copy())
    np.testing.assert_array_equal(res["image"], res["image2"])
    batch = A.Compose([Corrupt("shot_noise", 5, "cifar")], seed=3)(images=photos["cifar"][:2])["images"]
    assert np.asarray(batch).shape == (2, 32, 32, 3)


def test_corrupt_transform_serializes_and_pickles(tmp_path, photos):
    img = photos["cifar"][1]
    pipe = A.Compose([Corrupt("elastic_transform", severity=2, preset="imagenet", p=1.0)], seed=5)
    as_dict = A.to_dict(pipe)
    json.dumps(as_dict)
    assert as_dict["transform"]["transforms"][0]["name"] == "elastic_transform"
    back = A.from_dict(as_dict)
    A.save(pipe, str(tmp_path / "p.json"))
    loaded = A.load(str(tmp_path / "p.json"))
    unpickled = pickle.loads(pickle.dumps(pipe))
    ref = A.Compose([Corrupt("elastic_transform", severity=2, preset="imagenet", p=1.0)], seed=5)(image=img)[
        "image"
    ]
    for other in (back, loaded, unpickled):
        other.set_random_seed(5)
        np.testing.assert_array_equal(other(image=img)["image"], ref)


def test_corrupt_transform_validates_its_arguments():
    with pytest.raises(ValueError, match="unknown corruption"):
        Corrupt("nope", 1, "cifar")
    with pytest.raises(ValueError):
        Corrupt("fog", 9, "cifar")
    with pytest.raises(ValueError):
        Corrupt("fog", 1, "mnist")
    assert "fog" in repr(Corrupt("fog", 1, "cifar"))
