"""Run a grid of training + evaluation settings and write one table (ReDWeb Tables 2-3, Fig. 5).

  redweb experiment run configs/experiments/table2.yaml --data data/exports/v1
  redweb experiment run configs/experiments/fig5.yaml --data ReDWeb_V1 --out data/runs/fig5
  redweb experiment run configs/experiments/table3.yaml --toy --data /tmp/toy_export   # CPU, seconds

Each setting is a Prefect subflow that trains into OUT/runs/<setting>/ and evaluates on the
config's benchmark; OUT gets runs.csv, table.csv, table.md and (for sweeps) sweep.png. Running the
same command again skips finished settings and resumes unfinished ones. --toy applies the config's
`toy:` section (tiny images, a few steps, narrow decoder). --benchmark/--annotations/--images
override the config's benchmark.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("run", "plan"), help="run the grid, or only list its settings")
    parser.add_argument("experiment", metavar="CONFIG.yaml", help="experiment file (see configs/experiments/)")
    parser.add_argument("--data", metavar="DIR", help="training dataset (overrides the file's data:)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default <data root>/runs/experiment-<name>)")
    parser.add_argument("--toy", action="store_true", help="apply the file's toy: section (CPU, seconds)")
    parser.add_argument("--benchmark", choices=("diw", "nyu", "redweb", "middlebury"))
    parser.add_argument("--annotations", metavar="FILE", help="benchmark annotations (default: the data's val split)")
    parser.add_argument("--images", metavar="DIR", help="benchmark images folder")
    parser.add_argument("--device", help="auto | cpu | cuda (overrides base.device)")


def run(args: argparse.Namespace, config) -> int:
    from pathlib import Path

    import yaml

    from core.layout import DataRoot
    from model.experiment import expand_grid, load_experiment, setting_key

    overrides: dict = {}
    bench = {k: v for k, v in (("name", args.benchmark), ("annotations", args.annotations), ("images", args.images))
             if v is not None}
    if bench:
        overrides["benchmark"] = bench
    if args.device:
        overrides["base"] = {"device": args.device}
    try:
        cfg = load_experiment(args.experiment, toy=args.toy, data=args.data, overrides=overrides)
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"redweb experiment: {exc}", file=sys.stderr)
        return 2
    settings = expand_grid(cfg)
    if args.action == "plan":
        for s in settings:
            print(setting_key(s))
        print(f"({len(settings)} settings)")
        return 0
    from model.data import MissingDataError, check_training_data

    try:
        check_training_data(cfg.data)
    except MissingDataError as exc:
        print(f"redweb experiment: {exc} (pass --data DIR)", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else DataRoot(config.data_root).experiment(cfg.name)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.yaml").write_text(yaml.safe_dump(cfg.model_dump(), sort_keys=False))
    from flows.experiment import experiment_flow

    try:
        paths = experiment_flow(cfg.model_dump(), str(out))
    except (FileNotFoundError, ValueError) as exc:
        print(f"redweb experiment: {exc}", file=sys.stderr)
        return 2
    print(Path(paths["table_md"]).read_text().rstrip())
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0
