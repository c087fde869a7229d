"""Fine-tuning flows (ReDWeb Sec. 4.3): thin Prefect wrappers over :mod:`model.finetune_depth` and
:mod:`model.finetune_segment`; each run is one ``gpu`` task (policy from :mod:`flows.policy`).

Both take the shared ``config_file, data_root, overrides`` and run with no parameters (the
``finetune-depth`` / ``finetune-segment`` deployments). Every hyper-parameter comes from the config's
``finetune`` section (``flows.options.finetune_options``; a field left None takes the task function's
default): the CLI's flags arrive as ``finetune.<field>`` overrides, so the run's ``config.yaml`` holds
what ran, and the task writes the resolved values (defaults filled in) to ``finetune_config.yaml``.
The flows' own parameters are typed: the data paths, the run folder, ``resume`` (True by default: a
new run folder has nothing to resume, and a re-run on the same ``run_dir`` continues from its
``checkpoints/last.pt``) and ``progress``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from prefect import flow

from flows.options import finetune_data, finetune_options, flow_config, run_dir_for
from flows.policy import redweb_task
from flows.config import Overrides


def _finetune(task: str, fn: Callable[..., Any], paths: dict[str, str | None], config_file: str | None,
              data_root: str | None, overrides: Overrides, run_dir: str | None, resume: bool,
              progress: bool) -> dict[str, Any]:
    from flows.config import save_effective_config

    config = flow_config(config_file, data_root, overrides)
    data = finetune_data(config, task)
    data.update({k: v for k, v in paths.items() if v is not None})
    run = Path(run_dir) if run_dir else run_dir_for(config, f"finetune-{task}")
    save_effective_config(config, run)
    options = {**finetune_options(config, task), "resume": resume, "progress": progress}
    result = redweb_task(fn, kind="gpu", retries=0, name=f"finetune-{task}")(run_dir=str(run), **data, **options)
    return {**result.metrics, "checkpoint": str(result.checkpoint)}


@flow(name="finetune-depth", log_prints=True)
def finetune_depth_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
                        data: str | None = None, run_dir: str | None = None, resume: bool = True,
                        progress: bool = False) -> dict[str, Any]:
    """Metric depth on NYUv2 (Tukey biweight) from ``data`` (default ``finetune.nyu``, else
    ``<data_root>/benchmarks/nyu_depth_v2_labeled.mat``) into ``run_dir`` (default
    ``<data_root>/runs/finetune-depth-<time>``); returns the test metrics document (Table 7's metrics)."""
    from model.finetune_depth import finetune_depth

    return _finetune("depth", finetune_depth, {"data": data}, config_file, data_root, overrides, run_dir,
                     resume, progress)


@flow(name="finetune-segment", log_prints=True)
def finetune_segment_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
                          voc: str | None = None, sbd: str | None = None, run_dir: str | None = None,
                          resume: bool = True, progress: bool = False) -> dict[str, Any]:
    """21-class VOC segmentation (train_aug) from ``voc``/``sbd`` (default ``finetune.voc``/``sbd``, else
    ``<data_root>/benchmarks/VOCdevkit`` and ``benchmark_RELEASE`` when present); returns the VOC val
    document (mIoU)."""
    from model.finetune_segment import finetune_segment

    return _finetune("segment", finetune_segment, {"voc": voc, "sbd": sbd}, config_file, data_root, overrides,
                     run_dir, resume, progress)
