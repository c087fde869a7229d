"""One stereo pair end to end: flow both ways, consistency, alignment, view order, sky, crop, depth, triage.

``process_item`` is a plain function (no Prefect): it reads the item's views (state ``split``, see
INTERFACES.md), writes ``maps/<id>/{image.jpg, depth.png, mask.png, sky.png, preview.jpg}`` and
records paths, crop box, quality figures, score, view order and the pipeline version in the
catalog, then moves the item to ``processed`` and on to its triage state. Errors become ``failed``
with a reason; ``process_batch`` never lets one pair stop the others.

Map semantics (DESIGN.md contract): depth.png uint16, larger = farther, sky = 65535 (tasks/labels/depth.py
documents how disparity becomes positive, comparable depth); mask.png 255 where the label is
reliable (consistent correspondence, or sky); sky.png 255 = sky. All maps have the size of
image.jpg (the cropped left view, at the processing resolution).
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import cv2
import numpy as np

from core.layout import DataRoot
from core.rules import UNMEASURED_HATCH_RGB, UNMEASURED_RGB, colorize_depth
from tasks.catalog.catalog import PIPELINE_VERSION, Catalog, State, TransitionError
from tasks.labels import crop as crop_mod
from tasks.labels.consistency import consistency_mask, local_range, warp_by_flow
from tasks.labels.correspondence import FlowBackend, build_backend
from tasks.labels.depth import (disparity_to_depth, encode_depth, fill_unreliable, occlusion_votes,
                                smooth_disparity)
from tasks.labels.rectify import (PreAlignment, apply_prealignment, coarse_flows, fit_alignment, fit_prealignment,
                                  needs_prealignment, rectified_disparity)
from tasks.labels.settings import ProcessConfig
from tasks.labels.sky import SkyBackend, build_sky, detect_sky
from tasks.labels.triage import quality_figures, triage
from tasks.labels.view_order import OrderDecision, combine, ground_cue, keystone_cue, occlusion_cue, order_fields

log = logging.getLogger(__name__)

PROCESSABLE = (State.SPLIT, State.PROCESSED)  # PROCESSED: interrupted between the two transitions
REPROCESSABLE = (State.PROCESSED, State.PENDING_REVIEW, State.AUTO_REJECTED, State.AUTO_ACCEPTED)


class Stopwatch:
    """Wall and CPU seconds per named step (``with clock("flow"): ...``), each step's own: a step inside
    another (a second flow run inside the view-order step) is counted once, in the inner step. CPU is the
    process's, every thread included: a step's own while one pair runs at a time (the benchmark); the
    process flow, which runs pairs side by side in threads, reads only the wall times."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stack: list[list[float]] = []  # per open step: [wall, cpu] spent in steps inside it

    @contextlib.contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        t, c = time.perf_counter(), time.process_time()
        self._stack.append([0.0, 0.0])
        try:
            yield
        finally:
            inner_wall, inner_cpu = self._stack.pop()
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            self.wall[step] = self.wall.get(step, 0.0) + wall - inner_wall
            self.cpu[step] = self.cpu.get(step, 0.0) + cpu - inner_cpu
            if self._stack:
                self._stack[-1][0] += wall
                self._stack[-1][1] += cpu


