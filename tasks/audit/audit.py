"""Label audit: the process configuration measured on real stereo with ground truth, end to end.

Each GT scene (``tasks.audit.scenes``) is packed the way web stereo arrives (``PACKINGS``: parallel and
cross-eyed side by side, over-under, MPO) with a deterministic web degradation (``degradation``:
a convergence shift and a 1-2 px vertical offset made by cropping the views differently, a black
frame and divider, a resize, JPEG). The packed files then go through the code a crawl uses:
``tasks.ingest.run.ingest`` on a ``local:`` folder (format detection, splitting; near-duplicate
detection off, since the packings of one scene are near-duplicates by design),
``tasks.labels.process.process_batch`` (correspondence, view order, sky, crop, depth, triage) and
``tasks.publish.export.export_dataset`` (the RDs/masks a user trains on). The opt-in stress packing
(``STRESS_PACKINGS``: ``hard``) adds the damage of a bad camera or a bad re-upload on top (JPEG
quality 10-40, a right view blurred by 0.5-3 px and at 0.6-1.4 times the exposure, sensor noise on
both): some of its maps are bad, so triage's auto-reject precision has something to be measured on.
Every exported pixel is traced back through the export resize, the crop box, the view's box in the
packed file, the packing and the degradation to the scene's pixel, so the map is scored against GT
exactly where it was made.

Scores per (scene, packing) — ``score_map`` for the arithmetic:

- ``ordinal_error``: share of random pairs of reliable non-sky pixels (with GT) whose DESIGN.md
  ordinal label (sigma = 0.02 on the depth ratio) differs from GT's (depth = 1 / disparity); a pair
  GT calls equal but the map orders counts as wrong, and so does the reverse ("ties count").
- ``coverage``: share of the GT pixels of the view the map was made from (in source pixels of the
  packed file) that carry a reliable label; ``ceiling``: the share of them whose point the other
  packed view shows at all (inside its crop, not occluded, from GT): no method can label more.
- view order: whether the exported left-eye image really is the left eye; the detected format;
  the triage state and reason; seconds per stage.

A map is **bad** when its ordinal error exceeds ``BAD_ERROR`` (10 %) or its coverage is under
``BAD_COVERAGE`` (30 %); the summary judges triage against that truth (auto-reject precision and
recall). A wrong view order is scored as what it is: the map is compared with the GT of the eye
it was really made from (the right view's GT is the left GT forward-warped, nearest surface
winning), so an inverted map shows an ordinal error near 100 %.
"""
from __future__ import annotations

import io
import json
import logging
import math
import shutil
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from core.rules import SKY_VALUE, colorize_depth
from tasks.audit.scenes import Scene
from tasks.labels.settings import ProcessConfig

log = logging.getLogger(__name__)

PACKINGS = ("sbs", "cross", "ou", "mpo")  # the default audit: how web stereo arrives
# opt-in stress packing: a parallel side-by-side pair as it arrives from a bad camera or a bad re-upload
# (heavy JPEG, a defocused / shaken right view, sensor noise, an exposure mismatch). Some of its maps
# are bad by the audit's truth, which is what makes the auto-reject precision measurable at all: on the
# four packings above no map is bad
STRESS_PACKINGS = ("hard",)
ALL_PACKINGS = PACKINGS + STRESS_PACKINGS
EXPECTED_FORMAT = {"sbs": "side_by_side", "cross": "side_by_side", "ou": "over_under", "mpo": "mpo",
                   "hard": "side_by_side"}
BAD_ERROR = 0.10
BAD_COVERAGE = 0.30
KEPT_STATES = ("pending_review", "auto_accepted", "accepted")
MAP_STATES = ("pending_review", "auto_accepted", "auto_rejected", "accepted", "rejected")
SIGMA = 0.02
REPORT_RADII = (9, 27)  # px of the exported map: the report's "where wrong" neighbourhoods (see disagreement_map)


