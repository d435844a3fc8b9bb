"""Batched JPEG decoding on the evaluation device (``robust-eval --decode gpu``).

Worker processes (a torch ``DataLoader``) read the file bytes into pinned memory; the main process
decodes a whole batch with one ``torchvision.io.decode_jpeg(list, device=...)`` call (nvJPEG on CUDA)
and resizes and crops on the device with :func:`resize_center_crop_tensor`, the tensor form of
:func:`robust_mix.files.resize_center_crop`. Files that are not JPEGs are decoded on the CPU in the
workers (Pillow, as ``--decode cpu``) and joined to the batch.

Pixels differ from the CPU path's (Pillow / libjpeg-turbo, then OpenCV's resize) in two ways, both
bounded in ``tests/test_eval_speed.py``: nvJPEG's inverse DCT and chroma upsampling round differently
from libjpeg-turbo's (a level or two on some pixels), and the resize is computed in float32 on the
device where OpenCV uses fixed-point arithmetic (an area shrink) or its own kernels (enlarging),
which moves some pixels by a level. A run
with ``--decode gpu`` records it (``protocol.speed.decode``) and caches its cells apart.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data

__all__ = ["decode_batches", "gpu_decoding_available", "is_jpeg", "resize_center_crop_tensor"]

#: torch interpolation modes standing for robust_mix.files' OpenCV ones when enlarging (lanczos has
#: no torch kernel: bicubic is the nearest one).
_ENLARGE = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic", "area": "bilinear"}
_ENLARGE["lanczos"] = "bicubic"
_JPEG_MAGIC = b"\xff\xd8\xff"


def gpu_decoding_available() -> bool:
    """CUDA is there and this torchvision decodes JPEGs on it."""
    if not torch.cuda.is_available():
        return False
    try:
        from torchvision.io import decode_jpeg  # noqa: F401
    except ImportError:
        return False
    return True


def is_jpeg(data: bytes | np.ndarray) -> bool:
    """Whether the file bytes start with a JPEG marker (SOI + a segment)."""
    return bytes(data[:3]) == _JPEG_MAGIC


def resize_center_crop_tensor(
    image: torch.Tensor, size: int, crop_pct: float = 1.0, interpolation: str = "bilinear"
) -> torch.Tensor:
    """:func:`robust_mix.files.resize_center_crop` on a uint8 ``(C, H, W)`` tensor, on its device.

    The geometry is the same (shorter side to ``round(size / crop_pct)``, sizes rounded alike, center
    crop ``size x size``); the shrink averages areas exactly (OpenCV's ``INTER_AREA``, in float32
    where OpenCV rounds to fixed point), enlarging uses torch's kernel of ``interpolation``. Returns uint8 ``(size, size, C)``.
    """
    if size < 1 or not 0 < crop_pct <= 1:
        raise ValueError(f"size must be >= 1 and crop_pct in (0, 1], got {size}, {crop_pct}")
    h, w = image.shape[-2:]
    short = round(size / crop_pct)
    if min(h, w) != short:
        scale = short / min(h, w)
        nh, nw = max(short, round(h * scale)), max(short, round(w * scale))
        x = image.unsqueeze(0).float()
        if scale < 1:  # area average: every output pixel the exact mean of the input area it covers
            x = torch.einsum(
                "oh,nchw,pw->ncop", _area_weights(nh, h, x.device), x, _area_weights(nw, w, x.device)
            )
        else:
            mode = _ENLARGE.get(interpolation, "bilinear")
            corners = None if mode == "nearest" else False
            x = torch.nn.functional.interpolate(x, size=(nh, nw), mode=mode, align_corners=corners)
        image = x.round_().clamp_(0, 255).to(torch.uint8)[0]
        h, w = nh, nw
    top, left = (h - size) // 2, (w - size) // 2
    return image[:, top : top + size, left : left + size].permute(1, 2, 0).contiguous()


def _area_weights(n_out: int, n_in: int, device: torch.device) -> torch.Tensor:
    """``(n_out, n_in)`` float32 weights of an area shrink along one axis: the overlap of output
    pixel ``o``'s span ``[o * s, (o + 1) * s)`` (``s = n_in / n_out``) with input pixel ``j``, over ``s``
    (rows sum to 1; OpenCV's ``INTER_AREA``)."""
    s = n_in / n_out
    edges = torch.arange(n_out + 1, dtype=torch.float64, device=device) * s
    j = torch.arange(n_in, dtype=torch.float64, device=device)[None]
    overlap = torch.minimum(edges[1:, None], j + 1) - torch.maximum(edges[:-1, None], j)
    return (overlap.clamp_(min=0) / s).float()


class _FileBytes(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Item ``i``: ``(start, [file bytes as a uint8 tensor, or the CPU-decoded (size, size, 3) image
    for a file that is not a JPEG])`` of the ``i``-th ``(start, stop)`` of ``bounds``."""

    def __init__(self, source: Any, bounds: Sequence[tuple[int, int]]) -> None:
        self.source = source.with_paths(source.paths, source.labels)
        self.source.workers = 0
        self.bounds = list(bounds)

    def __len__(self) -> int:
        return len(self.bounds)

    def __getitem__(self, i: int) -> tuple[int, list[tuple[bool, torch.Tensor]]]:
        start, stop = self.bounds[i]
        items = []
        for path in self.source.paths[start:stop]:
            data = np.frombuffer(Path(path).read_bytes(), dtype=np.uint8)
            if is_jpeg(data):
                items.append((True, torch.from_numpy(data.copy())))
            else:
                items.append((False, torch.from_numpy(self.source._load(path))))
        return start, items


def _keep(item: Any) -> Any:
    return item


def decode_batches(
    source: Any, bounds: Sequence[tuple[int, int]], device: torch.device
) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, uint8 (B, size, size, 3) tensor on device)`` for each ``(start, stop)`` of
    ``bounds``, in order: bytes read by ``source.workers`` processes (at least one) into pinned memory
    (on CUDA), JPEGs decoded by one batched ``decode_jpeg`` call on ``device`` (EXIF orientation
    applied, gray and CMYK as RGB).

    ``source`` is a :class:`robust_eval.data.FileSource`; a JPEG the decoder refuses is decoded by
    Pillow instead (which names the file when it is broken)."""
    from torchvision.io import ImageReadMode, decode_jpeg

    loader = torch.utils.data.DataLoader(
        _FileBytes(source, bounds),
        batch_size=None,
        num_workers=max(1, min(source.workers, len(bounds))),
        collate_fn=_keep,
        pin_memory=device.type == "cuda",
    )
    for start, items in loader:
        jpegs = [payload for jpeg, payload in items if jpeg]
        try:
            decoded = iter(
                decode_jpeg(jpegs, mode=ImageReadMode.RGB, device=device, apply_exif_orientation=True)
                if jpegs
                else []
            )
        except RuntimeError:
            decoded = None
        images = []
        for k, (jpeg, payload) in enumerate(items):
            if not jpeg:
                images.append(payload.to(device, non_blocking=True))
            elif decoded is None:  # the batch call failed: Pillow, file by file (names a broken one)
                images.append(torch.from_numpy(source._load(source.paths[start + k])).to(device))
            else:
                chw = next(decoded)
                images.append(
                    resize_center_crop_tensor(chw, source.size, source.crop_pct, source.interpolation)
                )
        yield start, torch.stack(images)
