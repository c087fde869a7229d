"""Experiment grids as Prefect flows: one subflow per setting (train + evaluate), then one table.

The logic is :mod:`model.experiment`; here each setting becomes a subflow run named by its key, so
the Prefect UI shows the grid, and a re-run skips finished settings (their ``result.json``) and
resumes killed ones from ``checkpoints/last.pt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from core.layout import DataRoot
from flows.options import export_dir_for, flow_config
from flows.policy import redweb_task
from flows.config import Overrides
from model.data import check_training_data


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


@flow(name="experiment-run", log_prints=True)
def experiment_run_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
                        experiment: str | None = None, data: str | None = None, out_dir: str | None = None,
                        toy: bool | None = None) -> dict[str, str]:
    """The ``experiment`` deployment: the experiment file ``experiment`` (default ``experiment.file``) on
    ``data`` (default ``experiment.data``, else the file's ``data:``, else the shared export
    ``<data_root>/exports/<pipeline.export_name>``) into ``out_dir`` (default
    ``<data_root>/runs/experiment-<name>``: a re-run resumes the grid); returns the table's paths."""
    import yaml

    from model.experiment import load_experiment

    config = flow_config(config_file, data_root, overrides)
    e = config.experiment
    data = data or (str(e.data) if e.data else None)
    cfg = load_experiment(experiment or e.file, toy=e.toy if toy is None else toy, data=data,
                          overrides={"base": {"device": e.device}} if e.device else None)
    if cfg.data is None:
        cfg = cfg.model_copy(update={"data": str(export_dir_for(config))})
    check_training_data(cfg.data)  # one line naming the folder, before any run of the grid starts
    out = Path(out_dir) if out_dir else DataRoot(config.data_root).experiment(cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    return experiment_flow(cfg.model_dump(), str(out))
