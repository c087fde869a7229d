"""Packing: a GT scene turned into one web-style stereo file, and the geometry to trace it back.

Each GT scene (``tasks.audit.scenes``) is packed the way web stereo arrives (``PACKINGS``: parallel and
cross-eyed side by side, over-under, MPO) with a deterministic web degradation (``degradation``:
a convergence shift and a 1-2 px vertical offset made by cropping the views differently, a black
frame and divider, a resize, JPEG). The opt-in stress packing (``STRESS_PACKINGS``: ``hard``) adds
the damage of a bad camera or a bad re-upload on top (JPEG quality 10-40, a right view blurred by
0.5-3 px and at 0.6-1.4 times the exposure, sensor noise on both): some of its maps are bad, so
triage's auto-reject precision has something to be measured on. ``EyeGeometry`` maps each packed
view's file pixels back to its scene pixels, which is what lets ``tasks.audit.scoring`` score a map
against GT exactly where it was made.
"""
from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np

from tasks.audit.scenes import Scene

PACKINGS = ("sbs", "cross", "ou", "mpo")  # the default audit: how web stereo arrives
# opt-in stress packing: a parallel side-by-side pair as it arrives from a bad camera or a bad re-upload
# (heavy JPEG, a defocused / shaken right view, sensor noise, an exposure mismatch). Some of its maps
# are bad by the audit's truth, which is what makes the auto-reject precision measurable at all: on the
# four packings above no map is bad
STRESS_PACKINGS = ("hard",)
ALL_PACKINGS = PACKINGS + STRESS_PACKINGS
EXPECTED_FORMAT = {"sbs": "side_by_side", "cross": "side_by_side", "ou": "over_under", "mpo": "mpo",
                   "hard": "side_by_side"}


@dataclass(frozen=True)
class Degradation:
    """Web damage of one packed pair (all deterministic from the scene name and packing)."""

    # convergence shift: the two views' crops differ by this share (per mille) of the width (signed)
    shift_x_permille: int
    shift_y: int  # vertical offset between the views (px, signed)
    border: int  # black frame around the packed image and divider between the views (px)
    scale: float  # resize of the whole packed image
    jpeg_quality: int
    # the stress packing's damage (``STRESS_PACKINGS``); none for the others
    blur_px: float = 0.0  # Gaussian sigma on the right view (defocus, shake), px of the scene
    noise: float = 0.0  # Gaussian sensor noise on both views, grey levels (independent per view)
    gain: float = 1.0  # the right view's exposure against the left


def degradation(name: str, packing: str) -> Degradation:
    """The damage of ``packing`` of scene ``name``: seeded by both, so every run packs the same file."""
    rng = np.random.default_rng(zlib.crc32(f"{name}/{packing}".encode()))
    sign = 1 if rng.random() < 0.5 else -1
    base = dict(shift_x_permille=sign * int(rng.integers(10, 41)), shift_y=int(rng.choice([-2, -1, 1, 2])),
                border=0 if packing == "mpo" else int(rng.choice([0, 6, 12])),
                scale=round(float(rng.uniform(0.8, 1.0)), 3), jpeg_quality=int(rng.integers(80, 93)))
    if packing in STRESS_PACKINGS:
        base.update(jpeg_quality=int(rng.integers(10, 41)), blur_px=round(float(rng.uniform(0.5, 3.0)), 2),
                    noise=round(float(rng.uniform(2.0, 10.0)), 1),
                    gain=round(float(rng.uniform(0.6, 1.4)), 2))
    return Degradation(**base)


def _damage(view: np.ndarray, deg: Degradation, eye: str, seed: int) -> np.ndarray:
    """The stress packing's per-view damage: blur and exposure on the right view, noise on both."""
    import cv2

    if deg.blur_px <= 0 and deg.noise <= 0 and deg.gain == 1.0:
        return view
    out = view.astype(np.float32)
    if eye == "right":
        if deg.blur_px > 0:
            out = cv2.GaussianBlur(out, (0, 0), deg.blur_px)
        out *= deg.gain
    if deg.noise > 0:
        rng = np.random.default_rng(seed + (eye == "right"))
        out += rng.normal(0.0, deg.noise, out.shape).astype(np.float32)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@dataclass
