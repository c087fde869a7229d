"""Counts of catalog items per state and per reason code.

`--json` prints {"total": N, "states": {state: count}, "reasons": {reason_code: count}}.
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the DESIGN.md status object")


def run(args: argparse.Namespace, config) -> int:
    from tasks.catalog.catalog import REASONS, Catalog

    with Catalog(config.catalog_url) as catalog:
        counts = catalog.status()
    if args.json:
        print(json.dumps(counts.as_dict(), sort_keys=True))
        return 0
    print(f"catalog: {config.catalog_url_redacted}\ntotal items: {counts.total}\n")
    print(f"{'state':<16} {'count':>7}")
    for state, n in counts.states.items():
        print(f"{state:<16} {n:>7}")
    if counts.reasons:
        print(f"\n{'reason':<18} {'count':>7}  meaning")
        for reason, n in sorted(counts.reasons.items(), key=lambda kv: -kv[1]):
            print(f"{reason:<18} {n:>7}  {REASONS.get(reason, '')}")
    return 0
