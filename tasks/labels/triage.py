"""Pair-level quality figures, a score in [0, 1], and the triage decision.

Clear failures are auto-rejected with a reason code (several may apply; the first is the item's
reason, all are listed in the detail). Everything else waits for review, or is auto-accepted when
``auto_accept_score`` is set and the score reaches it (unattended runs).

Reasons (tasks/catalog/catalog.py REASONS): ``flow_failed``, ``misaligned``, ``low_disparity_range``,
``low_coverage``. A view order the cues could not decide (``view_order_uncertain``, tasks/labels/view_order.py)
is not a reason to throw a map away: it goes to review flagged (never auto-accepted), where the
reviewer checks the order and flips it with ``F``. (``view_order_undecidable`` stays a known reason
code for items rejected by older pipeline versions.)
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


#: with keypoint evidence on the geometry, only a majority of dense pixels off their row rejects a pair
MISALIGNED_WITH_KEYPOINTS = 0.5


@dataclass(frozen=True)
class TriageThresholds:
    min_flow_consistency: float = 0.05  # below: the flow found (almost) nothing consistent
    vertical_tolerance_px: float = 2.0  # |residual vertical flow| above this counts as misaligned
    max_misaligned_fraction: float = 0.15  # without keypoint evidence: share of matched pixels off their row
    max_keypoint_residual_px: float = 1.0  # median vertical residual of keypoint matches after pre-alignment
    min_disparity_range_px: float = 2.0  # d_near - d_far, in processed pixels
    min_coverage: float = 0.4  # reliable (consistent or sky) share of the cropped image
    min_crop_fraction: float = 0.3  # cropped area / processed area
    auto_accept_score: float | None = None  # None: nothing is auto-accepted


@dataclass
class TriageResult:
    state: str  # "auto_rejected" | "pending_review" | "auto_accepted"
    reasons: list[str] = field(default_factory=list)
    score: float = 0.0


def quality_figures(*, consistent: np.ndarray, sky: np.ndarray, vertical_residual: np.ndarray, d_far: float,
                    d_near: float, flow_finite: bool, raw_consistency: float, crop_fraction: float,
                    view_order_margin: float, view_order: str, vertical_tolerance_px: float = 2.0) -> dict:
    """Figures on the cropped maps (all (H, W)): fractions in [0, 1], disparities in pixels."""
    reliable = consistent & ~sky
    non_sky = max(int((~sky).sum()), 1)
    n_rel = max(int(reliable.sum()), 1)
    return {
        "coverage": float((consistent | sky).mean()),
        "match_coverage": float(reliable.sum() / non_sky),
        "sky_fraction": float(sky.mean()),
        "misaligned_fraction": float((np.abs(vertical_residual[reliable]) > vertical_tolerance_px).sum() / n_rel),
        "vertical_residual_median_px": float(np.median(np.abs(vertical_residual[reliable]))) if reliable.any() else 0.0,
        "disparity_range_px": float(d_near - d_far),
        "flow_finite": bool(flow_finite),
        "raw_consistency": float(raw_consistency),
        "crop_fraction": float(crop_fraction),
        "view_order": view_order,
        "view_order_margin": float(view_order_margin),
    }


def _ramp(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0)) if hi > lo else float(x >= hi)


def score(q: dict, t: TriageThresholds) -> float:
    """Weighted mean of per-figure scores, each 0 at its rejection threshold and 1 when comfortable."""
    parts = {
        "coverage": (0.4, _ramp(q["coverage"], t.min_coverage, 0.9)),
        "alignment": (0.2, 1.0 - _ramp(q["misaligned_fraction"], 0.0, t.max_misaligned_fraction)),
        "range": (0.2, _ramp(q["disparity_range_px"], t.min_disparity_range_px, 8 * t.min_disparity_range_px)),
        "order": (0.2, _ramp(abs(q["view_order_margin"]), 0.0, 0.6)),  # view-order evidence (cue sum)
    }
    return round(sum(w * s for w, s in parts.values()) / sum(w for w, _ in parts.values()), 4)


def triage(q: dict, t: TriageThresholds, *, order_known: bool = False) -> TriageResult:
    """Decide from the quality figures. ``order_known``: the file format fixes the view order (MPO, JPS)."""
    reasons: list[str] = []
    if not q["flow_finite"] or q["raw_consistency"] < t.min_flow_consistency:
        reasons.append("flow_failed")
    kp = q.get("keypoint_residual_px")
    if kp is not None:  # the geometry from keypoint matches; dense pixels off their row are masked out
        if kp > t.max_keypoint_residual_px or q["misaligned_fraction"] > MISALIGNED_WITH_KEYPOINTS:
            reasons.append("misaligned")
    elif q["misaligned_fraction"] > t.max_misaligned_fraction:
        reasons.append("misaligned")
    if q["disparity_range_px"] < t.min_disparity_range_px:
        reasons.append("low_disparity_range")
    if q["coverage"] < t.min_coverage or q["crop_fraction"] < t.min_crop_fraction:
        reasons.append("low_coverage")
    s = score(q, t)
    if reasons:
        return TriageResult("auto_rejected", reasons, s)
    if q.get("view_order_uncertain") or (q["view_order"] == "undecided" and not order_known):
        return TriageResult("pending_review", [], s)  # a person checks the order (F flips it)
    if t.auto_accept_score is not None and s >= t.auto_accept_score:
        return TriageResult("auto_accepted", [], s)
    return TriageResult("pending_review", [], s)
