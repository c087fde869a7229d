"""Scoring: one exported map against the GT of the eye it was really made from.

Scores per (scene, packing) — ``score_map`` for the arithmetic:

- ``ordinal_error``: share of random pairs of reliable non-sky pixels (with GT) whose DESIGN.md
  ordinal label (sigma = 0.02 on the depth ratio) differs from GT's (depth = 1 / disparity); a pair
  GT calls equal but the map orders counts as wrong, and so does the reverse ("ties count").
- ``coverage``: share of the GT pixels of the view the map was made from (in source pixels of the
  packed file) that carry a reliable label; ``ceiling``: the share of them whose point the other
  packed view shows at all (inside its crop, not occluded, from GT): no method can label more.
- which eye the exported left-eye image really is (``eye_of``), so the view order can be judged.

Every exported pixel is traced back through the export resize, the crop box, the view's box in the
packed file, the packing and the degradation (``tasks.audit.packing.EyeGeometry``) to the scene's
pixel. A map is **bad** when its ordinal error exceeds ``BAD_ERROR`` (10 %) or its coverage is under
``BAD_COVERAGE`` (30 %). A wrong view order is scored as what it is: the map is compared with the GT
of the eye it was really made from (the right view's GT is the left GT forward-warped, nearest
surface winning, ``right_view_disparity``), so an inverted map shows an ordinal error near 100 %.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from core.rules import SKY_VALUE
from tasks.audit.packing import EyeGeometry, Packed
from tasks.audit.scenes import Scene

BAD_ERROR = 0.10
BAD_COVERAGE = 0.30
SIGMA = 0.02
# px of the exported map: the report's "where wrong" neighbourhoods (see disagreement_map)
REPORT_RADII = (9, 27)


def is_bad(ordinal_error: float | None, coverage: float) -> bool:
    """The audit's truth about one map: bad when its ordinal error exceeds ``BAD_ERROR`` (or could not
    be measured) or its coverage is under ``BAD_COVERAGE``; triage is judged against it."""
    return bool((ordinal_error is None or ordinal_error > BAD_ERROR) or coverage < BAD_COVERAGE)


def right_view_disparity(disparity: np.ndarray) -> np.ndarray:
    """GT disparity of the right view from the left one: forward warp x_r = x_l - d, nearest surface
    (largest d) wins, holes (occluded in the left view) stay NaN."""
    h, w = disparity.shape
    out = np.full((h, w), -np.inf, np.float32)
    ys, xs = np.nonzero(np.isfinite(disparity))
    d = disparity[ys, xs]
    xr = np.rint(xs - d).astype(int)
    ok = (xr >= 0) & (xr < w)
    np.maximum.at(out, (ys[ok], xr[ok]), d[ok])
    out[~np.isfinite(out)] = np.nan
    return out


def ordinal_labels(g_i: np.ndarray, g_j: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
    """DESIGN.md ordinal labels of depths g (larger = farther): +1 (i farther), -1, 0 at ``sigma``."""
    from tasks.labels.depth import ordinal_labels as rule  # the DESIGN.md rule, in one place

    return rule(g_i, g_j, sigma)


def gt_step(disparity: np.ndarray) -> float:
    """Quantisation step of a GT disparity map, px: 0 for continuous GT (PFM, KITTI's 1/256), else the
    smallest gap between its distinct values (Tsukuba: 1 px, Teddy at quarter size: 0.25 px)."""
    vals = np.unique(disparity[np.isfinite(disparity) & (disparity > 0)])
    if vals.size < 2 or vals.size > 4096:
        return 0.0
    step = float(np.min(np.diff(vals)))
    return step if step > 1.0 / 64 else 0.0


def gt_ordinal_labels(d_i: np.ndarray, d_j: np.ndarray, step: float = 0.0,
                      sigma: float = SIGMA) -> np.ndarray:
    """DESIGN.md labels of depth g = 1/d from GT disparities known to +-step/2: +1 (i farther), -1, 0,
    or 2 where the GT's precision cannot tell (the true ratio interval straddles a class boundary:
    two pixels on one integer level of Tsukuba may differ by a whole pixel). step = 0: exact labels."""
    if step <= 0:
        return ordinal_labels(1.0 / d_i, 1.0 / d_j, sigma)
    h = step / 2
    lo = (d_j - h) / (d_i + h)  # g_i / g_j = d_j / d_i, at its smallest and largest
    hi = (d_j + h) / np.maximum(d_i - h, 1e-9)
    out = np.full(np.broadcast(d_i, d_j).shape, 2, np.int8)
    out[lo > 1 + sigma] = 1
    out[hi < 1 / (1 + sigma)] = -1
    out[(lo >= 1 / (1 + sigma)) & (hi <= 1 + sigma)] = 0
    return out


def ordinal_error(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray, *, n_pairs: int = 100_000,
                  seed: int = 0, pairs: tuple[np.ndarray, np.ndarray] | None = None,
                  gt_quantum: float = 0.0) -> dict[str, float]:
    """Disagreement of three-way ordinal labels (larger = farther) between a map and GT.

    ``pred_depth``, ``gt_depth``: (H, W) depths, larger = farther; ``valid``: (H, W) bool pixels to
    compare. ``pairs``: explicit flat indices (i, j) into the images (tests), else ``n_pairs`` random
    pairs of distinct valid pixels. ``gt_quantum``: the GT disparity's quantisation step (px; then
    ``gt_depth`` must be 1 / disparity): pairs whose GT label that precision cannot decide are not
    scored (``gt_ordinal_labels``). Returns ``error`` (all scored pairs), ``error_neq`` (over pairs
    GT orders), ``error_eq`` (over pairs GT calls equal), ``inverted`` (share GT orders one way and
    the map the other), ``pairs`` (scored), ``ambiguous`` (share left out); NaN where nothing counts.
    """
    if pairs is None:
        idx = np.flatnonzero(valid)
        if idx.size < 2:
            return {"error": math.nan, "error_neq": math.nan, "error_eq": math.nan, "inverted": math.nan,
                    "pairs": 0, "ambiguous": math.nan}
        rng = np.random.default_rng(seed)
        i, j = idx[rng.integers(0, idx.size, n_pairs)], idx[rng.integers(0, idx.size, n_pairs)]
        keep = i != j
        i, j = i[keep], j[keep]
    else:
        i, j = (np.asarray(p).ravel() for p in pairs)
    p, g = pred_depth.ravel().astype(np.float64), gt_depth.ravel().astype(np.float64)
    ours = ordinal_labels(p[i], p[j])
    truth = (gt_ordinal_labels(1.0 / g[i], 1.0 / g[j], gt_quantum) if gt_quantum > 0
             else ordinal_labels(g[i], g[j]))
    scored = truth != 2
    n_all = int(i.size)
    ours, truth = ours[scored], truth[scored]
    i = i[scored]
    wrong = ours != truth
    neq = truth != 0

    def share(mask: np.ndarray, sel: np.ndarray | None = None) -> float:
        sel = np.ones_like(mask) if sel is None else sel
        return float(mask[sel].mean()) if sel.any() else math.nan

    return {"error": share(wrong), "error_neq": share(wrong, neq), "error_eq": share(wrong, ~neq),
            "inverted": share(ours == -truth, neq), "pairs": int(i.size),
            "ambiguous": 1.0 - i.size / n_all if n_all else math.nan}


def disagreement_map(pred_depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray,
                     radii: Sequence[int] = (3, 9), *, ordered_only: bool = False) -> np.ndarray:
    """(H, W) float: per pixel, the share of its neighbour pairs (8 directions at each radius) whose
    ordinal label disagrees with GT; NaN where no pair could be formed. Shows *where* labels fail.

    ``ordered_only``: count only the pairs GT orders (the map inverts them or calls them equal).
    Neighbours a few pixels apart are mostly GT ties, so without it map noise on any smooth or
    slanted surface paints the whole surface wrong and hides the edges where the order is lost."""
    h, w = valid.shape
    wrong = np.zeros((h, w), np.float64)
    total = np.zeros((h, w), np.float64)
    p, g = pred_depth.astype(np.float64), gt_depth.astype(np.float64)
    for r in radii:
        for dy, dx in ((0, r), (r, 0), (r, r), (r, -r)):
            ys0, ys1 = max(0, -dy), h - max(0, dy)
            xs0, xs1 = max(0, -dx), w - max(0, dx)
            a = (slice(ys0, ys1), slice(xs0, xs1))
            b = (slice(ys0 + dy, ys1 + dy), slice(xs0 + dx, xs1 + dx))
            ok = valid[a] & valid[b]
            truth = ordinal_labels(g[a], g[b])
            if ordered_only:
                ok &= truth != 0
            bad = (ordinal_labels(p[a], p[b]) != truth) & ok
            for s in (a, b):
                wrong[s] += bad
                total[s] += ok
    out = np.full((h, w), np.nan)
    np.divide(wrong, total, out=out, where=total > 0)
    return out


@dataclass
class MapScore:
    """What ``score_map`` measures for one exported map (see ``ordinal_error``)."""

    ordinal_error: float
    error_neq: float
    error_eq: float
    inverted: float
    coverage: float
    compared_pixels: int
    eye: str  # which eye the exported left-eye image really is
    # share of those GT pixels the other packed view sees at all (not occluded, in frame)
    ceiling: float = float("nan")
    images: dict[str, np.ndarray] = field(default_factory=dict, repr=False)  # for the report


def _sample_nearest(field_: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    h, w = field_.shape
    # non-finite coordinates (a point with unknown GT) fall outside
    xi = np.rint(np.nan_to_num(x, nan=-1.0, posinf=-1.0, neginf=-1.0)).astype(int)
    yi = np.rint(np.nan_to_num(y, nan=-1.0, posinf=-1.0, neginf=-1.0)).astype(int)
    inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
    out = np.full(x.shape, np.nan, np.float32)
    out[inside] = field_[yi[inside], xi[inside]]
    return out


def eye_of(packed: Packed, frame: int, box: Sequence[int]) -> str:
    """Which eye the view at ``box`` (source-file pixels) of ``frame`` holds: the eye whose packed
    region contains the box's centre."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    for eye, geo in packed.eyes.items():
        x0, y0, x1, y1 = geo.file_box()
        if geo.frame == frame and x0 <= cx <= x1 and y0 <= cy <= y1:
            return eye
    return "none"


