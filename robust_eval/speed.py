"""Speed settings of an evaluation: mixed precision, channels-last, ``torch.compile`` and the decoder.

:class:`SpeedSettings` is what ``--amp``, ``--channels-last``, ``--compile``, ``--decode`` and
``--pgd-amp`` resolve to. Its defaults (float32, contiguous NCHW, eager, Pillow decoding) change
nothing: a run without the flags records no ``speed`` block and keys its cached cells as before, so
its result is byte-identical to one made before these flags existed.

Why PGD stays in float32 unless ``--pgd-amp``: the attack steps along the sign of the input gradient.
Under bf16 (8 significant bits) or fp16 (whose small gradients underflow to zero without loss
scaling, which torchattacks does not do) many gradient components round to zero or flip sign, so
the attack gets weaker and the adversarial error lower than the model's true one - a precision
artefact that reads as robustness (gradient masking).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from robust_eval.constants import AMP_MODES, DECODERS
from robust_mix.errors import UsageError

__all__ = ["SpeedSettings", "check_choices", "resolve_speed"]

#: torch dtype names of the mixed-precision modes.
_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def check_choices(amp: str, decode: str) -> None:
    """Refuse an unknown ``--amp`` or ``--decode`` value (one line; needs no torch)."""
    if amp not in AMP_MODES:
        raise UsageError(f"--amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if decode not in DECODERS:
        raise UsageError(f"--decode must be one of {', '.join(DECODERS)}, got {decode!r}")


@dataclass(frozen=True)
class SpeedSettings:
    """How the forward passes run (defaults: the float32 eager reference).

    Attributes:
        amp: "off" (float32), "bf16" or "fp16": ``torch.autocast`` dtype of the forward passes.
        channels_last: model weights and inputs in NHWC memory format.
        compile: the model was wrapped in ``torch.compile``.
        decode: "cpu" (Pillow) or "gpu" (nvJPEG), resolved (never "auto").
        pgd_amp: PGD (attack and its logits) also runs under ``amp``; else in float32.
    """

    amp: str = "off"
    channels_last: bool = False
    compile: bool = False
    decode: str = "cpu"
    pgd_amp: bool = False

    @property
    def is_default(self) -> bool:
        return self == SpeedSettings()

    def autocast(self, device: Any, pgd: bool = False) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` for ``device`` under ``amp`` (a no-op for "off", and for PGD unless
        ``pgd_amp``)."""
        if self.amp == "off" or (pgd and not self.pgd_amp):
            return contextlib.nullcontext()
        import torch

        return torch.autocast(device_type=device.type, dtype=getattr(torch, _DTYPES[self.amp]))

    def prepare(self, model: Any) -> Any:
        """``model`` in channels-last and/or compiled, as asked (unchanged by default)."""
        import torch

        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model = torch.compile(model)
        return model

    def inputs(self, x: Any) -> Any:
        """A batch ``x`` (NCHW) in the memory format the model expects."""
        if not self.channels_last:
            return x
        import torch

        return x.contiguous(memory_format=torch.channels_last)

    def protocol(self) -> dict[str, Any]:
        """The result's ``protocol.speed`` block (also the extra key of every cached cell); empty for
        the defaults, so a run without the flags writes what it wrote before."""
        if self.is_default:
            return {}
        return {
            "amp": self.amp,
            "pgd_precision": self.amp if self.pgd_amp and self.amp != "off" else "float32",
            "channels_last": self.channels_last,
            "compile": self.compile,
            "decode": self.decode,
        }


def resolve_speed(
    device: Any,
    amp: str = "off",
    channels_last: bool = False,
    compile: bool = False,
    decode: str = "cpu",
    pgd_amp: bool = False,
) -> SpeedSettings:
    """The settings for torch ``device``: ``decode="auto"`` becomes gpu on CUDA (when torchvision can
    decode there), else cpu.

    Raises:
        UsageError: fp16 or ``--decode gpu`` without a CUDA device (one line saying what to use).
    """
    check_choices(amp, decode)
    cuda = device.type == "cuda"
    if amp == "fp16" and not cuda:
        raise UsageError(f"--amp fp16 needs a CUDA device (--device is {device}); on the CPU use --amp bf16")
    if decode == "gpu" and not cuda:
        raise UsageError(f"--decode gpu needs a CUDA device (--device is {device}); use --decode cpu")
    if decode == "auto":
        from robust_eval.data.gpu_decode import gpu_decoding_available

        decode = "gpu" if cuda and gpu_decoding_available() else "cpu"
    return SpeedSettings(amp, bool(channels_last), bool(compile), decode, bool(pgd_amp))
