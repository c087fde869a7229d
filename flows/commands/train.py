"""Train a monocular relative-depth network (ReDWeb fusion net + improved ranking loss).

  redweb train --data data/exports/v1
  redweb train --data ReDWeb_V1 --arch resnet18_fusion --iterations 2000 --batch-size 4 --input-size 256
  redweb train --data data/exports/v1 --run-dir data/runs/train-x --resume      # continue a killed run

Defaults come from the config's ``train`` section (``--set train.lr=0.02`` etc.); options given here
win. The run folder (default <data root>/runs/train-<time>) gets model.pt, checkpoints/last.pt,
metrics.csv, tb/ (TensorBoard), train_config.yaml and config.yaml. Prints the checkpoint path.
Multi-GPU: ``torchrun --nproc_per_node=N -m model.train --data DIR --run-dir DIR ...`` (same options).
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from model.train_args import add_train_arguments

    add_train_arguments(parser)


def run(args: argparse.Namespace, config) -> int:
    from pathlib import Path

    from flows.commands import flow_inputs
    from flows.options import run_dir_for
    from model.config import TrainConfig
    from model.train_args import train_kwargs_from_args

    given = train_kwargs_from_args(args, {})  # only what was given on the command line (+ data, resume)
    run_dir = Path(args.run_dir) if args.run_dir else run_dir_for(config, "train")
    if (run_dir / "checkpoints" / "last.pt").exists() and not given.get("resume"):
        print(f"redweb train: {run_dir} already holds a checkpoint; pass --resume to continue it "
              "or choose another --run-dir", file=sys.stderr)  # fmt: skip
        return 2
    from model.data import MissingDataError, check_training_data

    try:
        check_training_data(args.data, layout=given.get("layout"))
    except MissingDataError as exc:
        print(f"redweb train: {exc}", file=sys.stderr)
        return 2
    from flows.train import train_flow  # imports Prefect: only once the arguments are known to be usable

    inputs = flow_inputs(args)
    inputs["overrides"].update({f"train.{k}": v for k, v in given.items() if k in TrainConfig.model_fields})
    try:
        checkpoint = train_flow(**inputs, data=str(args.data), run_dir=str(run_dir), resume=given.get("resume") or True,
                                progress=given.get("progress", True))
    except (FileNotFoundError, ValueError) as exc:
        print(f"redweb train: {exc}", file=sys.stderr)
        return 2
    print(checkpoint)
    return 0
