"""A learned matching cost for rectified views: MC-CNN fast features, semi-global aggregation, checks.

Where a pair's disparities span only a few pixels (distant scenes, small images), a 2 % depth step is a
fraction of a pixel and the weight-free matchers' sub-pixel noise decides the ordinal labels. MC-CNN
(Žbontar & LeCun, JMLR 2016) learns a patch descriptor whose cosine similarity is a sharper matching
cost than SGBM's Birchfield-Tomasi one. The weights are CNES's depthwise "fast" network as ONNX
(``mc_cnn_fast_dw.onnx``, 115 KB, Apache-2.0), read from the installed PyPI package ``mccnn`` (1.4.1,
installed without its dependencies: it pulls opencv-python-headless, which clashes with opencv-python);
they are never copied into this repository. The network runs on ``onnxruntime`` (the ``mccnn`` extra).

The rest is plain numpy and OpenCV on one rectified pair ``a``, ``b`` (rows aligned; ``x_b = x_a - d``):

- :func:`cost_volume`: ``1 - cos`` of the two views' 64-d features, (H, W, D) float32 over the
  disparities ``dmin .. dmin + D - 1``; a disparity that lands outside ``b`` costs :data:`OUTSIDE`;
- :func:`aggregate`: semi-global matching (Hirschmüller 2008) along 4 paths (left, right, down, up),
  penalties ``p1`` (a 1-px step) and ``p2`` (a larger jump), in the cost's units;
- :func:`disparities`: winner-take-all both ways from the one aggregated volume, the uniqueness test,
  parabola sub-pixel, the left-right check and OpenCV's speckle filter.

``tasks.labels.correspondence.MccnnBackend`` puts this behind the backend interface (rectification
by the pair's similarity, padding, flow from disparity) and ``FusedBackend`` routes narrow pairs to it.
"""
from __future__ import annotations

from typing import Any

import cv2
import numpy as np

WEIGHTS_PACKAGE, WEIGHTS_FILE = "mc_cnn.weights", "mc_cnn_fast_dw.onnx"
EXTRA_HINT = "pip install --no-deps mccnn==1.4.1 && pip install 'redweb[mccnn]'"
OUTSIDE = 1.0  # the cost of a disparity whose match lies outside the other view: an unrelated patch's
RECEPTIVE = 11  # the network sees 11 x 11 patches (five unpadded 3 x 3 convolutions)


