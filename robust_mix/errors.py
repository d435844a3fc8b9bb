"""The one exception base of the project.

Every error that robust-mix raises on purpose derives from :class:`RobustMixError`, so a command
catches one base and reports it as one line (``<command>: error: <what>, <how to fix>``) with the
error's :attr:`~RobustMixError.exit_code`: 2 for bad input (the default), 1 for a problem of the
machine (a full or read-only disk, see :class:`robust_mix.files.FileProblem`). Library callers may
still catch the built-in base an error also derives from (``ValueError``, ``OSError``): each project
error keeps the built-in type it had before this base existed.

Imports nothing but the standard library.
"""

from __future__ import annotations

__all__ = ["RobustMixError", "UsageError"]


class RobustMixError(Exception):
    """Base of every project error: a message that names the thing, what was expected and the fix.

    ``exit_code`` is the status a command exits with when this error ends it (2: bad input).
    """

    exit_code: int = 2


class UsageError(RobustMixError):
    """Bad command-line input found by a command's own checks (exit status 2)."""
