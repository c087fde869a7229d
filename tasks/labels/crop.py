"""Border crop: black / letterbox borders and the unmatched edge strip.

Boxes are ``(x0, y0, x1, y1)`` with x1, y1 exclusive, in pixels of the image they refer to.
The left image, the depth map and the masks are cut with the same box, so they stay aligned.
``box_to_source`` maps a box found on the (possibly downscaled) processed left view back to the
left view as stored in the source file (DESIGN.md manifest), using ingest's ``info["views"]``.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

Box = tuple[int, int, int, int]


def content_box(image: np.ndarray, *, dark_level: int = 20, uniform_std: float = 1.0,
                min_fraction: float = 0.97) -> Box:
    """Box inside black or uniform (letterbox) borders.

    A border row/column is one where ``min_fraction`` of the pixels are darker than ``dark_level``
    (8-bit), or whose pixels barely vary (std < ``uniform_std``: a flat letterbox of any colour).
    Only runs touching the image edge are removed, so dark content inside the photo stays.
    """
    gray = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    x0, y0, x1, y1 = 0, 0, gray.shape[1], gray.shape[0]
    for _ in range(2):  # borders on two sides disturb each other's statistics: judge within the other's box
        sub = gray[y0:y1, x0:x1]
        if sub.size == 0:
            break
        dark = sub < dark_level
        rows_bad = (dark.mean(axis=1) >= min_fraction) | (sub.std(axis=1) < uniform_std)
        cols_bad = (dark.mean(axis=0) >= min_fraction) | (sub.std(axis=0) < uniform_std)
        ry0, ry1 = _edge_trim(rows_bad)
        cx0, cx1 = _edge_trim(cols_bad)
        x0, y0, x1, y1 = x0 + cx0, y0 + ry0, x0 + cx1, y0 + ry1
    return x0, y0, x1, y1


def _edge_trim(bad: np.ndarray) -> tuple[int, int]:
    n = bad.size
    start = 0
    while start < n and bad[start]:
        start += 1
    end = n
    while end > start and bad[end - 1]:
        end -= 1
    return start, end


def matched_box(mask: np.ndarray, box: Box | None = None, *, min_fraction: float = 0.25) -> Box:
    """Shrink ``box`` past edge columns/rows where fewer than ``min_fraction`` pixels are reliable.

    That strip is the part of the scene the other view does not show (the horizontal offset of the
    views, plus vertical offset rows); its depth would be guessed, not measured.
    """
    x0, y0, x1, y1 = box or (0, 0, mask.shape[1], mask.shape[0])
    sub = mask[y0:y1, x0:x1]
    if sub.size == 0:
        return x0, y0, x0, y0
    cx0, cx1 = _edge_trim(sub.mean(axis=0) < min_fraction)
    cy0, cy1 = _edge_trim(sub.mean(axis=1) < min_fraction)
    return x0 + cx0, y0 + cy0, x0 + cx1, y0 + cy1


def intersect(*boxes: Box) -> Box:
    x0 = max(b[0] for b in boxes)
    y0 = max(b[1] for b in boxes)
    x1 = max(x0, min(b[2] for b in boxes))
    y1 = max(y0, min(b[3] for b in boxes))
    return x0, y0, x1, y1


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return array[y0:y1, x0:x1]


def box_to_source(box: Box, processed_size: tuple[int, int], view_box: Sequence[int] | None,
                  stored_size: tuple[int, int]) -> tuple[Box, Box]:
    """Map ``box`` on the processed left view to the source file.

    ``processed_size`` / ``stored_size``: (width, height) of the processed image and of the view as
    stored in pairs/ (they differ when processing downscaled); ``view_box``: that view's
    [x0, y0, x1, y1] in the source image (after EXIF orientation), or None for the stored view.
    Returns ``(view_relative, absolute)``: the box in the view's own pixels (DESIGN.md manifest
    crop_x0..crop_y1) and in source-file pixels. Rounded outwards, clipped to the view.
    """
    pw, ph = processed_size
    sw, sh = stored_size
    vx0, vy0, vx1, vy1 = view_box if view_box is not None else (0, 0, sw, sh)
    fx = (vx1 - vx0) / pw  # processed pixel -> source pixel
    fy = (vy1 - vy0) / ph
    x0, y0, x1, y1 = box
    rel = (max(0, math.floor(x0 * fx + 1e-6)), max(0, math.floor(y0 * fy + 1e-6)),
           min(vx1 - vx0, math.ceil(x1 * fx - 1e-6)), min(vy1 - vy0, math.ceil(y1 * fy - 1e-6)))
    absolute = (rel[0] + vx0, rel[1] + vy0, rel[2] + vx0, rel[3] + vy0)
    return rel, absolute


def exact_box_in_source(box: Box, processed_size: tuple[int, int],
                        view_box: Sequence[int]) -> tuple[float, float, float, float]:
    """``box`` on the processed left view as an exact box in source-file pixels (not rounded).

    The processed view is the view at ``view_box`` resized to ``processed_size`` (pixel areas map
    onto pixel areas), so processed pixel edge ``x`` lies at ``vx0 + x * (vx1 - vx0) / pw`` in the
    source: the source region cropped to the result and resized to the box's size is the crop (the
    manifest's ``source_*`` columns, DESIGN.md). Whole numbers when the view was not resized.
    """
    pw, ph = processed_size
    vx0, vy0, vx1, vy1 = (float(v) for v in view_box)
    fx, fy = (vx1 - vx0) / pw, (vy1 - vy0) / ph

    def tidy(v: float) -> float:
        return float(round(v)) if abs(v - round(v)) < 1e-6 else round(v, 4)

    x0, y0, x1, y1 = box
    return tidy(vx0 + x0 * fx), tidy(vy0 + y0 * fy), tidy(vx0 + x1 * fx), tidy(vy0 + y1 * fy)
