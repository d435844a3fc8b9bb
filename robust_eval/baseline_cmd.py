"""The ``robust-eval baseline`` command: a baseline file from a baseline network, on the data you have.

The normalized ImageNet numbers divide a model's errors / flip probabilities by a baseline's. For the
15 benchmark corruptions the published AlexNet errors are built in (``--baseline alexnet``); the 4
extra corruptions, -C-bar and ImageNet-P (mFR / mT5D, every difficulty) were never published in
code, so they need a baseline computed on the same data. By default the baseline network is
torchvision's AlexNet from a local weights file (``alexnet-owt-7be5be79.pth``, the plain state_dict
that torchvision's cache holds; loaded with ``weights_only=True`` and built with
``torchvision.models.alexnet(weights=None)``; nothing is downloaded); ``--checkpoint`` takes any
other baseline checkpoint (a vanilla model of your own, a CIFAR model for CIFAR baselines).

The command runs the clean, corruptions and perturbations suites through the same code path as
``robust-eval corruptions`` / ``perturbations`` (the run's result and report go to ``--out`` as
``baseline.json`` / ``baseline.md``, absent sets are skipped with a line), over every -C / -C-bar
corruption and every -P perturbation present, and writes the result's numbers with
:meth:`robust_eval.baselines.Baseline.from_result` in the format ``--baseline FILE`` reads.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer

from robust_eval.evaluate import evaluate, precheck
from robust_eval.options import COMMON_OPTIONS, CORRUPTION_OPTIONS
from robust_mix.cli import Option, command, fail

__all__ = ["ALEXNET_WEIGHTS", "SHARED_OPTIONS", "SUITES", "default_weights", "register"]

#: File name of torchvision's AlexNet weights (``AlexNet_Weights.IMAGENET1K_V1``).
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"
#: The suites a baseline is computed from (clean: the clean error of relative mCE).
SUITES: tuple[str, ...] = ("clean", "corruptions", "perturbations")
#: Options of the evaluation commands that ``baseline`` takes too (by parameter name).
SHARED_OPTIONS: frozenset[str] = frozenset(
    {
        *("data_dir", "out", "json", "subset", "batch_size", "workers", "device", "fresh", "seed", "split"),
        *("model", "num_classes", "dataset", "ema", "imagenet_c_protocol"),
        *("mean", "std", "input_size", "crop_pct", "model_dir", "threat_model"),
    }
)


def default_weights() -> Path:
    """Where torchvision's cache keeps the AlexNet weights: ``<torch hub dir>/checkpoints/<file>``."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS


def _baseline_network(weights: Path | None, checkpoint: Path | None) -> Path:
    """The checkpoint to evaluate: ``--checkpoint``, else the AlexNet weights (checked to be AlexNet's)."""
    from robust_eval.checkpoints.formats import CheckpointError, checkpoint_format

    if weights is not None and checkpoint is not None:
        fail("robust-eval", "baseline: give --weights (torchvision AlexNet) or --checkpoint, not both")
    if checkpoint is not None:
        return checkpoint
    path = weights if weights is not None else default_weights()
    if not path.is_file():
        fail(
            "robust-eval",
            f"baseline: no AlexNet weights at '{path}': put torchvision's {ALEXNET_WEIGHTS} there or pass "
            "--weights FILE (nothing is downloaded), or use --checkpoint BASE.pth for another baseline network",
        )
    try:
        kind = checkpoint_format(path)
    except CheckpointError as exc:
        fail("robust-eval", f"baseline: {exc}")
    if kind != "torchvision-alexnet":
        fail(
            "robust-eval",
            f"baseline: '{path}' is a {kind} checkpoint, not torchvision's AlexNet state_dict; pass "
            "other networks with --checkpoint",
        )
    return path


def _check_output(output: Path, out: Path) -> None:
    from robust_eval.baselines import check_baseline_target

    if output.resolve() in {(out / f"baseline{ext}").resolve() for ext in (".json", ".md")}:
        fail("robust-eval", f"baseline: '{output}' is where the run's own result goes; choose another path")
    try:
        check_baseline_target(output)
    except OSError as exc:
        fail("robust-eval", f"baseline: {exc}")


def _run(**kwargs: Any) -> None:
    from robust_eval.constants import TEST_PERTURBATIONS, VALIDATION_PERTURBATIONS

    precheck(kwargs)  # option values first: one line naming the option
    output: Path = kwargs.pop("output")
    network = _baseline_network(kwargs.pop("weights"), kwargs.pop("base_checkpoint"))
    _check_output(output, kwargs["out"])
    opts = {
        **kwargs,
        "checkpoint": network,
        "save_baseline": output,
        "baseline": None,
        # every perturbation present, not only the averaged list
        "perturbations": ",".join((*TEST_PERTURBATIONS, *VALIDATION_PERTURBATIONS)),
    }
    evaluate("baseline", SUITES, opts)


_OUTPUT = inspect.Parameter(
    "output",
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    annotation=Annotated[
        Path,
        typer.Argument(help="The baseline JSON file to write (never overwritten); read by --baseline."),
    ],
)
_OWN: tuple[Option, ...] = (
    Option(
        "weights",
        Annotated[
            Path | None,
            typer.Option(
                "--weights",
                help=f"torchvision's AlexNet state_dict ({ALEXNET_WEIGHTS}; default: torchvision's cache, "
                "<torch hub dir>/checkpoints/). Never downloaded.",
            ),
        ],
    ),
    Option(
        "base_checkpoint",
        Annotated[
            Path | None,
            typer.Option(
                "--checkpoint",
                help="Another baseline network instead of AlexNet (any checkpoint robust-eval reads).",
            ),
        ],
    ),
)


def register(app: typer.Typer) -> None:
    """Add ``baseline`` to ``app``: its own options and those of the evaluation commands named in
    :data:`SHARED_OPTIONS`, run through the same pipeline (:func:`robust_eval.evaluate.evaluate`)."""
    shared = [o for o in (*COMMON_OPTIONS, *CORRUPTION_OPTIONS) if o.name in SHARED_OPTIONS]
    doc = (
        "Compute a baseline file (for --baseline) from torchvision's AlexNet weights or another baseline "
        "checkpoint, on the data present: -C incl. the 4 extras, -C-bar, -P at every difficulty, clean. "
        "The 15-corruption ImageNet mCE keeps the published AlexNet constants; the extras, -C-bar and "
        "ImageNet-P mFR / mT5D need a computed baseline."
    )
    command(app, "baseline", _run, [*_OWN, *shared], doc, leading=[_OUTPUT])
