"""The item page's quality panel and view-order flag: human names, the live thresholds, good/bad marks.

The view order is told once, in plain words (:func:`view_order_flag`), judged with the live
``view_order_min_margin``: the stored figures it comes from (margin, decided/undecided, source) are
not repeated as table rows with marks of their own, which could contradict each other when the
threshold changed after processing. :func:`what_to_check` is the short list a reviewer looks for.

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
}
#: quality keys about the view order: told in words by ``view_order_flag``, not as table rows
VIEW_ORDER_KEYS = ("view_order_margin", "view_order", "known_order", "view_order_uncertain", "view_order_source")
SOURCES = {"format": "file format's convention", "data": "data", "data_over_format": "data, overturning the file format",
           "reviewer": "reviewer", "uncertain": "data, which could not tell"}
ORDER_WORDS = {"parallel": "left eye on the left", "cross_eyed": "left eye on the right (cross-eyed)",
               "undecided": "undecided"}
WHAT_TO_CHECK = (
    "Near things look near (yellow), far things far (purple).",
    "Sky is pale blue and behind everything.",
    "No object is inside out (a bump drawn as a dent).",
    "Depth edges line up with the photo's edges.",
)


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
    for key in VIEW_ORDER_KEYS:
        q.pop(key, None)
    for key, (name, fmt, rule) in FIGURES.items():
        if key not in q:
            continue
        v = q.pop(key)
        try:
            ok, threshold = rule(v, settings)
        except TypeError:
            ok, threshold = None, ""
        value = _fmt(fmt, v)
        rows.append(dict(key=key, name=name, value=value, threshold=threshold, ok=ok))
    for key in sorted(q):
        v = q[key]
        value = f"{v:.4g}" if isinstance(v, float) else _fmt("{}", v)
        rows.append(dict(key=key, name=key.replace("_", " "), value=value, threshold="", ok=None))
    return rows


def view_order_flag(item, settings: ProcessConfig | None = None) -> dict:
    """How the item's view order was decided, in plain words, and whether the reviewer should check
    it (press F). ``settings``: the live process settings (the margin the data needs to decide)."""
    info = item.info or {}
    q = item.quality or {}
    source = info.get("view_order_source") or q.get("view_order_source")
    if source is None:
        source = "format" if item.stereo_format in ("mpo", "jps") else "data"
    order = item.view_order or "undecided"
    uncertain = bool(q.get("view_order_uncertain")) or order == "undecided"
    if source == "reviewer":
        uncertain = False  # a person already fixed it
    need = settings.view_order_min_margin if settings is not None else None
    margin = q.get("view_order_margin")
    evidence = ""
    if isinstance(margin, (int, float)) and need is not None:
        strength = "clear" if abs(margin) >= need else "too weak to decide"
        evidence = f"the two views' evidence is {strength} (margin {margin:+.2f}; it takes ±{need:.2f})"
    if source == "reviewer":
        how = "set by a reviewer" + (f" ({info['view_order_flipped_by']})" if info.get("view_order_flipped_by") else "")
        detail = ""
    elif uncertain:
        how = "not decided"
        detail = "the picture could not tell which view is the left eye"
        if evidence and isinstance(margin, (int, float)) and abs(margin) >= need:
            detail += (f"; it was processed under another threshold: {evidence}, so today it would be decided;"
                       " check it anyway")
        elif evidence:
            detail += f": {evidence}"
    else:
        how = {"format": "from the file format's convention",
               "data_over_format": "from the data, overturning the file format's convention"}.get(source, "from the data")
        detail = evidence if source != "format" else ""
    words = how + (f": {detail}" if detail else "")
    return dict(order=order, order_words=ORDER_WORDS.get(order, order.replace("_", " ")), source=source,
                source_text=SOURCES.get(source, source), uncertain=uncertain, words=words, how=how, detail=detail,
                flipped_by=info.get("view_order_flipped_by"))


def what_to_check(flag: dict) -> dict:
    """The short list a reviewer looks for on every item, and when F (flip) beats a reject."""
    return dict(
        points=WHAT_TO_CHECK,
        flip="Press F when the whole map is inside out (near looks far everywhere): flipping swaps the views"
             " and fixes it.",
        reject="Reject with “wrong view order” only when F does not fix it: after flipping it is still inside"
               " out, or only parts are.",
        first="check the view order first" if flag.get("uncertain") else None)
