"""The learned matching cost (tasks/labels/mccnn.py, ``MccnnBackend``) and its routing inside ``fused``.

The SGM and the checks are tested on hand-made cost volumes; the backend runs MC-CNN's real weights
(from the installed ``mccnn`` package, on onnxruntime: the ``mccnn`` extra that ``scripts/bootstrap.sh
--test`` installs) on a small real pair. Without the extra these tests skip locally and fail under CI.
"""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from tasks.labels.consistency import consistency_mask
from tasks.labels.mccnn import OUTSIDE, aggregate, cost_volume, disparities
from tests.tasks.stereo_scenes import make_scene


def _require_extra() -> None:
    try:
        import onnxruntime  # noqa: F401
        from importlib import resources

        resources.files("mc_cnn.weights").joinpath("mc_cnn_fast_dw.onnx").read_bytes()
    except (ImportError, FileNotFoundError) as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the mccnn extra is missing ({exc}): scripts/bootstrap.sh --test installs it")
        pytest.skip("the mccnn extra is not installed (pip install --no-deps mccnn==1.4.1; redweb[mccnn])")


# ---- SGM and the checks on hand-made volumes --------------------------------------------------------
def test_aggregate_matches_the_recursion_worked_out_by_hand():
    """One row of two pixels, two disparities, C = [[0, 1], [1, 0]], p1 = 0.5, p2 = 2.

    left -> right: L(x0) = [0, 1]; L(x1) = C(x1) + [min(0, 1.5, 2), min(1, 0.5, 2)] - 0 = [1, 0.5]
    right -> left: L(x1) = [1, 0]; L(x0) = C(x0) + [min(1, 0.5, 2), min(0, 1.5, 2)] - 0 = [0.5, 1]
    down, up (one row): C each. Sum: x0 = [0 + 0.5 + 0, 1 + 1 + 2] = [0.5, 4], x1 = [4, 0.5]."""
    cost = np.array([[[0.0, 1.0], [1.0, 0.0]]], np.float32)
    got = aggregate(cost, p1=0.5, p2=2.0)
    assert np.allclose(got, [[[0.5, 4.0], [4.0, 0.5]]])
    with pytest.raises(ValueError, match="p2"):
        aggregate(cost, p1=2.0, p2=0.5)


def test_aggregate_overrules_an_isolated_wrong_minimum():
    """Every pixel's cost is lowest at disparity 3, but one pixel's is lower still at 7: the smoothness
    penalty of its neighbours' paths outweighs the 0.2 it gains there."""
    h, w, d = 9, 11, 10
    cost = np.ones((h, w, d), np.float32)
    cost[:, :, 3] = 0.2
    cost[4, 5, 3], cost[4, 5, 7] = 0.5, 0.3
    assert np.argmin(cost[4, 5]) == 7
    assert (np.argmin(aggregate(cost, p1=0.2, p2=1.0), axis=2) == 3).all()


def test_disparities_of_both_views_sub_pixel_and_left_right_checked():
    """A hand-made volume with a parabola of minimum at d = 2.25 (x_b = x_a - d): both views read 2.25
    (b's volume is a's, sheared). One pixel of a, (2, 20), has its minimum at 6 instead: b's pixel 14 then
    finds it as its best match too, so both keep 6 consistently, while a's pixel 16, whose match (14) is
    taken, fails the left-right check. Matches outside the other view are invalid."""
    h, w, nd, dmin = 6, 30, 8, 0
    ds = np.arange(nd, dtype=np.float32) + dmin
    cost = np.broadcast_to(0.05 * (ds - 2.25) ** 2, (h, w, nd)).copy()
    cost[:, :2, 3:] = OUTSIDE  # (what cost_volume gives where x - d < 0)
    cost[2, 20] = 0.05 * (ds - 6.0) ** 2
    d_a, valid_a, d_b, valid_b = disparities(cost, dmin, p1=0.0, p2=0.0, uniqueness=0.0, speckle_window=0)
    inner = np.zeros((h, w), bool)
    inner[:, 4:w - 4] = True
    inner[2, 12:24] = False  # around the odd pixel
    assert np.allclose(d_a[inner], 2.25, atol=0.01) and valid_a[inner].all()
    assert np.allclose(d_b[inner], 2.25, atol=0.01) and valid_b[inner].all()
    assert d_a[2, 20] == 6.0 and valid_a[2, 20] and valid_b[2, 14] and abs(d_b[2, 14] - 6.0) < 0.5
    assert not valid_a[2, 16]
    assert not valid_a[:, :3].any()  # x_a - d < 0
    assert not valid_b[:, w - 2:].any()  # x_b + d lies beyond a's last column


