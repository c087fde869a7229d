"""Alignment from flow, view order, the depth offset choice, encoding, ordinal labels."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from tasks.labels.consistency import consistency_mask
from tasks.labels.correspondence import build_backend
from tasks.labels.depth import (MAX_DEPTH_VALUE, SKY_VALUE, decide_view_order, disparity_to_depth, encode_depth,
                         ordinal_labels)
from tasks.labels.rectify import Alignment, fit_alignment, rectified_disparity


def _similarity_flow(h, w, disparity, rotation_deg, scale, ty):
    """Flow of a right view that is a similarity (about the centre) of a rectified one."""
    cx, cy = (w - 1) / 2, (h - 1) / 2
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float64) - cx, np.arange(h, dtype=np.float64) - cy)
    th = np.radians(rotation_deg)
    xr, yr = gx - disparity, gy
    xe = scale * (np.cos(th) * xr - np.sin(th) * yr)
    ye = scale * (np.sin(th) * xr + np.cos(th) * yr) + ty
    return np.stack([xe - gx, ye - gy], axis=-1).astype(np.float32)


def test_alignment_recovers_offset_rotation_scale_and_true_disparity():
    h, w = 120, 160
    disparity = np.where(np.arange(w)[None, :] > 80, 6.0, 2.0).repeat(h, 0)
    flow = _similarity_flow(h, w, disparity, rotation_deg=0.8, scale=1.01, ty=3.0)
    mask = np.ones((h, w), bool)
    fit = fit_alignment(flow, mask)
    assert fit.ty == pytest.approx(3.0, abs=0.05)
    assert fit.rotation_deg == pytest.approx(0.8, abs=0.05)
    assert fit.scale == pytest.approx(1.01, abs=0.002)
    d, vres = rectified_disparity(flow, fit)
    assert np.abs(d - disparity).max() < 0.15  # the rotation's horizontal shear is gone too
    assert np.abs(vres).max() < 0.1
    # without compensation the same pair looks misaligned everywhere
    _, raw = rectified_disparity(flow, Alignment())
    assert (np.abs(raw) > 2).mean() > 0.5


def test_implausible_alignment_falls_back_to_pure_offset():
    h, w = 60, 80
    flow = _similarity_flow(h, w, np.zeros((h, w)), rotation_deg=20, scale=1.0, ty=1.0)
    fit = fit_alignment(flow, np.ones((h, w), bool))
    assert fit.a == 0 and fit.b == 1


@pytest.fixture(scope="module")
def motorcycle_small():
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    s = 256 / left.shape[1]
    return [cv2.resize(v, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for v in (left, right)]


def _order(first, second):
    fwd, bwd = build_backend("dis").flow([first, second], [second, first])
    mask = consistency_mask(fwd, bwd)
    d, _ = rectified_disparity(fwd, fit_alignment(fwd, mask))
    return decide_view_order(first, d, mask)


def test_view_order_parallel_and_flip_on_cross_eyed_pair(motorcycle_small):
    left, right = motorcycle_small
    assert _order(left, right).order == "parallel"
    crossed = _order(right, left)  # a cross-eyed file read as parallel: first view is the right eye
    assert crossed.order == "cross_eyed" and crossed.margin < -0.25


def test_view_order_does_not_depend_on_a_horizontal_shift(motorcycle_small):
    left, right = motorcycle_small
    shifted = np.roll(right, 12, axis=1)  # convergence offset: disparities change sign in places
    shifted[:, :12] = 0
    assert _order(left, shifted).order == "parallel"


def test_view_order_undecided_without_occlusions():
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur((rng.random((64, 64, 3)) * 255).astype(np.uint8), (0, 0), 1)
    order = decide_view_order(img, np.full((64, 64), 3.0, np.float32), np.ones((64, 64), bool))
    assert order.order == "undecided" and order.parallel_votes == order.cross_votes == 0


def test_depth_offset_by_hand():
    # d_far = 2, d_near = 10 (1st / 99th percentile of these two values ~ themselves), K = 5
    d = np.array([[2.0, 10.0, 6.0, 1.0]], np.float32)
    reliable = np.array([[True, True, False, False]])
    g, st = disparity_to_depth(d, reliable, range_ratio=5.0, far_percentile=0, near_percentile=100)
    c = (5 * 2 - 10) / 4  # = 0
    assert st.offset == pytest.approx(c)
    assert g[0, 0] / g[0, 1] == pytest.approx(5.0)  # far/near = K
    assert g[0, 2] == pytest.approx(1 / 6)
    assert g[0, 3] == pytest.approx(1 / 1.0)  # 1 < floor (= c + (d_far - c)/2 = 1): clamped at twice far depth
    # a horizontal shift of a view shifts every disparity: ratios, hence labels, do not change
    g2, _ = disparity_to_depth(d + 7.0, reliable, range_ratio=5.0, far_percentile=0, near_percentile=100)
    np.testing.assert_allclose(g2 / g2[0, 0], g / g[0, 0], rtol=1e-5)


def test_encode_depth_larger_is_farther_and_sky():
    g = np.array([[1.0, 2.0], [4.0, 100.0]], np.float32)
    sky = np.array([[False, False], [False, True]])
    enc = encode_depth(g, sky)
    assert enc.dtype == np.uint16
    assert enc[1, 1] == SKY_VALUE and enc[1, 0] == MAX_DEPTH_VALUE
    assert enc[0, 0] < enc[0, 1] < enc[1, 0]
    assert enc[0, 1] == round(MAX_DEPTH_VALUE / 2)


def test_ordinal_labels_by_hand():
    gi = np.array([1.0, 1.03, 1.0, 1.01])
    gj = np.array([1.0, 1.0, 1.03, 1.0])
    np.testing.assert_array_equal(ordinal_labels(gi, gj), [0, 1, -1, 0])


def test_far_margin_by_hand():
    # narrow range: d from 20 to 22 px. K = 10 alone: c = (10*20 - 22)/9 = 19.78 (0.22 px below d_far);
    # with a 10 px margin c = 10, so a 2 % depth ratio at the far end needs 0.2 px of disparity
    d = np.array([[20.0, 21.0, 22.0, 20.1]], np.float32)
    rel = np.ones_like(d, bool)
    _, k_only = disparity_to_depth(d, rel, range_ratio=10, far_percentile=0, near_percentile=100)
    assert k_only.offset == pytest.approx((10 * 20 - 22) / 9)
    g, stats = disparity_to_depth(d, rel, range_ratio=10, min_far_margin_px=10, far_percentile=0, near_percentile=100)
    assert stats.offset == pytest.approx(10.0)
    assert g[0, 0] / g[0, 3] == pytest.approx(10.1 / 10.0)  # 20.0 vs 20.1 px: a 1 % ratio -> a tie at sigma 2 %
    assert ordinal_labels(g[0, 0], g[0, 3]) == 0
    g_k, _ = disparity_to_depth(d, rel, range_ratio=10, far_percentile=0, near_percentile=100)
    assert ordinal_labels(g_k[0, 0], g_k[0, 3]) == 1  # K alone calls 0.1 px of noise a 45 % depth step
    # a wide range is left to K: c_K is already more than the margin below d_far
    wide = np.array([[2.0, 200.0]], np.float32)  # range 198 px > 9 M
    _, s = disparity_to_depth(wide, np.ones_like(wide, bool), range_ratio=10, min_far_margin_px=10,
                              far_percentile=0, near_percentile=100)
    assert s.offset == pytest.approx((10 * 2 - 200) / 9)


def test_smooth_disparity_averages_within_surfaces_and_keeps_edges():
    """Two planes 10 px apart with 0.2 px noise: the noise drops within each plane, the edge stays sharp
    (no pixel takes a value between the planes), unreliable pixels neither change nor leak."""
    from tasks.labels.depth import smooth_disparity

    rng = np.random.default_rng(0)
    truth = np.where(np.arange(120)[None, :] < 60, 10.0, 20.0).repeat(80, 0).astype(np.float32)
    noisy = truth + rng.normal(0, 0.2, truth.shape).astype(np.float32)
    reliable = np.ones(truth.shape, bool)
    reliable[:, 30] = False
    noisy[:, 30] = 500.0  # an unreliable outlier column: must not leak into its neighbours
    out = smooth_disparity(noisy, reliable, sigma_px=5.0, range_px=0.5)
    inner = reliable.copy()
    inner[:, 50:70] = False  # away from the edge
    assert np.abs(out - truth)[inner].std() < 0.5 * np.abs(noisy - truth)[inner].std()
    assert np.abs(out - truth)[reliable].max() < 1.5  # nothing mixed across the 10 px edge or from the outlier
    assert np.array_equal(out[:, 30], noisy[:, 30])
    assert np.array_equal(smooth_disparity(noisy, reliable, sigma_px=0.0), noisy)
