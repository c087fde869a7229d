"""Triage: every rejection reason, review, auto-accept, score range."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.labels.triage import TriageThresholds, quality_figures, score, triage

GOOD = dict(coverage=0.85, match_coverage=0.85, sky_fraction=0.1, misaligned_fraction=0.01,
            vertical_residual_median_px=0.2, disparity_range_px=30.0, flow_finite=True, raw_consistency=0.8,
            crop_fraction=0.95, view_order="parallel", view_order_margin=0.5)


@pytest.mark.parametrize("change, reason", [
    (dict(flow_finite=False), "flow_failed"),
    (dict(raw_consistency=0.01), "flow_failed"),
    (dict(misaligned_fraction=0.4), "misaligned"),
    (dict(disparity_range_px=0.7), "low_disparity_range"),
    (dict(coverage=0.2), "low_coverage"),
    (dict(crop_fraction=0.1), "low_coverage"),
])
def test_each_reason_auto_rejects(change, reason):
    result = triage({**GOOD, **change}, TriageThresholds())
    assert result.state == "auto_rejected" and result.reasons == [reason]


@pytest.mark.parametrize("change", [dict(view_order="undecided", view_order_margin=0.0),
                                    dict(view_order_uncertain=True, view_order_margin=0.1)])
def test_uncertain_order_goes_to_review_never_auto_accepted(change):
    q = {**GOOD, **change}
    result = triage(q, TriageThresholds(auto_accept_score=0.0))
    assert result.state == "pending_review" and result.reasons == []
    # a map that is bad for another reason is still rejected for that reason
    assert triage({**q, "coverage": 0.1}, TriageThresholds()).reasons == ["low_coverage"]


def test_known_order_is_not_rejected_when_undecided():
    q = {**GOOD, "view_order": "undecided", "view_order_margin": 0.0}
    assert triage(q, TriageThresholds(), order_known=True).state == "pending_review"


def test_review_and_auto_accept():
    t = TriageThresholds()
    assert triage(GOOD, t).state == "pending_review"
    s = triage(GOOD, t).score
    assert 0 <= s <= 1
    assert triage(GOOD, TriageThresholds(auto_accept_score=s)).state == "auto_accepted"
    assert triage(GOOD, TriageThresholds(auto_accept_score=min(1.0, s + 0.01))).state == "pending_review"


def test_score_by_hand():
    t = TriageThresholds()
    q = {**GOOD, "coverage": 0.65, "misaligned_fraction": 0.075, "disparity_range_px": 9.0, "view_order_margin": 0.3}
    # coverage (0.65-0.4)/(0.9-0.4)=0.5, alignment 1-0.5=0.5, range (9-2)/(16-2)=0.5, order 0.3/0.6=0.5
    assert score(q, t) == pytest.approx(0.5)
    assert score({**GOOD, "coverage": 1.0, "misaligned_fraction": 0, "disparity_range_px": 100,
                  "view_order_margin": 1}, t) == 1.0


def test_quality_figures_by_hand():
    consistent = np.array([[True, True, False, True]])
    sky = np.array([[False, False, False, True]])
    vres = np.array([[0.0, 3.0, 9.0, 9.0]])
    q = quality_figures(consistent=consistent, sky=sky, vertical_residual=vres, d_far=1, d_near=5, flow_finite=True,
                        raw_consistency=0.5, crop_fraction=1, view_order_margin=0.5, view_order="parallel")
    assert q["coverage"] == 0.75 and q["match_coverage"] == pytest.approx(2 / 3)
    assert q["misaligned_fraction"] == 0.5  # of the two reliable non-sky pixels, one is off by 3 px
    assert q["disparity_range_px"] == 4