# ---- packing -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Degradation:
    """Web damage of one packed pair (all deterministic from the scene name and packing)."""

    shift_x_permille: int  # convergence shift: the two views' crops differ by this share of the width (signed)
    shift_y: int  # vertical offset between the views (px, signed)
    border: int  # black frame around the packed image and divider between the views (px)
    scale: float  # resize of the whole packed image
    jpeg_quality: int
    # the stress packing's damage (``STRESS_PACKINGS``); none for the others
    blur_px: float = 0.0  # Gaussian sigma on the right view (defocus, shake), px of the scene
    noise: float = 0.0  # Gaussian sensor noise on both views, grey levels (independent per view)
    gain: float = 1.0  # the right view's exposure against the left


def degradation(name: str, packing: str) -> Degradation:
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
    scene: str
    packing: str
    data: bytes
    ext: str
    expected_format: str
    eyes: dict[str, EyeGeometry]  # "left" / "right"
    degradation: Degradation


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
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


# ---- scoring ---------------------------------------------------------------------------------------
def ordinal_labels(g_i: np.ndarray, g_j: np.ndarray, sigma: float = SIGMA) -> np.ndarray:
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


def gt_ordinal_labels(d_i: np.ndarray, d_j: np.ndarray, step: float = 0.0, sigma: float = SIGMA) -> np.ndarray:
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
            return {"error": math.nan, "error_neq": math.nan, "error_eq": math.nan, "inverted": math.nan, "pairs": 0,
                    "ambiguous": math.nan}
        rng = np.random.default_rng(seed)
        i, j = idx[rng.integers(0, idx.size, n_pairs)], idx[rng.integers(0, idx.size, n_pairs)]
        keep = i != j
        i, j = i[keep], j[keep]
    else:
        i, j = (np.asarray(p).ravel() for p in pairs)
    p, g = pred_depth.ravel().astype(np.float64), gt_depth.ravel().astype(np.float64)
    ours = ordinal_labels(p[i], p[j])
    truth = gt_ordinal_labels(1.0 / g[i], 1.0 / g[j], gt_quantum) if gt_quantum > 0 else ordinal_labels(g[i], g[j])
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
    ceiling: float = float("nan")  # share of those GT pixels the other packed view sees at all (not occluded, in frame)
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
        raise ValueError(f"{packed.scene}/{packed.packing}: view box {list(view_box)} of frame {frame} matches no eye")
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
    errs = ordinal_error(rd.astype(np.float64), np.nan_to_num(gt_depth, nan=1.0), valid, n_pairs=n_pairs, seed=seed,
                         gt_quantum=gt_step(scene.disparity))
    # coverage in source pixels: GT pixels of the view's region in the packed file with a reliable label
    bx0, by0, bx1, by1 = (int(round(v)) for v in geo.file_box())
    Xs, Ys = np.meshgrid(np.arange(bx0, bx1, dtype=np.float64), np.arange(by0, by1, dtype=np.float64))
    scx, scy = geo.file_to_scene(Xs, Ys)
    gt_src = _sample_nearest(gt, scx, scy)
    gt_ok = np.isfinite(gt_src) & (gt_src > 0)
    u = np.floor((Xs + 0.5 - x0) / fx).astype(int)
    v = np.floor((Ys + 0.5 - y0) / fy).astype(int)
    inside = (u >= 0) & (u < W) & (v >= 0) & (v < H)
    labelled = np.zeros_like(gt_ok)
    labelled[inside] = reliable[v[inside], u[inside]]
    coverage = float((labelled & gt_ok).sum() / max(int(gt_ok.sum()), 1))
    # the ceiling: GT pixels whose point the other packed view shows (inside its crop, not occluded);
    # no correspondence method can label more
    other_eye = "right" if eye == "left" else "left"
    other, gt_other = packed.eyes[other_eye], gts[other_eye]
    sxi, syi = np.rint(scx), np.rint(scy)  # the GT pixel sampled (right_view_disparity warps whole pixels)
    xo = sxi - gt_src if eye == "left" else sxi + gt_src
    (ox, oy), (ow, oh) = other.origin, other.size
    in_other = (xo >= ox - 0.5) & (xo <= ox + ow - 0.5) & (syi >= oy) & (syi <= oy + oh - 1)
    d_other = _sample_nearest(gt_other, xo, syi)
    seen = gt_ok & in_other & (np.abs(np.nan_to_num(d_other, nan=-1e9) - gt_src) < 1.0)
    ceiling = float(seen.sum() / max(int(gt_ok.sum()), 1))
    images = {}
    if keep_images:
        images = {"gt_depth": gt_depth, "valid": valid,
                  "disagreement": disagreement_map(rd.astype(np.float64), np.nan_to_num(gt_depth, nan=1.0), valid,
                                                   radii=REPORT_RADII, ordered_only=True)}
    return MapScore(errs["error"], errs["error_neq"], errs["error_eq"], errs["inverted"], coverage,
                    int(valid.sum()), eye, ceiling, images)


