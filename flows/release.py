"""Publishing flows: versioned releases, source re-validation (weekly deployment), takedown.

The work is in ``tasks.publish.release`` and ``tasks.publish.revalidate``; each flow builds the config once
(DESIGN.md "Flows") and runs one task with the project policy. Secrets reach the Flickr client from
the environment through the config, never as parameters.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from core.layout import DataRoot
from flows.options import flow_config
from flows.policy import redweb_task


def _release(catalog_url: str, data_root: str, name: str, **options: Any) -> dict:
    from tasks.catalog.catalog import Catalog
    from tasks.publish.release import create_release

    with Catalog(catalog_url) as catalog:
        sheet = create_release(catalog, data_root, name, **options)
    return {k: sheet[k] for k in ("name", "sequence", "created_at", "total", "supersedes", "splits")} | {
        "added": len(sheet["changes"]["added"]), "withdrawn": [w["id"] for w in sheet["changes"]["withdrawn"]],
        "removed": len(sheet["changes"]["removed"]), "skipped": len(sheet["skipped"]),
        "audit": sheet["audit"]["status"], "path": str(DataRoot(Path(data_root)).releases / name)}


@flow(name="redweb-release", log_prints=True)
def release_flow(config_file: str | None = None, data_root: str | None = None, overrides: list[str] | None = None,
                 name: str | None = None, states: list[str] | None = None, notes: str = "") -> dict:
    """Make release ``name`` (default: ``r<UTC time>``) from the items in ``states`` (default
    ``release.states`` = accepted) with its datasheet; returns a summary."""
    from datetime import datetime, timezone

    from flows.config import config_to_dict
    from tasks.publish.release import redact_config

    config = flow_config(config_file, data_root, overrides)
    name = name or datetime.now(timezone.utc).strftime("r%Y%m%dT%H%M%SZ")
    # no retries: a second attempt would find a half-made state or a taken name, never fix anything
    summary = redweb_task(_release, kind="db", name="release-create", retries=0)(
        config.catalog_url, str(config.data_root), name, states=list(states or config.release.states),
        notes=notes or "", export=config.export, config=redact_config(config_to_dict(config)),
        process_config=config.process.model_dump(mode="json"), ingest_config=config.ingest.model_dump(mode="json"))
    print(f"release {summary['name']} (#{summary['sequence']}): {summary['total']} items, "
          f"{summary['added']} added, "
          f"{len(summary['withdrawn'])} withdrawn, {summary['removed']} removed since "
          f"{summary['supersedes'] or 'nothing'}; label audit: {summary['audit']} -> {summary['path']}")
    return summary


CLIENT_OPTIONS = ("rest_url", "api_key", "api_secret", "licenses", "max_calls_per_hour", "max_retries",
                  "backoff_base_s", "backoff_max_s", "timeout_s")


def _revalidate(catalog_url: str, **options: Any) -> dict:
    from tasks.catalog.catalog import Catalog
    from tasks.publish.revalidate import revalidate_flickr

    with Catalog(catalog_url) as catalog:
        return revalidate_flickr(catalog, **options).as_dict()


@flow(name="redweb-revalidate", log_prints=True)
def revalidate_flow(config_file: str | None = None, data_root: str | None = None,
                    overrides: list[str] | None = None, source: str = "flickr", older_than_days: float | None = None, limit: int | None = None,
                    check_all: bool = False) -> dict:
    """Ask the source again whether each item still exists, is public and keeps an acceptable
    licence; withdraw those that do not. ``older_than_days`` (default ``release.revalidate_older_than_days``)
    skips items verified more recently; ``check_all`` checks every item regardless."""
    if source != "flickr":
        raise ValueError(f"revalidation knows the flickr source only, not {source!r}")
    from flows.options import flickr_options

    config = flow_config(config_file, data_root, overrides)
    rel = config.release
    age = None if check_all else (rel.revalidate_older_than_days if older_than_days is None else older_than_days)
    # the crawl's client settings (endpoint, credentials, licence selection, rate limit, retries)
    client = {k: v for k, v in flickr_options(config).items() if k in CLIENT_OPTIONS}
    # the client does its own retries per call (with the rate limit); a task retry would redo the run
    report = redweb_task(_revalidate, kind="network", name="revalidate-flickr", retries=0)(
        config.catalog_url, **client, older_than_days=age, limit=limit or rel.revalidate_limit)
    print(f"revalidate {source}: {report['checked']} checked, {report['unchanged']} unchanged, "
          f"{report['withdrawn_total']} withdrawn {report['withdrawn']}, {len(report['license_updated'])} licence "
          f"updates; {report['calls']} API calls ({report['retries']} retries)")
    return report


def _withdraw(catalog_url: str, refs: list[str], owner: str | None, **options: Any) -> dict:
    from tasks.catalog.catalog import Catalog
    from tasks.publish.revalidate import resolve_refs, withdraw_items

    with Catalog(catalog_url) as catalog:
        ids = resolve_refs(catalog, refs, owner=owner)
        return withdraw_items(catalog, ids, **options).as_dict()


@flow(name="redweb-withdraw", log_prints=True)
def withdraw_flow(config_file: str | None = None, data_root: str | None = None, overrides: list[str] | None = None,
                  refs: list[str] | None = None, owner: str | None = None, reason: str = "",
                  code: str = "takedown", actor: str = "withdraw", dry_run: bool = False) -> dict:
    """Withdraw items by id, URL or source id (``refs``) and/or every item of ``owner``, with the
    request text ``reason`` (required) and reason code ``code``. All references must resolve."""
    config = flow_config(config_file, data_root, overrides)
    if not refs and not owner:
        raise ValueError("withdraw needs item ids / URLs or an owner")
    report = redweb_task(_withdraw, kind="db", name="withdraw", retries=0)(
        config.catalog_url, list(refs or []), owner, detail=reason, reason=code, actor=actor, dry_run=dry_run)
    verb = "would withdraw" if dry_run else "withdrawn"
    print(f"{verb}: {len(report['withdrawn'])}; already withdrawn: {len(report['already_withdrawn'])}")
    return report
