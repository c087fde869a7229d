"""Predict relative depth for images of any size with a trained checkpoint.

  redweb predict photo.jpg more_photos/ --checkpoint data/runs/r1/model.pt --out depth/

Writes OUT/<stem>.png (uint16, larger = farther, scaled per image to 0..65535) and
OUT/preview/<stem>.jpg (colourized: dark = close, bright = far). OUT can be scored directly with
`redweb evaluate --predictions OUT`. Inputs larger than --max-side are downscaled for the network
and the prediction is resized back to the original size.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders")
    parser.add_argument("--checkpoint", required=True, metavar="FILE", help="a model.pt written by `redweb train`")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--batch-size", type=int, help="images per forward pass (default evaluate.batch_size = 4)")
    parser.add_argument("--max-side", type=int, help="downscale so the longer side is at most this (default 1024)")
    parser.add_argument("--device", help="auto | cpu | cuda (default evaluate.device)")
    parser.add_argument("--npy", action="store_true", help="also write raw float32 <stem>.npy")
    parser.add_argument("--no-preview", action="store_true", help="skip the colourized previews")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace, config) -> int:
    from flows.commands import flow_inputs
    from flows.predict import predict_flow

    inputs = flow_inputs(args, **{"evaluate.device": args.device, "evaluate.batch_size": args.batch_size,
                                  "evaluate.max_side": args.max_side})
    try:
        written = predict_flow(**inputs, images=args.images, checkpoint=args.checkpoint, out_dir=args.out,
                               previews=not args.no_preview, save_npy=args.npy, progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as exc:
        print(f"redweb predict: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} depth maps to {args.out}")
    return 0
