"""The image-op table (``albumentations_ipmix.ops.IMAGE_OPS``): spec, Pillow fidelity, ROI evaluation.

The module docstring of ``albumentations_ipmix.ops`` claims two things Albumentations' own ops do
not give: ops evaluated on a region only, and Pillow bit-exactness with the reference scripts.
Both are checked here, op by op, from the table.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from skimage import data

from albumentations_ipmix import IPMix, PixMix
from albumentations_ipmix import functional as F
from albumentations_ipmix.ops import IMAGE_OPS, OpContext, apply_image_op, level_to_magnitude

# ------------------------------------------------------------------ the spec (ipmix.md), restated
# ipmix.md "Image-level ops": the op lists and the magnitude table, written out independently of
# the library (int_param(level, M) = int(level * M / 10), float_param(level, M) = level * M / 10).
SPEC_IPMIX = ["equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y", "translate_x"]
SPEC_IPMIX += ["translate_y", "mirror", "invert"]
SPEC_ENHANCE = ["color", "contrast", "brightness", "sharpness"]
SPEC_AUGMIX = ["autocontrast", "equalize", "posterize", "rotate", "solarize", "shear_x", "shear_y"]
SPEC_AUGMIX += ["translate_x", "translate_y"]
SPEC_MAGNITUDE: dict[str, tuple[Callable[[float, int, int], float], bool]] = {
    # name: (magnitude at level for an (h, w) image with IPMix's autocontrast cutoff, signed)
    "posterize": (lambda lv, h, w: 4 - int(lv * 4 / 10), False),
    "rotate": (lambda lv, h, w: int(lv * 30 / 10), True),
    "solarize": (lambda lv, h, w: 256 - int(lv * 256 / 10), False),
    "shear_x": (lambda lv, h, w: lv * 0.3 / 10, True),
    "shear_y": (lambda lv, h, w: lv * 0.3 / 10, True),
    "translate_x": (lambda lv, h, w: int(lv * (w / 3) / 10), True),
    "translate_y": (lambda lv, h, w: int(lv * (h / 3) / 10), True),
    "autocontrast": (lambda lv, h, w: 10 - lv * 10 / 10, False),
    **{name: ((lambda lv, h, w: lv * 1.8 / 10 + 0.1), False) for name in SPEC_ENHANCE},
    **{name: ((lambda lv, h, w: 0.0), False) for name in ("equalize", "mirror", "invert")},
}
LEVELS = (0.1, 0.37, 1.0, 2.5, 3.0, 5.55, 7.0, 9.99, 10.0)


def test_the_op_lists_are_those_of_the_spec() -> None:
    assert list(F.IPMIX_OPS) == SPEC_IPMIX
    assert list(F.IPMIX_ALL_OPS) == [*SPEC_IPMIX, "autocontrast", *SPEC_ENHANCE]
    assert list(F.PIXMIX_OPS) == list(F.AUGMIX_OPS) == SPEC_AUGMIX
    assert list(F.PIXMIX_ALL_OPS) == [*SPEC_AUGMIX, *SPEC_ENHANCE]


def test_every_op_of_the_spec_is_in_the_table_and_every_entry_is_in_a_list() -> None:
    listed = set(F.IPMIX_ALL_OPS) | set(F.PIXMIX_ALL_OPS)
    assert set(SPEC_MAGNITUDE) == listed == set(IMAGE_OPS)


@pytest.mark.parametrize("name", sorted(IMAGE_OPS))
@pytest.mark.parametrize(("height", "width"), [(32, 32), (224, 160), (41, 97)])
def test_level_rules_follow_the_spec(name: str, height: int, width: int) -> None:
    rule, signed = SPEC_MAGNITUDE[name]
    assert IMAGE_OPS[name].signed is signed
    context = OpContext(height, width, autocontrast_cutoff=True)
    for level in LEVELS:
        expected = rule(level, height, width)
        assert level_to_magnitude(name, level, context) == pytest.approx(expected, abs=1e-12)
        negated = level_to_magnitude(name, level, context, negate=True)
        assert negated == pytest.approx(-expected if signed else expected, abs=1e-12)
    # AugMix / PixMix autocontrast has no cutoff
    plain = OpContext(height, width, autocontrast_cutoff=False)
    if name == "autocontrast":
        assert level_to_magnitude(name, 3.0, plain) == 0.0


def test_every_table_entry_is_drawn_by_the_transforms() -> None:
    drawn: set[str] = set()
    for transform in (IPMix(fractals=np.zeros((1, 8, 8, 3), np.uint8), all_ops=True), PixMix(all_ops=True)):
        transform.set_random_seed(0)
        for _ in range(300):
            params = transform.get_params_dependent_on_data({"shape": (32, 32, 3)}, {})
            steps = [s for c in params.get("chains", []) for s in c] + params.get("steps", [])
            ops = [s for s in steps if isinstance(s, F.ImageOp)]
            ops += [s.partner for s in steps if getattr(s, "partner", None) is not None]
            ops += [params["first"]] if params.get("first") is not None else []
            drawn.update(op.name for op in ops)
    assert drawn == set(IMAGE_OPS)


# ------------------------------------------------------------------ Pillow references
def _affine(coeffs: Callable[[float], tuple[float, ...]]) -> Callable[[Image.Image, float], Image.Image]:
    return lambda im, v: im.transform(im.size, Image.AFFINE, coeffs(v), Image.BILINEAR)


#: The reference scripts' Pillow ops (AugMix / PixMix / IPMix ``augmentations.py``), by table name.
PILLOW: dict[str, Callable[[Image.Image, float], Image.Image]] = {
    "autocontrast": lambda im, v: ImageOps.autocontrast(im, cutoff=v),
    "equalize": lambda im, v: ImageOps.equalize(im),
    # Pillow >= 12 refuses 0 bits; older Pillow (the reference scripts') returned black (v & 0)
    "posterize": lambda im, v: ImageOps.posterize(im, int(v)) if v else Image.new(im.mode, im.size),
    "rotate": lambda im, v: im.rotate(v, resample=Image.BILINEAR),
    "solarize": lambda im, v: ImageOps.solarize(im, v),
    "shear_x": _affine(lambda v: (1, v, 0, 0, 1, 0)),
    "shear_y": _affine(lambda v: (1, 0, 0, v, 1, 0)),
    "translate_x": _affine(lambda v: (1, 0, v, 0, 1, 0)),
    "translate_y": _affine(lambda v: (1, 0, 0, 0, 1, v)),
    "mirror": lambda im, v: ImageOps.mirror(im),
    "invert": lambda im, v: ImageOps.invert(im),
    "color": lambda im, v: ImageEnhance.Color(im).enhance(v),
    "contrast": lambda im, v: ImageEnhance.Contrast(im).enhance(v),
    "brightness": lambda im, v: ImageEnhance.Brightness(im).enhance(v),
    "sharpness": lambda im, v: ImageEnhance.Sharpness(im).enhance(v),
}


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """Real photos at odd sizes, a low-contrast one and uniform noise (uint8 RGB)."""
    photo = cv2.resize(data.astronaut(), (64, 48), interpolation=cv2.INTER_AREA)
    return [
        photo,
        (photo // 3 + 50).astype(np.uint8),
        cv2.resize(data.chelsea(), (57, 41), interpolation=cv2.INTER_AREA),
        np.ascontiguousarray(data.coffee()[100:190:2, 200:330:2]),
        np.random.default_rng(0).integers(0, 256, (33, 31, 3), dtype=np.uint8),
    ]


def _magnitudes(name: str, height: int, width: int) -> list[float]:
    context = OpContext(height, width, autocontrast_cutoff=True)
    values = {
        level_to_magnitude(name, lv, context, negate=neg) for lv in (0.1, 1.0, 3.0, 10.0) for neg in (0, 1)
    }
    if name == "autocontrast":
        values.add(0.0)  # AugMix / PixMix
    return sorted(values)


def test_every_op_has_a_pillow_reference() -> None:
    assert set(PILLOW) == set(IMAGE_OPS)
    # the documented exceptions to bit-exactness are the bilinear warps with a non-integer shift
    assert {name for name, spec in IMAGE_OPS.items() if not spec.pillow_exact} == {
        "rotate",
        "shear_x",
        "shear_y",
    }


@pytest.mark.parametrize("name", sorted(IMAGE_OPS))
def test_each_op_equals_its_pillow_reference(images: list[np.ndarray], name: str) -> None:
    spec = IMAGE_OPS[name]
    for img in images:
        height, width = img.shape[:2]
        for magnitude in _magnitudes(name, height, width):
            ours = apply_image_op(img, name, magnitude)
            theirs = np.asarray(PILLOW[name](Image.fromarray(img), magnitude))
            if spec.pillow_exact:
                np.testing.assert_array_equal(ours, theirs, err_msg=f"{name}({magnitude})")
                continue
            # Documented tolerance: within 1 grey level wherever the bilinear footprint lies inside
            # the image (a frame of one pixel, warped by Pillow, marks where it does not).
            frame = np.zeros((height, width), np.uint8)
            frame[1:-1, 1:-1] = 255
            inside = np.asarray(PILLOW[name](Image.fromarray(frame), magnitude)) == 255
            diff = np.abs(ours.astype(int) - theirs.astype(int)).max(axis=2)
            assert inside.mean() > 0.5
            assert diff[inside].max() <= 1, f"{name}({magnitude})"


# ------------------------------------------------------------------ region-of-interest evaluation
ROIS = [(0, 0, 48, 64), (5, 9, 7, 13), (40, 50, 8, 14), (0, 63, 48, 1), (17, 0, 4, 4)]


@pytest.mark.parametrize("name", sorted(IMAGE_OPS))
def test_an_op_on_a_region_equals_the_full_op_cropped_and_pasted(images: list[np.ndarray], name: str) -> None:
    """A patch step's partner "op applied to the original" is computed on the box only; pasting it
    gives the image that applying the op to the whole original, cropping the box and pasting does."""
    spec = IMAGE_OPS[name]
    original = images[0]
    chain_state = images[2][:48, :56]
    chain_state = cv2.resize(chain_state, (64, 48), interpolation=cv2.INTER_NEAREST)
    for magnitude in _magnitudes(name, 48, 64):
        full = apply_image_op(original, name, magnitude)
        for roi in ROIS:
            top, left, h, w = roi
            part = apply_image_op(original, name, magnitude, roi=roi)
            assert part.shape == (h, w, 3) and part.flags.c_contiguous
            mask = np.ones((h, w, 1), bool)
            mask[::2] = False  # keep the chain's pixel on odd rows, the partner's on even rows
            step = F.PatchStep(roi, "random_pixels", 0.0, 0.0, mask, None)
            from_region = F.patch_mix(chain_state, part, step)
            from_full = F.patch_mix(chain_state, full, step)
            if spec.roi_exact:
                np.testing.assert_array_equal(from_region, from_full, err_msg=f"{name}({magnitude}) {roi}")
            else:  # documented: the shifted warp matrix may round at 1/32 px differently
                assert np.abs(from_region.astype(int) - from_full).max() <= 1
            outside = np.ones((48, 64), bool)
            outside[top : top + h, left : left + w] = False
            np.testing.assert_array_equal(from_region[outside], chain_state[outside])


@pytest.mark.parametrize("name", sorted(IMAGE_OPS))
def test_pointwise_ops_on_a_crop_equal_the_region_of_the_full_op(images: list[np.ndarray], name: str) -> None:
    """``pointwise`` ops may be applied to the cropped region itself; for the others the crop alone
    gives a different result somewhere (statistics, neighbours or geometry of the whole image)."""
    original = images[0]
    differs = False
    for magnitude in _magnitudes(name, 48, 64):
        for top, left, h, w in ROIS[1:]:
            crop = np.ascontiguousarray(original[top : top + h, left : left + w])
            on_crop = apply_image_op(crop, name, magnitude)
            on_region = apply_image_op(original, name, magnitude, roi=(top, left, h, w))
            differs |= not np.array_equal(on_crop, on_region)
    assert differs is not IMAGE_OPS[name].pointwise


def test_unknown_op_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown image op 'blur'; known ops: \['autocontrast'"):
        apply_image_op(np.zeros((4, 4, 3), np.uint8), "blur")


# ------------------------------------------------------------------ the mixing-op table
def test_the_mixing_ops_are_those_of_the_spec_and_of_the_schema() -> None:
    from typing import get_args

    from albumentations_ipmix.transforms import MixingOpName

    # ipmix.md "Mixing ops": IPMix uses all four, PixMix add and multiply
    assert F.MIXING_OPS == ("add", "multiply", "random_pixels", "random_elements") == get_args(MixingOpName)
    assert F.PIXMIX_MIXING_OPS == ("add", "multiply")
    assert {name: spec.mask for name, spec in F.MIXING_OP_TABLE.items()} == {
        "add": None,
        "multiply": None,
        "random_pixels": "pixel",
        "random_elements": "element",
    }


@pytest.mark.parametrize("name", F.MIXING_OPS)
def test_each_mixing_kernel_computes_its_formula(name: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    y = rng.integers(1, 256, (9, 11, 3), dtype=np.uint8)
    spec = F.MIXING_OP_TABLE[name]
    if spec.mask is not None:
        mask = rng.random((9, 11, 1 if spec.mask == "pixel" else 3)) < 0.5
        expected = spec.formula(x, y, mask)
        np.testing.assert_array_equal(F.mix_region_uint8(x, y, name, 0.0, 0.0, mask, "wrap"), expected)
        return
    for a, b in [(0.8, 0.1), (1.3, -0.4)]:
        exact = spec.formula(x / 255.0, y / 255.0, a, b)
        np.testing.assert_allclose(spec.uint8_255(x, y, a, b) / 255.0, exact, rtol=1e-5, atol=1e-5)
        xf, yf = (x / np.float32(255)).astype(np.float32), (y / np.float32(255)).astype(np.float32)
        np.testing.assert_allclose(spec.float32(xf, yf, a, b), exact, rtol=1e-4, atol=1e-5)


def test_every_mixing_op_is_drawn_by_ipmix_and_pixmix_draws_only_its_own() -> None:
    ipmix = IPMix(fractals=np.zeros((1, 8, 8, 3), np.uint8), depth=3)
    pixmix = PixMix(fractals=np.zeros((1, 8, 8, 3), np.uint8))
    ipmix.set_random_seed(0)
    pixmix.set_random_seed(0)
    drawn_ipmix: set[str] = set()
    drawn_pixmix: set[str] = set()
    for _ in range(200):
        chains = ipmix.get_params_dependent_on_data({"shape": (32, 32, 3)}, {})["chains"]
        drawn_ipmix.update(s.op for c in chains for s in c if isinstance(s, F.PatchStep))
        drawn_pixmix.update(
            s.op for s in pixmix.get_params_dependent_on_data({"shape": (32, 32, 3)}, {})["steps"]
        )
    assert drawn_ipmix == set(F.MIXING_OPS)
    assert drawn_pixmix == set(F.PIXMIX_MIXING_OPS)
