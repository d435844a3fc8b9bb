"""The data layer: the CIFAR archive format in robust_mix.cifar, the table of data layouts, and the
data-side hardening of `robust-eval data check` / `robust-eval all` (issues 15 and 9)."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

from robust_mix.cifar import DataLayoutError, load_cifar, write_cifar


def test_cifar_format_imports_without_robust_eval_torch_or_albumentations():
    code = (
        "import sys, robust_mix.cifar; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('robust_eval', 'torch', 'albumentations')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_timm_train_data_reads_cifar_through_robust_mix():
    import inspect

    from timm_ext.train import data

    source = inspect.getsource(data.load_data)
    assert "robust_mix.cifar import" in source and "robust_eval" not in source


def test_robust_eval_data_re_exports_the_one_cifar_format():
    import robust_eval.data as rdata
    import robust_mix.cifar as fmt

    for name in ("CIFAR_FOLDERS", "DataLayoutError", "find_cifar_folder", "load_cifar", "write_cifar"):
        assert getattr(rdata, name) is getattr(fmt, name)


def test_digits_writes_through_write_cifar(tmp_path):
    """The digits folder is byte-identical to what write_cifar writes for the same split."""
    from robust_eval.digits import _CLASS_NAMES, digits_dataset, split_digits, write_digits

    write_digits(tmp_path / "a", ood=False)
    images, labels = digits_dataset()
    train, test = split_digits(labels)
    ref = tmp_path / "b"
    write_cifar(ref, "cifar10", images[train], labels[train], train=True, class_names=_CLASS_NAMES)
    write_cifar(ref, "cifar10", images[test], labels[test], train=False, class_names=_CLASS_NAMES)
    ours = tmp_path / "a" / "cifar-10-batches-py"
    names = sorted(p.name for p in ref.iterdir())
    assert names == sorted(p.name for p in ours.iterdir())
    for name in names:
        assert (ours / name).read_bytes() == (ref / name).read_bytes(), name


@pytest.mark.parametrize("cut", [0, 1, 100, -1])
def test_truncated_cifar_pickle_is_one_data_layout_error(tmp_path, cut):
    folder = write_cifar(tmp_path / "c", "cifar10", np.zeros((3, 32, 32, 3), np.uint8), [0, 1, 2])
    raw = (folder / "test_batch").read_bytes()
    (folder / "test_batch").write_bytes(raw[: cut if cut >= 0 else len(raw) // 2])
    with pytest.raises(DataLayoutError, match="test_batch' is not a readable python batch"):
        load_cifar(folder, "cifar10")


def test_zero_image_cifar_split_is_refused(tmp_path):
    folder = write_cifar(tmp_path / "c", "cifar10", np.zeros((0, 32, 32, 3), np.uint8), [])
    with pytest.raises(DataLayoutError, match="holds 0 cifar10 test images"):
        load_cifar(folder, "cifar10")


def test_foreign_pickle_content_is_a_data_layout_error(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({"data": "text", "labels": 3}))
    with pytest.raises(DataLayoutError, match="test_batch"):
        load_cifar(folder, "cifar10")


# -- data check: 0-row sets, the image-folder row ------------------------------------------------


def _entries(root):
    from robust_eval.data import check_layouts

    return {e.name: e for e in check_layouts(root)}


def test_data_check_reports_zero_row_sets_as_malformed(tmp_path):
    root = tmp_path / "data"
    (root / "CIFAR-10-C").mkdir(parents=True)
    np.save(root / "CIFAR-10-C" / "labels.npy", np.zeros(0, np.uint8))
    np.save(root / "CIFAR-10-C" / "fog.npy", np.zeros((0, 32, 32, 3), np.uint8))
    (root / "CIFAR-10-P").mkdir()
    np.save(root / "CIFAR-10-P" / "rotate.npy", np.zeros((0, 31, 32, 32, 3), np.uint8))
    (root / "ood").mkdir()
    np.save(root / "ood" / "empty.npy", np.zeros((0, 32, 32, 3), np.uint8))
    write_cifar(root / "cifar-10-batches-py", "cifar10", np.zeros((0, 32, 32, 3), np.uint8), [])
    status = _entries(root)
    c = status["CIFAR-10-C"]
    assert c.status == "malformed" and "labels.npy" in c.detail and "fog.npy: 0 rows" in c.detail
    assert (
        status["CIFAR-10-P"].status == "malformed"
        and "rotate.npy: 0 sequences" in status["CIFAR-10-P"].detail
    )
    assert status["ood/empty"].status == "malformed" and "0 images" in status["ood/empty"].detail
    assert (
        status["cifar10"].status == "malformed" and "holds 0 cifar10 test images" in status["cifar10"].detail
    )


def test_data_check_has_an_image_folder_row(tmp_path):
    from robust_eval_fixtures import heldout_digits, write_png_tree

    name = "imagefolder (--dataset imagefolder)"
    images, labels = heldout_digits(6)
    write_png_tree(tmp_path / "a" / "val", images, labels)
    row = _entries(tmp_path / "a")[name]
    n_classes = len(set(labels.tolist()))
    assert (row.status, row.detail) == ("present", f"val/: {n_classes} classes, 6 images")
    assert row.path == str(tmp_path / "a" / "val")
    write_png_tree(tmp_path / "b" / "train", images, labels)
    row = _entries(tmp_path / "b")[name]
    assert row.status == "partial" and "train/ only" in row.detail and "--split train" in row.detail
    (tmp_path / "c").mkdir()
    row = _entries(tmp_path / "c")[name]
    assert row.status == "missing" and str(tmp_path / "c" / "test") in row.detail


def test_data_check_on_a_cifar_root_has_no_malformed_image_folder_row(tmp_path):
    from robust_eval_fixtures import make_data_root

    status = _entries(make_data_root(tmp_path / "data", n=10, with_p=False))
    assert status["imagefolder (--dataset imagefolder)"].status == "missing"
    assert not [e.name for e in status.values() if e.status == "malformed"]


def test_layout_hints_are_the_readers_messages(tmp_path):
    """One text per layout: the table's hint is what the suites say when the set is absent."""
    from robust_eval.data import LAYOUTS, corruption_layout, perturbation_layout

    hint = perturbation_layout("cifar10").hint(tmp_path)
    assert hint == f"put <perturbation>.npy (uint8 [N, T, 32, 32, 3]) at '{tmp_path / 'CIFAR-10-P'}'"
    assert corruption_layout("cifar100", bar=True).expected(tmp_path) == tmp_path / "CIFAR-100-C-bar"
    assert LAYOUTS["cifar10"].hint(tmp_path).startswith("put the extracted official CIFAR-10 python archive")
    for layout in LAYOUTS.values():
        assert layout.check(tmp_path).detail == layout.hint(tmp_path)  # an empty root: every one missing


