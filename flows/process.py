"""Process flow: stereo pairs in the catalog -> relative depth maps, in batches.

The work is ``tasks.process.process_batch`` (plain code); this flow picks the ids, cuts them into
batches and runs each batch as a task with the project policy: network backends get the ``gpu``
kind (one job per GPU through the tag's concurrency limit), DIS the ``cpu`` kind.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.batching import run_batches
from flows.policy import redweb_task


# one batch per core: the per-pair work is CPU-bound (OpenCV and torch release the GIL);
# Prefect's default thread pool is unbounded and would start every batch at once
@flow(name="process", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=os.cpu_count() or 2))
def process_flow(catalog_url: str, data_root: str, *, ids: list[str] | None = None, limit: int | None = None,
                 reprocess: bool = False, batch_size: int = 8, correspondence: str = "dis",
                 progress: bool = False, options: dict[str, Any] | None = None) -> dict[str, int]:
    """Process every pair not yet processed (or ``ids``); returns counts per resulting state.

    ``options``: keyword arguments of ``process_batch`` (ProcessConfig fields: sky, max_side, ...).
    """
    from tasks.catalog import Catalog
    from tasks.correspondence import is_gpu_backend
    from tasks.process import process_batch, select_items

    with Catalog(catalog_url) as catalog:
        todo = select_items(catalog, reprocess=reprocess, limit=limit, ids=ids)
    kind = "gpu" if is_gpu_backend(correspondence) else "cpu"
    run_batch = redweb_task(process_batch, kind=kind, name=f"process-batch-{kind}")

    def submit(batch: list[str]):
        return run_batch.submit(catalog_url, batch, str(Path(data_root)), correspondence=correspondence,
                                reprocess=reprocess, **(options or {}))

    counts: dict[str, int] = {}
    for states in run_batches(submit, todo, batch_size, desc="process" if progress else None, unit="pair"):
        for state in states.values():
            counts[state] = counts.get(state, 0) + 1
    print(f"processed {len(todo)} pairs: {counts}")
    return counts
