"""The checkpoint file format lives in robust_mix (below timm_ext and robust_eval): no import cycle."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from robust_eval_fixtures import DATA_CONFIG, MODEL, SUBPROCESS_ENV, trained_state_dict

import robust_eval.checkpoints.checkpoint as user_facing
import robust_mix.checkpoint as fmt
from robust_mix.files import TMP_PREFIX, file_mode

ROOT = Path(__file__).resolve().parents[1]


def _meta() -> dict:
    return {"model": MODEL, "num_classes": 10, "dataset": "cifar10", "data_config": DATA_CONFIG}


def test_robust_eval_checkpoint_re_exports_the_one_format():
    for name in fmt.__all__:
        assert getattr(user_facing, name) is getattr(fmt, name)


def test_importing_timm_ext_train_does_not_import_robust_eval():
    """Every module of timm_ext.train imported in a fresh interpreter: robust_eval stays unloaded."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "timm_ext" / "train").rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m.removesuffix('.__init__'))\n"
        "loaded = sorted(m for m in sys.modules if m == 'robust_eval' or m.startswith('robust_eval.'))\n"
        "print(loaded)\n"
        "assert not loaded, loaded\n"
    )
    env = {**SUBPROCESS_ENV, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "timm_ext.train.loop" in modules and "timm_ext.train.setup" in modules


def test_save_checkpoint_writes_through_the_shared_atomic_writer(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "x" / "best.pth"  # parent folders are created
    assert fmt.save_checkpoint(path, trained_state_dict(), **_meta()) == path
    assert stat.S_IMODE(os.stat(path).st_mode) == file_mode()  # the umask's mode, not mkstemp's 0600
    loaded = torch.load(path, weights_only=True)
    assert loaded["format_version"] == fmt.FORMAT_VERSION and set(fmt.REQUIRED_KEYS) <= set(loaded)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        fmt.save_checkpoint(path, trained_state_dict(), overwrite=False, **_meta())

    def broken(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError, match="no space left"):
        fmt.save_checkpoint(path, trained_state_dict(), **_meta())
    assert path.read_bytes() == before  # the old file is intact ...
    assert not [p for p in path.parent.iterdir() if p.name.startswith(TMP_PREFIX)]  # ... no leftovers
