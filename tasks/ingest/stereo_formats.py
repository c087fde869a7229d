"""Decide how a web image stores its stereo views, from its content, and cut the views out.

A web "stereo" photo is one of: two views side by side (parallel or cross-eyed: the same here,
the process stage decides the order from the disparity sign), over-under, an MPO file (one JPEG
per view), a JPS file (side by side, cross-eyed by convention), a left-center-right triptych, a
red/cyan anaglyph, or no stereo at all (mono). Aspect ratio alone cannot tell these apart: a 2:1
panorama is mono, and a triptych can be 2:1 too. So every candidate layout is scored by how alike
its regions are:

- ``view_similarity``: normalised cross-correlation of two regions, maximised over horizontal
  shifts up to 15 % of the width (stereo views differ by horizontal disparity) and a few rows of
  vertical shift (imperfect rectification), on blurred, downscaled grey images.
- The seam is found, not assumed: a run of flat (near-constant) columns or rows near the middle
  (or at 1/3 and 2/3 for triptychs) is a divider bar; flat outer borders are trimmed first.
- Anaglyphs: the red channel comes from one view and green/blue from the other, so the
  red channel's edges disagree with the green/blue edges (which agree with each other) —
  ``anaglyph_score`` = corr(dG, dB) - corr(dR, d(G+B)/2) on horizontal gradients; natural photos
  score below 0.25, anaglyphs near 1.

Boxes are ``[x0, y0, x1, y1]`` in source pixels (after EXIF orientation), x1/y1 exclusive.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STEREO_FORMATS = ("side_by_side", "over_under", "mpo", "jps", "triptych")  # + "anaglyph" when split
REJECTED_FORMATS = ("anaglyph", "mono")

Box = list[int]  # [x0, y0, x1, y1]


@dataclass
class StereoLayout:
    """Where the two views are. ``format`` is one of STEREO_FORMATS or REJECTED_FORMATS.

    ``views``: {"left": box, "right": box} (None for rejected formats); ``frames``: which MPO frame
    each view is in (0 for single-frame files); ``scores``: the detection figures (stored in
    item.info); ``swapped``/``view_order``: INTERFACES.md ingest -> process contract.
    """

    format: str
    views: dict[str, Box] | None = None
    frames: dict[str, int] = field(default_factory=lambda: {"left": 0, "right": 0})
    swapped: bool = False
    view_order: str = "undecided"
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def is_stereo(self) -> bool:
        """Two views can be cut out (every STEREO_FORMATS layout, and anaglyphs when split)."""
        return self.views is not None

    @property
    def view_size(self) -> tuple[int, int]:
        """(width, height) of each view."""
        x0, y0, x1, y1 = self.views["left"]
        return x1 - x0, y1 - y0


def _gray(rgb: np.ndarray) -> np.ndarray:
    import cv2

    if rgb.ndim == 2:
        return rgb.astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _shrink(gray: np.ndarray, width: int) -> np.ndarray:
    import cv2

    h, w = gray.shape
    if w <= width:
        return gray
    return cv2.resize(gray, (width, max(8, int(round(h * width / w)))), interpolation=cv2.INTER_AREA)


def _ncc_best_shift(a: np.ndarray, b: np.ndarray, mx: int, my: int) -> float:
    """Best TM_CCOEFF_NORMED of ``b`` (less an mx/my margin) inside ``a``, over shifts within the margins."""
    import cv2

    h, w = a.shape
    template = b[my : h - my, mx : w - mx]
    if template.size < 64 or template.std() < 1e-3 or a.std() < 1e-3:
        return 0.0
    res = cv2.matchTemplate(a, template, cv2.TM_CCOEFF_NORMED)
    return float(np.nan_to_num(res, nan=0.0).max())


def view_similarity(a: np.ndarray, b: np.ndarray, *, max_shift: float = 0.15, work_width: int = 160) -> float:
    """How alike two views are, in [-1, 1].

    ``a``, ``b``: HxW grey or HxWx3 arrays of the same size. Both are shrunk to ``work_width``
    (blurring: disparity varies across a stereo image, and at low resolution one global shift fits
    most of it), then ``b`` is matched inside ``a`` over horizontal shifts up to ``max_shift`` x width
    and vertical shifts up to 3 % of the height. The score is the smaller of two normalised
    cross-correlations: of the intensities, and of a band-pass (difference of Gaussians, sigma 1
    and 3 px) that ignores smooth gradients such as sky, which make any two halves of a mono photo
    correlate. On the embedded samples and scikit-image's photos, stereo views score >= 0.41 and
    halves of mono photos <= 0.31 (benchmarks/bench_ingest.py)."""
    import cv2

    ga, gb = _gray(a), _gray(b)
    if ga.shape != gb.shape:
        h, w = min(ga.shape[0], gb.shape[0]), min(ga.shape[1], gb.shape[1])
        ga, gb = ga[:h, :w], gb[:h, :w]
    ga, gb = _shrink(ga, work_width), _shrink(gb, work_width)
    if ga.std() < 2.0 or gb.std() < 2.0:
        return 0.0  # flat images carry no evidence of being two views
    h, w = ga.shape
    mx, my = int(round(max_shift * w)), int(round(0.03 * h)) + 1
    smooth_a, smooth_b = cv2.GaussianBlur(ga, (0, 0), 1.5), cv2.GaussianBlur(gb, (0, 0), 1.5)
    band_a = cv2.GaussianBlur(ga, (0, 0), 1.0) - cv2.GaussianBlur(ga, (0, 0), 3.0)
    band_b = cv2.GaussianBlur(gb, (0, 0), 1.0) - cv2.GaussianBlur(gb, (0, 0), 3.0)
    return min(_ncc_best_shift(smooth_a, smooth_b, mx, my), _ncc_best_shift(band_a, band_b, mx, my))


def anaglyph_score(rgb: np.ndarray, *, work_width: int = 256) -> float:
    """corr(dG, dB) - corr(dR, d(G+B)/2) of horizontal gradients; ~1 for red/cyan anaglyphs,
    below ~0.25 for natural colour photos, 0 for grey images."""
    import cv2

    if rgb.ndim != 3 or rgb.shape[2] < 3:
        return 0.0
    h, w = rgb.shape[:2]
    small = rgb[..., :3]
    if w > work_width:
        small = cv2.resize(np.ascontiguousarray(small), (work_width, max(8, int(round(h * work_width / w)))),
                           interpolation=cv2.INTER_AREA)
    ch = [small[..., i].astype(np.float32) for i in range(3)]
    grads = [cv2.Sobel(c, cv2.CV_32F, 1, 0, ksize=3) for c in (ch[0], ch[1], ch[2], (ch[1] + ch[2]) / 2)]

    def corr(x: np.ndarray, y: np.ndarray) -> float:
        x, y = x - x.mean(), y - y.mean()
        den = float(np.sqrt((x * x).sum() * (y * y).sum()))
        return float((x * y).sum() / den) if den > 1e-6 else 1.0  # flat channels: no evidence

    return corr(grads[1], grads[2]) - corr(grads[0], grads[3])


def match_keypoints(a: np.ndarray, b: np.ndarray, *, work_width: int = 480, n_features: int = 1500,
                    ratio: float = 0.75) -> tuple[np.ndarray, np.ndarray, float]:
    """SIFT matches between two images (Lowe's ratio test), at most ``work_width`` px wide.

    Returns ``(pts_a, pts_b, scale)``: (N, 2) float32 point arrays in the *work* images' pixels and
    the factor work px / input px. Empty arrays when either image has too few features.
    """
    import cv2

    ga, gb = _gray(a).astype(np.uint8), _gray(b).astype(np.uint8)
    s = min(1.0, work_width / max(ga.shape[1], gb.shape[1]))
    if s < 1.0:
        ga = cv2.resize(ga, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        gb = cv2.resize(gb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    sift = cv2.SIFT_create(nfeatures=n_features)
    ka, da = sift.detectAndCompute(ga, None)
    kb, db = sift.detectAndCompute(gb, None)
    empty = np.zeros((0, 2), np.float32)
    if da is None or db is None or len(ka) < 8 or len(kb) < 8:
        return empty, empty, s
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if not good:
        return empty, empty, s
    pa = np.float32([ka[g.queryIdx].pt for g in good])
    pb = np.float32([kb[g.trainIdx].pt for g in good])
    return pa, pb, s


def stereo_match_evidence(a: np.ndarray, b: np.ndarray, *, max_dy_fraction: float = 0.06) -> dict[str, float]:
    """How strongly two regions look like two views of one scene, from matched keypoints.

    The global ``view_similarity`` fails on cluttered scenes with a wide disparity range (one shift
    cannot align near and far: Middlebury's Art and Dolls score ~0.3, like mono photos), so this
    second test matches SIFT keypoints and checks the stereo geometry: most matches share one
    vertical offset (within 1 % of the height; ``max_dy_fraction`` bounds the offset itself) while
    their horizontal offsets spread (depth). Halves of mono photos find a handful of matches; a
    seamless texture tiled in the image finds many, all with one and the same offset (no depth),
    which the spread test refuses, and a periodic one matches at offsets a period apart, so the spread
    is taken within the largest cluster of offsets (gaps > 3 px split them). Returns ``matches``,
    ``inliers`` (in that cluster), ``inlier_share``,
    ``dx_spread`` (5th..95th percentile of the inliers' horizontal offsets, work px) and ``dy``.
    """
    pa, pb, _ = match_keypoints(a, b)
    n = len(pa)
    out = {"matches": float(n), "inliers": 0.0, "inlier_share": 0.0, "dx_spread": 0.0, "dy": 0.0}
    if n < 8:
        return out
    h = float(max(_gray(a).shape[0] * min(1.0, 480 / max(a.shape[1], b.shape[1])), 1.0))
    dy = pb[:, 1] - pa[:, 1]
    med = float(np.median(dy))
    inl = np.abs(dy - med) < max(1.5, 0.01 * h)
    if abs(med) > max_dy_fraction * h or inl.sum() < 8:
        out["dy"] = med
        return out
    dx = np.sort((pb[:, 0] - pa[:, 0])[inl])
    # a periodic texture matches at offsets one period apart: clusters with gaps between them. Depth
    # gives one continuous range of offsets, so the spread is measured within the largest cluster
    cuts = np.flatnonzero(np.diff(dx) > 3.0) + 1
    clusters = np.split(dx, cuts)
    main = max(clusters, key=len)
    lo, hi = np.percentile(main, [5, 95])
    out.update(inliers=float(len(main)), inlier_share=float(len(main) / n), dx_spread=float(hi - lo), dy=med)
    return out


def looks_like_stereo(evidence: dict[str, float], *, min_inliers: int = 30, min_share: float = 0.5,
                      min_dx_spread: float = 1.5) -> bool:
    """The keypoint test of ``stereo_match_evidence``: enough matches on one vertical offset, most
    of all matches, and a real spread of horizontal offsets (px at the work size)."""
    return (evidence["inliers"] >= min_inliers and evidence["inlier_share"] >= min_share
            and evidence["dx_spread"] >= min_dx_spread)


def _flat_runs(flat: np.ndarray) -> list[tuple[int, int]]:
    """Runs [start, end) where ``flat`` is True."""
    runs, start = [], None
    for i, f in enumerate(flat):
        if f and start is None:
            start = i
        elif not f and start is not None:
            runs.append((start, i))
            start = None
    if start is not None:
        runs.append((start, len(flat)))
    return runs


def _line_flatness(gray: np.ndarray, axis: int) -> np.ndarray:
    """Per column (axis=1) or row (axis=0): is it a flat line (std along it below JPEG noise)?"""
    std = gray.std(axis=0 if axis == 1 else 1)
    return std < 4.0


def _extent(flat: np.ndarray, max_frac: float = 0.1) -> tuple[int, int]:
    """[lo, hi) after trimming flat borders at both ends (each at most ``max_frac`` of the length)."""
    n = len(flat)
    lo, hi = 0, n
    while lo < n * max_frac and lo < n and flat[lo]:
        lo += 1
    while n - hi < n * max_frac and hi > lo and flat[hi - 1]:
        hi -= 1
    return (lo, hi) if hi - lo > n // 2 else (0, n)


def split_regions(gray: np.ndarray, axis: int, n: int) -> list[tuple[int, int]] | None:
    """Cut the extent of ``gray`` along ``axis`` (1 = columns, 0 = rows) into ``n`` equal regions,
    using divider bars (flat runs) near the expected seams when there are any. Returns [start, end)
    per region, all of one length, or None if regions would be empty. Flat borders along the other
    axis are left out first, so a bar is found even when it has another colour than the frame."""
    lo_o, hi_o = _extent(_line_flatness(gray, 1 - axis))
    inner = gray[lo_o:hi_o] if axis == 1 else gray[:, lo_o:hi_o]
    flat = _line_flatness(inner, axis)
    lo, hi = _extent(flat)
    length = hi - lo
    runs = _flat_runs(flat)
    seams: list[tuple[int, int]] = []
    for k in range(1, n):
        expected = lo + length * k / n
        near = [r for r in runs if r[0] > lo and r[1] < hi and abs((r[0] + r[1]) / 2 - expected) < 0.06 * length
                and (r[1] - r[0]) < 0.2 * length]
        if near:
            seams.append(min(near, key=lambda r: abs((r[0] + r[1]) / 2 - expected)))
        else:
            c = int(round(expected))
            seams.append((c, c))
    edges = [lo] + [x for seam in seams for x in seam] + [hi]
    bounds = [(edges[2 * i], edges[2 * i + 1]) for i in range(n)]
    size = min(e - s for s, e in bounds)
    if size < 8:
        return None
    # equal lengths: anchor each region on its side of the nearest seam (outer borders may differ)
    out = []
    for i, (s, e) in enumerate(bounds):
        if i == 0:
            out.append((e - size, e))
        elif i == n - 1:
            out.append((s, s + size))
        else:
            mid = (s + e) // 2
            out.append((mid - size // 2, mid - size // 2 + size))
    return out


def _box(axis: int, region: tuple[int, int], other: tuple[int, int]) -> Box:
    if axis == 1:
        return [region[0], other[0], region[1], other[1]]
    return [other[0], region[0], other[1], region[1]]


def _crop(img: np.ndarray, box: Box) -> np.ndarray:
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1]


def detect_stereo_format(
    frames: list[np.ndarray],
    *,
    is_jps: bool = False,
    min_similarity: float = 0.36,
    anaglyph_threshold: float = 0.45,
    split_anaglyph: bool = False,
    use_keypoints: bool = True,
) -> StereoLayout:
    """Find the stereo layout of a decoded image.

    ``frames``: HxWx3 uint8 arrays (several only for MPO files); ``is_jps``: the file is a JPS
    (extension .jps or a _JPSJPS_ APP3 segment); ``min_similarity``: ``view_similarity`` two
    regions need to count as two views; ``anaglyph_threshold``: on ``anaglyph_score``;
    ``use_keypoints``: when no layout reaches ``min_similarity``, also try the keypoint test
    (``stereo_match_evidence``) on the side-by-side and over-under candidates;
    ``split_anaglyph``: return anaglyphs as two views (red channel = left eye, (green + blue) / 2 =
    right eye, both grey; see ``extract_views``) instead of a rejected layout.
    """
    scores: dict[str, float] = {}
    img = frames[0]
    h, w = img.shape[:2]

    if len(frames) >= 2 and frames[1].shape == img.shape:
        s = view_similarity(frames[0], frames[1])
        scores["mpo"] = round(s, 4)
        if s >= min_similarity:
            full = [0, 0, w, h]
            return StereoLayout("mpo", {"left": full, "right": list(full)}, frames={"left": 0, "right": 1},
                                swapped=False, view_order="mpo", scores=scores)

    gray = _gray(img)
    candidates: list[tuple[str, float, list[Box], int]] = []  # (format, score, boxes, index of left)
    for fmt, axis in (("side_by_side", 1), ("over_under", 0)):
        regions = split_regions(gray, axis, 2)
        if regions is None:
            continue
        other = _extent(_line_flatness(gray, 1 - axis))
        boxes = [_box(axis, r, other) for r in regions]
        s = view_similarity(_crop(img, boxes[0]), _crop(img, boxes[1]))
        scores[fmt] = round(s, 4)
        candidates.append((fmt, s, boxes, 0))
    if not is_jps:
        regions = split_regions(gray, 1, 3)
        if regions is not None:
            other = _extent(_line_flatness(gray, 0))
            boxes = [_box(1, r, other) for r in regions]
            s01 = view_similarity(_crop(img, boxes[0]), _crop(img, boxes[1]))
            s12 = view_similarity(_crop(img, boxes[1]), _crop(img, boxes[2]))
            scores["triptych"] = round(min(s01, s12), 4)
            scores["triptych_pairs"] = [round(s01, 4), round(s12, 4)]
            # keep one adjacent pair: the first, unless only the second is a good match
            first = 0 if s01 >= min_similarity or s01 >= s12 else 1
            candidates.append(("triptych", min(s01, s12), boxes[first : first + 2], 0))

    scores["anaglyph"] = round(anaglyph_score(img), 4)
    if is_jps:
        candidates = [c for c in candidates if c[0] == "side_by_side"]
    best = max(candidates, key=lambda c: c[1], default=None)
    if best is not None and best[1] < min_similarity and use_keypoints:
        # second test for cluttered, wide-range stereo: keypoint geometry (stereo_match_evidence)
        verified = []
        for fmt, s, boxes, li in candidates:
            if fmt == "triptych":
                continue
            ev = stereo_match_evidence(_crop(img, boxes[0]), _crop(img, boxes[1]))
            scores[f"{fmt}_keypoints"] = {k: round(v, 3) for k, v in ev.items()}
            if looks_like_stereo(ev):
                verified.append((ev["inliers"], (fmt, s, boxes, li)))
        if verified:
            best = max(verified, key=lambda v: v[0])[1]
            best = (best[0], min_similarity, best[2], best[3])
    if best is not None and best[0] == "triptych" and best[1] >= min_similarity and use_keypoints:
        # a side-by-side whose views differ by a wide disparity can look like a triptych to the
        # global similarity (its thirds share content); keypoints tell: the true pair of views
        # matches with one vertical offset far more often than any two thirds do
        sbs = next((c for c in candidates if c[0] == "side_by_side"), None)
        if sbs is not None:
            ev_sbs = stereo_match_evidence(_crop(img, sbs[2][0]), _crop(img, sbs[2][1]))
            ev_tri = stereo_match_evidence(_crop(img, best[2][0]), _crop(img, best[2][1]))
            scores["side_by_side_keypoints"] = {k: round(v, 3) for k, v in ev_sbs.items()}
            scores["triptych_keypoints"] = {k: round(v, 3) for k, v in ev_tri.items()}
            if looks_like_stereo(ev_sbs) and ev_sbs["inliers"] > 1.5 * ev_tri["inliers"]:
                best = sbs if sbs[1] >= min_similarity else (sbs[0], min_similarity, sbs[2], sbs[3])
    if best is not None and best[1] >= min_similarity:
        fmt, _s, boxes, _ = best
        if is_jps:  # JPS is cross-eyed by convention: the left eye's view is the second half
            return StereoLayout("jps", {"left": boxes[1], "right": boxes[0]}, swapped=True, view_order="jps",
                                scores=scores)
        return StereoLayout(fmt, {"left": boxes[0], "right": boxes[1]}, swapped=False, view_order="undecided",
                            scores=scores)
    if scores["anaglyph"] >= anaglyph_threshold:
        if split_anaglyph:  # red-left is the red/cyan convention; process still checks the disparity sign
            full = [0, 0, w, h]
            return StereoLayout("anaglyph", {"left": full, "right": list(full)}, swapped=False,
                                view_order="undecided", scores=scores)
        return StereoLayout("anaglyph", None, scores=scores)
    return StereoLayout("mono", None, scores=scores)


def anaglyph_views(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) grey HxWx3 uint8 views of a red/cyan anaglyph: the red channel and the mean of
    green and blue. Their brightness differs wherever the scene is coloured, which DIS tolerates
    (benchmarks/bench_ingest.py: on the motorcycle crops, consistent pixels are as accurate as
    with the true grey pair, but fewer pixels pass the consistency check)."""
    red = rgb[..., 0]
    cyan = ((rgb[..., 1].astype(np.uint16) + rgb[..., 2]) // 2).astype(np.uint8)
    return np.repeat(red[..., None], 3, axis=2), np.repeat(cyan[..., None], 3, axis=2)


def extract_views(frames: list[np.ndarray], layout: StereoLayout) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) HxWx3 uint8 views cut out of ``frames`` as ``layout`` says."""
    if not layout.is_stereo:
        raise ValueError(f"{layout.format} has no two views")
    if layout.format == "anaglyph":
        return anaglyph_views(_crop(frames[0], layout.views["left"]))
    left = _crop(frames[layout.frames["left"]], layout.views["left"])
    right = _crop(frames[layout.frames["right"]], layout.views["right"])
    return np.ascontiguousarray(left), np.ascontiguousarray(right)
