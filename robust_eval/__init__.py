"""robust_eval: one command measures a classifier's corruption, perturbation, adversarial,
calibration and anomaly-detection robustness (the IPMix paper's safety suite)."""

import os as _os

_os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
