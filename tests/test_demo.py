"""`make demo`'s contact sheet: a fractal folder and IPMix/PixMix outputs on real photos, labelled."""

from __future__ import annotations

import cv2
import numpy as np

from albumentations_ipmix.demo import HEADER_HEIGHT, PHOTOS, mean_change, run, spread_draws


def test_demo_writes_the_fractal_folder_and_a_labelled_contact_sheet(tmp_path):
    path = run(tmp_path, size=48, n_ipmix=2, n_pixmix=1, draws=4)
    sheet = cv2.imread(str(path))
    rows, cols = len(PHOTOS) + 1, 1 + 2 + 1
    assert sheet.shape == (HEADER_HEIGHT + rows * 52 + 4, cols * 52 + 4, 3)
    pngs = sorted((tmp_path / "fractals").rglob("*.png"))
    assert len(pngs) == 24
    assert {p.parent.name for p in pngs} == {"ifs", "mandelbrot", "julia"}
    # every column has a label (dark text pixels in the header strip above it)
    for j in range(cols):
        assert (sheet[:HEADER_HEIGHT, 4 + 52 * j : 52 * (j + 1)] < 100).any(), j
    top = HEADER_HEIGHT
    cells = [
        [sheet[top + 4 + 52 * i : top + 52 * (i + 1), 4 + 52 * j : 52 * (j + 1)] for j in range(cols)]
        for i in range(rows)
    ]
    assert all(cells[i][0].std() > 10 for i in range(len(PHOTOS)))
    assert any(
        not np.array_equal(cells[i][0], cells[i][j]) for i in range(len(PHOTOS)) for j in range(1, cols)
    )
    note = (tmp_path / "contact_sheet.txt").read_text()
    assert "of 16 draws change the photo by less than one grey level" in note
    assert note.endswith("(d < 1)\n") and note.count("\n") == 1  # one line, newline-terminated
    stamps = [p.stat().st_mtime_ns for p in pngs]
    run(tmp_path, size=48, n_ipmix=2, n_pixmix=1, draws=4)  # a second run reuses the folder
    assert [p.stat().st_mtime_ns for p in pngs] == stamps


def test_spread_draws_shows_the_range_least_changed_first():
    original = np.zeros((4, 4, 3), np.uint8)
    outputs = [np.full((4, 4, 3), v, np.uint8) for v in (9, 0, 30, 3, 12, 1, 20, 6, 2)]
    shown = spread_draws(outputs, original, 5)
    # sorted changes 0 1 2 3 6 9 12 20 30: minimum, quartiles, median, maximum
    assert [d for d, _ in shown] == [0, 2, 6, 12, 30]
    assert mean_change(outputs[2], original) == 30.0


def test_the_ipmix_columns_name_the_order_statistic_of_d_they_show():
    from albumentations_ipmix.demo import column_labels

    labels = column_labels(5, 3)
    assert labels[1:6] == [
        "IPMix\nd: minimum",
        "IPMix\nd: lower quartile",
        "IPMix\nd: median",
        "IPMix\nd: upper quartile",
        "IPMix\nd: maximum",
    ]
    assert labels[6:] == ["PixMix\ndraw 1", "PixMix\ndraw 2", "PixMix\ndraw 3"]
    assert not any("%" in label or "changed" in label for label in labels)
    assert column_labels(2, 0)[1:] == ["IPMix\nrank 1/2 by d", "IPMix\nrank 2/2 by d"]
