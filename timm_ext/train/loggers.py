"""Optional loggers of ``timm train`` (``--log-wandb``, ``--log-tensorboard``): each epoch's metrics row.

Neither package is imported unless its flag is given (importing ``timm_ext`` never touches the network);
a flag whose package is missing is refused before the run starts (:func:`check_loggers`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from .config import TrainConfig, TrainError

__all__ = ["EpochLoggers", "check_loggers"]

#: flag -> (config field, module that must be importable, what to install)
_NEEDS: dict[str, tuple[str, str, str]] = {
    "--log-wandb": ("log_wandb", "wandb", "wandb"),
    "--log-tensorboard": ("log_tensorboard", "tensorboard", "tensorboard"),
}


def check_loggers(cfg: TrainConfig) -> None:
    """Refuse a logger flag whose package is not installed.

    Raises:
        TrainError: naming the flag and the package to install.
    """
    for flag, (name, module, package) in _NEEDS.items():
        if getattr(cfg, name) and importlib.util.find_spec(module) is None:
            raise TrainError(f"{flag} needs the {package} package: pip install {package}, or drop {flag}")


class EpochLoggers:
    """The loggers a run asked for (primary process only); :meth:`log` each epoch's row, then :meth:`close`.

    Args:
        cfg: the run's settings (its ``--output`` names the run and holds ``tensorboard/``).
        out_dir: the run folder.
    """

    def __init__(self, cfg: TrainConfig, out_dir: Path) -> None:
        self.wandb: Any = None
        self.writer: Any = None
        if cfg.log_wandb:
            import wandb

            self.wandb = wandb.init(project="timm_ext", name=out_dir.name, config=cfg.to_dict())
        if cfg.log_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(out_dir / "tensorboard"))

    def log(self, row: dict[str, Any]) -> None:
        """Every numeric value of an epoch's metrics row, at step = its 1-based epoch."""
        values = {k: float(v) for k, v in row.items() if isinstance(v, (int, float)) and k != "epoch"}
        step = int(row["epoch"])
        if self.wandb is not None:
            self.wandb.log(values, step=step)
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)
            self.writer.flush()

    def close(self) -> None:
        """Finish the wandb run and close the TensorBoard writer."""
        if self.wandb is not None:
            self.wandb.finish()
        if self.writer is not None:
            self.writer.close()
