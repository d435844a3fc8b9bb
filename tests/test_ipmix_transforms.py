"""IPMix and PixMix as Albumentations transforms: the contract of an image-only transform,
serialization, seeding, workers, sampling statistics, and bad input."""

from __future__ import annotations

import json
import multiprocessing
import pickle
import warnings
from collections import Counter

import albumentations as A
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from skimage import data

from albumentations_ipmix import FolderSource, IPMix, MixingSourceError, PixMix
from albumentations_ipmix import functional as F

PICTURES = np.random.default_rng(0).integers(0, 256, (6, 48, 40, 3), dtype=np.uint8)
TRANSFORMS = [
    pytest.param(lambda **kw: IPMix(fractals=PICTURES, **kw), id="IPMix"),
    pytest.param(lambda **kw: PixMix(fractals=PICTURES, **kw), id="PixMix"),
]


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.resize(data.chelsea(), (48, 40), interpolation=cv2.INTER_AREA)


def _run(transform, seed=137, **data_):
    return A.Compose([transform], seed=seed)(**data_)


# ---------------------------------------------------------------------------- contract
@pytest.mark.parametrize("make", TRANSFORMS)
@pytest.mark.parametrize("shape", [(40, 48), (40, 48, 1), (40, 48, 3), (40, 48, 5), (33, 17, 3)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_dtype_shape_and_contiguity_are_kept(make, shape, dtype):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    if dtype == np.float32:
        img = img.astype(np.float32) / 255
    img.setflags(write=False)  # timm hands over read-only arrays: the input must not be touched
    before = img.copy()
    for seed in range(6):
        out = _run(make(), seed=seed, image=img)["image"]
        assert out.shape == img.shape
        assert out.dtype == img.dtype
        assert out.flags.c_contiguous
        if dtype == np.float32:
            assert 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("make", TRANSFORMS)
def test_same_seed_same_output_and_different_seeds_differ(make, photo):
    outs = [_run(make(), seed=s, image=photo)["image"] for s in (5, 5, 6, 7)]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not all(np.array_equal(outs[0], o) for o in outs[2:])
    transform = make()
    transform.set_random_seed(11)
    first = transform(image=photo)["image"]
    transform.set_random_seed(11)
    np.testing.assert_array_equal(transform(image=photo)["image"], first)


@pytest.mark.parametrize("make", TRANSFORMS)
def test_image2_gets_the_identical_augmentation(make, photo):
    pipeline = A.Compose([make()], additional_targets={"image2": "image"}, seed=3)
    for _ in range(5):
        out = pipeline(image=photo, image2=photo.copy())
        np.testing.assert_array_equal(out["image"], out["image2"])


@pytest.mark.parametrize("make", TRANSFORMS)
def test_images_batches_as_array_and_list(make, photo):
    batch = np.stack([photo, photo[::-1].copy(), photo])
    out = _run(make(), images=batch)["images"]
    assert out.shape == batch.shape
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out[0], out[2])  # same params for every image of a batch
    listed = _run(make(), images=list(batch))["images"]
    assert isinstance(listed, list)
    np.testing.assert_array_equal(np.stack(listed), out)


@pytest.mark.parametrize("make", TRANSFORMS)
def test_uint8_and_float32_outputs_are_close(make, photo):
    as_uint8 = _run(make(), seed=4, image=photo)["image"].astype(np.float32)
    as_float = _run(make(), seed=4, image=photo.astype(np.float32) / 255)["image"] * 255
    assert np.abs(as_uint8 - as_float).mean() < 1.0


# ---------------------------------------------------------------------------- serialization
def _folder(tmp_path, n=5):
    rng = np.random.default_rng(9)
    (tmp_path / "frac" / "cls").mkdir(parents=True)
    for i in range(n):
        cv2.imwrite(
            str(tmp_path / "frac" / "cls" / f"{i}.png"), rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)
        )
    return tmp_path / "frac"


