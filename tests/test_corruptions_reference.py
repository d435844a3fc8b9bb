"""-C corruptions against the reference (hendrycks/robustness ``make_cifar_c.py`` / ``make_imagenet_c.py``).

Golden values: ``tests/data/reference_corruptions.npz`` holds the reference scripts' own uint8 outputs for the
deterministic corruptions, computed once (2026-12-01) by running the reference functions (numpy 1.26,
scipy 1.15, scikit-image 0.20 with ``multichannel=True`` mapped to ``channel_axis=-1``, Pillow 12,
OpenCV 4.11) on the fixed inputs of :func:`_inputs`: CIFAR key ``cifar/<name>/<severity>`` = image 0 at
32 px (1, 32, 32, 3); ImageNet key ``imagenet/<name>/<severity>`` = rows 100:124, cols 80:104 of image 0
at 224 px. The random corruptions are compared with the reference formula written from its description,
fed the same random draws as ours (drawn in our documented order from the same seed).
"""

from __future__ import annotations

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import zoom as scipy_zoom
from scipy.stats import poisson
from skimage import data
from skimage.filters import gaussian as sk_gaussian
from test_corruptions import _glass_reference

from robust_eval.corruptions import PARAMS, PRESETS, _pixelate, apply_corruption, plasma_fractal
from robust_eval.frost import FROST_FILES

GOLDEN = Path(__file__).parent / "data" / "reference_corruptions.npz"
GOLDEN_NAMES = (
    "pixelate",
    "zoom_blur",
    "defocus_blur",
    "contrast",
    "brightness",
    "saturate",
    "gaussian_blur",
    "jpeg_compression",
)
# bit-identical to the reference; the others compute in float32 where the reference uses float64 and
# may land one level lower or higher on a few pixels (measured: at most 21% of the pixels for
# imagenet saturate s3, mean signed difference below 0.04 level everywhere)
EXACT = {"pixelate", "zoom_blur", "contrast", "jpeg_compression"}
# the golden inputs' pixel sums, from the reference run (same skimage photographs, pure slicing)
INPUT_SUMS = {"cifar": 1206725, "imagenet": 60118370}


def _inputs(preset: str) -> np.ndarray:
    """Four photographs cut to 32 px (strided) or 224 px (cropped) by slicing only (no resampling)."""
    a, ch, co, ro = data.astronaut(), data.chelsea(), data.coffee(), data.rocket()
    if preset == "cifar":
        parts = [a[::16, ::16], ch[::9, ::14], co[::12, ::18], ro[::13, ::20]]
        return np.stack([p[:32, :32] for p in parts])
    return np.stack(
        [a[::2, ::2][16:240, 16:240], ch[38:262, 100:324], co[80:304, 150:374], ro[100:324, 200:424]]
    )


def _golden_view(y: np.ndarray, preset: str) -> np.ndarray:
    return y[:1] if preset == "cifar" else y[:1, 100:124, 80:104]


def _u8(x: np.ndarray) -> np.ndarray:
    """The reference's quantization: ``np.uint8`` of the clipped float64 value x 255 (truncation)."""
    return np.uint8(np.clip(x, 0, 1) * 255)


@pytest.mark.parametrize("preset", PRESETS)
def test_golden_inputs_are_the_reference_run_inputs(preset):
    assert int(_inputs(preset).astype(np.int64).sum()) == INPUT_SUMS[preset]


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", GOLDEN_NAMES)
def test_deterministic_corruptions_equal_the_reference_outputs(preset, name):
    golden = np.load(GOLDEN)
    x = _inputs(preset)[:1]
    for sev in range(1, 6):
        ref = golden[f"{preset}/{name}/{sev}"].astype(int)
        got = _golden_view(apply_corruption(x, name, sev, preset, np.random.default_rng(0)), preset).astype(
            int
        )
        if name in EXACT:
            np.testing.assert_array_equal(got, ref, err_msg=f"{preset}/{name}/{sev}")
        else:
            assert np.abs(got - ref).max() <= 1, f"{preset}/{name}/{sev}"
            # truncation as the reference: rounding would be +0.5 level brighter on average
            assert abs((got - ref).mean()) < 0.05, f"{preset}/{name}/{sev}"


