"""Process flow: stereo pairs in the catalog -> relative depth maps, in batches.

The work is ``tasks.labels.process.process_batch`` (plain code); this flow picks the ids, cuts them into
batches and runs each batch as a task with the project policy: network backends get the ``gpu``
kind (one job per GPU through the tag's concurrency limit), DIS the ``cpu`` kind. Backends and
thresholds come from the ``process`` config section, passed whole as ``settings``.
"""
from __future__ import annotations

import os

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.batching import run_batches
from flows.options import flow_config
from flows.policy import redweb_task
from flows.config import Overrides


# one batch per core: the per-pair work is CPU-bound (OpenCV and torch release the GIL);
# Prefect's default thread pool is unbounded and would start every batch at once
@flow(name="process", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2))
def process_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
                 ids: list[str] | None = None, limit: int | None = None, reprocess: bool = False,
                 progress: bool = False) -> dict[str, int]:
    """Process every pair not yet processed (or ``ids``); returns counts per resulting state."""
    from tasks.catalog.catalog import Catalog
    from tasks.labels.correspondence import is_gpu_backend
    from tasks.labels.process import process_batch, select_items

    config = flow_config(config_file, data_root, overrides)
    url, root = config.catalog_url, str(config.data_root)
    settings = config.process
    with Catalog(url) as catalog:
        todo = select_items(catalog, reprocess=reprocess, limit=limit, ids=ids)
    kind = "gpu" if is_gpu_backend(settings.correspondence) else "cpu"
    run_batch = redweb_task(process_batch, kind=kind, name=f"process-batch-{kind}")

    def submit(batch: list[str]):
        return run_batch.submit(url, batch, root, settings=settings, reprocess=reprocess)

    counts: dict[str, int] = {}
    for states in run_batches(submit, todo, settings.batch_size, desc="process" if progress else None, unit="pair"):
        for state in states.values():
            counts[state] = counts.get(state, 0) + 1
    print(f"processed {len(todo)} pairs: {counts}")
    return counts


def process_flow_for(config):
    """``process_flow`` on the task runner ``config.pipeline`` asks for (Dask cluster / LocalCluster), if any."""
    from flows.runners import make_task_runner

    runner = make_task_runner(dask_address=config.pipeline.dask_address, workers=config.pipeline.workers)
    return process_flow if runner is None else process_flow.with_options(task_runner=runner)