@pytest.mark.parametrize("cls", [IPMix, PixMix])
def test_serialization_round_trips_give_identical_outputs(tmp_path, cls, photo):
    kwargs = {"mixing_ops": ["add", "random_elements"], "patch_sizes": [4, 16], "overflow": "clip"}
    transform = cls(fractals=_folder(tmp_path), **(kwargs if cls is IPMix else {"k": 3}))
    pipeline = A.Compose([A.HorizontalFlip(), transform])
    restored = [A.from_dict(A.to_dict(pipeline))]
    for fmt in ("json", "yaml"):
        path = tmp_path / f"pipe.{fmt}"
        A.save(pipeline, str(path), data_format=fmt)
        restored.append(A.load(str(path), data_format=fmt))
    restored.append(pickle.loads(pickle.dumps(pipeline)))
    assert json.loads(json.dumps(A.to_dict(pipeline)))["transform"]["transforms"][1]["fractals"] == str(
        tmp_path / "frac"
    )
    for other in restored:
        for seed in (0, 1, 2):
            pipeline.set_random_seed(seed)
            other.set_random_seed(seed)
            np.testing.assert_array_equal(pipeline(image=photo)["image"], other(image=photo)["image"])


def test_in_memory_source_pickles_but_refuses_json_with_a_clear_error(photo):
    transform = IPMix(fractals=PICTURES)
    clone = pickle.loads(pickle.dumps(transform))
    transform.set_random_seed(1)
    clone.set_random_seed(1)
    np.testing.assert_array_equal(transform(image=photo)["image"], clone(image=photo)["image"])
    with pytest.raises(TypeError, match="in-memory mixing source cannot be serialized"):
        A.to_dict(A.Compose([transform]))


def _augment_in_pool(args):
    transform, image = args
    return transform(image=image)["image"]


@pytest.mark.parametrize("make", TRANSFORMS)
def test_pool_map_works(make, photo):
    transform = make()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        outs = pool.map(_augment_in_pool, [(transform, photo)] * 4)
    assert all(o.shape == photo.shape and o.dtype == photo.dtype for o in outs)


# ---------------------------------------------------------------------------- workers
class _Photos:
    def __init__(self, photo, transform):
        self.photo = photo
        self.transform = transform

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return self.transform(image=self.photo)["image"]


def test_dataloader_workers_do_not_repeat_each_other(photo):
    torch = pytest.importorskip("torch")
    from albumentations_ipmix import worker_init_fn

    pipeline = A.Compose([A.HorizontalFlip(p=0.5), IPMix(fractals=PICTURES)], seed=7)
    dataset = _Photos(photo, pipeline)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, num_workers=2, worker_init_fn=worker_init_fn)
    first, second = (b.numpy() for b in loader)  # worker 0 makes batch 0, worker 1 batch 1
    assert not np.array_equal(first, second)
    assert not any(np.array_equal(first[i], second[i]) for i in range(4))
    # IPMix alone reseeds itself in a new process even without worker_init_fn
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(
        _Photos(photo, IPMix(fractals=PICTURES)), batch_size=4, num_workers=2
    )
    first, second = (b.numpy() for b in loader)
    assert not np.array_equal(first, second)
    # and the whole thing is reproducible when torch is seeded
    torch.manual_seed(0)
    again = [
        b.numpy()
        for b in torch.utils.data.DataLoader(
            _Photos(photo, IPMix(fractals=PICTURES)), batch_size=4, num_workers=2
        )
    ]
    np.testing.assert_array_equal(again[0], first)


# ---------------------------------------------------------------------------- sources
def test_folder_source_is_recursive_lazy_and_cached(tmp_path):
    root = _folder(tmp_path, n=3)
    (root / "nested" / "deeper").mkdir(parents=True)
    cv2.imwrite(str(root / "nested" / "deeper" / "x.jpg"), np.zeros((20, 30, 3), np.uint8))
    (root / "notes.txt").write_text("not a picture")
    source = FolderSource(root, cache_size=2)
    assert len(source) == 4
    fitted = source.fitted(0, 32, 32)
    assert fitted.shape == (36, 43, 3)  # short side 36 = 1.125 x 32, aspect kept
    assert source.fitted(0, 32, 32) is fitted
    source.fitted(1, 32, 32)
    source.fitted(2, 32, 32)
    assert source.fitted(0, 32, 32) is not fitted  # evicted (bounded cache)
    assert pickle.loads(pickle.dumps(source))._cache == {}


