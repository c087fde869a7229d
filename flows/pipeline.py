"""The end-to-end DAG: ingest → process (+ triage) → export → train → evaluate → report.

Each stage is its own flow, run here as a subflow, so a stage can also be run or deployed alone.
Work passes between stages as catalog ids and paths. Every subflow gets the same
``config_file, data_root, overrides`` as this flow and builds the same config from them (plain
JSON parameters, no secrets), so the deployment in prefect.yaml runs with no parameters.
"""
from __future__ import annotations

import time
from typing import Any

from prefect import flow

from flows.artifacts import publish_catalog_counts, publish_quality_histogram, publish_report_link
from flows.options import export_dir_for, flow_config, run_dir_for
from flows.config import Overrides

STEP_KEYS = ("items", "outcome", "total", "written", "result", "wkdr", "whdr",
             "pending_review", "auto_accepted", "auto_rejected", "failed")


@flow(name="redweb-pipeline", log_prints=True)
def redweb_pipeline(
    config_file: str | None = None,
    data_root: str | None = None,
    overrides: Overrides = None,
    source: str = "samples",
    limit: int | None = None,
    train: bool = True,
    evaluate: bool = True,
    dask_address: str | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the DAG on ``source``; returns {"run_dir", "report", "steps", "evaluation", "checkpoint"}.

    ``dask_address`` / ``workers`` override ``pipeline.dask_address`` / ``pipeline.workers`` for the
    per-pair work of the process stage.
    """
    from flows.evaluate import evaluate_flow
    from flows.export import export_flow
    from flows.ingest import ingest_flow
    from flows.process import process_flow_for
    from flows.train import train_flow
    from flows.config import override_items, save_effective_config
    from tasks.publish.pipeline_report import write_pipeline_report

    scale = {k: v for k, v in (("pipeline.dask_address", dask_address), ("pipeline.workers", workers))
             if v is not None}
    overrides = {**dict(override_items(overrides)), **scale}
    config = flow_config(config_file, data_root, overrides)
    same = dict(config_file=config_file, data_root=data_root, overrides=overrides)
    root, url = config.data_root, config.catalog_url
    run_dir = run_dir_for(config, "pipeline")
    save_effective_config(config, run_dir)
    steps: dict[str, dict] = {}

    def timed(name: str, fn, **kwargs):
        t0 = time.perf_counter()
        result = fn(**same, **kwargs)
        summary = result if isinstance(result, dict) else {"result": str(result)}
        steps[name] = {"seconds": time.perf_counter() - t0, **{k: v for k, v in summary.items() if k in STEP_KEYS}}
        return result

    timed("ingest", ingest_flow, source=source, limit=limit, progress=progress)
    timed("process", process_flow_for(config), progress=progress)
    publish_catalog_counts(url, stage="pipeline")
    publish_quality_histogram(url, stage="pipeline")
    export_dir = export_dir_for(config)
    exported = timed("export", export_flow, states=list(config.pipeline.export_states))

    checkpoint = evaluation = model_report = None
    if train and exported["total"] > 0:
        train_dir = run_dir / "train"
        checkpoint = timed("train", train_flow, data=str(export_dir), run_dir=str(train_dir), progress=progress)
        if evaluate:
            evaluation = timed("evaluate", evaluate_flow, annotations=str(export_dir), images=str(export_dir),
                               checkpoint=str(checkpoint), run_dir=str(train_dir), progress=progress)
            model_report = evaluation.get("_paths", {}).get("report")
    elif train:
        print("nothing exported (no item in states "
              f"{list(config.pipeline.export_states)}): skipping training and evaluation")

    report = write_pipeline_report(url, root, run_dir, steps=steps, evaluation=evaluation, model_report=model_report)
    publish_report_link(report, stage="pipeline")
    print(f"pipeline report: {report}")
    return {"run_dir": str(run_dir), "report": str(report), "steps": steps, "export": str(export_dir),
            "checkpoint": None if checkpoint is None else str(checkpoint),
            "evaluation": None if evaluation is None else {k: v for k, v in evaluation.items() if not k.startswith("_")}}
