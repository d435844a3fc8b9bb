"""IPMix and PixMix outputs on fixed seeds, pinned so that a refactor cannot change them unnoticed.

Two separate checks, because they hold on different grounds:

* **The random stream is exact.** Every draw a seeded transform makes (chain depths, ops, levels,
  patch boxes, mixing ops, masks, weights) comes from NumPy's ``Generator`` and depends on no
  machine: the discrete draws and the masks must be equal, the float draws (Dirichlet / Beta
  weights, ``a``/``b``) equal to 1e-12 relative (libm's ``log``/``exp`` inside the Beta sampler may
  differ in the last bit between C libraries).
* **The pixels are close.** The image kernels go through OpenCV and NumPy SIMD paths whose float
  rounding depends on the CPU's instruction set and the OpenCV build (seen: AVX-512 against AVX2,
  ``opencv-python-headless`` 5.0 against 5.1). So the outputs are compared with a stated tolerance:
  per output, at most 0.5% of the values more than one grey level (1/255 for float output) away
  and a mean absolute difference of at most 0.05 grey levels. One changed draw changes whole
  chains (tens of grey levels over most of the image), far outside that tolerance.

The golden files under ``tests/data/golden/mixing_*`` were written by this module's ``__main__``
block with the code of main at commit 237d1b0. On that machine (Intel Xeon with AVX-512, NumPy 2.4.6,
``opencv-python-headless`` 5.1.0.95) the code of commit 40f5b4a (before the op table, whose outputs
earlier sessions pinned by sha256) gave the same 130 arrays bit for bit, checked by running both
trees side by side; run with OpenCV's AVX/AVX2/FMA3 paths disabled (``OPENCV_CPU_DISABLE``) the
same draws gave outputs at most one grey level away on fewer than 0.01% of the values.
Regenerate (only for a deliberate change of behaviour): ``python tests/test_pinned_mixing.py``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from json_close import assert_json_close
from skimage import data

from albumentations_ipmix import IPMix, PixMix

GOLDEN = Path(__file__).parent / "data" / "golden"
DRAWS = GOLDEN / "mixing_draws.json"
OUTPUTS = GOLDEN / "mixing_outputs.npz"

#: (transform, keyword arguments, seed): the seeded transforms whose outputs are pinned
CASES: list[tuple[str, tuple[tuple[str, Any], ...], int]] = [
    (name, kwargs, seed)
    for name, options in [
        (
            "IPMix",
            [(), (("all_ops", True),), (("all_ops", True), ("fractal_prob", 0.2), ("overflow", "clip"))],
        ),
        ("PixMix", [(), (("all_ops", True),)]),
    ]
    for kwargs in options
    for seed in (0, 1)
]
#: calls per case: 12 on the uint8 photo, then one on the same photo as float32 in [0, 1]
UINT8_CALLS = 12
#: the calls whose pixels are stored (all draws are): the first uint8 calls and the float call
PIXEL_CALLS = (0, 1, 2, 3, UINT8_CALLS)
FLOAT_RTOL = 1e-12
MAX_FAR_FRACTION = 0.005  # share of values more than one grey level away
MAX_MEAN_ABS = 0.05  # grey levels


def case_id(case: tuple) -> str:
    name, kwargs, seed = case
    options = ",".join(f"{k}={v}" for k, v in kwargs) or "defaults"
    return f"{name}[{options}]-seed{seed}"


def _describe(value: Any) -> Any:
    """A JSON-able, machine-independent description of drawn parameters (masks as sha256)."""
    if isinstance(value, np.ndarray):
        return {"mask_sha256": hashlib.sha256(np.packbits(value.astype(bool)).tobytes()).hexdigest()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple steps and ops
        return {"type": type(value).__name__, **{f: _describe(getattr(value, f)) for f in value._fields}}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


def run_case(case: tuple) -> tuple[list[dict], list[np.ndarray]]:
    """The drawn parameters and the outputs of the 13 calls of one seeded transform."""
    name, kwargs, seed = case
    photo = cv2.resize(data.astronaut(), (64, 48), interpolation=cv2.INTER_AREA)
    pictures = np.random.default_rng(0).integers(0, 256, (4, 60, 60, 3), dtype=np.uint8)
    transform = {"IPMix": IPMix, "PixMix": PixMix}[name](fractals=pictures, p=1.0, **dict(kwargs))
    transform.set_random_seed(seed)
    draws: list[dict] = []
    draw = transform.get_params_dependent_on_data

    def recording_draw(params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        drawn = draw(params, data)
        draws.append({k: _describe(v) for k, v in sorted(drawn.items()) if k != "fractal"})
        return drawn

    transform.get_params_dependent_on_data = recording_draw  # type: ignore[method-assign]
    outputs = [transform(image=photo)["image"] for _ in range(UINT8_CALLS)]
    outputs.append(transform(image=photo.astype(np.float32) / 255)["image"])
    return draws, outputs


def grey_levels(image: np.ndarray) -> np.ndarray:
    """uint8 as is, float in [0, 1] rounded to grey levels 0..255 (how the float output is stored)."""
    return np.round(image * 255.0) if image.dtype == np.float32 else image.astype(np.float64)


def stored(image: np.ndarray) -> np.ndarray:
    """What the golden file keeps of an output: uint8 as is, float32 rounded to 1/255 steps (compresses like uint8)."""
    return (grey_levels(image) / 255.0).astype(np.float32) if image.dtype == np.float32 else image


def _golden_draws() -> dict:
    return json.loads(DRAWS.read_text())


@pytest.fixture(scope="module")
def golden_outputs() -> dict[str, np.ndarray]:
    with np.load(OUTPUTS) as stored:
        return {key: stored[key] for key in stored.files}


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_random_stream_of_a_seeded_transform_is_pinned(case: tuple) -> None:
    draws, _ = run_case(case)
    assert len(draws) == UINT8_CALLS + 1
    expected = _golden_draws()[case_id(case)]
    assert_json_close(json.loads(json.dumps(draws)), expected, FLOAT_RTOL, 1e-300, case_id(case))


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_the_outputs_of_a_seeded_transform_are_pinned_within_one_grey_level(
    case: tuple, golden_outputs: dict[str, np.ndarray]
) -> None:
    _, outputs = run_case(case)
    for i in PIXEL_CALLS:
        out = outputs[i]
        expected = golden_outputs[f"{case_id(case)}/{i}"]
        assert out.dtype == expected.dtype and out.shape == expected.shape, f"call {i}"
        diff = np.abs(grey_levels(out) - grey_levels(expected))
        far = float(np.mean(diff > 1.0 + 1e-4))
        assert far <= MAX_FAR_FRACTION, f"call {i}: {far:.2%} of the values more than 1 grey level away"
        assert float(diff.mean()) <= MAX_MEAN_ABS, (
            f"call {i}: mean |difference| {diff.mean():.3f} grey levels"
        )


def test_the_pixel_comparison_would_see_one_changed_draw(golden_outputs: dict[str, np.ndarray]) -> None:
    """The tolerance is far below what a different draw does: the next seed's outputs fail it."""
    _, shifted = run_case(("IPMix", (), 2))
    failures = 0
    for i in PIXEL_CALLS[:-1]:
        out = shifted[i]
        expected = golden_outputs[f"{case_id(('IPMix', (), 0))}/{i}"]
        diff = np.abs(out.astype(np.float64) - expected.astype(np.float64))
        failures += float(np.mean(diff > 1.0)) > MAX_FAR_FRACTION or float(diff.mean()) > MAX_MEAN_ABS
    assert failures >= len(PIXEL_CALLS) - 2  # a call may draw a near-identity chain under both seeds


if __name__ == "__main__":  # regenerate the golden files (a deliberate change of behaviour only)
    all_draws: dict[str, list] = {}
    all_outputs: dict[str, np.ndarray] = {}
    for case in CASES:
        draws, outputs = run_case(case)
        all_draws[case_id(case)] = draws
        all_outputs.update({f"{case_id(case)}/{i}": stored(outputs[i]) for i in PIXEL_CALLS})
    DRAWS.write_text(
        "{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in all_draws.items()) + "\n}\n"
    )
    np.savez_compressed(OUTPUTS, **all_outputs)
