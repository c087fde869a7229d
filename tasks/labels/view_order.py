"""Which of the two views is the left eye: independent cues combined with a confidence.

A wrong order inverts a whole map (near becomes far), which poisons training far more than noise,
so the decision is never left to one cue and is never silently wrong on purpose: when the cues do
not agree clearly the map goes to review flagged ``view_order_uncertain`` (the reviewer's ``F``
flips it), instead of being auto-rejected or guessed.

Every cue returns a signed vote (+1: the views are in the given order, "parallel"; -1: swapped,
"cross-eyed"; 0: abstains) with a strength in [0, 1]:

- ``occlusion`` (tasks/labels/depth.py ``occlusion_votes``, now counted in both views): the pixels one view
  sees and the other does not lie beside near objects, on the background's side, and look like the
  background. In the first view of a parallel pair they are left of near objects, in the second view
  right of them; swapped views mirror both. Strength from the vote margin and the number of runs.
- ``ground``: most photos have the ground or the table in the lower part and the far scene (walls,
  hills, sky) in the upper part, so disparity grows downwards in a correctly ordered pair (Spearman
  rank correlation of row and disparity over reliable pixels). A prior, not a law (a ceiling, an
  overhanging branch), so it abstains below |rho| = 0.15 and weighs less than the occlusions.
- ``keystone``: a converged (toed-in) rig, and most hand-held two-shot pairs, put a vertical
  parallax ~ x * y between the views whose sign says which camera is on which side (a point on the
  right of the scene is nearer the right camera, so it is imaged larger there). Parallel rigs and
  rectified pairs show none: the cue abstains unless the corner parallax is clearly above noise.
- ``format``: the file format's convention (MPO frame 0 is the left eye; JPS stores the right eye
  first, which ingest has already undone): a strong prior that the data may overturn only with
  overwhelming, agreeing evidence (``overturn``), and that is logged.

``combine`` adds the data cues' weighted votes. Without a format prior the order is decided when
the sum passes ``decide`` (``single`` when only one cue votes) and no strong data cue (strength >=
``veto``) disagrees; otherwise it is uncertain (the given order is kept, flagged). With a prior the
given order stands unless the data sum is below ``-overturn`` with no data cue agreeing with the
prior; when it stands against clearly contrary data (sum below ``-decide`` or a strong contrary cue,
none agreeing) the map is flagged uncertain too: never silently wrong.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Cue:
    name: str
    vote: int  # +1 given order (parallel), -1 swapped (cross-eyed), 0 abstains
    strength: float  # [0, 1]
    detail: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"vote": self.vote, "strength": round(self.strength, 3), **self.detail}


WEIGHTS = {"occlusion": 1.0, "ground": 0.6, "keystone": 0.6}


@dataclass(frozen=True)
class OrderDecision:
    order: str  # "parallel" | "cross_eyed"
    uncertain: bool  # True: the cues did not agree clearly; the map goes to review flagged
    source: str  # "data" | "format" | "data_over_format" | "uncertain"
    evidence: float  # weighted sum of the data cues' votes (+ = given order)
    cues: dict[str, Cue]

    @property
    def swapped(self) -> bool:
        return self.order == "cross_eyed"

    def as_dict(self) -> dict:
        return {"order": self.order, "uncertain": self.uncertain, "source": self.source,
                "evidence": round(self.evidence, 3), "cues": {k: c.as_dict() for k, c in self.cues.items()}}


def occlusion_cue(parallel: int, cross: int, *, min_votes: int = 10, full_votes: int = 60) -> Cue:
    """From occlusion votes of both views: strength = |margin| * min(1, votes / full_votes)."""
    n = parallel + cross
    detail = {"parallel_votes": int(parallel), "cross_votes": int(cross)}
    if n < min_votes:
        return Cue("occlusion", 0, 0.0, detail)
    margin = (parallel - cross) / n
    detail["margin"] = round(margin, 3)
    strength = abs(margin) * min(1.0, n / full_votes)
    return Cue("occlusion", int(np.sign(margin)) if strength > 0 else 0, float(strength), detail)


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(x.size, np.float64)
    r[np.argsort(x, kind="stable")] = np.arange(x.size)
    return r


def ground_cue(disparity: np.ndarray, reliable: np.ndarray, *, min_rho: float = 0.15, full_rho: float = 0.6,
               max_samples: int = 20000, seed: int = 0) -> Cue:
    """Spearman correlation of row index and disparity (first view; larger d = nearer when parallel)."""
    ys, xs = np.nonzero(reliable)
    if ys.size < 200:
        return Cue("ground", 0, 0.0, {"rho": None})
    if ys.size > max_samples:
        pick = np.random.default_rng(seed).choice(ys.size, max_samples, replace=False)
        ys, xs = ys[pick], xs[pick]
    d = disparity[ys, xs].astype(np.float64)
    ry, rd = _ranks(ys.astype(np.float64) + 1e-6 * xs), _ranks(d)
    ry -= ry.mean()
    rd -= rd.mean()
    den = float(np.sqrt((ry * ry).sum() * (rd * rd).sum()))
    rho = float((ry * rd).sum() / den) if den > 0 else 0.0
    if abs(rho) < min_rho:
        return Cue("ground", 0, 0.0, {"rho": round(rho, 3)})
    strength = min(1.0, (abs(rho) - min_rho) / (full_rho - min_rho))
    return Cue("ground", int(np.sign(rho)), float(strength), {"rho": round(rho, 3)})


def keystone_cue(flow: np.ndarray, reliable: np.ndarray, *, min_corner_px: float = 0.6, max_samples: int = 20000,
                 seed: int = 0) -> Cue:
    """Sign of the x*y term of the vertical flow (first -> second view), fitted robustly with an
    offset, x, y (rotation / scale) terms; ``corner_px`` is its size at the image corners."""
    h, w = reliable.shape
    ys, xs = np.nonzero(reliable)
    if ys.size < 500:
        return Cue("keystone", 0, 0.0, {"corner_px": None})
    if ys.size > max_samples:
        pick = np.random.default_rng(seed).choice(ys.size, max_samples, replace=False)
        ys, xs = ys[pick], xs[pick]
    u = (xs - (w - 1) / 2) / (w / 2)
    v = (ys - (h - 1) / 2) / (h / 2)
    dy = flow[ys, xs, 1].astype(np.float64)
    A = np.stack([np.ones_like(u), u, v, u * v], axis=1)
    wts = np.ones(dy.size)
    coef = np.zeros(4)
    for _ in range(4):  # iteratively reweighted: 3-MAD cut
        sw = np.sqrt(wts)
        coef, *_ = np.linalg.lstsq(A * sw[:, None], dy * sw, rcond=None)
        r = dy - A @ coef
        s = 1.4826 * np.median(np.abs(r - np.median(r))) + 1e-3
        wts = (np.abs(r) < 3 * s).astype(np.float64)
    r = (dy - A @ coef)[wts > 0]
    Ai = A[wts > 0]
    sigma2 = float(r.var()) if r.size > 10 else 1.0
    try:
        cov = sigma2 * np.linalg.inv(Ai.T @ Ai)
        se = float(np.sqrt(max(cov[3, 3], 1e-12)))
    except np.linalg.LinAlgError:
        return Cue("keystone", 0, 0.0, {"corner_px": None})
    e = float(coef[3])
    detail = {"corner_px": round(e, 3), "t": round(e / se, 1)}
    if abs(e) < min_corner_px or abs(e / se) < 8:
        return Cue("keystone", 0, 0.0, detail)
    strength = min(1.0, (abs(e) - min_corner_px) / (3 * min_corner_px))
    return Cue("keystone", int(np.sign(e)), float(strength), detail)


def combine(cues: dict[str, Cue], *, format_prior: bool = False, decide: float = 0.35, single: float = 0.5,
            veto: float = 0.5, overturn: float = 1.2) -> OrderDecision:
    """Decide from the cues (module docstring). ``format_prior``: the format says the given order."""
    data = {k: c for k, c in cues.items() if k in WEIGHTS}
    evidence = float(sum(WEIGHTS[k] * c.vote * c.strength for k, c in data.items()))
    all_cues = dict(cues)
    if format_prior:
        all_cues["format"] = Cue("format", 1, 1.0, {})
        agreeing = [c for c in data.values() if c.vote > 0 and c.strength >= 0.25]
        if evidence <= -overturn and not agreeing:
            return OrderDecision("cross_eyed", False, "data_over_format", evidence, all_cues)
        # the convention stands, but clearly contrary data means a person should look (never silently wrong)
        contrary = evidence <= -decide or any(c.vote < 0 and c.strength >= veto for c in data.values())
        return OrderDecision("parallel", bool(contrary and not agreeing), "format", evidence, all_cues)
    sign = 1 if evidence > 0 else -1
    vetoed = any(c.vote == -sign and c.strength >= veto for c in data.values())
    voting = [c for c in data.values() if c.vote != 0]
    needed = decide if len(voting) > 1 else max(decide, single)  # one cue alone must be strong
    if abs(evidence) >= needed and not vetoed:
        return OrderDecision("parallel" if sign > 0 else "cross_eyed", False, "data", evidence, all_cues)
    return OrderDecision("parallel", True, "uncertain", evidence, all_cues)


def order_fields(*, swapped: bool, left_path: str | None, right_path: str | None, swap: bool) -> dict:
    """The one rule for swapping an item's stored views: the catalog fields after keeping (``swap``
    False) or exchanging them. ``swapped`` says whether the file stored the left eye second before;
    the result's ``swapped`` is relative to the file (DESIGN.md manifest), its ``view_order`` follows
    from it (cross-eyed when the file stores the left eye second), and the paths are exchanged only
    when ``swap``. Used by the process stage (the data decided) and the reviewer's flip (a person did).
    """
    now = bool(swapped) ^ bool(swap)
    fields: dict = {"swapped": now, "view_order": "cross_eyed" if now else "parallel"}
    if swap:
        fields.update(left_path=right_path, right_path=left_path)
    return fields
