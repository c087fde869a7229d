"""Versioned, immutable dataset releases with a datasheet (README: Publishing a dataset).

  redweb release create NAME [--from-states accepted] [--notes TEXT]
  redweb release list [--json]
  redweb release diff A B [--json]
  redweb release verify NAME

`create` writes <data root>/releases/NAME/: the export layout (imgs/, RDs/, masks/, manifest.csv),
datasheet.md + datasheet.json (counts per source, licence and stereo format; pipeline version and
effective config; label audit; added / withdrawn / removed ids since the previous release; file
checksums) and SHA256SUMS. A release is never rewritten; a later one supersedes it.
Withdrawn items are never released.
"""
from __future__ import annotations

import argparse
import json

ACTIONS = {"create": 1, "list": 0, "diff": 2, "verify": 1}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=tuple(ACTIONS), help="create | list | diff | verify")
    parser.add_argument("names", nargs="*", metavar="NAME", help="release name (diff: two names)")
    parser.add_argument("--from-states", metavar="S1,S2", default=None,
                        help="catalog states to release, comma-separated (default: config release.states = accepted)")
    parser.add_argument("--notes", default="", help="free text for the top of the datasheet")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace, config) -> int:
    from tasks.release import ReleaseError, diff_releases, list_releases, verify_release

    want = ACTIONS[args.action]
    if len(args.names) != want:
        print(f"redweb release {args.action}: expected {want} name(s), got {len(args.names)}")
        return 2
    try:
        if args.action == "create":
            return _create(args, config)
        if args.action == "list":
            rows = list_releases(config.data_root)
            if args.json:
                print(json.dumps(rows, sort_keys=True))
            elif not rows:
                print(f"no releases in {config.data_root / 'releases'}")
            else:
                import pandas as pd

                df = pd.DataFrame(rows)[["sequence", "name", "created_at", "total", "added", "withdrawn", "removed",
                                         "superseded_by", "notes"]].fillna("")
                print(df.to_string(index=False))
            return 0
        if args.action == "diff":
            from tasks.catalog import Catalog

            with Catalog(config.catalog_url) as catalog:
                diff = diff_releases(config.data_root, *args.names, catalog=catalog)
            if args.json:
                print(json.dumps(diff, sort_keys=True))
            else:
                print(f"{diff['a']} ({diff['a_total']} items) -> {diff['b']} ({diff['b_total']} items): "
                      f"{len(diff['added'])} added, {len(diff['dropped'])} dropped, "
                      f"{len(diff['license_changed'])} licence changes")
                for row in diff["dropped"]:
                    print(f"  - {row['id']}  now {row['state']}{' (' + row['reason'] + ')' if row['reason'] else ''}")
                for i in diff["added"]:
                    print(f"  + {i}")
                for row in diff["license_changed"]:
                    print(f"  ~ {row['id']}  {row['a']} -> {row['b']}")
            return 0
        problems = verify_release(config.data_root, args.names[0])
        print("\n".join(problems) if problems else f"{args.names[0]}: every file matches SHA256SUMS")
        return 1 if problems else 0
    except ReleaseError as exc:
        print(f"redweb release: {exc}")
        return 2


def _create(args: argparse.Namespace, config) -> int:
    from flows.release import release_flow
    from tasks.catalog import State

    states = None
    if args.from_states:
        states = [s.strip() for s in args.from_states.split(",") if s.strip()]
        try:
            states = [State(s).value for s in states]
        except ValueError as exc:
            print(f"redweb release: {exc}; states are {', '.join(s.value for s in State)}")
            return 2
    summary = release_flow(config_file=args.config, data_root=str(config.data_root), overrides=args.overrides,
                           name=args.names[0], states=states, notes=args.notes)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0
