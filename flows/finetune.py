"""Fine-tuning flows (ReDWeb Sec. 4.3): thin Prefect wrappers over :mod:`model.finetune_depth` and
:mod:`model.finetune_segment`; each run is one ``gpu`` task (policy from :mod:`flows.policy`)."""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.policy import redweb_task


@flow(name="finetune-depth", log_prints=True)
def finetune_depth_flow(data: str, run_dir: str, kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metric depth on NYUv2 (Tukey biweight); returns the test metrics document (Table 7's metrics)."""
    from model.finetune_depth import finetune_depth

    result = redweb_task(finetune_depth, kind="gpu", retries=0, name="finetune-depth")(
        data=data, run_dir=run_dir, **(kwargs or {}))
    return {**result.metrics, "checkpoint": str(result.checkpoint)}


@flow(name="finetune-segment", log_prints=True)
def finetune_segment_flow(voc: str, run_dir: str, sbd: str | None = None,
                          kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """21-class VOC segmentation (train_aug); returns the VOC val document (mIoU)."""
    from model.finetune_segment import finetune_segment

    result = redweb_task(finetune_segment, kind="gpu", retries=0, name="finetune-segment")(
        voc=voc, sbd=sbd, run_dir=run_dir, **(kwargs or {}))
    return {**result.metrics, "checkpoint": str(result.checkpoint)}
