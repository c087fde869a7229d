"""Ask the source again about every published-able item; withdraw what is gone.

For Flickr items, flickr.photos.getInfo (same rate limit and retries as the crawl) tells whether the
photo still exists, is public and keeps a licence the crawl accepts. Deleted, private or newly
non-derivative photos move to state `withdrawn` with reason source_deleted, source_private or
license_changed and the time; nothing is deleted. Items verified within --older-than DAYS (default
config release.revalidate_older_than_days = 6) are skipped, so an interrupted run resumes.
Deployed weekly as `revalidate-weekly` (prefect.yaml).
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default="flickr", choices=("flickr",), help="which source to re-check")
    parser.add_argument("--older-than", type=float, metavar="DAYS", default=None,
                        help="only items not verified for DAYS days (default: release.revalidate_older_than_days)")
    parser.add_argument("--all", dest="check_all", action="store_true", help="check every item, however recent")
    parser.add_argument("--limit", type=int, default=None, help="check at most this many items")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace, config) -> int:
    from flows.release import revalidate_flow
    from tasks.ingest.sources.flickr import FlickrCrawlError

    if args.older_than is not None and args.older_than < 0:
        print("redweb revalidate: --older-than must be >= 0")
        return 2
    try:
        report = revalidate_flow(config_file=args.config, data_root=str(config.data_root),
                                 overrides=args.overrides, source=args.source, older_than_days=args.older_than, limit=args.limit,
                                 check_all=args.check_all)
    except FlickrCrawlError as exc:
        print(f"redweb revalidate: Flickr failed: {exc} "
              "(items checked so far keep their result; re-run to resume)")
        return 1
    if args.json:
        print(json.dumps(report, sort_keys=True))
    return 0
