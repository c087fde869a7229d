"""Rules several packages share, defined once (DESIGN.md "Shared rules").

``tasks``, ``model`` and ``review_ui`` import these instead of keeping their own copies. The module
depends on numpy only; torch and OpenCV are imported inside the one function that needs each, so
importing it is cheap everywhere (the CLI, the review app, the model package).

- Ordinal labels (contract): +1 if g_i / g_j > 1 + sigma (i farther), -1 if g_j / g_i > 1 + sigma,
  else 0; sigma = 0.02. Written without division, so a zero depth never divides.
- Depth encoding (contract): uint16, larger = farther; the farthest non-sky pixel is
  ``MAX_DEPTH_VALUE`` (65001..65534 stay free so sky is never confused), sky = ``SKY_VALUE``.
- The id-hash split: a number in [0, 1) from an item id and a salt; ``split_for`` is the train/val
  split of every export and of training on a layout without a stored split.
- ImageNet normalisation of network inputs, device resolution, the metric names of evaluation
  JSON, and one depth colouriser for previews, the review UI and reports.
"""
from __future__ import annotations

import hashlib
from typing import Any

import numpy as np

#: DESIGN.md's ordinal equality threshold.
SIGMA = 0.02
#: uint16 value of sky pixels in depth maps and exported RDs.
SKY_VALUE = 65535
#: uint16 value of the farthest non-sky pixel.
MAX_DEPTH_VALUE = 65000
#: 8-bit RDs (``--format redweb8``, the original ReDWeb release): sky value.
SKY_VALUE_8 = 255

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: metric-depth errors of the evaluation JSON (after alignment).
DEPTH_ERROR_NAMES = ("rms", "rel", "log10", "delta1", "delta2", "delta3")
#: metric names of the evaluation JSON (DESIGN.md CLI contract, + Chen et al. 2016's WKDR), in table order.
METRIC_NAMES = ("whdr", "wkdr", "wkdr_eq", "wkdr_neq", "wkdr_chen2016", *DEPTH_ERROR_NAMES)


def ordinal_labels(g_i: Any, g_j: Any, sigma: float = SIGMA) -> Any:
    """Ordinal labels of depth pairs (larger = farther), numpy arrays or torch tensors -> int8 {-1, 0, +1}.

    Shapes broadcast; the result has the inputs' array type (a torch tensor stays on its device).
    """
    farther_i = g_i > (1.0 + sigma) * g_j
    farther_j = g_j > (1.0 + sigma) * g_i
    if hasattr(farther_i, "to") and not isinstance(farther_i, np.ndarray):  # torch
        import torch

        return farther_i.to(torch.int8) - farther_j.to(torch.int8)
    return np.asarray(farther_i).astype(np.int8) - np.asarray(farther_j).astype(np.int8)


def id_fraction(item_id: str, salt: str) -> float:
    """Deterministic number in [0, 1) from an item id and a salt (split, double-review pick)."""
    return int(hashlib.sha256(f"{salt}:{item_id}".encode()).hexdigest()[:12], 16) / 16**12


def split_for(item_id: str, val_fraction: float) -> str:
    """``"val"`` or ``"train"`` from the id alone: stable across re-exports, machines and runs."""
    return "val" if id_fraction(item_id, "split") < val_fraction else "train"


def resolve_device(device: str = "auto", local_rank: int | None = None) -> str:
    """``"auto"`` -> ``"cuda"`` (``"cuda:<local_rank>"`` under torchrun) when torch sees a GPU, else ``"cpu"``.

    With ``local_rank``, a bare ``"cuda"`` also becomes ``"cuda:<local_rank>"``. Without torch: ``"cpu"``.
    """
    device = str(device)
    if device == "auto":
        try:
            import torch
        except ImportError:
            return "cpu"
        if not torch.cuda.is_available():
            return "cpu"
        device = "cuda"
    if device == "cuda" and local_rank is not None:
        return f"cuda:{local_rank}"
    return device


