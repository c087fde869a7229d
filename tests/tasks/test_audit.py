"""Label audit: scoring checked against hand-counted cases, the packing geometry against the packed
pixels, the triage truth table on constructed rows, and the whole audit end to end on the
motorcycle (including a view order forced wrong, which must be reported as such)."""
from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest

from tasks.audit.packing import EXPECTED_FORMAT, PACKINGS, EyeGeometry, pack_scene
from tasks.audit.runner import KEPT_STATES, AuditRow, run_audit
from tasks.audit.scoring import (BAD_COVERAGE, BAD_ERROR, disagreement_map, gt_ordinal_labels, gt_step,
                                 ordinal_error, right_view_disparity, score_map)
from tasks.audit.tables import format_table, summarize
from tasks.audit.scenes import Scene
from tasks.labels.settings import ProcessConfig
from tests.tasks.gt_layouts import motorcycle


# ---- ordinal error: counted by hand ------------------------------------------------------------------
def test_ordinal_error_on_hand_counted_pairs():
    # flat pixel:   0     1    2    3     4     5
    gt = np.array([1.0, 2.0, 3.0, 1.01, 4.0, 3.03]).reshape(2, 3)  # depth, larger = farther
    pred = np.array([1.0, 3.0, 2.0, 1.0, 2.01, 5.0]).reshape(2, 3)
    pairs = [(0, 1),  # GT -1, map -1: right
             (1, 2),  # GT -1, map +1: wrong, inverted
             (0, 3),  # GT 0 (1.01 < 1 + sigma), map 0: right
             (0, 2), (3, 1), (2, 3),  # right
             (2, 4),  # GT -1 (3 vs 4), map 0 (2 vs 2.01): a tie where GT orders counts as wrong
             (2, 5)]  # GT 0 (3 vs 3.03), map -1 (2 vs 5): an order where GT ties counts as wrong
    i, j = np.array(pairs).T
    e = ordinal_error(pred, gt, np.ones((2, 3), bool), pairs=(i, j))
    assert e["pairs"] == 8
    assert e["error"] == pytest.approx(3 / 8)
    assert e["error_neq"] == pytest.approx(2 / 6)  # 6 pairs GT orders, 2 of them wrong
    assert e["error_eq"] == pytest.approx(1 / 2)  # 2 pairs GT calls equal, 1 wrong
    assert e["inverted"] == pytest.approx(1 / 6)  # only (1, 2) is ordered the other way


def test_ordinal_error_of_a_map_with_known_flipped_pairs():
    """Depths 1, 2, 4, 8 with pixels 1 and 2 swapped: of the 6 unordered pairs exactly (1, 2) is flipped."""
    gt = np.array([[1.0, 2.0], [4.0, 8.0]])
    pred = np.array([[1.0, 4.0], [2.0, 8.0]])
    i, j = np.array([(a, b) for a in range(4) for b in range(a + 1, 4)]).T
    e = ordinal_error(pred, gt, np.ones((2, 2), bool), pairs=(i, j))
    assert e["error"] == pytest.approx(1 / 6) and e["inverted"] == pytest.approx(1 / 6)
    assert math.isnan(e["error_eq"])  # GT calls no pair equal: nothing to count
    # random pairs of distinct valid pixels estimate the same share; an invalid pixel is never drawn
    gt3 = np.array([[1.0, 2.0, 4.0], [8.0, 16.0, 32.0]])
    pred3 = np.array([[1.0, 4.0, 2.0], [8.0, 16.0, 0.001]])  # pixel 5 would be wrong against everything
    valid = np.ones((2, 3), bool)
    valid[1, 2] = False
    e = ordinal_error(pred3, gt3, valid, n_pairs=200_000, seed=1)
    assert e["error"] == pytest.approx(2 / 20, abs=0.005)  # 2 of the 20 ordered pairs of 5 pixels
    assert e["inverted"] == pytest.approx(e["error"])
    # the whole map inverted (near shown far): every ordered pair wrong
    e = ordinal_error(1 / gt3, gt3, np.ones((2, 3), bool), n_pairs=10_000)
    assert e["error"] == 1.0 and e["inverted"] == 1.0
    assert math.isnan(ordinal_error(gt3, gt3, np.zeros((2, 3), bool))["error"])


