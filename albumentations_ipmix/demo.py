"""The demo behind ``make demo``: IPMix and PixMix on real photos, as a contact sheet.

    python -m albumentations_ipmix.demo --out demo_out

1. writes a small folder of procedural fractals (``OUT/fractals/``, ImageFolder layout),
2. augments bundled real photos (scikit-image) with IPMix and PixMix drawing from that folder,
3. saves ``OUT/contact_sheet.png``: one row per photo - the original, IPMix outputs, PixMix outputs -
   and a last row with some of the fractals that were mixed in.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A
import cv2
import numpy as np

from albumentations_ipmix import IPMix, PixMix

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def write_fractal_folder(out: Path, count: int, size: int, seed: int) -> Path:
    """Render ``count`` procedural fractals to ``out/<kind>/*.png`` with ``ipmix-fractals generate``.

    Rerunning resumes: pictures already there are kept.
    """
    from albumentations_ipmix.cli import MANIFEST_NAME, generate

    generate(
        out, count=count, size=size, seed=seed, kinds="ifs,mandelbrot,julia",
        resume=(out / MANIFEST_NAME).is_file(), force=False, workers=1, quiet=True, as_json=False,
    )  # fmt: skip
    return out


def contact_sheet(rows: list[list[np.ndarray]], cell: int, pad: int = 4) -> np.ndarray:
    """Tile equally sized RGB images into one white-padded sheet."""
    n_cols = max(len(r) for r in rows)
    sheet = np.full((len(rows) * (cell + pad) + pad, n_cols * (cell + pad) + pad, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (cell + pad), pad + j * (cell + pad)
            sheet[y : y + cell, x : x + cell] = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST)
    return sheet


def run(out: Path, size: int = 128, n_ipmix: int = 5, n_pixmix: int = 3, seed: int = 0) -> Path:
    """Make the fractal folder and the contact sheet; return the sheet's path."""
    from skimage import data

    out.mkdir(parents=True, exist_ok=True)
    folder = write_fractal_folder(out / "fractals", count=24, size=round(size * 1.125) + 8, seed=seed)
    ipmix = A.Compose([IPMix(fractals=str(folder), beta=3, severity=3)], seed=seed)
    pixmix = A.Compose([PixMix(fractals=str(folder), beta=3, severity=3)], seed=seed)
    rows = []
    for name in PHOTOS:
        photo = cv2.resize(getattr(data, name)(), (size, size), interpolation=cv2.INTER_AREA)
        row = [photo]
        row += [ipmix(image=photo)["image"] for _ in range(n_ipmix)]
        row += [pixmix(image=photo)["image"] for _ in range(n_pixmix)]
        rows.append(row)
    source = ipmix.transforms[0].source
    rows.append([source.fitted(i, size, size)[:size, :size] for i in range(1 + n_ipmix + n_pixmix)])
    path = out / "contact_sheet.png"
    cv2.imwrite(str(path), cv2.cvtColor(contact_sheet(rows, size), cv2.COLOR_RGB2BGR))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    parser.add_argument("--size", type=int, default=128, help="photo side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = run(args.out, size=args.size, seed=args.seed)
    print(f"contact sheet: {path}")
    print("columns: original | 5 x IPMix | 3 x PixMix; last row: mixing pictures (procedural fractals)")


if __name__ == "__main__":
    main()
