"""Compensate the global misalignment of unrectified web stereo, from the flow itself.

Web stereo pairs are rarely rectified: one view is often shifted vertically by a few pixels,
slightly rotated or scaled. We model the right view as a similarity transform of an ideally
rectified right view, about the image centre c::

    (x', y') - c = s R(theta) ((x_r, y_r) - c) + (t_x, t_y)

where (x_r, y_r) = (x - d, y) is where the left pixel (x, y) would land in a rectified right view
(d is the disparity). Vertically, y' - c_y = a (x_r - c_x) + b (y - c_y) + t_y with a = s sin(theta),
b = s cos(theta); we fit (a, b, t_y) robustly to the vertical flow of the reliable pixels, first
with x for x_r, then with x_r from the current fit. t_x cannot be told apart from
a disparity offset and is left at 0 (depth.py deals with the unknown offset).

Inverting the similarity on the flow's end points gives the rectified horizontal disparity and
the residual vertical misalignment without warping an image or running the flow a second time.

Before any dense correspondence, ``fit_prealignment`` fits the same model to SIFT matches (wide
baselines, rotated or scaled halves of scanned stereo cards) and, where the rows are bent beyond it
(a card scanned at an angle, a toed-in hand-held pair), its homography generalisation: the rows of
H (right -> aligned) that row alignment determines, y_a = (h21 x + h22 y + h23) / (h31 x + h32 y + 1),
fitted robustly to the matches, with the first row taken as for a similarity so that the view is
not sheared. Only the right view is resampled, so crop boxes map straight back to source pixels of
the left view. (OpenCV's stereoRectifyUncalibrated, which warps both views from the fundamental
matrix, was measured on the real photos: 74-272 px corner shifts, too distorting to keep.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np

from tasks.labels.consistency import consistency_mask


@dataclass(frozen=True)
class Alignment:
    """Vertical part of the view-to-view similarity: y' - cy = a (x - cx) + b (y - cy) + ty."""

    a: float = 0.0
    b: float = 1.0
    ty: float = 0.0

    @property
    def rotation_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.a, self.b)))

    @property
    def scale(self) -> float:
        return float(np.hypot(self.a, self.b))

    def as_dict(self) -> dict[str, float]:
        return {**asdict(self), "rotation_deg": self.rotation_deg, "scale": self.scale}


def fit_alignment(flow: np.ndarray, mask: np.ndarray, *, max_samples: int = 20000, iterations: int = 6,
                  max_rotation_deg: float = 5.0, max_scale_change: float = 0.1, seed: int = 0) -> Alignment:
    """Robust least squares (iteratively reweighted, Tukey-like cut at 3 MAD) of the vertical model.

    ``flow``: (H, W, 2) left -> right; ``mask``: (H, W) bool reliable pixels. A fit outside
    ``max_rotation_deg`` / ``max_scale_change`` is implausible for a stereo rig: the pure offset
    (a = 0, b = 1) is returned instead, so a bad flow cannot be "compensated" into looking aligned.
    """
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    if xs.size < 10:
        return Alignment()
    rng = np.random.default_rng(seed)
    if xs.size > max_samples:
        pick = rng.choice(xs.size, max_samples, replace=False)
        xs, ys = xs[pick], ys[pick]
    fit, _ = _fit_points(xs, ys, flow[ys, xs, 0], flow[ys, xs, 1], w, h, iterations=iterations,
                         max_rotation_deg=max_rotation_deg, max_scale_change=max_scale_change)
    return fit


def rectified_disparity(flow: np.ndarray, alignment: Alignment) -> tuple[np.ndarray, np.ndarray]:
    """Undo the similarity on the flow's end points.

    Returns ``(disparity, vertical_residual)``, both (H, W) float32 pixels: disparity = x - x_r
    (positive = nearer for a correctly ordered parallel pair, up to the unknown offset t_x) and the
    vertical residual y_r - y that the similarity does not explain.
    """
    h, w = flow.shape[:2]
    cx, cy = (w - 1) / 2, (h - 1) / 2
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32) - cx, np.arange(h, dtype=np.float32) - cy)
    xe = gx + flow[..., 0]
    ye = gy + flow[..., 1] - alignment.ty
    a, b = alignment.a, alignment.b
    n = a * a + b * b
    x_r = (b * xe + a * ye) / n
    y_r = (-a * xe + b * ye) / n
    return (gx - x_r).astype(np.float32), (y_r - gy).astype(np.float32)


