"""``--mix-device``: IPMix / PixMix / AugMix on whole batches in the transfer step, not in loader workers.

With ``--mix-device auto|cpu|cuda[:N]`` the loader workers only decode, crop and flip and hand over
uint8 ``[B, 3, H, W]`` batches; :class:`DeviceMixing` moves each batch to the mixing device, makes the
views (the clean batch first, then ``--aug-splits - 1`` mixed views, or one mixed view without
splits), normalises them and hands ``[views * B, 3, H, W]`` float to the training step, as timm's
``AugMixDataset`` + prefetcher would. Its generator is seeded from ``(--seed, rank)`` and saved in
``last.pth``, so a resumed run mixes exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .config import TrainConfig, TrainError

__all__ = ["DEVICE_MIX_AUGS", "DeviceMixing", "mix_device"]

#: ``--aug`` values that ``--mix-device`` can run on the device.
DEVICE_MIX_AUGS: tuple[str, ...] = ("ipmix", "pixmix", "augmix")


def mix_device(cfg: TrainConfig, train_device: torch.device) -> torch.device | None:
    """The device ``--mix-device`` names (``auto``: the training device); None for ``workers``."""
    if cfg.mix_device == "workers":
        return None
    return train_device if cfg.mix_device == "auto" else torch.device(cfg.mix_device)


class DeviceMixing:
    """Batched mixing + normalisation of the uint8 batches of one training process.

    Args:
        aa: the config string (``ipmix-...``, ``pixmix-...``, ``augmix-...``).
        views: images per sample handed to the step (``--aug-splits``, or 1: the mixed batch only).
        mean, std: normalisation per channel, in [0, 1] units.
        device: where mixing runs; ``train_device``: where the step runs.
        seed, rank: the generator's seed derives from both (distinct streams per rank).
        fractals: the mixing pictures (``--fractals``; None: procedural).
    """

    def __init__(
        self,
        aa: str,
        views: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        train_device: torch.device,
        seed: int,
        rank: int,
        fractals: str | None = None,
    ) -> None:
        from ..batch import create_batch_mixing

        extra: dict[str, Any] = {}
        if aa.startswith("augmix"):  # as timm's training transforms configure AugMix
            extra = {"translate_pct": 0.3, "fill": tuple(min(255, round(255 * v)) for v in mean)}
        try:
            self.mixing = create_batch_mixing(aa, fractals=fractals, **extra)
        except ValueError as exc:
            raise TrainError(f"--aa: {str(exc).splitlines()[0]}") from exc
        self.views = max(1, int(views))
        self.device, self.train_device = device, train_device
        self.mean = (
            torch.tensor(list(mean), dtype=torch.float32, device=train_device).view(1, -1, 1, 1) * 255.0
        )
        self.std = torch.tensor(list(std), dtype=torch.float32, device=train_device).view(1, -1, 1, 1) * 255.0
        entropy = [int(seed) % 2**63, int(rank), 0xB47C]
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(
            int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)
        )

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` -> normalised float ``[views * B, C, H, W]`` on the training device
        (clean view first when ``views > 1``)."""
        if images.dtype != torch.uint8:
            raise TrainError(
                "--mix-device expects uint8 batches from the loader; this is a bug, please report it"
            )
        x = images.to(self.device, non_blocking=True)
        mixed = [self.mixing(x, self.generator) for _ in range(max(self.views - 1, 1))]
        batch = torch.cat([x, *mixed]) if self.views > 1 else mixed[0]
        batch = batch.to(self.train_device, non_blocking=True)
        return (batch.to(torch.float32) - self.mean) / self.std

    def state_dict(self) -> dict[str, Any]:
        """The generator's state (saved in ``last.pth``)."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"DeviceMixing({self.mixing!r}, views={self.views}, device={self.device})"
