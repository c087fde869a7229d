"""The item page's quality panel and view-order flag: human names, the live thresholds, good/bad marks.

Figures are those ``tasks.labels.triage.quality_figures`` writes into ``item.quality``; thresholds are read
from the same :class:`ProcessConfig` the process stage decides with (triage's, and the view-order decision
threshold ``view_order_min_margin``), so "bad" here means "the stage would reject (or not decide) on this
figure". Unknown keys are shown as they are, after the known ones.
"""
from __future__ import annotations

from typing import Any, Callable

from tasks.labels.settings import ProcessConfig
from tasks.labels.triage import MISALIGNED_WITH_KEYPOINTS

# key -> (human name, format, rule) ; rule(value, settings) -> (ok | None, threshold text)
Rule = Callable[[Any, ProcessConfig], tuple[bool | None, str]]


def _at_least(opt: str, fmt: str = "{:.0%}") -> Rule:
    def rule(v: Any, s: ProcessConfig) -> tuple[bool | None, str]:
        limit = getattr(s, opt)
        return (None, "") if limit is None else (v >= limit, "≥ " + fmt.format(limit))
    return rule


def _at_most(opt: str, fmt: str = "{:.0%}") -> Rule:
    def rule(v: Any, s: ProcessConfig) -> tuple[bool | None, str]:
        limit = getattr(s, opt)
        return (None, "") if limit is None else (v <= limit, "≤ " + fmt.format(limit))
    return rule


def _none(v: Any, s: ProcessConfig) -> tuple[bool | None, str]:
    return None, ""


FIGURES: dict[str, tuple[str, str, Rule]] = {
    "coverage": ("reliable area (matched or sky)", "{:.0%}", _at_least("min_coverage")),
    "match_coverage": ("matched share of non-sky", "{:.0%}", _none),
    "sky_fraction": ("sky share", "{:.0%}", _none),
    "raw_consistency": ("flow consistency (before masks)", "{:.0%}", _at_least("min_flow_consistency")),
    "flow_finite": ("flow finite everywhere", "{}", lambda v, o: (bool(v), "must be yes")),
    "misaligned_fraction": ("vertically misaligned share", "{:.1%}", _at_most("max_misaligned_fraction")),
    "keypoint_residual_px": ("median vertical offset of keypoint matches", "{:.2f} px",
                             _at_most("max_keypoint_residual_px", "{:.1f} px")),
    "vertical_residual_median_px": ("median vertical offset", "{:.2f} px",
                                    _at_most("vertical_tolerance_px", "{:.1f} px")),
    "disparity_range_px": ("disparity range near–far", "{:.1f} px", _at_least("min_disparity_range_px", "{:.1f} px")),
    "crop_fraction": ("kept after cropping", "{:.0%}", _at_least("min_crop_fraction")),
    "view_order_margin": ("view-order vote margin", "{:+.2f}",
                          lambda v, s: (abs(v) >= s.view_order_min_margin, f"|margin| ≥ {s.view_order_min_margin:.2f}")),
    "view_order": ("view order (from the data)", "{}", lambda v, o: (v != "undecided", "decided")),
    "known_order": ("view order fixed by the file format", "{}", _none),
    "view_order_uncertain": ("view order uncertain", "{}", lambda v, o: (not v, "must be no")),
    "view_order_source": ("view order decided by", "{}", _none),
}
SOURCES = {"format": "file format's convention", "data": "data", "data_over_format": "data, overturning the file format",
           "reviewer": "reviewer"}


def _fmt(fmt: str, v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def quality_rows(item, settings: ProcessConfig) -> list[dict]:
    """Rows for the panel: {key, name, value, threshold, ok (True good / False bad / None no rule)}."""
    q = dict(item.quality or {})
    rows = []
    if item.score is not None:
        auto = settings.auto_accept_score
        rows.append(dict(key="score", name="score (0 = at a reject threshold, 1 = comfortable)",
                         value=f"{item.score:.3f}", threshold=f"auto-accept ≥ {auto:.2f}" if auto is not None else "",
                         ok=None if auto is None else item.score >= auto))
    q.pop("score", None)  # the same number as item.score: shown once
    if q.get("keypoint_residual_px") is not None:
        # triage (tasks/labels/triage.py): with keypoint evidence only a majority of dense pixels off their row rejects
        settings = settings.model_copy(update={"max_misaligned_fraction": MISALIGNED_WITH_KEYPOINTS})
    elif "keypoint_residual_px" in q:
        q.pop("keypoint_residual_px")  # too few keypoint matches to say anything
    for key, (name, fmt, rule) in FIGURES.items():
        if key not in q:
            continue
        v = q.pop(key)
        try:
            ok, threshold = rule(v, settings)
        except TypeError:
            ok, threshold = None, ""
        value = SOURCES.get(v, v) if key == "view_order_source" else _fmt(fmt, v)
        rows.append(dict(key=key, name=name, value=value, threshold=threshold, ok=ok))
    for key in sorted(q):
        v = q[key]
        value = f"{v:.4g}" if isinstance(v, float) else _fmt("{}", v)
        rows.append(dict(key=key, name=key.replace("_", " "), value=value, threshold="", ok=None))
    return rows


def view_order_flag(item) -> dict:
    """How the item's view order was decided, and whether the reviewer should check it (press F)."""
    info = item.info or {}
    source = info.get("view_order_source") or (item.quality or {}).get("view_order_source")
    if source is None:
        source = "format" if item.stereo_format in ("mpo", "jps") else "data"
    uncertain = bool((item.quality or {}).get("view_order_uncertain")) or item.view_order in (None, "undecided")
    if source == "reviewer":
        uncertain = False  # a person already fixed it
    return dict(order=item.view_order or "undecided", source=source, source_text=SOURCES.get(source, source),
                uncertain=uncertain,
                flipped_by=info.get("view_order_flipped_by"))