def _reference_clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    """The reference ``clipped_zoom`` from its description: centre crop of ceil(h / z), scipy zoom, trim."""
    h = img.shape[0]
    ch = int(np.ceil(h / factor))
    top = (h - ch) // 2
    out = scipy_zoom(img[top : top + ch, top : top + ch], (factor, factor, 1), order=1)
    trim = (out.shape[0] - h) // 2
    return out[trim : trim + h, trim : trim + h]


@pytest.mark.parametrize("preset", PRESETS)
def test_zoom_blur_equals_the_scipy_clipped_zoom_formula_within_one_level(preset):
    x = _inputs(preset)[1:3]
    for sev in (1, 3, 5):
        c = PARAMS[preset]["zoom_blur"][sev - 1]
        end, step = (c, 0.01) if preset == "cifar" else c
        got = apply_corruption(x, "zoom_blur", sev, preset, np.random.default_rng(0)).astype(int)
        for i in range(len(x)):
            xf = (x[i] / 255.0).astype(np.float32)
            acc = np.zeros_like(xf)
            for z in np.arange(1, end, step):
                acc += _reference_clipped_zoom(xf, z)
            ref = _u8((xf + acc) / (len(np.arange(1, end, step)) + 1)).astype(int)
            assert np.abs(got[i] - ref).max() <= 1
            assert np.mean(got[i] != ref) < 0.01


def test_zoom_blur_grows_toward_the_bottom_right_at_32px_like_the_reference():
    """Small factors zoom about the top-left corner (ceil crop = whole image): the blur grows with x, y."""
    x = _inputs("cifar")
    y = apply_corruption(x, "zoom_blur", 1, "cifar", np.random.default_rng(0)).astype(float)
    d = np.abs(y - x)
    top_left, bottom_right = d[:, :16, :16].mean(), d[:, 16:, 16:].mean()
    assert bottom_right > 1.8 * top_left


@pytest.mark.parametrize(("preset", "sev"), [("cifar", 2), ("imagenet", 3)])
def test_pixelate_is_pillow_box_at_the_truncated_size(preset, sev):
    """CIFAR s2: int(32 * 0.9) = 28 px (rounding: 29); ImageNet s3: int(224 * 0.4) = 89 (rounding: 90)."""
    x = _inputs(preset)[2:3]
    size = x.shape[1]
    got = apply_corruption(x, "pixelate", sev, preset, np.random.default_rng(0))[0]
    small = int(size * PARAMS[preset]["pixelate"][sev - 1])

    def two_box(k: int) -> np.ndarray:
        img = Image.fromarray(x[0]).resize((k, k), Image.Resampling.BOX)
        return np.asarray(img.resize((size, size), Image.Resampling.BOX))

    np.testing.assert_array_equal(got, two_box(small))
    assert not np.array_equal(got, two_box(small + 1))


def _noise_reference(name: str, x8: np.ndarray, c: float, seed: int) -> np.ndarray:
    """The reference noise formulas on float64, with our draws (same calls, same order, same seed)."""
    rng = np.random.default_rng(seed)
    x = x8 / 255.0
    if name == "gaussian_noise":
        return _u8(x + rng.standard_normal(x.shape, dtype=np.float32) * np.float32(c))
    if name == "speckle_noise":
        return _u8(x + x * (rng.standard_normal(x.shape, dtype=np.float32) * np.float32(c)))
    if name == "shot_noise":  # 8-bit input: inverse-CDF sampling of Poisson(x * c), one uniform per pixel
        return _u8(poisson.ppf(rng.random(x.shape), x * c) / c)
    u = rng.random(x.shape, dtype=np.float32)  # impulse: salt & pepper, amount c, half each
    out = x.copy()
    out[u < c / 2] = 0
    out[(u >= c / 2) & (u < c)] = 1
    return _u8(out)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("name", ["gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise"])
