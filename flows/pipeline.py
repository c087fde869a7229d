"""The end-to-end DAG: ingest → process (+ triage) → export → train → evaluate → report.

Each stage is its own flow, run here as a subflow, so a stage can also be run or deployed alone.
Work passes between stages as catalog ids and paths. Parameters are plain JSON values so the
deployment in prefect.yaml can be started from the Prefect UI; config is loaded once here.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow

from flows.artifacts import publish_catalog_counts, publish_quality_histogram, publish_report_link


def process_options(config) -> tuple[str, int, dict[str, Any]]:
    """(correspondence backend, batch size, the other ProcessConfig fields as process_batch kwargs)."""
    options = config.process.model_dump()
    return options.pop("correspondence"), options.pop("batch_size"), options


def train_options(config) -> dict[str, Any]:
    return config.train.model_dump()


@flow(name="redweb-pipeline", log_prints=True)
def redweb_pipeline(
    source: str = "samples",
    limit: int | None = None,
    *,
    config_file: str | None = None,
    data_root: str | None = None,
    overrides: list[str] | None = None,
    train: bool = True,
    evaluate: bool = True,
    dask_address: str | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Run the DAG on ``source``; returns {"run_dir", "report", "steps", "evaluation", "checkpoint"}."""
    from flows.evaluate import evaluate_flow
    from flows.export import export_flow
    from flows.ingest import ingest_flow
    from flows.process import process_flow
    from flows.runners import make_task_runner
    from flows.train import train_flow
    from tasks.config import load_config, save_effective_config
    from tasks.pipeline_report import write_pipeline_report

    config = load_config(config_file, data_root=data_root, overrides=overrides or [])
    root, url = config.data_root, config.catalog_url
    run_dir = root / "runs" / f"pipeline-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"
    save_effective_config(config, run_dir)
    steps: dict[str, dict] = {}

    def timed(name: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        summary = result if isinstance(result, dict) else {"result": str(result)}
        steps[name] = {"seconds": time.perf_counter() - t0,
                       **{k: v for k, v in summary.items() if k in ("items", "outcome", "total", "written", "result", "wkdr", "whdr")
                          or k in ("pending_review", "auto_accepted", "auto_rejected", "failed")}}
        return result

    timed("ingest", ingest_flow, source=source, limit=limit, config=config, progress=progress)

    backend, batch_size, options = process_options(config)
    runner = make_task_runner(dask_address=dask_address or config.pipeline.dask_address,
                              workers=config.pipeline.workers if workers is None else workers)
    run_process = process_flow.with_options(task_runner=runner) if runner is not None else process_flow
    timed("process", run_process, url, str(root), batch_size=batch_size, correspondence=backend,
          progress=progress, options=options)
    publish_catalog_counts(url, stage="pipeline")
    publish_quality_histogram(url, stage="pipeline")

    export_dir = root / "exports" / config.pipeline.export_name
    exported = timed("export", export_flow, url, str(root), str(export_dir), states=list(config.pipeline.export_states),
                     fmt=config.export.format, val_fraction=config.export.val_fraction,
                     max_side=config.export.max_side, jpeg_quality=config.export.jpeg_quality)

    checkpoint = evaluation = model_report = None
    if train and exported["total"] > 0:
        train_dir = run_dir / "train"
        save_effective_config(config, train_dir)
        checkpoint = timed("train", train_flow, str(export_dir), str(train_dir), train_options(config))
        if evaluate:
            ev = config.evaluate
            evaluation = timed("evaluate", evaluate_flow, config.pipeline.benchmark, str(export_dir),
                               images=str(export_dir), checkpoint=str(checkpoint), run_dir=str(train_dir),
                               sigma=ev.sigma, pairs_per_image=ev.pairs_per_image, seed=ev.seed,
                               redweb_split=ev.redweb_split, device=ev.device, max_side=ev.max_side,
                               report_examples=ev.report_examples, progress=progress,
                               chen_val_images=ev.chen_val_images, chen_tau=ev.chen_tau)
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
