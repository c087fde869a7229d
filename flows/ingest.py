"""Ingest flow: a source's items into the catalog, downloaded, checked, deduplicated and split.

The recipe (the work is in ``tasks.ingest``): register the source's items (Flickr: crawl) ->
fetch them in batches (network kind: retries with backoff) -> detect layouts and write views in
batches (cpu kind) -> one sequential near-duplicate pass that moves items to ``split``. The
effective config and a summary go to ``<data_root>/runs/ingest-<timestamp>/``.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from flows.batching import run_batches
from flows.policy import redweb_task
from tasks.config import RedwebConfig


def _run_batches(task, catalog_url: str, ids: list[str], batch_size: int, options: dict[str, Any],
                 bar_desc: str | None) -> dict[str, int]:
    """Submit ``task(catalog_url, batch, **options)`` per batch; sum the returned counts."""
    counts: dict[str, int] = {}
    for result in run_batches(lambda batch: task.submit(catalog_url, batch, **options), ids, batch_size,
                              desc=bar_desc):
        for key, n in result.items():
            counts[key] = counts.get(key, 0) + n
    return counts


def flickr_options(config: RedwebConfig) -> dict[str, Any]:
    """Keyword arguments of ``tasks.sources.flickr.discover`` from ``config.flickr``."""
    f = config.flickr
    return dict(rest_url=f.rest_url, api_key=f.api_key, api_secret=f.api_secret, tags=list(f.tags), text=f.text,
                tag_mode=f.tag_mode, licenses=None if f.licenses is None else list(f.licenses), per_page=f.per_page,
                max_results_per_query=f.max_results_per_query, max_calls_per_hour=f.max_calls_per_hour,
                min_upload_date=f.min_upload_date, max_upload_date=f.max_upload_date, max_retries=f.max_retries,
                backoff_base_s=f.backoff_base_s, backoff_max_s=f.backoff_max_s, timeout_s=f.timeout_s)


# downloads are I/O-bound: a few more threads than cores, bounded (Prefect's default pool is not)
@flow(name="ingest", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=8))
def ingest_flow(source: str = "samples", limit: int | None = None, config: RedwebConfig | None = None,
                progress: bool = False) -> dict:
    """Ingest ``source`` (samples | flickr | local:DIR | urls:FILE), at most ``limit`` items.

    Returns {"run_dir", "batch", "source", "items", "outcome": {state: n} over this source's items,
    "status": the whole catalog's status object}."""
    from tasks.catalog import Catalog
    from tasks.config import load_config, save_effective_config
    from tasks.ingest import decide_batch, fetch_batch, parse_source, register_from_url, split_batch

    config = config or load_config()
    parse_source(source)  # fail fast on a malformed source, before anything is written
    ing, root = config.ingest, config.data_root
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    run_dir = root / "runs" / f"ingest-{stamp}"
    save_effective_config(config, run_dir)
    url = config.catalog_url
    kind = "network" if source.startswith(("flickr", "urls")) else "db"

    register = redweb_task(register_from_url, kind=kind, name="ingest-register")
    ids = register(url, source, data_root=str(root), extensions=list(ing.extensions), limit=limit,
                   batch=f"ingest-{stamp}", samples_max_view_side=ing.samples_max_view_side,
                   flickr=flickr_options(config) if source == "flickr" else None)
    print(f"{source}: {len(ids)} items")
    fetched = _run_batches(
        redweb_task(fetch_batch, kind="network", name="ingest-fetch"), url, ids, ing.batch_size,
        dict(data_root=str(root), max_pixels=ing.max_pixels, min_side=ing.min_side,
             max_file_bytes=ing.max_file_bytes, timeout_s=ing.download_timeout_s, retries=ing.download_retries),
        "download" if progress else None)
    detected = _run_batches(
        redweb_task(split_batch, kind="cpu", name="ingest-split"), url, ids, ing.batch_size,
        dict(data_root=str(root), max_pixels=ing.max_pixels, min_side=ing.min_side,
             min_similarity=ing.stereo_min_similarity, anaglyph_threshold=ing.anaglyph_min_score,
             split_anaglyph=ing.anaglyphs == "split"),
        "split" if progress else None)
    decided = redweb_task(decide_batch, kind="db", name="ingest-dedup")(
        url, ids, max_distance=ing.near_duplicate_max_distance)

    with Catalog(url) as catalog:
        outcome: dict[str, int] = {}
        for item in catalog.items(ids):
            outcome[item.state] = outcome.get(item.state, 0) + 1
        status = catalog.status().as_dict()
    summary = {"run_dir": str(run_dir), "batch": f"ingest-{stamp}", "source": source, "items": len(ids),
               "steps": {"fetch": fetched, "split": detected, "decide": decided}, "outcome": outcome,
               "status": status}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    print(f"ingest {source}: {outcome}")
    return summary
