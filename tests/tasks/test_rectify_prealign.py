"""tasks/labels/rectify.py pre-alignment from keypoint matches: the motorcycle's right view moved by known
similarities (rotated, scaled, offset, shifted by a wide baseline) is brought back onto the left
view's rows; the left view is never warped, so crop boxes still map straight back to source pixels."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.labels import crop as crop_mod
from tasks.labels.correspondence import build_backend
from tasks.labels.process import process_pair
from tasks.labels.rectify import PreAlignment, apply_prealignment, fit_prealignment
from tasks.labels.sky import build_sky
from tasks.labels.settings import ProcessConfig
from tests.tasks.stereo_scenes import homography_warp, motorcycle, similarity_warp, texture

# (rotation deg, scale, tx, ty) of the right view: a scanned stereo card's half with a wide baseline,
# and a hand-held pair turned and zoomed the other way
CASES = [(2.0, 1.05, 150.0, 4.0), (-3.0, 0.95, -40.0, -6.0)]


@pytest.fixture(scope="module")
def moto():
    return motorcycle(370)


@pytest.fixture(scope="module")
def backends():
    return build_backend("dis"), build_sky("heuristic")


def _matrix3(pre: PreAlignment) -> np.ndarray:
    return np.vstack([np.array(pre.matrix, np.float64), [0.0, 0.0, 1.0]])


def _vertical_flow_on_gt(left, right_aligned, gt, backend):
    """DIS vertical flow left -> aligned right on GT-valid pixels whose match lies on the image."""
    fwd = backend.flow([left], [right_aligned])[0]
    ys, xs = np.nonzero(gt > 0)
    xe = np.round(xs + fwd[ys, xs, 0]).astype(int)
    ye = np.round(ys + fwd[ys, xs, 1]).astype(int)
    h, w = gt.shape
    on = (xe >= 0) & (xe < w) & (ye >= 0) & (ye < h)
    on[on] &= right_aligned[ye[on], xe[on]].max(axis=1) > 0  # not the black outside of the warp
    assert on.mean() > 0.5
    return fwd[ys[on], xs[on], 1]


@pytest.mark.parametrize("case", CASES, ids=["rot2_s1.05_tx150_ty4", "rot-3_s0.95_tx-40_ty-6"])
def test_fitted_similarity_undoes_the_known_one(moto, backends, case):
    left, right, gt = moto
    rotation, scale, tx, ty = case
    warped, forward = similarity_warp(right, rotation, scale, tx, ty)
    pre = fit_prealignment(left, warped)
    assert pre.applied and pre.inliers >= 100 and pre.inliers / pre.matches > 0.7
    assert pre.rotation_deg == pytest.approx(rotation, abs=0.15)
    assert pre.scale == pytest.approx(scale, abs=0.005)
    assert pre.residual_px < 0.5
    # aligned(x) = warped(M x) = right(forward^-1 M x): forward^-1 M must be a pure horizontal shift
    # (the one that centres the disparities), with no rotation, scale or vertical offset left
    rest = np.linalg.inv(forward) @ _matrix3(pre)
    np.testing.assert_allclose(rest[:2, :2], np.eye(2), atol=3e-3)
    assert abs(rest[1, 2]) < 0.5
    assert abs(rest[0, 2] + np.median(gt[gt > 0])) < 6  # shift = -(median disparity) of the matches
    # the rows: before, the true matches of the left pixels lie px off their rows in the warped view;
    # after, DIS finds them on the left view's rows
    ys, xs = np.nonzero(gt > 0)
    true_in_warped = forward @ np.stack([xs - gt[ys, xs], ys, np.ones(xs.size)])
    assert np.median(np.abs(true_in_warped[1] - ys)) > 3
    aligned = apply_prealignment(warped, pre)
    assert aligned.shape == warped.shape and aligned.dtype == warped.dtype
    dy = _vertical_flow_on_gt(left, aligned, gt, backends[0])
    assert abs(np.median(dy)) < 0.5 and np.median(np.abs(dy)) < 0.5


@pytest.mark.parametrize("case", [(1.0, 1.02, 30.0, 3.0, 0.06, -0.04), (-2.0, 0.97, -20.0, -4.0, -0.05, 0.05)],
                         ids=["keystone+rot1", "keystone+rot-2"])
def test_fitted_homography_undoes_a_known_keystone(moto, backends, case):
    """The right view moved by a known homography (a similarity and a perspective that bends rows by
    several px at the corners, as on a stereo card scanned at an angle): the fitted homography undoes
    it up to a row-preserving map (rows land on the left view's rows); the left view is not warped,
    so process_pair's crop box still indexes the given left view."""
    left, right, gt = moto
    warped, forward = homography_warp(right, *case)
    pre = fit_prealignment(left, warped)
    assert pre.applied and pre.projective != (0.0, 0.0) and pre.keystone_px > 1.0
    assert pre.residual_px < 0.5
    # aligned(x) = warped(M x) = right(forward^-1 M x): forward^-1 M must keep every row (second and
    # third rows (0, 1, 0) and (0, 0, 1) up to scale)
    rest = np.linalg.inv(forward) @ pre.homography()
    rest /= rest[2, 2]
    h, w = left.shape[:2]
    ys, xs = np.mgrid[0:h:20, 0:w:20]
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)]).astype(np.float64)
    mapped = rest @ pts
    assert np.abs(mapped[1] / mapped[2] - pts[1]).max() < 0.6  # every row stays its row (sub-pixel)
    # before, the true matches lie px off their rows; after, DIS finds them on the rows
    ys, xs = np.nonzero(gt > 0)
    true_in_warped = forward @ np.stack([xs - gt[ys, xs], ys, np.ones(xs.size)])
    assert np.median(np.abs(true_in_warped[1] / true_in_warped[2] - ys)) > 2
    aligned = apply_prealignment(warped, pre)
    dy = _vertical_flow_on_gt(left, aligned, gt, backends[0])
    assert abs(np.median(dy)) < 0.5 and np.median(np.abs(dy)) < 0.5
    # the whole stage: the exported image is the given left view, cut at the recorded box
    res = process_pair(left, warped, *backends, settings=ProcessConfig(crf=False))
    x0, y0, x1, y1 = res.box
    assert np.array_equal(res.image, left[y0:y1, x0:x1])
    assert res.info["prealign"]["projective"] == list(pre.projective)


