"""Scheduled retraining: export the accepted maps, train, evaluate, promote only a better model.

``retrain_flow`` re-exports (only changed items are rewritten), trains a new checkpoint, scores it
AND the currently promoted checkpoint on the same held-out split of the new export, and promotes the
candidate only if it beats the current one (``model.promotion``); the decision and both scores go to
``<data_root>/models/promotions.jsonl`` and a Prefect artifact.
``retrain_when_enough_accepted`` is the trigger deployment: it starts ``retrain_flow`` once
``pipeline.retrain_min_new_accepted`` maps were accepted (by reviewers) since the last retraining.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.artifacts import create_markdown_artifact

from core.layout import DataRoot
from flows.options import export_dir_for, flow_config, run_dir_for
from flows.config import Overrides


def _last_retrain(models_dir: Path) -> datetime | None:
    path = models_dir / "last_retrain.json"
    return datetime.fromisoformat(json.loads(path.read_text())["started_at"]) if path.is_file() else None


def count_new_accepted(catalog_url: str, since: datetime | None) -> int:
    """Items that entered ``accepted`` after ``since`` (all accepted items when None), from the event log."""
    from tasks.catalog.catalog import Catalog, State

    with Catalog(catalog_url) as catalog:
        return catalog.count_entered(State.ACCEPTED, since=since)


@flow(name="redweb-retrain", log_prints=True)
def retrain_flow(config_file: str | None = None, data_root: str | None = None,
                 overrides: Overrides = None) -> dict[str, Any]:
    """Export → train → evaluate candidate and current on the same split → promote if better."""
    from flows.evaluate import evaluate_flow
    from flows.export import export_flow
    from flows.train import train_flow
    from model.promotion import current_model, decide_promotion, record_decision
    from flows.config import save_effective_config

    same = dict(config_file=config_file, data_root=data_root, overrides=overrides)
    config = flow_config(**same)
    root, pipe = config.data_root, config.pipeline
    models_dir = DataRoot(root).models
    started = datetime.now(timezone.utc)
    run_dir = run_dir_for(config, "retrain")
    save_effective_config(config, run_dir)

    export_dir = export_dir_for(config)
    exported = export_flow(**same, out_dir=str(export_dir), states=list(pipe.export_states))
    models_dir.mkdir(parents=True, exist_ok=True)
    (models_dir / "last_retrain.json").write_text(json.dumps({"started_at": started.isoformat(),
                                                               "run_dir": str(run_dir)}))
    if exported["total"] == 0:
        print("nothing to train on: no item in the export states")
        return {"run_dir": str(run_dir), "promoted": False, "reason": "empty export"}

    candidate = train_flow(**same, data=str(export_dir), run_dir=str(run_dir / "train"), progress=False)

    def score(checkpoint: str, name: str) -> float:
        doc = evaluate_flow(**same, benchmark=pipe.benchmark, annotations=str(export_dir), images=str(export_dir),
                            checkpoint=checkpoint, run_dir=str(run_dir / name), progress=False)
        return float(doc[pipe.promote_metric])
    candidate_score = score(str(candidate), "eval-candidate")
    current = current_model(models_dir)
    current_ckpt = current["checkpoint"] if current and Path(current["checkpoint"]).is_file() else None
    current_score = score(current_ckpt, "eval-current") if current_ckpt else None
    decision = decide_promotion(candidate=str(candidate), candidate_score=candidate_score, current=current_ckpt,
                                current_score=current_score, metric=pipe.promote_metric,
                                min_improvement=pipe.promote_min_improvement)
    record_decision(models_dir, decision)
    create_markdown_artifact(
        key="retrain-decision",
        markdown=(f"**{'Promoted' if decision.promoted else 'Kept the current model'}**: {decision.reason}\n\n"
                  f"| | checkpoint | {decision.metric} |\n|---|---|---:|\n"
                  f"| candidate | `{decision.candidate}` | {decision.candidate_score:.4f} |\n"
                  f"| current | `{decision.current}` | "
                  f"{'' if decision.current_score is None else f'{decision.current_score:.4f}'} |"),
        description="retraining promotion decision")
    print(decision.reason)
    return {"run_dir": str(run_dir), "promoted": decision.promoted, "reason": decision.reason,
            "candidate": str(candidate), "candidate_score": candidate_score, "current": current_ckpt,
            "current_score": current_score}


@flow(name="redweb-retrain-trigger", log_prints=True)
def retrain_when_enough_accepted(config_file: str | None = None, data_root: str | None = None,
                                 overrides: Overrides = None,
                                 min_new_accepted: int | None = None) -> dict[str, Any]:
    """Start ``retrain_flow`` once enough maps were accepted since the last retraining."""
    config = flow_config(config_file, data_root, overrides)
    need = min_new_accepted or config.pipeline.retrain_min_new_accepted
    since = _last_retrain(DataRoot(config.data_root).models)
    new = count_new_accepted(config.catalog_url, since)
    print(f"{new} maps accepted since {since or 'the beginning'} (threshold {need})")
    if new < need:
        return {"started": False, "new_accepted": new, "threshold": need}
    result = retrain_flow(config_file=config_file, data_root=data_root, overrides=overrides)
    return {"started": True, "new_accepted": new, "threshold": need, **result}
