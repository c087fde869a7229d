"""tasks/labels/view_order.py: each cue on constructed scenes where it must win or abstain, their combination
with and without a format prior, and the decision end to end on real views (Middlebury motorcycle)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from tasks.catalog.catalog import Catalog, State
from tasks.labels.correspondence import build_backend
from tasks.labels.process import process_item, process_pair
from tasks.labels.sky import build_sky
from tasks.labels.view_order import Cue, combine, ground_cue, keystone_cue, occlusion_cue
from tasks.labels.settings import ProcessConfig
from tests.tasks.stereo_scenes import keystone_warp, motorcycle


# ---- occlusion ------------------------------------------------------------------------------------
def test_occlusion_cue_wins_both_ways_and_scales_with_the_votes():
    par = occlusion_cue(50, 10)
    assert (par.vote, par.strength) == (1, pytest.approx(40 / 60))
    assert par.detail == {"parallel_votes": 50, "cross_votes": 10, "margin": pytest.approx(0.667, abs=1e-3)}
    cross = occlusion_cue(10, 50)
    assert (cross.vote, cross.strength) == (-1, pytest.approx(40 / 60))
    # a unanimous but small count is weak: strength = |margin| * votes / full_votes
    few = occlusion_cue(12, 0)
    assert few.vote == 1 and few.strength == pytest.approx(12 / 60)
    assert occlusion_cue(300, 0).strength == 1.0


def test_occlusion_cue_abstains_below_min_votes_and_on_a_tie():
    for par, cross in ((5, 4), (0, 9), (0, 0)):
        cue = occlusion_cue(par, cross)
        assert (cue.vote, cue.strength) == (0, 0.0)
        assert "margin" not in cue.detail
    assert occlusion_cue(9, 0, min_votes=5).vote == 1  # the threshold is the caller's
    tie = occlusion_cue(30, 30)
    assert (tie.vote, tie.strength) == (0, 0.0)


# ---- ground plane ----------------------------------------------------------------------------------
def _rows(h=120, w=160):
    return np.mgrid[0:h, 0:w][0].astype(np.float32)


def test_ground_cue_follows_the_disparity_gradient():
    rng = np.random.default_rng(0)
    rows = _rows()
    noise = rng.normal(0, 0.5, rows.shape).astype(np.float32)
    reliable = np.ones(rows.shape, bool)
    down = ground_cue(2 + 0.05 * rows + noise, reliable)  # nearer (larger d) towards the bottom
    assert down.vote == 1 and down.strength == 1.0 and down.detail["rho"] > 0.6
    up = ground_cue(8 - 0.05 * rows + noise, reliable)  # nearer towards the top: swapped views
    assert up.vote == -1 and up.strength == 1.0 and up.detail["rho"] < -0.6
    # a weak gradient is a weak vote: strength grows with |rho| between 0.15 and 0.6
    weak = ground_cue(0.005 * rows + noise, reliable)
    assert weak.vote == 1 and 0.15 < weak.detail["rho"] < 0.6 and 0 < weak.strength < 1


def test_ground_cue_abstains_on_flat_noise_and_too_few_pixels():
    rng = np.random.default_rng(1)
    rows = _rows()
    flat = ground_cue(rng.normal(5, 1, rows.shape), np.ones(rows.shape, bool))
    assert flat.vote == 0 and flat.strength == 0.0 and abs(flat.detail["rho"]) < 0.15
    few = np.zeros(rows.shape, bool)
    few[::12, ::12] = True  # 100 pixels
    sparse = ground_cue(0.05 * rows, few)
    assert sparse.vote == 0 and sparse.detail["rho"] is None
    # only the reliable pixels count: a gradient confined to unreliable pixels is not seen
    d = rng.normal(5, 1, rows.shape)
    bottom = rows >= 60
    d[bottom] += 50
    assert ground_cue(d, ~bottom).vote == 0
    assert ground_cue(d, np.ones(rows.shape, bool)).vote == 1


# ---- keystone --------------------------------------------------------------------------------------
def _flow(dy_of_uv, h=120, w=160, noise=0.15, seed=0, outliers=0.0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    u = (xs - (w - 1) / 2) / (w / 2)
    v = (ys - (h - 1) / 2) / (h / 2)
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = -10 + 3 * v  # some disparity; the cue only reads dy
    flow[..., 1] = dy_of_uv(u, v) + rng.normal(0, noise, (h, w))
    if outliers:
        bad = rng.random((h, w)) < outliers
        flow[..., 1][bad] = rng.uniform(-20, 20, int(bad.sum()))
    return flow, np.ones((h, w), bool)


@pytest.mark.parametrize("sign", [1, -1])
def test_keystone_cue_reads_the_sign_of_the_xy_term(sign):
    # a converged rig's +-2 px at the corners, on top of an offset, a rotation and a scale change,
    # with 10 % wild matches the robust fit must ignore
    flow, reliable = _flow(lambda u, v: 1.5 + 0.8 * u - 0.6 * v + sign * 2.0 * u * v, outliers=0.1)
    cue = keystone_cue(flow, reliable)
    assert cue.vote == sign
    assert cue.detail["corner_px"] == pytest.approx(sign * 2.0, abs=0.1)
    assert cue.strength == pytest.approx((2.0 - 0.6) / 1.8, abs=0.06)


@pytest.mark.parametrize("dy", [
    lambda u, v: 4.0 + 0 * u,  # a pure vertical offset
    lambda u, v: -2.0 + 3.0 * u,  # offset + rotation (dy linear in x)
    lambda u, v: 1.0 - 2.0 * u + 2.5 * v,  # + scale change (dy linear in y)
    lambda u, v: 0.3 * u * v,  # a keystone below the 0.6 px noise floor
])
def test_keystone_cue_abstains_on_offset_rotation_scale_and_tiny_terms(dy):
    flow, reliable = _flow(dy)
    cue = keystone_cue(flow, reliable)
    assert (cue.vote, cue.strength) == (0, 0.0)
    assert abs(cue.detail["corner_px"]) < 0.6


def test_keystone_cue_abstains_on_too_few_pixels_and_on_noise():
    flow, reliable = _flow(lambda u, v: 2.0 * u * v)
    few = np.zeros_like(reliable)
    few[::20, ::20] = True  # 48 pixels
    assert keystone_cue(flow, few).detail["corner_px"] is None
    noisy, reliable = _flow(lambda u, v: 0.7 * u * v, noise=6.0, h=40, w=60)
    cue = keystone_cue(noisy, reliable)
    assert cue.vote == 0  # above min_corner_px perhaps, but not significant (t < 8)


# ---- combination -----------------------------------------------------------------------------------
def cues(occlusion=(0, 0.0), ground=(0, 0.0), keystone=(0, 0.0)):
    return {"occlusion": Cue("occlusion", *occlusion), "ground": Cue("ground", *ground),
            "keystone": Cue("keystone", *keystone)}


def test_agreeing_cues_decide_either_way():
    par = combine(cues(occlusion=(1, 0.4), ground=(1, 0.5)))
    assert (par.order, par.uncertain, par.source, par.swapped) == ("parallel", False, "data", False)
    assert par.evidence == pytest.approx(0.4 + 0.6 * 0.5)
    cross = combine(cues(occlusion=(-1, 0.4), ground=(-1, 0.5)))
    assert (cross.order, cross.uncertain, cross.source, cross.swapped) == ("cross_eyed", False, "data", True)
    assert cross.evidence == pytest.approx(-0.7)
    # two weak cues that agree decide; only their sum has to pass `decide`
    assert not combine(cues(ground=(1, 0.3), keystone=(1, 0.3))).uncertain
    assert combine(cues(ground=(1, 0.2), keystone=(1, 0.2))).uncertain  # 0.24 < 0.35


def test_conflicting_strong_cues_are_uncertain():
    # the sum is clearly positive (0.94), but the keystone cue strongly disagrees: veto
    vetoed = combine(cues(occlusion=(1, 1.0), ground=(1, 0.5), keystone=(-1, 0.6)))
    assert vetoed.evidence > 0.9
    assert (vetoed.order, vetoed.uncertain, vetoed.source) == ("parallel", True, "uncertain")
    # a weakly disagreeing cue does not veto
    assert not combine(cues(occlusion=(1, 1.0), ground=(1, 0.5), keystone=(-1, 0.4))).uncertain
    # strong occlusions against a strong ground prior: no order
    assert combine(cues(occlusion=(-1, 0.9), ground=(1, 1.0))).uncertain


def test_a_single_cue_must_be_strong():
    weak = combine(cues(occlusion=(-1, 0.45)))
    assert (weak.order, weak.uncertain, weak.source, weak.swapped) == ("parallel", True, "uncertain", False)
    assert weak.evidence == pytest.approx(-0.45)
    assert combine(cues(occlusion=(-1, 0.55))).order == "cross_eyed"
    assert combine(cues(ground=(1, 0.8))).uncertain  # 0.6 * 0.8 = 0.48 < 0.5
    assert not combine(cues(ground=(1, 1.0))).uncertain
    nothing = combine(cues())
    assert (nothing.uncertain, nothing.source, nothing.evidence) == (True, "uncertain", 0.0)


def test_the_decision_is_mirror_symmetric():
    rng = np.random.default_rng(0)
    for _ in range(300):
        c = {k: (int(rng.choice([-1, 0, 1])), float(rng.choice([0, 0.2, 0.3, 0.45, 0.5, 0.6, 0.8, 1.0])))
             for k in ("occlusion", "ground", "keystone")}
        a = combine(cues(**c))
        b = combine(cues(**{k: (-v, s) for k, (v, s) in c.items()}))
        assert a.uncertain == b.uncertain and a.evidence == pytest.approx(-b.evidence)
        if not a.uncertain:
            assert a.order != b.order


def test_format_prior_stands_against_weak_contrary_data():
    for contrary in (cues(occlusion=(-1, 0.3)), cues(occlusion=(-1, 0.2), ground=(-1, 0.2)),
                     cues(keystone=(-1, 0.45))):
        d = combine(contrary, format_prior=True)
        assert (d.order, d.uncertain, d.source, d.swapped) == ("parallel", False, "format", False)
        assert d.evidence < 0
        assert d.cues["format"].vote == 1 and d.cues["format"].strength == 1.0


def test_format_prior_against_clearly_contrary_data_is_kept_but_flagged():
    """Cues that disagree with the convention at decision strength: the order stands (not overwhelming),
    but a person checks it: never silently wrong."""
    for contrary in (cues(occlusion=(-1, 0.5)), cues(occlusion=(-1, 0.5), ground=(-1, 0.5)),
                     cues(occlusion=(-1, 0.6), ground=(-1, 0.6), keystone=(-1, 0.3)), cues(ground=(-1, 0.9))):
        d = combine(contrary, format_prior=True)
        assert (d.order, d.uncertain, d.source, d.swapped) == ("parallel", True, "format", False)
    # one data cue agreeing with the prior keeps it unflagged
    assert not combine(cues(occlusion=(-1, 0.6), keystone=(1, 0.3)), format_prior=True).uncertain
    # agreeing or absent data: the format, of course
    assert combine(cues(occlusion=(1, 1.0)), format_prior=True).source == "format"
    assert combine(cues(), format_prior=True).source == "format"


def test_format_prior_is_overturned_only_by_overwhelming_data_that_nothing_contradicts():
    overwhelming = cues(occlusion=(-1, 1.0), ground=(-1, 1.0))  # -1.6
    d = combine(overwhelming, format_prior=True)
    assert (d.order, d.uncertain, d.source, d.swapped) == ("cross_eyed", False, "data_over_format", True)
    assert d.evidence == pytest.approx(-1.6)
    # the same, but one data cue agrees with the prior (strength >= 0.25): the format stands
    held = combine(cues(occlusion=(-1, 1.0), ground=(-1, 1.0), keystone=(1, 0.3)), format_prior=True)
    assert held.evidence == pytest.approx(-1.42) and held.source == "format" and not held.swapped
    # a negligible agreeing cue does not save the prior
    assert combine(cues(occlusion=(-1, 1.0), ground=(-1, 1.0), keystone=(1, 0.2)),
                   format_prior=True).source == "data_over_format"
    # strong, but not overwhelming: -1.1 > -1.2
    assert combine(cues(occlusion=(-1, 0.5), ground=(-1, 1.0)), format_prior=True).source == "format"
    # the threshold is a parameter
    assert combine(cues(occlusion=(-1, 0.5), ground=(-1, 1.0)), format_prior=True,
                   overturn=1.0).source == "data_over_format"


def test_decision_serialises_with_every_cue():
    d = combine({**cues(occlusion=(1, 0.6)), "ground": ground_cue(np.zeros((5, 5)), np.zeros((5, 5), bool))},
                format_prior=True)
    out = json.loads(json.dumps(d.as_dict()))
    assert out["order"] == "parallel" and out["source"] == "format" and out["uncertain"] is False
    assert set(out["cues"]) == {"occlusion", "ground", "keystone", "format"}
    assert out["cues"]["ground"] == {"vote": 0, "strength": 0.0, "rho": None}


# ---- end to end on real views ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def moto():
    left, right, _ = motorcycle(370)
    return left, right


@pytest.fixture(scope="module")
def backends():
    return build_backend("dis"), build_sky("heuristic")


def _votes(result):
    return {k: c["vote"] for k, c in result.info["view_order_votes"]["cues"].items()}


def test_real_pair_in_order_is_parallel(moto, backends):
    left, right = moto
    res = process_pair(left, right, *backends, settings=ProcessConfig(crf=False))
    assert (res.view_order, res.swapped_views) == ("parallel", False)
    assert res.quality["view_order_source"] == "data" and not res.quality["view_order_uncertain"]
    assert _votes(res)["occlusion"] == 1 and _votes(res)["ground"] == 1
    assert res.quality["view_order_margin"] > 0.5


def test_real_pair_swapped_is_cross_eyed_and_exports_the_true_left_eye(moto, backends):
    left, right = moto
    res = process_pair(right, left, *backends, settings=ProcessConfig(crf=False))
    assert (res.view_order, res.swapped_views) == ("cross_eyed", True)
    assert res.quality["view_order_source"] == "data" and not res.quality["view_order_uncertain"]
    assert _votes(res)["occlusion"] == -1 and _votes(res)["ground"] == -1
    x0, y0, x1, y1 = res.box
    assert np.array_equal(res.image, left[y0:y1, x0:x1])


def test_reviewer_order_is_kept_but_the_cues_are_recorded(moto, backends):
    left, right = moto
    res = process_pair(right, left, *backends, settings=ProcessConfig(crf=False), order="given")
    assert (res.view_order, res.swapped_views) == ("parallel", False)
    assert res.quality["view_order_source"] == "reviewer"
    assert res.info["view_order_votes"]["evidence"] < -0.5  # the data still says swapped
    with pytest.raises(ValueError):
        process_pair(left, right, *backends, order="flip")


def test_known_order_with_swapped_views_keeps_the_format_flagged(moto, backends):
    """The motorcycle's data against the prior is strong (~-1.16: occlusions and ground both say
    swapped) but not overwhelming (-1.2): the format's order stands, flagged for review."""
    left, right = moto
    res = process_pair(right, left, *backends, settings=ProcessConfig(crf=False), known_order=True)
    assert (res.view_order, res.swapped_views) == ("undecided", False)
    assert res.quality["view_order_source"] == "format" and res.quality["view_order_uncertain"]
    assert _votes(res)["occlusion"] == -1 and _votes(res)["ground"] == -1
    assert res.info["view_order_votes"]["evidence"] < -0.35  # enough to decide without a prior


