"""Shared pytest set-up.

Hypothesis explores new random examples on every local run; under CI (``CI`` set) it is
derandomized so a submission's result does not depend on the draw - property failures found
locally are pinned as explicit tests.
"""

from __future__ import annotations

import os

from hypothesis import settings

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
