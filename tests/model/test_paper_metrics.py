"""Tukey's biweight, Chen et al.'s WKDR with its tau selection, and mIoU, against hand-worked values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model import metrics as M
from model.losses import TUKEY_C, mad_scale, tukey_biweight, tukey_biweight_loss


# ----------------------------------------------------------------------------- Tukey's biweight
def _rho(u: float, c: float = 4.6851) -> float:
    """Tukey's rho written out by hand."""
    return c * c / 6 * (1 - (1 - (u / c) ** 2) ** 3) if abs(u) <= c else c * c / 6


def test_tukey_matches_hand_computed_values_with_fixed_scale():
    pred = torch.tensor([2.0, 3.0, 4.0, 12.0])
    target = torch.full((4,), 2.0)  # residuals 0, 1, 2, 10
    # By hand, c = 4.6851, c^2 = 21.950162, c^2/6 = 3.658360:
    # rho(1) = 3.658360 * (1 - (1 - 1/21.950162)^3) = 3.658360 * 0.130541 = 0.477567
    # rho(2) = 3.658360 * (1 - (1 - 4/21.950162)^3) = 3.658360 * 0.453120 = 1.657677
    # rho(10) = c^2/6 = 3.658360 (beyond the cut-off)
    assert _rho(1.0) == pytest.approx(0.477567, abs=1e-6)
    assert _rho(2.0) == pytest.approx(1.657677, abs=1e-6)
    expected = (0.0 + 0.477567 + 1.657677 + 3.658360) / 4
    assert float(tukey_biweight_loss(pred, target, scale=1.0)) == pytest.approx(expected, abs=1e-5)


def test_tukey_scale_is_the_mad_of_the_residuals():
    r = torch.tensor([0.0, 1.0, 2.0, 10.0])
    # median 1.5; |r - 1.5| = 1.5, 0.5, 0.5, 8.5 -> median 1.0; times 1.4826
    assert float(mad_scale(r)) == pytest.approx(1.4826)
    u = [0.0, 1 / 1.4826, 2 / 1.4826, 10 / 1.4826]
    expected = sum(_rho(x) for x in u) / 4
    assert float(tukey_biweight_loss(r, torch.zeros(4))) == pytest.approx(expected, rel=1e-5)


def test_tukey_gives_zero_gradient_beyond_the_cutoff_only():
    pred = torch.tensor([0.5, -1.0, 4.0, 4.7, -30.0, 100.0], requires_grad=True)
    loss = tukey_biweight_loss(pred, torch.zeros(6), scale=1.0)
    loss.backward()
    g = pred.grad
    assert torch.all(g[:3] != 0)  # |r| <= c: pulled towards the target
    assert torch.all(g[3:] == 0)  # |r| > c = 4.6851: outliers ignored
    assert g[0] > 0 and g[1] < 0  # the gradient of rho has the sign of the residual
    # rho'(u) = u (1 - (u/c)^2)^2, divided by n = 6 for the mean
    assert float(g[0]) == pytest.approx(0.5 * (1 - (0.5 / TUKEY_C) ** 2) ** 2 / 6, rel=1e-5)


def test_tukey_respects_the_mask_and_is_bounded():
    pred = torch.tensor([[[[1.0, 50.0]]]])
    target = torch.tensor([[[[0.0, 0.0]]]])
    mask = torch.tensor([[[[True, False]]]])
    assert float(tukey_biweight_loss(pred, target, mask, scale=1.0)) == pytest.approx(_rho(1.0), abs=1e-6)
    assert float(tukey_biweight(torch.tensor(1e6))) == pytest.approx(TUKEY_C**2 / 6)
    empty = tukey_biweight_loss(pred, target, torch.zeros_like(mask))
    assert float(empty) == 0.0


# ----------------------------------------------------------------------------- Chen et al. 2016
# Validation pairs, written as the difference z_A - z_B of the raw output and the true relation.
VAL_DIFF = np.array([0.05, -0.2, 0.5, -0.1, 0.3, 0.0])
VAL_TRUTH = np.array([0, 0, 1, -1, -1, 1])


