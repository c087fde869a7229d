"""Withdraw items by hand (owner request, legal): state `withdrawn`, never released or exported again.

  redweb withdraw ID|URL [ID|URL ...] --reason TEXT
  redweb withdraw --owner NSID --reason TEXT

ID is a catalog id (or a source id such as a Flickr photo id); URL a Flickr photo page, static image
or flic.kr link, or any item's stored URL. --owner takes every item of that account (Flickr NSID).
The reason text is kept with the item (reason code `takedown`, or --code); nothing is deleted.
All references must match, or nothing is withdrawn.
"""
from __future__ import annotations

import argparse
import getpass
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tasks.catalog.catalog import WITHDRAW_REASONS

    parser.add_argument("refs", nargs="*", metavar="ID|URL", help="items to withdraw")
    parser.add_argument("--owner", metavar="NSID", help="withdraw every item of this owner account")
    parser.add_argument("--reason", required=True, metavar="TEXT", help="who asked and why (kept with the item)")
    parser.add_argument("--code", default="takedown", choices=WITHDRAW_REASONS,
                        help="reason code (default takedown)")
    parser.add_argument("--by", default=None, help="who withdraws (default: the login name)")
    parser.add_argument("--dry-run", action="store_true", help="list what would be withdrawn, change nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace, config) -> int:
    from flows.release import withdraw_flow
    from tasks.publish.revalidate import WithdrawError

    if not args.refs and not args.owner:
        print("redweb withdraw: give item ids / URLs or --owner NSID")
        return 2
    if not args.reason.strip():
        print("redweb withdraw: --reason must say who asked and why")
        return 2
    try:
        who = args.by or getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    try:
        report = withdraw_flow(config_file=args.config, data_root=str(config.data_root), overrides=args.overrides,
                               refs=args.refs, owner=args.owner, reason=args.reason, code=args.code,
                               actor=f"withdraw:{who}"[:128], dry_run=args.dry_run)
    except WithdrawError as exc:
        print(f"redweb withdraw: {exc}; nothing was withdrawn")
        return 1
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for i in report["withdrawn"]:
            print(f"{'would withdraw' if args.dry_run else 'withdrawn'} {i}")
        for i in report["already_withdrawn"]:
            print(f"already withdrawn {i}")
    return 0
