"""Names of the benchmark corruptions and perturbations: the one source of truth, ordered.

Every table of per-name numbers (AlexNet errors, corruption parameters) is keyed by these names,
never by position.
"""

from __future__ import annotations

from robust_mix.cifar import CIFAR_CLASSES

#: The 15 -C benchmark corruptions, in the order of Hendrycks & Dietterich (2019). mCE averages these.
BENCHMARK_CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)

#: Held-out extra corruptions: reported, never averaged into mCE.
EXTRA_CORRUPTIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "saturate")

ALL_CORRUPTIONS: tuple[str, ...] = BENCHMARK_CORRUPTIONS + EXTRA_CORRUPTIONS

#: CIFAR-10/100-C-bar corruptions (Mintun et al. 2021); the misspelling is the file name on disk.
CIFAR_CBAR_CORRUPTIONS: tuple[str, ...] = (
    "blue_noise_sample",
    "brownish_noise",
    "checkerboard_cutout",
    "inverse_sparkles",
    "pinch_and_twirl",
    "ripple",
    "circular_motion_blur",
    "lines",
    "sparkles",
    "transverse_chromatic_abberation",
)

#: ImageNet-C-bar corruptions.
IMAGENET_CBAR_CORRUPTIONS: tuple[str, ...] = (
    "caustic_refraction",
    "inverse_sparkles",
    "sparkles",
    "perlin_noise",
    "blue_noise_sample",
    "plasma_noise",
    "checkerboard_cutout",
    "cocentric_sine_waves",
    "single_frequency_greyscale",
    "brownish_noise",
)

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

#: The 10 -P test perturbations (mFR / mT5D average these).
TEST_PERTURBATIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "motion_blur",
    "zoom_blur",
    "snow",
    "brightness",
    "translate",
    "rotate",
    "tilt",
    "scale",
)

#: The 10 perturbations the authors' CIFAR-10/100-P evaluation script (hendrycks/robustness,
#: ImageNet-P/cifar-p-eval.py) averages into mFR: spatter instead of snow (CIFAR-10-P ships spatter).
CIFAR_P_PERTURBATIONS: tuple[str, ...] = tuple("spatter" if p == "snow" else p for p in TEST_PERTURBATIONS)

#: The 4 -P validation perturbations.
VALIDATION_PERTURBATIONS: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "spatter", "shear")

#: Perturbations whose flip probability compares every frame with frame 0 (the clean frame);
#: all others compare consecutive frames.
NOISE_PERTURBATIONS: frozenset[str] = frozenset({"gaussian_noise", "shot_noise", "speckle_noise"})

#: Largest top-5 distance (T5D) of one compared frame pair: the 3 best classes leave the later top 5
#: (5 + 4 + 3) and the other two move to the front (3 + 3). Every T5D value lies in [0, 18].
MAX_TOP5_DISTANCE: float = 18.0

#: ImageNet-P difficulty levels. Noise perturbations have one video folder per level
#: (``gaussian_noise``, ``gaussian_noise_2``, ``gaussian_noise_3``: stronger noise); for the others
#: level d compares frames d apart in the same videos (the reference ``--difficulty`` stride).
P_DIFFICULTIES: tuple[int, ...] = (1, 2, 3)


def split_difficulty(name: str) -> tuple[str, int]:
    """``"gaussian_noise_2"`` -> ``("gaussian_noise", 2)``; a name without a level suffix -> level 1.

    Only a trailing ``_<d>`` with ``d`` in :data:`P_DIFFICULTIES` (2 or 3 written out) is a level.
    """
    base, sep, tail = name.rpartition("_")
    if sep and tail.isdecimal() and int(tail) in P_DIFFICULTIES[1:]:
        return base, int(tail)
    return name, 1


def is_noise_perturbation(name: str) -> bool:
    """Whether ``name`` (with or without a difficulty suffix) is a noise perturbation, whose flip
    probability compares every frame with frame 0 rather than consecutive frames."""
    return split_difficulty(name)[0] in NOISE_PERTURBATIONS


#: Classes of the fixed-size data sets (their classifiers' output count), by data set name; the CIFAR
#: counts are the archive format's (robust_mix.cifar, the layer below).
NUM_CLASSES: dict[str, int] = {**CIFAR_CLASSES, "imagenet": 1000}

#: RMS calibration error: samples per equal-count confidence bin (PixMix / Outlier Exposure).
RMS_BIN_SIZE: int = 100
#: Expected calibration error: equal-width confidence bins (Guo et al. 2017).
ECE_BINS: int = 15

# ------------------------------------------------------------------------------------------------
# evaluation defaults: the robust-eval options and suites.Context / suites.PGDSettings read these
# ------------------------------------------------------------------------------------------------

#: Images per forward pass.
DEFAULT_BATCH_SIZE: int = 128
#: Threads decoding image files (0: in the main thread).
DEFAULT_WORKERS: int = 0
#: Seed of PGD starts, synthetic OOD sets, OOD subsampling and on-the-fly corruption.
DEFAULT_SEED: int = 0
#: The torch device of an evaluation ("auto": cuda when available, else cpu).
DEFAULT_DEVICE: str = "auto"
#: RobustBench threat-model folder of ``robustbench:NAME`` checkpoints.
DEFAULT_THREAT_MODEL: str = "corruptions"
#: ImageNet-C preprocessing, the default first: 256-resize + 224-crop (AugMix / PixMix / IPMix), or
#: the official script's center crop.
IMAGENET_C_PROTOCOLS: tuple[str, ...] = ("resize_crop", "center_crop")
#: L-inf PGD of the PixMix / IPMix protocol: budget and step in 1/255 units, iterations.
PGD_EPS_255: float = 2.0
PGD_ALPHA_255: float = 0.5
PGD_STEPS: int = 20
#: Adversarial attacks of ``robust-eval adversarial --attack`` (the default first).
ATTACKS: tuple[str, ...] = ("pgd", "autoattack")
#: AutoAttack L-inf budget in 1/255 units by data set: RobustBench's leaderboards (8/255 on
#: CIFAR-10/100 Linf, 4/255 on ImageNet Linf); any other data set gets the CIFAR value.
AUTOATTACK_EPS_255: dict[str, float] = {"cifar10": 8.0, "cifar100": 8.0, "imagenet": 4.0}
AUTOATTACK_EPS_255_OTHER: float = 8.0
#: AutoAttack examples by data set, RobustBench's leaderboard convention (the FIRST n of the test
#: split: 10,000 on CIFAR-10/100, 5,000 on ImageNet); any other data set: every example.
AUTOATTACK_N_EXAMPLES: dict[str, int] = {"cifar10": 10_000, "cifar100": 10_000, "imagenet": 5_000}
#: Target classes of APGD-T and FAB-T in AutoAttack's standard version (Croce & Hein 2020; fewer
#: when the model has fewer classes).
AUTOATTACK_TARGET_CLASSES: int = 9
#: Mixed precision of the forward passes (``--amp``): off (float32, the default), bf16 or fp16
#: (CUDA only; on the CPU mixed precision is bf16).
AMP_MODES: tuple[str, ...] = ("off", "bf16", "fp16")
#: Where image files are decoded (``--decode``): cpu (Pillow, the default), gpu (nvJPEG through
#: ``torchvision.io.decode_jpeg(device="cuda")``), auto (gpu on a CUDA device, else cpu).
DECODERS: tuple[str, ...] = ("cpu", "gpu", "auto")
