"""Crawl or read stereo photos into the catalog: register, download, validate, deduplicate, split.

Sources: samples (default: the embedded samples, built offline on first use), flickr (needs
FLICKR_API_KEY / FLICKR_API_SECRET; REDWEB_FLICKR_REST_URL for another endpoint), local:DIR
(recursive), urls:FILE (one URL a line, # comments). Re-running is safe: items already past a step
are skipped and no row is created twice. Ends with counts per state and reason.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="samples", metavar="SOURCE",
                        help="samples | flickr | local:DIR | urls:FILE (default: samples)")
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="at most N items from the source")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the run summary as JSON instead of a table")


def run(args: argparse.Namespace, config) -> int:
    import json
    import sys

    from tasks.catalog.catalog import REASONS
    from tasks.ingest.run import parse_source

    try:
        kind, arg = parse_source(args.source)
    except ValueError as exc:
        print(f"redweb ingest: {exc}", file=sys.stderr)
        return 2
    from pathlib import Path

    if kind == "local" and not Path(arg).is_dir():
        print(f"redweb ingest: local source {arg!r} is not a folder", file=sys.stderr)
        return 2
    if kind == "urls" and not Path(arg).is_file():
        print(f"redweb ingest: URL list {arg!r} not found", file=sys.stderr)
        return 2
    if kind == "flickr" and not config.flickr.api_key.get_secret_value():
        print("redweb ingest: --source flickr needs FLICKR_API_KEY (and FLICKR_API_SECRET)", file=sys.stderr)
        return 2
    import os

    from prefect.settings import temporary_settings

    from flows.commands import flow_inputs
    from flows.ingest import ingest_flow

    # Prefect's temporary local API gets 20 s to start by default: too little on a busy 2-core box.
    # cli.py sets the environment variable, but Prefect may have read its settings before that.
    timeout = int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180"))
    with temporary_settings(updates={"server.ephemeral.startup_timeout_seconds": timeout}):
        summary = ingest_flow(**flow_inputs(args), source=args.source, limit=args.limit,
                              progress=not args.no_progress)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
        return 0
    status = summary["status"]
    print(f"\ningest {args.source}: {summary['items']} items; run folder {summary['run_dir']}")
    print(f"\n{'this source':<16} {'count':>7}")
    for state, n in sorted(summary["outcome"].items()):
        print(f"{state:<16} {n:>7}")
    print(f"\n{'catalog state':<16} {'count':>7}   (total {status['total']})")
    for state, n in status["states"].items():
        print(f"{state:<16} {n:>7}")
    if status["reasons"]:
        print(f"\n{'reason':<18} {'count':>7}  meaning")
        for reason, n in sorted(status["reasons"].items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"{reason:<18} {n:>7}  {REASONS.get(reason, '')}")
    return 0