def load_network(threads: int = 1) -> Any:
    """The MC-CNN fast (depthwise) feature network as an onnxruntime session, on the CPU.

    ``threads``: onnxruntime's intra-op threads (1: ``redweb process`` already runs pairs concurrently
    on every core). Raises ImportError naming the extra when onnxruntime or the mccnn package is missing.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError(f"the mccnn matching cost needs onnxruntime: {EXTRA_HINT}") from exc
    from importlib import resources

    try:
        weights = resources.files(WEIGHTS_PACKAGE).joinpath(WEIGHTS_FILE)
        model = weights.read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ImportError(f"the mccnn matching cost needs the mccnn package's weights: {EXTRA_HINT}") from exc
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # no per-session banner in the logs
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def features(network: Any, grey: np.ndarray) -> np.ndarray:
    """(H, W) grey view -> (H, W, 64) float32 unit feature vectors, one per pixel.

    The view is normalised to zero mean and unit deviation (as the network was trained) and
    reflect-padded by half the receptive field, so every pixel gets a descriptor."""
    x = grey.astype(np.float32)
    x = (x - x.mean()) / max(float(x.std()), 1e-6)
    half = RECEPTIVE // 2
    x = cv2.copyMakeBorder(x, half, half, half, half, cv2.BORDER_REFLECT_101)
    f = network.run(None, {"input": x})[0]  # (64, H, W), L2-normalised over the channels
    return np.ascontiguousarray(f.transpose(1, 2, 0))


def cost_volume(fa: np.ndarray, fb: np.ndarray, dmin: int, ndisp: int) -> np.ndarray:
    """(H, W, C) unit features of a and b -> (H, W, ndisp) float32, ``1 - fa(x) . fb(x - d)`` for
    d = dmin + i; :data:`OUTSIDE` where x - d leaves b."""
    h, w, _ = fa.shape
    cost = np.full((h, w, ndisp), OUTSIDE, np.float32)
    for i in range(ndisp):
        d = dmin + i
        x0, x1 = max(d, 0), min(w + d, w)  # a's columns whose match x - d lies in b
        if x1 <= x0:
            continue
        cost[:, x0:x1, i] = 1.0 - np.einsum("hwc,hwc->hw", fa[:, x0:x1], fb[:, x0 - d:x1 - d])
    return cost


def _scan(cost: np.ndarray, total: np.ndarray, p1: float, p2: float, reverse: bool) -> None:
    """Add to ``total`` the path costs of one direction along axis 1 of (R, N, D) ``cost``."""
    n = cost.shape[1]
    order = range(n - 1, -1, -1) if reverse else range(n)
    prev = None
    for k in order:
        c = cost[:, k]
        if prev is None:
            prev = c.copy()
        else:
            m = prev.min(axis=1, keepdims=True)
            best = np.minimum(prev, m + p2)
            np.minimum(best[:, 1:], prev[:, :-1] + p1, out=best[:, 1:])
            np.minimum(best[:, :-1], prev[:, 1:] + p1, out=best[:, :-1])
            best -= m  # keeps the path costs bounded (Hirschmüller's normalisation)
            best += c
            prev = best
        total[:, k] += prev


def aggregate(cost: np.ndarray, p1: float, p2: float) -> np.ndarray:
    """Semi-global aggregation of an (H, W, D) cost over 4 paths; (H, W, D) float32 sums.

    ``L_r(p, d) = C(p, d) + min(L_r(p - r, d), L_r(p - r, d +- 1) + p1, min_k L_r(p - r, k) + p2)
    - min_k L_r(p - r, k)``, summed over r in {left, right, up, down}."""
    if p2 < p1:
        raise ValueError(f"p2 ({p2}) must be at least p1 ({p1})")
    cost = np.ascontiguousarray(cost, np.float32)
    total = np.zeros_like(cost)
    for reverse in (False, True):
        _scan(cost, total, p1, p2, reverse)  # along the rows
        _scan(cost.transpose(1, 0, 2), total.transpose(1, 0, 2), p1, p2, reverse)  # along the columns
    return total


def _subpixel(s: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Parabola through the aggregated costs at best - 1, best, best + 1: the offset in [-0.5, 0.5]."""
    d = s.shape[2]
    i0, i2 = np.clip(best - 1, 0, d - 1), np.clip(best + 1, 0, d - 1)
    c0 = np.take_along_axis(s, i0[..., None], 2)[..., 0]
    c1 = np.take_along_axis(s, best[..., None], 2)[..., 0]
    c2 = np.take_along_axis(s, i2[..., None], 2)[..., 0]
    den = c0 - 2 * c1 + c2
    off = np.where(den > 1e-9, (c0 - c2) / (2 * np.maximum(den, 1e-9)), 0.0)
    inner = (best > 0) & (best < d - 1)
    return np.where(inner, np.clip(off, -0.5, 0.5), 0.0).astype(np.float32)


def _unique(s: np.ndarray, best: np.ndarray, uniqueness: float) -> np.ndarray:
    """Pixels whose best cost beats every cost away from best +- 1 by ``uniqueness`` percent (SGBM's test)."""
    d = s.shape[2]
    c1 = np.take_along_axis(s, best[..., None], 2)[..., 0]
    masked = s.copy()
    for offset in (-1, 0, 1):
        np.put_along_axis(masked, np.clip(best + offset, 0, d - 1)[..., None], np.inf, 2)
    return c1 * (1.0 + uniqueness / 100.0) < masked.min(axis=2)