# -- robust-eval all: a malformed set is skipped with one line ----------------------------------


def _cli(*args):
    from typer.testing import CliRunner

    from robust_eval.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from robust_eval_fixtures import write_project_checkpoint

    return write_project_checkpoint(tmp_path_factory.mktemp("ck") / "ck.pth")


def _skip_lines(result):
    assert "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.startswith("skipped ")]


@pytest.mark.slow
def test_all_skips_a_zero_row_p_array_with_one_line(tmp_path, ckpt):
    from robust_eval_fixtures import make_data_root

    root = make_data_root(tmp_path / "data", n=20, with_c=False)
    np.save(root / "CIFAR-10-P" / "rotate.npy", np.zeros((0, 31, 32, 32, 3), np.uint8))
    r = _cli("all", ckpt, "--data-dir", root, "--out", tmp_path / "o", "--subset", "10", "--steps", "1")
    assert r.exit_code == 0, r.output
    lines = _skip_lines(r)
    p_lines = [line for line in lines if line.startswith("skipped perturbations")]
    assert len(p_lines) == 1 and "rotate.npy' holds 0 rows" in p_lines[0]
    assert (tmp_path / "o" / "all.json").is_file()


@pytest.mark.slow
def test_all_skips_a_truncated_cifar_pickle_with_one_line(tmp_path, ckpt):
    from robust_eval_fixtures import make_data_root

    root = make_data_root(tmp_path / "data", n=20, with_c=False)
    batch = root / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:500])
    r = _cli("all", ckpt, "--data-dir", root, "--out", tmp_path / "o", "--subset", "10", "--steps", "1")
    assert r.exit_code == 0, r.output  # -P needs no clean set and still runs
    clean = [line for line in _skip_lines(r) if line.startswith("skipped clean")]
    assert len(clean) == 1 and "test_batch' is not a readable python batch" in clean[0]
    # a single command gives the same reason as its one line, exit 2
    single = _cli("clean", ckpt, "--data-dir", root, "--out", tmp_path / "o2")
    assert single.exit_code == 2 and "Traceback" not in single.output
    assert len(single.stderr.strip().splitlines()) == 1 and "not a readable python batch" in single.stderr


