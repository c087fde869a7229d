"""Depth evaluation metrics as pure numpy functions.

Conventions (the whole module):

* A *depth map* is a float array ``(H, W)``; **larger = farther**. Ground truth is positive where valid.
* A *mask* is a bool array ``(H, W)``; True where the ground truth is valid. ``None`` = all pixels.
* Point pairs are flat pixel indices ``(N,)`` into ``depth.ravel()`` (see :func:`sample_pairs`).
* Ordinal relation codes (``int8``): ``+1`` = point A is farther than B, ``-1`` = A is closer,
  ``0`` = equal. DIW's ``'>'`` is ``+1``, ``'<'`` is ``-1``.
* Rates and errors are fractions (0.25, not 25 %). Functions that score a whole set return
  ``dict[str, float]``; counts are included as floats (``n_pairs``) so tables can weight them.

References: WHDR from Chen et al., "Single-Image Depth Perception in the Wild" (NIPS 2016); WKDR from
Zoran et al. (ICCV 2015) as used by Chen et al. and by Xian et al. (ReDWeb, CVPR 2018) on NYUv2;
rms / rel / log10 / delta from Eigen et al. (NIPS 2014).
"""
from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from core.rules import DEPTH_ERROR_NAMES, SIGMA, ordinal_labels  # noqa: F401  (re-exported)

#: DESIGN.md's ordinal equality threshold: g_i / g_j > 1 + sigma means i is farther.
DEFAULT_SIGMA = SIGMA
#: Pairs per image for WKDR on dense ground truth (the NYUv2 protocol of Chen et al. uses ~3K).
DEFAULT_PAIRS_PER_IMAGE = 3000

ORDINAL_NAMES = ("wkdr", "wkdr_eq", "wkdr_neq")


# --------------------------------------------------------------------------- ordinal relations
def parse_relations(relations: Iterable[str] | np.ndarray) -> np.ndarray:
    """DIW relation symbols -> codes: ``'>'`` (A farther) -> +1, ``'<'`` (A closer) -> -1, ``'='`` -> 0.

    Numeric input is passed through (must already be -1/0/+1).
    """
    arr = np.asarray(list(relations) if not isinstance(relations, np.ndarray) else relations)
    if arr.dtype.kind in "iuf":
        out = arr.astype(np.int8)
        if not np.isin(out, (-1, 0, 1)).all():
            raise ValueError("numeric relations must be -1, 0 or +1")
        return out
    table = {">": 1, "<": -1, "=": 0}
    try:
        return np.array([table[str(r).strip()] for r in arr], dtype=np.int8)
    except KeyError as exc:
        raise ValueError(f"unknown relation {exc.args[0]!r}; expected '<', '>' or '='") from None


def ordinal_relation(depth_a: np.ndarray, depth_b: np.ndarray, sigma: float = 0.0) -> np.ndarray:
    """Relation of A to B from depths (larger = farther), ``(N,)`` -> ``(N,)`` int8.

    +1 where ``a > (1 + sigma) * b`` (A farther), -1 where ``b > (1 + sigma) * a``, else 0. This is
    DESIGN.md's ratio rule written without division, so a zero depth never divides; with
    ``sigma > 0`` the inputs must be non-negative for the ratio to mean anything. ``sigma = 0``
    is a plain comparison in which exact ties are 0.
    """
    a = np.asarray(depth_a, dtype=np.float64)
    b = np.asarray(depth_b, dtype=np.float64)
    if sigma < 0:
        raise ValueError("sigma must be >= 0")
    if sigma > 0 and (np.any(a < 0) or np.any(b < 0)):
        raise ValueError("ratio thresholds need non-negative depths; align the prediction first")
    return ordinal_labels(a, b, sigma)


