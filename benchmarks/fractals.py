"""Throughput of the procedural fractal renderers (single process, one OpenCV thread).

Measures, for each kind, fractals per second at ``--size`` pixels (default 256) for ``--count``
distinct indices, the rate of an even mix of the kinds (total pictures / total time, the harmonic
mean of the per-kind rates - what generating a mixed set costs), and extrapolates the time to
generate a 13,000-picture set (the size of the IPMix authors' set) on one core.

Rates are per core: CPU time of this single-threaded process (``time.process_time``), which a
shared machine disturbs far less than wall time (also shown).

Peer measured in the same run: decoding the very same pictures from PNG bytes (``cv2.imdecode``),
i.e. what reading a pre-generated set from disk costs without the disk. The ``x PNG decode`` column
is render time / decode time.

Each kind is timed ``--repeat`` times and the fastest run counts (the machine may be shared; the
fastest run is the least disturbed one). The same indices are rendered in every run.

Usage::

    python benchmarks/fractals.py                 # 256 px, 30 pictures per kind
    python benchmarks/fractals.py --size 224 --count 60
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import cv2
import numpy as np

from albumentations_ipmix.fractals import KINDS, parse_kinds, render_fractal

SET_SIZE = 13_000
GOAL = 50.0


def _time_kind(kind: str, size: int, count: int, seed: int, repeat: int) -> tuple[float, float, float]:
    """CPU seconds to render ``count`` pictures of ``kind``, wall seconds, CPU seconds to PNG-decode them.

    Each is the fastest of ``repeat`` runs.
    """
    render_fractal(kind, seed, 10_000_000, size, size)  # warm-up (imports, caches)
    render_s = decode_s = wall_s = float("inf")
    for _ in range(repeat):
        start, start_wall = time.process_time(), time.perf_counter()
        images = [render_fractal(kind, seed, index, size, size) for index in range(count)]
        render_s = min(render_s, time.process_time() - start)
        wall_s = min(wall_s, time.perf_counter() - start_wall)
        encoded = [cv2.imencode(".png", image)[1] for image in images]
        start = time.process_time()
        for buffer in encoded:
            cv2.imdecode(buffer, cv2.IMREAD_COLOR)
        decode_s = min(decode_s, time.process_time() - start)
    return render_s, wall_s, decode_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=256, help="square render size in pixels (default 256)")
    parser.add_argument("--count", type=int, default=30, help="pictures per kind (default 30)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per kind; the fastest counts (default 3)"
    )
    parser.add_argument("--seed", type=int, default=0, help="set seed (default 0)")
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated kinds (default all)")
    parser.add_argument("--smoke", action="store_true", help="tiny renders, one run: checks the script runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.size, args.count, args.repeat = 32, 2, 1
    if args.size < 8 or args.count < 1 or args.repeat < 1:
        parser.error("--size must be >= 8, --count and --repeat >= 1")
    kinds = parse_kinds(args.kinds)
    cv2.setNumThreads(1)

    rows = []
    total_render = total_wall = total_decode = 0.0
    for kind in kinds:
        render_s, wall_s, decode_s = _time_kind(kind, args.size, args.count, args.seed, args.repeat)
        total_render += render_s
        total_wall += wall_s
        total_decode += decode_s
        rows.append(
            (
                kind,
                args.count / render_s,
                1000 * render_s / args.count,
                args.count / wall_s,
                render_s / decode_s,
            )
        )
    mixed_rate = len(kinds) * args.count / total_render
    mean_rate = float(np.mean([r[1] for r in rows]))

    print(
        f"Procedural fractals at {args.size}x{args.size} px, 1 process, cv2.setNumThreads(1), "
        f"{args.count} pictures per kind, seed {args.seed}, fastest of {args.repeat} runs"
    )
    print(f"numpy {np.__version__}, OpenCV {cv2.__version__}, Python {sys.version.split()[0]}")
    print()
    print("| kind | fractals/s per core (CPU time) | ms CPU per fractal | fractals/s (wall) | x PNG decode |")
    print("|---|---:|---:|---:|---:|")
    for kind, rate, ms, wall_rate, ratio in rows:
        print(f"| {kind} | {rate:.1f} | {ms:.1f} | {wall_rate:.1f} | {ratio:.0f}x |")
    print(
        f"| **even mix** (harmonic mean) | **{mixed_rate:.1f}** | {1000 / mixed_rate:.1f} | "
        f"{len(kinds) * args.count / total_wall:.1f} | {total_render / total_decode:.0f}x |"
    )
    print(f"| arithmetic mean of the rates | {mean_rate:.1f} | | | |")
    print()
    set_s = SET_SIZE / mixed_rate
    print(
        f"Extrapolated time for a {SET_SIZE:,}-picture set on one core: {set_s:.0f} s ({set_s / 60:.1f} min)"
    )
    status = "met" if mixed_rate >= GOAL else "NOT met"
    print(f"Goal >= {GOAL:.0f} fractals/s per core (even mix): {status}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
