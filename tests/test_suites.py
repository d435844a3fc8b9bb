"""Suite runners: PGD behaviour, per-cell caching and resume, metric wiring, golden normalization."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from robust_eval_fixtures import (
    heldout_digits,
    make_context,
    make_data_root,
    save_net_checkpoint,
    write_png_tree,
    write_project_checkpoint,
)

from robust_eval import metrics
from robust_eval.baselines import ALEXNET_CLEAN_ERROR, ALEXNET_IMAGENET_C_ERRORS, Baseline
from robust_eval.cache import CellCache
from robust_eval.constants import BENCHMARK_CORRUPTIONS
from robust_eval.suites import (
    PGDSettings,
    SuiteSkipped,
    _summaries,
    pgd_attack,
    run_adversarial,
    run_calibration,
    run_clean,
    run_corruptions,
    run_ood,
    run_perturbations,
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("suites")
    ckpt = write_project_checkpoint(root / "ck.pth")
    data = make_data_root(root / "data", n=30)
    return root, ckpt, data


def test_pgd_defaults_are_the_paper_protocol(setup):
    s = PGDSettings()
    assert (s.eps, s.alpha, s.steps, s.random_start) == (2 / 255, 0.5 / 255, 20, True)
    _, ckpt, data = setup
    ctx = make_context(ckpt, data, setup[0] / "c0")
    attack = pgd_attack(ctx.model, s)
    assert attack.eps == 2 / 255 and attack.alpha == 0.5 / 255 and attack.steps == 20 and attack.random_start


def test_pgd_respects_eps_and_box_and_lowers_accuracy(setup):
    _, ckpt, data = setup
    ctx = make_context(ckpt, data, setup[0] / "c1")
    images, labels = heldout_digits(48)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(labels)
    settings = PGDSettings(eps=8 / 255, alpha=2 / 255, steps=7)
    torch.manual_seed(0)
    adv = pgd_attack(ctx.model, settings)(x, y)  # called outside no_grad, model already on its device
    assert float((adv - x).abs().max()) <= settings.eps + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    with torch.inference_mode():
        clean_acc = (ctx.model(x).argmax(1) == y).float().mean().item()
        adv_acc = (ctx.model(adv).argmax(1) == y).float().mean().item()
    assert clean_acc > 0.8
    assert adv_acc < clean_acc - 0.2


def test_run_adversarial_reports_budget_and_is_reproducible(setup):
    _, ckpt, data = setup
    pgd = PGDSettings(eps=8 / 255, alpha=2 / 255, steps=3)
    a = run_adversarial(make_context(ckpt, data, setup[0] / "c2", pgd=pgd, subset=20, batch_size=8))
    assert a["n"] == 20 and a["inside_unit_box"]
    assert a["max_linf_perturbation"] <= 8 / 255 + 1e-6
    assert a["adversarial_error"] >= a["clean_error"]
    b = run_adversarial(make_context(ckpt, data, setup[0] / "c3", pgd=pgd, subset=20, batch_size=8))
    assert a == b  # seeded random starts: a fresh cache gives the same numbers


def test_clean_calibration_ood_use_the_metrics(setup):
    _, ckpt, data = setup
    ctx = make_context(ckpt, data, setup[0] / "c4")
    clean = run_clean(ctx)
    images, labels = heldout_digits(30)
    with torch.inference_mode():
        logits = ctx.model(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255).numpy()
    assert clean["top1_error"] == pytest.approx(metrics.topk_error(logits, labels, 1))
    assert clean["n"] == 30
    cal = run_calibration(ctx)
    conf = -metrics.anomaly_scores(logits)
    assert cal["ece"] == pytest.approx(metrics.expected_calibration_error(conf, logits.argmax(1) == labels))
    assert cal["rms_calibration_error_reference_compatible"] is None  # n < 100
    assert "100" in cal["reference_compatible_note"]
    ood = run_ood(ctx)
    assert set(ood["sets"]) == {"gaussian", "rademacher", "blobs", "noise_npy", "textures"}
    assert ood["n_ood_per_set"] == 6 and all(s["n"] == 6 for s in ood["sets"].values())
    for s in ood["sets"].values():
        assert 0 <= s["auroc"] <= 1 and len(s["roc_tpr"]) == 101
        assert sum(s["hist_in"]) == 30 and sum(s["hist_out"]) == 6
    assert ood["mean_auroc"] == pytest.approx(np.mean([s["auroc"] for s in ood["sets"].values()]))


def test_corruptions_and_perturbations(setup):
    _, ckpt, data = setup
    ctx = make_context(ckpt, data, setup[0] / "c5", subset=10)
    out = run_corruptions(ctx)
    c = out["c"]
    assert len(c["corruptions"]) == 19 and c["missing"] == []
    assert all(len(v) == 5 for v in c["errors"].values()) and c["n_per_cell"]["fog"] == 10
    summ = out["summary"]
    expected = np.mean([c["errors"][n][str(s)] for n in BENCHMARK_CORRUPTIONS for s in range(1, 6)])
    assert summ["mce_unnormalized"] == pytest.approx(expected)
    assert summ["normalized"] is None  # CIFAR without --baseline
    assert out["c_bar"]["mean_error"] is not None and len(out["c_bar"]["corruptions"]) == 10
    p = run_perturbations(ctx)
    assert p["missing"] == [] and p["mfr"] is not None
    assert p["per_perturbation"]["gaussian_noise"]["noise_rule"] is True
    assert p["per_perturbation"]["rotate"]["noise_rule"] is False
    assert p["per_perturbation"]["rotate"]["frames"] == 6 and p["per_perturbation"]["rotate"]["n"] == 8


def test_golden_alexnet_errors_give_mce_100(setup):
    _, ckpt, data = setup
    ctx = make_context(ckpt, data, setup[0] / "c6")
    ctx.metadata = {**ctx.metadata, "dataset": "imagenet"}
    errors = {
        c: {str(s): v for s, v in zip(range(1, 6), ALEXNET_IMAGENET_C_ERRORS[c])}
        for c in BENCHMARK_CORRUPTIONS
    }
    out = _summaries(ctx, errors, ALEXNET_CLEAN_ERROR).normalized
    assert out["baseline"] == "alexnet"
    assert out["mce"] == pytest.approx(100.0)
    assert out["relative_mce"] == pytest.approx(100.0)
    half = {c: {s: v / 2 for s, v in per.items()} for c, per in errors.items()}
    assert _summaries(ctx, half, None).normalized["mce"] == pytest.approx(50.0)
    # a user baseline file is used for CIFAR too
    ctx.metadata = {**ctx.metadata, "dataset": "cifar10"}
    ctx.baseline = Baseline(
        "mine", corruption_errors={c: [0.5] * 5 for c in BENCHMARK_CORRUPTIONS}, clean_error=0.1
    )
    flat = {c: {str(s): 0.25 for s in range(1, 6)} for c in BENCHMARK_CORRUPTIONS}
    assert _summaries(ctx, flat, 0.05).normalized["mce"] == pytest.approx(50.0)


def test_missing_data_skips_with_a_where_to_put_it_message(tmp_path):
    ckpt = write_project_checkpoint(tmp_path / "ck.pth")
    ctx = make_context(ckpt, tmp_path / "empty", tmp_path / "cache")
    with pytest.raises(SuiteSkipped, match="cifar-10-batches-py"):
        run_clean(ctx)
    with pytest.raises(SuiteSkipped, match=r"CIFAR-10-C.*--generate"):
        run_corruptions(ctx)
    with pytest.raises(SuiteSkipped, match="CIFAR-10-P"):
        run_perturbations(ctx)


def test_imagefolder_dataset(tmp_path):
    from robust_eval_fixtures import write_bare_state_dict

    from robust_eval.cache import CellCache as Cache
    from robust_eval.checkpoints.formats import load_checkpoint
    from robust_eval.suites import Context

    images, labels = heldout_digits(40)
    assert len(set(labels.tolist())) == 10
    write_png_tree(tmp_path / "folder" / "test", images, labels, scale=3)
    write_png_tree(tmp_path / "nine" / "val", images[labels != 2], labels[labels != 2])
    model, info = load_checkpoint(
        write_bare_state_dict(tmp_path / "b.pth"), model="test_resnet", num_classes=10, dataset="imagefolder"
    )
    meta = info.to_dict()
    ctx = Context(
        model=model, metadata=meta, data_dir=tmp_path / "folder", cache=Cache(tmp_path / "c", meta["sha256"])
    )
    # the 10 class folders sort as class_0..class_9, matching the digit labels
    out = run_clean(ctx)
    assert out["n"] == 40 and out["source"].endswith("test")
    assert ctx.size == 160  # a bare state_dict gets the architecture's default data config
    ctx9 = Context(
        model=model, metadata=meta, data_dir=tmp_path / "nine", cache=Cache(tmp_path / "c", meta["sha256"])
    )
    with pytest.raises(ValueError, match="9 class folders but the model has 10 outputs"):
        run_clean(ctx9)


class _Boom(RuntimeError):
    pass


def test_resume_after_failure_gives_identical_results(setup, monkeypatch):
    root, ckpt, data = setup
    reference = run_corruptions(make_context(ckpt, data, root / "ref", subset=6))
    cache_dir = root / "resume"
    real_put = CellCache.put
    calls = {"n": 0}

    def flaky_put(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 40:
            raise _Boom("simulated kill")
        return real_put(self, *args, **kwargs)

    monkeypatch.setattr(CellCache, "put", flaky_put)
    with pytest.raises(_Boom):
        run_corruptions(make_context(ckpt, data, cache_dir, subset=6))
    monkeypatch.setattr(CellCache, "put", real_put)
    ctx = make_context(ckpt, data, cache_dir, subset=6)
    resumed = run_corruptions(ctx)
    assert ctx.cache.hits == 39  # the finished cells were not recomputed
    assert json.dumps(resumed, sort_keys=True) == json.dumps(reference, sort_keys=True)
    fresh = make_context(ckpt, data, cache_dir, fresh=True, subset=6)
    run_corruptions(fresh)
    assert fresh.cache.hits == 0


def test_cell_cache_keys_and_atomicity(tmp_path):
    cache = CellCache(tmp_path, "ab" * 32)
    calls = []

    def compute():
        calls.append(1)
        return {"x": 0.1 + 0.2}, {"a": np.arange(3.0)}

    v1, a1 = cache.cell("s", "c/1", {"subset": 5}, compute)
    v2, a2 = cache.cell("s", "c/1", {"subset": 5}, compute)
    assert len(calls) == 1 and v1 == v2 and np.array_equal(a1["a"], a2["a"])
    cache.cell("s", "c/1", {"subset": 6}, compute)  # other protocol options: another cell
    assert len(calls) == 2
    assert not list(tmp_path.rglob("*.tmp"))
    # a JSON without its arrays (killed between the two writes) is recomputed
    for npz in tmp_path.rglob("*.npz"):
        npz.unlink()
    assert CellCache(tmp_path, "ab" * 32).get("s", "c/1", {"subset": 5}) is None


def test_imagenet_masks_for_a_r_o_and_imagenet_c(tmp_path):
    """A 1000-class checkpoint on a fake ImageNet: 200-class masks for -A/-R/-O, ImageNet-C folders."""
    import timm

    from robust_eval.suites import run_imagenet_ar

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", num_classes=1000)
    save_net_checkpoint(tmp_path / "in.pth", net, "test_resnet", 1000, "imagenet", crop_pct=0.875)
    data = tmp_path / "data"
    wnids = [f"n{i:08d}" for i in range(1000)]
    images, _ = heldout_digits(12)
    for w in wnids:
        (data / "imagenet" / "val" / w).mkdir(parents=True)
    write_png_tree(data / "imagenet" / "val", images[:6], np.array([0, 1, 2, 500, 501, 999]), scale=2)
    # write_png_tree names folders class_<label>: rename into the wnid folders
    for d in list((data / "imagenet" / "val").glob("class_*")):
        target = data / "imagenet" / "val" / wnids[int(d.name.split("_")[1])]
        for f in d.iterdir():
            f.rename(target / f.name)
        d.rmdir()
    subset = wnids[::5]  # 200 classes
    for name in ("imagenet-a", "imagenet-r", "imagenet-o"):
        for k, w in enumerate(subset[:3]):
            write_png_tree(data / name / "tmp", images[k : k + 2], None, scale=2)
            (data / name / "tmp" / "all").rename(data / name / w)
            (data / name / "tmp").rmdir()
        for w in subset[3:]:
            (data / name / w).mkdir()
    for s in range(1, 6):
        sev = data / "ImageNet-C" / "fog" / str(s) / wnids[500]
        sev.mkdir(parents=True)
        write_png_tree(sev.parent / "tmp", images[:2], None)
        for f in (sev.parent / "tmp" / "all").iterdir():
            f.rename(sev / f.name)
        (sev.parent / "tmp" / "all").rmdir()
        (sev.parent / "tmp").rmdir()
    ctx = make_context(tmp_path / "in.pth", data, tmp_path / "cache")
    assert run_clean(ctx)["n"] == 6
    ar = run_imagenet_ar(ctx)
    for name in ("imagenet-a", "imagenet-r"):
        assert ar[name]["n"] == 6 and ar[name]["masked_to_classes"] == 200
        assert 0.0 <= ar[name]["top1_error"] <= 1.0
    # by hand: -A images of wnids 0, 5, 10 -> masked classes 0, 1, 2; argmax over the 200 masked logits
    from robust_eval.data import FileSource, list_imagefolder

    paths, _, _ = list_imagefolder(data / "imagenet-a")
    batch = FileSource(paths, None, 32, 0.875).batch(0, len(paths))
    with torch.inference_mode():
        logits = ctx.model(torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255).numpy()
    pred = logits[:, ::5].argmax(1)
    assert ar["imagenet-a"]["top1_error"] == pytest.approx(np.mean(pred != np.array([0, 0, 1, 1, 2, 2])))
    ood = run_ood(ctx)
    io = ood["imagenet_o"]
    assert io["masked_to_classes"] == 200 and io["n_out"] == 6
    assert io["n_in"] == 2  # val images of classes 0 and 500 are in the 200-class subset (every 5th)
    c = run_corruptions(ctx)["c"]
    assert c["corruptions"] == ["fog"] and c["imagenet_c_protocol"] == "resize_crop"
    assert c["n_per_cell"]["fog"] == 2 and "gaussian_noise" in c["missing"]


def _rotate_frame(img, i):
    import cv2

    return cv2.warpAffine(img, cv2.getRotationMatrix2D((16, 16), 8 * i, 1.0), (32, 32))


def _noise_frame(strength):
    return lambda img, i: np.clip(img + (i > 0) * strength * np.sin(np.arange(32) * i)[:, None, None], 0, 255)


def _write_videos(folder, images, frame_fn, frames=5):
    """ImageNet-P videos ``folder/<wnid>/<k>.mp4`` (two wnids), frame i = frame_fn(image, i)."""
    import cv2

    for k, img in enumerate(images):
        path = folder / f"n0000000{k % 2}" / f"{k}.mp4"
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (32, 32))
        for i in range(frames):
            writer.write(cv2.cvtColor(frame_fn(img, i).astype(np.uint8), cv2.COLOR_RGB2BGR))
        writer.release()


def _video_top5(ctx, folder):
    from robust_eval.data import read_video

    frames = np.stack([read_video(v) for v in sorted(folder.glob("*/*.mp4"))])
    x = torch.from_numpy(frames.reshape(-1, 32, 32, 3)).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        return metrics.topk_indices(ctx.model(x).numpy(), 5).reshape(*frames.shape[:2], 5)


def test_imagenet_p_videos(setup, tmp_path):
    """ImageNet-P layout (<perturbation>/<wnid>/<name>.mp4): decoded with OpenCV, same metrics as CIFAR-P."""
    from robust_eval.data import check_layouts

    _, ckpt, _ = setup
    images, _ = heldout_digits(6)
    root = tmp_path / "data"
    _write_videos(root / "ImageNet-P" / "rotate", images, _rotate_frame)
    _write_videos(root / "ImageNet-P" / "gaussian_noise", images, _noise_frame(40.0))
    ctx = make_context(ckpt, root, tmp_path / "cache", perturbations=("rotate", "gaussian_noise"))
    ctx.metadata = {**ctx.metadata, "dataset": "imagenet"}
    out = run_perturbations(ctx)
    assert out["missing"] == [] and out["source"].endswith("ImageNet-P")
    for name, noise in (("rotate", False), ("gaussian_noise", True)):
        cell = out["per_perturbation"][name]
        assert (cell["n"], cell["frames"], cell["noise_rule"]) == (6, 5, noise)
        top5 = _video_top5(ctx, root / "ImageNet-P" / name)
        assert cell["flip_probability"] == pytest.approx(metrics.flip_probability(top5[..., 0], noise=noise))
        assert cell["top5_distance"] == pytest.approx(metrics.top5_distance(top5, noise=noise))
    assert out["mfr"] == pytest.approx(
        np.mean([out["per_perturbation"][n]["flip_probability"] for n in ("rotate", "gaussian_noise")])
    )
    entry = next(e for e in check_layouts(root) if e.name == "ImageNet-P")
    assert entry.status == "partial" and "2 perturbations" in entry.detail


def test_imagenet_p_reads_every_difficulty_and_keeps_difficulty_1_as_headline(setup, tmp_path):
    """Noise levels come from '<p>_<d>' folders (frames vs frame 0), other levels are frame strides of
    the level-1 videos (the reference test.py --difficulty); the headline mFR stays difficulty 1."""
    _, ckpt, _ = setup
    images, _ = heldout_digits(6)
    p_root = tmp_path / "data" / "ImageNet-P"
    _write_videos(p_root / "rotate", images, _rotate_frame)
    _write_videos(p_root / "gaussian_noise", images, _noise_frame(20.0))
    _write_videos(p_root / "gaussian_noise_2", images, _noise_frame(60.0))
    ctx = make_context(ckpt, p_root.parent, tmp_path / "cache", perturbations=("rotate", "gaussian_noise"))
    ctx.metadata = {**ctx.metadata, "dataset": "imagenet"}
    out = run_perturbations(ctx)
    assert out["difficulty"] == 1 and "difficulty 1 only" in out["difficulty_aggregation"]
    assert out["mfr"] == pytest.approx(
        np.mean([out["per_perturbation"][p]["flip_probability"] for p in ("rotate", "gaussian_noise")])
    )
    rot, noise2 = _video_top5(ctx, p_root / "rotate"), _video_top5(ctx, p_root / "gaussian_noise_2")
    level2 = out["difficulties"]["2"]
    assert level2["complete"] and set(level2["perturbations"]) == {"rotate", "gaussian_noise"}
    cells = level2["per_perturbation"]
    assert cells["gaussian_noise"]["source"] == "gaussian_noise_2"
    assert cells["gaussian_noise"]["flip_probability"] == pytest.approx(
        metrics.flip_probability(noise2[..., 0], noise=True)
    )
    assert cells["rotate"]["flip_probability"] == pytest.approx(
        metrics.flip_probability(rot[..., 0], noise=False, stride=2)
    )
    assert cells["rotate"]["top5_distance"] == pytest.approx(
        metrics.top5_distance(rot, noise=False, stride=2)
    )
    assert level2["mfr"] == pytest.approx(
        np.mean([cells["rotate"]["flip_probability"], cells["gaussian_noise"]["flip_probability"]])
    )
    level3 = out["difficulties"]["3"]  # no gaussian_noise_3 folder: rotate only, flagged incomplete
    assert level3["perturbations"] == ["rotate"] and not level3["complete"]
    # through the Python API a difficulty folder gets the noise rule by its name
    ctx2 = make_context(ckpt, p_root.parent, tmp_path / "cache2", perturbations=("gaussian_noise_2",))
    ctx2.metadata = {**ctx2.metadata, "dataset": "imagenet"}
    cell = run_perturbations(ctx2)["per_perturbation"]["gaussian_noise_2"]
    assert cell["noise_rule"] is True
    assert cell["flip_probability"] == pytest.approx(metrics.flip_probability(noise2[..., 0], noise=True))


def test_cifar_p_default_list_averages_spatter_not_snow(setup):
    """The authors' CIFAR-P script averages spatter (CIFAR-10-P ships it) in the place of snow."""
    _, ckpt, data = setup
    ctx = make_context(ckpt, data, setup[0] / "c_p_default", subset=4)
    out = run_perturbations(ctx)
    assert "spatter" in out["perturbations"] and "snow" not in out["perturbations"]
    assert out["perturbations_default"] is True and out["perturbation_list"] == "default for cifar10"
    assert out["mfr"] == pytest.approx(
        np.mean([out["per_perturbation"][p]["flip_probability"] for p in out["perturbations"]])
    )
    from robust_eval.constants import TEST_PERTURBATIONS
    from robust_eval.suites import default_perturbations

    assert default_perturbations("imagenet") == TEST_PERTURBATIONS