def test_cost_volume_is_one_minus_cosine_and_outside_beyond_the_view():
    rng = np.random.default_rng(0)
    fa = rng.normal(size=(3, 12, 4)).astype(np.float32)
    fa /= np.linalg.norm(fa, axis=2, keepdims=True)
    fb = np.roll(fa, -2, axis=1)  # b(x) = a(x + 2): x_b = x_a - 2
    cost = cost_volume(fa, fb, dmin=-1, ndisp=5)  # d = -1 .. 3
    assert cost.shape == (3, 12, 5)
    assert np.allclose(cost[:, 2:, 3], 0.0, atol=1e-5)  # d = 2: the same feature
    assert (cost[:, :2, 3] == OUTSIDE).all() and (cost[:, -1, 0] == OUTSIDE).all()
    assert np.allclose(cost[0, 5, 1], 1.0 - fa[0, 5] @ fb[0, 5])


# ---- the backend with the real weights --------------------------------------------------------------
def _motorcycle(width: int = 240) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-image's motorcycle (Middlebury 2014) downscaled to ``width``: left, right, GT disparity (0 =
    unknown)."""
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    s = width / left.shape[1]
    small = [cv2.resize(v, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for v in (left, right)]
    gt = cv2.resize(np.where(np.isfinite(disp), disp, 0).astype(np.float32), small[0].shape[1::-1],
                    interpolation=cv2.INTER_NEAREST) * s
    return small[0], small[1], gt


def test_mccnn_backend_with_real_weights_on_a_real_pair():
    _require_extra()
    from tasks.labels.correspondence import CORRESPONDENCE, build_backend, is_gpu_backend

    assert "mccnn" in CORRESPONDENCE.names() and not is_gpu_backend("mccnn")
    left, right, gt = _motorcycle()
    backend = build_backend("mccnn")
    fwd, bwd = backend.flow([left, right], [right, left])
    assert fwd.shape == left.shape[:2] + (2,) and fwd.dtype == np.float32 and np.isfinite(fwd).all()
    ok = consistency_mask(fwd, bwd) & (gt > 0)
    assert ok.sum() > 0.5 * (gt > 0).sum()
    err = np.abs(-fwd[..., 0] - gt)[ok]
    assert np.median(err) < 0.5 and (err > 2).mean() < 0.1
    # one direction alone (no reverse in the batch) gives the same a -> b disparities where both are valid
    alone = backend.flow([left], [right])[0]
    both = ok & (np.abs(alone[..., 0]) < left.shape[1])
    assert np.median(np.abs(alone[..., 0] - fwd[..., 0])[both]) < 0.05


def test_unknown_option_and_missing_extra_are_clear_errors(monkeypatch):
    import builtins

    from tasks.labels.correspondence import build_backend

    with pytest.raises(TypeError, match="block_size"):
        build_backend("mccnn", block_size=5)  # an SGBM option, not the learned cost's
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    with pytest.raises(ImportError, match=r"redweb\[mccnn\]"):
        build_backend("mccnn")
    with pytest.raises(ImportError, match=r"redweb\[mccnn\]"):
        build_backend("fused", learned_below_px=12.0)
    build_backend("fused")  # the default does not need the extra


# ---- routing inside fused -----------------------------------------------------------------------------
@pytest.mark.parametrize(("d_bg", "d_fg", "learned"), [(3, 8, True), (3, 16, False)])
def test_fused_routes_narrow_pairs_to_the_learned_cost(d_bg, d_fg, learned):
    """At a threshold of 10 px, a pair whose disparities span 5 px goes to the learned cost (recorded in
    ``last_mode``), one that spans 13 px keeps SGBM; either way both directions come back fused."""
    _require_extra()
    from tasks.labels.correspondence import build_backend

    s = make_scene(96, 200, d_bg=d_bg, d_fg=d_fg, sky_rows=0)
    fused = build_backend("fused", learned_below_px=10.0)
    fwd, bwd = fused.flow([s.left, s.right], [s.right, s.left])
    assert fused.last_mode == ("fused+mccnn" if learned else "fused")
    ok = consistency_mask(fwd, bwd) & ~s.occluded
    ok[:, :12] = ok[:, -12:] = False
    assert ok.mean() > 0.5
    assert np.median(np.abs(-fwd[..., 0] - s.disparity)[ok]) < 0.5
    # never routed without a threshold
    plain = build_backend("fused")
    plain.flow([s.left, s.right], [s.right, s.left])
    assert plain.last_mode == "fused" and plain.learned is None


def test_the_setting_reaches_fused_backends_only_and_the_pair_records_the_cost():
    from tasks.labels.process import build_correspondence, process_pair
    from tasks.labels.settings import ProcessConfig
    from tasks.labels.sky import build_sky

    assert ProcessConfig().learned_cost_below_px is None  # off by default (README, "Learned matching cost")
    assert build_correspondence(ProcessConfig()).learned is None
    with pytest.raises(ValueError, match="learned_cost_below_px"):
        build_correspondence(ProcessConfig(correspondence="dis", learned_cost_below_px=12.0))
    _require_extra()
    backend = build_correspondence(ProcessConfig(learned_cost_below_px=1000.0))
    assert backend.learned_below_px == 1000.0
    left, right, _ = _motorcycle()
    result = process_pair(left, right, backend, build_sky("heuristic"))
    assert result.info["correspondence"] == {"backend": "fused", "mode": "fused+mccnn"}
    assert result.reliable.mean() > 0.5
