"""Serve the annotators' web UI, or manage reviewer accounts.

  redweb review [--host 127.0.0.1] [--port 8765]       serve the app (uvicorn)
  redweb review --add-user NAME                         add an account; password from $REDWEB_REVIEW_PASSWORD,
                                                        else one line on stdin (or a prompt on a terminal)
  redweb review --add-user NAME --replace               set a new password (ends that reviewer's sessions)
  redweb review --remove-user NAME                      deactivate an account (its decisions stay in the log)
  redweb review --list-users

Keys in the app: A accept, R + 1..9 (+ optional comment) + Enter reject with a reason, S skip,
U undo, F flip the view order (depth looks inverted), arrows previous/next, V side-by-side/overlay,
M / Y validity / sky overlay, [ ] overlay opacity, G grid.
"""
from __future__ import annotations

import argparse
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="bind address (default: config review.host = 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: config review.port = 8765)")
    users = parser.add_mutually_exclusive_group()
    users.add_argument("--add-user", metavar="NAME", help="create a reviewer account and exit")
    users.add_argument("--remove-user", metavar="NAME", help="deactivate a reviewer account and exit")
    users.add_argument("--list-users", action="store_true", help="list reviewer accounts and exit")
    parser.add_argument("--replace", action="store_true", help="with --add-user: set a new password if NAME exists")


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
            store = ReviewStore(catalog)
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

    import uvicorn

    from review_ui.app import create_app

    app = create_app(
        config.catalog_url, config.data_root, reject_reasons=rc.reject_reasons, review_states=rc.review_states,
        secret_key=rc.secret_key.get_secret_value().encode() if rc.secret_key is not None else None,
        lease_timeout_s=rc.lease_timeout_s, double_review_share=rc.double_review_share,
        skip_cooldown_s=rc.skip_cooldown_s, secret_key_file=rc.secret_key_file,
        session_max_age_s=rc.session_max_age_s, cookie_secure=rc.cookie_secure, page_size=rc.page_size,
        thumbnail_px=rc.thumbnail_px, process=config.process,
        login_free_attempts=rc.login_free_attempts, login_lockout_s=rc.login_lockout_s,
        login_lockout_max_s=rc.login_lockout_max_s)
    host, port = args.host or rc.host, args.port if args.port is not None else rc.port
    print(f"redweb review on http://{host}:{port}/  (catalog {config.catalog_url_redacted})")
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0
