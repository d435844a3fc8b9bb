"""Model creation for ``timm train``: timm models, local or cached pretrained weights, never a download."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from torch import nn

from .config import TrainConfig, TrainError

__all__ = ["create_model", "no_downloads"]


@contextlib.contextmanager
def no_downloads() -> Any:
    """Block every download timm could start (Hugging Face hub, weight URLs) inside the block."""
    import huggingface_hub.constants as hub_constants
    import timm.models._hub as timm_hub
    import torch.hub

    def refuse(url: str, *args: Any, **kwargs: Any) -> None:
        raise TrainError(
            f"--pretrained: the weights are not in the local cache and nothing is downloaded during a run "
            f"(would fetch {url}); download them once beforehand or pass --pretrained-file PATH"
        )

    saved = (hub_constants.HF_HUB_OFFLINE, torch.hub.download_url_to_file, timm_hub.download_url_to_file)
    hub_constants.HF_HUB_OFFLINE = True
    torch.hub.download_url_to_file = timm_hub.download_url_to_file = refuse
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE, torch.hub.download_url_to_file, timm_hub.download_url_to_file = saved


def create_model(cfg: TrainConfig, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` for the run: random init, local pretrained weights, or timm's cached ones."""
    import timm

    if cfg.pretrained_file:
        overlay = {"file": str(Path(cfg.pretrained_file).expanduser())}
        try:
            return timm.create_model(cfg.model, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
        except Exception as exc:  # unreadable file, unsafe pickle, weights of another architecture
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(":")
            raise TrainError(
                f"--pretrained-file '{cfg.pretrained_file}' cannot start --model {cfg.model}: {reason}; pass "
                f"weights saved from a {cfg.model} (a state_dict, or a checkpoint holding one)"
            ) from None
    if not cfg.pretrained:
        return timm.create_model(cfg.model, pretrained=False, **kwargs)
    try:
        with no_downloads():
            return timm.create_model(cfg.model, pretrained=True, **kwargs)
    except TrainError:
        raise
    except Exception as exc:  # huggingface_hub's offline / not-cached errors, missing pretrained tags
        raise TrainError(
            f"--pretrained: timm's weights for {cfg.model!r} are not available offline "
            f"({type(exc).__name__}); download them once beforehand or pass --pretrained-file PATH"
        ) from None
