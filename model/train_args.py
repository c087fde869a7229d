"""Command-line options of training, shared by ``redweb train`` and ``python -m model.train``.

Kept free of torch imports: the ``redweb`` CLI builds every subcommand's parser at start-up.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw")
LOSSES = ("improved_ranking", "ranking", "l1", "l2")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``redweb train`` and ``python -m model.train``; all default to None
    (= the TrainConfig value)."""
    parser.add_argument("--data", required=True, help="dataset folder (our export, ReDWeb or HR-WSI layout)")
    parser.add_argument("--run-dir", "--out", dest="run_dir", help="output folder of the run")
    parser.add_argument("--arch", help="architecture name (see model.registry.list_models())")
    parser.add_argument("--arch-kwargs", type=json.loads, help='builder keywords as JSON, e.g. \'{"channels": 64}\'')
    parser.add_argument("--iterations", type=int, help="training steps (exclusive with --epochs)")
    parser.add_argument("--epochs", type=int, help="training epochs (exclusive with --iterations)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--input-size", type=int, nargs="+", help="crop size: S or H W")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--optimizer", choices=OPTIMIZERS)
    parser.add_argument("--loss", choices=LOSSES)
    parser.add_argument("--drop-ratio", type=float)
    parser.add_argument("--n-pairs", type=int)
    parser.add_argument("--pretrained", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--weights-path", help="ImageNet backbone state dict (.pth)")
    parser.add_argument("--device", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--num-workers", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--val-every", type=int)
    parser.add_argument("--checkpoint-every", type=int)
    parser.add_argument("--log-every", type=int)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--resume", nargs="?", const="auto", default=None,
        help="resume from a checkpoint (without a value: RUN_DIR/checkpoints/last.pt)",
    )  # fmt: skip


def train_kwargs_from_args(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """Merge parsed options over config defaults into :func:`train` keyword arguments."""
    kwargs = dict(defaults)
    for name in (
        "arch", "arch_kwargs", "iterations", "epochs", "batch_size", "lr", "optimizer", "loss", "drop_ratio", "n_pairs",
        "pretrained", "weights_path", "device", "num_workers", "seed", "val_every", "checkpoint_every", "log_every",
    ):  # fmt: skip
        value = getattr(args, name, None)
        if value is not None:
            kwargs[name] = value
    if getattr(args, "epochs", None) is not None and getattr(args, "iterations", None) is None:
        kwargs["iterations"] = None
    if getattr(args, "iterations", None) is not None and getattr(args, "epochs", None) is None:
        kwargs["epochs"] = None
    if getattr(args, "input_size", None):
        sizes = args.input_size
        kwargs["input_size"] = sizes[0] if len(sizes) == 1 else (sizes[0], sizes[1])
    if getattr(args, "no_progress", False):
        kwargs["progress"] = False
    kwargs["data"] = args.data
    if args.resume is not None:
        kwargs["resume"] = True if args.resume == "auto" else args.resume
    return kwargs