def test_a_similarity_is_not_given_projective_terms(moto):
    left, right, _ = moto
    warped, _ = similarity_warp(right, 2.0, 1.03, 20.0, 4.0)
    pre = fit_prealignment(left, warped)
    assert pre.applied and pre.projective == (0.0, 0.0) and pre.keystone_px == 0.0


def test_pure_vertical_offset_is_recovered(moto):
    left, right, _ = moto
    warped, _ = similarity_warp(right, ty=5.0)
    pre = fit_prealignment(left, warped)
    assert pre.applied  # |ty| >= min_ty_px
    assert pre.ty == pytest.approx(5.0, abs=0.3)
    assert abs(pre.rotation_deg) < 0.1 and pre.scale == pytest.approx(1.0, abs=0.002)


def test_an_aligned_pair_is_not_resampled(moto):
    left, right, _ = moto
    pre = fit_prealignment(left, right)
    assert not pre.applied and pre.matches >= 30 and pre.residual_px < 0.5
    assert abs(pre.rotation_deg) < 0.3 and abs(pre.ty) < 1.0
    assert apply_prealignment(right, pre) is right
    # below every threshold (1.5 px offset, 0.3 degrees, the pair's own disparities): not resampled either
    slightly, _ = similarity_warp(right, rotation_deg=0.3, ty=1.5)
    assert not fit_prealignment(left, slightly).applied


def test_too_few_matches_change_nothing():
    flat = np.full((120, 160, 3), 128, np.uint8)
    pre = fit_prealignment(flat, flat.copy())
    assert pre == PreAlignment(matches=pre.matches) and pre.matches < 30 and not pre.applied
    # two unrelated textures: matches, if any, do not agree on a geometry
    a, b = texture(120, 160, 1), texture(120, 160, 2)
    assert not fit_prealignment(a, b).applied
    assert apply_prealignment(b, pre) is b