# ---- running ---------------------------------------------------------------------------------------
@dataclass
class AuditRow:
    scene: str
    packing: str
    state: str
    reason: str | None
    kept: bool
    ordinal_error: float | None
    error_neq: float | None
    inverted: float | None
    coverage: float | None
    format: str | None
    format_ok: bool
    view_order: str | None
    view_order_source: str | None
    view_order_ok: bool | None
    score: float | None
    bad: bool | None
    seconds: dict[str, float]
    item_id: str
    degradation: dict
    ceiling: float | None = None  # coverage no method can exceed (MapScore.ceiling)


def ingest_options_from_config(ingest: Any) -> dict[str, Any]:
    return dict(max_pixels=ingest.max_pixels, min_side=ingest.min_side, max_file_bytes=ingest.max_file_bytes,
                min_similarity=ingest.stereo_min_similarity, anaglyph_threshold=ingest.anaglyph_min_score,
                split_anaglyph=ingest.anaglyphs == "split")


def run_audit(scenes: Sequence[Scene], work_dir: str | Path, *, packings: Sequence[str] = PACKINGS,
              process: ProcessConfig | None = None, ingest_options: dict[str, Any] | None = None,
              n_pairs: int = 100_000, keep_images: bool = True,
              progress: Callable[[str], None] | None = None) -> tuple[list[AuditRow], dict[str, dict]]:
    """Pack, ingest, process, export and score every scene x packing in a throw-away data root under
    ``work_dir``. Returns the rows and, with ``keep_images``, the report images per item id."""
    from tasks.catalog.catalog import Catalog
    from tasks.publish.export import export_dataset
    from tasks.ingest.run import ingest
    from tasks.labels.process import process_batch, read_rgb

    work_dir = Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    inputs = work_dir / "inputs"
    inputs.mkdir(parents=True)
    data_root = work_dir / "data"
    say = progress or (lambda msg: None)
    packed: dict[str, Packed] = {}
    t = time.perf_counter()
    for scene in scenes:
        for packing in packings:
            pk = pack_scene(scene, packing)
            name = f"{scene.name}__{packing}{pk.ext}"
            (inputs / name).write_bytes(pk.data)
            packed[name] = pk
    t_pack = time.perf_counter() - t
    say(f"packed {len(packed)} pairs in {t_pack:.1f} s")
    url = f"sqlite:///{data_root / 'catalog.db'}"
    data_root.mkdir()
    with Catalog(url) as catalog:
        t = time.perf_counter()
        ingest(catalog, f"local:{inputs}", data_root=data_root, near_duplicate_max_distance=-1,
               **(ingest_options or {}))
        t_ingest = time.perf_counter() - t
        items = {it.source_id: it for it in catalog.items(catalog.ids())}
        say(f"ingest {t_ingest:.1f} s")
        ids = [items[name].id for name in packed if items[name].state == "split"]
        t = time.perf_counter()
        process_batch(url, ids, data_root, settings=process)
        t_process = time.perf_counter() - t
        say(f"process {t_process:.1f} s")
        t = time.perf_counter()
        export_dir = work_dir / "export"
        export_dataset(catalog, data_root, export_dir, states=MAP_STATES)
        t_export = time.perf_counter() - t
        items = {it.source_id: it for it in catalog.items(catalog.ids())}
    import pandas as pd

    manifest = pd.read_csv(export_dir / "manifest.csv", dtype={"id": str}).set_index("id") \
        if (export_dir / "manifest.csv").is_file() else pd.DataFrame()
    rows: list[AuditRow] = []
    images: dict[str, dict] = {}
    right_gt: dict[str, np.ndarray] = {}
    by_name = {s.name: s for s in scenes}
    n = max(len(packed), 1)
    for name, pk in packed.items():
        scene = by_name[pk.scene]
        item = items[name]
        info = item.info or {}
        proc = info.get("process") or {}
        seconds = {"ingest": t_ingest / n, "export": t_export / n,
                   **{k: float(v) for k, v in (proc.get("timings") or {}).items()}}
        has_map = item.id in manifest.index
        row = AuditRow(scene=pk.scene, packing=pk.packing, state=item.state, reason=item.reason,
                       kept=item.state in KEPT_STATES, ordinal_error=None, error_neq=None, inverted=None,
                       coverage=None, format=item.stereo_format, format_ok=item.stereo_format == pk.expected_format,
                       view_order=item.view_order, view_order_source=info.get("view_order_source"),
                       view_order_ok=None, score=item.score, bad=None, seconds=seconds, item_id=item.id,
                       degradation=asdict(pk.degradation))
        if has_map:
            t = time.perf_counter()
            left_view = proc.get("left_view", "right" if item.swapped else "left")
            views = info.get("views") or {}
            frame = int((info.get("view_frames") or {}).get(left_view, 0))
            rd = _read_png(export_dir / "RDs" / f"{item.id}.png")
            mask = _read_png(export_dir / "masks" / f"{item.id}.png")
            if pk.scene not in right_gt:
                right_gt[pk.scene] = right_view_disparity(scene.disparity)
            s = score_map(scene, pk, rd=rd, mask=mask, crop_source=proc["crop_source"], frame=frame,
                          view_box=views[left_view], n_pairs=n_pairs, keep_images=keep_images,
                          right_disparity=right_gt[pk.scene])
            row.ordinal_error, row.error_neq, row.inverted, row.coverage = (
                _num(s.ordinal_error), _num(s.error_neq), _num(s.inverted), s.coverage)
            row.ceiling = _num(s.ceiling)
            row.view_order_ok = s.eye == "left"
            row.bad = bool((row.ordinal_error is None or row.ordinal_error > BAD_ERROR) or s.coverage < BAD_COVERAGE)
            row.seconds["score"] = time.perf_counter() - t
            if keep_images:
                images[item.id] = {**s.images, "rd": rd, "mask": mask,
                                   "image": read_rgb(export_dir / "imgs" / f"{item.id}.jpg")}
        rows.append(row)
    return rows, images


