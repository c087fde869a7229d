"""Evaluation flow: score a prediction folder or a checkpoint on a benchmark, next to the baselines,
then write the JSON, a Markdown/HTML report, and a metrics table artifact.

The math lives in :mod:`model.evaluate`; this flow only wraps it (policy from ``flows.policy``) and
decides where outputs go.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from prefect import flow

from flows.policy import redweb_task


def default_run_dir(data_root: str | Path, benchmark: str) -> Path:
    """``<data_root>/runs/evaluate-<benchmark>-<UTC time>``: where an evaluation run's files go."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return Path(data_root) / "runs" / f"evaluate-{benchmark}-{stamp}"


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
    benchmark: str,
    annotations: str,
    *,
    images: str | None = None,
    predictions: str | None = None,
    checkpoint: str | None = None,
    inverse: bool = False,
    out: str | None = None,
    run_dir: str | None = None,
    report: bool = True,
    split_file: str | None = None,
    alignment: str | None = None,
    sigma: float = 0.02,
    pairs_per_image: int = 3000,
    seed: int = 0,
    nyu_crop: str = "eigen",
    redweb_split: str = "val",
    device: str = "auto",
    max_side: int | None = None,
    report_examples: int = 4,
    progress: bool = True,
    chen_val_images: int = 100,
    chen_tau: float | None = None,
) -> dict[str, Any]:
    """Evaluate exactly one of ``predictions`` (folder) or ``checkpoint``; returns the JSON document.

    Writes ``<run_dir>/metrics.json`` (+ ``out`` if given) and, with ``report``, ``<run_dir>/report.html``
    and ``report.md``. ``run_dir`` defaults to ``data/runs/evaluate-<benchmark>-<time>`` (the caller
    passes it; this flow does not read config).
    """
    from model.evaluate import evaluate_checkpoint, evaluate_predictions, write_json
    from model.report import write_report

    if (predictions is None) == (checkpoint is None):
        raise ValueError("give exactly one of predictions (a folder) or checkpoint (a file)")
    common = dict(images=images, split_file=split_file, alignment=alignment, sigma=sigma,
                  pairs_per_image=pairs_per_image, seed=seed, nyu_crop=nyu_crop, redweb_split=redweb_split,
                  progress=progress, keep_examples=report_examples if report else 0,
                  chen_val_images=chen_val_images, chen_tau=chen_tau)
    if checkpoint is not None:
        from model.predict import resolve_device

        device = resolve_device(device)
        task = redweb_task(evaluate_checkpoint, kind="gpu" if device.startswith("cuda") else "cpu")
        doc = task(benchmark, annotations, checkpoint, device=device, max_side=max_side, **common)
    else:
        task = redweb_task(evaluate_predictions, kind="cpu")
        doc = task(benchmark, annotations, predictions, inverse=inverse, **common)
    examples = doc.pop("_examples", None)
    paths: dict[str, str] = {}
    if run_dir is not None:
        paths["json"] = str(write_json(doc, Path(run_dir) / "metrics.json"))
    if out is not None:
        paths["out"] = str(write_json(doc, out))
    report_path = None
    if report and run_dir is not None:
        report_path = write_report(run_dir, metrics=doc, examples=examples,
                                   title=f"Evaluation on {benchmark}: {doc.get('model', 'model')}")
        paths["report"] = str(report_path)
    _publish(doc, report_path)
    doc["_paths"] = paths
    return doc