def colour_levels(level: np.ndarray, colormap: str = "turbo") -> np.ndarray:
    """``(H, W)`` levels in [0, 1] -> ``(H, W, 3)`` uint8 **RGB** through an OpenCV colormap (0 = its
    bottom end, 1 = its top): the one colour lookup of every depth picture (maps, legends, reports)."""
    import cv2

    code = getattr(cv2, f"COLORMAP_{colormap.upper()}")
    idx = np.round(255 * np.clip(level, 0, 1)).astype(np.uint8)
    return cv2.applyColorMap(idx, code)[..., ::-1].copy()


def colorize_depth(
    depth: np.ndarray,
    *,
    valid: np.ndarray | None = None,
    sky: np.ndarray | None = None,
    colormap: str = "turbo",
    near: str = "warm",
    inverse: bool = False,
    percentiles: tuple[float, float] = (2, 98),
    sky_rgb: tuple[int, int, int] | None = (10, 20, 60),
    invalid_rgb: tuple[int, int, int] | None = None,
    invalid_hatch_rgb: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """``(H, W)`` depth (larger = farther) -> ``(H, W, 3)`` uint8 **RGB** preview.

    Values are scaled between ``percentiles`` of the non-sky (and, if given, ``valid``) pixels so a
    few outliers do not wash the picture out. ``colormap``: any OpenCV colormap name (``turbo``,
    ``magma``, ...). ``near``: ``"warm"`` puts near pixels at the colormap's top end (turbo: red),
    ``"dark"`` at its bottom (magma: black; ReDWeb's "dark = close"). ``inverse`` scales 1/depth, which
    spreads the near range. ``sky``: bool mask; default for uint16 maps ``depth == SKY_VALUE``.
    ``sky_rgb`` / ``invalid_rgb``: colour of sky / of pixels outside ``valid`` (None: leave them).
    ``invalid_hatch_rgb``: with ``invalid_rgb``, the colour of the diagonal stripes (``hatch``) drawn
    over those pixels. A neutral grey for both keeps unmeasured pixels out of every colour of the
    scale, so no reviewer reads "near" or "far" into pixels that were never measured.
    """

    depth = np.asarray(depth)
    depth = depth[..., 0] if depth.ndim == 3 else depth
    if sky is None:
        sky = depth == SKY_VALUE if depth.dtype == np.uint16 else np.zeros(depth.shape, bool)
    values = depth.astype(np.float64)
    if inverse:
        values = 1.0 / np.maximum(values, 1e-12 if depth.dtype.kind == "f" else 1.0)
    pick = ~sky if valid is None or not (valid & ~sky).any() else valid & ~sky
    vals = values[pick]
    t = np.zeros(depth.shape, np.float64)
    if vals.size:
        lo, hi = np.percentile(vals, list(percentiles))
        t = np.clip((values - lo) / max(hi - lo, 1e-12), 0, 1)
    closeness = t if inverse else 1.0 - t  # 1 = nearest
    level = closeness if near == "warm" else 1.0 - closeness
    rgb = colour_levels(level, colormap)
    if sky_rgb is not None:
        rgb[sky] = sky_rgb
    if invalid_rgb is not None and valid is not None:
        bad = ~valid & ~sky
        rgb[bad] = invalid_rgb
        if invalid_hatch_rgb is not None:
            rgb[bad & hatch(depth.shape)] = invalid_hatch_rgb
    return rgb


#: unmeasured (unreliable, non-sky) pixels in every depth picture: a neutral grey, hatched darker, that no
#: colour scale of ours contains, so nobody reads "near" or "far" into pixels that were never measured
UNMEASURED_RGB = (128, 128, 128)
UNMEASURED_HATCH_RGB = (88, 88, 88)


def hatch(shape: tuple[int, ...], period: int = 6, width: int = 2) -> np.ndarray:
    """``(H, W)`` bool: diagonal stripes ``width`` pixels wide every ``period`` pixels; the one
    hatching pattern of unreliable pixels in every depth picture (previews, review maps, legends)."""
    h, w = shape[:2]
    return ((np.arange(h, dtype=np.int32)[:, None] + np.arange(w, dtype=np.int32)[None, :]) % period) < width
