"""The evaluation commands' pipeline: options -> context -> suites -> result and report.

``robust-eval all`` and the single-suite commands (and ``baseline``) share it: :data:`ALL_OPTIONS` is
the option table (one :class:`robust_mix.cli.Option` per option: flag, help, default and range),
:func:`evaluate` checks the options, loads the checkpoint into a :class:`robust_eval.suites.Context`,
runs the suites, and writes ``<out>/<command>.json`` and the Markdown report. Bad input raises
:class:`robust_mix.errors.UsageError` (or another project error); :func:`evaluate` reports it as
one line and exit status 2.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from robust_eval.constants import IMAGENET_C_PROTOCOLS
from robust_eval.options import ALL_OPTIONS, OPTIONS_BY_NAME
from robust_mix.cli import check_options, fail, progress
from robust_mix.errors import UsageError

err_console = Console(stderr=True)
#: Commands that skip a suite whose data is absent or malformed (one line each) instead of failing.
_SKIPPING = ("all", "baseline")
PROG = "robust-eval"


def resolve_data_dir(data_dir: Path | None) -> Path:
    if data_dir is not None:
        return data_dir
    env = os.environ.get("ROBUST_EVAL_DATA")
    return Path(env) if env else Path("data")


class _Bar:
    """What a suite advances: one task of the progress display (or nothing when it is off)."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)


class _Bars:
    """The progress display of a run: an overall bar over the suites (``suite i/n: name``) and one
    transient bar per cell (``track(description, total)``, what :class:`robust_eval.suites.Context`
    calls). ``progress`` None: no display at all (``--no-progress``)."""

    def __init__(self, progress: Any, suites: Sequence[str]) -> None:
        self._progress = progress
        self._names = list(suites)
        self.overall_done = 0
        self._started = False
        self._overall = progress.add_task("suites", total=len(self._names)) if progress is not None else None

    def next_suite(self, name: str) -> None:
        """Mark the previous suite done and show ``name`` as the one running."""
        if self._started:
            self.overall_done += 1
        self._started = True
        if self._progress is not None:
            i = self._names.index(name) + 1 if name in self._names else self.overall_done + 1
            description = f"suite {i}/{len(self._names)}: {name}"
            self._progress.update(self._overall, completed=self.overall_done, description=description)

    @contextlib.contextmanager
    def track(self, description: str, total: int) -> Iterator[_Bar]:
        if self._progress is None:
            yield _Bar()
            return
        task = self._progress.add_task(f"  {description}", total=total)
        try:
            yield _Bar(self._progress, task)
        finally:
            self._progress.remove_task(task)


@contextlib.contextmanager
def _progress(enabled: bool, suites: Sequence[str], console: Console | None = None) -> Iterator[_Bars]:
    """The rich progress display of a run on ``console`` (stderr; off when it is not a terminal or
    ``enabled`` is false)."""
    console = console or err_console
    if not (enabled and console.is_terminal):
        yield _Bars(None, suites)
        return
    with progress(console, transient=True) as bars:
        yield _Bars(bars, suites)


def _autoattack_protocol(ctx: Any) -> dict[str, Any]:
    """``attack`` and ``autoattack`` (eps, first-N examples asked for, n_classes) when the adversarial
    suite runs AutoAttack; nothing for PGD (whose settings stay under ``pgd``)."""
    if ctx.attack != "autoattack":
        return {}
    from robust_eval.suites import autoattack_plan

    return {
        "attack": ctx.attack,
        "autoattack": {"version": "standard", "norm": "Linf", **autoattack_plan(ctx)},
    }


