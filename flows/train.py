"""Training flow: a thin Prefect wrapper over :func:`model.train.train`.

The run is one task (policy ``gpu`` from :mod:`flows.policy`: the ``gpu`` tag and one retry). It
always asks for ``resume=True``: a new run directory has nothing to resume, and a retried task
continues from ``run_dir/checkpoints/last.pt`` instead of starting over.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.policy import redweb_task


@flow(name="train", log_prints=True)
def train_flow(data: str, run_dir: str, train_kwargs: dict[str, Any]) -> str:
    """Train on ``data`` into ``run_dir``; returns the final checkpoint's path (``run_dir/model.pt``)."""
    from model.train import train

    kwargs = {**train_kwargs, "resume": train_kwargs.get("resume") or True}
    result = redweb_task(train, kind="gpu", name="train-model")(data=data, run_dir=run_dir, **kwargs)
    try:
        from flows.artifacts import publish_report_link

        publish_report_link(Path(run_dir) / "metrics.csv", stage="train")
    except ImportError:  # artifacts are a nicety; the run folder is the record
        pass
    return str(result.checkpoint)
