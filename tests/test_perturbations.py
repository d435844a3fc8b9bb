"""-P sequence generators: frame counts, the published frame-i settings, noise difficulties, determinism."""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import cv2
import numpy as np
import pytest
from skimage import data

from robust_eval.constants import NOISE_PERTURBATIONS, TEST_PERTURBATIONS, VALIDATION_PERTURBATIONS
from robust_eval.perturbations import ALL_PERTURBATIONS, NOISE_LEVELS, frame_count, make_sequence

EXPECTED_T = {
    "cifar": {"translate": 16, "motion_blur": 21},
    "imagenet": {"translate": 41, "motion_blur": 31},
}


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    return np.stack(
        [cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA) for im in (data.astronaut(), data.coffee())]
    )


def test_all_fourteen_perturbations_exist():
    assert set(ALL_PERTURBATIONS) == set(TEST_PERTURBATIONS) | set(VALIDATION_PERTURBATIONS)
    assert len(ALL_PERTURBATIONS) == 14


@pytest.mark.parametrize("preset", ["cifar", "imagenet"])
@pytest.mark.parametrize("name", ALL_PERTURBATIONS)
def test_shapes_dtype_determinism_and_motion(photos, preset, name):
    before = photos.copy()
    seq = make_sequence(photos, name, preset, np.random.default_rng(1))
    t = EXPECTED_T[preset].get(name, 31)
    assert seq.shape == (2, t, 32, 32, 3) and seq.dtype == np.uint8
    assert frame_count(name, preset) == t
    np.testing.assert_array_equal(photos, before)
    np.testing.assert_array_equal(seq, make_sequence(photos, name, preset, np.random.default_rng(1)))
    f = seq.astype(float)
    if name in NOISE_PERTURBATIONS:
        np.testing.assert_array_equal(seq[:, 0], photos)  # frame 0 is the clean image
        assert np.abs(f[:, 1:] - f[:, :1]).mean() > 0.5
    else:
        steps = np.abs(np.diff(f, axis=1)).mean(axis=(0, 2, 3, 4))
        # (the first frames of gaussian_blur have sigma < 0.2 px: invisible after rounding to uint8)
        assert (steps > 0).mean() >= 0.75, "consecutive frames must change"
        assert np.abs(f[:, -1] - f[:, 0]).mean() > 1.0


def test_single_image_gives_a_batch_of_one(photos):
    assert make_sequence(photos[0], "rotate", "cifar", np.random.default_rng(0)).shape == (1, 31, 32, 32, 3)


@pytest.mark.parametrize("preset", ["cifar", "imagenet"])
def test_gaussian_noise_difficulty_levels_match_the_table(preset):
    gray = np.full((2, 48, 48, 3), 128, np.uint8)
    for d in (1, 2, 3):
        seq = make_sequence(gray, "gaussian_noise", preset, np.random.default_rng(d), difficulty=d)
        std = (seq[:, 1:].astype(float) - 128).std() / 255
        assert std == pytest.approx(NOISE_LEVELS[preset]["gaussian_noise"][d - 1], rel=0.05)


def test_translate_moves_one_pixel_per_frame(photos):
    seq = make_sequence(photos, "translate", "cifar", np.random.default_rng(0))
    # frame 7 is the clean image; frame 8 is shifted right by one pixel
    np.testing.assert_array_equal(seq[:, 7], photos)
    np.testing.assert_array_equal(seq[:, 8, :, 1:], photos[:, :, :-1])


def test_brightness_frame_15_is_clean_and_ends_are_darker_and_brighter(photos):
    seq = make_sequence(photos, "brightness", "cifar", np.random.default_rng(0)).astype(float)
    assert np.abs(seq[:, 15] - photos).max() <= 1
    assert seq[:, 0].mean() < photos.mean() < seq[:, -1].mean()


@pytest.mark.parametrize("name", ["rotate", "tilt", "scale", "shear"])
def test_geometric_sequences_pass_through_the_clean_image(photos, name):
    seq = make_sequence(photos, name, "cifar", np.random.default_rng(0))
    mid = 15  # angle 0, shear 0, scale (2*15+70)/100 = 1.0
    assert np.abs(seq[:, mid].astype(float) - photos).mean() < 1.0


def test_difficulty_rules_are_explained():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="stride"):
        make_sequence(img, "rotate", "cifar", np.random.default_rng(0), difficulty=2)
    with pytest.raises(ValueError, match="1, 2 or 3"):
        make_sequence(img, "shot_noise", "cifar", np.random.default_rng(0), difficulty=4)
    with pytest.raises(ValueError, match="unknown perturbation"):
        make_sequence(img, "spin", "cifar", np.random.default_rng(0))
    with pytest.raises(ValueError, match="uint8"):
        make_sequence(img.astype(np.float32), "rotate", "cifar", np.random.default_rng(0))