def _protocol(ctx: Any, opts: dict[str, Any], suites: Sequence[str]) -> dict[str, Any]:
    from robust_eval import constants
    from robust_eval.baselines import ALEXNET_CLEAN_ERROR, ALEXNET_IMAGENET_C_ERRORS

    return {
        "suites_requested": list(suites),
        "data_dir": str(ctx.data_dir),
        "subset": ctx.subset,
        "split": ctx.split,
        "device": _device_name(opts),  # auto resolved; cuda, not cuda:<rank>: the same under torchrun
        "batch_size": ctx.batch_size,
        "seed": ctx.seed,
        "preprocessing": {
            "input_contract": ctx.metadata["input_contract"],
            "data_config": ctx.metadata["data_config"],
            "image_files": "decoded with Pillow (EXIF orientation applied), shorter side resized to round(size / crop_pct), center crop",
            "imagenet_c_protocol": ctx.imagenet_c_protocol,
        },
        "corruption_lists": {
            "benchmark": list(constants.BENCHMARK_CORRUPTIONS),
            "extras": list(constants.EXTRA_CORRUPTIONS),
            "cifar_c_bar": list(constants.CIFAR_CBAR_CORRUPTIONS),
            "imagenet_c_bar": list(constants.IMAGENET_CBAR_CORRUPTIONS),
            "severities": list(constants.SEVERITIES),
        },
        "perturbations": list(ctx.perturbation_list),
        "perturbations_default": not ctx.perturbations,
        "generate_corruptions": ctx.generate,
        "pgd": ctx.pgd.as_dict() if ctx.attack == "pgd" else None,
        **_autoattack_protocol(ctx),
        "calibration": {"rms_bin_size": constants.RMS_BIN_SIZE, "ece_bins": constants.ECE_BINS},
        "ood": {
            "score": "-max softmax",
            "positive": "ood",
            "n_per_set": "in-distribution size // 5",
            **({"detectors": list(ctx.ood_scores)} if tuple(ctx.ood_scores) != ("msp",) else {}),
        },
        "constants": {
            "alexnet_imagenet_c_errors": {k: list(v) for k, v in ALEXNET_IMAGENET_C_ERRORS.items()},
            "alexnet_clean_error": ALEXNET_CLEAN_ERROR,
        },
        "baseline": ctx.baseline.to_dict() if ctx.baseline is not None else None,
        **({"speed": ctx.speed.protocol()} if not ctx.speed.is_default else {}),  # --amp, ... (if given)
    }


def evaluate(command: str, suites: Sequence[str], opts: dict[str, Any]) -> None:
    """Run ``suites`` as command ``command`` with the option values ``opts``: the options are
    checked before torch is imported, then the checkpoint is loaded and the suites run (one line and
    exit status 2 for bad input)."""
    try:
        _check_options(opts)  # before torch: a usage error is told at once
        from robust_eval.sharding import evaluation_group, quiet_unless_main

        with evaluation_group(_device_name(opts)) as shard, quiet_unless_main(shard, err_console):
            _evaluate_inner(command, suites, opts, shard)
    except typer.Exit:
        raise
    except _Interrupted:  # during the suites: told by _interrupted
        sys.exit(130)
    except KeyboardInterrupt:  # before the suites (loading the checkpoint): nothing cached by this run
        typer.echo(
            f"{PROG}: interrupted before the suites started (nothing computed); run the same command again",
            err=True,
        )
        sys.exit(130)
    except UsageError as exc:
        fail(PROG, str(exc))
    except (ValueError, OSError) as exc:  # CheckpointError, DataLayoutError, BaselineError, ResultError
        fail(PROG, exc)  # 1 for a full or read-only disk, else 2 (robust_mix.cli.exit_status)


def _evaluate_inner(command: str, suites: Sequence[str], opts: dict[str, Any], shard: Any) -> None:
    """Check the options, load the checkpoint, run the suites, write and print the result. Under
    torchrun every rank runs the suites (its part of every set, robust_eval.sharding); rank 0 alone
    locks ``--out``, shows progress and writes."""
    from robust_mix.files import OutputLock

    _check_options(opts)
    ctx = _make_context(opts, shard)
    out: Path = opts["out"]
    _check_targets(command, out, ctx.metadata)  # before the lock: a refused run creates nothing
    lock = OutputLock(out, f"robust-eval {command}") if shard.is_main else contextlib.nullcontext()
    with lock:  # one run per --out folder
        _check_targets(command, out, ctx.metadata)
        try:
            with _progress(_option(opts, "progress") and shard.is_main, suites) as bars:
                ctx.track = bars.track
                results, skipped = _run_suites(command, suites, ctx, bars)
        except KeyboardInterrupt:
            _interrupted(ctx.cache, shard.is_main)
        if not results:
            raise UsageError(f"no suite could run ({len(skipped)} skipped, reasons above); nothing written")
        if shard.is_main:  # under torchrun rank 0 alone writes and prints the results
            _write_outputs(command, suites, ctx, opts, results, skipped)


