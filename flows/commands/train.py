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
    from datetime import datetime, timezone
    from pathlib import Path

    from model.train_args import train_kwargs_from_args
    from tasks.config import save_effective_config

    kwargs = train_kwargs_from_args(args, config.train.model_dump())
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.run_dir) if args.run_dir else Path(config.data_root) / "runs" / f"train-{stamp}"
    if (run_dir / "checkpoints" / "last.pt").exists() and not kwargs.get("resume"):
        print(f"redweb train: {run_dir} already holds a checkpoint; pass --resume to continue it "
              "or choose another --run-dir", file=sys.stderr)  # fmt: skip
        return 2
    if not Path(args.data).is_dir():
        print(f"redweb train: dataset folder not found: {args.data}", file=sys.stderr)
        return 2
    from flows.train import train_flow  # imports Prefect: only once the arguments are known to be usable

    save_effective_config(config, run_dir)
    data = kwargs.pop("data")
    try:
        checkpoint = train_flow(str(data), str(run_dir), kwargs)
    except (FileNotFoundError, ValueError) as exc:
        print(f"redweb train: {exc}", file=sys.stderr)
        return 2
    print(checkpoint)
    return 0
