"""SGBM backends: disparity of either sign, vertical offset compensated, invalid pixels never consistent,
and the whole process stage on real stereo through the same interface."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from tasks.correspondence import CORRESPONDENCE, build_backend, consistency_mask, is_gpu_backend
from tests.tasks.stereo_scenes import make_scene


def shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Content moved right by dx and down by dy (edge rows / columns replicated)."""
    h, w = image.shape[:2]
    ys = np.clip(np.arange(h) - dy, 0, h - 1)
    xs = np.clip(np.arange(w) - dx, 0, w - 1)
    return image[ys][:, xs]


def test_registered_as_cpu_backends():
    assert {"sgbm", "sgbm_dense", "dis+sgbm"} <= set(CORRESPONDENCE.names())
    assert not any(is_gpu_backend(n) for n in ("sgbm", "sgbm_dense", "dis+sgbm"))
    with pytest.raises(ValueError, match="disagree"):
        build_backend("dis+sgbm", disagree="maybe")


@pytest.mark.parametrize("name", ["sgbm", "sgbm_dense", "dis+sgbm"])
@pytest.mark.parametrize("dx", [0, 8])  # dx = 8: a convergence offset that makes every disparity negative
def test_recovers_disparity_of_either_sign_and_catches_the_occlusion(name, dx):
    s = make_scene(96, 160, d_bg=2, d_fg=7, sky_rows=0)
    right = shifted(s.right, dx, 0)
    fwd, bwd = build_backend(name).flow([s.left, right], [right, s.left])
    assert fwd.shape == (96, 160, 2) and fwd.dtype == np.float32 and np.isfinite(fwd).all()
    mask = consistency_mask(fwd, bwd)
    visible = ~s.occluded
    visible[:, :12] = visible[:, -12:] = False  # edge strips: unmatched by construction
    truth = s.disparity - dx  # x_left - x_right after the shift
    ok = visible & mask
    assert ok[visible].mean() > 0.5
    assert np.abs(-fwd[..., 0] - truth)[ok].mean() < 0.3
    assert np.abs(fwd[..., 1])[ok].mean() < 0.2
    assert mask[s.occluded].mean() < 0.2


def test_vertical_offset_is_compensated_and_found_in_the_flow():
    s = make_scene(96, 160, d_bg=3, d_fg=8, sky_rows=0)
    right = shifted(s.right, 0, 3)  # right view 3 px lower, as in unrectified web stereo
    backend = build_backend("sgbm")
    (fwd, valid), (bwd, _) = backend.matches([s.left, right], [right, s.left])
    ok = consistency_mask(fwd, bwd) & valid & ~s.occluded
    ok[:5] = ok[-5:] = False
    assert ok.mean() > 0.5
    assert np.median(fwd[..., 1][ok]) == pytest.approx(3.0, abs=0.25)
    assert np.abs(-fwd[..., 0] - s.disparity)[ok].mean() < 0.3


def test_invalid_pixels_are_never_consistent():
    s = make_scene(96, 160, d_bg=2, d_fg=7, sky_rows=0)
    left, right = s.left.copy(), s.right.copy()
    rng = np.random.default_rng(1)
    # a patch that differs between the views (a reflection, a moving thing): nothing to match
    left[60:90, 10:60] = rng.integers(0, 255, (30, 50, 3))
    right[60:90, 10:60] = rng.integers(0, 255, (30, 50, 3))
    (fwd, valid), (bwd, _) = build_backend("sgbm").matches([left, right], [right, left])
    assert valid[62:88, 15:55].mean() < 0.5
    assert valid.mean() > 0.5
    assert not consistency_mask(fwd, bwd)[~valid].any()


def test_process_pair_with_sgbm_flips_a_cross_eyed_pair_and_orders_depth_like_the_ground_truth():
    import cv2
    from skimage import data

    from tasks.depth import SKY_VALUE
    from tasks.process import process_pair
    from tasks.sky import build_sky

    left, right, disp = data.stereo_motorcycle()
    s = 320 / left.shape[1]
    small = [cv2.resize(v, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for v in (left, right)]
    gt = cv2.resize(np.where(np.isfinite(disp), disp, 0).astype(np.float32), small[0].shape[1::-1],
                    interpolation=cv2.INTER_NEAREST) * s
    result = process_pair(small[1], small[0], build_backend("sgbm"), build_sky("heuristic"))  # cross-eyed
    assert result.swapped_views and result.view_order == "cross_eyed"
    x0, y0, x1, y1 = result.box
    g = gt[y0:y1, x0:x1]
    ok = result.reliable & ~result.sky & (g > 0) & (result.depth < SKY_VALUE)
    assert ok.mean() > 0.6
    assert spearmanr(result.depth[ok], 1.0 / g[ok]).statistic > 0.95
    assert result.depth.dtype == np.uint16
