"""-P sets: CIFAR-10/100-P ``.npy`` sequence arrays and ImageNet-P videos (one MP4 per image)."""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from robust_eval.data.images import open_npy
from robust_eval.data.sources import SequenceSource, sample_indices
from robust_mix.cifar import DataLayoutError

__all__ = [
    "VideoSequenceSource",
    "list_perturbation_videos",
    "load_perturbation",
    "load_perturbation_array",
    "read_video",
]


def read_video(path: str | os.PathLike[str]) -> np.ndarray:
    """All frames of a video file (ImageNet-P: MP4) as uint8 ``(T, H, W, 3)`` RGB, decoded with OpenCV."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if len(frames) < 2:
        raise DataLayoutError(f"video '{path}' could not be decoded or has fewer than 2 frames")
    if any(f.shape != frames[0].shape for f in frames):
        raise DataLayoutError(f"video '{path}' changes frame size mid-sequence")
    return np.stack(frames)


class VideoSequenceSource(SequenceSource):
    """ImageNet-P sequences: one video per image (``<perturbation>/<wnid>/<name>.mp4``), decoded on
    demand. Every video of a perturbation must have the same frame count and frame size."""

    def __init__(self, paths: Sequence[str]) -> None:
        if not paths:
            raise DataLayoutError("no videos given")
        self.paths = list(paths)

    def __len__(self) -> int:
        return len(self.paths)

    @functools.cached_property
    def _shape(self) -> tuple[int, ...]:
        """Shape of the first video, decoded only when needed (a cached result skips all decoding)."""
        return read_video(self.paths[0]).shape

    @property
    def frames(self) -> int:
        return int(self._shape[0])

    def sequences(self, start: int, stop: int) -> np.ndarray:
        out = []
        for path in self.paths[start:stop]:
            video = read_video(path)
            if video.shape != self._shape:
                raise DataLayoutError(
                    f"video '{path}' is {video.shape[0]} frames of {video.shape[1]}x{video.shape[2]}; the "
                    f"first video of this perturbation is {self._shape[0]} frames of {self._shape[1]}x{self._shape[2]}"
                )
            out.append(video)
        return np.stack(out)

    def head(self, n: int | None) -> VideoSequenceSource:
        return self if n is None or n >= len(self) else VideoSequenceSource(self.paths[:n])

    def sample(self, n: int | None, seed: int = 0) -> VideoSequenceSource:
        if n is None or n >= len(self):
            return self
        return VideoSequenceSource([self.paths[i] for i in sample_indices(len(self), n, None, seed)])


def list_perturbation_videos(folder: str | os.PathLike[str], perturbation: str) -> list[str]:
    """Sorted ``<folder>/<perturbation>/<wnid>/*.mp4`` paths (empty when the perturbation is absent)."""
    base = Path(folder) / perturbation
    if not base.is_dir():
        return []
    return sorted(str(p) for p in base.glob("*/*.mp4"))


def load_perturbation(folder: str | os.PathLike[str], perturbation: str) -> SequenceSource | None:
    """The sequences of one perturbation: ``<perturbation>.npy`` (CIFAR-P) or a folder of videos
    (ImageNet-P); None when neither is there."""
    if (Path(folder) / f"{perturbation}.npy").is_file():
        return load_perturbation_array(folder, perturbation)
    videos = list_perturbation_videos(folder, perturbation)
    return VideoSequenceSource(videos) if videos else None


def load_perturbation_array(folder: str | os.PathLike[str], perturbation: str) -> SequenceSource:
    """``<folder>/<perturbation>.npy`` (uint8 ``[N, T, H, W, 3]``), memory-mapped."""
    path = Path(folder) / f"{perturbation}.npy"
    arr = open_npy(path)
    if arr.dtype != np.uint8 or arr.ndim != 5 or arr.shape[-1] != 3 or arr.shape[1] < 2:
        raise DataLayoutError(f"'{path}' holds {arr.dtype} {arr.shape}; expected uint8 (N, T>=2, H, W, 3)")
    return SequenceSource(arr)
