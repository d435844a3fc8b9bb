"""Start-up of the three commands' ``--help`` against two peers measured in the same run.

Times (best and median of ``--repeat`` runs, wall clock, seconds) of fresh interpreters:
``python -c pass`` (the floor), ``python -c "import torch"`` (what an eager command pays) and
``robust-eval --help``, ``timm --help`` and ``ipmix-fractals --help`` of the tree given by ``--tree``
(default: this checkout), run through its launcher. Prints a table of ratios to both peers; run it on
an idle machine. ``--smoke``: one run each (the test suite's check that the script works).

    python benchmarks/startup.py --repeat 7
    python benchmarks/startup.py --tree /path/to/other/checkout   # the same table for another tree
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: command name -> the launcher entry point that runs it (robust_mix.launch)
COMMANDS = {"robust-eval": "robust_eval", "timm": "timm", "ipmix-fractals": "ipmix_fractals"}


def help_code(command: str) -> str:
    """``python -c`` code running ``COMMAND --help`` through the launcher (exit status 0)."""
    entry = COMMANDS[command]
    return (
        f"import sys; sys.argv = [{command!r}, '--help']; from robust_mix.launch import {entry}\n"
        f"try:\n    {entry}()\nexcept SystemExit as exc:\n    sys.exit(exc.code or 0)"
    )


def timed(code: str, tree: Path, repeat: int) -> list[float]:
    """Wall-clock seconds of ``repeat`` fresh ``python -c code`` runs with ``tree`` on the path."""
    env = {**os.environ, "PYTHONPATH": str(tree), "NO_ALBUMENTATIONS_UPDATE": "1"}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (>= 1)")
    parser.add_argument("--tree", type=Path, default=ROOT, help="checkout whose commands are timed")
    parser.add_argument("--smoke", action="store_true", help="one run each (checks that the script works)")
    args = parser.parse_args()
    if args.smoke:
        args.repeat = 1
    if args.repeat < 1:
        parser.error(f"--repeat must be >= 1, got {args.repeat}")
    rows = {
        "python -c pass": timed("pass", args.tree, args.repeat),
        "python -c 'import torch'": timed("import torch", args.tree, args.repeat),
        **{f"{name} --help": timed(help_code(name), args.tree, args.repeat) for name in COMMANDS},
    }
    floor, torch_best = min(rows["python -c pass"]), min(rows["python -c 'import torch'"])
    print(f"tree: {args.tree}  ({args.repeat} runs each, seconds)")
    print(f"{'command':<28} {'best':>7} {'median':>7} {'ratio/pass':>10} {'ratio/torch':>11}")
    for name, times in rows.items():
        best = min(times)
        print(
            f"{name:<28} {best:7.3f} {statistics.median(times):7.3f} "
            f"{best / floor:10.2f} {best / torch_best:11.2f}"
        )


if __name__ == "__main__":
    main()
