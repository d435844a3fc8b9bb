"""The demo behind ``make demo``: IPMix and PixMix on real photos, as a contact sheet.

    python -m albumentations_ipmix.demo --out demo_out

1. writes a small folder of procedural fractals (``OUT/fractals/``, ImageFolder layout),
2. augments bundled real photos (scikit-image) with IPMix and PixMix drawing from that folder,
3. saves ``OUT/contact_sheet.png``: one row per photo - the original, five of twenty IPMix draws
   spread from the least to the most changed, three PixMix draws, each captioned with its mean
   change ``d`` in grey levels - and a last row with some of the fractals that were mixed in.

Why spread the draws: IPMix often changes an image very little (a chain of depth 0, a Beta blend
close to the original, a 4-px patch), so about a third of its draws differ from the original by less
than one grey level on average - at 32, 128 and 224 px alike. Shown in stream order, a row can look
untouched; shown by rank, the sheet shows the whole range honestly (the numbers say how much).
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
        shard=None, merge=False,
    )  # fmt: skip
    return out


#: Column labels of the contact sheet, drawn in a header strip above the tiles.
HEADER_HEIGHT = 34


def contact_sheet(
    rows: list[list[np.ndarray]],
    cell: int,
    pad: int = 4,
    header: list[str] | None = None,
    captions: list[list[str]] | None = None,
) -> np.ndarray:
    """Tile equally sized RGB images into one white-padded sheet.

    ``header`` (one label per column) goes in a strip of :data:`HEADER_HEIGHT` px above the tiles
    (two lines when a label has a ``"\\n"``); ``captions[i][j]`` is printed in the bottom-left
    corner of tile (i, j) on a white box.
    """
    n_cols = max(len(r) for r in rows)
    top = HEADER_HEIGHT if header else 0
    sheet = np.full((top + len(rows) * (cell + pad) + pad, n_cols * (cell + pad) + pad, 3), 255, np.uint8)
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.3, cell / 330)
    for j, label in enumerate(header or []):
        for k, line in enumerate(label.split("\n")):
            x, y = pad + j * (cell + pad), 13 + 14 * k
            cv2.putText(sheet, line, (x, y), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = top + pad + i * (cell + pad), pad + j * (cell + pad)
            sheet[y : y + cell, x : x + cell] = cv2.resize(img, (cell, cell), interpolation=cv2.INTER_NEAREST)
            text = captions[i][j] if captions and j < len(captions[i]) else ""
            if text:
                (w, h), _ = cv2.getTextSize(text, font, scale, 1)
                cv2.rectangle(sheet, (x, y + cell - h - 6), (x + w + 4, y + cell), (255, 255, 255), -1)
                cv2.putText(sheet, text, (x + 2, y + cell - 4), font, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def mean_change(image: np.ndarray, original: np.ndarray) -> float:
    """Mean absolute difference in grey levels (0..255) between an output and its original."""
    return float(np.abs(image.astype(np.float32) - original.astype(np.float32)).mean())


def spread_draws(outputs: list[np.ndarray], original: np.ndarray, n: int) -> list[tuple[float, np.ndarray]]:
    """``n`` of ``outputs`` spread evenly over their range of :func:`mean_change`, least changed
    first (with n = 5: the minimum, the quartiles, the median and the maximum)."""
    ranked = sorted(((mean_change(o, original), o) for o in outputs), key=lambda t: t[0])
    picks = np.linspace(0, len(ranked) - 1, n).round().astype(int)
    return [ranked[k] for k in picks]


def _sheet_rows(
    photos: dict[str, np.ndarray],
    ipmix: A.Compose,
    pixmix: A.Compose,
    n_ipmix: int,
    n_pixmix: int,
    draws: int,
) -> tuple[list[list[np.ndarray]], list[list[str]], list[float]]:
    rows, captions, changes = [], [], []
    for photo in photos.values():
        outputs = [ipmix(image=photo)["image"] for _ in range(max(draws, n_ipmix))]
        changes += [mean_change(o, photo) for o in outputs]
        shown = spread_draws(outputs, photo, n_ipmix)
        mixed = [pixmix(image=photo)["image"] for _ in range(n_pixmix)]
        rows.append([photo, *[o for _, o in shown], *mixed])
        captions.append(
            ["", *[f"d={d:.1f}" for d, _ in shown], *[f"d={mean_change(m, photo):.1f}" for m in mixed]]
        )
    return rows, captions, changes


#: What the five IPMix columns show: order statistics of ``d`` over a photo's draws.
QUANTILE_NAMES = ("minimum", "lower quartile", "median", "upper quartile", "maximum")


def column_labels(n_ipmix: int, n_pixmix: int) -> list[str]:
    """Header labels of the contact sheet: which draw of its row each column shows. The IPMix
    columns are picked by their mean change ``d`` (:func:`spread_draws`): with five, the minimum,
    the quartiles, the median and the maximum of ``d``; otherwise their rank by ``d``."""
    if n_ipmix == 5:
        ipmix = [f"IPMix\nd: {name}" for name in QUANTILE_NAMES]
    else:
        ipmix = [f"IPMix\nrank {k + 1}/{n_ipmix} by d" for k in range(n_ipmix)]
    return ["original", *ipmix, *[f"PixMix\ndraw {k + 1}" for k in range(n_pixmix)]]


def run(
    out: Path, size: int = 128, n_ipmix: int = 5, n_pixmix: int = 3, seed: int = 0, draws: int = 20
) -> Path:
    """Make the fractal folder and the contact sheet; return the sheet's path.

    Per photo, ``draws`` IPMix outputs are drawn from the seeded stream and ``n_ipmix`` of them are
    shown spread over their range of change (least changed first), each tile captioned with its
    mean change ``d`` in grey levels; the PixMix tiles are its first ``n_pixmix`` draws. The share
    of IPMix draws that change the photo by less than one level is written to ``OUT/contact_sheet.txt``.
    """
    from skimage import data

    out.mkdir(parents=True, exist_ok=True)
    folder = write_fractal_folder(out / "fractals", count=24, size=round(size * 1.125) + 8, seed=seed)
    ipmix = A.Compose([IPMix(fractals=str(folder), beta=3, severity=3)], seed=seed)
    pixmix = A.Compose([PixMix(fractals=str(folder), beta=3, severity=3)], seed=seed)
    photos = {n: cv2.resize(getattr(data, n)(), (size, size), interpolation=cv2.INTER_AREA) for n in PHOTOS}
    rows, captions, changes = _sheet_rows(photos, ipmix, pixmix, n_ipmix, n_pixmix, draws)
    source = ipmix.transforms[0].source
    rows.append([source.fitted(i, size, size)[:size, :size] for i in range(1 + n_ipmix + n_pixmix)])
    captions.append(["mixing picture"] + [""] * (n_ipmix + n_pixmix))
    header = column_labels(n_ipmix, n_pixmix)
    path = out / "contact_sheet.png"
    cv2.imwrite(
        str(path),
        cv2.cvtColor(contact_sheet(rows, size, header=header, captions=captions), cv2.COLOR_RGB2BGR),
    )
    small = float(np.mean(np.asarray(changes) < 1.0))
    (out / "contact_sheet.txt").write_text(
        f"{size} px, IPMix beta 3 severity 3: {100 * small:.0f}% of {len(changes)} draws change the photo by "
        "less than one grey level on average (d < 1)\n"
    )
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
    print(
        "columns: original | 5 of 20 IPMix draws: the minimum, lower quartile, median, upper quartile and "
        "maximum of d | 3 PixMix draws; d = mean change in grey levels; last row: mixing pictures "
        "(procedural fractals)"
    )
    print((path.parent / "contact_sheet.txt").read_text().strip())


if __name__ == "__main__":
    main()
