"""robust_mix: the console entry points of the three packages.

``ipmix-fractals``, ``timm`` and ``robust-eval`` start here so that the process environment is set
before any library is imported: Albumentations checks for a newer release over the network at
import time unless ``NO_ALBUMENTATIONS_UPDATE`` is set, and the library packages themselves never
change the environment. ``python -m robust_mix <command> ...`` (or ``torchrun -m robust_mix timm
train ...``) does the same as the installed commands.
"""
