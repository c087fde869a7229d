"""From rectified disparity to relative depth: view order, offset, encoding.

View order (parallel vs cross-eyed)
-----------------------------------
The sign of the disparity does not tell the order: web stereo carries an unknown convergence
offset (the views were shifted to put the subject at the screen plane), so a correctly ordered
pair can have disparities of either sign. We use occlusions instead, which do not depend on any
offset. With d = x_left - x_right (larger = nearer in a correctly ordered pair), the pixels of the
first view that the second view cannot see form short horizontal runs where d jumps *up* from left
to right, whatever the order. The occluded run is background and continues the surface it
belongs to: in a correctly ordered (parallel) pair it lies just left of the nearer object, so it
looks like its *left* neighbour (the smaller-d side); with the views swapped it lies right of the
nearer object and looks like its right neighbour. Each run whose width matches its disparity jump
votes by colour similarity (CIELAB); the decision needs ``min_votes`` runs and a vote margin
(parallel - cross) / (parallel + cross) beyond ``min_margin``, otherwise it is undecided.

Depth from disparity under an unknown offset (the documented choice)
----------------------------------------------------------------------
Depth is Z = f B / (d - c) with c the unknown disparity of points at infinity (the convergence
offset plus the horizontal shift of web stereo). Ordinal labels (DESIGN.md: g_i / g_j > 1 + sigma,
sigma = 0.02) depend on c through the *ratios*, so c must be chosen. We fix it by assuming a depth
range: the farthest reliable non-sky surface (1st percentile of d) is ``range_ratio`` (K, default
10) times as far as the nearest (99th percentile):

    (d_near - c) / (d_far - c) = K   =>   c = (K d_far - d_near) / (K - 1)

so g = 1 / (d - c) is positive, and the 99th-percentile pixel is K times nearer than the 1st;
pixels farther than d_far are clamped at twice the depth of d_far (they cannot pass infinity). Properties: the ordering of g is the
ordering of d whatever K is; K only decides which nearly equal pairs count as "equal" (ratio within
2%); it is invariant to any horizontal shift of either view and to image scale (both move d_far
and d_near together). The benchmark prints the ordinal error for several K on the Middlebury pair
(true p99/p1 disparity ratio about 7): degraded pair K=4: 5.41%, 7: 5.23%, 10: 5.23%, 20: 5.24%,
inf: 5.26%; the choice matters little there, and K = 10 errs on the side of deep outdoor scenes.

The ratio labels of a map are only as good as its disparities at the far end: with K alone a
narrow disparity range (an indoor scene, a distant landscape) puts c just below d_far, and there a
2 % depth ratio is a fraction of a pixel, below the matching noise, so equal depths get confident
orderings. ``min_far_margin_px`` (M, default 10 px = 0.2 px of noise / sigma) keeps c at least M
below d_far: orderings finer than ~0.2 px of disparity become ties. On the label audit
(``redweb audit --scenes ../shared/stereo``, 7 scenes x 4 packings, quantisation-aware GT), M = 10
lowered the mean ordinal error of DIS maps from 4.3 % (K only) to 3.9 % and of SGBM maps from 3.6 %
to 3.3 % (M = 5: 4.1 / 3.5 %, M = 15: 3.9 / 3.3 %); it only acts when the range is under 9 M px.

Encoding (contract): uint16, larger = farther, linear in g (so ratios survive), the farthest
non-sky pixel at 65000 (65001..65534 unused), sky = 65535; unreliable pixels keep their value
(mask.png says which to trust).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from core.rules import MAX_DEPTH_VALUE, SKY_VALUE, ordinal_labels  # noqa: F401  (shared rules, re-exported)


@dataclass(frozen=True)
class ViewOrder:
    """Decision on the order of the two views, with its evidence."""

    order: str  # "parallel" (first view is the left eye) | "cross_eyed" | "undecided"
    parallel_votes: int
    cross_votes: int

    @property
    def margin(self) -> float:
        n = self.parallel_votes + self.cross_votes
        return (self.parallel_votes - self.cross_votes) / n if n else 0.0

    def as_dict(self) -> dict:
        return {"order": self.order, "parallel_votes": self.parallel_votes, "cross_votes": self.cross_votes,
                "margin": round(self.margin, 4)}


def occlusion_votes(image: np.ndarray, disparity: np.ndarray, mask: np.ndarray, *, min_jump: float = 2.0,
                    min_colour_gap: float = 3.0, max_run: int | None = None) -> tuple[int, int]:
    """Count occlusion runs that look like their left (parallel) or right (cross-eyed) neighbour.

    ``image``: (H, W, 3) uint8 RGB first view; ``disparity``: (H, W) x_first - x_second, pixels;
    ``mask``: (H, W) bool, True where the correspondence is consistent. Returns (parallel, cross).
    """
    h, w = mask.shape
    max_run = max_run or max(4, w // 8)
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    bad = np.zeros((h, w + 2), np.int8)
    bad[:, 1:-1] = ~mask
    edges = np.diff(bad, axis=1)
    rs, x0 = np.nonzero(edges == 1)  # run [x0, x1) of inconsistent pixels; row-major order pairs them
    re, x1 = np.nonzero(edges == -1)
    assert np.array_equal(rs, re)
    width = x1 - x0
    keep = (x0 >= 3) & (x1 <= w - 3) & (width >= 1) & (width <= max_run)
    rs, x0, x1, width = rs[keep], x0[keep], x1[keep], width[keep]
    if rs.size == 0:
        return 0, 0
    d_left = 0.5 * (disparity[rs, x0 - 1] + disparity[rs, x0 - 2])
    d_right = 0.5 * (disparity[rs, x1] + disparity[rs, x1 + 1])
    both_ok = mask[rs, x0 - 2] & mask[rs, x1 + 1]
    jump = d_right - d_left
    # an occlusion in the first view is as wide as the disparity jump at it (1 px slack each end)
    plausible = both_ok & (jump >= min_jump) & (np.abs(width - jump) <= np.maximum(2.0, 0.5 * jump))
    rs, x0, x1, width = rs[plausible], x0[plausible], x1[plausible], width[plausible]
    if rs.size == 0:
        return 0, 0
    csum = np.concatenate([np.zeros((h, 1, 3), np.float64), np.cumsum(lab, axis=1, dtype=np.float64)], axis=1)
    strip = (csum[rs, x1] - csum[rs, x0]) / width[:, None]
    c_left = 0.5 * (lab[rs, x0 - 1] + lab[rs, x0 - 2])
    c_right = 0.5 * (lab[rs, x1] + lab[rs, x1 + 1])
    gap = np.linalg.norm(strip - c_right, axis=1) - np.linalg.norm(strip - c_left, axis=1)
    return int((gap > min_colour_gap).sum()), int((gap < -min_colour_gap).sum())


def decide_view_order(image: np.ndarray, disparity: np.ndarray, mask: np.ndarray, *, min_votes: int = 10,
                      min_margin: float = 0.25) -> ViewOrder:
    """Parallel, cross-eyed or undecided, from the occlusion votes (module docstring)."""
    par, cross = occlusion_votes(image, disparity, mask)
    n = par + cross
    order = "undecided"
    if n >= min_votes:
        margin = (par - cross) / n
        if margin >= min_margin:
            order = "parallel"
        elif margin <= -min_margin:
            order = "cross_eyed"
    return ViewOrder(order, par, cross)


@dataclass(frozen=True)
class DepthStats:
    d_far: float  # 1st percentile of reliable non-sky disparity, px
    d_near: float  # 99th percentile, px
    offset: float  # c, the disparity assumed at infinity, px
    range_ratio: float  # K

    def as_dict(self) -> dict[str, float]:
        return {"d_far": self.d_far, "d_near": self.d_near, "offset": self.offset, "range_ratio": self.range_ratio}


def smooth_disparity(disparity: np.ndarray, reliable: np.ndarray, *, sigma_px: float = 5.0,
                     range_px: float = 0.5) -> np.ndarray:
    """Edge-preserving smoothing of the reliable disparities: a bilateral filter, ``sigma_px`` in the
    image, ``range_px`` in disparity (about the sub-pixel matching noise), so that values of one surface
    are averaged and a depth edge (a jump of several px) is left alone. Unreliable pixels neither take
    part nor change. Matching errors are spatially correlated (patches of 30-60 px), so this takes off
    only part of them: -0.1 points of mean ordinal error on the label audit (README)."""
    if sigma_px <= 0:
        return disparity
    import cv2

    d = np.ascontiguousarray(disparity, np.float32)
    outside = np.where(reliable, d, np.float32(-1e4))  # out of every surface's range
    k = 2 * int(np.ceil(1.5 * sigma_px)) + 1
    return np.where(reliable, cv2.bilateralFilter(outside, k, range_px, sigma_px), d).astype(np.float32)


def disparity_to_depth(disparity: np.ndarray, reliable: np.ndarray, *, range_ratio: float = 10.0,
                       min_far_margin_px: float = 0.0, far_percentile: float = 1.0,
                       near_percentile: float = 99.0) -> tuple[np.ndarray, DepthStats]:
    """(H, W) disparity (larger = nearer) -> (H, W) float32 relative depth g > 0 (larger = farther).

    ``reliable``: (H, W) bool pixels that set the percentiles (consistent, not sky). ``range_ratio``
    = inf puts the far percentile at infinity (c = d_far; pixels there are clamped).
    ``min_far_margin_px``: the offset is at least this far below d_far (c <= d_far - margin), so that
    a depth ratio of 1 + sigma at the far end is a disparity step of at least sigma * margin px: with
    a narrow disparity range, K alone would put c just below d_far, where sub-pixel matching noise
    (~0.2 px) turns equal depths into confident orderings (module docstring).
    """
    vals = disparity[reliable]
    if vals.size == 0:
        vals = disparity.ravel()
    d_far, d_near = (float(v) for v in np.percentile(vals, [far_percentile, near_percentile]))
    spread = max(d_near - d_far, 1e-3)
    d_near = d_far + spread  # a flat pair (no range; triage rejects it) must still give finite depth
    if np.isfinite(range_ratio):
        offset = (range_ratio * d_far - d_near) / (range_ratio - 1.0)
    else:
        offset = d_far - 0.01 * spread
    offset = min(offset, d_far - min_far_margin_px)
    floor = offset + 0.5 * (d_far - offset)  # farthest allowed: twice the depth of the far percentile
    depth = 1.0 / (np.maximum(disparity, floor) - offset)
    return depth.astype(np.float32), DepthStats(d_far, d_near, float(offset), float(range_ratio))


def encode_depth(depth: np.ndarray, sky: np.ndarray | None = None) -> np.ndarray:
    """(H, W) float depth (larger = farther) -> uint16 PNG values, linear, sky = 65535."""
    non_sky = depth if sky is None else depth[~sky]
    top = float(non_sky.max()) if non_sky.size else 1.0
    out = np.clip(np.rint(depth / max(top, 1e-12) * MAX_DEPTH_VALUE), 1, MAX_DEPTH_VALUE).astype(np.uint16)
    if sky is not None:
        out[sky] = SKY_VALUE
    return out
