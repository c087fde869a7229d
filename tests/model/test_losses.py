"""Losses checked against values worked out by hand."""
from __future__ import annotations

import math

import pytest
import torch

from model.losses import (
    ImprovedRankingLoss,
    improved_ranking_loss,
    pixel_l1_loss,
    pixel_l2_loss,
    ranking_loss,
    ranking_pair_losses,
    ranking_pair_weights,
)

# Five pairs: diff = z_i - z_j = [2, -1, 0, 0.5, 2]; labels [+1, +1, -1, 0, -1].
Z_I = [2.0, 0.0, 1.0, 0.5, 3.0]
Z_J = [0.0, 1.0, 1.0, 0.0, 1.0]
LABELS = [1, 1, -1, 0, -1]
# By hand: unequal pairs log(1 + exp(-l * diff)); the equal pair diff^2.
L0 = math.log(1 + math.exp(-2.0))  # 0.126928  (+1, diff 2: already well ordered)
L1 = math.log(1 + math.exp(1.0))  # 1.313262  (+1, diff -1: wrong order)
L2 = math.log(2.0)  # 0.693147  (-1, diff 0)
L3 = 0.25  # equal pair, 0.5^2
L4 = math.log(1 + math.exp(2.0))  # 2.126928  (-1, diff 2: wrong order)


def _inputs(requires_grad: bool = False):
    z_i = torch.tensor(Z_I, requires_grad=requires_grad)
    z_j = torch.tensor(Z_J, requires_grad=requires_grad)
    return z_i, z_j, torch.tensor(LABELS, dtype=torch.int8)


def test_hand_values_are_what_we_think():
    assert L0 == pytest.approx(0.126928, abs=1e-6)
    assert L1 == pytest.approx(1.313262, abs=1e-6)
    assert L4 == pytest.approx(2.126928, abs=1e-6)


def test_per_pair_losses():
    got = ranking_pair_losses(*_inputs())
    assert torch.allclose(got, torch.tensor([L0, L1, L2, L3, L4]), atol=1e-6)


def test_improved_ranking_loss_drops_smallest_quarter_of_unequal_pairs():
    # 4 unequal pairs -> floor(0.25 * 4) = 1 dropped: pair 0 (smallest loss). Mean over the 4 kept.
    loss = improved_ranking_loss(*_inputs())
    assert loss.dim() == 0
    assert loss.item() == pytest.approx((L1 + L2 + L3 + L4) / 4, abs=1e-6)
    assert loss.item() == pytest.approx(1.095834, abs=1e-6)


def test_drop_ratio_zero_is_plain_ranking_loss():
    expected = (L0 + L1 + L2 + L3 + L4) / 5
    assert improved_ranking_loss(*_inputs(), drop_ratio=0.0).item() == pytest.approx(expected, abs=1e-6)
    assert ranking_loss(*_inputs()).item() == pytest.approx(expected, abs=1e-6)


def test_drop_ratio_half_drops_two_smallest_unequal_and_never_equal_pairs():
    # floor(0.5 * 4) = 2: pairs 0 (0.127) and 2 (0.693) go; the equal pair (0.25 < 0.693) stays.
    weights = ranking_pair_weights(ranking_pair_losses(*_inputs()), torch.tensor(LABELS), 0.5)
    assert weights.tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]
    loss = improved_ranking_loss(*_inputs(), drop_ratio=0.5)
    assert loss.item() == pytest.approx((L1 + L3 + L4) / 3, abs=1e-6)


def test_floor_of_drop_count():
    # 3 unequal pairs: floor(0.25 * 3) = 0 -> nothing dropped.
    labels = torch.tensor([1, -1, 1])
    losses = ranking_pair_losses(torch.tensor([1.0, 0.0, 5.0]), torch.zeros(3), labels)
    assert ranking_pair_weights(losses, labels, 0.25).tolist() == [1.0, 1.0, 1.0]


def test_dropped_pairs_get_zero_gradient():
    z_i, z_j, labels = _inputs(requires_grad=True)
    improved_ranking_loss(z_i, z_j, labels).backward()
    assert z_i.grad[0].item() == 0.0 and z_j.grad[0].item() == 0.0
    # Kept pairs, by hand: d/dz_i softplus(-l*d) = -l * sigmoid(-l*d); d/dz_i d^2 = 2d; divided by 4.
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected_i = [0.0, -sig(1.0) / 4, sig(0.0) / 4, 2 * 0.5 / 4, sig(2.0) / 4]
    assert torch.allclose(z_i.grad, torch.tensor(expected_i), atol=1e-6)
    assert torch.allclose(z_j.grad, -torch.tensor(expected_i), atol=1e-6)


def test_numerically_stable_for_large_differences():
    z_i = torch.tensor([1000.0, -1000.0], requires_grad=True)
    z_j = torch.zeros(2)
    loss = improved_ranking_loss(z_i, z_j, torch.tensor([-1, 1]), drop_ratio=0.0)
    assert torch.isfinite(loss) and loss.item() == pytest.approx(1000.0)
    loss.backward()
    assert torch.isfinite(z_i.grad).all()


def test_empty_and_all_dropped_cases_give_zero():
    empty = torch.zeros(0, requires_grad=True)
    loss = improved_ranking_loss(empty, torch.zeros(0), torch.zeros(0, dtype=torch.int8))
    assert loss.item() == 0.0
    loss.backward()


def test_shape_checks():
    with pytest.raises(ValueError, match="1-D"):
        improved_ranking_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="drop_ratio"):
        improved_ranking_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), drop_ratio=1.0)


def test_module_wrapper_matches_function():
    assert ImprovedRankingLoss(0.25)(*_inputs()).item() == pytest.approx(improved_ranking_loss(*_inputs()).item())


def test_pixel_losses_by_hand():
    # One image of 4 pixels, all reliable. depth [1,2,3,4]: median (torch: lower) 2, MAD = (1+0+1+2)/4 = 1
    # -> standardised [-1, 0, 1, 2]. pred [0,0,0,4]: median 0, MAD 1 -> [0, 0, 0, 4].
    depth = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    pred = torch.tensor([0.0, 0.0, 0.0, 4.0]).view(1, 1, 2, 2)
    mask = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    # differences [1, 0, -1, 2]
    assert pixel_l1_loss(pred, depth, mask).item() == pytest.approx((1 + 0 + 1 + 2) / 4)
    assert pixel_l2_loss(pred, depth, mask).item() == pytest.approx((1 + 0 + 1 + 4) / 4)
    # Scale and shift of the prediction do not matter.
    assert pixel_l1_loss(3 * pred + 7, depth, mask).item() == pytest.approx(1.0)
    # Masked-out pixels are ignored.
    # depth [1,2,3]: median 2, MAD 2/3 -> [-1.5, 0, 1.5]; pred [0,0,0] -> [0,0,0] (scale clamped).
    mask[0, 0, 1, 1] = False
    assert pixel_l1_loss(pred, depth, mask).item() == pytest.approx((1.5 + 0 + 1.5) / 3)
    assert pixel_l2_loss(pred, depth, mask).item() == pytest.approx((2.25 + 0 + 2.25) / 3)
