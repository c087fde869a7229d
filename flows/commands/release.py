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

def _shared(parser: argparse.ArgumentParser) -> None:
    """The shared options again, so they also work after the action (`release create v1 --data-root X`);
    SUPPRESS keeps a value given before the action when it is not repeated after it."""
    g = parser.add_argument_group("shared options")
    g.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help="YAML config file")
    g.add_argument("--data-root", metavar="DIR", default=argparse.SUPPRESS, help="data root")
    g.add_argument("--set", metavar="SECTION.FIELD=VALUE", action="append", dest="overrides",
                   default=argparse.SUPPRESS, help="override one config field (repeatable)")
    g.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="make release NAME from the catalog",
                                description="Make release NAME: export + datasheet + SHA256SUMS under "
                                "<data root>/releases/NAME (never rewritten).")
    create.add_argument("names", nargs=1, metavar="NAME", help="release name: letters, digits, . _ -")
    create.add_argument("--from-states", metavar="S1,S2", default=None,
                        help="catalog states to release, comma-separated "
                        "(default: config release.states = accepted)")
    create.add_argument("--notes", default="", help="free text for the top of the datasheet")
    listing = actions.add_parser("list", help="every release, oldest first, with what superseded it")
    listing.set_defaults(names=[])
    diff = actions.add_parser("diff", help="ids added, dropped (with their state now) and re-licensed from A to B")
    diff.add_argument("names", nargs=2, metavar="NAME", help="releases A and B")
    verify = actions.add_parser("verify", help="check a release's files against its SHA256SUMS")
    verify.add_argument("names", nargs=1, metavar="NAME")
    for sub in (create, listing, diff, verify):
        sub.add_argument("--json", action="store_true", help="print the result as JSON")
        _shared(sub)


def run(args: argparse.Namespace, config) -> int:
    from tasks.publish.release import ReleaseError, diff_releases, list_releases, verify_release

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

                df = pd.DataFrame(rows)[["sequence", "name", "created_at", "total", "added", "withdrawn",
                                         "removed", "superseded_by", "notes"]].fillna("")
                print(df.to_string(index=False))
            return 0
        if args.action == "diff":
            from tasks.catalog.catalog import Catalog

            with Catalog(config.catalog_url) as catalog:
                diff = diff_releases(config.data_root, *args.names, catalog=catalog)
            if args.json:
                print(json.dumps(diff, sort_keys=True))
            else:
                print(f"{diff['a']} ({diff['a_total']} items) -> {diff['b']} ({diff['b_total']} items): "
                      f"{len(diff['added'])} added, {len(diff['dropped'])} dropped, "
                      f"{len(diff['license_changed'])} licence changes")
                for row in diff["dropped"]:
                    why = f" ({row['reason']})" if row["reason"] else ""
                    print(f"  - {row['id']}  now {row['state']}{why}")
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
    from tasks.catalog.catalog import State

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