def test_disagreement_map_on_a_tiny_case():
    gt = np.array([[1.0, 2.0, 4.0, 8.0]])
    pred = np.array([[1.0, 4.0, 2.0, 8.0]])  # the pair (1, 2) flipped
    valid = np.ones((1, 4), bool)
    # radius 1 in one row: pairs (0,1) right, (1,2) wrong, (2,3) right
    np.testing.assert_allclose(disagreement_map(pred, gt, valid, radii=(1,)), [[0.0, 0.5, 0.5, 0.0]])
    valid[0, 3] = False
    out = disagreement_map(pred, gt, valid, radii=(1,))
    np.testing.assert_allclose(out[0, :3], [0.0, 0.5, 1.0])
    assert np.isnan(out[0, 3])  # nothing compared there
    # ordered_only: pairs GT calls equal are not counted (here (0,1): GT 1 vs 1.01, map orders them)
    gt2 = np.array([[1.0, 1.01, 4.0]])
    pred2 = np.array([[1.0, 2.0, 4.0]])
    ones = np.ones((1, 3), bool)
    np.testing.assert_allclose(disagreement_map(pred2, gt2, ones, radii=(1,)), [[1.0, 0.5, 0.0]])
    out = disagreement_map(pred2, gt2, ones, radii=(1,), ordered_only=True)
    assert np.isnan(out[0, 0]) and out[0, 1:].tolist() == [0.0, 0.0]
    g = 2.0 ** np.arange(9, dtype=float).reshape(3, 3)
    assert (disagreement_map(g, g, np.ones((3, 3), bool), radii=(1,)) == 0).all()
    assert (disagreement_map(1 / g, g, np.ones((3, 3), bool), radii=(1,)) == 1).all()


def test_right_view_disparity_forward_warps_nearest_surface_wins():
    d = np.array([[2.0, 1.0, 1.0, 3.0, 3.0, np.nan]], np.float32)
    # x=0 d=2 -> -2 (outside); x=1,2 d=1 -> 0,1; x=3,4 d=3 -> 0,1 (nearer: wins); 2..5 seen by nobody
    out = right_view_disparity(d)
    np.testing.assert_array_equal(out[0, :2], [3.0, 3.0])
    assert np.isnan(out[0, 2:]).all()