@dataclass
class _ViewGT:
    """GT over one eye's region of the packed file, per source-file pixel of that region."""

    X: np.ndarray  # (h, w) file pixel coordinates
    Y: np.ndarray
    x: np.ndarray  # (h, w) the scene pixel each file pixel shows
    y: np.ndarray
    disparity: np.ndarray  # (h, w) its GT disparity (NaN where unknown)
    known: np.ndarray  # (h, w) bool: GT known and > 0


def _view_gt(geo: EyeGeometry, gt: np.ndarray) -> _ViewGT:
    """Sample ``gt`` (that eye's scene disparity) at every file pixel of the eye's packed region."""
    bx0, by0, bx1, by1 = (int(round(v)) for v in geo.file_box())
    Xs, Ys = np.meshgrid(np.arange(bx0, bx1, dtype=np.float64), np.arange(by0, by1, dtype=np.float64))
    scx, scy = geo.file_to_scene(Xs, Ys)
    gt_src = _sample_nearest(gt, scx, scy)
    return _ViewGT(Xs, Ys, scx, scy, gt_src, np.isfinite(gt_src) & (gt_src > 0))


def _coverage(view: _ViewGT, reliable: np.ndarray, crop_source: Sequence[int]) -> float:
    """Coverage in source pixels: share of the view's GT pixels in the packed file whose exported pixel
    (``reliable``: (H, W) of the export, cut from ``crop_source``) carries a reliable label."""
    H, W = reliable.shape
    x0, y0, x1, y1 = crop_source
    fx, fy = (x1 - x0) / W, (y1 - y0) / H
    u = np.floor((view.X + 0.5 - x0) / fx).astype(int)
    v = np.floor((view.Y + 0.5 - y0) / fy).astype(int)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    labelled = np.zeros_like(view.known)
    labelled[inside] = reliable[v[inside], u[inside]]
    return float((labelled & view.known).sum() / max(int(view.known.sum()), 1))