@dataclass
class PairResult:
    """Everything the stage computes for one pair, at the processing resolution, cropped."""

    image: np.ndarray  # (h, w, 3) uint8 RGB, the left-eye view
    depth: np.ndarray  # (h, w) uint16
    reliable: np.ndarray  # (h, w) bool: consistent or sky
    sky: np.ndarray  # (h, w) bool
    box: tuple[int, int, int, int]  # crop box on the processed (uncropped) left view
    processed_size: tuple[int, int]  # (width, height) before cropping
    swapped_views: bool  # True when the data said the given left/right were the wrong way round
    view_order: str
    quality: dict
    timings: dict[str, float] = field(default_factory=dict)  # wall seconds per step
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per step (Stopwatch: every thread)
    info: dict = field(default_factory=dict)
    disparity: np.ndarray | None = None  # (h, w) float32, larger = nearer (for benchmarks)


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = max_side / max(h, w)
    if s >= 1:
        return image
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class Exposure:
    """Per-channel ``gain * right + offset`` that brings the right view onto the left view's exposure,
    fitted where the flow matches (``fit_exposure``)."""

    gain: tuple[float, ...]
    offset: tuple[float, ...]

    @classmethod
    def identity(cls, channels: int) -> "Exposure":
        return cls((1.0,) * channels, (0.0,) * channels)

    def differs(self, gain_tolerance: float = 0.02, offset_tolerance: float = 2.0) -> bool:
        """Whether the views differ in exposure by more than JPEG's own noise (2 % gain or 2 grey levels)."""
        return self.differs_from(Exposure.identity(len(self.gain)), gain_tolerance, offset_tolerance)

    def differs_from(self, other: "Exposure", gain_tolerance: float, offset_tolerance: float) -> bool:
        return bool(np.any(np.abs(np.asarray(self.gain) / np.asarray(other.gain) - 1.0) > gain_tolerance)
                    or np.any(np.abs(np.asarray(self.offset) - np.asarray(other.offset)) > offset_tolerance))

    def apply(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) image -> float32 image at the reference exposure."""
        return image.astype(np.float32) * np.float32(self.gain) + np.float32(self.offset)

    def as_dict(self) -> dict[str, list[float]]:
        return {"gain": [round(g, 4) for g in self.gain], "offset": [round(o, 2) for o in self.offset]}


def fit_exposure(image: np.ndarray, reference: np.ndarray, mask: np.ndarray, *, max_samples: int = 20_000,
                 seed: int = 0) -> Exposure | None:
    """``Exposure`` mapping ``image`` (H, W, C) onto ``reference`` at ``mask``'s pixels (the two show the
    same points there): least squares per channel, refitted three times without the residuals beyond
    3 MAD of the previous fit (occlusion edges, specularities). None when fewer than 100 pixels are
    given or a gain is implausible (outside [1/3, 3]: the "matches" are not matches)."""
    ys, xs = np.nonzero(mask)
    if xs.size < 100:
        return None
    if xs.size > max_samples:
        pick = np.random.default_rng(seed).choice(xs.size, max_samples, replace=False)
        ys, xs = ys[pick], xs[pick]
    gains, offsets = [], []
    for c in range(image.shape[2]):
        a, b = image[ys, xs, c].astype(np.float64), reference[ys, xs, c].astype(np.float64)
        keep = np.ones(a.size, bool)
        for _ in range(4):
            # least squares: the map that leaves the smallest differences, which is what the
            # photometric check and the matcher's brightness constancy see (a ratio of spreads, unbiased
            # for the true gain under noise, left larger differences: stereo card 57 -> 48 % coverage)
            A = np.stack([a[keep], np.ones(int(keep.sum()))], axis=1)
            (g, o), *_ = np.linalg.lstsq(A, b[keep], rcond=None)
            r = np.abs(g * a + o - b)
            keep = r <= 3.0 * max(float(np.median(r)) / 0.6745, 1.0)
        if not 1 / 3 <= g <= 3:
            return None
        gains.append(float(g))
        offsets.append(float(o))
    return Exposure(tuple(gains), tuple(offsets))


def coarse_exposure(left: np.ndarray, right: np.ndarray, *, work_width: int = 320) -> Exposure | None:
    """The right view's exposure against the left one from a cheap look (DIS "ultrafast" both ways at
    ``work_width`` px, about 15 ms): the colours of the consistent pixels of the two small views."""
    h, w = left.shape[:2]
    s = min(1.0, work_width / w)
    a, b = ((cv2.resize(v, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else v)
            for v in (left, right))
    fwd, _, ok = coarse_flows(*(cv2.cvtColor(np.ascontiguousarray(v), cv2.COLOR_RGB2GRAY) for v in (a, b)))
    warped, inside = warp_by_flow(b.astype(np.float32), fwd)
    return fit_exposure(warped, a.astype(np.float32), ok & inside)


def _reliable(left: np.ndarray, right: np.ndarray, fwd: np.ndarray, bwd: np.ndarray, *,
              settings: ProcessConfig) -> tuple[np.ndarray, float, Exposure | None]:
    """Consistency mask, its raw share before the extra checks, and the right view's exposure against
    the left one (fitted on the forward-backward consistent pixels). ``settings``: fb_alpha, fb_beta,
    photometric_max, discontinuity_max."""
    photometric_max, discontinuity_max = settings.photometric_max, settings.discontinuity_max
    consistent = consistency_mask(fwd, bwd, alpha=settings.fb_alpha, beta=settings.fb_beta)
    raw = float(consistent.mean())
    warped, _ = warp_by_flow(right.astype(np.float32), fwd)
    exposure = fit_exposure(warped, left, consistent)
    if photometric_max is not None:
        # fb-consistent yet wrong: smooth flows drag the near surface's motion over the far one
        # next to it (edge fattening); the warped colour then differs. Compared after exposure
        # compensation: web pairs from two cameras (or the two halves of a faded stereo card) differ
        # in gain and offset, which would otherwise reject every pixel of a good pair
        if exposure is not None:
            warped = exposure.apply(warped)
        diff = np.abs(cv2.blur(warped, (3, 3)) - cv2.blur(left.astype(np.float32), (3, 3))).mean(axis=2)
        consistent &= diff < photometric_max
    if discontinuity_max is not None:
        # the same fattening, seen in the flow: distrust a band where the disparity jumps
        consistent &= local_range(fwd[..., 0]) < discontinuity_max
    return consistent, raw, exposure


def _analyse(backend: FlowBackend, left: np.ndarray, right: np.ndarray, *, settings: ProcessConfig,
             clock: Stopwatch | None = None) -> dict[str, Any]:
    """Flow both ways and everything that follows from it for one view order.

    When a cheap first look (``coarse_exposure``) shows the views at different exposures
    (``Exposure.differs``: two cameras, the faded half of a stereo card, a 4-grey-level offset between
    ETH3D's two cameras), the matcher sees the right view brought to the left one's exposure, so that
    brightness constancy (DIS and its variational refinement) holds. Only what the matcher sees
    changes, never the exported view."""
    clock = clock or Stopwatch()

    def attempt(seen: Exposure | None) -> dict[str, Any]:
        """Flow and checks with the matcher seeing the right view at exposure ``seen``."""
        with clock("flow"):
            compensated = seen is not None and seen.differs()
            matched = np.clip(np.rint(seen.apply(right)), 0, 255).astype(np.uint8) if compensated else right
            fwd, bwd = backend.flow([left, matched], [matched, left])
        with clock("consistency"):
            return _checked(fwd, bwd, compensated, seen)

    def _checked(fwd: np.ndarray, bwd: np.ndarray, compensated: bool, seen: Exposure | None) -> dict[str, Any]:
        r = dict(finite=bool(np.isfinite(fwd).all() and np.isfinite(bwd).all()),
                 fwd=np.nan_to_num(fwd, nan=0.0, posinf=0.0, neginf=0.0),
                 bwd=np.nan_to_num(bwd, nan=0.0, posinf=0.0, neginf=0.0),
                 mode=getattr(backend, "last_mode", None),  # what a combining backend did with this pair
                 compensated=compensated, seen=seen if compensated else Exposure.identity(right.shape[2]))
        r["consistent"], r["raw_consistency"], r["exposure"] = _reliable(left, right, r["fwd"], r["bwd"],
                                                                         settings=settings)
        return r

    with clock("exposure"):
        seen = coarse_exposure(left, right)
    r = attempt(seen)
    # the coarse look can be far off where little of the small views matches (scanned cards with
    # borders, strong vignetting): when the fit on the full flow's matches disagrees with what the
    # matcher saw by more than 5 %, match once more at that exposure
    rematched = r["exposure"] is not None and r["exposure"].differs_from(r["seen"], 0.05, 5.0)
    if rematched:
        r = attempt(r["exposure"])
    fwd, bwd, consistent, exposure = r["fwd"], r["bwd"], r["consistent"], r["exposure"]
    with clock("consistency"):
        alignment = fit_alignment(fwd, consistent)
        disparity, vres = rectified_disparity(fwd, alignment)
    return dict(fwd=fwd, bwd=bwd, consistent=consistent, raw_consistency=r["raw_consistency"],
                finite=r["finite"], alignment=alignment, disparity=disparity, vres=vres, mode=r["mode"],
                exposure={**exposure.as_dict(), "compensated": r["compensated"], "rematched": rematched}
                if exposure is not None else None)


def _flow_to_given_right(fwd: np.ndarray, pre: PreAlignment | None) -> np.ndarray:
    """The flow to the right view as given, from the flow to its pre-aligned version: x -> M (x + f) - x.
    A homography pre-alignment removes a converged rig's keystone from the rows; the keystone cue must
    still see it (it is the geometry of the pair, and a view-order cue)."""
    if pre is None or not pre.applied or pre.projective == (0.0, 0.0):
        return fwd
    h, w = fwd.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    xe, ye = gx + fwd[..., 0], gy + fwd[..., 1]
    m = pre.homography()
    den = m[2, 0] * xe + m[2, 1] * ye + m[2, 2]
    xo = (m[0, 0] * xe + m[0, 1] * ye + m[0, 2]) / den
    yo = (m[1, 0] * xe + m[1, 1] * ye + m[1, 2]) / den
    return np.stack([xo - gx, yo - gy], axis=-1).astype(np.float32)


def decide_order(left: np.ndarray, right: np.ndarray, a: dict[str, Any], *, settings: ProcessConfig,
                 known_order: bool = False, pre: PreAlignment | None = None) -> OrderDecision:
    """The view-order cues of tasks/labels/view_order.py on one analysed pair (``_analyse``'s output).

    ``settings.view_order_min_margin`` is the evidence ``combine`` needs to decide (the margin the
    review panel shows); ``settings.view_order_min_votes`` the occlusion runs a vote needs. The second
    view's occlusions (about half the cost) are only counted when the first view's occlusions with the
    priors do not already decide with twice that evidence: more evidence is gathered only where it can
    change the outcome. The second view's consistency check uses the same fb_alpha / fb_beta as the first.
    """
    decide, min_votes = settings.view_order_min_margin, settings.view_order_min_votes
    par, cross = occlusion_votes(left, a["disparity"], a["consistent"])
    priors = {"ground": ground_cue(a["disparity"], a["consistent"]),
              "keystone": keystone_cue(_flow_to_given_right(a["fwd"], pre), a["consistent"])}
    first = combine({"occlusion": occlusion_cue(par, cross, min_votes=min_votes), **priors},
                    format_prior=known_order, decide=decide)
    if not known_order and not first.uncertain and abs(first.evidence) >= 2 * decide:
        return first  # (a format convention is only ever weighed against all the evidence)
    # the second view's occlusions too: a parallel pair's lie right of near objects there
    consistent_b = consistency_mask(a["bwd"], a["fwd"], alpha=settings.fb_alpha, beta=settings.fb_beta)
    disparity_b, _ = rectified_disparity(a["bwd"], fit_alignment(a["bwd"], consistent_b))
    par_b, cross_b = occlusion_votes(right, disparity_b, consistent_b)
    cues = {"occlusion": occlusion_cue(par + cross_b, cross + par_b, min_votes=min_votes), **priors}
    return combine(cues, format_prior=known_order, decide=decide)


def _swap_views(left: np.ndarray, right: np.ndarray, a: dict[str, Any], pre: PreAlignment,
                analyse: Callable[[np.ndarray, np.ndarray], dict[str, Any]],
                settings: ProcessConfig) -> tuple[np.ndarray, np.ndarray, dict[str, Any], PreAlignment]:
    """The given "left" is the right eye: (left, right, analysis, pre-alignment) with the views swapped."""
    left, right = right, left
    if pre.applied:
        # the warped view must stay the right eye (the left eye is exported unwarped): align the
        # other way round and run the flow again (only for swapped pairs that needed pre-alignment)
        pre = fit_prealignment(left, right)
        return left, right, analyse(left, apply_prealignment(right, pre)), pre
    # both flows are reused, only the per-view products are recomputed (no second flow run)
    fwd, bwd = a["bwd"], a["fwd"]
    consistent, a_raw, _ = _reliable(left, right, fwd, bwd, settings=settings)
    alignment = fit_alignment(fwd, consistent)
    disparity, vres = rectified_disparity(fwd, alignment)
    a.update(fwd=fwd, bwd=bwd, consistent=consistent, alignment=alignment, disparity=disparity, vres=vres,
             raw_consistency=a_raw)
    return left, right, a, pre


def _crop_box(left: np.ndarray, labelled: np.ndarray) -> tuple[int, int, int, int]:
    """The crop: the image content (no black frame) where the labels are; the whole view when that
    leaves nothing usable (triage then rejects)."""
    h, w = left.shape[:2]
    box = crop_mod.intersect(crop_mod.content_box(left), crop_mod.matched_box(labelled))
    return box if box[2] - box[0] >= 8 and box[3] - box[1] >= 8 else (0, 0, w, h)


def process_pair(left: np.ndarray, right: np.ndarray, backend: FlowBackend, sky_backend: SkyBackend, *,
                 settings: ProcessConfig | None = None, known_order: bool = False, order: str = "auto") -> PairResult:
    """Left/right (H, W, 3) uint8 RGB views of one size -> cropped maps and quality figures.

    ``settings``: the ``process`` section (None: its defaults); every threshold is read from it.

    ``known_order``: the file format fixes the order (MPO, JPS): a strong prior the data may
    overturn only with overwhelming, agreeing evidence (tasks/labels/view_order.py; logged).
    ``settings.prealign``: first bring the right view onto the left view's rows with a similarity (and, when
    the rows are bent, a homography) fitted to keypoint matches when it is rotated, scaled, offset,
    keystoned or shifted by a wide baseline (tasks/labels/rectify.py ``fit_prealignment``; the left view is
    never warped).
    ``order``: ``"auto"`` lets the data decide; ``"given"`` keeps the views as given (a reviewer
    fixed the order: the votes are still computed and recorded, never acted on).
    """
    if order not in ("auto", "given"):
        raise ValueError(f"order must be 'auto' or 'given', got {order!r}")
    s = settings or ProcessConfig()
    clock = Stopwatch()
    with clock("prealign"):
        pre = fit_prealignment(left, right) if s.prealign and needs_prealignment(left, right) else PreAlignment()
    analyse = functools.partial(_analyse, backend, settings=s, clock=clock)
    a = analyse(left, apply_prealignment(right, pre))

    with clock("view_order"):
        decision = decide_order(left, apply_prealignment(right, pre), a, settings=s, known_order=known_order,
                                pre=pre)  # the view the flows were computed on
        if order == "given":  # a reviewer fixed the order: the cues are recorded, never acted on
            decision = OrderDecision("parallel", False, "reviewer", decision.evidence, decision.cues)
    swapped_views = decision.swapped
    if swapped_views:
        with clock("view_order"):
            left, right, a, pre = _swap_views(left, right, a, pre, analyse, s)

    with clock("sky"):
        _, sky = detect_sky(sky_backend, left, a["consistent"], crf=s.crf, crf_iterations=s.crf_iterations,
                            crf_max_side=s.crf_max_side)

    with clock("crop"):
        h, w = left.shape[:2]
        box = _crop_box(left, a["consistent"] | sky)
        consistent, sky_c, disparity, vres = (crop_mod.crop(x, box) for x in (a["consistent"], sky,
                                                                               a["disparity"], a["vres"]))
        image = np.ascontiguousarray(crop_mod.crop(left, box))

    # the share of matched pixels off their row is a quality figure; whether the pair is misaligned is
    # judged from the keypoints (tasks/labels/triage.py). Masking those pixels out was measured: on the label
    # audit it cost 2 points of coverage (Cloth3: 86 -> 79 %) and changed no ordinal error, so they stay.
    matched = consistent & ~sky_c
    misaligned_share = float((matched & (np.abs(vres) > s.vertical_tolerance_px)).sum()
                             / max(int(matched.sum()), 1))

    with clock("depth"):
        reliable_depth = consistent & ~sky_c
        disparity = smooth_disparity(disparity, reliable_depth, sigma_px=s.disparity_smooth_px)
        g, stats = disparity_to_depth(disparity, reliable_depth, range_ratio=s.depth_range_ratio,
                                      min_far_margin_px=s.depth_min_far_margin_px)
        depth = encode_depth(g, sky_c)
        # a loader without masks must not read unreliable pixels as "nearest": fill them from the measured
        # ones around them (measured values and the mask are untouched)
        depth = fill_unreliable(depth, reliable_depth, sky_c, image, colour_sigma=s.depth_fill_colour_sigma)

    view_order = "undecided" if decision.uncertain else decision.order
    q = quality_figures(consistent=consistent, sky=sky_c, vertical_residual=vres, d_far=stats.d_far,
                        d_near=stats.d_near, flow_finite=a["finite"], raw_consistency=a["raw_consistency"],
                        crop_fraction=(box[2] - box[0]) * (box[3] - box[1]) / float(w * h),
                        view_order_margin=decision.evidence, view_order=view_order,
                        vertical_tolerance_px=s.vertical_tolerance_px)
    q["misaligned_fraction"] = misaligned_share
    if s.prealign and pre.inliers < 30 and misaligned_share > 0.15:
        # many pixels off their row and no keypoints looked at yet: let them judge the geometry
        with clock("prealign"):
            pre_check = fit_prealignment(left, apply_prealignment(right, pre))
        if pre_check.inliers >= 30:
            pre = dataclasses.replace(pre, matches=pre_check.matches, inliers=pre_check.inliers,
                                      residual_px=pre_check.residual_px)
    q["keypoint_residual_px"] = round(pre.residual_px, 4) if pre.inliers >= 30 else None
    q["known_order"] = bool(known_order)
    q["view_order_uncertain"] = bool(decision.uncertain)
    q["view_order_source"] = decision.source
    info = {"alignment": a["alignment"].as_dict(), "view_order_votes": decision.as_dict(), "depth": stats.as_dict(),
            "prealign": pre.as_dict(),
            "correspondence": {"backend": getattr(backend, "name", ""), "mode": a.get("mode")},
            "exposure": a.get("exposure")}
    return PairResult(image=image, depth=depth, reliable=consistent | sky_c, sky=sky_c, box=box,
                      processed_size=(w, h), swapped_views=swapped_views, view_order=view_order, quality=q,
                      timings=clock.wall, cpu=clock.cpu, info=info, disparity=disparity)


def colourize(image: np.ndarray, depth: np.ndarray, reliable: np.ndarray, sky: np.ndarray) -> np.ndarray:
    """Reviewer preview, (h, 2w, 3) uint8 RGB: the image with sky tinted blue | depth (turbo, near = red)
    scaled over the reliable non-sky pixels only, unreliable pixels hatched grey (no colour of the scale:
    their values were never measured, and showing them in the scale's colours reads as depth)."""
    # colour by inverse depth: spreads the near range
    turbo = colorize_depth(depth, valid=reliable, sky=sky, inverse=True, percentiles=(1, 99), sky_rgb=(40, 40, 90),
                           invalid_rgb=UNMEASURED_RGB, invalid_hatch_rgb=UNMEASURED_HATCH_RGB)
    left = image.copy()
    left[sky] = (0.5 * left[sky] + 0.5 * np.array([60, 120, 255])).astype(np.uint8)
    return np.hstack([left, turbo])


def _write_png(path: Path, array: np.ndarray) -> None:
    if not cv2.imwrite(str(path), array):
        raise OSError(f"cannot write {path}")


def write_maps(data_root: Path, item_id: str, result: PairResult, *, jpeg_quality: int) -> dict[str, str]:
    """Write the five map files; returns the catalog path fields (relative to the data root).
    ``jpeg_quality``: of image.jpg (``ProcessConfig.jpeg_quality``)."""
    rel = DataRoot.maps_rel(item_id)
    out = Path(data_root) / rel
    out.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(result.image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(out / "image.jpg"), bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
        raise OSError(f"cannot write {out / 'image.jpg'}")
    _write_png(out / "depth.png", result.depth)
    _write_png(out / "mask.png", result.reliable.astype(np.uint8) * 255)
    _write_png(out / "sky.png", result.sky.astype(np.uint8) * 255)
    preview = colourize(result.image, result.depth, result.reliable, result.sky)
    cv2.imwrite(str(out / "preview.jpg"), cv2.cvtColor(preview, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    return {f"{name}_path": str(rel / file) for name, file in
            (("image", "image.jpg"), ("depth", "depth.png"), ("mask", "mask.png"), ("sky", "sky.png"),
             ("preview", "preview.jpg"))}


def select_items(catalog: Catalog, *, reprocess: bool = False, limit: int | None = None,
                 ids: Iterable[str] | None = None) -> list[str]:
    """Ids to process: ``split`` ones (and interrupted ``processed`` ones); with ``reprocess``, also
    items not yet reviewed by a person that an older PIPELINE_VERSION made."""
    if ids is not None:
        return list(ids)[:limit] if limit else list(ids)
    chosen = catalog.ids(*PROCESSABLE)
    if reprocess:
        old = [i.id for i in catalog.items(catalog.ids(*REPROCESSABLE)) if i.pipeline_version != PIPELINE_VERSION]
        chosen += [i for i in old if i not in set(chosen)]
    return chosen[:limit] if limit else chosen


def left_eye_origin(info: dict, eye_path: str | None, view_key: str) -> dict[str, Any]:
    """Where the stored view file ``eye_path`` (the one processed as the left eye) lies in the source file:
    {"frame", "box" (None: the whole stored view), "exact"}. From ingest's ``view_sources`` (keyed by file,
    so swaps by this stage or a reviewer cannot mix them up); items ingested before it fall back on the
    eye-keyed ``views`` / ``view_frames`` (``view_key``: which of them the left eye is)."""
    sources = info.get("view_sources") or {}
    name = Path(eye_path).name if eye_path else None
    if name in sources:
        src = sources[name]
        return {"frame": int(src.get("frame", 0)), "box": src.get("box"), "exact": bool(src.get("exact", True))}
    views = info.get("views") or {}
    return {"frame": int((info.get("view_frames") or {}).get(view_key, 0)), "box": views.get(view_key),
            "exact": True}


def process_item(catalog: Catalog, item_id: str, data_root: str | Path, *, backend: FlowBackend,
                 sky_backend: SkyBackend, settings: ProcessConfig | None = None, reprocess: bool = False,
                 order: str = "auto") -> str:
    """Process one item; returns its new state (or its unchanged state when there was nothing to do).

    ``settings``: the ``process`` section (None: its defaults): processing size, pair options, triage
    thresholds, JPEG quality. ``order="given"``: keep the stored left/right as they are (after a
    reviewer's flip).
    """
    data_root = Path(data_root)
    settings = settings or ProcessConfig()
    item = catalog.get(item_id)
    if item is None:
        raise KeyError(item_id)
    state = State(item.state)
    allowed = set(PROCESSABLE) | (set(REPROCESSABLE) if reprocess else set())
    if state not in allowed or (state in REPROCESSABLE and state != State.PROCESSED
                                and item.pipeline_version == PIPELINE_VERSION):
        return state.value
    if not item.left_path or not item.right_path:
        return catalog.fail(item_id, "source_missing", "no left_path/right_path", expect=[state]).state
    try:
        left = read_rgb(data_root / item.left_path)
        right = read_rgb(data_root / item.right_path)
    except FileNotFoundError as exc:
        return catalog.fail(item_id, "source_missing", str(exc), expect=[state]).state
    if left.shape != right.shape:
        return catalog.fail(item_id, "process_error", f"views differ in size: {left.shape} vs {right.shape}",
                            expect=[state]).state
    stored = (left.shape[1], left.shape[0])
    t0 = time.perf_counter()
    left, right = downscale(left, settings.max_side), downscale(right, settings.max_side)
    # the file format's convention (ingest: MPO frame 0 = left, JPS right-first already undone)
    known_order = item.stereo_format in ("mpo", "jps")
    result = process_pair(left, right, backend, sky_backend, settings=settings, known_order=known_order, order=order)

    order_update = order_fields(swapped=bool(item.swapped), left_path=item.left_path, right_path=item.right_path,
                                swap=result.swapped_views)
    view_key = "right" if result.swapped_views else "left"  # the source region the left eye came from
    eye_path = item.right_path if result.swapped_views else item.left_path
    origin = left_eye_origin(item.info or {}, eye_path, view_key)
    rel_box, abs_box = crop_mod.box_to_source(result.box, result.processed_size, origin["box"], stored)
    source_box = crop_mod.exact_box_in_source(result.box, result.processed_size, origin["box"] or
                                              (0, 0, *stored))
    source = result.quality["view_order_source"]
    if source == "format":
        view_order = item.view_order or item.stereo_format
    elif result.quality["view_order_uncertain"]:
        view_order = "undecided"
    else:
        view_order = order_update["view_order"]
    if source == "data_over_format":
        log.warning("%s: the data overturned the %s view-order convention (evidence %.2f): views swapped",
                    item_id, item.stereo_format, result.info["view_order_votes"]["evidence"])
    paths = write_maps(data_root, item_id, result, jpeg_quality=settings.jpeg_quality)
    verdict = triage(result.quality, settings.triage_thresholds(), order_known=known_order)
    quality = {**result.quality, "score": verdict.score}
    result.timings["total"] = time.perf_counter() - t0
    info = dict(item.info or {})
    info["view_order_source"] = source
    # the exported image's place in the original file (manifest source_*); the left eye is never warped
    provenance = {"frame": origin["frame"], "box": list(source_box), "exact": origin["exact"]}
    info["process"] = {**result.info, "crop_source": list(abs_box), "source": provenance, "left_view": view_key,
                       "timings": result.timings, "cpu": result.cpu,
                       "backend": getattr(backend, "name", "?"), "sky_backend": getattr(sky_backend, "name", "?"),
                       "processed_size": list(result.processed_size), "reasons": verdict.reasons}
    fields = dict(paths, crop_x0=rel_box[0], crop_y0=rel_box[1], crop_x1=rel_box[2], crop_y1=rel_box[3],
                  quality=quality, score=verdict.score, pipeline_version=PIPELINE_VERSION, info=info,
                  **{**order_update, "view_order": view_order})
    catalog.transition(item_id, State.PROCESSED, expect=[state], actor="process", **fields)
    if verdict.reasons:
        catalog.transition(item_id, State.AUTO_REJECTED, reason=verdict.reasons[0], detail=",".join(verdict.reasons),
                           expect=[State.PROCESSED], actor="process")
    else:
        catalog.transition(item_id, verdict.state, expect=[State.PROCESSED], actor="process")
    return verdict.state


class Reprocessor:
    """Re-derives one item's maps keeping its stored views as given (after a reviewer's flip): the
    backends are built once, on first use (network backends are slow to load), and shared by threads."""

    def __init__(self, settings: ProcessConfig | None = None) -> None:
        self.settings = settings or ProcessConfig()
        self._backends: tuple[FlowBackend, SkyBackend] | None = None
        self._lock = threading.Lock()

    def __call__(self, catalog: Catalog, item_id: str, data_root: str | Path) -> str:
        """Process ``item_id`` (in ``processed``) with ``order="given"``; returns its new state."""
        with self._lock:
            if self._backends is None:
                self._backends = build_backends(self.settings)
            backend, sky_backend = self._backends
        return process_item(catalog, item_id, data_root, backend=backend, sky_backend=sky_backend,
                            settings=self.settings, reprocess=True, order="given")


def build_correspondence(settings: ProcessConfig, *, device: str | None = None) -> FlowBackend:
    """The correspondence backend ``settings`` names, with the options the section holds for it, on
    ``device`` (None: the section's). ``learned_cost_below_px`` is a fused backend's: set for another
    backend it is refused rather than silently ignored."""
    s = settings
    options: dict[str, Any] = {}
    if s.correspondence == "fused" or s.correspondence.startswith("fused:"):
        options["learned_below_px"] = s.learned_cost_below_px
    elif s.learned_cost_below_px != ProcessConfig.model_fields["learned_cost_below_px"].default:
        raise ValueError(f"process.learned_cost_below_px applies to fused backends, not {s.correspondence!r}")
    return build_backend(s.correspondence, checkpoint=s.correspondence_checkpoint,
                         device=s.device if device is None else device, **options)


def build_backends(settings: ProcessConfig | None = None) -> tuple[FlowBackend, SkyBackend]:
    """The correspondence and sky backends ``settings`` names (None: the defaults), on its device."""
    s = settings or ProcessConfig()
    backend = build_correspondence(s)
    sky_backend = build_sky(s.sky, checkpoint=s.sky_checkpoint, mmseg_config=s.mmseg_config, device=s.device)
    return backend, sky_backend


def process_batch(catalog_url: str, ids: list[str], data_root: str | Path, *, settings: ProcessConfig | None = None,
                  reprocess: bool = False) -> dict[str, str]:
    """Process ``ids`` with backends built once; returns {id: state}. One pair's error never stops the rest.

    ``settings``: the ``process`` section (None: its defaults).
    """
    states: dict[str, str] = {}
    with Catalog(catalog_url) as catalog:
        # a backend that cannot be built (missing extra, bad checkpoint path) is a configuration error:
        # it raises before any item is touched, instead of failing every pair of the run
        backend, sky_backend = build_backends(settings)
        for item_id in ids:
            try:
                states[item_id] = process_item(catalog, item_id, data_root, backend=backend, sky_backend=sky_backend,
                                               settings=settings, reprocess=reprocess)
            except TransitionError as exc:  # another worker moved it: not ours any more
                log.warning("%s: %s", item_id, exc)
                states[item_id] = "skipped"
            except Exception as exc:  # noqa: BLE001 - one bad pair must not stop a batch; recorded as failed
                log.exception("processing %s failed", item_id)
                try:
                    states[item_id] = catalog.fail(item_id, "process_error", f"{type(exc).__name__}: {exc}"[:2000]).state
                except Exception:  # noqa: BLE001 - the catalog itself is unreachable: report, go on
                    log.exception("could not record the failure of %s", item_id)
                    states[item_id] = "error"
    return states