def test_calibration_under_corruption_per_cell_and_mean(setup):
    """RMS and ECE on every -C cell (float32 max softmax, as PixMix / IPMix report them), their mean
    over the 15 x 5 benchmark cells, next to the clean-set numbers."""
    from robust_eval.data import load_corruption_cell, load_corruption_labels

    _, ckpt, data = setup
    ctx = make_context(ckpt, data, setup[0] / "c_cal", subset=20)
    out = run_corruptions(ctx)
    cal = out["c"]["calibration"]
    folder = data / "CIFAR-10-C"
    cell = load_corruption_cell(folder, "fog", 3, load_corruption_labels(folder)).sample(20, ctx.seed)
    x = torch.from_numpy(cell.batch(0, 20)).permute(0, 3, 1, 2).float() / 255
    with torch.inference_mode():
        logits = ctx.model(x).numpy()
    conf, correct = -metrics.anomaly_scores(logits), logits.argmax(1) == cell.labels
    assert cal["per_cell"]["rms_calibration_error"]["fog"]["3"] == pytest.approx(
        metrics.rms_calibration_error(conf, correct)
    )
    assert cal["per_cell"]["ece"]["fog"]["3"] == pytest.approx(
        metrics.expected_calibration_error(conf, correct)
    )
    assert cal["per_cell"]["rms_calibration_error_reference_compatible"]["fog"]["3"] is None  # 20 < 100
    assert cal["mean_over"] == list(BENCHMARK_CORRUPTIONS)
    rms = cal["per_cell"]["rms_calibration_error"]
    assert cal["mean_rms_calibration_error"] == pytest.approx(
        np.mean([rms[c][str(s)] for c in BENCHMARK_CORRUPTIONS for s in range(1, 6)])
    )
    assert cal["mean_rms_calibration_error_reference_compatible"] is None
    assert "speckle_noise" in rms  # extras get per-cell numbers, outside the mean
    summary = out["calibration"]
    assert summary["clean"]["ece"] == pytest.approx(run_calibration(ctx)["ece"])
    assert summary["corrupted_mean"]["ece"] == pytest.approx(cal["mean_ece"])
    assert out["c_bar"]["calibration"]["mean_ece"] is not None
