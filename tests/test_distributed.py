"""robust_mix.distributed: which shard a process is, from --shard, torchrun or a SLURM array."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from robust_mix.distributed import (
    Shard,
    ShardError,
    all_gather_object,
    barrier,
    broadcast_object,
    detect,
    parse_shard,
)


@pytest.mark.parametrize(("text", "expected"), [("0/1", (0, 1)), ("3/4", (3, 4)), (" 1/2 ", (1, 2))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["", "1", "4/4", "-1/4", "1/0", "a/b", "1/2/3", "1.5/4"])
def test_parse_shard_refuses(text):
    with pytest.raises(ShardError, match=r"--shard .*expected"):
        parse_shard(text)


def test_detect_single_without_launcher():
    shard = detect(None, env={})
    assert shard == Shard.single() and shard.is_main and not shard.grouped and not shard.partial
    assert shard.describe() == "" and list(shard.span(5)) == [0, 1, 2, 3, 4]


def test_detect_torchrun():
    shard = detect(None, env={"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (shard.index, shard.count, shard.launcher, shard.local_rank) == (3, 4, "torchrun", 1)
    assert shard.grouped and not shard.partial and not shard.is_main
    assert shard.device("cuda") == "cuda:1" and shard.device("cpu") == "cpu"


def test_torchrun_with_one_rank_is_single():
    assert detect(None, env={"RANK": "0", "WORLD_SIZE": "1"}) == Shard.single()


def test_detect_slurm_array_offset_by_min():
    env = {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10"}
    shard = detect(None, env=env)
    assert (shard.index, shard.count, shard.launcher) == (2, 4, "slurm-array") and shard.partial
    with pytest.raises(ShardError, match="contiguous"):
        detect(None, env={**env, "SLURM_ARRAY_TASK_ID": "30"})


def test_explicit_shard_wins_over_slurm_and_conflicts_with_torchrun():
    env = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert detect("0/2", env=env) == Shard(0, 2, "shard")
    with pytest.raises(ShardError, match="not both"):
        detect("0/2", env={"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(ShardError, match="RANK is not set"):
        detect(None, env={"WORLD_SIZE": "2"})
    with pytest.raises(ShardError, match="not an integer"):
        detect(None, env={"WORLD_SIZE": "two"})


@pytest.mark.parametrize("n", [0, 1, 7, 100, 101])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_spans_cover_every_item_once_and_balance(n, count):
    spans = [Shard(k, count, "shard").span(n) for k in range(count)]
    assert [i for s in spans for i in s] == list(range(n))
    sizes = [len(s) for s in spans]
    assert max(sizes) - min(sizes) <= 1


def test_shard_refuses_out_of_range():
    with pytest.raises(ShardError):
        Shard(2, 2, "shard")


def test_collectives_without_group_are_identity():
    barrier()
    assert all_gather_object({"a": 1}) == [{"a": 1}]
    assert broadcast_object([1, 2]) == [1, 2]


@pytest.mark.slow
def test_two_ranks_under_torchrun_gather_in_rank_order(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sys
            from robust_mix.distributed import all_gather_object, broadcast_object, detect, process_group
            shard = detect(None)
            with process_group(shard, "cpu"):
                got = all_gather_object(list(shard.span(10)))
                seed = broadcast_object(1234 if shard.is_main else None)
            if shard.is_main:
                json.dump({"got": got, "seed": seed, "launcher": shard.launcher}, open(sys.argv[1], "w"))
            """
        )
    )
    out = tmp_path / "out.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    proc = subprocess.run([*cmd, str(script), str(out)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    assert json.loads(out.read_text()) == {
        "got": [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]],
        "seed": 1234,
        "launcher": "torchrun",
    }