# ---- pre-alignment from feature matches (before any dense correspondence) --------------------------
@dataclass(frozen=True)
class PreAlignment:
    """A similarity, or a homography, that brings the right view onto the left view's rows, fitted to
    keypoint matches.

    The right view is resampled as ``right_aligned(x, y) = right(M @ (x, y, 1))`` with ``M`` the 2x3
    affine ``matrix`` (rotation + scale about the centre, vertical offset ``ty`` and a horizontal shift
    ``tx`` that brings the median disparity of the matches to zero) and, for a keystoned pair, the
    third row ``projective`` (M is then a homography, divided through). The left view is never warped, so
    crop boxes keep mapping straight back to source pixels. ``applied`` is False when the pair needed
    nothing (already aligned, small disparities) or the matches were too few to trust.
    """

    matrix: tuple[tuple[float, float, float], tuple[float, float, float]] = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    # the third row (m31, m32, 1) of the homography right_aligned(x, y) = right(M (x, y, 1)): the keystone
    # a similarity cannot express (a scanned card photographed at an angle, a toed-in hand-held pair);
    # (0, 0) when the similarity explains the rows to within ``min_keystone_px``
    projective: tuple[float, float] = (0.0, 0.0)
    keystone_px: float = 0.0  # vertical shift the projective terms add (95th percentile over the inlier matches)
    applied: bool = False
    matches: int = 0
    inliers: int = 0
    rotation_deg: float = 0.0
    scale: float = 1.0
    tx: float = 0.0
    ty: float = 0.0
    residual_px: float = 0.0  # median |vertical residual| of the inlier matches after alignment

    def as_dict(self) -> dict:
        return {**asdict(self), "matrix": [list(r) for r in self.matrix], "projective": list(self.projective)}

    def homography(self) -> np.ndarray:
        """M as a 3 x 3 array (aligned right-view pixel -> pixel of the given right view)."""
        return np.vstack([np.array(self.matrix, np.float64), [self.projective[0], self.projective[1], 1.0]])