def whdr(pred_a: np.ndarray, pred_b: np.ndarray, relations: Sequence[str] | np.ndarray) -> dict[str, float]:
    """Weighted Human Disagreement Rate (DIW), one human-labelled pair per image.

    pred_a, pred_b: ``(N,)`` predicted depth (larger = farther) at points A and B.
    relations: ``(N,)`` ``'<'`` / ``'>'`` (or -1 / +1): ``'<'`` means A is closer than B.
    A pair counts as wrong unless the prediction orders it strictly the human way: **a tie in the
    prediction is wrong** (so a constant map scores 1.0). DIW weights every pair 1, so WHDR is the
    plain error rate. Returns ``{"whdr": rate, "ties": share of pairs the prediction ties,
    "n_pairs": N}``; ``whdr - ties / 2`` is the rate with ties settled by a coin flip, which is how
    a predictor with many ties (the "lower is closer" baseline on same-row pairs) is sometimes
    reported. An empty input gives NaN rates.
    """
    truth = parse_relations(relations)
    if np.any(truth == 0):
        raise ValueError("WHDR pairs must be '<' or '>' (DIW has no equal pairs)")
    pred = ordinal_relation(pred_a, pred_b, sigma=0.0)
    n = truth.size
    wrong = int(np.count_nonzero(pred != truth))
    ties = int(np.count_nonzero(pred == 0))
    nan = float("nan")
    return {"whdr": wrong / n if n else nan, "ties": ties / n if n else nan, "n_pairs": float(n)}


