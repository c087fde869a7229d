"""Border crop and mapping the crop box back to the source file."""
from __future__ import annotations

import numpy as np

from tasks.labels.crop import box_to_source, content_box, crop, intersect, matched_box
from tests.tasks.stereo_scenes import texture


def test_content_box_removes_black_and_letterbox_borders_only_at_the_edges():
    img = texture(60, 80, 0)
    img[:5] = 0  # black top border
    img[5:8] = (150, 190, 250) + np.arange(80)[:, None] // 8  # sky-like rows that vary a little stay
    img[:, 74:] = (30, 60, 90)  # flat coloured letterbox on the right
    img[20:30, 30:40] = 0  # dark content inside stays
    assert content_box(img) == (0, 5, 74, 60)


def test_matched_box_drops_the_unmatched_edge_strip():
    mask = np.ones((40, 50), bool)
    mask[:, :6] = False  # the other view does not see these columns
    mask[:, 6:9] = np.random.default_rng(0).random((40, 3)) < 0.1  # mostly unmatched
    mask[:2] = False
    assert matched_box(mask) == (9, 2, 50, 40)
    assert intersect((0, 5, 74, 60), (9, 2, 50, 40)) == (9, 5, 50, 40)


def test_box_maps_back_to_source_pixels():
    # source file: a 400 x 150 side-by-side; the left-eye view is the SECOND half (cross-eyed),
    # stored in pairs/ at full size (200 x 150) and processed downscaled by 2 (100 x 75)
    rng = np.random.default_rng(1)
    source = (rng.random((150, 400, 3)) * 255).astype(np.uint8)
    view_box = [200, 0, 400, 150]
    stored = source[:, 200:400]
    processed = stored[::2, ::2]
    box = (10, 4, 90, 70)
    rel, absolute = box_to_source(box, (100, 75), view_box, (200, 150))
    assert rel == (20, 8, 180, 140)
    assert absolute == (220, 8, 380, 140)
    np.testing.assert_array_equal(crop(processed, box), source[absolute[1]:absolute[3]:2, absolute[0]:absolute[2]:2])
    # odd factors round outwards and stay inside the view
    rel, _ = box_to_source((1, 1, 99, 74), (99, 74), None, (200, 150))
    assert rel[0] <= 2 and rel[2] == 200 and rel[3] == 150