def fit_prealignment(left: np.ndarray, right: np.ndarray, *, work_width: int = 640, n_features: int = 1500,
                     min_matches: int = 30,
                     min_shift_fraction: float = 0.15, min_rotation_deg: float = 0.5, min_scale_change: float = 0.01,
                     min_ty_px: float = 3.0, max_rotation_deg: float = 10.0,
                     max_scale_change: float = 0.35, min_keystone_px: float = 1.0,
                     max_keystone: float = 0.15) -> PreAlignment:
    """Fit ``PreAlignment`` to SIFT matches between (H, W, 3) views (tasks.ingest.stereo_formats.match_keypoints).

    Needed for wide baselines and pre-converged cameras (views shifted by tens to hundreds of pixels,
    which dense flow at this size cannot bridge) and for unrectified pairs (scanned stereo cards:
    halves rotated and of different scale; hand-held pairs). The vertical model is the one of
    ``fit_alignment`` (a similarity of an ideally rectified right view), fitted robustly to the
    matches; ``tx`` is the median horizontal offset. Applied only when one of rotation, scale,
    vertical offset or shift passes its ``min_*`` threshold: below them the dense flow and
    ``fit_alignment`` cope on their own, and resampling would cost sharpness and, for the shift, the
    strip of the right view that moves out of the frame (at an 8 % threshold the label audit lost
    up to 7 points of coverage on Middlebury Cloth3, whose disparities are ~8 % of the width and which
    DIS matches directly; 15 % keeps those pairs untouched while a 150 px shift of a 741 px view is
    still brought back).
    """
    from tasks.ingest.stereo_formats import match_keypoints

    pa, pb, s = match_keypoints(left, right, work_width=work_width, n_features=n_features)
    n = len(pa)
    if n < min_matches:
        return PreAlignment(matches=n)
    pa, pb = pa.astype(np.float64) / s, pb.astype(np.float64) / s
    h, w = left.shape[:2]
    # fit_alignment's model on the matches; the 0.75 px floor on the cut keeps near-exact keypoint
    # matches from shrinking the inlier set to a handful
    fit, keep = _fit_points(pa[:, 0], pa[:, 1], pb[:, 0] - pa[:, 0], pb[:, 1] - pa[:, 1], w, h,
                            max_rotation_deg=max_rotation_deg, max_scale_change=max_scale_change, min_cut=0.75)
    if keep.sum() < min_matches:
        return PreAlignment(matches=n, inliers=int(keep.sum()))
    cx, cy = (w - 1) / 2, (h - 1) / 2
    a, b, ty = fit.a, fit.b, fit.ty
    # rectified x of each right match, then the shift that centres the disparities
    xe, ye = pb[keep, 0] - cx, pb[keep, 1] - cy - ty
    nn = a * a + b * b
    x_r = (b * xe + a * ye) / nn
    y_r = (-a * xe + b * ye) / nn
    tx = float(np.median((pa[keep, 0] - cx) - x_r))  # rect x = x_r + tx: median disparity -> 0
    resid = float(np.median(np.abs(y_r - (pa[keep, 1] - cy))))
    needs = (abs(fit.rotation_deg) >= min_rotation_deg or abs(fit.scale - 1) >= min_scale_change
             or abs(ty) >= min_ty_px or abs(tx) >= min_shift_fraction * w)
    # right(x', y') with (x', y') - c = S (x_rect - tx - c_x, y_rect - c_y) + (0, ty)
    m = ((b, -a, cx - b * (cx + tx) + a * cy), (a, b, cy + ty - a * (cx + tx) - b * cy))
    sim = PreAlignment(matrix=m, applied=bool(needs), matches=n, inliers=int(keep.sum()),
                       rotation_deg=fit.rotation_deg, scale=fit.scale, tx=tx, ty=float(ty), residual_px=resid)
    proj = _fit_keystone(pa, pb, keep, w, h, max_keystone=max_keystone)
    if proj is None:
        return sim
    hom, keystone_px, resid_p, inliers_p = proj
    if keystone_px < min_keystone_px or resid_p >= resid:  # the similarity explains the rows: keep it
        return sim
    hom = hom / hom[2, 2]
    return dataclasses.replace(
        sim, matrix=(tuple(hom[0]), tuple(hom[1])), projective=(float(hom[2, 0]), float(hom[2, 1])),
        keystone_px=float(keystone_px), applied=True, inliers=int(inliers_p), residual_px=float(resid_p))


