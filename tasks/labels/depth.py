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
non-sky pixel at 65000 (65001..65534 unused), sky = 65535. mask.png is the only statement of what
was measured.

Unreliable pixels (``fill_unreliable``)
---------------------------------------
An unreliable pixel's own disparity is a matching failure, and mostly a large one: read as depth it
said "nearer than everything" (medians of 200-740 in maps whose measured pixels lay between 3,700
and 27,000), which a loader without masks (the original ReDWeb release had none) would learn as
the nearest thing in every image. So after encoding, every unreliable non-sky pixel takes a value
interpolated from the measured non-sky pixels around it, edge-aware: a coarse-to-fine fill
(pull-push) whose upsampling weighs each coarse neighbour by how alike its measured pixels' colour
(CIELAB) is to the pixel's, so an occluded strip of background takes the background's depth, not
the occluding object's. Every filled value is a weighted mean of measured values, so it lies within
the measured range. Measured pixels and sky keep their values exactly; the mask is unchanged.
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


def _block_mean(a: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """2x2 blocks of ``a`` (h, w, ...) weighted by ``w`` (h, w): (weighted mean, summed weight / 4).
    Odd sizes are padded with zero weight. Blocks without weight get 0."""
    h, wd = w.shape
    ph, pw = h % 2, wd % 2
    if ph or pw:
        pad = ((0, ph), (0, pw))
        w = np.pad(w, pad)
        a = np.pad(a, pad + ((0, 0),) * (a.ndim - 2), mode="edge")
    wa = a * (w[..., None] if a.ndim == 3 else w)
    s = wa[0::2, 0::2] + wa[1::2, 0::2] + wa[0::2, 1::2] + wa[1::2, 1::2]
    ws = w[0::2, 0::2] + w[1::2, 0::2] + w[0::2, 1::2] + w[1::2, 1::2]
    safe = np.where(ws > 0, ws, 1.0)
    return s / (safe[..., None] if a.ndim == 3 else safe), ws / 4.0


def _pull_push(values: np.ndarray, weight: np.ndarray, colour: np.ndarray, measured_colour: np.ndarray,
               colour_sigma: float) -> np.ndarray:
    """Fill where ``weight`` is 0 from coarser levels (float32 (h, w) values; colours (h, w, 3) CIELAB:
    ``colour`` of all the cell's pixels, ``measured_colour`` of its measured ones). Returns values
    defined everywhere, each a weighted mean of the given ones."""
    h, w = weight.shape
    holes = weight <= 0
    if not holes.any():
        return values
    if not (~holes).any():
        return values  # nothing measured at all: nothing to fill from (the caller checks first)
    if min(h, w) <= 1:
        # the coarsest level: colour-weighted mean of the measured cells
        d2 = ((colour[holes][:, None, :] - measured_colour[~holes][None, :, :]) ** 2).sum(-1)
        k = np.exp(-d2 / (2 * colour_sigma ** 2)) * weight[~holes][None, :] + 1e-12
        out = values.copy()
        out[holes] = (k * values[~holes][None, :]).sum(1) / k.sum(1)
        return out
    v_c, w_c = _block_mean(values, weight)
    all_c, _ = _block_mean(colour, np.ones_like(weight))
    meas_c, _ = _block_mean(measured_colour, weight)
    meas_c = np.where((w_c > 0)[..., None], meas_c, all_c)
    v_c = _pull_push(v_c.astype(np.float32), w_c.astype(np.float32), all_c, meas_c, colour_sigma)
    # push: each hole takes the 3x3 coarse neighbours around its cell, weighted by distance (Gaussian,
    # 1 coarse px), by how alike their measured colour is to its own, and by how measured they are
    hc, wc = w_c.shape
    ys, xs = np.nonzero(holes)
    cy, cx = (ys + 0.5) / 2 - 0.5, (xs + 0.5) / 2 - 0.5
    num = np.zeros(ys.size, np.float64)
    den = np.zeros(ys.size, np.float64)
    own = colour[ys, xs]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ny = np.clip(ys // 2 + dy, 0, hc - 1)
            nx = np.clip(xs // 2 + dx, 0, wc - 1)
            spatial = np.exp(-((ny - cy) ** 2 + (nx - cx) ** 2) / 2.0)
            d2 = ((own - meas_c[ny, nx]) ** 2).sum(-1)
            k = spatial * (np.exp(-d2 / (2 * colour_sigma ** 2)) + 1e-6) * (0.05 + w_c[ny, nx])
            num += k * v_c[ny, nx]
            den += k
    out = values.copy()
    out[ys, xs] = num / den
    return out


def fill_unreliable(depth: np.ndarray, measured: np.ndarray, sky: np.ndarray, image: np.ndarray, *,
                    colour_sigma: float = 8.0) -> np.ndarray:
    """Encoded depth with its unreliable non-sky pixels filled (module docstring, "Unreliable pixels").

    ``depth``: (H, W) uint16 from ``encode_depth``; ``measured``: (H, W) bool, the reliable non-sky
    pixels (their values are kept exactly); ``sky``: (H, W) bool (kept at 65535); ``image``: (H, W, 3)
    uint8 RGB, the guide; ``colour_sigma``: CIELAB distance at which a neighbour's weight falls to
    exp(-1/2) (about the colour spread within one surface of a web photo). Returns a new (H, W) uint16
    map; with no measured pixel it is returned unchanged (triage rejects such a map)."""
    targets = ~measured & ~sky
    if not targets.any() or not measured.any():
        return depth
    lab = cv2.cvtColor(image.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    weight = measured.astype(np.float32)
    values = np.where(measured, depth, 0).astype(np.float32)
    filled = _pull_push(values, weight, lab, lab, colour_sigma)
    lo, hi = int(depth[measured].min()), int(depth[measured].max())
    out = depth.copy()
    out[targets] = np.clip(np.rint(filled[targets]), lo, hi).astype(np.uint16)
    return out
