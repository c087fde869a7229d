"""Metrics against values worked out by hand."""
from __future__ import annotations

import math

import numpy as np
import pytest

from model import metrics as M


def test_parse_relations():
    assert M.parse_relations(["<", ">", "="]).tolist() == [-1, 1, 0]
    assert M.parse_relations(np.array([1, -1])).tolist() == [1, -1]
    with pytest.raises(ValueError):
        M.parse_relations(["?"])


def test_ordinal_relation_ratio_threshold():
    # 1.03 / 1 > 1.02 -> farther; 1.01 / 1 is within the threshold -> equal; 1 vs 1.03 -> closer
    a = np.array([1.03, 1.01, 1.0, 0.0])
    b = np.array([1.0, 1.0, 1.03, 0.0])
    assert M.ordinal_relation(a, b, 0.02).tolist() == [1, 0, -1, 0]
    # sigma = 0: any difference counts, exact ties are 0
    assert M.ordinal_relation(a, b, 0.0).tolist() == [1, 1, -1, 0]
    with pytest.raises(ValueError):
        M.ordinal_relation(np.array([-1.0]), np.array([1.0]), 0.02)


def test_whdr_counts_ties_as_wrong():
    # pred relations: 1<2 (A closer), 3>1 (A farther), 2=2 (tie), 5>4 (A farther)
    # truth:          '<'  ok,        '<'  wrong,      '>'  wrong (tie), '>'  ok   -> 2 / 4
    r = M.whdr(np.array([1, 3, 2, 5.0]), np.array([2, 1, 2, 4.0]), ["<", "<", ">", ">"])
    assert r == {"whdr": 0.5, "ties": 0.25, "n_pairs": 4.0}
    assert M.whdr(np.ones(3), np.ones(3), ["<", ">", "<"])["whdr"] == 1.0  # constant map: all ties
    assert math.isnan(M.whdr(np.zeros(0), np.zeros(0), [])["whdr"])


def test_wkdr_hand_counted():
    # gt relations (sigma 0.02): 1 vs 1.01 equal; 1 vs 2 closer; 2 vs 1 farther; 1 vs 1.5 closer
    gt_a, gt_b = np.array([1.0, 1.0, 2.0, 1.0]), np.array([1.01, 2.0, 1.0, 1.5])
    # pred relations:            closer       closer      closer      farther
    pred_a, pred_b = np.array([1.0, 1.0, 1.0, 2.0]), np.array([1.5, 2.0, 3.0, 1.0])
    r = M.wkdr(pred_a, pred_b, gt_a, gt_b, sigma=0.02)
    # wrong: pair 0 (equal pair called unequal), pair 2, pair 3 -> 3/4; equal pairs 1/1; unequal 2/3
    assert r["wkdr"] == pytest.approx(0.75)
    assert r["wkdr_eq"] == pytest.approx(1.0)
    assert r["wkdr_neq"] == pytest.approx(2 / 3)
    assert r["n_pairs"] == 4


def test_wkdr_pooled_counts_and_prediction_threshold():
    gt_a, gt_b = np.array([1.0, 1.0]), np.array([1.01, 2.0])
    # the prediction says 1 vs 1.015: equal under sigma=0.02, unequal under pred_sigma=0
    c1 = M.wkdr_counts(np.array([1.0]), np.array([1.015]), gt_a[:1], gt_b[:1])
    c2 = M.wkdr_counts(np.array([1.0]), np.array([1.015]), gt_a[1:], gt_b[1:])
    pooled = M.wkdr_from_counts(M.sum_counts([c1, c2]))
    assert pooled["wkdr"] == 0.5 and pooled["wkdr_eq"] == 0.0 and pooled["wkdr_neq"] == 1.0
    strict = M.wkdr(np.array([1.0]), np.array([1.015]), gt_a[:1], gt_b[:1], pred_sigma=0.0)
    assert strict["wkdr"] == 1.0
    assert math.isnan(strict["wkdr_neq"])  # no unequal pairs


def test_sample_pairs_distinct_valid_and_seeded():
    valid = np.zeros((6, 7), dtype=bool)
    valid[1:4, 2:6] = True
    a, b = M.sample_pairs(valid, 500, rng=3)
    assert a.shape == b.shape == (500,)
    assert np.all(a != b)
    assert valid.ravel()[a].all() and valid.ravel()[b].all()
    a2, b2 = M.sample_pairs(valid, 500, rng=np.random.default_rng(3))
    assert np.array_equal(a, a2) and np.array_equal(b, b2)
    # all 12 valid pixels get used
    assert set(np.concatenate([a, b])) == set(np.flatnonzero(valid))
    one = np.zeros((3, 3), dtype=bool)
    one[1, 1] = True
    assert M.sample_pairs(one, 10)[0].size == 0


