"""Experiment grids as Prefect flows: one subflow per setting (train + evaluate), then one table.

The logic is :mod:`model.experiment`; here each setting becomes a subflow run named by its key, so
the Prefect UI shows the grid, and a re-run skips finished settings (their ``result.json``) and
resumes killed ones from ``checkpoints/last.pt``.
"""
from __future__ import annotations

from typing import Any

from prefect import flow

from flows.policy import redweb_task


@flow(name="experiment-setting", log_prints=True)
def setting_flow(config: dict[str, Any], setting: dict[str, Any], out_dir: str) -> dict[str, Any]:
    """Train and evaluate one setting; returns its table row."""
    from model.experiment import ExperimentConfig, run_setting

    cfg = ExperimentConfig(**config)
    # retries=0: the setting itself resumes from its checkpoint when the flow is run again.
    return redweb_task(run_setting, kind="gpu", retries=0, name="train-evaluate")(cfg, setting, out_dir)


@flow(name="experiment", log_prints=True)
def experiment_flow(config: dict[str, Any], out_dir: str) -> dict[str, str]:
    """Every setting of the validated experiment ``config`` as a subflow, then the table and plot."""
    from model.experiment import ExperimentConfig, expand_grid, setting_key, write_table

    cfg = ExperimentConfig(**config)
    rows = []
    for setting in expand_grid(cfg):
        rows.append(setting_flow.with_options(flow_run_name=setting_key(setting))(config, setting, out_dir))
    paths = write_table(cfg, rows, out_dir)
    try:
        from prefect.artifacts import create_markdown_artifact

        create_markdown_artifact(key=f"experiment-{cfg.name.lower().replace('_', '-').replace('.', '-')}",
                                 markdown=paths["table_md"].read_text(), description=f"experiment {cfg.name}")
    except (ImportError, ValueError):  # artifacts are a nicety; the files are the record
        pass
    return {k: str(v) for k, v in paths.items()}