def _interrupted(cache: Any, main: bool) -> None:
    """Ctrl-C during the suites: one line saying what is kept (the finished cells) and that the same
    command resumes from them (rank 0 alone speaks); :func:`evaluate` then exits with status 130."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
    if main:
        n = cache.finished_cells()
        typer.echo(
            f"{PROG}: interrupted; {n} finished cell{'s' if n != 1 else ''} cached in {cache.root}: "
            "run the same command again to resume from them (--fresh recomputes)",
            err=True,
        )
    raise _Interrupted() from None


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C that :func:`_interrupted` has already told about."""


def _check_targets(command: str, out: Path, metadata: dict[str, Any]) -> None:
    """Refuse a run whose ``<out>/<command>.json`` holds another checkpoint's result or is not a
    result, or whose ``<out>/<command>.md`` is not a robust-eval report (nothing is overwritten)."""
    from robust_eval.report.write import check_report_target, check_result_target

    check_result_target(out / f"{command}.json", metadata["sha256"], hint="pass another --out")
    check_report_target(out / f"{command}.md", force=False, hint="pass another --out")


def _option(opts: dict[str, Any], name: str) -> Any:
    """The value of option ``name``: given, else its default (commands lack the options of others)."""
    return opts[name] if name in opts else OPTIONS_BY_NAME[name].default


def _check_options(opts: dict[str, Any]) -> None:
    """Every check of the options that needs neither the checkpoint nor the data (one line, exit 2)."""
    check_options(ALL_OPTIONS, opts)
    if opts.get("device") == "meta":
        raise UsageError("--device meta holds no data and cannot evaluate; use cpu, cuda or cuda:N")
    save_baseline_path: Path | None = opts.get("save_baseline")
    if save_baseline_path is not None:
        _check_save_baseline(save_baseline_path)
    protocol = _option(opts, "imagenet_c_protocol")
    if protocol not in IMAGENET_C_PROTOCOLS:
        raise UsageError(f"--imagenet-c-protocol must be resize_crop or center_crop, got {protocol!r}")
    leaderboard_path: Path | None = opts.get("robustbench_json")
    if leaderboard_path is not None and leaderboard_path.exists():
        raise UsageError(
            f"--robustbench-json: '{leaderboard_path}' already exists; remove it or choose another path"
        )
    _perturbation_list(opts.get("perturbations"))
    from robust_eval.speed import check_choices

    check_choices(_option(opts, "amp"), _option(opts, "decode"))
    _ood_scores(opts)
    _attack_settings(opts)
    _overrides(opts)
    _check_data_dir(opts.get("data_dir"))


def _check_data_dir(data_dir: Path | None) -> None:
    """A ``--data-dir`` given must be a folder (one line, instead of one skipped line per suite)."""
    if data_dir is not None and not data_dir.is_dir():
        what = "is a file" if data_dir.exists() else "does not exist"
        raise UsageError(f"--data-dir '{data_dir}' {what}; pass the folder that holds your data sets")


def _check_split(split: str | None, dataset: str) -> None:
    """``--split`` picks an ImageFolder root's split folder; a CIFAR python folder has one held-out
    split (``test_batch``), so any other value would be ignored: refused instead."""
    from robust_mix.cifar import CIFAR_FOLDERS

    if split is not None and split != "test" and dataset in CIFAR_FOLDERS:
        raise UsageError(
            f"--split {split}: {dataset} is evaluated on its one test split ({CIFAR_FOLDERS[dataset]}/test_batch); "
            "--split picks a split folder of an ImageFolder root: drop it"
        )