def _fit_keystone(pa: np.ndarray, pb: np.ndarray, keep: np.ndarray, w: int, h: int, *, max_keystone: float,
                  iterations: int = 6) -> tuple[np.ndarray, float, float, int] | None:
    """The homography generalisation of the similarity: H maps right-view pixels to aligned ones so that
    matches land on their left rows, y_a = (h21 u + h22 v + h23) / (h31 u + h32 v + 1) (u, v: centred,
    scaled by the width), fitted robustly (IRLS, 3 MAD) to the matches, starting from the similarity's
    inliers ``keep``. Rows 2-3 are all that row alignment determines; row 1 is taken as for a similarity,
    (h22, -h21, t) over the same denominator (rotation and scale undone horizontally too), with t the
    shift that brings the median disparity to 0. Returns (M = H^-1 in pixels, the largest vertical
    shift the projective terms add at a corner, median |vertical residual| px, inliers), or None when
    the fit is implausible (a projective term beyond ``max_keystone``: the denominator would vary by
    more than that across the image) or the matches too few."""
    cx, cy, sc = (w - 1) / 2, (h - 1) / 2, float(w)
    ub, vb = (pb[:, 0] - cx) / sc, (pb[:, 1] - cy) / sc
    ua, va = (pa[:, 0] - cx) / sc, (pa[:, 1] - cy) / sc
    weights = keep.astype(np.float64)
    design = np.stack([ub, vb, np.ones_like(ub), -va * ub, -va * vb], axis=1)
    params = None
    for _ in range(iterations):
        if weights.sum() < 10:
            return None
        sw = np.sqrt(weights)[:, None]
        params, *_ = np.linalg.lstsq(design * sw, va * sw[:, 0], rcond=None)
        h21, h22, h23, h31, h32 = params
        den = h31 * ub + h32 * vb + 1.0
        resid = (h21 * ub + h22 * vb + h23) / den - va
        scale = 1.4826 * np.median(np.abs(resid[weights > 0] - np.median(resid[weights > 0]))) + 1e-6
        weights = (np.abs(resid) < max(3 * scale, 0.75 / sc)).astype(np.float64)
    h21, h22, h23, h31, h32 = params
    if max(abs(h31), abs(h32)) > max_keystone or weights.sum() < 30:
        return None
    den = h31 * ub + h32 * vb + 1.0
    inl = weights > 0
    x_rect = (h22 * ub - h21 * vb) / den
    t = float(np.median(ua[inl] - x_rect[inl]))
    hc = np.array([[h22, -h21, 0.0], [h21, h22, h23], [h31, h32, 1.0]])
    hc[0] += t * hc[2]
    norm = np.array([[1 / sc, 0, -cx / sc], [0, 1 / sc, -cy / sc], [0, 0, 1.0]])
    hp = np.linalg.inv(norm) @ hc @ norm  # right pixel -> aligned pixel
    m = np.linalg.inv(hp)
    m /= m[2, 2]
    resid_px = float(np.median(np.abs(resid[inl]))) * sc
    # what the projective terms add where the matches are (not extrapolated to corners no match sees):
    # the 95th percentile over the inliers of M against M without its third row
    pts = np.stack([pa[inl, 0], pa[inl, 1], np.ones(int(inl.sum()))])
    full = m @ pts
    affine = np.vstack([m[:2], [0, 0, 1]]) @ pts
    keystone_px = float(np.percentile(np.abs(full[1] / full[2] - affine[1]), 95))
    return m, keystone_px, resid_px, int(inl.sum())