def test_chen2016_tau_selection_by_hand():
    # Candidates 0.05, 0.1, 0.2, 0.3, 0.5 and just above 0.5 ("equal" means |d| < tau):
    #   tau=0.05: equal {6}        WKDR= 2/2, WKDR≠ 2/4 (pairs 5 wrong sign, 6 tied) -> max 1.0
    #   tau=0.1 : equal {1, 6}     WKDR= 1/2, WKDR≠ 2/4                                -> max 0.5
    #   tau=0.2 : equal {1, 4, 6}  WKDR= 1/2, WKDR≠ 3/4                                -> max 0.75
    #   tau=0.3 : equal {1,2,4,6}  WKDR= 0/2, WKDR≠ 3/4                                -> max 0.75
    #   tau=0.5 : + pair 5         WKDR= 0,   WKDR≠ 3/4; all equal: WKDR≠ 4/4
    tau = M.select_chen2016_tau(VAL_DIFF, np.zeros(6), VAL_TRUTH)
    assert tau == pytest.approx(0.1)
    r = M.wkdr_chen2016(VAL_DIFF, np.zeros(6), VAL_TRUTH, tau)
    assert r["wkdr_chen2016_eq"] == pytest.approx(0.5) and r["wkdr_chen2016_neq"] == pytest.approx(0.5)
    assert r["wkdr_chen2016"] == pytest.approx(3 / 6) and r["wkdr_chen2016_tau"] == pytest.approx(0.1)


def test_chen2016_on_test_pairs_by_hand():
    za = np.array([1.00, 2.00, 5.0, 3.0, 0.0])
    zb = np.array([1.05, 1.00, 4.0, 3.5, 0.2])
    truth = np.array([0, 1, -1, 0, -1])
    # tau = 0.1: d = -0.05 (equal, right), 1.0 (+1, right), 1.0 (+1, wrong), -0.5 (-1, wrong), -0.2 (-1, right)
    assert M.chen2016_relations(za, zb, 0.1).tolist() == [0, 1, 1, -1, -1]
    r = M.wkdr_chen2016(za, zb, truth, 0.1)
    assert r["wkdr_chen2016"] == pytest.approx(2 / 5)
    assert r["wkdr_chen2016_eq"] == pytest.approx(1 / 2)
    assert r["wkdr_chen2016_neq"] == pytest.approx(1 / 3)


def test_chen2016_edge_cases():
    # No positive difference: everything is already "equal".
    assert M.select_chen2016_tau(np.zeros(3), np.zeros(3), np.array([0, 1, 0])) == 0.0
    # Only unequal pairs: the smallest tau (nothing but exact ties called equal) is best.
    tau = M.select_chen2016_tau(np.array([1.0, 2.0]), np.zeros(2), np.array([1, 1]))
    assert tau == pytest.approx(1.0)
    assert math.isnan(M.wkdr_chen2016(np.array([1.0]), np.zeros(1), np.array([1]), 0.5)["wkdr_chen2016_eq"])


def test_chen2016_selection_matches_brute_force():
    rng = np.random.default_rng(3)
    diff = np.round(rng.normal(0, 1, 300), 2)
    truth = np.where(np.abs(diff + rng.normal(0, 0.5, 300)) < 0.3, 0, np.sign(diff + rng.normal(0, 0.3, 300))).astype(int)
    tau = M.select_chen2016_tau(diff, np.zeros_like(diff), truth)
    best = min(
        (max(M.wkdr_chen2016(diff, np.zeros_like(diff), truth, t)["wkdr_chen2016_eq"],
             M.wkdr_chen2016(diff, np.zeros_like(diff), truth, t)["wkdr_chen2016_neq"]), t)
        for t in np.append(np.unique(np.abs(diff[diff != 0])), 10.0)
    )
    r = M.wkdr_chen2016(diff, np.zeros_like(diff), truth, tau)
    assert max(r["wkdr_chen2016_eq"], r["wkdr_chen2016_neq"]) == pytest.approx(best[0])


# ----------------------------------------------------------------------------- mIoU
def test_confusion_and_miou_by_hand():
    gt = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 2, 2]])
    conf = M.confusion_matrix(pred, gt, 3)
    # rows = truth, columns = prediction; the 255 pixel is not counted
    assert conf.tolist() == [[1, 1, 0], [0, 2, 1], [1, 0, 1]]
    s = M.segmentation_scores(conf)
    # IoU_0 = 1 / (2 + 2 - 1) = 1/3; IoU_1 = 2 / (3 + 3 - 2) = 1/2; IoU_2 = 1 / (2 + 2 - 1) = 1/3
    assert s["iou_0"] == pytest.approx(1 / 3) and s["iou_1"] == pytest.approx(1 / 2) and s["iou_2"] == pytest.approx(1 / 3)
    assert s["miou"] == pytest.approx((1 / 3 + 1 / 2 + 1 / 3) / 3)
    assert s["pixel_acc"] == pytest.approx(4 / 7) and s["n_pixels"] == 7


