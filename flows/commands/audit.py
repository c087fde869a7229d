"""Measure the current process configuration on real stereo with ground truth (label audit).

Each scene is packed the way web stereo arrives (parallel and cross-eyed side by side, over-under,
MPO, with a deterministic web degradation), then ingested, processed, triaged and exported by the
same code a crawl uses, and every exported map is scored against GT: ordinal error (sigma = 0.02,
ties count), coverage, view order, detected format, triage outcome, seconds per stage; the summary
judges triage against the truth (bad = error > 10 % or coverage < 30 %).

Scene folders: Middlebury 2014 / MiddEval3 / ETH3D (im0.png, im1.png, disp0GT.pfm), KITTI 2012/2015
(image_2/, image_3/, disp_occ_0/), the generic layout (left.png, right.png, gt.json), Middlebury
2001-2006 (im2/im6/disp2 or view1/view5/disp1, with --legacy-scale). DIR: a scene folder or a folder
of scene folders. Writes audit.json and report.html to --out (default <data_root>/runs/audit-<time>/).
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scenes", action="append", default=[], metavar="DIR",
                        help="scene folder or folder of scene folders (repeatable)")
    parser.add_argument("--packings", default="sbs,cross,ou,mpo",
                        help="comma-separated subset of sbs,cross,ou,mpo (the default audit) and hard "
                             "(an opt-in stress packing with heavy damage, where triage's auto-reject "
                             "precision can be measured)")
    parser.add_argument("--out", metavar="DIR", help="where audit.json and report.html go")
    parser.add_argument("--json", action="store_true", help="print the audit JSON instead of the table")
    parser.add_argument("--pairs", type=int, default=100_000, help="random pixel pairs per map for the ordinal error")
    parser.add_argument("--legacy-scale", type=float, help="disparity scale of Middlebury 2001-2006 folders")
    parser.add_argument("--max-frames", type=int, help="at most this many frames per KITTI folder")
    parser.add_argument("--no-report", action="store_true", help="skip the HTML report (faster)")
    parser.add_argument("--photos", action="append", default=[], metavar="PATH",
                        help="real stereo photos without GT whose files store the left eye first (SBS left half, "
                             "MPO frame 0): state, format, order and coverage are reported (repeatable)")


def run(args: argparse.Namespace, config) -> int:
    from flows.audit import run_audit_command
    from tasks.audit.packing import ALL_PACKINGS
    from tasks.audit.scenes import SceneError

    if not args.scenes and not args.photos:
        print("redweb audit: give --scenes DIR (scenes with GT) and/or --photos PATH", file=sys.stderr)
        return 2
    packings = [p for p in args.packings.split(",") if p]
    unknown = [p for p in packings if p not in ALL_PACKINGS]
    if unknown or not packings:
        print(f"redweb audit: --packings {args.packings!r}: unknown {unknown}; "
              f"choose from {','.join(ALL_PACKINGS)}",
              file=sys.stderr)
        return 2
    try:
        result = run_audit_command(config, scenes=args.scenes, packings=args.packings, out=args.out,
                                   pairs=args.pairs, legacy_scale=args.legacy_scale, max_frames=args.max_frames,
                                   report=not args.no_report, progress=not args.json, photos=args.photos)
    except SceneError as exc:
        print(f"redweb audit: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=1))
    else:
        print(result["table"])
        print(f"\naudit.json: {result['out']}/audit.json" + (f"\nreport: {result['report']}" if "report" in result else ""))
    return 0