def apply_prealignment(right: np.ndarray, pre: PreAlignment) -> np.ndarray:
    """The right view resampled onto the left view's rows (black outside the source)."""
    import cv2

    if not pre.applied:
        return right
    h, w = right.shape[:2]
    if pre.projective != (0.0, 0.0):
        return cv2.warpPerspective(right, pre.homography(), (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return cv2.warpAffine(right, np.array(pre.matrix, np.float64), (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def _fit_points(xs: np.ndarray, ys: np.ndarray, fx: np.ndarray, fy: np.ndarray, w: int, h: int, *,
                iterations: int = 6, max_rotation_deg: float = 5.0, max_scale_change: float = 0.1,
                min_cut: float = 0.0) -> tuple[Alignment, np.ndarray]:
    """The robust fit of ``fit_alignment`` on point arrays (x, y in the left view; f = right - left):
    iteratively reweighted least squares, cut at max(3 MAD, ``min_cut``) px; returns the fit and the
    inliers of the last iteration."""
    cx, cy = (w - 1) / 2, (h - 1) / 2
    X, Y = xs - cx, ys - cy
    target = Y + fy
    xe = X + fx
    weights = np.ones(X.size)
    params = np.array([0.0, 1.0, float(np.median(fy))])
    design = np.stack([X, Y, np.ones_like(X)], axis=1).astype(np.float64)
    for it in range(iterations):
        if it >= 2:
            a, b, ty = params
            x_r = (b * xe + a * (target - ty)) / (a * a + b * b)
            design = np.stack([x_r, Y, np.ones_like(X)], axis=1).astype(np.float64)
        sw = np.sqrt(weights)[:, None]
        params, *_ = np.linalg.lstsq(design * sw, target * sw[:, 0], rcond=None)
        resid = target - design @ params
        scale = 1.4826 * np.median(np.abs(resid - np.median(resid))) + 1e-3
        weights = (np.abs(resid) < max(3 * scale, min_cut)).astype(np.float64)
        if weights.sum() < 10:
            break
    fit = Alignment(a=float(params[0]), b=float(params[1]), ty=float(params[2]))
    if abs(fit.rotation_deg) > max_rotation_deg or abs(fit.scale - 1) > max_scale_change:
        fit = Alignment(ty=float(np.median(fy)))
    return fit, weights > 0


def coarse_flows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cheap look both ``needs_prealignment`` and the exposure estimate (``tasks.labels.process``) take:
    DIS "ultrafast" both ways on small grey views -> (a -> b, b -> a, consistent pixels at a loose
    alpha 0.05, beta 1 px)."""
    import cv2


    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
    fwd, bwd = dis.calc(a, b, None), dis.calc(b, a, None)
    return fwd, bwd, consistency_mask(fwd, bwd, alpha=0.05, beta=1.0)


def needs_prealignment(left: np.ndarray, right: np.ndarray, *, work_width: int = 320, min_consistency: float = 0.5,
                       min_shift_fraction: float = 0.15, min_rotation_deg: float = 0.5,
                       min_scale_change: float = 0.01, min_ty_px: float = 3.0, coarse_keystone_px: float = 2.5) -> bool:
    """A cheap look (DIS "ultrafast" both ways at ``work_width`` px, ~10 ms) at whether keypoint
    pre-alignment could change anything: True when the coarse flow is mostly inconsistent (a wide
    baseline or a misalignment it cannot bridge) or shows a shift, rotation, scale or vertical offset
    beyond ``fit_prealignment``'s thresholds, or a keystone (rows bent by ``coarse_keystone_px`` or more
    at the corners beyond what the similarity explains). Keypoints cost ~0.25 s per 1-MP pair; most pairs skip them.
    """
    import cv2

    h, w = left.shape[:2]
    s = min(1.0, work_width / w)

    def small(img: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)
        return cv2.resize(g, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else g

    a, b = small(left), small(right)
    fwd, bwd, ok = coarse_flows(a, b)
    if ok.mean() < min_consistency:
        return True
    fit = fit_alignment(fwd, ok, max_rotation_deg=10.0, max_scale_change=0.35)
    shift = abs(float(np.median(fwd[..., 0][ok]))) / a.shape[1]
    if (shift >= min_shift_fraction or abs(fit.rotation_deg) >= min_rotation_deg
            or abs(fit.scale - 1) >= min_scale_change or abs(fit.ty) / s >= min_ty_px):
        return True
    # keystone: what the similarity leaves in the rows, as the u v and v^2 terms a perspective adds
    # (u, v in [-1, 1] from the centre), robust least squares (3 MAD) over the consistent pixels, in
    # full-size px at the corners. This coarse estimate reads up to 1.8 px on rectified scenes (flow
    # bias at occlusions), hence the higher bar; the keypoint fit then decides at 1 px
    _, vres = rectified_disparity(fwd, fit)
    hh, ww = ok.shape
    ys, xs = np.nonzero(ok)
    u, v = (xs - (ww - 1) / 2) / (ww / 2), (ys - (hh - 1) / 2) / (ww / 2)
    design, target = np.stack([u * v, v * v, np.ones_like(u)], 1), vres[ys, xs]
    weights = np.ones(target.size)
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(design * weights[:, None], target * weights, rcond=None)
        resid = target - design @ coef
        weights = (np.abs(resid) < 3 * 1.4826 * np.median(np.abs(resid)) + 1e-6).astype(np.float64)
    return bool((abs(coef[0]) + abs(coef[1]) * (hh / ww) ** 2) / s >= coarse_keystone_px)
