"""This project's checkpoint format, for robust-eval users: re-exported from :mod:`robust_mix.checkpoint`.

The format (keys, ``data_config``, ``format_version``) and its atomic writer live in
``robust_mix.checkpoint`` so that ``timm_ext`` (which writes checkpoints) and ``robust_eval``
(which reads them) share it without importing each other. See that module for the layout.
"""

from __future__ import annotations

from robust_mix.checkpoint import *  # noqa: F403 - the format's public names, one list
from robust_mix.checkpoint import __all__  # noqa: F401
