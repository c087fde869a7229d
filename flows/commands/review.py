"""Serve the annotators' web UI, or manage reviewer accounts.

  redweb review [--host HOST] [--port PORT]             serve the app (uvicorn; default: review.host/port)
  redweb review --add-user NAME                         add an account; password from $REDWEB_REVIEW_PASSWORD,
                                                        else one line on stdin (or a prompt on a terminal)
  redweb review --add-user NAME --replace               set a new password (ends that reviewer's sessions)
  redweb review --remove-user NAME                      deactivate an account (its decisions stay in the log)
  redweb review --list-users
  redweb review --allow-no-users                        serve even with no accounts (nobody can sign in yet)

Keys in the app: A accept, R + 1..9 (+ optional comment) + Enter reject with a reason, S skip,
U undo, F flip the view order (depth looks inverted), arrows previous/next, V side-by-side/overlay,
M / Y validity / sky overlay, [ ] overlay opacity, G grid.
"""
from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from tasks.review.settings import ReviewConfig

    shipped = ReviewConfig.model_fields  # the defaults' one home; the help only quotes them
    parser.add_argument("--host", default=None,
                        help=f"bind address (default: config review.host = {shipped['host'].default})")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port (default: config review.port = {shipped['port'].default})")
    users = parser.add_mutually_exclusive_group()
    users.add_argument("--add-user", metavar="NAME", help="create a reviewer account and exit")
    users.add_argument("--remove-user", metavar="NAME", help="deactivate a reviewer account and exit")
    users.add_argument("--list-users", action="store_true", help="list reviewer accounts and exit")
    parser.add_argument("--replace", action="store_true", help="with --add-user: set a new password if NAME exists")
    parser.add_argument("--allow-no-users", action="store_true",
                        help="serve even when the catalog has no reviewer accounts (nobody can sign in)")


def _read_password() -> str:
    if os.environ.get("REDWEB_REVIEW_PASSWORD"):
        return os.environ["REDWEB_REVIEW_PASSWORD"]
    if sys.stdin.isatty():
        import getpass

        first = getpass.getpass("password: ")
        if first != getpass.getpass("again: "):
            raise SystemExit("redweb review: passwords differ")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def run(args: argparse.Namespace, config) -> int:
    from tasks.catalog.catalog import Catalog
    from tasks.review.store import ReviewError, ReviewStore

    rc = config.review
    if args.add_user or args.remove_user or args.list_users:
        with Catalog(config.catalog_url) as catalog:
            store = ReviewStore(catalog, rc)
            try:
                if args.add_user:
                    password = _read_password()
                    if len(password) < 8:
                        print("redweb review: password must have at least 8 characters", file=sys.stderr)
                        return 2
                    store.add_reviewer(args.add_user, password, replace=args.replace)
                    print(f"reviewer {args.add_user} {'updated' if args.replace else 'added'}")
                elif args.remove_user:
                    store.deactivate_reviewer(args.remove_user)
                    print(f"reviewer {args.remove_user} deactivated")
                else:
                    print("\n".join(store.reviewer_names()))
            except ReviewError as exc:
                print(f"redweb review: {exc}", file=sys.stderr)
                return 2
        return 0

    with Catalog(config.catalog_url) as catalog:
        names = ReviewStore(catalog, rc).reviewer_names()
    if not names and not args.allow_no_users:
        print("redweb review: this catalog has no reviewer accounts, so nobody could sign in.\n"
              "  add one:  redweb review --add-user NAME   (password from $REDWEB_REVIEW_PASSWORD or stdin)\n"
              "  or start anyway with --allow-no-users", file=sys.stderr)
        return 2

    import uvicorn

    from review_ui.app import create_app, server_options

    app = create_app(config.catalog_url, config.data_root, rc, process=config.process)
    host, port = args.host or rc.host, args.port if args.port is not None else rc.port
    print(f"redweb review on http://{host}:{port}/  (catalog {config.catalog_url_redacted})")
    uvicorn.run(app, host=host, port=port, log_level="info", **server_options())
    return 0