def test_known_order_contradicted_by_the_data_is_never_silently_kept(moto, backends):
    left, right = moto
    res = process_pair(right, left, *backends, settings=ProcessConfig(crf=False), known_order=True)
    assert res.swapped_views or res.quality["view_order_uncertain"]


@pytest.fixture
def sqlite_catalog(tmp_path: Path):
    with Catalog(f"sqlite:///{tmp_path / 'catalog.db'}") as cat:
        yield cat


def _add_mpo_item(catalog, data_root: Path, name: str, frame0: np.ndarray, frame1: np.ndarray) -> str:
    """An MPO item as ingest records it: frame 0 stored as the left view (the format's convention)."""
    h, w = frame0.shape[:2]
    pairs = data_root / "pairs" / name
    pairs.mkdir(parents=True)
    (data_root / "raw").mkdir(exist_ok=True)
    cv2.imwrite(str(data_root / "raw" / f"{name}.png"), frame0[..., ::-1])  # stands in for the .mpo
    cv2.imwrite(str(pairs / "left.png"), frame0[..., ::-1])
    cv2.imwrite(str(pairs / "right.png"), frame1[..., ::-1])
    item, _ = catalog.discover(source="local", source_id=name)
    catalog.transition(item.id, State.DOWNLOADED, raw_path=f"raw/{name}.png", raw_width=w, raw_height=h)
    catalog.transition(item.id, State.SPLIT, left_path=f"pairs/{name}/left.png",
                       right_path=f"pairs/{name}/right.png",
                       view_width=w, view_height=h, stereo_format="mpo", swapped=False, view_order="mpo",
                       info={"views": {"left": [0, 0, w, h], "right": [0, 0, w, h]},
                             "frames": {"left": 0, "right": 1}})
    return item.id


