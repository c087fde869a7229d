"""Promote a newly trained checkpoint only if it beats the current one on the same held-out split.

The promoted model is recorded in ``<models_dir>/current.json``; every decision (promoted or not,
with both scores) is appended to ``<models_dir>/promotions.jsonl``. Plain functions: the retrain
flow calls them after evaluating both checkpoints on the same data.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path


@dataclass(frozen=True)
class PromotionDecision:
    promoted: bool
    metric: str
    candidate: str
    candidate_score: float
    current: str | None
    current_score: float | None
    reason: str
    decided_at: str


def current_model(models_dir: str | Path) -> dict | None:
    """The record of the promoted checkpoint, or None before the first promotion."""
    path = Path(models_dir) / "current.json"
    return json.loads(path.read_text()) if path.is_file() else None


def decide_promotion(
    *,
    candidate: str,
    candidate_score: float,
    current: str | None,
    current_score: float | None,
    metric: str,
    lower_is_better: bool = True,
    min_improvement: float = 0.0,
) -> PromotionDecision:
    """Pure decision: promote when there is no current model or the candidate is strictly better
    by more than ``min_improvement`` (absolute, in the metric's units)."""
    now = datetime.now(timezone.utc).isoformat()
    if current is None or current_score is None:
        return PromotionDecision(True, metric, candidate, candidate_score, None, None, "no current model", now)
    gain = (current_score - candidate_score) if lower_is_better else (candidate_score - current_score)
    better = gain > min_improvement
    why = (f"{metric} {'improved' if better else 'did not improve'}: candidate {candidate_score:.4f} vs "
           f"current {current_score:.4f} (needed > {min_improvement:g})")
    return PromotionDecision(better, metric, candidate, candidate_score, current, current_score, why, now)


def record_decision(models_dir: str | Path, decision: PromotionDecision) -> None:
    """Append the decision to the log and, if promoted, atomically replace current.json."""
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    with open(models_dir / "promotions.jsonl", "a") as log:
        log.write(json.dumps(asdict(decision)) + "\n")
    if decision.promoted:
        tmp = models_dir / "current.json.tmp"
        tmp.write_text(json.dumps({"checkpoint": decision.candidate, "metric": decision.metric,
                                   "score": decision.candidate_score, "promoted_at": decision.decided_at},
                                  indent=2))
        os.replace(tmp, models_dir / "current.json")
