"""Fan a list of catalog ids out as one task per batch, and collect the results with a progress bar.

Batching keeps orchestration overhead small next to per-pair work (benchmarks/bench_orchestration.py);
the task runner (threads, or Dask with --workers / --dask-address) decides where batches run.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator

from prefect.futures import PrefectFuture, as_completed

from core.progress import progress


def run_batches(
    submit: Callable[[list[str]], PrefectFuture],
    ids: list[str],
    batch_size: int,
    *,
    desc: str | None = None,
    unit: str = "item",
) -> Iterator[Any]:
    """Call ``submit(batch)`` for each batch of ``ids``; yield each batch's result as it completes.

    ``desc``: show progress (counted in ids; ``core.progress``: a bar on a terminal, a few log lines
    elsewhere) with this label; None for none.
    """
    futures = {submit(ids[i:i + batch_size]): len(ids[i:i + batch_size]) for i in range(0, len(ids), batch_size)}
    bar = progress(len(ids), unit=unit, desc=desc) if desc is not None else None
    try:
        for future in as_completed(list(futures)):
            result = future.result()
            if bar is not None:
                bar.update(futures[future])
            yield result
    finally:
        if bar is not None:
            bar.close()
