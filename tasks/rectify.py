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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
    cx, cy = (w - 1) / 2, (h - 1) / 2
    X = xs - cx
    Y = ys - cy
    target = Y + flow[ys, xs, 1]  # y' - cy
    xe = X + flow[ys, xs, 0]  # x' - cx
    weights = np.ones(X.size)
    params = np.array([0.0, 1.0, float(np.median(flow[ys, xs, 1]))])
    design = np.stack([X, Y, np.ones_like(X)], axis=1).astype(np.float64)
    for it in range(iterations):
        if it >= 2:  # after a first fit, regress on the rectified x_r instead of x (removes the a * d bias)
            a, b, ty = params
            x_r = (b * xe + a * (target - ty)) / (a * a + b * b)
            design = np.stack([x_r, Y, np.ones_like(X)], axis=1).astype(np.float64)
        sw = np.sqrt(weights)[:, None]
        params, *_ = np.linalg.lstsq(design * sw, target * sw[:, 0], rcond=None)
        resid = target - design @ params
        scale = 1.4826 * np.median(np.abs(resid - np.median(resid))) + 1e-3
        weights = (np.abs(resid) < 3 * scale).astype(np.float64)
        if weights.sum() < 10:
            break
    fit = Alignment(a=float(params[0]), b=float(params[1]), ty=float(params[2]))
    if abs(fit.rotation_deg) > max_rotation_deg or abs(fit.scale - 1) > max_scale_change:
        return Alignment(ty=float(np.median(flow[ys, xs, 1])))
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