@dataclass
class PhotoRow:
    """One real web photo without GT: what the pipeline made of it (``audit_photos``)."""

    photo: str
    state: str
    reason: str | None
    kept: bool
    format: str | None
    view_order: str | None
    view_order_source: str | None
    view_order_ok: bool | None  # against the file's own convention (left view first / MPO frame 0)
    coverage: float | None  # reliable share of the exported map
    score: float | None
    seconds: float | None
    item_id: str


PHOTO_EXTS = (".jpg", ".jpeg", ".png", ".mpo", ".jps", ".tif", ".tiff", ".webp")


def find_photos(path: str | Path) -> list[Path]:
    """Stereo photo files under ``path`` (a file, or a folder searched recursively), skipping the
    extracted views ``left.*`` / ``right.*`` that sit next to some originals."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_EXTS
                  and p.stem.lower() not in ("left", "right", "disp_gt", "mask_nonocc")
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def audit_photos(photos: Sequence[Path], work_dir: str | Path, *, process: ProcessConfig | None = None,
                 ingest_options: dict[str, Any] | None = None) -> list[PhotoRow]:
    """Ingest + process + export real photos whose view order is known by convention (the file stores
    the left eye first: parallel side-by-side, MPO frame 0; ``*.jps`` right-first, which ingest undoes),
    and report state, format, order and coverage. No GT, so no ordinal error."""
    from tasks.catalog.catalog import Catalog
    from tasks.publish.export import export_dataset
    from tasks.ingest.run import ingest
    from tasks.labels.process import process_batch

    work_dir = Path(work_dir)
    if work_dir.exists():
        shutil.rmtree(work_dir)
    inputs = work_dir / "inputs"
    inputs.mkdir(parents=True)
    names = {}
    for k, src in enumerate(photos):
        name = f"{k:03d}_{src.parent.name}_{src.name}"
        shutil.copyfile(src, inputs / name)
        names[name] = src
    data_root = work_dir / "data"
    data_root.mkdir()
    url = f"sqlite:///{data_root / 'catalog.db'}"
    rows = []
    with Catalog(url) as catalog:
        ingest(catalog, f"local:{inputs}", data_root=data_root, near_duplicate_max_distance=-1, **(ingest_options or {}))
        items = {it.source_id: it for it in catalog.items(catalog.ids())}
        process_batch(url, [it.id for it in items.values() if it.state == "split"], data_root, settings=process)
        export_dataset(catalog, data_root, work_dir / "export", states=MAP_STATES)
        for name, src in names.items():
            it = catalog.get(items[name].id)
            info = it.info or {}
            proc = info.get("process") or {}
            has_map = it.image_path is not None and it.state in MAP_STATES
            coverage = None
            if has_map:
                mask = _read_png(work_dir / "export" / "masks" / f"{it.id}.png")
                coverage = float((mask > 127).mean())
            rows.append(PhotoRow(photo=f"{src.parent.name}/{src.name}", state=it.state, reason=it.reason,
                                 kept=it.state in KEPT_STATES, format=it.stereo_format, view_order=it.view_order,
                                 view_order_source=info.get("view_order_source"),
                                 view_order_ok=(proc.get("left_view", "right" if it.swapped else "left") == "left")
                                 if has_map else None,
                                 coverage=coverage, score=it.score,
                                 seconds=(proc.get("timings") or {}).get("total"), item_id=it.id))
    return rows


def format_photo_table(rows: Sequence[PhotoRow]) -> str:
    import pandas as pd

    if not rows:
        return ""
    df = pd.DataFrame.from_records([asdict(r) for r in rows])
    shown = pd.DataFrame({"photo": df["photo"], "format": df["format"].fillna("—"), "state": df["state"],
                          "reason": df["reason"].fillna(""),
                          "order": df["view_order"].fillna("—") + df["view_order_ok"].map(
                              {True: " ✓", False: " ✗"}).fillna(""),
                          "coverage": df["coverage"].map(_pct),
                          "score": df["score"].map(lambda s: "—" if pd.isna(s) else f"{s:.2f}"),
                          "s": df["seconds"].map(lambda s: "—" if pd.isna(s) else f"{s:.2f}")})
    kept = int(df["kept"].sum())
    mapped = int(df["coverage"].notna().sum())
    wrong = int((df["view_order_ok"] == False).sum())  # noqa: E712 - pandas
    return (shown.to_string(index=False) + f"\n\nweb photos: {mapped}/{len(df)} got a map, {kept}/{len(df)} kept, "
            f"{wrong} view-order errors (against the files' left-first convention)")


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _read_png(path: Path) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FileNotFoundError(f"cannot read {path}")
    return arr


# ---- tables ----------------------------------------------------------------------------------------
def rows_frame(rows: Iterable[AuditRow]):
    """One pandas row per (scene, packing)."""
    import pandas as pd

    records = []
    for r in rows:
        rec = asdict(r)
        secs = rec.pop("seconds")
        rec.pop("degradation")
        # what the pipeline spent on the pair: its share of ingest and export + process_item's wall time
        # (its "total"; the stages without it when absent); the audit's own scoring is not counted
        process = secs.get("total", sum(v for k, v in secs.items() if k not in ("ingest", "export", "score")))
        rec["seconds"] = secs.get("ingest", 0.0) + secs.get("export", 0.0) + process
        for k in ("flow", "view_order", "sky"):
            rec[f"s_{k}"] = secs.get(k)
        records.append(rec)
    return pd.DataFrame.from_records(records)


def summarize(rows: Sequence[AuditRow]) -> dict[str, Any]:
    """Aggregates over all rows (fractions, not percent; None where nothing to average)."""
    df = rows_frame(rows)
    total = len(df)
    if total == 0:
        return {"total": 0, "kept": 0, "ordinal_error": None, "coverage": None, "view_order_errors": 0}
    mapped = df[df["ordinal_error"].notna() | df["coverage"].notna()]
    kept = df[df["kept"]]
    kept_mapped = kept[kept["coverage"].notna()]
    rejected = mapped[mapped["state"] == "auto_rejected"]
    kept_with_map = mapped[mapped["kept"]]
    tp = int(rejected["bad"].sum())
    fp = int((~rejected["bad"].astype(bool)).sum())
    fn = int(kept_with_map["bad"].sum())
    tn = int((~kept_with_map["bad"].astype(bool)).sum())

    def mean(s) -> float | None:
        s = s.dropna()
        return float(s.mean()) if len(s) else None

    lost = df[~df["kept"]]
    return {
        "total": total,
        "kept": int(len(kept)),
        "ordinal_error": mean(kept_mapped["ordinal_error"]),
        "coverage": mean(kept_mapped["coverage"]),
        "coverage_ceiling": mean(kept_mapped["ceiling"]) if "ceiling" in kept_mapped else None,
        "max_ordinal_error": float(kept_mapped["ordinal_error"].max()) if kept_mapped["ordinal_error"].notna().any() else None,
        "view_order_errors": int((kept_mapped["view_order_ok"] == False).sum()),  # noqa: E712 - pandas
        "view_order_errors_all_maps": int((mapped["view_order_ok"] == False).sum()),  # noqa: E712
        "view_order_uncertain": int((df["view_order"] == "undecided").sum()),
        "format_errors": int((~df["format_ok"]).sum()),
        "lost": {f"{r.scene}/{r.packing}": f"{r.state}:{r.reason}" for r in lost.itertuples()},
        "triage": {"rejected_bad": tp, "rejected_good": fp, "kept_bad": fn, "kept_good": tn,
                   "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
                   "bad_error": BAD_ERROR, "bad_coverage": BAD_COVERAGE},
        "seconds_per_pair": float(df["seconds"].mean()),
    }


def _pct(x: Any) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f}%"


def shown_frame(rows: Sequence[AuditRow]):
    """The per-row table people read (printed and in report.html): percentages, marks, no NaN."""
    import pandas as pd

    df = rows_frame(rows)
    return pd.DataFrame({
        "scene": df["scene"], "packing": df["packing"], "format": df["format"].fillna("—") +
        df["format_ok"].map({True: "", False: " ✗"}),
        "state": df["state"], "reason": df["reason"].fillna(""),
        "ord.err": df["ordinal_error"].map(_pct), "err≠": df["error_neq"].map(_pct),
        "inverted": df["inverted"].map(_pct),
        "coverage": df["coverage"].map(_pct),
        "ceiling": df["ceiling"].map(_pct) if "ceiling" in df else "—",
        "order": df["view_order"].fillna("—") + df["view_order_ok"].map({True: " ✓", False: " ✗"}).fillna(""),
        "score": df["score"].map(lambda s: "—" if pd.isna(s) else f"{s:.2f}"),
        "truth": df["bad"].map({True: "bad", False: "good"}).fillna("—"),
        "s": df["seconds"].map(lambda s: f"{s:.2f}"),
    })


def format_table(rows: Sequence[AuditRow], summary: dict[str, Any]) -> str:
    """The printed report: per-row table, then aggregates and the triage truth table."""
    import pandas as pd

    if not rows:
        return "(no scenes with GT)"

    shown = shown_frame(rows)
    tri = summary["triage"]
    confusion = pd.DataFrame({"bad": [tri["rejected_bad"], tri["kept_bad"]],
                              "good": [tri["rejected_good"], tri["kept_good"]]}, index=["auto-rejected", "kept"])
    lines = [shown.to_string(index=False), "",
             f"pairs kept: {summary['kept']}/{summary['total']}   mean ordinal error of kept maps: "
             f"{_pct(summary['ordinal_error'])} (max {_pct(summary['max_ordinal_error'])})   "
             f"mean coverage of kept maps: {_pct(summary['coverage'])} (ceiling {_pct(summary.get('coverage_ceiling'))})",
             f"view-order errors among kept maps: {summary['view_order_errors']} "
             f"(all maps: {summary['view_order_errors_all_maps']}); undecided orders: {summary['view_order_uncertain']}; "
             f"format errors: {summary['format_errors']}; mean seconds per pair: {summary['seconds_per_pair']:.2f}",
             "", f"triage against truth (bad = error > {BAD_ERROR:.0%} or coverage < {BAD_COVERAGE:.0%}):",
             confusion.to_string(),
             f"auto-reject precision: {_pct(tri['precision'])}   recall: {_pct(tri['recall'])}"]
    if summary["lost"]:
        lines += ["", "not kept: " + ", ".join(f"{k} ({v})" for k, v in summary["lost"].items())]
    return "\n".join(lines)


def to_json(rows: Sequence[AuditRow], summary: dict[str, Any], config: dict | None = None) -> dict[str, Any]:
    scenes = []
    for r in rows:
        rec = asdict(r)
        rec["seconds"] = {k: round(v, 4) for k, v in rec["seconds"].items()}
        scenes.append(rec)
    return {"scenes": scenes, "summary": summary, "config": config or {}}


# ---- HTML report -----------------------------------------------------------------------------------
def _depth_colour(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Inverse depth in turbo (near = red), unknown grey: one look for produced and GT maps."""
    return colorize_depth(np.asarray(depth, np.float64), valid=valid, sky=np.zeros(valid.shape, bool), inverse=True,
                          percentiles=(1, 99), invalid_rgb=(90, 90, 90))


