"""Evaluation flow: score a prediction folder or a checkpoint on a benchmark, next to the baselines,
then write the JSON, a Markdown/HTML report, and a metrics table artifact.

The math lives in :mod:`model.evaluate`; this flow only wraps it (policy from ``flows.policy``) and
decides where outputs go.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from core.layout import DataRoot
from flows.options import checkpoint_or_newest, evaluate_options, export_dir_for, flow_config
from flows.policy import redweb_task
from flows.config import Overrides


def default_run_dir(data_root: str | Path, benchmark: str) -> Path:
    """``<data_root>/runs/evaluate-<benchmark>-<UTC time>``: where an evaluation run's files go."""
    return DataRoot(Path(data_root)).run_dir(f"evaluate-{benchmark}")


def _publish(doc: dict[str, Any], report: Path | None) -> None:
    from model.evaluate import METRIC_ORDER

    try:
        from flows.artifacts import publish_report_link
        from prefect.artifacts import create_table_artifact
    except ImportError:  # artifacts are a nicety; the files are the record
        return
    rows = [{"predictor": doc.get("model", "model"), **{k: doc[k] for k in METRIC_ORDER if k in doc}}]
    rows += [{"predictor": n, **{k: r[k] for k in METRIC_ORDER if k in r}} for n, r in doc.get("baselines", {}).items()]
    create_table_artifact(key=f"evaluate-{doc.get('benchmark', 'benchmark')}", table=rows,
                          description=f"{doc.get('benchmark')}: model vs baselines (fractions)")
    if report is not None:
        publish_report_link(report, stage="evaluate")


@flow(name="evaluate", log_prints=True)
def evaluate_flow(
    config_file: str | None = None,
    data_root: str | None = None,
    overrides: Overrides = None,
    benchmark: str | None = None,
    annotations: str | None = None,
    images: str | None = None,
    predictions: str | None = None,
    checkpoint: str | None = None,
    inverse: bool = False,
    out: str | None = None,
    run_dir: str | None = None,
    report: bool = True,
    split_file: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate one of ``predictions`` (folder) or ``checkpoint``; returns the JSON document.

    Defaults (so the deployment runs with no parameters): ``benchmark`` = ``pipeline.benchmark`` (redweb),
    ``annotations`` and ``images`` = the shared export (for redweb), ``checkpoint`` = the promoted model,
    else the newest ``runs/*/model.pt``. The protocol (sigma, pairs, alignment, device, ...) comes from the
    ``evaluate`` config section. Writes ``<run_dir>/metrics.json`` and ``config.yaml`` (+ ``out`` if
    given) and, with ``report``, ``<run_dir>/report.html`` and ``report.md``; ``run_dir`` defaults to
    ``<data_root>/runs/evaluate-<benchmark>-<time>``.
    """
    from model.data import check_evaluation_inputs
    from model.evaluate import evaluate_checkpoint, evaluate_predictions, write_json
    from model.report import write_report
    from flows.config import save_effective_config

    config = flow_config(config_file, data_root, overrides)
    benchmark = benchmark or config.pipeline.benchmark
    if annotations is None:
        if benchmark != "redweb":
            raise ValueError(f"benchmark {benchmark!r} needs annotations (a file or folder)")
        annotations = str(export_dir_for(config))
        images = images or annotations
    if predictions is not None and checkpoint is not None:
        raise ValueError("give exactly one of predictions (a folder) or checkpoint (a file)")
    if predictions is None:
        checkpoint = checkpoint_or_newest(config, checkpoint)
    check_evaluation_inputs(benchmark, annotations, images, checkpoint=checkpoint, predictions=predictions,
                            split=config.evaluate.redweb_split)
    run_dir = run_dir or str(default_run_dir(config.data_root, benchmark))
    save_effective_config(config, run_dir)  # every run keeps the config it used
    opts = evaluate_options(config)
    examples_n = opts.pop("report_examples") if report else 0
    opts.pop("report_examples", None)
    device, max_side = opts.pop("device"), opts.pop("max_side")
    common = dict(images=images, split_file=split_file, progress=progress, keep_examples=examples_n, **opts)
    if checkpoint is not None:
        task = redweb_task(evaluate_checkpoint, kind="gpu" if device.startswith("cuda") else "cpu")
        doc = task(benchmark, annotations, checkpoint, device=device, max_side=max_side, **common)
    else:
        task = redweb_task(evaluate_predictions, kind="cpu")
        doc = task(benchmark, annotations, predictions, inverse=inverse, **common)
    examples = doc.pop("_examples", None)
    paths: dict[str, str] = {"json": str(write_json(doc, Path(run_dir) / "metrics.json"))}
    if out is not None:
        paths["out"] = str(write_json(doc, out))
    report_path = None
    if report:
        report_path = write_report(run_dir, metrics=doc, examples=examples,
                                   title=f"Evaluation on {benchmark}: {doc.get('model', 'model')}")
        paths["report"] = str(report_path)
    _publish(doc, report_path)
    doc["_paths"] = paths
    return doc