def test_mpo_stored_right_first_is_overturned_and_logged(sqlite_catalog, tmp_path, moto, backends, caplog):
    """A converged MPO camera (keystone parallax, 2 px at the corners) that stored the right eye as
    frame 0: occlusions, ground and keystone all say swapped, overwhelmingly; the data overturns
    the MPO convention and process_item says so in the log. Stored in order, nothing is logged."""
    left, right = moto
    right_k = keystone_warp(right, 2.0)  # the right camera of a toed-in rig
    data_root = tmp_path / "data"
    data_root.mkdir()
    wrong = _add_mpo_item(sqlite_catalog, data_root, "mpo_right_first", right_k, left)
    good = _add_mpo_item(sqlite_catalog, data_root, "mpo_in_order", left, right_k)
    opts = dict(backend=backends[0], sky_backend=backends[1], settings=ProcessConfig(crf=False))
    with caplog.at_level(logging.WARNING, logger="tasks.labels.process"):
        process_item(sqlite_catalog, wrong, data_root, **opts)
    overturned = [r for r in caplog.records if "overturned the mpo view-order convention" in r.getMessage()]
    assert len(overturned) == 1 and overturned[0].levelno == logging.WARNING
    assert wrong in overturned[0].getMessage()
    item = sqlite_catalog.get(wrong)
    assert item.state in ("pending_review", "auto_accepted"), (item.reason, item.reason_detail)
    assert item.swapped is True and item.view_order == "cross_eyed"
    assert item.left_path == "pairs/mpo_right_first/right.png"  # frame 1 is the left eye
    assert item.quality["view_order_source"] == "data_over_format" and item.quality["known_order"] is True
    assert item.info["view_order_source"] == "data_over_format"
    assert item.info["process"]["left_view"] == "right"
    cues = item.info["process"]["view_order_votes"]["cues"]
    assert [cues[k]["vote"] for k in ("occlusion", "ground", "keystone")] == [-1, -1, -1]
    image = cv2.imread(str(data_root / item.image_path))[..., ::-1]
    x0, y0, x1, y1 = item.crop_x0, item.crop_y0, item.crop_x1, item.crop_y1
    assert np.abs(image.astype(int) - left[y0:y1, x0:x1]).mean() < 4  # the true left eye (JPEG only)

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="tasks.labels.process"):
        process_item(sqlite_catalog, good, data_root, **opts)
    assert not [r for r in caplog.records if "overturned" in r.getMessage()]
    item = sqlite_catalog.get(good)
    assert item.swapped is False and item.view_order == "mpo"
    assert item.quality["view_order_source"] == "format"
    assert item.left_path == "pairs/mpo_in_order/left.png"