def _auto_device(name: str) -> str:
    """``auto`` resolved: ``cuda`` when CUDA is available, else ``cpu``; other names unchanged."""
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def _device_name(opts: dict[str, Any]) -> str:
    """``--device`` (default ``auto``) with ``auto`` resolved."""
    return _auto_device(str(_option(opts, "device")))


def _torch_device(name: str) -> Any:
    """``--device`` as a torch device (``auto`` resolved; CUDA must be available for a cuda device)."""
    import torch

    name = _auto_device(name)
    try:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here (use --device cpu)")
    except RuntimeError as exc:
        raise UsageError(f"--device {name!r} is not a torch device: {exc}") from None
    return device


def _perturbation_list(text: str | None) -> tuple[str, ...] | None:
    """``--perturbations`` as a tuple of known -P names; None = the data set's default list."""
    if not text:
        return None
    from robust_eval.constants import TEST_PERTURBATIONS as TP
    from robust_eval.constants import VALIDATION_PERTURBATIONS as VP

    perturbations = tuple(p.strip() for p in text.split(",") if p.strip())
    unknown = [p for p in perturbations if p not in (*TP, *VP)]
    if unknown:
        raise UsageError(f"--perturbations: unknown {unknown}; known: {', '.join((*TP, *VP))}")
    return perturbations


def _attack_settings(opts: dict[str, Any]) -> tuple[str, Any]:
    """``--attack`` (pgd | autoattack) and AutoAttack's settings (None = RobustBench's per data set)."""
    from robust_eval.constants import ATTACKS

    attack = _option(opts, "attack")
    if attack not in ATTACKS:
        raise UsageError(f"--attack must be one of {', '.join(ATTACKS)}, got {attack!r}")
    eps = opts.get("autoattack_eps")
    return attack, (None if eps is None else eps / 255, opts.get("n_examples"))


def _ood_scores(opts: dict[str, Any]) -> tuple[str, ...]:
    """``--ood-scores`` as a tuple of known detectors (robust_eval.ood_scores; default msp)."""
    from robust_eval.ood_scores import parse_scores

    try:
        return parse_scores(opts.get("ood_scores"))
    except ValueError as exc:
        raise UsageError(f"--ood-scores: {exc}") from None


def _overrides(opts: dict[str, Any]) -> dict[str, Any]:
    """The input-contract flags (``--mean --std --input-size --crop-pct``), checked."""
    from robust_eval.checkpoints.data_config import parse_overrides

    return parse_overrides(opts.get("mean"), opts.get("std"), opts.get("input_size"), opts.get("crop_pct"))


def precheck(opts: dict[str, Any]) -> None:
    """:func:`_check_options` as a command's first step (one line, exit 2), for commands that look at
    other files (``baseline``'s network) before they evaluate."""
    try:
        _check_options(opts)
    except (UsageError, ValueError) as exc:
        fail(PROG, str(exc))