def sample_pairs(
    valid: np.ndarray, n_pairs: int = DEFAULT_PAIRS_PER_IMAGE, rng: np.random.Generator | int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Uniformly sample ``n_pairs`` point pairs among valid pixels; flat indices ``(N,), (N,)``.

    valid: ``(H, W)`` bool. The two points of a pair are distinct pixels (pairs are drawn with
    replacement across pairs, as in the NYUv2 protocol of Chen et al.). ``rng`` is a Generator or a
    seed; evaluation seeds it per image (``np.random.default_rng([seed, image_index])``) so every
    predictor, baselines included, is scored on the same pairs. Fewer than 2 valid pixels -> empty.
    """
    rng = np.random.default_rng(rng) if not isinstance(rng, np.random.Generator) else rng
    idx = np.flatnonzero(np.asarray(valid, dtype=bool).ravel())
    if idx.size < 2 or n_pairs <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    a = rng.integers(0, idx.size, size=n_pairs)
    # Draw B from the other idx.size - 1 pixels so that A != B without rejection loops.
    b = rng.integers(0, idx.size - 1, size=n_pairs)
    b = b + (b >= a)
    return idx[a], idx[b]


def wkdr_counts(
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    gt_a: np.ndarray,
    gt_b: np.ndarray,
    sigma: float = DEFAULT_SIGMA,
    pred_sigma: float | None = None,
) -> dict[str, float]:
    """Disagreement counts for WKDR; sum these over images, then call :func:`wkdr_from_counts`.

    All inputs ``(N,)``. Ground-truth relations use the ratio rule with ``sigma``; predicted
    relations use the same rule with ``pred_sigma`` (default ``sigma``), so the prediction must
    be a positive depth in the ground truth's units (align it first, see :func:`align_scale_shift`).
    Returns ``n_pairs, n_eq, n_neq, wrong, wrong_eq, wrong_neq``.
    """
    truth = ordinal_relation(gt_a, gt_b, sigma)
    pred = ordinal_relation(pred_a, pred_b, sigma if pred_sigma is None else pred_sigma)
    wrong = pred != truth
    eq = truth == 0
    return {
        "n_pairs": float(truth.size),
        "n_eq": float(np.count_nonzero(eq)),
        "n_neq": float(np.count_nonzero(~eq)),
        "wrong": float(np.count_nonzero(wrong)),
        "wrong_eq": float(np.count_nonzero(wrong & eq)),
        "wrong_neq": float(np.count_nonzero(wrong & ~eq)),
    }


def wkdr_from_counts(counts: Mapping[str, float]) -> dict[str, float]:
    """``{"wkdr", "wkdr_eq", "wkdr_neq", "n_pairs"}`` from (summed) :func:`wkdr_counts`.

    WKDR = wrong / all pairs; WKDR= over pairs the ground truth calls equal; WKDR≠ over the rest.
    Every pair has weight 1 (pooled over images). A rate over zero pairs is NaN.
    """

    def rate(num: float, den: float) -> float:
        return num / den if den else float("nan")

    return {
        "wkdr": rate(counts["wrong"], counts["n_pairs"]),
        "wkdr_eq": rate(counts["wrong_eq"], counts["n_eq"]),
        "wkdr_neq": rate(counts["wrong_neq"], counts["n_neq"]),
        "n_pairs": float(counts["n_pairs"]),
    }


def wkdr(
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    gt_a: np.ndarray,
    gt_b: np.ndarray,
    sigma: float = DEFAULT_SIGMA,
    pred_sigma: float | None = None,
) -> dict[str, float]:
    """WKDR, WKDR=, WKDR≠ of one set of pairs (see :func:`wkdr_counts` for the conventions)."""
    return wkdr_from_counts(wkdr_counts(pred_a, pred_b, gt_a, gt_b, sigma, pred_sigma))


def sum_counts(counts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    """Key-wise sum of count dicts (for pooling WKDR counts over images)."""
    total: dict[str, float] = {}
    for c in counts:
        for k, v in c.items():
            total[k] = total.get(k, 0.0) + float(v)
    return total


# --------------------------------------------------------------------------- alignment
def _masked(x: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x.ravel() if mask is None else x[np.asarray(mask, dtype=bool)]


def normalize_to_stats(pred: np.ndarray, mean: float, std: float, mask: np.ndarray | None = None) -> np.ndarray:
    """The ReDWeb paper's normalization: standardize the prediction, then give it the training set's
    depth ``mean`` and ``std`` (metres for NYUv2). ``(H, W) -> (H, W)`` float64.

    The prediction's own mean/std are taken over ``mask`` (default: the whole map). A constant
    prediction has no spread and becomes the constant ``mean``.
    """
    p = np.asarray(pred, dtype=np.float64)
    vals = _masked(p, mask)
    mu, sd = float(vals.mean()), float(vals.std())
    z = (p - mu) / sd if sd > 0 else np.zeros_like(p)
    return z * float(std) + float(mean)


def fit_scale_shift(
    pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None, nonnegative: bool = False
) -> tuple[float, float]:
    """Least-squares ``(s, t)`` minimizing ``sum((s * pred + t - target)^2)`` over ``mask``.

    Closed form of the 2x2 normal equations; a constant prediction gets ``s = 0, t = mean(target)``.
    ``nonnegative=True`` constrains ``s >= 0`` (the constrained optimum of a negative fit is
    ``s = 0``): a prediction whose order is reversed then becomes the mean instead of being flipped
    into a good score. Evaluation uses it; plain least squares is the default here.
    """
    p, g = _masked(pred, mask), _masked(target, mask)
    if p.size == 0:
        raise ValueError("no valid pixels to align on")
    pm, gm = p.mean(), g.mean()
    var = float(((p - pm) ** 2).sum())
    if var <= 0:
        return 0.0, float(gm)
    s = float(((p - pm) * (g - gm)).sum() / var)
    if nonnegative and s < 0:
        return 0.0, float(gm)
    return s, float(gm - s * pm)


def align_scale_shift(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None = None, nonnegative: bool = False
) -> np.ndarray:
    """Per-image least-squares scale and shift of a depth-like prediction onto ``gt`` (depth space)."""
    s, t = fit_scale_shift(pred, gt, mask, nonnegative)
    return s * np.asarray(pred, dtype=np.float64) + t


def align_scale_shift_inverse(
    pred_inverse: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    max_depth: float | None = None,
    nonnegative: bool = False,
) -> np.ndarray:
    """Scale-and-shift alignment in inverse-depth space (the MiDaS protocol); returns depth.

    pred_inverse: ``(H, W)`` disparity-like prediction (larger = **closer**). Fits
    ``s * pred_inverse + t ~= 1 / gt`` on valid pixels, then converts back to depth. Aligned
    disparities below ``1 / max_depth`` (default: the largest valid gt depth) are clamped there,
    so the depth is capped at ``max_depth`` instead of blowing up or turning negative.
    """
    g = np.asarray(gt, dtype=np.float64)
    valid = (g > 0) if mask is None else (np.asarray(mask, dtype=bool) & (g > 0))
    inv_gt = np.zeros_like(g)
    inv_gt[valid] = 1.0 / g[valid]
    s, t = fit_scale_shift(pred_inverse, inv_gt, valid, nonnegative)
    disp = s * np.asarray(pred_inverse, dtype=np.float64) + t
    cap = float(max_depth) if max_depth is not None else float(g[valid].max())
    return 1.0 / np.maximum(disp, 1.0 / cap)


# --------------------------------------------------------------------------- metric-depth errors
def depth_errors(
    pred: np.ndarray,
    gt: np.ndarray,
    mask: np.ndarray | None = None,
    min_depth: float = 1e-3,
    max_depth: float | None = None,
) -> dict[str, float]:
    """Eigen et al.'s errors of one image: ``rms, rel, log10, delta1, delta2, delta3``.

    pred, gt: ``(H, W)`` depth in the same units (pred already normalized or aligned). Pixels count
    where ``mask`` and ``gt > 0``. The prediction is clipped to ``[min_depth, max_depth]`` first
    (as every public NYUv2 evaluation does) so log10 and ratios stay finite.

    rms = sqrt(mean((p - g)^2)); rel = mean(|p - g| / g); log10 = mean(|log10 p - log10 g|);
    delta_k = fraction of pixels with max(p / g, g / p) < 1.25^k.
    """
    g = np.asarray(gt, dtype=np.float64)
    valid = g > 0
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    if not valid.any():
        raise ValueError("no valid ground-truth pixels")
    g = g[valid]
    p = np.clip(np.asarray(pred, dtype=np.float64)[valid], min_depth, max_depth)
    diff = p - g
    # One log serves log10 and the deltas: |log(p/g)| = log(max(p/g, g/p)).
    abs_log = np.abs(np.log(p / g))
    return {
        "rms": float(np.sqrt(np.mean(diff * diff))),
        "rel": float(np.mean(np.abs(diff) / g)),
        "log10": float(np.mean(abs_log) / np.log(10.0)),
        "delta1": float(np.mean(abs_log < np.log(1.25))),
        "delta2": float(np.mean(abs_log < 2 * np.log(1.25))),
        "delta3": float(np.mean(abs_log < 3 * np.log(1.25))),
    }


def mean_metrics(per_image: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average per-image metric dicts key-wise (images weigh equally, as in Eigen et al.)."""
    if not per_image:
        return {}
    keys = per_image[0].keys()
    return {k: float(np.mean([m[k] for m in per_image])) for k in keys}


# --------------------------------------------------------------------------- Chen et al. 2016 WKDR
def chen2016_relations(pred_a: np.ndarray, pred_b: np.ndarray, tau: float) -> np.ndarray:
    """Chen et al.'s predicted relation on the **raw** output (larger = farther): 0 ("equal") where
    ``|z_A - z_B| < tau``, else the sign of ``z_A - z_B`` (+1 = A farther). ``(N,)`` -> int8.
    A NaN difference (a diverged network) counts as "equal", as the ratio rule of :func:`wkdr` does."""
    d = np.asarray(pred_a, dtype=np.float64) - np.asarray(pred_b, dtype=np.float64)
    d = np.where(np.isnan(d), 0.0, d)
    rel = np.sign(d).astype(np.int8)
    rel[np.abs(d) < tau] = 0
    return rel


def _chen2016_errors(diff: np.ndarray, truth: np.ndarray, taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WKDR= and WKDR≠ for each threshold in ``taus`` (all > 0) at once, by sorting: O(N log N)."""
    absd = np.abs(diff)
    eq = truth == 0
    n_eq, n_neq = int(eq.sum()), int((~eq).sum())
    eq_abs = np.sort(absd[eq])
    neq_abs = np.sort(absd[~eq])
    # unequal pairs ordered the wrong way (a zero difference is "equal" for any tau > 0, counted below)
    wrong_sign = (~eq) & (diff != 0) & (np.sign(diff).astype(np.int8) != truth)
    wrong_sign_abs = np.sort(absd[wrong_sign])
    # equal pair wrong <=> |d| >= tau; unequal pair wrong <=> |d| < tau, or |d| >= tau with the wrong sign
    wrong_eq = n_eq - np.searchsorted(eq_abs, taus, side="left")
    wrong_neq = np.searchsorted(neq_abs, taus, side="left") + (wrong_sign_abs.size - np.searchsorted(wrong_sign_abs, taus, side="left"))
    nan = np.full(taus.shape, np.nan)
    rate_eq = wrong_eq / n_eq if n_eq else nan
    rate_neq = wrong_neq / n_neq if n_neq else nan
    return np.asarray(rate_eq, dtype=np.float64), np.asarray(rate_neq, dtype=np.float64)


def select_chen2016_tau(pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray) -> float:
    """The threshold of Chen et al. 2016 chosen on validation pairs: the ``tau`` that minimises
    ``max(WKDR=, WKDR≠)``; ties go to the smallest ``tau``.

    pred_a, pred_b: ``(N,)`` raw predictions (larger = farther); truth: ``(N,)`` relation codes of
    the ground truth. Every distinct rule is tried exactly: the candidates are each distinct positive
    ``|z_A - z_B|`` (the pairs below it become "equal") and one just above the largest (all equal).
    With no positive difference at all every pair is already "equal" and ``tau = 0`` is returned.
    """
    diff = np.asarray(pred_a, dtype=np.float64) - np.asarray(pred_b, dtype=np.float64)
    diff = np.where(np.isnan(diff), 0.0, diff)
    truth = parse_relations(truth)
    absd = np.abs(diff)
    positive = np.unique(absd[absd > 0])
    if positive.size == 0:
        return 0.0
    taus = np.append(positive, np.nextafter(positive[-1], np.inf))
    rate_eq, rate_neq = _chen2016_errors(diff, truth, taus)
    # A side with no pairs does not constrain the choice.
    objective = np.fmax(np.nan_to_num(rate_eq, nan=-1.0), np.nan_to_num(rate_neq, nan=-1.0))
    return float(taus[int(np.argmin(objective))])


def wkdr_chen2016(pred_a: np.ndarray, pred_b: np.ndarray, truth: np.ndarray, tau: float) -> dict[str, float]:
    """WKDR with Chen et al.'s rule (:func:`chen2016_relations`) at a given ``tau``.

    Returns ``{"wkdr_chen2016", "wkdr_chen2016_eq", "wkdr_chen2016_neq", "wkdr_chen2016_tau",
    "n_pairs"}`` (rates pooled over all pairs; NaN over zero pairs). Differs from :func:`wkdr`, whose
    prediction relations use the ratio rule on an aligned prediction.
    """
    truth = parse_relations(truth)
    pred = chen2016_relations(pred_a, pred_b, tau)
    wrong = pred != truth
    eq = truth == 0
    n, n_eq, n_neq = truth.size, int(eq.sum()), int((~eq).sum())
    nan = float("nan")
    return {
        "wkdr_chen2016": float(wrong.sum()) / n if n else nan,
        "wkdr_chen2016_eq": float((wrong & eq).sum()) / n_eq if n_eq else nan,
        "wkdr_chen2016_neq": float((wrong & ~eq).sum()) / n_neq if n_neq else nan,
        "wkdr_chen2016_tau": float(tau),
        "n_pairs": float(n),
    }


# --------------------------------------------------------------------------- semantic segmentation
#: The usual "void" label of PASCAL VOC (object borders, ambiguous pixels): never scored.
VOC_IGNORE_INDEX = 255


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, n_classes: int, ignore_index: int = VOC_IGNORE_INDEX
) -> np.ndarray:
    """``(n_classes, n_classes)`` int64 counts, rows = ground truth, columns = prediction.

    pred, gt: integer label maps of one shape. Pixels whose ground truth is ``ignore_index`` (or
    outside ``0..n_classes-1``) are skipped; a predicted label outside the range is an error.
    """
    p = np.asarray(pred).ravel().astype(np.int64)
    g = np.asarray(gt).ravel().astype(np.int64)
    if p.shape != g.shape:
        raise ValueError(f"prediction and ground truth differ in size: {p.size} vs {g.size}")
    keep = (g != ignore_index) & (g >= 0) & (g < n_classes)
    p, g = p[keep], g[keep]
    if p.size and (p.min() < 0 or p.max() >= n_classes):
        raise ValueError(f"predicted labels must be in 0..{n_classes - 1}")
    return np.bincount(g * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def segmentation_scores(confusion: np.ndarray) -> dict[str, float]:
    """Scores from a (summed) confusion matrix: ``miou`` (PASCAL VOC's mean over classes of
    TP / (TP + FP + FN), classes with an empty union left out), ``pixel_acc``, ``mean_acc``, and
    ``iou_<k>`` per class (NaN where the class never appears in ground truth or prediction)."""
    conf = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(conf)
    gt_count, pred_count = conf.sum(1), conf.sum(0)
    union = gt_count + pred_count - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
        acc = np.where(gt_count > 0, tp / gt_count, np.nan)
    total = conf.sum()
    out = {
        "miou": float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan"),
        "pixel_acc": float(tp.sum() / total) if total else float("nan"),
        "mean_acc": float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan"),
        "n_pixels": float(total),
    }
    out.update({f"iou_{k}": float(v) for k, v in enumerate(iou)})
    return out
