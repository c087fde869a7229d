"""Turn stereo pairs (state `split`) into relative depth maps, masks, sky masks and previews.

Every pair not yet processed is handled (resumable: re-running picks up what is left).
`--reprocess` also redoes items made by an older pipeline version that no person has decided.
Backends and thresholds come from the `process` config section (README: redweb process).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", help="correspondence backend (default: process.correspondence): "
                        "dis, flownet2, raft, sea_raft_m, ptlflow:<name>, tv_raft")
    parser.add_argument("--checkpoint", help="local weights for a network backend (process.correspondence_checkpoint)")
    parser.add_argument("--sky", help="sky backend (default: process.sky): heuristic, segformer, mmseg")
    parser.add_argument("--limit", type=int, help="process at most this many pairs")
    parser.add_argument("--reprocess", action="store_true",
                        help="also redo items an older PIPELINE_VERSION made (not those a person decided)")
    parser.add_argument("--ids", nargs="+", metavar="ID", help="only these item ids")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, config) -> int:
    from flows.commands import flow_inputs
    from flows.process import process_flow_for

    inputs = flow_inputs(args, **{"process.correspondence": args.backend, "process.sky": args.sky,
                                  "process.correspondence_checkpoint": args.checkpoint})
    counts = process_flow_for(config)(**inputs, ids=args.ids, limit=args.limit, reprocess=args.reprocess,
                                      progress=not args.no_progress)
    for state, n in sorted(counts.items()):
        print(f"{state:<16} {n:>6}")
    return 1 if counts.get("error") else 0
