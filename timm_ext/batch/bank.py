"""Mixing pictures on the device: a tensor bank, fitted once per image size, cropped per sample."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from albumentations_ipmix.functional import match_channels
from albumentations_ipmix.sources import MixingSource, MixingSourceError, as_source, fit_shape

from . import kernels as K
from .random import uniform

__all__ = ["DEFAULT_BANK_SIZE", "PictureBank"]

#: Pictures held by default (the procedural source's default count).
DEFAULT_BANK_SIZE = 512


class PictureBank:
    """Up to ``size`` pictures of a mixing source as one uint8 tensor ``[N, C, Hf, Wf]`` per image size.

    Each picture is fitted as the per-image transforms fit it (``MixingSource.fitted``: resized to
    cover 1.125 x the image, aspect kept) and centre-cropped to the covering size of a square
    picture, so every picture of the bank has one shape (procedural fractals are square: nothing is
    cut). A sample then draws a picture and a random ``H x W`` window of it, as the per-image path does.

    Args:
        fractals: what ``IPMix(fractals=...)`` accepts (None: procedural fractals).
        size: pictures kept, >= 1; a larger source contributes ``size`` evenly spaced pictures.
    """

    def __init__(self, fractals: Any = None, size: int = DEFAULT_BANK_SIZE) -> None:
        if size < 1:
            raise ValueError(f"bank size must be >= 1 picture, got {size}")
        self.fractals = fractals
        self.size = int(size)
        self._source: MixingSource | None = None
        self._tensors: dict[tuple[int, int, int, str], torch.Tensor] = {}

    @property
    def source(self) -> MixingSource:
        """The mixing source (procedural fractals imported and built on first use)."""
        if self._source is None:
            if self.fractals is None:
                import albumentations_ipmix.fractals  # noqa: F401 - registers the procedural source
            try:
                self._source = as_source(self.fractals)
            except MixingSourceError as exc:
                raise MixingSourceError(f"batched mixing: {exc}") from None
        return self._source

    def tensor(self, height: int, width: int, channels: int, device: torch.device) -> torch.Tensor:
        """The bank for ``height x width`` images with ``channels`` channels on ``device`` (built once)."""
        key = (height, width, channels, str(device))
        bank = self._tensors.get(key)
        if bank is None:
            source = self.source
            count = min(len(source), self.size)
            indices = np.linspace(0, len(source) - 1, count).round().astype(int)
            fh, fw = fit_shape(height, width, height, width)
            pictures = []
            for i in indices:
                pic = source.fitted(int(i), height, width)
                top, left = (pic.shape[0] - fh) // 2, (pic.shape[1] - fw) // 2
                pic = match_channels(np.ascontiguousarray(pic[top : top + fh, left : left + fw]), channels)
                pictures.append(np.ascontiguousarray(pic.transpose(2, 0, 1)))
            bank = torch.from_numpy(np.stack(pictures)).to(device)
            self._tensors[key] = bank
        return bank

    def draw(
        self,
        batch: int,
        height: int,
        width: int,
        channels: int,
        device: torch.device,
        generator: torch.Generator | None,
    ) -> torch.Tensor:
        """One mixing picture per sample: uint8 ``[batch, channels, height, width]`` on ``device``."""
        bank = self.tensor(height, width, channels, device)
        n, _, fh, fw = bank.shape
        gen_device = generator.device if generator is not None else device
        u = uniform((batch, 3), generator, gen_device).to(device)
        index = (u[:, 0] * n).to(torch.int64)
        top = (u[:, 1] * (fh - height + 1)).to(torch.int64)
        left = (u[:, 2] * (fw - width + 1)).to(torch.int64)
        index = K.window_index(index, top, left, (channels, fh, fw), (height, width))
        return bank.reshape(-1).index_select(0, index.view(-1)).view(batch, channels, height, width)

    def __repr__(self) -> str:
        return f"PictureBank(fractals={self.fractals!r}, size={self.size})"