def test_noise_equals_the_reference_formula_on_the_same_draws(preset, name):
    x = _inputs(preset)[:2]
    for sev in (1, 5):
        c = PARAMS[preset][name][sev - 1]
        got = apply_corruption(x, name, sev, preset, np.random.default_rng(sev)).astype(int)
        ref = _noise_reference(name, x, c, sev).astype(int)
        assert np.abs(got - ref).max() <= 1
        assert np.mean(got != ref) < 0.002


@pytest.mark.parametrize(("preset", "sev"), [("cifar", 5), ("imagenet", 2)])
def test_glass_blur_equals_the_reference_formula_quantized_twice(preset, sev):
    x = _inputs(preset)[:1] if preset == "imagenet" else _inputs(preset)
    sigma, delta, iters = PARAMS[preset]["glass_blur"][sev - 1]
    got = apply_corruption(x, "glass_blur", sev, preset, np.random.default_rng(3)).astype(int)
    n, h, w, _ = x.shape
    disp = np.random.default_rng(3).integers(-delta, delta, size=(iters, n, h - 2 * delta, w - 2 * delta, 2))
    for i in range(n):
        img = np.uint8(sk_gaussian(x[i] / 255.0, sigma=sigma, channel_axis=-1) * 255)  # first truncation
        for it in range(iters):
            img = _glass_reference(img, delta, disp[it, i], swap=False)  # the reference loop
        ref = _u8(sk_gaussian(img / 255.0, sigma=sigma, channel_axis=-1)).astype(int)
        assert np.abs(got[i] - ref).max() <= 1
        assert np.mean(got[i] != ref) < 0.02


def _plasma_by_whole_map_shifts(uniforms: list[np.ndarray], size: int, decay: float) -> np.ndarray:
    """The diamond-square map computed the slow way: every neighbour read by shifting the whole map."""
    m = np.zeros((uniforms[0].shape[0], size, size))
    step, wibble, level = size, 100.0, 0
    while step >= 2:
        half = step // 2
        u_sq, u_d1, u_d2 = uniforms[3 * level : 3 * level + 3]
        c = m[:, 0::step, 0::step]
        m[:, half::step, half::step] = (
            c + np.roll(c, -1, 1) + np.roll(c, -1, 2) + np.roll(c, (-1, -1), (1, 2))
        ) / 4 + wibble**2 * u_sq
        for (r0, c0), u in (((0, half), u_d1), ((half, 0), u_d2)):
            total = sum(np.roll(m, s, ax)[:, r0::step, c0::step] for s in (half, -half) for ax in (1, 2))
            m[:, r0::step, c0::step] = total / 4 + wibble**2 * u
        step, wibble, level = half, wibble / decay, level + 1
    m -= m.min(axis=(1, 2), keepdims=True)
    return m / m.max(axis=(1, 2), keepdims=True)