def _error_colour(disagree: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Where labels are wrong: green (all neighbour pairs right) .. red (all wrong) over the dimmed image;
    no colour where nothing was compared."""
    grey = (image.mean(axis=2, keepdims=True) * 0.35).repeat(3, axis=2)
    known = np.isfinite(disagree)
    e = np.clip(np.nan_to_num(disagree), 0, 1)
    colour = np.stack([255 * np.clip(2 * e, 0, 1), 255 * np.clip(2 * (1 - e), 0, 1), np.zeros_like(e)], axis=-1)
    out = grey.copy()
    out[known] = 0.3 * grey[known] + 0.7 * colour[known]
    return out.astype(np.uint8)


def write_report(out_dir: str | Path, rows: Sequence[AuditRow], summary: dict[str, Any],
                 images: dict[str, dict], *, title: str = "redweb label audit", config: dict | None = None) -> Path:
    """``out_dir/report.html`` with the tables and, per scene and packing, image | produced depth |
    GT depth | where the labels are wrong. Pictures go to ``out_dir/img/``."""
    import html

    import cv2

    out_dir = Path(out_dir)
    img_dir = out_dir / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    blocks = []
    for r in rows:
        ims = images.get(r.item_id)
        cells = []
        if ims:
            rd, mask = ims["rd"].astype(np.float64), ims["mask"] > 127
            sky = ims["rd"] == SKY_VALUE
            produced = _depth_colour(rd, mask & ~sky)
            produced[sky] = (70, 110, 200)
            gt = ims["gt_depth"]
            gtc = _depth_colour(np.nan_to_num(gt, nan=1.0), np.isfinite(gt))
            err = _error_colour(ims["disagreement"], ims["image"])
            for tag, pic in (("image", ims["image"]), ("depth", produced), ("gt", gtc), ("wrong", err)):
                name = f"{r.scene}__{r.packing}_{tag}.jpg"
                small = pic
                if pic.shape[1] > 360:
                    f = 360 / pic.shape[1]
                    small = cv2.resize(pic, (360, max(1, int(round(pic.shape[0] * f)))), interpolation=cv2.INTER_AREA)
                cv2.imwrite(str(img_dir / name), cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR),
                            [cv2.IMWRITE_JPEG_QUALITY, 85])
                cells.append(f'<figure><img src="img/{html.escape(name)}" loading="lazy"><figcaption>{tag}</figcaption></figure>')
        else:
            cells.append(f"<p class=lost>no map: {html.escape(r.state)} ({html.escape(str(r.reason))})</p>")
        order = "—" if r.view_order_ok is None else ("right" if r.view_order_ok else "WRONG")
        head = (f"{html.escape(r.scene)} · {r.packing} — {html.escape(r.state)}"
                f"{' (' + html.escape(r.reason) + ')' if r.reason else ''} · ordinal error {_pct(r.ordinal_error)} "
                f"(err≠ {_pct(r.error_neq)}) · "
                f"coverage {_pct(r.coverage)} · view order {order} · format {html.escape(str(r.format))}")
        cls = "none" if r.bad is None else ("bad" if r.bad else "good")
        blocks.append(f'<section class="{cls}"><h3>{head}</h3><div class=row>{"".join(cells)}</div></section>')
    import pandas as pd

    table = shown_frame(rows).to_html(index=False, classes="t")
    tri = summary["triage"]
    confusion = pd.DataFrame({"bad": [tri["rejected_bad"], tri["kept_bad"]],
                              "good": [tri["rejected_good"], tri["kept_good"]]},
                             index=["auto-rejected", "kept"]).to_html(classes="t")
    lost = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in summary["lost"].items())
    r0, r1 = REPORT_RADII
    legend = ("Columns: ord.err = share of random pixel pairs whose ordinal label (σ = 2 % on the depth ratio) "
              "differs from GT, ties counting as wrong (pairs a stepped GT's precision cannot decide are left out); err≠ = the same over the pairs GT orders; inverted = pairs "
              "GT orders one way and the map the other; coverage = share of the view's GT pixels with a reliable "
              "label; ceiling = share of them the other packed view shows at all (inside its crop, not occluded): "
              "no correspondence can label more; order ✓/✗ = whether the exported image really is the left eye; truth = bad when ord.err > "
              f"{BAD_ERROR:.0%} or coverage < {BAD_COVERAGE:.0%}. Pictures: depth and gt in turbo colours of inverse "
              "depth (red = near, blue = far; each scaled to its own 1-99 % range), grey = no reliable label / no "
              f"GT, blue-grey = sky; wrong = per pixel, the share of its neighbour pairs ({r0} and {r1} px, 8 "
              "directions) that GT orders and the map inverts or calls equal: green = right, yellow = half, "
              "red = wrong, dim = not compared. Left bar: red = bad map, green = good, grey = no map.")
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body{{font:14px system-ui,sans-serif;margin:20px;color:#222}} table.t{{border-collapse:collapse;font-size:12px}}
table.t td,table.t th{{border:1px solid #ccc;padding:2px 6px;text-align:right}} .row{{display:flex;gap:6px;flex-wrap:wrap}}
figure{{margin:0}} figure img{{width:300px;display:block}} figcaption{{font-size:11px;color:#666}}
section{{border-left:6px solid #3a3;padding:4px 10px;margin:12px 0}} section.bad{{border-color:#c33}}
section.none{{border-color:#aaa}} .legend{{max-width:1100px;color:#444}} .sum td{{vertical-align:top;padding-right:24px}}
h3{{font-size:14px;margin:4px 0}} .lost{{color:#a33}} pre{{background:#f6f6f6;padding:8px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>kept <b>{summary['kept']}/{summary['total']}</b> · mean ordinal error of kept maps <b>{_pct(summary['ordinal_error'])}</b>
(max {_pct(summary['max_ordinal_error'])}) · mean coverage <b>{_pct(summary['coverage'])}</b>
(ceiling {_pct(summary.get('coverage_ceiling'))}) ·
view-order errors among kept maps <b>{summary['view_order_errors']}</b> · format errors {summary['format_errors']} ·
auto-reject precision {_pct(tri['precision'])}, recall {_pct(tri['recall'])}</p>
<table class=sum><tr><td><b>triage against truth</b>{confusion}</td>
<td><b>not kept</b><ul>{lost or "<li>none</li>"}</ul></td></tr></table>
<p class=legend>{html.escape(legend)}</p>
{table}
<h2>Maps</h2>
{''.join(blocks)}
<h2>Configuration</h2><p class=legend>The configuration measured, as given; the audit itself always runs ingest
with near-duplicate detection off (the packings of one scene are near-duplicates by design).</p><pre>{html.escape(json.dumps(config or {}, indent=1, default=str))}</pre>
</body></html>"""
    path = out_dir / "report.html"
    path.write_text(doc)
    return path
