"""Kernels of IPMix/PixMix: image ops against Pillow, mixing-op formulas, patch mixing, the mixers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from skimage import data

from albumentations_ipmix import functional as F


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(data.astronaut(), (64, 48), interpolation=cv2.INTER_AREA)


def _pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray(img)


# ---------------------------------------------------------------------------- image ops vs Pillow
@pytest.mark.parametrize("bits", [1, 2, 3, 4, 8])
def test_posterize_matches_pillow(photo, bits):
    np.testing.assert_array_equal(
        F.apply_image_op(photo, "posterize", bits), ImageOps.posterize(_pil(photo), bits)
    )


@pytest.mark.parametrize("threshold", [0, 128, 200, 256])
def test_solarize_matches_pillow(photo, threshold):
    expected = np.asarray(ImageOps.solarize(_pil(photo), threshold))
    np.testing.assert_array_equal(F.apply_image_op(photo, "solarize", threshold), expected)


def test_invert_mirror_equalize_match_pillow(photo):
    np.testing.assert_array_equal(F.apply_image_op(photo, "invert"), ImageOps.invert(_pil(photo)))
    np.testing.assert_array_equal(F.apply_image_op(photo, "mirror"), ImageOps.mirror(_pil(photo)))
    np.testing.assert_array_equal(F.apply_image_op(photo, "equalize"), ImageOps.equalize(_pil(photo)))
    low_contrast = (photo // 4 + 60).astype(np.uint8)
    np.testing.assert_array_equal(
        F.apply_image_op(low_contrast, "equalize"), ImageOps.equalize(_pil(low_contrast))
    )


@pytest.mark.parametrize("cutoff", [0, 1, 2.5, 7.3, 9.9, 49])
def test_autocontrast_matches_pillow(photo, cutoff):
    low_contrast = (photo // 3 + 50).astype(np.uint8)
    for img in (photo, low_contrast, np.full_like(photo, 7)):
        expected = np.asarray(ImageOps.autocontrast(_pil(img), cutoff=cutoff))
        np.testing.assert_array_equal(F.apply_image_op(img, "autocontrast", cutoff), expected)


@pytest.mark.parametrize(
    ("name", "magnitude", "pil"),
    [
        ("rotate", 17, lambda im: im.rotate(17, resample=Image.BILINEAR)),
        ("rotate", -29, lambda im: im.rotate(-29, resample=Image.BILINEAR)),
        (
            "shear_x",
            0.21,
            lambda im: im.transform(im.size, Image.AFFINE, (1, 0.21, 0, 0, 1, 0), Image.BILINEAR),
        ),
        (
            "shear_y",
            -0.13,
            lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, -0.13, 1, 0), Image.BILINEAR),
        ),
        (
            "translate_x",
            7,
            lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 7, 0, 1, 0), Image.BILINEAR),
        ),
        (
            "translate_y",
            -5,
            lambda im: im.transform(im.size, Image.AFFINE, (1, 0, 0, 0, 1, -5), Image.BILINEAR),
        ),
    ],
)
def test_geometric_ops_match_pillow(photo, name, magnitude, pil):
    ours = F.apply_image_op(photo, name, magnitude).astype(int)
    theirs = np.asarray(pil(_pil(photo))).astype(int)
    inner = (slice(2, -2), slice(2, -2))  # border pixels differ by the samplers' edge rules
    diff = np.abs(ours - theirs)[inner]
    # OpenCV interpolates at 1/32-pixel resolution, Pillow in float: small differences remain,
    # while a half-pixel convention error would give a mean difference of ~2.5 on this photo.
    assert diff.mean() < 1.5
    assert np.percentile(diff, 95) <= 4
    if name.startswith("translate"):
        np.testing.assert_array_equal(ours, theirs)  # integer shifts are exact


@pytest.mark.parametrize("name", ["color", "contrast", "brightness", "sharpness"])
@pytest.mark.parametrize("factor", [0.1, 0.7, 1.0, 1.9])
def test_enhance_ops_match_pillow(photo, name, factor):
    enhancer = {"color": ImageEnhance.Color, "contrast": ImageEnhance.Contrast}.get(name)
    enhancer = enhancer or {"brightness": ImageEnhance.Brightness, "sharpness": ImageEnhance.Sharpness}[name]
    theirs = np.asarray(enhancer(_pil(photo)).enhance(factor)).astype(int)
    ours = F.apply_image_op(photo, name, factor).astype(int)
    assert np.abs(ours - theirs).max() <= 1


@pytest.mark.parametrize("name", sorted(set(F.IPMIX_ALL_OPS) | set(F.PIXMIX_ALL_OPS)))
def test_roi_evaluation_equals_crop_of_full_result(photo, name):
    magnitude = {"posterize": 3, "rotate": 11, "solarize": 100, "shear_x": 0.2, "shear_y": -0.2}.get(name, 0)
    magnitude = {"translate_x": -6, "translate_y": 4, "autocontrast": 3.0}.get(name, magnitude)
    magnitude = 1.6 if name in F.ENHANCE_OPS else magnitude
    full = F.apply_image_op(photo, name, magnitude)
    for roi in [(0, 0, 48, 64), (5, 9, 7, 13), (40, 50, 8, 14), (0, 63, 48, 1)]:
        top, left, h, w = roi
        part = F.apply_image_op(photo, name, magnitude, roi=roi)
        assert part.shape == (h, w, 3)
        assert part.flags.c_contiguous
        expected = full[top : top + h, left : left + w]
        if name in ("rotate", "shear_x", "shear_y"):
            # the shifted warp matrix may round a sampling position differently at 1/32 px
            assert np.abs(part.astype(int) - expected).max() <= 1
        else:
            np.testing.assert_array_equal(part, expected)


@pytest.mark.parametrize("channels", [1, 2, 5])
def test_ops_handle_any_channel_count(channels):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (20, 24, channels), dtype=np.uint8)
    for name in sorted(set(F.IPMIX_ALL_OPS) | set(F.PIXMIX_ALL_OPS)):
        out = F.apply_image_op(img, name, 1.3 if name in F.ENHANCE_OPS else 3)
        assert out.shape == img.shape
        assert out.dtype == np.uint8
    # per-channel LUT ops act on every channel independently
    for c in range(channels):
        np.testing.assert_array_equal(
            F.apply_image_op(img, "equalize")[:, :, c],
            np.asarray(ImageOps.equalize(Image.fromarray(np.ascontiguousarray(img[:, :, c])))),
        )


def test_unknown_op_is_an_error(photo):
    with pytest.raises(ValueError, match="unknown image op 'blur'"):
        F.apply_image_op(photo, "blur")


# ---------------------------------------------------------------------------- mixing ops
def test_mixing_op_formulas_on_fixed_draws():
    x = np.array([0.0, 0.25, 0.5, 1.0])
    y = np.array([1.0, 0.5, 0.0, 0.75])
    a, b = 0.7, 0.2
    np.testing.assert_allclose(
        F.add(x, y, a, b),
        [
            (0.7 * -1 + 0.2 * 1 + 1) / 2,
            (0.7 * -0.5 + 0 + 1) / 2,
            (0 + 0.2 * -1 + 1) / 2,
            (0.7 + 0.2 * 0.5 + 1) / 2,
        ],
    )
    expected = [0.0, 0.5**0.7 * 1.0**0.2 / 2, 1.0 * 1e-37**0.2 / 2, 2**0.7 * 1.5**0.2 / 2]
    np.testing.assert_allclose(F.multiply(x, y, a, b), expected)
    mask = np.array([True, False, True, False])
    np.testing.assert_array_equal(F.random_pixels(x, y, mask), [0.0, 0.5, 0.5, 0.75])


def _reference_quantize(v: np.ndarray, overflow: str) -> np.ndarray:
    v255 = np.floor(v * 255.0)
    if overflow == "clip":
        return np.clip(v255, 0, 255).astype(np.uint8)
    return np.mod(np.clip(v255, -(2.0**30), 2.0**30), 256).astype(np.uint8)


@pytest.mark.parametrize("overflow", ["wrap", "clip"])
@pytest.mark.parametrize("op", ["add", "multiply"])
@pytest.mark.parametrize(("a", "b"), [(0.8, 0.1), (1.3, -0.4), (1.99, -0.95), (0.05, 0.9)])
def test_uint8_mixing_equals_formula_then_quantization(op, a, b, overflow):
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    y = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    y[0, :5] = 0  # partner zeros make multiply explode when b < 0
    formula = {"add": F.add, "multiply": F.multiply}[op]
    expected = _reference_quantize(formula(x / 255.0, y / 255.0, a, b), overflow)
    got = F.mix_region_uint8(x, y, op, a, b, None, overflow)
    # float32 tables vs float64 formula: floor may land one level apart at exact boundaries
    circular = np.minimum((got.astype(int) - expected) % 256, (expected.astype(int) - got) % 256)
    assert circular.max() <= 1
    assert np.mean(circular == 0) > 0.99


def test_wrap_reproduces_reference_overflow():
    x = np.array([[[255]]], np.uint8)
    y = np.array([[[255]]], np.uint8)
    # add with a = 1.5, b = 0: v = (1.5 * 1 + 0 + 1) / 2 = 1.25 -> floor(318.75) = 318 -> 318 % 256 = 62
    assert F.mix_region_uint8(x, y, "add", 1.5, 0.0, None, "wrap")[0, 0, 0] == 62
    assert F.mix_region_uint8(x, y, "add", 1.5, 0.0, None, "clip")[0, 0, 0] == 255


def test_random_mixes_use_the_mask():
    x = np.full((4, 4, 3), 10, np.uint8)
    y = np.full((4, 4, 3), 200, np.uint8)
    pixel_mask = np.zeros((4, 4, 1), bool)
    pixel_mask[1, 2] = True
    out = F.mix_region_uint8(x, y, "random_pixels", 0, 0, pixel_mask, "wrap")
    assert (out[1, 2] == 10).all()
    assert (out.sum(axis=2) == 600).sum() == 15
    element_mask = np.zeros((4, 4, 3), bool)
    element_mask[0, 0, 1] = True
    out = F.mix_region_uint8(x, y, "random_elements", 0, 0, element_mask, "wrap")
    assert out[0, 0].tolist() == [200, 10, 200]


def test_patch_mix_changes_only_the_box():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    partner = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    step = F.PatchStep((3, 20, 5, 12), "random_pixels", 0, 0, np.zeros((5, 12, 1), bool), None)
    out = F.patch_mix(y, partner, step)
    outside = np.ones((32, 32), bool)
    outside[3:8, 20:32] = False
    np.testing.assert_array_equal(out[outside], y[outside])
    np.testing.assert_array_equal(out[3:8, 20:32], partner[3:8, 20:32])  # mask all False -> partner
    assert out is not y


# ---------------------------------------------------------------------------- the mixers
def test_default_patch_sizes():
    assert F.default_patch_sizes(32, 32) == (4, 8, 16, 32)
    assert F.default_patch_sizes(224, 224) == (4, 8, 16, 32, 64, 224)
    assert F.default_patch_sizes(64, 96) == (4, 8, 16, 32, 96)


def _chains(photo):
    return [
        [F.ImageOp("rotate", 10), F.ImageOp("posterize", 3)],
        [F.PatchStep((0, 0, 8, 8), "add", 0.6, 0.3, None, None)],
        [],
    ]


def test_ipmix_with_m_zero_is_the_input(photo):
    fractal = np.zeros_like(photo)
    out = F.ipmix(photo, fractal, _chains(photo), [0.2, 0.5, 0.3], m=0.0)
    np.testing.assert_array_equal(out, photo)
    as_float = photo.astype(np.float32) / 255
    np.testing.assert_array_equal(
        F.ipmix(as_float, fractal, _chains(photo), [0.2, 0.5, 0.3], m=0.0), as_float
    )


def test_ipmix_is_the_convex_combination_of_its_chains(photo):
    rng = np.random.default_rng(2)
    fractal = rng.integers(0, 256, photo.shape, dtype=np.uint8)
    chains = _chains(photo)
    weights, m = [0.2, 0.5, 0.3], 0.6
    chain0 = F.apply_image_op(F.apply_image_op(photo, "rotate", 10), "posterize", 3)
    chain1 = F.patch_mix(photo, fractal, chains[1][0])
    expected = (1 - m) * photo + m * (0.2 * chain0 + 0.5 * chain1.astype(float) + 0.3 * photo)
    out = F.ipmix(photo, fractal, chains, weights, m)
    assert np.abs(out.astype(float) - expected).max() <= 0.5 + 1e-3
    out_f = F.ipmix(photo.astype(np.float32) / 255, fractal, chains, weights, m)
    assert out_f.dtype == np.float32
    assert np.abs(out_f * 255 - expected).max() < 0.05


def test_patch_partner_can_be_the_augmented_original(photo):
    step = F.PatchStep(
        (4, 4, 10, 10), "random_pixels", 0, 0, np.zeros((10, 10, 1), bool), F.ImageOp("invert")
    )
    out = F.ipmix(photo, np.zeros_like(photo), [[step]], [1.0], m=1.0)
    np.testing.assert_array_equal(out[4:14, 4:14], 255 - photo[4:14, 4:14])
    np.testing.assert_array_equal(out[20:], photo[20:])


def test_pixmix_steps_follow_the_formulas(photo):
    fractal = np.random.default_rng(0).integers(0, 256, photo.shape, dtype=np.uint8)
    np.testing.assert_array_equal(F.pixmix(photo, fractal, None, []), photo)
    x, f = photo / 255.0, fractal / 255.0
    step1, step2 = (
        F.PixMixStep("add", 0.7, 0.4, None),
        F.PixMixStep("multiply", 1.2, -0.3, F.ImageOp("invert")),
    )
    expected = np.clip(F.add(x, f, 0.7, 0.4), 0, 1)
    expected = np.clip(F.multiply(expected, 1 - x, 1.2, -0.3), 0, 1)
    out = F.pixmix(photo.astype(np.float32) / 255, fractal, None, [step1, step2])
    np.testing.assert_allclose(out, expected, atol=2e-4)
    first = F.pixmix(photo, fractal, F.ImageOp("invert"), [])
    np.testing.assert_array_equal(first, 255 - photo)


def test_match_channels():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(
        F.match_channels(rgb, 1)[:, :, 0], np.asarray(Image.fromarray(rgb).convert("L"))
    )
    five = F.match_channels(rgb, 5)
    np.testing.assert_array_equal(five[:, :, 3:], rgb[:, :, :2])
    assert F.match_channels(rgb, 3) is rgb