# -- the data folder recorded in the checkpoint ------------------------------------------------


def test_clean_without_data_dir_uses_the_recorded_data_folder(tmp_path, monkeypatch):
    from robust_eval_fixtures import DATA_CONFIG, MODEL, heldout_digits, trained_state_dict

    from robust_eval.checkpoints.checkpoint import save_checkpoint

    images, labels = heldout_digits(12)
    data = tmp_path / "elsewhere"
    write_cifar(data / "cifar-10-batches-py", "cifar10", images, labels)
    path = tmp_path / "runs" / "x" / "final.pth"
    path.parent.mkdir(parents=True)
    save_checkpoint(
        path,
        trained_state_dict(),
        model=MODEL,
        num_classes=10,
        dataset="cifar10",
        data_config=DATA_CONFIG,
        train_args={"data_dir": str(data), "model": MODEL},
    )
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # ./data does not exist here
    monkeypatch.delenv("ROBUST_EVAL_DATA", raising=False)
    r = _cli("clean", path, "--out", tmp_path / "o", "--json")
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stderr.splitlines() if "recorded in the checkpoint" in line]
    assert len(notes) == 1 and str(data) in notes[0] and "'data' has no cifar10 set" in notes[0]
    import json

    assert json.loads(r.stdout)["protocol"]["data_dir"] == str(data)
    # an explicit --data-dir is never replaced
    r = _cli("clean", path, "--data-dir", work / "data", "--out", tmp_path / "o2")
    assert r.exit_code == 2 and "recorded in the checkpoint" not in r.output


# -- image folders: make-c / make-p sets found by their manifest; no silent training images -------


def _ten_classes(per: int = 2):
    """``per`` held-out digits of each of the 10 classes (an image folder with every class folder)."""
    from robust_eval_fixtures import heldout_digits

    images, labels = heldout_digits(200)
    idx = np.concatenate([np.flatnonzero(labels == c)[:per] for c in range(10)])
    return images[idx], labels[idx]


@pytest.fixture(scope="module")
def folder_model(tmp_path_factory):
    from robust_eval_fixtures import DATA_CONFIG, MODEL, trained_state_dict, write_png_tree

    from robust_eval.checkpoints.checkpoint import save_checkpoint

    base = tmp_path_factory.mktemp("imgf")
    images, labels = _ten_classes()
    write_png_tree(base / "data" / "test", images, labels)
    classes = sorted(d.name for d in (base / "data" / "test").iterdir())
    path = base / "ck.pth"
    save_checkpoint(
        path,
        trained_state_dict(),
        model=MODEL,
        num_classes=10,
        dataset="imagefolder",
        data_config=DATA_CONFIG,
        class_names=[f"class_{i}" for i in range(10)],
    )
    return base, path, classes


def _folder_context(base, ckpt_path, cache, **options):
    from robust_eval_fixtures import make_context

    return make_context(ckpt_path, base / "data", cache, **options)