def _make_context(opts: dict[str, Any], shard: Any) -> Any:
    """Load the checkpoint and build the suites' :class:`robust_eval.suites.Context` (on this rank's
    device: ``cuda`` is ``cuda:<LOCAL_RANK>`` under torchrun)."""
    from robust_eval import suites as S
    from robust_eval.cache import CellCache
    from robust_eval.checkpoints.formats import load_checkpoint

    device = _torch_device(shard.device(_device_name(opts)))
    speed = _speed(opts, device)  # before the checkpoint: fp16 on the CPU is told at once
    baseline = None
    if opts.get("baseline"):
        from robust_eval.baselines import get_baseline

        baseline = get_baseline(opts["baseline"])
    overrides = _overrides(opts)
    model, info = load_checkpoint(
        opts["checkpoint"],
        model=opts.get("model"),
        num_classes=opts.get("num_classes"),
        dataset=opts.get("dataset"),
        ema=opts.get("ema", False),
        device=device,
        data_overrides=overrides,
        model_dir=opts.get("model_dir"),
        threat_model=_option(opts, "threat_model"),
    )
    metadata = info.to_dict()
    model = speed.prepare(model)
    _check_split(opts.get("split"), metadata["dataset"])
    if baseline is not None:
        baseline.check_dataset(info.dataset)
    out: Path = opts["out"]
    pgd = S.PGDSettings(
        eps=_option(opts, "eps") / 255,
        alpha=_option(opts, "alpha") / 255,
        steps=_option(opts, "steps"),
        random_start=_option(opts, "random_start"),
    )
    attack, autoattack = _attack_settings(opts)
    return S.Context(
        model=model,
        metadata=metadata,
        data_dir=_data_dir(opts, metadata),
        cache=CellCache(out / ".cache", metadata["sha256"], fresh=opts.get("fresh", False), shard=shard),
        device=device,
        batch_size=_option(opts, "batch_size"),
        workers=_option(opts, "workers"),
        subset=opts.get("subset"),
        split=opts.get("split"),
        seed=_option(opts, "seed"),
        pgd=pgd,
        attack=attack,
        autoattack=S.AutoAttackSettings(*autoattack),
        perturbations=_perturbation_list(opts.get("perturbations")),
        generate=opts.get("generate", False),
        imagenet_c_protocol=_option(opts, "imagenet_c_protocol"),
        baseline=baseline,
        shard=shard,
        ood_scores=_ood_scores(opts),
        calibration_extras=bool(opts.get("calibration_extras", False)),
        speed=speed,
    )


def _speed(opts: dict[str, Any], device: Any) -> Any:
    """``--amp --channels-last --compile --decode --pgd-amp`` resolved for ``device``
    (:class:`robust_eval.speed.SpeedSettings`; fp16 or --decode gpu without CUDA: one line)."""
    from robust_eval.speed import resolve_speed

    return resolve_speed(
        device,
        amp=_option(opts, "amp"),
        channels_last=bool(_option(opts, "channels_last")),
        compile=bool(_option(opts, "compile")),
        decode=_option(opts, "decode"),
        pgd_amp=bool(_option(opts, "pgd_amp")),
    )


