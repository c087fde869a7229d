"""Fine-tune a (ReDWeb-pretrained) network on another task (ReDWeb Sec. 4.3).

  redweb finetune depth --data nyu_depth_v2_labeled.mat --init data/runs/train-x/model.pt
  redweb finetune depth --data nyu_depth_v2_labeled.mat --init imagenet --weights-path resnet50.pth
  redweb finetune segment --voc VOCdevkit --sbd benchmark_RELEASE --init data/runs/train-r101/model.pt

--init: a `redweb train` checkpoint (its backbone and decoder are kept, the head is new), `imagenet`
(ImageNet backbone from --weights-path or torchvision's local cache; never downloaded: without
weights the random initialisation stands in and the run says so), or `scratch`.
depth: NYUv2's official 795/654 split (--split-file overrides the test list), offline augmentation
to --augment-count samples, Tukey's biweight loss, Table 7's metrics (delta1-3, rel, log10, rms).
segment: resnet101_fusion + 21-class head, VOC 2012 train + SBD (train_aug), mIoU on VOC val.
The run folder (default <data root>/runs/finetune-<task>-<time>) gets model.pt, metrics.csv,
metrics.json and checkpoints/last.pt (every --checkpoint-every steps); the metrics are printed.
An interrupted run continues at its step: the same command with --run-dir RUN --resume.
Settings come from the config's `finetune` section (--set finetune.iterations=500); flags win (they
become `finetune.*` overrides, so the run's config.yaml records them). A setting left unset takes the
task's default, written once in model.finetune_depth.finetune_depth / model.finetune_segment.finetune_segment
(shown in the run's finetune_config.yaml).
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=("depth", "segment"))
    parser.add_argument("--data", metavar="NYU.mat", help="depth: nyu_depth_v2_labeled.mat")
    parser.add_argument("--voc", metavar="DIR", help="segment: VOCdevkit (or VOCdevkit/VOC2012)")
    parser.add_argument("--sbd", metavar="DIR", help="segment: SBD benchmark_RELEASE (optional)")
    parser.add_argument("--init", help="CHECKPOINT | imagenet | scratch (default: finetune.init)")
    parser.add_argument("--arch", help="architecture for imagenet/scratch (default: the task's)")
    parser.add_argument("--arch-kwargs", type=json.loads, help='builder keywords as JSON, e.g. \'{"channels": 64}\'')
    parser.add_argument("--weights-path", help="ImageNet backbone state dict (.pth) for --init imagenet")
    parser.add_argument("--run-dir", help="output folder")
    parser.add_argument("--iterations", type=int, help="training steps")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--optimizer", choices=("sgd", "adam", "adamw"))
    parser.add_argument("--input-size", type=int, nargs="+", help="depth: training/inference size S or H W")
    parser.add_argument("--augment-count", type=int, help="depth: offline-augmented training samples")
    parser.add_argument("--split-file", help="depth: splits.mat or a text file of 1-based test indices")
    parser.add_argument("--eval-crop", choices=("eigen", "none"), help="depth: score Eigen's crop or all")
    parser.add_argument("--crop-size", type=int, help="segment: training crop")
    parser.add_argument("--eval-max-images", type=int, help="score only the first N test/val images")
    parser.add_argument("--device", help="auto | cpu | cuda")
    parser.add_argument("--num-workers", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--log-every", type=int)
    parser.add_argument("--checkpoint-every", type=int, help="steps between RUN/checkpoints/last.pt")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted run in --run-dir from its checkpoints/last.pt")
    parser.add_argument("--no-progress", action="store_true")


# Flags that are ``finetune`` section fields (flag = field but --data = nyu): they reach the flow as
# overrides, so the run's config.yaml records them.
_SECTION_FLAGS = ("init", "arch", "arch_kwargs", "weights_path", "iterations", "batch_size", "lr",
                  "optimizer", "eval_max_images", "device", "num_workers", "seed", "log_every",
                  "checkpoint_every")
_TASK_FLAGS = {"depth": ("data", "split_file", "augment_count", "eval_crop", "input_size"),
               "segment": ("voc", "sbd", "crop_size")}


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The given flags as ``finetune.<field>`` overrides (None = not given: the config's value stays)."""
    flags = _SECTION_FLAGS + _TASK_FLAGS[args.task]
    out = {f"finetune.{'nyu' if flag == 'data' else flag}": getattr(args, flag) for flag in flags}
    sizes = out.get("finetune.input_size")
    if sizes:
        out["finetune.input_size"] = [sizes[0], sizes[0]] if len(sizes) == 1 else list(sizes[:2])
    return out


def run(args: argparse.Namespace, config) -> int:
    from pathlib import Path

    from flows.commands import flow_inputs
    from flows.options import finetune_data, run_dir_for

    init = args.init or config.finetune.init  # None: the task's default (imagenet)
    run_dir = Path(args.run_dir) if args.run_dir else run_dir_for(config, f"finetune-{args.task}")
    if args.resume and not args.run_dir:
        print("redweb finetune: --resume needs the --run-dir of the run to continue", file=sys.stderr)
        return 2
    if (run_dir / "checkpoints" / "last.pt").exists() and not args.resume:
        print(f"redweb finetune: {run_dir} already holds a checkpoint; pass --resume to continue it "
              "or choose another --run-dir", file=sys.stderr)
        return 2
    if init is not None and init not in ("imagenet", "scratch") and not Path(init).is_file():
        print(f"redweb finetune: --init {init!r} is neither imagenet, scratch nor a checkpoint file", file=sys.stderr)
        return 2
    # the data flags, else the finetune section's paths (else <data root>/benchmarks/...)
    data = {k: getattr(args, k) or v for k, v in finetune_data(config, args.task).items()}
    if args.task == "depth":
        if not Path(data["data"]).is_file():
            print(f"redweb finetune depth: --data must name the NYUv2 labeled .mat (got {data['data']})", file=sys.stderr)
            return 2
        from flows.finetune import finetune_depth_flow as flow
        from model.finetune_depth import format_table7 as render
    else:
        if not Path(data["voc"]).is_dir():
            print(f"redweb finetune segment: --voc must name the VOC 2012 folder (got {data['voc']})", file=sys.stderr)
            return 2
        from flows.finetune import finetune_segment_flow as flow
        from model.finetune_segment import format_segmentation as render
    try:
        doc = flow(**flow_inputs(args, **_overrides(args)), **data, run_dir=str(run_dir),
                   resume=bool(args.resume), progress=not args.no_progress)
    except (FileNotFoundError, ValueError) as exc:
        print(f"redweb finetune {args.task}: {exc}", file=sys.stderr)
        return 2
    print(render(doc))
    print(f"checkpoint: {doc['checkpoint']}")
    print(f"metrics: {run_dir / 'metrics.json'}")
    return 0