def _right_volume(s: np.ndarray, dmin: int) -> np.ndarray:
    """The aggregated volume seen from b: ``S_b(y, x, i) = S(y, x + dmin + i, i)``; outside a, a cost
    above every other (finite, so that the parabola fit stays defined)."""
    h, w, d = s.shape
    out = np.full_like(s, float(s.max()) + 1.0)
    for i in range(d):
        shift = dmin + i
        x0, x1 = max(-shift, 0), min(w - shift, w)
        if x1 > x0:
            out[:, x0:x1, i] = s[:, x0 + shift:x1 + shift, i]
    return out


def _speckles(d: np.ndarray, valid: np.ndarray, window: int, range_px: float) -> np.ndarray:
    """``valid`` less OpenCV's speckles: connected blobs under ``window`` px whose disparities stay within
    ``range_px`` of a neighbour's (SGBM's speckle filter, on 1/16-px disparities)."""
    if window <= 0:
        return valid
    off = float(d[valid].min()) - 2.0 if valid.any() else 0.0
    fixed = np.where(valid, np.rint((d - off) * 16), 0).astype(np.int16)
    cv2.filterSpeckles(fixed, 0, window, int(round(16 * range_px)))
    return valid & (fixed != 0)


def disparities(cost: np.ndarray, dmin: int, *, p1: float, p2: float, uniqueness: float = 5.0,
                lr_max_diff: float = 1.0, speckle_window: int = 100, speckle_range: float = 2.0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Disparity of a and of b from one (H, W, D) cost volume over ``dmin .. dmin + D - 1``.

    Returns ``(d_a, valid_a, d_b, valid_b)``, (H, W) float32 px and bool, with ``x_b = x_a - d_a`` and
    ``x_a = x_b + d_b``. A pixel is valid when its match lies inside the other view, it passes the
    uniqueness test (``uniqueness`` percent, on the aggregated costs), the other view's disparity at its
    match agrees within ``lr_max_diff`` px, and it is not a speckle (``speckle_window`` px,
    ``speckle_range`` px)."""
    h, w, nd = cost.shape
    s = aggregate(cost, p1, p2)
    s_b = _right_volume(s, dmin)
    out = []
    for vol in (s, s_b):
        best = np.argmin(vol, axis=2)
        d = (dmin + best).astype(np.float32) + _subpixel(vol, best)
        out.append((d, _unique(vol, best, uniqueness)))
    (d_a, u_a), (d_b, u_b) = out
    xs = np.arange(w, dtype=np.float32)[None, :]
    rows = np.arange(h)[:, None]
    x_in_b = xs - d_a
    inside_a = (x_in_b >= 0) & (x_in_b <= w - 1)
    back = d_b[rows, np.clip(np.rint(x_in_b), 0, w - 1).astype(int)]
    valid_a = u_a & inside_a & (np.abs(back - d_a) <= lr_max_diff)
    x_in_a = xs + d_b
    inside_b = (x_in_a >= 0) & (x_in_a <= w - 1)
    forth = d_a[rows, np.clip(np.rint(x_in_a), 0, w - 1).astype(int)]
    valid_b = u_b & inside_b & (np.abs(forth - d_b) <= lr_max_diff)
    valid_a = _speckles(d_a, valid_a, speckle_window, speckle_range)
    valid_b = _speckles(d_b, valid_b, speckle_window, speckle_range)
    return d_a, valid_a, d_b, valid_b


def match_rectified(network: Any, a: np.ndarray, b: np.ndarray, dmin: int, ndisp: int, *, p1: float,
                    p2: float, **checks: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(H, W) grey rectified views -> :func:`disparities` over ``dmin .. dmin + ndisp - 1``."""
    cost = cost_volume(features(network, a), features(network, b), dmin, ndisp)
    return disparities(cost, dmin, p1=p1, p2=p2, **checks)