def _data_dir(opts: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """``--data-dir``, else $ROBUST_EVAL_DATA, else ./data - or, when ./data lacks the data, the folder
    recorded in the checkpoint (said in one line)."""
    data_dir = resolve_data_dir(opts.get("data_dir"))
    if opts.get("data_dir") is None and not os.environ.get("ROBUST_EVAL_DATA"):
        from robust_eval.data import fallback_data_dir

        data_dir, note = fallback_data_dir(data_dir, metadata)
        if note is not None:
            err_console.print(note, highlight=False, soft_wrap=True, markup=False)
    return data_dir


def _skip(skipped: dict[str, str], suite: str, reason: str) -> None:
    skipped[suite] = reason
    err_console.print(f"[yellow]skipped {suite}:[/yellow] {reason}", highlight=False, soft_wrap=True)


def _run_suites(
    command: str, suites: Sequence[str], ctx: Any, bars: _Bars | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON blocks of the suites that ran, and why the others were skipped. A single-suite command
    fails on absent or malformed data; ``all`` skips that suite with one line and goes on."""
    from robust_eval import suites as S
    from robust_eval.data import DataLayoutError

    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for suite in suites:
        if command == "all" and not S.SUITES[suite].applies(ctx):
            continue  # e.g. ImageNet-A/-R only exist for ImageNet classifiers
        if bars is not None:
            bars.next_suite(suite)
        try:
            results[suite] = S.SUITES[suite].run(ctx).to_dict()
            skipped_sets = results[suite].get("skipped_sets") or {}  # e.g. a malformed <data>/ood/ set
            for name, reason in skipped_sets.items():
                err_console.print(
                    f"[yellow]skipped {suite} set {name}:[/yellow] {reason}", highlight=False, soft_wrap=True
                )
        except S.SuiteSkipped as exc:
            if command not in _SKIPPING:
                raise UsageError(f"{suite}: {exc}") from None
            _skip(skipped, suite, str(exc))
        except DataLayoutError as exc:
            if command not in _SKIPPING:
                raise
            _skip(skipped, suite, f"malformed data: {exc}")
    return results, skipped


def _write_outputs(
    command: str,
    suites: Sequence[str],
    ctx: Any,
    opts: dict[str, Any],
    results: dict[str, Any],
    skipped: dict[str, str],
) -> None:
    """Write ``<out>/<command>.json``, the Markdown report, plots and the optional extra files, and
    print the summary."""
    from robust_eval.checkpoints.data_config import describe
    from robust_eval.report.write import build_result, print_summary, write_report, write_result

    out: Path = opts["out"]
    result = build_result(command, ctx.metadata, _protocol(ctx, opts, suites), results, skipped)
    json_path = write_result(out / f"{command}.json", result)
    md_path, _ = write_report(result, out, command)
    save_baseline_path: Path | None = opts.get("save_baseline")
    if save_baseline_path is not None:
        _save_baseline(save_baseline_path, result)
    leaderboard_path: Path | None = opts.get("robustbench_json")
    if leaderboard_path is not None:
        _write_leaderboard(leaderboard_path, result)
    _write_openood_tables(out, result)
    if opts.get("json"):
        sys.stdout.write(json.dumps(result, indent=2) + "\n")
        print_summary(err_console, result)
    else:
        print_summary(Console(), result)
    err_console.print(describe(ctx.metadata["data_config"]), highlight=False, soft_wrap=True, markup=False)
    err_console.print(f"wrote {json_path} and {md_path}", highlight=False, soft_wrap=True)


def _write_openood_tables(out: Path, result: dict[str, Any]) -> None:
    """``<out>/ood-openood-<score>.csv`` per detector when the OOD suite ran more than msp."""
    from robust_eval.cache import atomic_write_text
    from robust_eval.ood_detectors import openood_csv

    block = result.get("suites", {}).get("ood", {}).get("detectors")
    for score in block["per_score"] if block else ():
        atomic_write_text(out / f"ood-openood-{score}.csv", openood_csv(block, score))


def _check_save_baseline(path: Path) -> None:
    """Refuse, before the run, a --save-baseline target that could not be written after it."""
    from robust_eval.baselines import check_baseline_target

    try:
        check_baseline_target(path)
    except OSError as exc:
        raise UsageError(f"--save-baseline: {exc}") from None


def _save_baseline(path: Path, result: dict[str, Any]) -> None:
    """Write the run's -C / -P numbers as a baseline file (robust_eval.baselines.Baseline.from_result)."""
    from robust_eval.baselines import Baseline, BaselineError, save_baseline
    from robust_eval.constants import split_difficulty

    left_out: list[str] = []
    try:
        baseline = Baseline.from_result(result, left_out=left_out)
    except BaselineError as exc:
        what = "baseline" if result["command"] == "baseline" else "--save-baseline"
        raise UsageError(f"{what}: {exc}") from None
    save_baseline(path, baseline)
    levels = sum(split_difficulty(p)[1] > 1 for p in baseline.flip_probability)
    err_console.print(
        f"wrote baseline {path} ({baseline.dataset}): {len(baseline.corruption_errors)} corruptions x 5 "
        f"severities, {len(baseline.flip_probability)} perturbation entries ({levels} at difficulty 2-3), "
        f"clean error {'yes' if baseline.clean_error is not None else 'no'}",
        highlight=False,
        soft_wrap=True,
    )
    if left_out:
        err_console.print(
            f"[yellow]left out of the baseline[/yellow] (0: nothing can be divided by it): {', '.join(left_out)}",
            highlight=False,
            soft_wrap=True,
        )


def _write_leaderboard(path: Path, result: dict[str, Any]) -> None:
    from robust_eval.cache import atomic_write_text
    from robust_eval.zoo import ZooError, leaderboard_entry

    try:
        entry = leaderboard_entry(result)
    except ZooError as exc:
        raise UsageError(str(exc)) from None
    atomic_write_text(path, json.dumps(entry, indent=2) + "\n")
    err_console.print(f"wrote RobustBench leaderboard entry {path}", highlight=False, soft_wrap=True)