def test_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(MixingSourceError, match=r"'.*missing' does not exist.*ImageFolder"):
        IPMix(fractals=tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MixingSourceError, match="contains no image files"):
        IPMix(fractals=tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    for i in range(2):
        (tmp_path / "broken" / f"{i}.png").write_bytes(b"not a png")
    with pytest.raises(MixingSourceError, match="none of its 2 image files could be read"):
        IPMix(fractals=tmp_path / "broken")
    cv2.imwrite(str(tmp_path / "broken" / "ok.png"), np.zeros((8, 8, 3), np.uint8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        transform = IPMix(fractals=str(tmp_path / "broken"))
    messages = [str(w.message) for w in caught if "unreadable" in str(w.message)]
    assert len(messages) == 1
    assert "skipping 2 unreadable" in messages[0] and "0.png" in messages[0]
    assert len(transform.source) == 1


def test_per_call_pictures_take_precedence(photo):
    white = np.full((60, 60, 3), 255, np.uint8)
    transform = IPMix(fractals=PICTURES, mixing_ops=["random_pixels"], fractal_prob=1.0, depth=2)
    pipeline = A.Compose([transform], seed=0)
    for _ in range(20):
        params = transform.get_params_dependent_on_data({"shape": photo.shape}, {"ipmix_metadata": [white]})
        if params["fractal"] is not None:
            assert (params["fractal"] == 255).all()
    out = pipeline(image=photo, ipmix_metadata=[white])["image"]
    assert out.shape == photo.shape


@pytest.mark.parametrize(("cls", "key"), [(IPMix, "ipmix_metadata"), (PixMix, "pixmix_metadata")])
def test_strict_compose_accepts_the_metadata_key_with_and_without_it(cls, key, photo):
    white = np.full((60, 60, 3), 255, np.uint8)
    transform = cls(fractals=PICTURES)
    assert key in transform.available_keys and transform.targets_as_params == []  # declared, optional
    for pipeline in (
        A.Compose([A.HorizontalFlip(), transform], strict=True, seed=0),
        A.Compose([A.OneOf([cls(fractals=PICTURES)], p=1)], strict=True, seed=0),
    ):
        assert pipeline(image=photo)["image"].shape == photo.shape
        out = pipeline(image=photo, **{key: [white]})
        assert out["image"].shape == photo.shape
        assert out[key][0] is white  # passed through untouched
        with pytest.raises(ValueError, match="not in available keys"):  # strict mode still guards
            pipeline(image=photo, **{key + "_typo": [white]})


@pytest.mark.parametrize("cls", [IPMix, PixMix])
def test_a_custom_metadata_key_survives_serialization_under_strict_compose(cls, photo):
    white = np.full((60, 60, 3), 255, np.uint8)
    pipeline = A.Compose([cls(metadata_key="mixing_pictures", p=1.0)], strict=True)
    restored = A.from_dict(A.to_dict(pipeline))
    restored.strict = True  # Albumentations 2.0.8's to_dict does not record ``strict``
    assert "mixing_pictures" in restored.available_keys
    for seed in (0, 1, 2):
        pipeline.set_random_seed(seed)
        restored.set_random_seed(seed)
        expected = pipeline(image=photo, mixing_pictures=[white])["image"]
        np.testing.assert_array_equal(restored(image=photo, mixing_pictures=[white])["image"], expected)


@pytest.mark.parametrize("make", TRANSFORMS)
def test_volume_slices_keep_shape_and_dtype(make):
    volume = np.random.default_rng(4).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    out = _run(make(), seed=2, volume=volume)["volume"]
    assert out.shape == volume.shape and out.dtype == volume.dtype


def test_without_any_source_the_error_says_what_to_pass(photo, monkeypatch):
    from albumentations_ipmix import sources

    monkeypatch.delitem(sources._SOURCE_TYPES, "procedural", raising=False)
    transform = IPMix(fractals=None, fractal_prob=1.0, mixing_ops=["add"], depth=3, width=8)
    with pytest.raises(MixingSourceError, match=r"no mixing source given.*ipmix_metadata"):
        for seed in range(10):
            _run(transform, seed=seed, image=photo)


# ---------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"width": 0}, "width"),
        ({"depth": -1}, "depth"),
        ({"alpha": 0}, "alpha"),
        ({"beta": -1}, "beta"),
        ({"severity": 11}, "severity"),
        ({"mixing_ops": ["add", "blur"]}, "mixing_ops"),
        ({"mixing_ops": []}, "mixing_ops"),
        ({"patch_shapes": ["circle"]}, "patch_shapes"),
        ({"patch_sizes": [1, 4]}, "patch_sizes"),
        ({"fractal_prob": 1.5}, "fractal_prob"),
        ({"overflow": "saturate"}, "overflow"),
    ],
)
def test_invalid_parameters_name_the_parameter(kwargs, name):
    with pytest.raises(ValueError, match=name):
        IPMix(fractals=PICTURES, **kwargs)


def test_invalid_pixmix_parameters():
    with pytest.raises(ValueError, match="k"):
        PixMix(fractals=PICTURES, k=-1)


@pytest.mark.parametrize("make", TRANSFORMS)
@pytest.mark.parametrize("dtype", [np.float64, np.int16, np.uint16])
def test_unsupported_dtypes_raise_type_error(make, dtype, photo):
    with pytest.raises(TypeError, match=r"supported dtypes are uint8 \[0, 255\] and float32 \[0, 1\]"):
        _run(make(), image=photo.astype(dtype))


@pytest.mark.parametrize("make", TRANSFORMS)
def test_nan_in_float_images_is_an_error(make, photo):
    img = photo.astype(np.float32) / 255
    img[3, 4, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _run(make(), image=img)


# ---------------------------------------------------------------------------- the algorithm's draws
def _params(transform, shape, n, seed=0):
    transform.set_random_seed(seed)
    return [transform.get_params_dependent_on_data({"shape": shape}, {}) for _ in range(n)]


def test_chain_depth_is_uniform_and_levels_are_balanced():
    transform = IPMix(fractals=PICTURES, depth=3, width=4)
    chains = [c for p in _params(transform, (32, 32, 3), 1500) for c in p["chains"]]
    depths = Counter(len(c) for c in chains)
    for d in range(4):
        assert abs(depths[d] / len(chains) - 0.25) < 0.02
    levels = Counter(type(c[0]).__name__ for c in chains if c)
    assert abs(levels["ImageOp"] / sum(levels.values()) - 0.5) < 0.03
    assert all(len({type(s) for s in c}) <= 1 for c in chains)  # one level per chain


def test_weights_and_blend_follow_dirichlet_and_beta():
    params = _params(IPMix(fractals=PICTURES, alpha=1.0, width=3), (32, 32, 3), 3000)
    weights = np.array([p["weights"] for p in params])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    np.testing.assert_allclose(weights.mean(axis=0), 1 / 3, atol=0.02)
    ms = np.array([p["m"] for p in params])
    assert abs(ms.mean() - 0.5) < 0.02 and abs(ms.var() - 1 / 12) < 0.01  # Beta(1, 1) = U(0, 1)


@pytest.mark.parametrize("shape", [(32, 32, 3), (224, 224, 3), (40, 70, 3)])
def test_patch_boxes_stay_in_bounds_with_the_specified_shapes(shape):
    height, width = shape[:2]
    sizes = F.default_patch_sizes(height, width)
    steps = [
        s
        for p in _params(IPMix(fractals=PICTURES, depth=3), shape, 1500)
        for c in p["chains"]
        for s in c
        if isinstance(s, F.PatchStep)
    ]
    assert len(steps) > 1000
    squares = 0
    for step in steps:
        top, left, h, w = step.box
        assert 0 <= top and 0 <= left and h >= 1 and w >= 1
        assert top + h <= height and left + w <= width
        assert max(h, w) <= max(sizes)
        squares += h == w and (h in sizes or top + h == height or left + w == width)
        if step.mask is not None:
            assert step.mask.shape[:2] == (h, w)
            assert step.mask.shape[2] == (1 if step.op == "random_pixels" else shape[2])
    if height == width:  # on square images the full-side patch stays square after clipping
        assert 0.45 < squares / len(steps) < 0.6  # half squares (scars are rarely square by chance)
    ops = Counter(s.op for s in steps)
    assert all(abs(ops[o] / len(steps) - 0.25) < 0.04 for o in F.MIXING_OPS)
    fractal_partners = sum(s.partner is None for s in steps) / len(steps)
    assert abs(fractal_partners - 0.5) < 0.04


def test_scar_sides_are_uniform_on_2_to_s():
    steps = [
        s
        for p in _params(IPMix(fractals=PICTURES, patch_shapes=["scar"], patch_sizes=[16]), (64, 64, 3), 2500)
        for c in p["chains"]
        for s in c
        if isinstance(s, F.PatchStep)
    ]
    heights = np.array([s.box[2] for s in steps])
    assert heights.min() == 2 and heights.max() == 16
    assert abs(heights.mean() - 9.0) < 0.3


def test_selected_subsets_are_respected():
    transform = IPMix(fractals=PICTURES, mixing_ops=["multiply"], patch_shapes=["square"], patch_sizes=[8])
    for p in _params(transform, (32, 32, 3), 300):
        for chain in p["chains"]:
            for step in chain:
                if isinstance(step, F.PatchStep):
                    assert step.op == "multiply" and step.box[2:] == (8, 8)
                    assert step.a > 0 and (0 < step.b < 1 or -1 < step.b < 0)
                else:
                    assert step.name in F.IPMIX_OPS


def test_all_ops_extends_the_op_list():
    names = {
        s.name
        for p in _params(IPMix(fractals=PICTURES, all_ops=True), (32, 32, 3), 800)
        for c in p["chains"]
        for s in c
        if isinstance(s, F.ImageOp)
    }
    assert names == set(F.IPMIX_ALL_OPS)


def test_statistics_on_real_photos():
    """Over many draws on real photos, IPMix changes images substantially on average but keeps
    their overall brightness, and outputs never equal the input for every draw."""
    photos = [
        cv2.resize(getattr(data, n)(), (32, 32), interpolation=cv2.INTER_AREA)
        for n in ("astronaut", "coffee", "chelsea", "rocket")
    ]
    pipeline = A.Compose([IPMix(fractals=PICTURES)], seed=0)
    diffs, shifts = [], []
    for img in photos:
        for _ in range(150):
            out = pipeline(image=img)["image"].astype(float)
            diffs.append(np.abs(out - img).mean())
            shifts.append(out.mean() - img.mean())
    diffs = np.array(diffs)
    assert 5 < diffs.mean() < 60
    assert np.mean(diffs < 0.5) < 0.35  # identity-like outputs (m ~ 0 or all chains empty) are a minority
    assert abs(np.mean(shifts)) < 15


# ---------------------------------------------------------------------------- fuzzing
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    height=st.integers(2, 40),
    width=st.integers(2, 40),
    channels=st.sampled_from([None, 1, 2, 3, 4, 6]),
    as_float=st.booleans(),
    width_k=st.integers(1, 4),
    depth=st.integers(0, 4),
    beta=st.floats(0.1, 8),
    severity=st.floats(0.1, 10),
    ops=st.sets(st.sampled_from(F.MIXING_OPS), min_size=1),
    shapes=st.sets(st.sampled_from(F.PATCH_SHAPES), min_size=1),
    overflow=st.sampled_from(["wrap", "clip"]),
    all_ops=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_fuzz_contract_holds(
    height, width, channels, as_float, width_k, depth, beta, severity, ops, shapes, overflow, all_ops, seed
):
    shape = (height, width) if channels is None else (height, width, channels)
    img = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    if as_float:
        img = img.astype(np.float32) / 255
    transforms = [
        IPMix(
            fractals=PICTURES,
            width=width_k,
            depth=depth,
            beta=beta,
            severity=severity,
            mixing_ops=sorted(ops),
            patch_shapes=sorted(shapes),
            overflow=overflow,
            all_ops=all_ops,
        ),
        PixMix(fractals=PICTURES, k=depth, beta=beta, severity=severity, all_ops=all_ops),
    ]
    for transform in transforms:
        out = _run(transform, seed=seed % 1000, image=img)["image"]
        assert out.shape == img.shape and out.dtype == img.dtype and out.flags.c_contiguous
        if as_float:
            assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1


def test_plugin_imports_and_runs_without_torch():
    """albumentations_ipmix is an Albumentations plugin: it must work where torch is not installed."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
        "import numpy as np, albumentations as A\n"
        "from albumentations_ipmix import IPMix, PixMix\n"
        "out = A.Compose([IPMix(), PixMix()], seed=0)(image=np.zeros((32, 32, 3), np.uint8))['image']\n"
        "assert out.shape == (32, 32, 3) and 'torch' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
