"""robust_eval: one command measures a classifier's corruption, perturbation, adversarial,
calibration and anomaly-detection robustness (the IPMix paper's safety suite)."""

__version__ = "0.1.0"