def test_the_decision_threshold_has_one_home_that_the_stage_and_the_review_panel_read(moto, backends):
    """``process.view_order_min_margin`` is what the process stage decides with and what the quality panel
    tells the reviewer: raising it above this pair's evidence leaves the order undecided, and the panel says
    the evidence is too weak for that threshold."""
    from types import SimpleNamespace

    from review_ui.quality import view_order_flag

    left, right = moto
    strict = ProcessConfig(crf=False, view_order_min_margin=1.9)
    res = process_pair(left, right, *backends, settings=strict)
    margin = res.quality["view_order_margin"]
    assert 0.5 < margin < 1.9
    assert res.quality["view_order_uncertain"] and res.view_order == "undecided"
    item = SimpleNamespace(quality=res.quality, score=None, info={}, stereo_format="side_by_side",
                           view_order=res.view_order)
    shown = view_order_flag(item, strict)
    assert shown["uncertain"] and f"too weak to decide (margin {margin:+.2f}; it takes ±1.90)" in shown["words"]
    decided = SimpleNamespace(**{**vars(item), "view_order": "parallel",
                                 "quality": {**res.quality, "view_order_uncertain": False}})
    default = view_order_flag(decided, ProcessConfig())
    assert f"it takes ±{ProcessConfig().view_order_min_margin:.2f}" in default["words"] and "clear" in default["words"]
    # and the default decides this pair (test_real_pair_in_order_is_parallel)
    assert margin >= ProcessConfig().view_order_min_margin
