"""Ingest flow: a source's items into the catalog, downloaded, checked, deduplicated and split.

The recipe (the work is in ``tasks.ingest.run``): register the source's items (Flickr: crawl) ->
fetch them in batches (network kind: retries with backoff) -> detect layouts and write views in
batches (cpu kind) -> one sequential near-duplicate pass that moves items to ``split``. The
effective config and a summary go to ``<data_root>/runs/ingest-<timestamp>/``.
"""
from __future__ import annotations

import json
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.batching import run_batches
from flows.policy import redweb_task
from flows.options import flickr_options, flow_config, ingest_options, run_dir_for
from flows.config import Overrides


def _run_batches(task, catalog_url: str, ids: list[str], batch_size: int, options: dict[str, Any],
                 bar_desc: str | None) -> dict[str, int]:
    """Submit ``task(catalog_url, batch, **options)`` per batch; sum the returned counts."""
    counts: dict[str, int] = {}
    for result in run_batches(lambda batch: task.submit(catalog_url, batch, **options), ids, batch_size,
                              desc=bar_desc):
        for key, n in result.items():
            counts[key] = counts.get(key, 0) + n
    return counts


# downloads are I/O-bound: a few more threads than cores, bounded (Prefect's default pool is not)
@flow(name="ingest", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=8))
def ingest_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
                source: str = "samples", limit: int | None = None, progress: bool = False) -> dict:
    """Ingest ``source`` (samples | flickr | local:DIR | urls:FILE), at most ``limit`` items.

    Returns {"run_dir", "batch", "source", "items", "outcome": {state: n} over this source's items,
    "status": the whole catalog's status object}."""
    from tasks.catalog.catalog import Catalog
    from flows.config import save_effective_config
    from tasks.ingest.run import decide_batch, fetch_batch, parse_source, register_from_url, split_batch

    config = flow_config(config_file, data_root, overrides)
    parse_source(source)  # fail fast on a malformed source, before anything is written
    opts, url = ingest_options(config), config.catalog_url
    run_dir = run_dir_for(config, "ingest")
    batch = run_dir.name  # the catalog batch of this run's items: its run folder's name
    save_effective_config(config, run_dir)
    kind = "network" if source.startswith(("flickr", "urls")) else "db"
    batch_size = config.ingest.batch_size

    register = redweb_task(register_from_url, kind=kind, name="ingest-register")
    ids = register(url, source, limit=limit, batch=batch, **opts["register"],
                   flickr=flickr_options(config) if source == "flickr" else None)
    print(f"{source}: {len(ids)} items")
    fetched = _run_batches(redweb_task(fetch_batch, kind="network", name="ingest-fetch"), url, ids, batch_size,
                           opts["fetch"], "download" if progress else None)
    detected = _run_batches(redweb_task(split_batch, kind="cpu", name="ingest-split"), url, ids, batch_size,
                            opts["split"], "split" if progress else None)
    decided = redweb_task(decide_batch, kind="db", name="ingest-dedup")(url, ids, **opts["decide"])

    with Catalog(url) as catalog:
        outcome = catalog.state_counts(ids)
        status = catalog.status().as_dict()
    summary = {"run_dir": str(run_dir), "batch": batch, "source": source, "items": len(ids),
               "steps": {"fetch": fetched, "split": detected, "decide": decided}, "outcome": outcome,
               "status": status}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    print(f"ingest {source}: {outcome}")
    return summary