def _ceiling(view: _ViewGT, eye: str, other: EyeGeometry, gt_other: np.ndarray) -> float:
    """The ceiling: share of the view's GT pixels whose point the ``other`` packed view shows (inside its
    crop, not occluded by ``gt_other``, the other eye's GT); no correspondence method can label more."""
    sxi, syi = np.rint(view.x), np.rint(view.y)  # the GT pixel sampled (right_view_disparity warps whole px)
    xo = sxi - view.disparity if eye == "left" else sxi + view.disparity
    (ox, oy), (ow, oh) = other.origin, other.size
    in_other = (xo >= ox - 0.5) & (xo <= ox + ow - 0.5) & (syi >= oy) & (syi <= oy + oh - 1)
    d_other = _sample_nearest(gt_other, xo, syi)
    seen = view.known & in_other & (np.abs(np.nan_to_num(d_other, nan=-1e9) - view.disparity) < 1.0)
    return float(seen.sum() / max(int(view.known.sum()), 1))


def score_map(scene: Scene, packed: Packed, *, rd: np.ndarray, mask: np.ndarray, crop_source: Sequence[int],
              frame: int, view_box: Sequence[int], n_pairs: int = 100_000, seed: int = 0,
              keep_images: bool = False, right_disparity: np.ndarray | None = None) -> MapScore:
    """Score one exported map against GT.

    ``rd``: (H, W) uint16 RDs/<id>.png (larger = farther, 65535 = sky); ``mask``: (H, W) masks/<id>.png;
    ``crop_source``: [x0, y0, x1, y1] of the exported image in source-file pixels (of ``frame``);
    ``view_box``: the box of the view it was cut from (to tell which eye it is).
    """
    eye = eye_of(packed, frame, view_box)
    if eye == "none":
        raise ValueError(f"{packed.scene}/{packed.packing}: view box {list(view_box)} of frame {frame} "
                         "matches no eye")
    geo = packed.eyes[eye]
    gts = {"left": scene.disparity,  # both eyes' GT: the map's and, for the ceiling, the other's
           "right": right_disparity if right_disparity is not None else right_view_disparity(scene.disparity)}
    gt = gts[eye]
    H, W = rd.shape
    x0, y0, x1, y1 = crop_source
    fx, fy = (x1 - x0) / W, (y1 - y0) / H
    # export pixel -> source-file pixel -> scene pixel of that eye -> GT
    us, vs = np.meshgrid(np.arange(W, dtype=np.float64), np.arange(H, dtype=np.float64))
    sx, sy = geo.file_to_scene(x0 + (us + 0.5) * fx - 0.5, y0 + (vs + 0.5) * fy - 0.5)
    gtd = _sample_nearest(gt, sx, sy)
    reliable = mask > 127
    non_sky = rd < SKY_VALUE
    has_gt = np.isfinite(gtd) & (gtd > 0)
    valid = reliable & non_sky & has_gt
    gt_depth = np.where(has_gt, 1.0 / np.where(has_gt, gtd, 1.0), np.nan)
    errs = ordinal_error(rd.astype(np.float64), np.nan_to_num(gt_depth, nan=1.0), valid, n_pairs=n_pairs,
                         seed=seed, gt_quantum=gt_step(scene.disparity))
    view = _view_gt(geo, gt)
    coverage = _coverage(view, reliable, crop_source)
    other_eye = "right" if eye == "left" else "left"
    ceiling = _ceiling(view, eye, packed.eyes[other_eye], gts[other_eye])
    images = {}
    if keep_images:
        disagreement = disagreement_map(rd.astype(np.float64), np.nan_to_num(gt_depth, nan=1.0), valid,
                                        radii=REPORT_RADII, ordered_only=True)
        images = {"gt_depth": gt_depth, "valid": valid, "disagreement": disagreement}
    return MapScore(errs["error"], errs["error_neq"], errs["error_eq"], errs["inverted"], coverage,
                    int(valid.sum()), eye, ceiling, images)
