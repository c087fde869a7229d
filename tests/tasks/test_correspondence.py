"""Correspondence backends: registry, DIS accuracy, consistency mask, networks through one interface."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.labels.consistency import consistency_mask, warp_by_flow
from tasks.labels.correspondence import CORRESPONDENCE, Registry, build_backend, is_gpu_backend
from tests.tasks.stereo_scenes import make_scene


def test_registry_lists_refuses_duplicates_and_unknown_names():
    assert {"dis", "flownet2", "raft", "sea_raft_m", "tv_raft"} <= set(CORRESPONDENCE.names())
    reg = Registry("thing")
    reg.register("a", dict)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", list)
    with pytest.raises(KeyError, match="known: dis"):
        build_backend("no_such_backend")
    assert not is_gpu_backend("dis") and is_gpu_backend("flownet2")


def test_dis_recovers_disparity_and_consistency_catches_the_occlusion():
    s = make_scene(96, 128, d_bg=2, d_fg=9, sky_rows=0)
    fwd, bwd = build_backend("dis").flow([s.left, s.right], [s.right, s.left])
    assert fwd.shape == (96, 128, 2) and fwd.dtype == np.float32
    mask = consistency_mask(fwd, bwd)
    visible = ~s.occluded
    visible[:, :4] = visible[:, -12:] = False  # edge strips: partly unmatched by construction
    assert np.abs(-fwd[..., 0] - s.disparity)[visible & mask].mean() < 0.2
    assert mask[visible].mean() > 0.9
    assert mask[s.occluded].mean() < 0.2  # the strip hidden behind the near rectangle is caught


def test_consistency_mask_formula_on_hand_made_flows():
    h, w = 8, 16
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[..., 0] = -2.0
    bwd = np.zeros((h, w, 2), np.float32)
    bwd[..., 0] = 2.0
    bwd[:, 5, 0] = 3.0  # target column 5 disagrees by 1 px > 0.01 * 2 + 0.5
    mask = consistency_mask(fwd, bwd)
    assert not mask[:, 7].any()  # 7 - 2 = 5
    assert not mask[:, :2].any()  # lands outside the image
    assert mask[:, 9].all()
    sampled, inside = warp_by_flow(np.arange(w, dtype=np.float32)[None, :, None].repeat(h, 0), fwd)
    assert sampled[0, 9, 0] == pytest.approx(7.0) and inside[0, 9] and not inside[0, 1]


@pytest.mark.slow
def test_flownet2_random_weights_through_the_same_interface():
    pytest.importorskip("ptlflow")
    backend = build_backend("flownet2", device="cpu", batch_size=2)
    s = make_scene(50, 70)
    small = make_scene(40, 52, seed=3)
    flows = backend.flow([s.left, s.right, small.left], [s.right, s.left, small.right])
    assert [f.shape for f in flows] == [(50, 70, 2), (50, 70, 2), (40, 52, 2)]  # padded to 64, unpadded back
    assert all(np.isfinite(f).all() for f in flows)
    mask = consistency_mask(flows[0], flows[1])
    assert mask.shape == (50, 70)


def test_ptlflow_prefix_and_local_checkpoint_only():
    pytest.importorskip("ptlflow")
    with pytest.raises(ValueError, match="local path"):
        build_backend("ptlflow:raft_small", checkpoint="things")
    with pytest.raises(KeyError, match="no model"):
        build_backend("ptlflow:no_such_net")


def test_torchvision_raft_weights_from_a_local_file(tmp_path):
    import torch
    from torchvision.models.optical_flow import raft_small

    torch.save(raft_small(weights=None).state_dict(), tmp_path / "raft_small.pth")
    backend = build_backend("tv_raft", device="cpu", small=True, num_flow_updates=2,
                            checkpoint=str(tmp_path / "raft_small.pth"))
    s = make_scene(124, 130)  # RAFT's correlation pyramid needs >= 128 px: padded to 128 x 136, unpadded
    (f,) = backend.flow([s.left], [s.right])
    assert f.shape == (124, 130, 2) and np.isfinite(f).all()


def test_backends_refuse_options_they_do_not_take():
    from tasks.labels.sky import build_sky

    with pytest.raises(TypeError, match=r"takes no option 'presett'"):
        build_backend("dis", presett="fast")
    with pytest.raises(ValueError, match="takes no checkpoint"):
        build_backend("dis", checkpoint="/weights.pt")
    with pytest.raises(TypeError, match=r"takes no option 'texture'"):
        build_sky("heuristic", texture=1.0)
    with pytest.raises(ValueError, match="takes no mmseg_config"):
        build_sky("heuristic", mmseg_config="x.py")
    assert build_backend("dis", device="cuda", preset="fast").preset == "fast"  # OpenCV runs on the CPU