def test_miou_skips_absent_classes_and_refuses_bad_predictions():
    conf = M.confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 4)
    s = M.segmentation_scores(conf)
    assert s["miou"] == pytest.approx(1.0) and math.isnan(s["iou_3"])
    with pytest.raises(ValueError, match="predicted labels"):
        M.confusion_matrix(np.array([5]), np.array([0]), 4)


# ----------------------------------------------------------------------------- evaluate + report
class _Raw:
    """A predictor returning a fixed map per key (larger = farther)."""

    inverse = False
    name = "raw"

    def __init__(self, maps):
        self.maps = maps

    def __call__(self, key, load_image, size):
        return self.maps[key]


def _sample(key, depth):
    from model.benchmarks import DenseSample

    depth = np.asarray(depth, dtype=np.float64)
    return DenseSample(key, depth, depth > 0, metric=True, image_array=np.zeros((*depth.shape, 3), np.uint8))


def test_evaluate_reports_wkdr_chen2016_with_tau_chosen_on_validation_images(tmp_path):
    from model.evaluate import build_report, evaluate_dense
    from model.report import write_report

    rng = np.random.default_rng(0)
    gt = {k: rng.uniform(1, 5, (6, 7)) for k in ("a", "b", "va", "vb")}
    pred = {k: v + rng.normal(0, 0.3, v.shape) for k, v in gt.items()}
    test = [_sample("a", gt["a"]), _sample("b", gt["b"])]
    val = [_sample("va", gt["va"]), _sample("vb", gt["vb"])]
    res = evaluate_dense(test, {"raw": _Raw(pred)}, pairs_per_image=50, seed=1, chen_val_samples=val)["raw"]
    # The same tau, chosen by hand from the validation pairs the evaluation draws ([seed, 1e6 + i]).
    d, t = [], []
    for i, s in enumerate(val):
        ia, ib = M.sample_pairs(s.mask, 50, np.random.default_rng([1, 1_000_000 + i]))
        d.append(pred[s.key].ravel()[ia] - pred[s.key].ravel()[ib])
        t.append(M.ordinal_relation(gt[s.key].ravel()[ia], gt[s.key].ravel()[ib], 0.02))
    tau = M.select_chen2016_tau(np.concatenate(d), 0 * np.concatenate(d), np.concatenate(t))
    assert res["wkdr_chen2016_tau"] == pytest.approx(tau) and res["wkdr_chen2016_val_pairs"] == 100
    d, t = [], []
    for i, s in enumerate(test):
        ia, ib = M.sample_pairs(s.mask, 50, np.random.default_rng([1, i]))
        d.append(pred[s.key].ravel()[ia] - pred[s.key].ravel()[ib])
        t.append(M.ordinal_relation(gt[s.key].ravel()[ia], gt[s.key].ravel()[ib], 0.02))
    expected = M.wkdr_chen2016(np.concatenate(d), 0 * np.concatenate(d), np.concatenate(t), tau)
    assert res["wkdr_chen2016"] == pytest.approx(expected["wkdr_chen2016"])
    assert 0 <= res["wkdr"] <= 1  # ours stays, next to theirs
    doc = build_report("nyu", {"raw": res}, "raw")
    assert list(doc)[:7] == ["benchmark", "model", "wkdr", "wkdr_eq", "wkdr_neq", "wkdr_chen2016", "rms"]
    write_report(tmp_path, metrics=doc)
    md = (tmp_path / "report.md").read_text()
    assert "Chen et al. 2016" in md and "wkdr_chen2016" in md and f"{tau:.6g}" in md


def test_evaluate_nyu_chooses_tau_on_training_images_only(tmp_path):
    from model.evaluate import evaluate_benchmark

    from .paper_data import make_nyu_mat

    mat, split = make_nyu_mat(tmp_path / "nyu.mat")
    seen = []

    class Spy(_Raw):
        def __call__(self, key, load_image, size):
            seen.append(key)
            return np.random.default_rng(int(key)).uniform(1, 5, size)

    doc = evaluate_benchmark("nyu", mat, Spy({}), split_file=split, pairs_per_image=30, chen_val_images=2,
                             baselines=False, nyu_crop="none", alignment="scale_shift")
    assert doc["wkdr_chen2016_val_images"] == 2 and 0 <= doc["wkdr_chen2016"] <= 1
    assert sorted(seen) == ["0001", "0002", "0003", "0005", "0008"]  # test 2, 5, 8 + training 1, 3
    fixed = evaluate_benchmark("nyu", mat, Spy({}), split_file=split, pairs_per_image=30, chen_tau=0.5,
                               baselines=False, nyu_crop="none", alignment="scale_shift")
    assert fixed["wkdr_chen2016_tau"] == 0.5 and fixed["settings"]["wkdr_chen2016"]["tau"] == "fixed"
