"""Training flow: a thin Prefect wrapper over :func:`model.train.train`.

The run is one task (policy ``gpu`` from :mod:`flows.policy`: the ``gpu`` tag and one retry). It
asks for ``resume=True`` by default: a new run directory has nothing to resume, and a retried task
continues from ``run_dir/checkpoints/last.pt`` instead of starting over. Hyper-parameters come from
the ``train`` config section (:class:`model.config.TrainConfig`, passed to ``train`` as it is).
"""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from flows.options import export_dir_for, flow_config, run_dir_for
from flows.policy import redweb_task
from flows.config import Overrides


@flow(name="train", log_prints=True)
def train_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
               data: str | None = None, run_dir: str | None = None, resume: bool | str = True,
               progress: bool = True) -> str:
    """Train on ``data`` (default: the shared export ``<data_root>/exports/<pipeline.export_name>``) into
    ``run_dir`` (default ``<data_root>/runs/train-<time>``); returns the final checkpoint's path."""
    from model.train import train
    from flows.config import save_effective_config

    config = flow_config(config_file, data_root, overrides)
    data = data or str(export_dir_for(config))
    if not Path(data).is_dir():
        raise FileNotFoundError(f"dataset folder not found: {data} (run the export first)")
    run = Path(run_dir) if run_dir else run_dir_for(config, "train")
    save_effective_config(config, run)
    train_task = redweb_task(train, kind="gpu", name="train-model")
    result = train_task(data=data, run_dir=str(run), config=config.train, resume=resume or True,
                        progress=progress)
    try:
        from flows.artifacts import publish_report_link

        publish_report_link(run / "metrics.csv", stage="train")
    except ImportError:  # artifacts are a nicety; the run folder is the record
        pass
    return str(result.checkpoint)
