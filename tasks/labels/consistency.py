"""Flow-consistency primitives every correspondence step shares: warping by a flow, the forward-backward
check, marking unmatched pixels and the local flow range. Numpy and OpenCV only; it imports nothing of
the pipeline, so the backends (``correspondence``) and the global alignment (``rectify``) both build on it
without importing each other.
"""
from __future__ import annotations

import cv2
import numpy as np


def _targets(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x + u, y + v, inside): where ``flow`` (H, W, 2) sends each pixel, and whether that lies in the image."""
    h, w = flow.shape[:2]
    mx = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    my = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    return mx, my, (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)


def warp_by_flow(field_: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``field_`` (H, W, C) at x + flow(x), bilinearly; returns (sampled, inside mask)."""
    mx, my, inside = _targets(flow)
    sampled = cv2.remap(field_.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return sampled.reshape(field_.shape), inside


def _norm(v: np.ndarray) -> np.ndarray:
    """|v| of an (H, W, 2) float32 field (OpenCV's magnitude: the same values as np.linalg.norm, faster)."""
    v = v.astype(np.float32, copy=False)
    return cv2.magnitude(np.ascontiguousarray(v[..., 0]), np.ascontiguousarray(v[..., 1]))


def consistency_mask(fwd: np.ndarray, bwd: np.ndarray, *, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """(H, W) bool: True where |f(x) + b(x + f(x))| < alpha |f(x)| + beta and x + f(x) lies in the image.

    Occluded pixels and the strip at the image edge that the other view does not see fail this
    test, since the backward flow at their target belongs to another surface (or to nothing).
    """
    b_at, inside = warp_by_flow(bwd, fwd)
    ok = _norm(fwd + b_at) < alpha * _norm(fwd) + beta
    return ok & inside & np.isfinite(fwd).all(axis=-1)


def mark_unmatched(flow: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Point ``flow`` (H, W, 2) at ``mask`` outside the image (x = -w - x or beyond), in place, so that
    ``consistency_mask`` never keeps those pixels whatever the other direction says; returns ``flow``."""
    w = flow.shape[1]
    xs = np.broadcast_to(np.arange(w, dtype=np.float32), mask.shape)
    flow[mask, 0] = -2.0 * w - xs[mask]
    flow[mask, 1] = 0.0
    return flow


def local_range(u: np.ndarray, size: int = 5) -> np.ndarray:
    """(H, W) max - min of ``u`` over ``size`` x ``size`` windows: large where the flow jumps."""
    u = np.ascontiguousarray(u)
    k = np.ones((size, size), np.uint8)
    return cv2.dilate(u, k) - cv2.erode(u, k)