@pytest.mark.parametrize(("size", "decay"), [(32, 3.0), (256, 1.4)])
def test_plasma_fractal_equals_the_whole_map_diamond_square(size, decay):
    rng = np.random.default_rng(size)
    uniforms, step = [], size
    while step >= 2:
        uniforms.extend(rng.uniform(-1, 1, (2, size // step, size // step)) for _ in range(3))
        step //= 2
    np.testing.assert_allclose(
        plasma_fractal(uniforms, size, decay), _plasma_by_whole_map_shifts(uniforms, size, decay), atol=1e-5
    )


@pytest.mark.parametrize("preset", PRESETS)
def test_fog_equals_the_reference_formula(preset, monkeypatch):
    import robust_eval.corruptions as corr

    x = _inputs(preset)[:2]
    maps = []
    real = corr.plasma_fractal
    monkeypatch.setattr(corr, "plasma_fractal", lambda *a: maps.append(real(*a)) or maps[-1])
    a, _decay = PARAMS[preset]["fog"][3]
    got = apply_corruption(x, "fog", 4, preset, np.random.default_rng(0)).astype(int)
    size = 32 if preset == "cifar" else 224
    for i in range(len(x)):
        xf = x[i] / 255.0
        top = xf.max()
        ref = _u8((xf + a * maps[0][i, :size, :size, None]) * top / (top + a)).astype(int)
        assert np.abs(got[i] - ref).max() <= 1
        assert np.mean(got[i] != ref) < 0.002


@pytest.fixture(scope="module")
def frost_folder(tmp_path_factory) -> Path:
    """Stand-in photographs under the reference's file names (we never ship the real ones)."""
    folder = tmp_path_factory.mktemp("frost")
    rng = np.random.default_rng(0)
    for k, name in enumerate(FROST_FILES):
        h, w = 300 + 20 * k, 480 + 10 * k
        img = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (5, 5), 1.5)
        cv2.imwrite(str(folder / name), img)
    return folder


@pytest.mark.parametrize("preset", PRESETS)
def test_frost_with_photographs_is_bit_identical_to_the_reference_formula(preset, frost_folder):
    x = _inputs(preset)
    n, h, w, _ = x.shape
    for sev in (1, 4):
        img_w, frost_w = PARAMS[preset]["frost"][sev - 1]
        got = apply_corruption(x, "frost", sev, preset, np.random.default_rng(sev), frost_images=frost_folder)
        rng = np.random.default_rng(sev)  # our draw order: photograph, rows, columns (one per image)
        which = rng.integers(0, 5, n)
        photos = []
        for k in which:  # the reference's loading: cv2.imread, 0.2x cv2.resize for CIFAR, BGR -> RGB
            photo = cv2.imread(str(frost_folder / FROST_FILES[k]))
            photos.append(cv2.resize(photo, (0, 0), fx=0.2, fy=0.2) if preset == "cifar" else photo)
        oy = rng.integers(0, np.array([p.shape[0] for p in photos]) - h)
        ox = rng.integers(0, np.array([p.shape[1] for p in photos]) - w)
        for i in range(n):
            crop = photos[i][oy[i] : oy[i] + h, ox[i] : ox[i] + w][..., [2, 1, 0]]
            ref = np.uint8(np.clip(img_w * x[i] + frost_w * crop, 0, 255))
            np.testing.assert_array_equal(got[i], ref)


def test_frost_images_folder_missing_a_photograph_says_which(tmp_path):
    x = np.zeros((1, 32, 32, 3), np.uint8)
    with pytest.raises(FileNotFoundError, match=r"missing frost1\.png"):
        apply_corruption(x, "frost", 1, "cifar", np.random.default_rng(0), frost_images=tmp_path)


# Mean absolute change from clean (levels) of the reference frost per severity on _inputs(preset),
# measured once (2026-12-01) with the reference scripts' frost() and their photographs: 250 draws
# of every image, np.random.seed(0).
REFERENCE_FROST_CHANGE = {
    "cifar": (31.58, 47.00, 53.41, 50.19, 49.50),
    "imagenet": (60.06, 74.00, 80.43, 78.51, 80.53),
}
# Fraction of pixels with grey level > 0.5 in each of the five photographs the reference draws from
# (full-size photographs, cv2.imread / 255), measured once alongside robust_eval.frost.FROST_LOOK.
REFERENCE_FROST_COVERAGE = (0.536, 0.996, 0.996, 0.821, 0.428)


@pytest.mark.parametrize(("preset", "reps"), [("cifar", 100), ("imagenet", 30)])
def test_procedural_frost_changes_images_as_much_as_the_reference_photographs(preset, reps):
    x = np.concatenate([_inputs(preset)] * reps)
    rng = np.random.default_rng(0)
    for sev in range(1, 6):
        y = apply_corruption(x, "frost", sev, preset, rng)
        change = np.abs(y.astype(float) - x).mean()
        assert change == pytest.approx(REFERENCE_FROST_CHANGE[preset][sev - 1], rel=0.10), sev


@pytest.mark.parametrize("preset", PRESETS)
def test_procedural_frost_textures_have_the_photographs_colour_spread_and_coverage(preset):
    from robust_eval.frost import FROST_LOOK, frost_textures

    size = 32 if preset == "cifar" else 224
    tex = frost_textures(preset, size, size)
    assert tex.shape[0] == 5 and not tex.flags.writeable
    for k, look in enumerate(FROST_LOOK):
        np.testing.assert_allclose(tex[k].mean(axis=(0, 1)), look[:3], atol=0.01)
        gray = tex[k].mean(axis=-1)
        assert gray.std() == pytest.approx(look[3], rel=0.1)
        assert (gray > 0.5).mean() == pytest.approx(REFERENCE_FROST_COVERAGE[k], abs=0.06)
    # a bright veil: white/turquoise, blue >= green >= red in every texture, as in the photographs
    means = tex.mean(axis=(1, 2))
    assert (means[:, 2] >= means[:, 1]).all() and (means[:, 1] >= means[:, 0]).all()
    assert means.mean() > 0.55


@pytest.mark.parametrize(("h", "w", "n"), [(32, 32, 300), (224, 224, 20), (37, 40, 120), (33, 30, 120)])
def test_pixelate_in_stacks_equals_pillow_image_by_image(h, w, n):
    """Odd sizes included: 37 px at 0.6 (22 px) has box edges on pixel centres and goes image by image."""
    x = np.random.default_rng(h).integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    for c in sorted(set(PARAMS["cifar"]["pixelate"] + PARAMS["imagenet"]["pixelate"])):
        small = (int(w * c), int(h * c))
        got = _pixelate(x, c)
        for i in range(0, n, 7):
            img = Image.fromarray(x[i]).resize(small, Image.Resampling.BOX)
            np.testing.assert_array_equal(got[i], np.asarray(img.resize((w, h), Image.Resampling.BOX)))


@pytest.mark.parametrize(("level", "c"), [(128, 60), (40, 3), (255, 500), (200, 12), (3, 25)])
def test_shot_noise_counts_are_poisson_distributed(level, c):
    from robust_eval.corruptions import shot_noise_counts

    levels = np.full(200_000, level, np.uint8)
    k = shot_noise_counts(levels, c, np.random.default_rng(level).random(levels.shape))
    lam = level / 255 * c
    support = np.arange(int(lam + 8 * np.sqrt(lam) + 10))
    freq = np.bincount(k, minlength=len(support))[: len(support)] / k.size
    assert np.abs(freq - poisson.pmf(support, lam)).max() < 0.004
    assert k.mean() == pytest.approx(lam, rel=0.01, abs=0.01)


@pytest.mark.parametrize("name", ["shot_noise", "pixelate", "fog", "frost"])
def test_corrupt_transform_on_uint8_rgb_is_apply_corruption(name):
    import albumentations as A

    from robust_eval.corruptions import Corrupt

    img = _inputs("cifar")[0]
    t = A.Compose([Corrupt(name, severity=3, preset="cifar", p=1.0)], seed=4)
    out = t(image=img)["image"]
    assert out.dtype == np.uint8 and out.shape == img.shape
    t2 = A.Compose([Corrupt(name, severity=3, preset="cifar", p=1.0)], seed=4)
    params = t2.transforms[0].get_params()
    want = apply_corruption(img[None], name, 3, "cifar", np.random.default_rng(params["seed"]))[0]
    np.testing.assert_array_equal(out, want)
