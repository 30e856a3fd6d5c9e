"""Overlay legends: the classes present, with their colours and names, below the picture."""

from __future__ import annotations

import numpy as np

from edgeseg.runtime.legend import legend_entries, with_legend

PALETTE = [[0, 0, 0], [250, 10, 10], [10, 250, 10], [10, 10, 250]]
CLASSES = ["background", "road", "tree", "sky"]


def test_entries_list_present_classes_in_order_with_names_and_colours() -> None:
    labels = np.array([[3, 3, 1], [1, 3, 1]], dtype=np.uint8)
    assert legend_entries(labels, CLASSES, PALETTE) == [(1, "road", (250, 10, 10)), (3, "sky", (10, 10, 250))]
    assert legend_entries(np.array([[5]]), CLASSES, PALETTE) == [(5, "class 5", (0, 0, 0))]


def test_legend_band_below_the_picture_shows_only_present_colours() -> None:
    picture = np.full((60, 400, 3), 128, dtype=np.uint8)
    labels = np.zeros((60, 400), dtype=np.int64)
    labels[:, 200:] = 2
    out = with_legend(picture, labels, CLASSES, PALETTE)
    assert out.shape[1] == 400 and out.shape[0] > 60
    np.testing.assert_array_equal(out[:60], picture)
    band = out[60:].reshape(-1, 3)
    assert (band == PALETTE[2]).all(axis=1).sum() > 20  # a swatch, not a stray anti-aliased pixel
    assert not (band == PALETTE[1]).all(axis=1).any() and not (band == PALETTE[3]).all(axis=1).any()
    dark = (band.sum(axis=1) < 100).sum()
    assert dark > 50  # text and swatch outlines


def test_many_classes_wrap_into_rows_and_narrow_pictures_widen() -> None:
    classes = [f"a rather long class name {i}" for i in range(4)]
    labels = np.arange(4).reshape(2, 2)
    wide = with_legend(np.zeros((2, 2, 3), np.uint8), labels, classes, PALETTE)
    assert wide.shape[1] > 2
    one_row = with_legend(np.zeros((40, 2000, 3), np.uint8), labels, classes, PALETTE)
    wrapped = with_legend(np.zeros((40, 300, 3), np.uint8), labels, classes, PALETTE)
    assert wrapped.shape[0] > one_row.shape[0]