def two_planes(h: int = 80, w: int = 120) -> Scene:
    """Left half at disparity ~5, right half at ~10 (twice as near); views are texture (unused by scoring)."""
    from pathlib import Path

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    x = np.arange(w)[None, :]
    # a hair of slope keeps the GT continuous (gt_step 0: every pair scored), far below sigma
    disp = (np.where(x < w // 2, 5.0, 10.0) + 1e-4 * x).repeat(h, 0).astype(np.float32)
    disp[:, :3] = np.nan  # unknown GT at the left edge
    return Scene("planes", img, img.copy(), disp, "generic", Path("."))


def test_score_map_on_two_planes():
    """An exported map of the whole left view that orders the two planes like GT: no error, full coverage;
    the same map inverted: every cross-plane pair wrong; half the mask off: half the coverage."""
    scene = two_planes()
    packed = pack_scene(scene, "sbs")
    geo = packed.eyes["left"]
    x0, y0, x1, y1 = (int(round(v)) for v in geo.file_box())
    H, W = y1 - y0, x1 - x0
    sx, _ = geo.file_to_scene(np.arange(x0, x1, dtype=float), np.full(W, (y0 + y1) / 2))
    near = np.rint(sx) >= scene.size[0] // 2  # export columns showing the right (near) plane
    rd = np.where(near, 20000, 40000).astype(np.uint16)[None, :].repeat(H, 0)
    mask = np.full((H, W), 255, np.uint8)
    kw = dict(crop_source=[x0, y0, x1, y1], frame=0, view_box=[x0, y0, x1, y1], n_pairs=50_000)
    s = score_map(scene, packed, rd=rd, mask=mask, **kw)
    assert s.eye == "left"
    assert s.ordinal_error < 0.005 and s.inverted < 0.005
    assert s.coverage > 0.97  # every GT pixel of the view labelled (up to the view's rounded edges)
    # GT pairs: same plane (tie) or across (ordered); share across = 2 p (1 - p), p = share on the near plane
    p = (np.rint(sx[np.rint(sx) >= 3]) >= 60).mean()
    inv = score_map(scene, packed, rd=np.where(near, 40000, 20000).astype(np.uint16)[None, :].repeat(H, 0),
                    mask=mask, **kw)
    assert inv.ordinal_error == pytest.approx(2 * p * (1 - p), abs=0.01)
    assert inv.inverted > 0.99 and inv.error_eq < 0.01
    half = mask.copy()
    half[:, near] = 0
    cov = score_map(scene, packed, rd=rd, mask=half, **kw).coverage
    assert cov == pytest.approx(1 - p, abs=0.03)
    sky = rd.copy()
    sky[:, ~near] = 65535  # sky pixels are not compared: only one plane left, all GT ties, all right
    assert score_map(scene, packed, rd=sky, mask=mask, **kw).ordinal_error == 0.0
    # the view box of the right eye: scored against the right view's GT, and reported as that eye
    rgeo = packed.eyes["right"]
    rbox = [int(round(v)) for v in rgeo.file_box()]
    assert score_map(scene, packed, rd=rd, mask=mask, crop_source=rbox, frame=0, view_box=rbox,
                     n_pairs=1000).eye == "right"
    with pytest.raises(ValueError, match="matches no eye"):
        score_map(scene, packed, rd=rd, mask=mask, crop_source=rbox, frame=1, view_box=rbox)


def test_coverage_ceiling_counts_what_the_other_view_sees():
    """The ceiling: GT pixels of the view whose point lies inside the other packed view and is not
    occluded there, counted by hand per column (the two planes: the near plane hides 5 columns of the
    far one; the other view's crop and the frame edge cut more)."""
    scene = two_planes()
    packed = pack_scene(scene, "sbs")
    geo, rgeo = packed.eyes["left"], packed.eyes["right"]
    x0, y0, x1, y1 = (int(round(v)) for v in geo.file_box())
    H, W = y1 - y0, x1 - x0
    kw = dict(crop_source=[x0, y0, x1, y1], frame=0, view_box=[x0, y0, x1, y1], n_pairs=1000)
    s = score_map(scene, packed, rd=np.full((H, W), 30000, np.uint16), mask=np.full((H, W), 255, np.uint8), **kw)
    # by hand, per scene column of the left view's region
    xs, _ = geo.file_to_scene(np.arange(x0, x1, dtype=float), np.zeros(W))
    cols = np.rint(xs).astype(int)
    d = scene.disparity[0]
    (ox, _), (ow, _) = rgeo.origin, rgeo.size
    front = {}  # right-image column -> largest disparity landing there
    for x in range(scene.size[0]):
        if np.isfinite(d[x]):
            xr = int(round(x - d[x]))
            front[xr] = max(front.get(xr, -1.0), d[x])
    known = [x for x in cols if np.isfinite(d[x])]
    seen = [x for x in known if ox <= x - d[x] <= ox + ow - 1 and front[int(round(x - d[x]))] - d[x] < 1.0]
    assert 0.5 < s.ceiling < 1.0
    assert s.ceiling == pytest.approx(len(seen) / len(known), abs=0.02)


# ---- packing geometry ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene() -> Scene:
    from pathlib import Path

    left, right, disp = motorcycle(200)
    return Scene("moto", left, right, disp, "generic", Path("."))


def decode_frames(packed) -> list[np.ndarray]:
    from PIL import Image

    im = Image.open(io.BytesIO(packed.data))
    frames = []
    for k in range(getattr(im, "n_frames", 1)):
        im.seek(k)
        frames.append(np.asarray(im.convert("RGB")).astype(np.float32))
    return frames


def test_eye_geometry_round_trip():
    geo = EyeGeometry(frame=0, origin=(5, 2), offset=(12, 6), size=(100, 80), scale=(0.83, 0.87))
    X, Y = np.meshgrid(np.arange(0, 90, 0.5), np.arange(0, 70, 0.5))
    x, y = geo.file_to_scene(X, Y)
    X2, Y2 = geo.scene_to_file(x, y)
    np.testing.assert_allclose(X2, X, atol=1e-9)
    np.testing.assert_allclose(Y2, Y, atol=1e-9)
    # the crop origin and canvas offset: scene pixel (5, 2) sits at canvas (12, 6)
    assert geo.scene_to_file(np.array(5.0), np.array(2.0)) == pytest.approx(((12.5 * 0.83) - 0.5, 6.5 * 0.87 - 0.5))
    assert geo.file_box() == pytest.approx((12 * 0.83, 6 * 0.87, 112 * 0.83, 86 * 0.87))


@pytest.mark.parametrize("packing", PACKINGS)
def test_packed_views_hold_the_scene_pixels(scene, packing):
    packed = pack_scene(scene, packing)
    assert packed.expected_format == EXPECTED_FORMAT[packing]
    assert packed.ext == (".mpo" if packing == "mpo" else ".jpg")
    frames = decode_frames(packed)
    assert len(frames) == (2 if packing == "mpo" else 1)
    boxes = {}
    for eye, view in (("left", scene.left), ("right", scene.right)):
        geo = packed.eyes[eye]
        img = frames[geo.frame]
        x0, y0, x1, y1 = geo.file_box()
        boxes[eye] = (geo.frame, (x0, y0, x1, y1))
        X, Y = np.meshgrid(np.arange(int(x0) + 3, int(x1) - 3), np.arange(int(y0) + 3, int(y1) - 3))
        sx, sy = geo.file_to_scene(X.astype(float), Y.astype(float))
        assert sx.min() >= 0 and sy.min() >= 0 and sx.max() < view.shape[1] - 1 and sy.max() < view.shape[0] - 1
        # the scene view sampled where the geometry says each file pixel came from (a light blur stands in
        # for the resize's area filter) matches the decoded pixels; moved by one scene pixel it does not
        blur = cv2.GaussianBlur(view.astype(np.float32), (0, 0), 0.6)

        def diff(dx: float, dy: float) -> float:
            s = cv2.remap(blur, (sx + dx).astype(np.float32), (sy + dy).astype(np.float32), cv2.INTER_LINEAR)
            return float(np.abs(img[Y, X] - s).mean())

        here = diff(0, 0)
        assert here < 8.0, (eye, here)  # JPEG quality 80-92 on a textured scene
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            assert here < 0.7 * diff(dx, dy), (eye, dx, dy, here, diff(dx, dy))
    if packing == "cross":  # right eye stored first
        assert boxes["right"][1][0] < boxes["left"][1][0]
    elif packing == "sbs":
        assert boxes["left"][1][0] < boxes["right"][1][0]
    elif packing == "ou":
        assert boxes["left"][1][1] < boxes["right"][1][1]
    else:
        assert (boxes["left"][0], boxes["right"][0]) == (0, 1)
    # the degradation: a vertical offset and a convergence shift between the eyes, deterministic
    deg = packed.degradation
    assert abs(deg.shift_y) in (1, 2) and 10 <= abs(deg.shift_x_permille) <= 40
    assert pack_scene(scene, packing).data == packed.data


def test_the_stress_packing_damages_only_what_it_says(scene):
    """``hard``: the sbs layout and the same geometry, plus heavy JPEG, a blurred and re-exposed right
    view and noise on both, all deterministic; the four default packings carry none of it."""
    packed = pack_scene(scene, "hard")
    deg = packed.degradation
    assert packed.expected_format == "side_by_side" and "hard" not in PACKINGS
    assert 10 <= deg.jpeg_quality <= 40 and 0.5 <= deg.blur_px <= 3.0
    assert 2 <= deg.noise <= 10 and 0.6 <= deg.gain <= 1.4
    assert pack_scene(scene, "hard").data == packed.data
    assert packed.eyes["left"].file_box()[0] < packed.eyes["right"].file_box()[0]  # left eye first
    for p in PACKINGS:
        d = pack_scene(scene, p).degradation
        assert (d.blur_px, d.noise, d.gain) == (0.0, 0.0, 1.0)
    frame = decode_frames(packed)[0].astype(np.float32)
    views = {}
    for eye, view in (("left", scene.left), ("right", scene.right)):
        geo = packed.eyes[eye]
        x0, y0, x1, y1 = geo.file_box()
        X, Y = np.meshgrid(np.arange(int(x0) + 3, int(x1) - 3), np.arange(int(y0) + 3, int(y1) - 3))
        sx, sy = geo.file_to_scene(X.astype(float), Y.astype(float))
        ref = cv2.remap(view.astype(np.float32), sx.astype(np.float32), sy.astype(np.float32),
                        cv2.INTER_LINEAR)
        views[eye] = (frame[Y, X], ref)
    # the right view's exposure is the scene's times the gain (the mean survives blur, noise and JPEG)
    got, ref = views["right"]
    assert got.mean() / ref.mean() == pytest.approx(deg.gain, rel=0.05)
    # and it is blurred: less high-frequency energy than the left view's, against the same scene content
    def detail(img: np.ndarray) -> float:
        return float(np.abs(cv2.Laplacian(img, cv2.CV_32F)).mean())

    hf = {eye: detail(g) / detail(r) for eye, (g, r) in views.items()}
    assert hf["right"] < 0.8 * hf["left"], hf


def test_unknown_packing(scene):
    with pytest.raises(ValueError, match="unknown packing 'anaglyph'"):
        pack_scene(scene, "anaglyph")


# ---- triage judged against truth ------------------------------------------------------------------------
def row(scene: str, state: str, *, err: float | None, cov: float | None, order_ok: bool | None = True,
        reason: str | None = None) -> AuditRow:
    bad = None if cov is None else bool(err is None or err > BAD_ERROR or cov < BAD_COVERAGE)
    return AuditRow(scene=scene, packing="sbs", state=state, reason=reason, kept=state in KEPT_STATES,
                    ordinal_error=err, error_neq=err, inverted=0.0 if err is not None else None, coverage=cov,
                    format="side_by_side", format_ok=True, view_order="parallel", view_order_source="data",
                    view_order_ok=order_ok, score=0.5, bad=bad,
                    seconds={"ingest": 0.1, "flow": 0.5, "sky": 0.1, "total": 0.8, "export": 0.05, "score": 3.0},
                    item_id=scene, degradation={})


def test_summary_triage_confusion_precision_recall():
    rows = [row("a", "auto_rejected", err=0.50, cov=0.70, reason="low_coverage"),  # rejected, bad
            row("b", "auto_rejected", err=0.03, cov=0.80, reason="misaligned"),  # rejected, good
            row("c", "pending_review", err=0.04, cov=0.10),  # kept, bad (coverage under 30 %)
            row("d", "auto_accepted", err=0.02, cov=0.90),  # kept, good
            row("e", "pending_review", err=0.06, cov=0.50, order_ok=False),  # kept, good, wrong order
            row("f", "failed", err=None, cov=None, order_ok=None, reason="process_error")]  # no map
    s = summarize(rows)
    assert (s["total"], s["kept"]) == (6, 3)
    assert s["ordinal_error"] == pytest.approx(0.04)  # mean over kept maps c, d, e
    assert s["max_ordinal_error"] == pytest.approx(0.06)
    assert s["coverage"] == pytest.approx(0.5)
    assert s["view_order_errors"] == 1
    t = s["triage"]
    assert (t["rejected_bad"], t["rejected_good"], t["kept_bad"], t["kept_good"]) == (1, 1, 1, 2)
    assert t["precision"] == pytest.approx(0.5) and t["recall"] == pytest.approx(0.5)
    assert set(s["lost"]) == {"a/sbs", "b/sbs", "f/sbs"}
    assert s["lost"]["f/sbs"] == "failed:process_error"
    # ingest + export + process_item's wall time ("total", not added to its own stages); scoring excluded
    assert s["seconds_per_pair"] == pytest.approx(0.95)
    table = format_table(rows, s)
    assert "auto-reject precision: 50.0%   recall: 50.0%" in table
    assert "pairs kept: 3/6" in table
    assert summarize([])["total"] == 0


def test_summary_without_rejections_has_no_precision():
    s = summarize([row("d", "auto_accepted", err=0.02, cov=0.9)])
    assert s["triage"]["precision"] is None and s["triage"]["recall"] is None


# ---- end to end ----------------------------------------------------------------------------------------
E2E_WIDTH = 250


@pytest.fixture(scope="module")
def e2e_scene() -> Scene:
    from pathlib import Path

    left, right, disp = motorcycle(E2E_WIDTH)
    return Scene("motorcycle", left, right, disp, "generic", Path("."))


def run(scene, tmp_path, packings, **kw):
    return run_audit([scene], tmp_path / "work", packings=packings, n_pairs=20_000,
                     process=ProcessConfig(crf=False), **kw)


def test_audit_end_to_end_on_the_motorcycle(e2e_scene, tmp_path):
    rows, images = run(e2e_scene, tmp_path, ["sbs", "cross"], keep_images=True)
    assert [(r.scene, r.packing) for r in rows] == [("motorcycle", "sbs"), ("motorcycle", "cross")]
    for r in rows:
        assert r.format == "side_by_side" and r.format_ok, r
        assert r.view_order_ok is True, r
        # sbs stores the left eye first: kept as stored when the votes are too few ("undecided")
        assert r.view_order in (("parallel", "undecided") if r.packing == "sbs" else ("cross_eyed",)), r
        assert r.ordinal_error is not None and r.ordinal_error < 0.15, r
        assert r.inverted < 0.08, r
        assert 0.3 < r.coverage <= 1.0, r
        assert set(r.seconds) >= {"ingest", "flow", "export", "score"}
        ims = images[r.item_id]
        assert ims["rd"].shape == ims["image"].shape[:2] == ims["disagreement"].shape
    s = summarize(rows)
    assert s["view_order_errors"] == 0 and s["format_errors"] == 0


def test_a_flipped_view_order_is_reported(e2e_scene, tmp_path, monkeypatch):
    """Force the data decision to the wrong order: the audit must see the right eye exported as the left
    and the depth inverted."""
    import tasks.labels.process
    from tasks.labels.view_order import OrderDecision

    decide = tasks.labels.process.decide_order

    def flipped(*args, **kwargs):
        d = decide(*args, **kwargs)  # the file is parallel sbs: force the data decision to cross-eyed
        return OrderDecision("cross_eyed", False, "data", -abs(d.evidence), d.cues)

    monkeypatch.setattr(tasks.labels.process, "decide_order", flipped)
    rows, _ = run(e2e_scene, tmp_path, ["sbs"], keep_images=False)
    (r,) = rows
    assert r.view_order == "cross_eyed"
    assert r.view_order_ok is False
    assert r.ordinal_error > 0.5 and r.inverted > 0.5, r
    assert r.bad is True
    s = summarize(rows)
    assert s["view_order_errors_all_maps"] == 1
    assert "cross_eyed ✗" in format_table(rows, s)


def test_gt_quantisation_labels_counted_by_hand():
    """Integer GT (Tsukuba) is known to +-0.5 px: two pixels on one level may not be equal at all."""
    d_i = np.array([10.0, 10.0, 20.0, 100.0])
    d_j = np.array([10.0, 20.0, 10.0, 100.0])
    # 10 vs 10: depth ratio in [9.5/10.5, 10.5/9.5] = [0.905, 1.105] straddles 1 +- sigma: undecidable (2)
    # 10 vs 20: ratio >= 19.5/10.5 = 1.86: i farther (+1); 20 vs 10: -1
    # 100 vs 100: ratio in [0.990, 1.010], inside [1/1.02, 1.02]: a tie the GT can vouch for (0)
    assert gt_ordinal_labels(d_i, d_j, 1.0).tolist() == [2, 1, -1, 0]
    assert gt_ordinal_labels(d_i, d_j, 0.0).tolist() == [0, 1, -1, 0]
    assert gt_step(np.array([[1.0, 2.0], [3.0, np.nan]])) == 1.0
    assert gt_step(np.array([[1.0, 1.25, 1.5]])) == 0.25
    assert gt_step(np.array([[1.0, 1.0 + 1 / 256]])) == 0.0  # KITTI's 1/256: continuous enough
    # ordinal_error leaves the undecidable pairs out and says how many
    gt = 1.0 / np.array([[10.0, 10.0, 20.0]])  # depth of disparities 10, 10, 20
    pred = np.array([[1.0, 2.0, 0.5]])
    e = ordinal_error(pred, gt, np.ones((1, 3), bool), pairs=(np.array([0, 0, 1]), np.array([1, 2, 2])),
                      gt_quantum=1.0)
    # (0,1) undecidable; (0,2) GT +1, map +1 right; (1,2) GT +1, map +1 right
    assert e["pairs"] == 2 and e["error"] == 0.0 and e["ambiguous"] == pytest.approx(1 / 3)
    e0 = ordinal_error(pred, gt, np.ones((1, 3), bool), pairs=(np.array([0, 0, 1]), np.array([1, 2, 2])))
    assert e0["pairs"] == 3 and e0["error"] == pytest.approx(1 / 3)  # exact GT: (0,1) a tie the map orders
