"""Score a model on a benchmark, next to the baselines ("lower is closer", constant).

  redweb evaluate --benchmark diw --annotations DIW_test.csv --images DIW/ --predictions preds/
  redweb evaluate --benchmark nyu --annotations nyu_depth_v2_labeled.mat --checkpoint run/model.pt
  redweb evaluate --benchmark redweb --annotations data/exports/v1 --checkpoint run/model.pt
  redweb evaluate --benchmark middlebury --annotations MiddEval3/trainingF --predictions midas/ --inverse

--annotations is the DIW test CSV, the NYUv2 labeled .mat, our export folder (or its manifest.csv:
the rows with split=val are scored, images from <export>/imgs), or a Middlebury folder (scene
folders with im0.png + disp0GT.pfm, or flat <name>.pfm/.png disparity maps with --images).

Predictions: one file per image named by the image's file stem (<stem>.npy float, 16-bit
<stem>.png, .pfm), any resolution (resized bilinearly to the image), larger = farther; --inverse
for disparity-like outputs (e.g. MiDaS). NYUv2 stems are the 1-based image index: 0001 ... 1449;
Middlebury scene folders use the scene name.

The JSON (--out, and metrics.json in the run folder) has whdr, wkdr, wkdr_eq, wkdr_neq, rms, rel,
log10, delta1, delta2, delta3 (fractions) at the top level and the baselines under "baselines".
Dense benchmarks add wkdr_chen2016 (+ _eq, _neq, _tau): Chen et al. 2016's rule on the raw output,
tau chosen on --chen-val-images training-split images (or fixed with --chen-tau).
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--benchmark", required=True, choices=("diw", "nyu", "redweb", "middlebury"))
    parser.add_argument("--annotations", required=True, metavar="FILE",
                        help="DIW CSV | NYUv2 .mat | export folder or manifest.csv | Middlebury folder")
    parser.add_argument("--images", metavar="DIR", help="image folder (DIW: the CSV's paths are relative to it)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", metavar="DIR", help="folder of <image stem>.npy/.png prediction files")
    source.add_argument("--checkpoint", metavar="FILE", help="a model.pt written by `redweb train`")
    parser.add_argument("--inverse", action="store_true", help="predictions are disparity-like (larger = closer)")
    parser.add_argument("--out", metavar="FILE.json", help="also write the metrics JSON here")
    parser.add_argument("--run-dir", metavar="DIR", help="folder for metrics.json and the report "
                        "(default: <data root>/runs/evaluate-<benchmark>-<time>)")
    parser.add_argument("--no-report", action="store_true", help="skip the Markdown/HTML report")
    parser.add_argument("--split-file", metavar="FILE", help="NYUv2 splits.mat (testNdxs) or a text file of "
                        "1-based indices; default: the built-in official 654-image test split")
    parser.add_argument("--alignment", choices=("paper", "scale_shift", "scale_shift_inverse"),
                        help="alignment reported at the top level (default: paper for nyu, else scale_shift)")
    parser.add_argument("--sigma", type=float, help="ordinal equality threshold (default evaluate.sigma = 0.02)")
    parser.add_argument("--pairs-per-image", type=int, help="WKDR pairs per dense image (default 3000)")
    parser.add_argument("--seed", type=int, help="pair-sampling seed (default 0)")
    parser.add_argument("--device", help="auto | cpu | cuda (default evaluate.device)")
    parser.add_argument("--max-side", type=int, help="checkpoint inputs: longer side at most this (default 1024)")
    parser.add_argument("--chen-val-images", type=int, metavar="N", help="wkdr_chen2016: choose tau on the first N "
                        "training-split images (NYUv2 train / export train rows; default 100, 0 = off)")
    parser.add_argument("--chen-tau", type=float, metavar="TAU", help="wkdr_chen2016 with this fixed tau")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, config) -> int:
    from flows.commands import flow_inputs
    from flows.evaluate import evaluate_flow
    from model.evaluate import format_table

    inputs = flow_inputs(args, **{"evaluate.alignment": args.alignment, "evaluate.sigma": args.sigma,
                                  "evaluate.pairs_per_image": args.pairs_per_image, "evaluate.seed": args.seed,
                                  "evaluate.device": args.device, "evaluate.max_side": args.max_side,
                                  "evaluate.chen_val_images": args.chen_val_images, "evaluate.chen_tau": args.chen_tau})
    from model.data import MissingDataError, check_evaluation_inputs

    if args.annotations is not None:  # (None: the deployment's defaults, checked inside the flow)
        try:
            check_evaluation_inputs(args.benchmark, args.annotations, args.images, checkpoint=args.checkpoint,
                                    predictions=args.predictions, split=config.evaluate.redweb_split)
        except MissingDataError as exc:
            print(f"redweb evaluate: {exc}", file=sys.stderr)
            return 2
    try:
        doc = evaluate_flow(
            **inputs, benchmark=args.benchmark, annotations=args.annotations, images=args.images,
            predictions=args.predictions, checkpoint=args.checkpoint, inverse=args.inverse, out=args.out,
            run_dir=args.run_dir, report=not args.no_report, split_file=args.split_file,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, ValueError) as exc:
        print(f"redweb evaluate: {exc}", file=sys.stderr)
        return 2
    print(format_table(doc))
    for kind, path in doc.get("_paths", {}).items():
        print(f"{kind}: {path}")
    return 0
