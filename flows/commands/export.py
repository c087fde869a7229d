"""Write catalog items as a ReDWeb-layout dataset (DESIGN.md "Files").

  OUT/imgs/<id>.jpg    cropped left-eye view
  OUT/RDs/<id>.png     relative depth, uint16 larger = farther, sky = 65535 (--format redweb8: 8-bit)
  OUT/masks/<id>.png   255 = reliable label
  OUT/manifest.csv     provenance, license, crop box, quality figures, review decision; train/val split

Re-running updates only what changed and removes items no longer selected.
Examples:
  redweb export --out exports/v1
  redweb export --out exports/unattended --states accepted,auto_accepted,pending_review --format redweb8
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--states", metavar="S1,S2", default=None,
                        help="catalog states to export, comma-separated (default: config export.states = accepted)")
    parser.add_argument("--format", dest="fmt", choices=("redweb16", "redweb8"), default=None,
                        help="RD encoding (default: config export.format = redweb16)")
    parser.add_argument("--val-fraction", type=float, default=None, help="share of items in split=val")
    parser.add_argument("--max-side", type=int, default=None, help="resize so the longer side is at most this")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace, config) -> int:
    from flows.commands import flow_inputs
    from flows.export import export_flow
    from tasks.catalog.catalog import State

    states = [s.strip() for s in args.states.split(",") if s.strip()] if args.states else list(config.export.states)
    try:
        states = [State(s).value for s in states]
    except ValueError as exc:
        print(f"redweb export: {exc}; states are {', '.join(s.value for s in State)}")
        return 2
    if State.WITHDRAWN.value in states:
        print("redweb export: withdrawn items are never exported")
        return 2
    inputs = flow_inputs(args, **{"export.format": args.fmt, "export.val_fraction": args.val_fraction,
                                  "export.max_side": args.max_side})
    summary = export_flow(**inputs, out_dir=args.out, states=states)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    return 0
