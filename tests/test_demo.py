"""`make demo`'s job: a fractal folder and a contact sheet of IPMix/PixMix outputs on real photos."""

from __future__ import annotations

import cv2
import numpy as np

from albumentations_ipmix.demo import PHOTOS, run


def test_demo_writes_the_fractal_folder_and_contact_sheet(tmp_path):
    path = run(tmp_path, size=48, n_ipmix=2, n_pixmix=1)
    sheet = cv2.imread(str(path))
    rows, cols = len(PHOTOS) + 1, 1 + 2 + 1
    assert sheet.shape == (rows * 52 + 4, cols * 52 + 4, 3)
    pngs = sorted((tmp_path / "fractals").rglob("*.png"))
    assert len(pngs) == 24
    assert {p.parent.name for p in pngs} == {"ifs", "mandelbrot", "julia"}
    # the first column holds the photos, the others augmented versions of them
    cells = [
        [sheet[4 + 52 * i : 52 * (i + 1), 4 + 52 * j : 52 * (j + 1)] for j in range(cols)]
        for i in range(rows)
    ]
    assert all(cells[i][0].std() > 10 for i in range(len(PHOTOS)))
    assert any(
        not np.array_equal(cells[i][0], cells[i][j]) for i in range(len(PHOTOS)) for j in range(1, cols)
    )
    stamps = [p.stat().st_mtime_ns for p in pngs]
    run(tmp_path, size=48, n_ipmix=2, n_pixmix=1)  # a second run reuses the folder
    assert [p.stat().st_mtime_ns for p in pngs] == stamps
