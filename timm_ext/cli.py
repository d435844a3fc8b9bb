"""The ``timm`` command: ``timm train --aug ipmix ...`` (timm's wheel ships no CLI of its own).

Every option of :class:`timm_ext.train.TrainConfig` is a flag here (names follow timm's
``train.py``), and ``--config FILE.yaml`` sets any of them from a file; flags given on the command
line win over the file; ``--resume RUN`` fills the options not given from the run's saved settings.
Bad input exits with code 2 and one ``error:`` line, a folder that cannot be written (read-only,
full) with code 1; Ctrl-C prints the command that continues (or restarts) the run and exits with 130.

Examples::

    timm train --config configs/cifar10_wrn40_4_ipmix.yaml --data-dir ~/data
    timm train --dataset cifar100 --data-dir ~/data --model wrn40_4 --drop 0.3 --aug ipmix --jsd
    torchrun --nproc_per_node=2 -m timm_ext.cli train --config configs/cifar100_wrn40_4_ipmix.yaml ...
"""

from __future__ import annotations

import errno
import inspect
import os
import shlex
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any, Optional

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer

from robust_mix.cli import Option, check_options, command, fail, run
from robust_mix.errors import UsageError

from .train.config import (
    TrainConfig,
    TrainError,
    TrainInterrupted,
    config_from_dict,
    field_kind,
    load_config_file,
)

#: Environment variable a driver script sets to replace the "continue with: timm train --resume ..."
#: advice printed on Ctrl-C (``make demo``: "run make demo again").
RESUME_HINT_ENV = "TIMM_TRAIN_RESUME_HINT"

app = typer.Typer(
    name="timm",
    help="timm extras from robust-mix: train CIFAR/ImageNet models with IPMix, PixMix, AugMix, AdAutoMix, ...",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: rich's option table cuts help text to "..." at 80 columns
)


def _given(ctx: typer.Context, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    # typer vendors click: compare the enum by name, not by identity
    return source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")


def _settings(ctx: typer.Context, config: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    """Defaults < a resumed run's saved settings < ``--config`` file < flags given on the command line."""
    file_values: dict[str, Any] = load_config_file(config) if config is not None else {}
    given = {name: value for name, value in options.items() if _given(ctx, name)}
    resume = given.get("resume", file_values.get("resume"))
    values: dict[str, Any] = {}
    if resume:
        from .train.state import resume_settings  # torch: only to read a run's saved settings

        values = resume_settings(resume)
    values.update(file_values)
    values.update(given)
    for name, value in options.items():
        values.setdefault(name, value)
    return values


def _command_line(ctx: typer.Context) -> str:
    """``timm train`` with the options given on this command line (to repeat it)."""
    words = ["timm", "train"]
    for param in ctx.command.params:
        if param.name is None or not _given(ctx, param.name):
            continue
        value = ctx.params[param.name]
        if isinstance(value, bool):
            words.append(max(param.opts if value else param.secondary_opts, key=len))
        else:
            words += [max(param.opts, key=len), str(value)]
    return shlex.join(words)


def _train(ctx: typer.Context, config: Path | None = None, **options: Any) -> None:
    """Train a timm model with IPMix, PixMix, AugMix, RandAugment, Mixup, CutMix, Cutout, AdAutoMix or AutoMix.

    Example: timm train --config configs/cifar100_wrn40_4_ipmix.yaml --data-dir ~/data --output runs/wrn

    Writes args.yaml (with the first last.pth), metrics.csv, last.pth (resume state) and best.pth /
    final.pth (robust-eval format). --resume RUN_FOLDER continues a run with its saved settings (flags
    given override them).
    """
    from robust_mix.files import FileProblem

    try:
        check_options(OPTIONS, options)  # the flags' ranges, before torch is imported
        cfg = config_from_dict(_settings(ctx, config, options), where="command line")
        from .train import train

        train(cfg)
    except (TrainError, UsageError) as exc:
        fail("timm", str(exc).splitlines()[0])
    except FileProblem as exc:  # the folder is another run's (2), or cannot be written (1)
        fail("timm", exc, code=2 if exc.errno == errno.EBUSY else 1)
    except TrainInterrupted as exc:
        if os.environ.get(RESUME_HINT_ENV):  # a driver that reruns this command itself (make demo)
            hint = os.environ[RESUME_HINT_ENV]
        elif exc.saved:
            hint = f"continue with: timm train --resume {shlex.quote(str(exc.out_dir))}"
        else:
            hint = f"no checkpoint was written yet; start again with: {_command_line(ctx)}"
        typer.echo(f"timm: interrupted; {hint}", err=True)
        raise typer.Exit(code=130) from None


def _options() -> list[Option]:
    """``--config`` and one option per :class:`TrainConfig` field (flags, help and range from its metadata)."""
    config = Option(
        "config",
        Annotated[
            Optional[Path],  # noqa: UP045 - typer needs typing.Optional at runtime on 3.10
            typer.Option("--config", help="YAML file of settings (keys = option names); flags win."),
        ],
    )
    options = [config]
    for f in fields(TrainConfig):
        kind, optional = field_kind(f.name)
        flags = list(f.metadata["flags"])
        if kind is bool:
            long = flags[0]
            flags = [f"{long}/--no-{long[2:]}", *flags[1:]]
        py_type: Any = Optional[kind] if optional else kind  # noqa: UP045
        annotation = Annotated[py_type, typer.Option(*flags, help=f.metadata["help"], show_default=True)]
        if f.default is not MISSING:
            default = f.default
        else:
            default = f.default_factory() if f.default_factory is not MISSING else None
        meta = f.metadata
        options.append(
            Option(f.name, annotation, default, meta.get("range"), path=meta.get("path") is not None)
        )
    return options


_CONTEXT = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
OPTIONS = _options()
command(app, "train", _train, OPTIONS, leading=[_CONTEXT], no_args_is_help=False)


@app.command("version")
def version() -> None:
    """Print the versions of timm_ext and timm."""
    import timm

    from . import __version__

    typer.echo(f"timm_ext {__version__}, timm {timm.__version__}")


def main() -> None:
    """Console entry point (``timm``): one-line errors, exit status 2 for bad input."""
    run(app, "timm")


if __name__ == "__main__":
    main()