def test_depth_errors_hand_computed():
    pred = np.array([[1.0, 1.5], [3.0, 2.0]])
    gt = np.array([[1.0, 1.0], [2.0, 1.0]])
    e = M.depth_errors(pred, gt)
    # |p-g| = 0, .5, 1, 1 -> rms = sqrt(2.25 / 4) = 0.75; rel = (0 + .5 + .5 + 1) / 4 = 0.5
    assert e["rms"] == pytest.approx(0.75)
    assert e["rel"] == pytest.approx(0.5)
    # log10: (0 + 2 log10 1.5 + log10 2) / 4
    assert e["log10"] == pytest.approx((2 * math.log10(1.5) + math.log10(2)) / 4)
    # ratios 1, 1.5, 1.5, 2: < 1.25 -> 1/4; < 1.5625 -> 3/4; < 1.953125 -> 3/4
    assert (e["delta1"], e["delta2"], e["delta3"]) == pytest.approx((0.25, 0.75, 0.75))


def test_depth_errors_mask_and_clip():
    pred = np.array([[-5.0, 2.0], [9.0, 100.0]])
    gt = np.array([[1.0, 2.0], [0.0, 4.0]])
    mask = np.array([[True, True], [True, False]])
    # valid: mask & gt > 0 -> pixels (0,0), (0,1); pred -5 clipped to min_depth 0.5
    e = M.depth_errors(pred, gt, mask, min_depth=0.5, max_depth=10)
    assert e["rel"] == pytest.approx((0.5 / 1 + 0) / 2)
    assert e["delta1"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        M.depth_errors(pred, np.zeros((2, 2)))


def test_normalize_to_stats():
    out = M.normalize_to_stats(np.array([[0.0, 2.0]]), mean=5.0, std=2.0)
    # z = [-1, 1] -> 5 + 2 z
    assert out.tolist() == [[3.0, 7.0]]
    assert M.normalize_to_stats(np.ones((2, 2)), 3.0, 1.0).tolist() == [[3.0, 3.0], [3.0, 3.0]]


def test_fit_scale_shift_hand_computed():
    assert M.fit_scale_shift(np.array([0.0, 1, 2]), np.array([1.0, 3, 5])) == pytest.approx((2.0, 1.0))
    # p = 0..3 (mean 1.5), g = 0,1,1,2 (mean 1): cov 3, var 5 -> s = 0.6, t = 1 - 0.9 = 0.1
    assert M.fit_scale_shift(np.array([0.0, 1, 2, 3]), np.array([0.0, 1, 1, 2])) == pytest.approx((0.6, 0.1))
    # constant prediction -> the mean of the target
    assert M.fit_scale_shift(np.ones(3), np.array([1.0, 2, 6])) == (0.0, 3.0)
    aligned = M.align_scale_shift(np.array([[0.0, 1.0], [2.0, 50.0]]), np.array([[1.0, 3.0], [5.0, 0.0]]),
                                  mask=np.array([[True, True], [True, False]]))
    assert aligned[0].tolist() == pytest.approx([1.0, 3.0]) and aligned[1, 1] == pytest.approx(101.0)


def test_align_scale_shift_inverse():
    gt = np.array([1.0, 2.0, 4.0])  # inverse depth 1, .5, .25
    pred_disp = np.array([4.0, 2.0, 1.0])  # = 4 x inverse depth -> s = .25, t = 0
    assert M.align_scale_shift_inverse(pred_disp, gt) == pytest.approx(gt)
    # a prediction whose aligned disparity goes below 1/max_depth is capped at max_depth
    out = M.align_scale_shift_inverse(np.array([4.0, 2.0, 1.0, -10.0]), np.array([1.0, 2.0, 4.0, 0.0]), max_depth=8.0)
    assert out[:3] == pytest.approx(gt) and out[3] == pytest.approx(8.0)


def test_mean_metrics():
    assert M.mean_metrics([{"rms": 1.0}, {"rms": 3.0}]) == {"rms": 2.0}
    assert M.mean_metrics([]) == {}


def test_nonnegative_scale_never_flips_order():
    p, g = np.array([3.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0])
    assert M.fit_scale_shift(p, g) == pytest.approx((-1.0, 4.0))
    assert M.fit_scale_shift(p, g, nonnegative=True) == (0.0, 2.0)
    assert M.align_scale_shift(p, g, nonnegative=True).tolist() == [2.0, 2.0, 2.0]
