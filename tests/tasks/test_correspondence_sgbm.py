"""SGBM backends: disparity of either sign, vertical offset compensated, invalid pixels never consistent,
and the whole process stage on real stereo through the same interface."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from tasks.labels.consistency import consistency_mask
from tasks.labels.correspondence import CORRESPONDENCE, build_backend, is_gpu_backend
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

    from tasks.labels.depth import SKY_VALUE
    from tasks.labels.process import process_pair
    from tasks.labels.sky import build_sky

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


# ---- fused: DIS and SGBM per pixel ------------------------------------------------------------------
class _FixedFlow:
    """A flow backend that returns given flows (a -> b for the first pair, b -> a for the second)."""

    name, device = "fixed", "cpu"

    def __init__(self, fwd: np.ndarray, bwd: np.ndarray) -> None:
        self.fwd, self.bwd = fwd, bwd

    def flow(self, sources, targets):
        return [self.fwd.copy(), self.bwd.copy()][:len(sources)]


class _FixedSgbm:
    """SgbmBackend.match stand-in: a given disparity (flow -d, 0) and validity, both directions."""

    def __init__(self, d: np.ndarray, valid: np.ndarray) -> None:
        self.d, self.valid, self.calls = d, valid, []

    def match(self, a, b, coarse_flows=None, geometry=None):
        self.calls.append(geometry)
        k = len(self.calls) - 1  # 0: a -> b (flow -d), 1: b -> a (flow +d)
        h, w = self.d.shape
        flow = np.zeros((h, w, 2), np.float32)
        flow[..., 0] = -self.d if k == 0 else self.d
        xs = np.broadcast_to(np.arange(w, dtype=np.float32), (h, w))
        flow[~self.valid, 0] = -2.0 * w - xs[~self.valid]
        return flow, self.valid.copy(), None


def test_fused_rule_per_pixel_on_hand_made_flows():
    """agree -> mean; SGBM valid, flow off and flow inconsistent -> SGBM; flow off but consistent -> out
    (``conflict='out'``) or SGBM (``'sgbm'``); SGBM invalid -> the flow where it is consistent and smooth
    (``fill_smooth_px``), else out."""
    from tasks.labels.correspondence import FusedBackend

    h, w = 40, 60
    img = np.zeros((h, w, 3), np.uint8)
    d_flow = np.full((h, w), 5.0, np.float32)  # the dense flow says 5 px everywhere ...
    d_sgbm = np.full((h, w), 5.6, np.float32)  # ... SGBM 5.6 (agree: mean 5.3)
    d_sgbm[:, 20:30] = 9.0                      # columns 20-29: SGBM says 9 (disagree)
    valid = np.ones((h, w), bool)
    valid[:, 50:] = False                       # columns 50+: SGBM invalid (flow consistent, smooth)
    valid[:, 15:18] = False                     # columns 15-17: SGBM invalid, flow inconsistent
    fwd = np.zeros((h, w, 2), np.float32)
    fwd[..., 0] = -d_flow
    bwd = np.zeros((h, w, 2), np.float32)
    bwd[..., 0] = d_flow
    bwd[:, 10:20, 0] = 40.0  # where columns 15..24 land (x - 5): the flow is inconsistent there
    for conflict, fill in (("out", 0.5), ("sgbm", 0.5), ("out", None)):
        # the rule alone, without the per-pair fallback
        fused = FusedBackend(conflict=conflict, fill_smooth_px=fill, min_kept=0.0)
        fused.flow_backend = _FixedFlow(fwd, bwd)
        fused.sgbm = _FixedSgbm(d_sgbm, valid)
        out, _ = fused.flow([img, img], [img, img])
        assert fused.last_mode == "fused"
        u = -out[..., 0]
        assert np.allclose(u[:, 5:15], 5.3)          # agree, flow consistent: mean
        assert np.allclose(u[:, 30:50], 5.3)
        assert np.allclose(u[:, 18:20], 5.3)         # agree where the flow is inconsistent: still the mean
        assert (u[:, 15:18] > w).all()               # SGBM invalid, flow inconsistent: nothing
        assert np.allclose(u[:, 20:25], 9.0)         # disagree, flow inconsistent: SGBM
        if conflict == "out":
            assert (u[:, 25:30] > w).all()           # disagree, both consistent: nothing (points outside)
        else:
            assert np.allclose(u[:, 25:30], 9.0)
        if fill is None:
            assert (u[:, 50:] > w).all()             # SGBM invalid: nothing
        else:
            assert np.allclose(u[:, 50:], 5.0)       # SGBM invalid, flow consistent and smooth: the flow
        # SGBM got the geometry from the flow (alignment, disparity range), not from a coarse flow of its own
        alignment, lo, hi = fused.sgbm.calls[0]
        assert lo <= 5.0 <= hi and abs(alignment.ty) < 1e-6


def test_fused_returns_the_flow_alone_on_unrectified_rows():
    """Rows not rectified (a vertical offset that varies across the image, as on scanned stereo
    cards): SGBM's 1-D search cannot work, the dense flow comes back unchanged."""
    from tasks.labels.correspondence import FusedBackend

    s = make_scene(96, 160, d_bg=3, d_fg=8, sky_rows=0)
    h, w = s.left.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    bend = 3.0 * np.sin(xs / w * 2 * np.pi)  # up to 3 px up or down, no similarity explains it
    import cv2
    right = cv2.remap(s.right, xs, ys + bend, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fused = build_backend("fused")
    got = fused.flow([s.left, right], [right, s.left])
    assert fused.last_mode == "flow"
    want = build_backend("dis").flow([s.left, right], [right, s.left])
    assert all(np.array_equal(g, w_) for g, w_ in zip(got, want))
    # the rectified scene goes through SGBM
    fused.flow([s.left, s.right], [s.right, s.left])
    assert fused.last_mode == "fused"


def test_fused_falls_back_to_the_flow_where_sgbm_fails(monkeypatch):
    """SGBM valid on only a sliver of the pair (blur, noise, heavy JPEG defeat its uniqueness and
    speckle tests): the fused flows would keep far fewer consistent pixels than the dense flow alone,
    so the pair gets the dense flow, recorded as ``flow_fallback``; where SGBM works it is used."""
    from tasks.labels.correspondence import SgbmBackend

    s = make_scene(96, 160, d_bg=3, d_fg=8, sky_rows=0)
    fused = build_backend("fused")
    fused.flow([s.left, s.right], [s.right, s.left])
    assert fused.last_mode == "fused"
    real_match = SgbmBackend.match

    def failing(self, a, b, **kw):
        flow, valid, coarse = real_match(self, a, b, **kw)
        valid[:, : 2 * valid.shape[1] // 3] = False  # SGBM finds nothing in two thirds of the view
        flow[~valid] = -1e4
        return flow, valid, coarse

    monkeypatch.setattr(SgbmBackend, "match", failing)
    monkeypatch.setattr(fused, "fill_smooth_px", None)  # no DIS fill either: the fused flows lose most pixels
    got = fused.flow([s.left, s.right], [s.right, s.left])
    assert fused.last_mode == "flow_fallback"
    want = build_backend("dis").flow([s.left, s.right], [s.right, s.left])
    assert all(np.array_equal(g, w_) for g, w_ in zip(got, want))
    monkeypatch.setattr(fused, "min_kept", 0.0)  # the fallback off: the fused flows, with their losses
    got = fused.flow([s.left, s.right], [s.right, s.left])
    assert fused.last_mode == "fused" and consistency_mask(*got).mean() < 0.5 * consistency_mask(*want).mean()


@pytest.mark.parametrize("dx", [0, 8])
def test_fused_recovers_disparity_of_either_sign_and_catches_the_occlusion(dx):
    s = make_scene(96, 160, d_bg=2, d_fg=7, sky_rows=0)
    right = shifted(s.right, dx, 0)
    fwd, bwd = build_backend("fused").flow([s.left, right], [right, s.left])
    mask = consistency_mask(fwd, bwd)
    visible = ~s.occluded
    visible[:, :12] = visible[:, -12:] = False
    ok = visible & mask
    assert ok[visible].mean() > 0.5
    assert np.abs(-fwd[..., 0] - (s.disparity - dx))[ok].mean() < 0.3
    assert mask[s.occluded].mean() < 0.2


def test_fused_names_and_options():
    from tasks.labels.correspondence import DEFAULT_BACKEND, FusedBackend

    assert DEFAULT_BACKEND == "fused" and "fused" in CORRESPONDENCE.names()
    assert not is_gpu_backend("fused") and not is_gpu_backend("fused:dis") and is_gpu_backend("fused:raft")
    assert build_backend("fused:sgbm").flow_backend.name == "sgbm"
    with pytest.raises(ValueError, match="conflict"):
        FusedBackend(conflict="maybe")
    with pytest.raises(ValueError, match="weight"):
        FusedBackend(weight=2.0)
    with pytest.raises(ValueError, match="cannot itself be fused"):
        build_backend("fused:fused")


def test_fused_network_flow_random_weights_on_cpu():
    """The GPU path stays alive: a ptlflow network as the flow of the fused backend, random weights, CPU."""
    pytest.importorskip("ptlflow")
    s = make_scene(64, 96, d_bg=2, d_fg=5, sky_rows=0)
    fused = build_backend("fused:raft_small", device="cpu")
    fwd, bwd = fused.flow([s.left, s.right], [s.right, s.left])
    assert fwd.shape == (64, 96, 2) and np.isfinite(fwd).all() and np.isfinite(bwd).all()
    assert fused.last_mode in ("fused", "flow", "flow_fallback") and fused.device == "cpu"
