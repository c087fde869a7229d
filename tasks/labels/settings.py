"""The label stage's settings (``process`` section): the one home of every process default.

``process_pair``, ``process_item``, ``process_batch``, ``build_backends``, the flows, the audit, the
review UI's re-derive and quality panel and the benchmarks all take or read a :class:`ProcessConfig`;
none repeats a default. The triage thresholds are those of ``TriageThresholds``.
"""
from __future__ import annotations

from pydantic import Field

from core.settings import Section, keyword_defaults
from tasks.labels.consistency import consistency_mask
from tasks.labels.correspondence import DEFAULT_BACKEND, FusedBackend
from tasks.labels.depth import disparity_to_depth, fill_unreliable, smooth_disparity
from tasks.labels.sky import detect_sky
from tasks.labels.triage import TriageThresholds
from tasks.labels.view_order import combine, occlusion_cue

# Defaults written once, in the signature of the function each setting is passed to; this section reads them.
_TRIAGE = TriageThresholds()
_VIEW_ORDER = keyword_defaults(combine)
_OCCLUSION = keyword_defaults(occlusion_cue)
_CONSISTENCY = keyword_defaults(consistency_mask)
_SKY = keyword_defaults(detect_sky)
_SMOOTH = keyword_defaults(smooth_disparity)
_DEPTH = keyword_defaults(disparity_to_depth)
_FILL = keyword_defaults(fill_unreliable)
_FUSED = keyword_defaults(FusedBackend)


class ProcessConfig(Section):
    """Stereo to relative depth (`redweb process`): backends, masks, depth choice, triage thresholds."""

    # fused (DIS + SGBM, both OpenCV, no weights) was chosen by the label audit over 7 scenes x 4 packings
    # (README, "Choosing the backend"); dis is the fastest
    correspondence: str = Field(
        DEFAULT_BACKEND, description="fused | dis | sgbm | sgbm_dense | dis+sgbm | mccnn | flownet2 | raft | "
        "sea_raft_m | ptlflow:<name> | tv_raft | fused:<any of these>")
    correspondence_checkpoint: str | None = Field(None, description="local weights file for network backends")
    learned_cost_below_px: float | None = Field(
        _FUSED["learned_below_px"], gt=0, description="fused backends: pairs whose rectified disparity "
        "range is under this (px) get MC-CNN's learned matching cost instead of SGBM's (the mccnn extra); "
        "None = never")
    sky: str = Field("heuristic", description="heuristic | segformer | mmseg")
    sky_checkpoint: str | None = Field(None, description="segformer: local model directory; mmseg: checkpoint file")
    mmseg_config: str | None = Field(None, description="mmseg: model config file")
    crf: bool = Field(_SKY["crf"], description="refine the sky probability with a dense CRF")
    crf_iterations: int = Field(_SKY["crf_iterations"], ge=1)
    crf_max_side: int = Field(_SKY["crf_max_side"], ge=32, description="the CRF runs at most at this side, result resized back")
    max_side: int = Field(1024, gt=0, description="views are downscaled so their longer side is at most this")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    batch_size: int = Field(8, ge=1, description="pairs per Prefect task")
    fb_alpha: float = Field(_CONSISTENCY["alpha"], ge=0, description="consistency: |f + b(x+f)| < fb_alpha |f| + fb_beta")
    fb_beta: float = Field(_CONSISTENCY["beta"], gt=0, description="pixels")
    photometric_max: float | None = Field(
        20.0, gt=0, description="8-bit colour difference after warping above which a pixel is unreliable")
    discontinuity_max: float | None = Field(
        None, gt=0, description="px: drop pixels whose 5x5 flow range exceeds this (edge fattening); None = off")
    depth_range_ratio: float = Field(
        _DEPTH["range_ratio"], gt=1, description="assumed far/near depth ratio that fixes the unknown disparity offset (README)")
    prealign: bool = Field(True, description="align a rotated / scaled / offset / wide-baseline right view to the "
                           "left one from keypoint matches before the dense correspondence")
    depth_min_far_margin_px: float = Field(
        10.0, ge=0, description="the disparity offset stays at least this far below the far end (px): depth "
        "orderings finer than ~0.02 x this become ties (tasks/labels/depth.py)")
    disparity_smooth_px: float = Field(
        _SMOOTH["sigma_px"], ge=0, description="px: bilateral smoothing of the reliable disparities before depth (range 0.5 px of "
        "disparity; 0 = off)")
    depth_fill_colour_sigma: float = Field(
        _FILL["colour_sigma"], gt=0, description="CIELAB distance that sets how strongly the fill of unreliable "
        "pixels in depth.png keeps to surfaces of one colour (tasks/labels/depth.py fill_unreliable)")
    view_order_min_votes: int = Field(_OCCLUSION["min_votes"], ge=1, description="occlusion runs needed to decide the view order")
    view_order_min_margin: float = Field(
        _VIEW_ORDER["decide"], gt=0, le=2, description="|evidence| (the weighted sum of the view-order cues' "
        "votes, the margin the review panel shows) needed to decide the order from the data; one cue alone needs max(this, 0.5) "
        "(tasks/labels/view_order.py combine)")
    vertical_tolerance_px: float = Field(_TRIAGE.vertical_tolerance_px, gt=0)
    max_misaligned_fraction: float = Field(_TRIAGE.max_misaligned_fraction, ge=0, le=1, description="without "
                                           "keypoint evidence: share of matched pixels off their row above which "
                                           "a pair is misaligned")
    max_keypoint_residual_px: float = Field(_TRIAGE.max_keypoint_residual_px, gt=0, description="median vertical "
                                            "residual of keypoint matches after pre-alignment above which a pair "
                                            "is misaligned")
    min_disparity_range_px: float = Field(_TRIAGE.min_disparity_range_px, ge=0)
    min_coverage: float = Field(_TRIAGE.min_coverage, ge=0, le=1)
    min_flow_consistency: float = Field(_TRIAGE.min_flow_consistency, ge=0, le=1)
    min_crop_fraction: float = Field(_TRIAGE.min_crop_fraction, ge=0, le=1)
    auto_accept_score: float | None = Field(_TRIAGE.auto_accept_score, ge=0, le=1, description="None: nothing is auto-accepted")
    jpeg_quality: int = Field(95, ge=50, le=100)

    def triage_thresholds(self) -> TriageThresholds:
        """The thresholds ``tasks.labels.triage`` takes, from this section (whose defaults are TriageThresholds')."""
        from dataclasses import fields

        return TriageThresholds(**{f.name: getattr(self, f.name) for f in fields(TriageThresholds)})
