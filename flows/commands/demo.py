"""Run the whole DAG offline on the embedded samples, on CPU, in a few minutes:

  ingest (embedded samples) → process (fused DIS + SGBM, heuristic sky + CRF, crop) → triage (auto-accept
  above a threshold, since nobody reviews) → export → train a small network (resnet18 fusion,
  random init) → evaluate on the export's held-out split against the baselines → report.

Demo defaults (each can be changed with --set, or with a --config file):
  process.auto_accept_score=0.5  pipeline.export_states=[accepted,auto_accepted]
  train.arch=resnet18_fusion  train.arch_kwargs={channels: 64}  train.pretrained=false
  train.input_size=128  train.batch_size=4  train.iterations=300  train.optimizer=adam  train.lr=0.001
  train.n_pairs=1000  evaluate.max_side=320
Re-running is safe: finished items are skipped; training and evaluation run again in a new run folder.
"""
from __future__ import annotations

import argparse

DEMO_OVERRIDES = (
    "process.auto_accept_score=0.5",
    "pipeline.export_states=[accepted, auto_accepted]",
    "pipeline.export_name=demo",
    "train.arch=resnet18_fusion",
    "train.pretrained=false",
    "train.arch_kwargs={channels: 64}",
    "train.input_size=128",
    "train.batch_size=4",
    "train.iterations=300",
    "train.n_pairs=1000",
    "train.num_workers=0",
    "train.val_every=50",
    "train.checkpoint_every=50",
    # Adam at 1e-3: from random init, SGD at 0.01-0.02 collapsed to a constant output on these 13 maps
    "train.optimizer=adam",
    "train.lr=0.001",
    "evaluate.max_side=320",
    "evaluate.device=cpu",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, help="run per-pair work on a local Dask cluster")
    parser.add_argument("--dask-address", help="tcp://HOST:PORT of a running Dask scheduler")
    parser.add_argument("--no-train", action="store_true", help="stop after the export")


def run(args: argparse.Namespace, config) -> int:
    from flows.pipeline import redweb_pipeline

    # demo defaults first, the user's --set after them, so the user's win
    overrides = [*DEMO_OVERRIDES, *args.overrides]
    result = redweb_pipeline(
        source="samples", config_file=args.config, data_root=args.data_root, overrides=overrides,
        train=not args.no_train, dask_address=args.dask_address, workers=args.workers, progress=True,
    )
    print("\n" + "=" * 72)
    for name, info in result["steps"].items():
        print(f"  {name:<9} {info['seconds']:7.1f} s")
    ev = result.get("evaluation")
    if ev:
        base = ev.get("baselines", {})
        print(f"\n  held-out WKDR: model {ev.get('wkdr', float('nan')):.3f}" + "".join(
            f", {k} {v.get('wkdr', float('nan')):.3f}" for k, v in base.items()))
    print(f"\n  report:     {result['report']}")
    print(f"  open it:    xdg-open {result['report']}   (or python -m http.server -d {result['run_dir']})")
    print(f"  dataset:    {result['export']}")
    if result.get("checkpoint"):
        print(f"  checkpoint: {result['checkpoint']}")
    print(f"  review UI on the same data:\n"
          f"    redweb review --data-root {config.data_root} --add-user alice   # once: create an account\n"
          f"    redweb review --data-root {config.data_root}                    # http://127.0.0.1:{config.review.port}")
    print("=" * 72)
    return 0
