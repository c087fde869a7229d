"""Online pair sampling and ordinal labels."""
from __future__ import annotations

import pytest
import torch

from model.sampling import PairSample, ordinal_error, ordinal_labels, sample_pairs


def test_ordinal_labels_follow_the_contract():
    # sigma = 0.02: i farther when g_i / g_j > 1.02.
    g_i = torch.tensor([1.03, 1.01, 1.0, 2.0, 0.0, 5.0, 0.0])
    g_j = torch.tensor([1.0, 1.0, 1.03, 1.0, 0.0, 0.0, 5.0])
    assert ordinal_labels(g_i, g_j).tolist() == [1, 0, -1, 1, 0, 1, -1]
    # A larger sigma turns the 1.03 ratio into "equal".
    assert ordinal_labels(g_i[:1], g_j[:1], sigma=0.05).tolist() == [0]


def test_pairs_lie_in_the_mask_and_labels_match_depth():
    torch.manual_seed(0)
    depth = torch.rand(2, 1, 12, 10) + 0.1
    mask = torch.rand(2, 1, 12, 10) > 0.5
    pairs = sample_pairs(depth, mask, 500, generator=torch.Generator().manual_seed(3))
    assert pairs.index_i.shape == (2, 500) and pairs.labels.dtype == torch.int8
    assert pairs.valid.all()
    flat_mask = mask.reshape(2, -1)
    assert flat_mask.gather(1, pairs.index_i).all() and flat_mask.gather(1, pairs.index_j).all()
    flat = depth.reshape(2, -1)
    expected = ordinal_labels(flat.gather(1, pairs.index_i), flat.gather(1, pairs.index_j))
    assert torch.equal(pairs.labels, expected)


def test_sampling_covers_every_reliable_pixel_roughly_uniformly():
    mask = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
    mask[0, 0, 1:3, 1:3] = True  # 4 reliable pixels
    pairs = sample_pairs(torch.ones(1, 1, 4, 4), mask, 4000, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(torch.cat([pairs.index_i[0], pairs.index_j[0]]), minlength=16)
    reliable = [5, 6, 9, 10]
    assert counts.sum() == 8000 and counts[reliable].sum() == 8000
    assert (counts[reliable] > 1800).all()  # 2000 expected each


def test_same_generator_seed_same_pairs():
    depth, mask = torch.rand(1, 1, 8, 8), torch.ones(1, 1, 8, 8, dtype=torch.bool)
    a = sample_pairs(depth, mask, 50, generator=torch.Generator().manual_seed(7))
    b = sample_pairs(depth, mask, 50, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a.index_i, b.index_i) and torch.equal(a.index_j, b.index_j)


def test_image_without_reliable_pixels_gives_invalid_pairs():
    depth = torch.rand(2, 1, 5, 5)
    mask = torch.ones(2, 1, 5, 5, dtype=torch.bool)
    mask[1] = False
    pairs = sample_pairs(depth, mask, 10)
    assert pairs.valid[0].all() and not pairs.valid[1].any()
    z_i, z_j, labels = pairs.gather(depth)
    assert z_i.shape == (10,) and labels.shape == (10,)


def test_gather_and_ordinal_error():
    pairs = PairSample(
        index_i=torch.tensor([[0, 1, 2, 3]]),
        index_j=torch.tensor([[1, 0, 3, 0]]),
        labels=torch.tensor([[1, -1, 0, 1]], dtype=torch.int8),
        valid=torch.tensor([[True, True, True, True]]),
    )
    pred = torch.tensor([[[[2.0, 1.0], [0.0, 0.0]]]])  # flat [2, 1, 0, 0]
    # pair0: 2>1, label +1 ok; pair1: 1<2, label -1 ok; pair2 equal (ignored); pair3: 0<2 but +1 -> wrong
    assert ordinal_error(pred, pairs) == (1, 3)


def test_edge_guided_pairs_straddle_the_edge():
    # Image: left half dark, right half bright; depth follows it. Edge pairs must cross x = 8.
    image = torch.zeros(1, 3, 16, 16)
    image[..., 8:] = 1.0
    depth = torch.ones(1, 1, 16, 16)
    depth[..., 8:] = 2.0
    mask = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    pairs = sample_pairs(depth, mask, 100, image=image, edge_fraction=1.0, edge_max_offset=3,
                         generator=torch.Generator().manual_seed(0))
    xi, xj = pairs.index_i[0] % 16, pairs.index_j[0] % 16
    ok = pairs.valid[0]
    assert ok.sum() > 50
    assert ((xi[ok] < 8) & (xj[ok] >= 8)).all()
    assert (pairs.labels[0][ok] == -1).all()  # j is on the far (bright) side


def test_edge_guided_needs_image():
    with pytest.raises(ValueError, match="image"):
        sample_pairs(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4, dtype=torch.bool), 10, edge_fraction=0.5)