class EyeGeometry:
    """Where one eye's view sits: file pixel (X, Y) of ``frame`` <-> scene pixel (x, y) of that eye.

    canvas = scene - origin + offset (the eye's crop origin in its scene image, its place on the
    packed canvas); file = (canvas + 0.5) * scale - 0.5 per axis.
    """

    frame: int
    origin: tuple[int, int]
    offset: tuple[int, int]
    size: tuple[int, int]  # (w, h) of the view on the canvas
    scale: tuple[float, float]  # file px per canvas px (x, y)

    def file_box(self) -> tuple[float, float, float, float]:
        (ox, oy), (w, h), (sx, sy) = self.offset, self.size, self.scale
        return ox * sx, oy * sy, (ox + w) * sx, (oy + h) * sy

    def file_to_scene(self, X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cx = (X + 0.5) / self.scale[0] - 0.5
        cy = (Y + 0.5) / self.scale[1] - 0.5
        return cx - self.offset[0] + self.origin[0], cy - self.offset[1] + self.origin[1]

    def scene_to_file(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cx = x - self.origin[0] + self.offset[0]
        cy = y - self.origin[1] + self.offset[1]
        return (cx + 0.5) * self.scale[0] - 0.5, (cy + 0.5) * self.scale[1] - 0.5


@dataclass
class Packed:
    """One packed file (``data``, written as ``<scene>__<packing><ext>``) and where each eye sits in it."""

    scene: str
    packing: str
    data: bytes
    ext: str
    expected_format: str
    eyes: dict[str, EyeGeometry]  # "left" / "right"
    degradation: Degradation


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB as JPEG bytes at ``quality``."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def pack_scene(scene: Scene, packing: str) -> Packed:
    """One web-style file of ``scene`` (see the module docstring) and the geometry to trace it back."""
    import cv2
    from PIL import Image

    if packing not in ALL_PACKINGS:
        raise ValueError(f"unknown packing {packing!r}; known: {', '.join(ALL_PACKINGS)}")
    deg = degradation(scene.name, packing)
    h, w = scene.left.shape[:2]
    dx = int(round(deg.shift_x_permille / 1000 * w))
    dy = deg.shift_y
    vw, vh = w - abs(dx), h - abs(dy)
    # different crops of the two views: the right view's content moves by (dx, dy) against the left
    origin_l = (max(0, dx), max(0, dy))
    origin_r = (max(0, -dx), max(0, -dy))
    seed = zlib.crc32(f"{scene.name}/{packing}/noise".encode())
    crops = {"left": scene.left[origin_l[1]:origin_l[1] + vh, origin_l[0]:origin_l[0] + vw],
             "right": scene.right[origin_r[1]:origin_r[1] + vh, origin_r[0]:origin_r[0] + vw]}
    views = {eye: _damage(view, deg, eye, seed) for eye, view in crops.items()}
    origins = {"left": origin_l, "right": origin_r}
    b = deg.border
    if packing == "mpo":
        order, canvas_size = ("left", "right"), (vw, vh)
        offsets = {"left": (0, 0), "right": (0, 0)}
    elif packing == "ou":
        order, canvas_size = ("left", "right"), (vw + 2 * b, 2 * vh + 3 * b)
        offsets = {"left": (b, b), "right": (b, 2 * b + vh)}
    else:
        order = ("right", "left") if packing == "cross" else ("left", "right")
        canvas_size = (2 * vw + 3 * b, vh + 2 * b)
        offsets = {order[0]: (b, b), order[1]: (2 * b + vw, b)}
    out_w = max(16, int(round(canvas_size[0] * deg.scale)))
    out_h = max(16, int(round(canvas_size[1] * deg.scale)))
    scale = (out_w / canvas_size[0], out_h / canvas_size[1])
    eyes = {eye: EyeGeometry(frame=(order.index(eye) if packing == "mpo" else 0), origin=origins[eye],
                             offset=offsets[eye], size=(vw, vh), scale=scale) for eye in ("left", "right")}

    def shrink(img: np.ndarray) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(img), (out_w, out_h), interpolation=cv2.INTER_AREA)

    if packing == "mpo":
        frames = [Image.fromarray(shrink(views[e])) for e in order]
        buf = io.BytesIO()
        frames[0].save(buf, format="MPO", save_all=True, append_images=frames[1:], quality=deg.jpeg_quality)
        data, ext = buf.getvalue(), ".mpo"
    else:
        canvas = np.zeros((canvas_size[1], canvas_size[0], 3), np.uint8)
        for eye in order:
            ox, oy = offsets[eye]
            canvas[oy:oy + vh, ox:ox + vw] = views[eye]
        data, ext = _jpeg(shrink(canvas), deg.jpeg_quality), ".jpg"
    return Packed(scene.name, packing, data, ext, EXPECTED_FORMAT[packing], eyes, deg)
