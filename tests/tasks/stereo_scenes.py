"""Small synthetic stereo scenes with known disparity, occlusions and sky (test helpers)."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Scene:
    left: np.ndarray  # (H, W, 3) uint8 RGB, left eye
    right: np.ndarray  # (H, W, 3) uint8 RGB, right eye
    disparity: np.ndarray  # (H, W) float32 x_left - x_right in the left view (sky: 0)
    sky: np.ndarray  # (H, W) bool, True = sky in the left view
    occluded: np.ndarray  # (H, W) bool, left pixels the right view does not see


def texture(h: int, w: int, seed: int, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.random((h, w)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 1.2)
    noise = (noise - noise.min()) / (noise.max() - noise.min())
    base = 40 + 170 * noise
    return np.clip(np.stack([base * t for t in tint], axis=-1), 0, 255).astype(np.uint8)


def make_scene(h: int = 96, w: int = 128, *, d_bg: int = 2, d_fg: int = 9, sky_rows: int = 0, seed: int = 0,
               fg_box: tuple[int, int, int, int] | None = None) -> Scene:
    """Background plane (disparity d_bg) with a nearer rectangle (d_fg); optional smooth sky on top.

    Rendering: right(x) shows the nearest surface covering it; left = right shifted back per surface.
    """
    x0, y0, x1, y1 = fg_box or (w // 3, h // 3, 2 * w // 3, h // 3 + h // 2)
    bg = texture(h, w + 64, seed, (0.9, 0.8, 0.6))
    fg = texture(h, w + 64, seed + 1, (0.5, 0.9, 0.4))
    # sky: smooth blue gradient (no texture), as far as infinity: disparity 0
    sky_img = np.zeros((h, w + 64, 3), np.uint8)
    grad = np.linspace(200, 150, max(sky_rows, 1))[:, None]
    sky_img[:sky_rows] = np.stack([grad * 0.45, grad * 0.7, grad + 40], axis=-1).clip(0, 255).astype(np.uint8)[:, None].repeat(w + 64, 1)[:, :, 0] if sky_rows else 0
    # a faint horizontal glow, so sky rows are not perfectly flat (real sky never is)
    sky_img = np.clip(sky_img.astype(np.int16) + (np.arange(w + 64) // 12)[None, :, None], 0, 255).astype(np.uint8)
    left = np.empty((h, w, 3), np.uint8)
    right = np.empty((h, w, 3), np.uint8)
    disp = np.zeros((h, w), np.float32)
    xs = np.arange(w)
    for y in range(h):
        is_sky = y < sky_rows
        for view, shift in ((left, 0), (right, 1)):
            if is_sky:
                view[y] = sky_img[y, 32:32 + w]
                continue
            # surface texture coordinates: a surface point u appears at x = u - shift * d in the view
            row = bg[y, 32 + xs + shift * d_bg]
            in_fg_rows = y0 <= y < y1
            if in_fg_rows:
                u = xs + shift * d_fg  # fg texture coordinate seen at x
                on_fg = (u >= x0) & (u < x1)
                row = np.where(on_fg[:, None], fg[y, 32 + u], row)
            view[y] = row
        if not is_sky:
            disp[y] = d_bg
            if y0 <= y < y1:
                disp[y, x0:x1] = d_fg
    sky = np.zeros((h, w), bool)
    sky[:sky_rows] = True
    occluded = np.zeros((h, w), bool)
    # left pixels just left of the near object are hidden behind it in the right view
    occluded[y0:y1, max(0, x0 - (d_fg - d_bg)):x0] = True
    occluded[sky_rows:, :d_bg] = False
    occluded[sky_rows:, w - d_bg:] |= False
    return Scene(left, right, disp, sky, occluded)


def motorcycle(width: int = 370) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-image's Middlebury motorcycle (left, right, GT disparity in processed px; 0 = unknown),
    area-downscaled to ``width`` (the views are 741 px wide); ``width`` >= 741 returns them as shipped."""
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    gt = np.where(np.isfinite(disp), disp, 0).astype(np.float32)
    s = width / left.shape[1]
    if s >= 1:
        return left, right, gt
    small = [cv2.resize(v, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for v in (left, right)]
    return small[0], small[1], cv2.resize(gt, small[0].shape[1::-1], interpolation=cv2.INTER_NEAREST) * s


def _similarity_matrix(w: int, h: int, rotation_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    """3x3: content at p goes to s R(theta) (p - c) + c + (tx, ty), c the centre of a w x h image."""
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    t = np.radians(rotation_deg)
    lin = scale * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    m = np.eye(3)
    m[:2, :2] = lin
    m[:2, 2] = c - lin @ c + (tx, ty)
    return m


def similarity_warp(image: np.ndarray, rotation_deg: float = 0.0, scale: float = 1.0, tx: float = 0.0,
                    ty: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``image`` moved by a similarity about its centre: content at p goes to
    s R(theta) (p - c) + c + (tx, ty) (x right, y down; positive angles turn +x towards +y).
    Returns the warped image (black outside) and the forward 3x3 matrix."""
    h, w = image.shape[:2]
    m = _similarity_matrix(w, h, rotation_deg, scale, tx, ty)
    warped = cv2.warpAffine(image, m[:2], (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                            borderValue=0)
    return warped, m


def homography_warp(image: np.ndarray, rotation_deg: float = 0.0, scale: float = 1.0, tx: float = 0.0,
                    ty: float = 0.0, px: float = 0.0, py: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``similarity_warp`` followed by a perspective (keystone) about the centre: with u, v the centred
    coordinates over the width, the denominator is 1 + px u + py v (a card photographed at an angle).
    Returns the warped image (black outside) and the forward 3x3 homography."""
    h, w = image.shape[:2]
    sim = _similarity_matrix(w, h, rotation_deg, scale, tx, ty)
    c = np.array([(w - 1) / 2, (h - 1) / 2])
    norm = np.array([[1 / w, 0, -c[0] / w], [0, 1 / w, -c[1] / w], [0, 0, 1.0]])
    persp = np.linalg.inv(norm) @ np.array([[1, 0, 0], [0, 1, 0], [px, py, 1.0]]) @ norm
    m = persp @ sim
    m /= m[2, 2]
    warped = cv2.warpPerspective(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                 borderValue=0)
    return warped, m


def keystone_warp(image: np.ndarray, corner_px: float) -> np.ndarray:
    """Vertical parallax ``corner_px * u * v`` (u, v in [-1, 1] from the centre) as a converged rig's
    second view shows it: the flow from the unwarped to the warped view has dy = corner_px * u * v."""
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u = (xs - (w - 1) / 2) / (w / 2)
    v = (ys - (h - 1) / 2) / (h / 2)
    return cv2.remap(image, xs, ys - corner_px * u * v, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