def _direct_error(ctx, folder):
    """Top-1 error over ``folder``'s class tree, computed here with the model and the reader only."""
    import torch

    from robust_eval.data import FileSource, list_imagefolder

    paths, lab, names = list_imagefolder(folder)
    index = {f"class_{i}": i for i in range(10)}
    lab = np.asarray([index[names[v]] for v in lab])
    x = FileSource(paths, None, ctx.size).batch(0, len(paths))
    with torch.inference_mode():
        pred = ctx.model(torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255).argmax(1).numpy()
    return float((pred != lab).mean()), len(paths)


@pytest.mark.slow
def test_image_folder_model_evaluates_the_make_c_set_of_its_folder(folder_model, tmp_path):
    from robust_eval.suites import run_corruptions

    base, path, _ = folder_model
    src = base / "data" / "test"
    out = base / "made-C"  # beside the data folder
    r = _cli(
        "make-c", src, out, "--preset", "cifar", "--corruptions", "fog", "--size", "32", "--format", "PNG"
    )
    assert r.exit_code == 0, r.output
    ctx = _folder_context(base, path, tmp_path / "cache")
    c = run_corruptions(ctx)["c"]
    assert c["source"] == str(out) and c["corruptions"] == ["fog"] and c["regenerated"]
    for s in range(1, 6):
        error, n = _direct_error(ctx, out / "fog" / str(s))
        assert c["errors"]["fog"][str(s)] == pytest.approx(error) and c["n_per_cell"]["fog"] == n


@pytest.mark.slow
def test_image_folder_model_evaluates_the_make_p_set_of_its_folder(folder_model, tmp_path):
    from robust_eval.suites import run_perturbations

    base, path, _ = folder_model
    src = base / "data" / "test"
    out = base / "data" / "P"  # inside the data folder
    r = _cli("make-p", src, out, "--preset", "cifar", "--perturbations", "rotate", "--size", "32")
    assert r.exit_code == 0, r.output
    ctx = _folder_context(base, path, tmp_path / "cache", perturbations=("rotate",))
    res = run_perturbations(ctx)
    assert res["source"] == str(out) and res["missing"] == []
    n_videos = len(list((out / "rotate").glob("*/*.mp4")))
    assert res["per_perturbation"]["rotate"]["n"] == n_videos > 0


def test_image_folder_without_a_made_set_says_how_to_make_one(folder_model, tmp_path):
    from robust_eval.suites import SuiteSkipped, run_corruptions

    base, path, _ = folder_model
    ctx = _folder_context(base, path, tmp_path / "cache")
    ctx.data_dir = tmp_path / "other"
    (ctx.data_dir / "test" / "class_0").mkdir(parents=True)
    with pytest.raises(SuiteSkipped, match=r"run `robust-eval make-c .*test OUT`"):
        run_corruptions(ctx)


def test_train_only_image_folder_is_refused_unless_asked(folder_model, tmp_path):
    from robust_eval_fixtures import write_png_tree

    from robust_eval.suites import SuiteSkipped, clean_source

    base, path, _ = folder_model
    images, labels = _ten_classes()
    root = write_png_tree(tmp_path / "d" / "train", images, labels).parent
    ctx = _folder_context(base, path, tmp_path / "cache")
    ctx.data_dir = root
    with pytest.raises(SuiteSkipped, match="--split train to measure the training images"):
        clean_source(ctx)
    ctx.split = "train"
    source, where = clean_source(ctx)
    assert len(source) == 20 and where == str(root / "train")


def test_the_folder_a_model_was_trained_on_is_refused_unless_asked(folder_model, tmp_path):
    from robust_eval.suites import SuiteSkipped, clean_source

    base, path, _ = folder_model
    ctx = _folder_context(base, path, tmp_path / "cache")
    ctx.data_dir = base / "data" / "test"  # class folders directly, the folder of `timm train --data-dir`
    ctx.metadata = {**ctx.metadata, "train_data_dir": str(base / "data" / "test")}
    with pytest.raises(SuiteSkipped, match="holds the images the model was trained on"):
        clean_source(ctx)
    ctx.split = "."
    _, where = clean_source(ctx)
    assert where.endswith("(training images, as asked)")
