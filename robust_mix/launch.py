"""Entry points: set the process environment, then hand over to the command's own ``main``."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["COMMANDS", "DEFER_HEAVY_IMPORTS", "ipmix_fractals", "main", "robust_eval", "timm"]

#: Set by a command before it imports its package: the package then leaves its import-time work
#: that needs torch (``timm_ext`` registering its models with timm) to the command, which does it
#: after its arguments are parsed, so ``--help`` and a usage error never import torch.
DEFER_HEAVY_IMPORTS = False


def _prepare() -> None:
    """What every command sets before importing a library (an explicit value from the user wins)."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


def ipmix_fractals() -> None:
    """The ``ipmix-fractals`` command."""
    _prepare()
    from albumentations_ipmix.cli import main as run

    run()


def robust_eval() -> None:
    """The ``robust-eval`` command."""
    _prepare()
    from robust_eval.cli import main as run

    run()


def timm() -> None:
    """The ``timm`` command (``timm train ...``); ``timm train`` registers the models itself."""
    global DEFER_HEAVY_IMPORTS
    _prepare()
    DEFER_HEAVY_IMPORTS = True
    from timm_ext.cli import main as run

    run()


COMMANDS: dict[str, Callable[[], None]] = {
    "ipmix-fractals": ipmix_fractals,
    "robust-eval": robust_eval,
    "timm": timm,
}


def main() -> None:
    """``python -m robust_mix COMMAND ...``: run one of :data:`COMMANDS` with the remaining arguments."""
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        names = ", ".join(COMMANDS)
        print(f"usage: python -m robust_mix COMMAND [ARGS]...  (COMMAND: {names})", file=sys.stderr)
        sys.exit(2)
    command = sys.argv.pop(1)
    sys.argv[0] = command
    COMMANDS[command]()