def _source_crop(source, result, view_box):
    h, w = result.processed_size[1], result.processed_size[0]
    rel, absolute = crop_mod.box_to_source(result.box, result.processed_size, view_box, (w, h))
    x0, y0, x1, y1 = absolute
    return rel, source[y0:y1, x0:x1]


@pytest.mark.parametrize("case", [(0.0, 1.0, 150.0, 0.0), CASES[0]], ids=["shift150", "rot2_s1.05_tx150_ty4"])
def test_wide_baseline_pair_still_gets_a_map(moto, backends, case):
    """The right view shifted by 150 px (40 % of the width): dense flow alone finds ~2 % consistent
    pixels; pre-aligned, the pair gets a map, cropped from the unwarped left view."""
    left, right, gt = moto
    h, w = gt.shape
    warped, _ = similarity_warp(right, *case)
    res = process_pair(left, warped, *backends, settings=ProcessConfig(crf=False))
    assert res.info["prealign"]["applied"] and not res.swapped_views
    q = res.quality
    assert q["coverage"] > 0.5 and q["raw_consistency"] > 0.3 and q["keypoint_residual_px"] < 0.5
    assert q["disparity_range_px"] > 10 and q["crop_fraction"] > 0.4
    x0, y0, x1, y1 = res.box
    assert np.array_equal(res.image, left[y0:y1, x0:x1])  # the left view is never warped
    # the crop box maps back to the source file: here a side-by-side with the left eye first
    source = np.hstack([left, warped])
    rel, from_source = _source_crop(source, res, [0, 0, w, h])
    assert rel == res.box and np.array_equal(from_source, res.image)
    # the map is the motorcycle's: larger depth where the GT disparity is smaller, on reliable pixels
    from scipy.stats import spearmanr

    g = gt[y0:y1, x0:x1]
    ok = res.reliable & ~res.sky & (g > 0)
    assert ok.mean() > 0.4
    assert spearmanr(res.depth[ok], g[ok]).statistic < -0.8
    # without the pre-alignment the same pair has (almost) no consistent pixels
    plain = process_pair(left, warped, *backends, settings=ProcessConfig(crf=False, prealign=False))
    assert plain.quality["raw_consistency"] < 0.1 and plain.quality["coverage"] < 0.2


def test_swapped_wide_baseline_pair_exports_the_unwarped_left_eye(moto, backends):
    """Given right-first, the views are swapped and the pre-alignment refitted the other way round:
    the exported image is still a plain crop of the true left eye (the second half of the source)."""
    left, right, gt = moto
    h, w = gt.shape
    warped, _ = similarity_warp(right, 0.0, 1.0, 150.0, 0.0)
    res = process_pair(warped, left, *backends, settings=ProcessConfig(crf=False))
    assert res.swapped_views and res.view_order == "cross_eyed"
    assert res.info["prealign"]["applied"] and res.quality["coverage"] > 0.5
    x0, y0, x1, y1 = res.box
    assert np.array_equal(res.image, left[y0:y1, x0:x1])
    source = np.hstack([warped, left])  # a cross-eyed side-by-side: the left eye is the second half
    rel, from_source = _source_crop(source, res, [w, 0, 2 * w, h])
    assert rel == res.box and np.array_equal(from_source, res.image)


def test_prealigning_inside_process_pair_equals_giving_it_the_aligned_view(moto, backends):
    """Every view-order cue reads the aligned right view (the flows are computed on it)."""
    left, right, _ = moto
    warped, _ = similarity_warp(right, *CASES[1])
    pre = fit_prealignment(left, warped)
    inside = process_pair(left, warped, *backends, settings=ProcessConfig(crf=False))
    given = process_pair(left, apply_prealignment(warped, pre), *backends, settings=ProcessConfig(crf=False, prealign=False))
    assert inside.info["prealign"]["applied"] and not given.info["prealign"]["applied"]
    assert inside.info["view_order_votes"] == given.info["view_order_votes"]
    assert inside.box == given.box and np.array_equal(inside.depth, given.depth)
