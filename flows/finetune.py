"""Fine-tuning flows (ReDWeb Sec. 4.3): thin Prefect wrappers over :mod:`model.finetune_depth` and
:mod:`model.finetune_segment`; each run is one ``gpu`` task (policy from :mod:`flows.policy`).

Both take the shared ``config_file, data_root, overrides`` and run with no parameters (the
``finetune-depth`` / ``finetune-segment`` deployments): data paths and hyper-parameters come from the
config's ``finetune`` section (``flows.options.finetune_options``); ``kwargs`` (the CLI's flags) win
over it. They ask for ``resume=True``: a new run folder has nothing to resume, and a re-run of the
flow on the same ``run_dir`` continues from its ``checkpoints/last.pt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.options import finetune_data, finetune_options, flow_config, run_dir_for
from flows.policy import redweb_task
from flows.config import Overrides


def _finetune(task: str, fn, inputs: dict[str, Any], config_file, data_root, overrides, run_dir,
              kwargs) -> dict[str, Any]:
    from flows.config import save_effective_config

    config = flow_config(config_file, data_root, overrides)
    data = finetune_data(config, task)
    data.update({k: v for k, v in inputs.items() if v is not None})
    run = Path(run_dir) if run_dir else run_dir_for(config, f"finetune-{task}")
    save_effective_config(config, run)
    options = {"resume": True, **finetune_options(config, task), **(kwargs or {})}
    result = redweb_task(fn, kind="gpu", retries=0, name=f"finetune-{task}")(run_dir=str(run), **data, **options)
    return {**result.metrics, "checkpoint": str(result.checkpoint)}


@flow(name="finetune-depth", log_prints=True)
def finetune_depth_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
                        data: str | None = None, run_dir: str | None = None,
                        kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Metric depth on NYUv2 (Tukey biweight) from ``data`` (default ``finetune.nyu``, else
    ``<data_root>/benchmarks/nyu_depth_v2_labeled.mat``) into ``run_dir`` (default
    ``<data_root>/runs/finetune-depth-<time>``); returns the test metrics document (Table 7's metrics)."""
    from model.finetune_depth import finetune_depth

    return _finetune("depth", finetune_depth, {"data": data}, config_file, data_root, overrides, run_dir, kwargs)


@flow(name="finetune-segment", log_prints=True)
def finetune_segment_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
                          voc: str | None = None, sbd: str | None = None, run_dir: str | None = None,
                          kwargs: dict[str, Any] | None = None) -> dict[str, Any]:
    """21-class VOC segmentation (train_aug) from ``voc``/``sbd`` (default ``finetune.voc``/``sbd``, else
    ``<data_root>/benchmarks/VOCdevkit`` and ``benchmark_RELEASE`` when present); returns the VOC val
    document (mIoU)."""
    from model.finetune_segment import finetune_segment

    return _finetune("segment", finetune_segment, {"voc": voc, "sbd": sbd}, config_file, data_root, overrides,
                     run_dir, kwargs)
