"""Task runners: the same flows run on a thread pool (one machine) or a Dask cluster (many).

``--dask-address tcp://HOST:PORT`` joins an existing cluster (started with ``dask scheduler`` and
``dask worker`` on the machines); ``--workers N`` starts a LocalCluster of N single-threaded
worker processes for the run. Without either, Prefect's default thread pool runs the tasks.
"""
from __future__ import annotations

from typing import Any


def make_task_runner(*, dask_address: str | None = None, workers: int = 0) -> Any | None:
    """A Prefect task runner for these settings, or None for Prefect's default."""
    if not dask_address and not workers:
        return None
    from prefect_dask import DaskTaskRunner

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    # processes, one thread each: the per-pair work is CPU-bound numpy/OpenCV/torch
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None})
