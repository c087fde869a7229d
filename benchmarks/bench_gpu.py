"""GPU acceptance in one command: every accelerator path of the project runs, is timed and is projected.

    python benchmarks/bench_gpu.py --json --out gpu.json     # on a CUDA machine (fits in ~8 min)
    python benchmarks/bench_gpu.py --only raft,train         # some rows only
    python benchmarks/bench_gpu.py --toy --json              # the same code paths on CPU at toy size

One row per path; each row calls the project's own functions (the calls sit in one small block per
row, ``# --- project calls``, so a rename elsewhere is a one-place fix):

- ``flownet2``, ``raft``, ``raft_small``, ``sea_raft_s``: ``build_backend(name)`` (ptlflow, random
  weights) and ``backend.flow`` on a real pair at 1 MP per view, batch 1 and larger batches, fp32
  and under ``torch.autocast`` (AMP). Figure: pairs per second (batch 1 and the best batch).
- ``process``: ``process_pair`` with ``fused:raft`` (``build_backends``) on the Middlebury motorcycle
  pair at the process stage's ``max_side``. Figure: seconds per pair and the network flow's share.
- ``sky``: ``build_sky("segformer")`` on a SegFormer-B5-sized config with random weights saved to a
  local folder, plus the dense CRF (``detect_sky``); mmseg too when installed. Figure: s per image.
- ``train``: ``model.train.train`` of resnet50_fusion (TrainConfig's 384x384, batch 8, 3K pairs,
  improved ranking, AMP + channels-last) for a few dozen steps on a generated export; the other
  Table 2 architectures briefly. Figures: steps/s, peak memory, projected hours for one 40K run
  and for each grid of ``configs/experiments/*.yaml`` (read through ``model.experiment``).
- ``ddp``: ``torchrun`` with two processes running ``train``; every optimizer step's gradient
  checksum is recorded per rank and compared. NCCL when the machine has two GPUs; on one GPU
  both ranks share it over gloo (NCCL refuses two ranks on one device); gloo on CPU.
- ``evaluate``: ``evaluate_checkpoint`` (WKDR on a generated export, WHDR on a generated DIW csv)
  of a random resnet50_fusion checkpoint. Figure: images per second.

Each group of rows runs in a child process (the four flow networks share one); a row that raises
gets the error's one-line text as its status, a child that crashes or hangs costs only its
running row (the rest are run again in a fresh child). ``--out`` is rewritten after every group,
so a run cut short keeps what it measured. Peak memory is ``torch.cuda.max_memory_allocated`` of
the row on CUDA, the child's peak RSS on CPU (``mem`` says which). Without CUDA and without
``--toy`` the script says so and exits 2. Weights are random and data generated: nothing is
downloaded.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # measure the code of this checkout, not an installed copy
    sys.path.insert(0, str(ROOT))

FLOW_ROWS = ("flownet2", "raft", "raft_small", "sea_raft_s")
GROUPS: tuple[tuple[str, ...], ...] = (FLOW_ROWS, ("process",), ("sky",), ("train",), ("ddp",), ("evaluate",))
ROWS = tuple(name for group in GROUPS for name in group)
PROCESS_BACKEND = "fused:raft"
PAPER_ARCH = "resnet50_fusion"
EXPERIMENTS = ROOT / "configs" / "experiments"
# SegFormer-B5 (Xie et al. 2021, the ADE20K 640x640 model) shapes; random weights
SEGFORMER_B5 = dict(depths=[3, 6, 40, 3], hidden_sizes=[64, 128, 320, 512], num_attention_heads=[1, 2, 5, 8],
                    decoder_hidden_size=768)
SEGFORMER_TOY = dict(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
                     decoder_hidden_size=16)


@dataclass(frozen=True)
class Scale:
    """Sizes of one run: the GPU acceptance run (``FULL``) or the CPU smoke run (``TOY``)."""

    flow_size: tuple[int, int]  # (H, W) of each view
    flow_batches: tuple[int, ...]  # pairs per forward; larger ones stop at the first out-of-memory
    flow_iters: int | None  # recurrent refinements of RAFT-like nets; None = the network's own default
    warmup: int  # untimed calls before the timed ones (cuDNN autotuning, allocator)
    reps: int  # timed calls; the median is reported
    process_max_side: int | None  # None = ProcessConfig().max_side
    sky_size: tuple[int, int]
    segformer: dict[str, Any]
    sky_input_side: int | None  # None = the backend's default
    mmseg_depth: int  # ResNetV1c depth of the mmseg FCN
    train_overrides: dict[str, Any]  # over TrainConfig's defaults (empty = the paper's setting)
    train_warmup: int  # steps not counted in steps/s
    train_steps: int
    # generated export: items, (H, W); an epoch rebuilds the loader (new workers), so the full run
    # has 24 steps per epoch, not a restart every few steps (ReDWeb: 450)
    train_data: tuple[int, tuple[int, int]]
    other_arch_steps: int  # steps timed for the other Table 2 architectures
    ddp_overrides: dict[str, Any]
    ddp_steps: int
    eval_arch: str
    eval_arch_kwargs: dict[str, Any]
    eval_images: tuple[int, int]  # (val images scored, train images for Chen's tau)
    eval_size: tuple[int, int]
    timeouts: dict[str, int] = field(default_factory=dict)  # seconds per row (the group gets the sum)


FULL = Scale(
    flow_size=(824, 1216), flow_batches=(1, 2, 4, 8), flow_iters=None, warmup=2, reps=5,
    process_max_side=None, sky_size=(824, 1216), segformer=SEGFORMER_B5, sky_input_side=None, mmseg_depth=50,
    train_overrides={}, train_warmup=5, train_steps=40, train_data=(192, (480, 640)), other_arch_steps=12,
    ddp_overrides={}, ddp_steps=6,
    eval_arch=PAPER_ARCH, eval_arch_kwargs={}, eval_images=(40, 8), eval_size=(480, 640),
    timeouts={"flownet2": 90, "raft": 90, "raft_small": 60, "sea_raft_s": 60, "process": 90, "sky": 90,
              "train": 240, "ddp": 150, "evaluate": 120},
)
TOY = Scale(
    flow_size=(128, 128), flow_batches=(1, 2), flow_iters=2, warmup=0, reps=1,
    process_max_side=96, sky_size=(64, 96), segformer=SEGFORMER_TOY, sky_input_side=64, mmseg_depth=18,
    train_overrides={"arch_kwargs": {"channels": 32}, "input_size": 32, "batch_size": 2, "n_pairs": 100,
                     "num_workers": 0},
    train_warmup=1, train_steps=1, train_data=(6, (48, 48)), other_arch_steps=1,
    ddp_overrides={"arch": "resnet18_fusion", "arch_kwargs": {"channels": 16}, "input_size": 32,
                   "batch_size": 2, "n_pairs": 100, "num_workers": 0},
    ddp_steps=2,
    eval_arch="resnet18_fusion", eval_arch_kwargs={"channels": 16}, eval_images=(3, 2), eval_size=(64, 80),
    timeouts={name: 240 for name in ROWS},
)


# ----------------------------------------------------------------------------- small helpers
def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _median_time(fn: Callable[[], Any], warmup: int, reps: int) -> float:
    """Median wall seconds of ``reps`` calls after ``warmup`` untimed ones (device synchronised)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        _sync()
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _autocast(enabled: bool):
    """AMP as training uses it: fp16 on CUDA; bfloat16 on CPU (the toy run's stand-in)."""
    import torch

    device = _device()
    dtype = torch.float16 if device == "cuda" else torch.bfloat16
    return torch.autocast(device, dtype=dtype, enabled=enabled)


def _real_pair(size: tuple[int, int] | None = None):
    """The Middlebury 2014 motorcycle pair scikit-image ships (real stereo, 741x500), resized to (H, W)."""
    import cv2
    from skimage.data import stereo_motorcycle

    left, right, _ = stereo_motorcycle()
    if size is None:
        return left, right
    h, w = size
    return tuple(cv2.resize(v, (w, h), interpolation=cv2.INTER_AREA) for v in (left, right))


def _peak_memory() -> tuple[float, str]:
    """(GiB, kind): CUDA peak allocated since the row started, or this process's peak RSS."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30, "cuda"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "rss"


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _set_iters(net: Any, iters: int | None) -> None:
    """Toy runs shorten RAFT-like refinement loops (ptlflow models keep the count in ``iters``)."""
    if iters is not None and hasattr(net, "iters"):
        net.iters = iters


def _steps_per_s(run_dir: Path, warmup: int) -> float:
    """Steps per second from metrics.csv (log_every=1): from step ``warmup`` to the step before the
    last (the last row's time includes the final validation)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        times = {int(r["step"]): float(r["time_s"]) for r in csv.DictReader(f)}
    last = max(times) - 1
    if last <= warmup:
        raise ValueError(f"too few steps logged to time ({sorted(times)})")
    return (last - warmup) / (times[last] - times[warmup])


# ----------------------------------------------------------------------------- rows
def row_flow(name: str, scale: Scale) -> dict[str, Any]:
    """Pairs/s of one ptlflow network through the correspondence backend, fp32 and AMP."""
    import numpy as np
    import torch

    left, right = _real_pair(scale.flow_size)
    # --- project calls
    from tasks.labels.correspondence import build_backend

    backend = build_backend(name, device=_device(), batch_size=max(scale.flow_batches))
    _set_iters(backend.net, scale.flow_iters)

    def run(batch: int) -> list:
        return backend.flow([left] * batch, [right] * batch)
    # ---
    out: dict[str, Any] = {"size": list(scale.flow_size), "pairs_per_s": {}}
    for amp in (False, True):
        key = "amp" if amp else "fp32"
        rates: dict[str, float] = {}
        for batch in scale.flow_batches:
            try:
                with _autocast(amp):
                    seconds = _median_time(lambda: run(batch), scale.warmup, scale.reps)
                    if not rates:  # fp16 can overflow where fp32 does not: say whether the flow stays finite
                        out.setdefault("finite", {})[key] = all(bool(np.isfinite(f).all()) for f in run(1))
            except torch.cuda.OutOfMemoryError:
                torch.cuda.empty_cache()
                out.setdefault("oom_at", {})[key] = batch
                break
            rates[str(batch)] = batch / seconds
        out["pairs_per_s"][key] = rates
    figure = []
    for key, rates in out["pairs_per_s"].items():
        best = max(rates, key=rates.get)
        figure.append(f"{key} b1 {rates['1']:.2f}, best b{best} {rates[best]:.2f} pairs/s")
    out["figure"] = "; ".join(figure)
    return out


def row_process(scale: Scale) -> dict[str, Any]:
    """Seconds per pair of the process stage with a network flow, and the network's share."""
    left, right = _real_pair()
    # --- project calls
    from tasks.labels.process import build_backends, downscale, process_pair
    from tasks.labels.settings import ProcessConfig

    cfg = ProcessConfig(correspondence=PROCESS_BACKEND, device=_device())
    backend, sky_backend = build_backends(cfg)
    net_backend = backend.flow_backend  # FusedBackend's network flow (the GPU part)
    max_side = scale.process_max_side or cfg.max_side
    left, right = downscale(left, max_side), downscale(right, max_side)

    def run():
        return process_pair(left, right, backend, sky_backend, settings=cfg)
    # ---
    _set_iters(net_backend.net, scale.flow_iters)
    spent = [0.0]
    inner = net_backend.flow

    def timed_flow(sources, targets):
        t0 = time.perf_counter()
        result = inner(sources, targets)  # numpy out: the device work is done when it returns
        spent[0] += time.perf_counter() - t0
        return result

    net_backend.flow = timed_flow
    for _ in range(scale.warmup):
        run()
    spent[0] = 0.0
    t0 = time.perf_counter()
    for _ in range(scale.reps):
        result = run()
    per_pair = (time.perf_counter() - t0) / scale.reps
    share = spent[0] / scale.reps / per_pair
    mode = result.info["correspondence"]["mode"]
    return {"seconds_per_pair": per_pair, "network_share": share, "size": [left.shape[0], left.shape[1]],
            "mode": mode, "timings": result.timings,
            "figure": f"{per_pair:.2f} s/pair at {left.shape[1]}x{left.shape[0]}, network {100 * share:.0f}% "
                      f"(fused mode: {mode}; random weights)"}


def row_sky(scale: Scale, tmp: Path) -> dict[str, Any]:
    """Seconds per image of the SegFormer sky network + dense CRF (and mmseg when installed)."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    image = _real_pair(scale.sky_size)[0]
    labels = {i: ("sky" if i == 2 else f"class{i}") for i in range(150)}  # ADE20K: sky is class 2
    config = SegformerConfig(num_labels=150, id2label=labels, label2id={v: k for k, v in labels.items()},
                             **scale.segformer)
    SegformerForSemanticSegmentation(config).save_pretrained(tmp / "segformer")
    # --- project calls
    from tasks.labels.settings import ProcessConfig
    from tasks.labels.sky import build_sky, detect_sky

    cfg = ProcessConfig()
    extra = {"input_side": scale.sky_input_side} if scale.sky_input_side else {}
    backend = build_sky("segformer", checkpoint=str(tmp / "segformer"), device=_device(), **extra)

    def whole():
        return detect_sky(backend, image, crf=cfg.crf, crf_iterations=cfg.crf_iterations,
                          crf_max_side=cfg.crf_max_side)
    # ---
    total = _median_time(whole, scale.warmup, scale.reps)
    net = _median_time(lambda: backend.probability(image), 0, scale.reps)
    out: dict[str, Any] = {"segformer_s_per_image": total, "segformer_network_s": net,
                           "size": list(scale.sky_size)}
    figure = f"segformer+CRF {total:.3f} s/img (network {net:.3f} s)"
    try:
        out["mmseg_s_per_image"] = _mmseg_sky(scale, tmp, image, cfg)
        figure += f"; mmseg+CRF {out['mmseg_s_per_image']:.3f} s/img"
    except ImportError:
        out["mmseg"] = "not installed"
        figure += "; mmseg not installed"
    out["figure"] = figure
    return out


def _mmseg_sky(scale: Scale, tmp: Path, image, cfg) -> float:
    """A random mmseg FCN (the layout tests/tasks/test_sky.py uses) through the mmseg sky backend."""
    import importlib.util

    if importlib.util.find_spec("mmseg") is None or importlib.util.find_spec("mmcv.ops") is None:
        raise ImportError("mmseg")
    from mmengine import Config
    from mmengine.runner import save_checkpoint
    from mmseg.apis import init_model

    from tasks.labels.sky import build_sky, detect_sky

    channels = 512 if scale.mmseg_depth < 50 else 2048
    model_cfg = Config(dict(model=dict(
        type="EncoderDecoder",
        data_preprocessor=dict(type="SegDataPreProcessor", mean=[123.675, 116.28, 103.53],
                               std=[58.395, 57.12, 57.375], bgr_to_rgb=True),
        backbone=dict(type="ResNetV1c", depth=scale.mmseg_depth, num_stages=4, out_indices=(3,),
                      strides=(1, 2, 2, 2)),
        decode_head=dict(type="FCNHead", in_channels=channels, channels=256, num_convs=1, num_classes=150,
                         in_index=0, norm_cfg=None),
        test_cfg=dict(mode="whole")),
        test_pipeline=[dict(type="LoadImageFromFile"), dict(type="PackSegInputs")]))
    cfg_path = tmp / "fcn.py"
    model_cfg.dump(str(cfg_path))
    model = init_model(str(cfg_path), None, device="cpu")
    save_checkpoint({"meta": {"dataset_meta": {"classes": [f"c{i}" for i in range(150)]}},
                     "state_dict": model.state_dict()}, str(tmp / "fcn.pth"))
    backend = build_sky("mmseg", checkpoint=str(tmp / "fcn.pth"), mmseg_config=str(cfg_path),
                        device=_device())
    return _median_time(lambda: detect_sky(backend, image, crf=cfg.crf, crf_iterations=cfg.crf_iterations,
                                           crf_max_side=cfg.crf_max_side), scale.warmup, scale.reps)


def _train_run(data: Path, run_dir: Path, overrides: dict[str, Any], iterations: int,
               device: str = "auto") -> dict[str, Any]:
    """One ``train`` call: TrainConfig's defaults (the paper's setting) < ``overrides`` < timing needs."""
    # --- project calls
    from model.config import TrainConfig
    from model.train import train

    kwargs = {**TrainConfig().model_dump(), "pretrained": False, **overrides, "iterations": iterations,
              "epochs": None, "val_every": 10**9, "checkpoint_every": 10**9, "log_every": 1,
              "tensorboard": False, "device": device}
    train(data=data, run_dir=run_dir, config=TrainConfig(**kwargs), progress=False)
    # ---
    return kwargs


def grid_runs() -> dict[str, list[dict[str, Any]]]:
    """The ``train`` keyword arguments of every run of each grid in configs/experiments/*.yaml."""
    # --- project calls
    from model.experiment import expand_grid, load_experiment, train_kwargs

    grids = {}
    for path in sorted(EXPERIMENTS.glob("*.yaml")):
        cfg = load_experiment(path)
        grids[path.stem] = [train_kwargs(cfg, setting) for setting in expand_grid(cfg)]
    # ---
    return grids


def grid_hours(grids: dict[str, list[dict[str, Any]]], speeds: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Projected hours of each grid: every run's iterations at its architecture's measured steps/s.

    Loss, pairs per image and training-set size vary in the grids too; they change the step time
    little (pair sampling and the loss are a few percent of a step: benchmarks/bench_train.py)."""
    out = {}
    for name, runs in grids.items():
        seconds = sum(kw["iterations"] / speeds[kw["arch"]] for kw in runs)
        out[name] = {"runs": len(runs), "iterations": sum(kw["iterations"] for kw in runs),
                     "hours": seconds / 3600, "archs": sorted({kw["arch"] for kw in runs})}
    return out


def row_train(scale: Scale, tmp: Path) -> dict[str, Any]:
    """Steps/s and peak memory of the paper's training; hours of one run and of each grid."""
    import torch

    from model.config import TrainConfig
    from model.data import make_synthetic_export

    n, size = scale.train_data
    data = make_synthetic_export(tmp / "data", n=n, size=size, seed=0, val_fraction=0.1)
    t0 = time.perf_counter()
    kwargs = _train_run(data, tmp / "run", scale.train_overrides, scale.train_warmup + scale.train_steps + 1)
    wall = time.perf_counter() - t0
    speed = _steps_per_s(tmp / "run", scale.train_warmup)
    peak, kind = _peak_memory()
    speeds = {kwargs["arch"]: speed}
    runs = grid_runs()
    for arch in sorted({kw["arch"] for grid in runs.values() for kw in grid} - set(speeds)):
        if torch.cuda.is_available():  # the other architectures the grids train, briefly
            torch.cuda.empty_cache()
        _train_run(data, tmp / f"run-{arch}", {**scale.train_overrides, "arch": arch},
                   scale.train_warmup + scale.other_arch_steps + 1)
        speeds[arch] = _steps_per_s(tmp / f"run-{arch}", scale.train_warmup)
    one_run = TrainConfig().iterations / speed / 3600
    grids = grid_hours(runs, speeds)
    figure = (f"{speed:.2f} steps/s ({speed * kwargs['batch_size']:.1f} img/s); 40K run {one_run:.2f} h; "
              + ", ".join(f"{k} {v['hours']:.1f} h/{v['runs']} runs" for k, v in grids.items()))
    return {"steps_per_s": speed, "arch": kwargs["arch"], "input_size": kwargs["input_size"],
            "batch_size": kwargs["batch_size"], "n_pairs": kwargs["n_pairs"], "loss": kwargs["loss"],
            "amp": kwargs["amp"], "channels_last": kwargs["channels_last"], "train_seconds": wall,
            "peak_train_gib": peak, "mem": kind, "arch_steps_per_s": speeds,
            "hours_one_run": one_run, "run_iterations": TrainConfig().iterations, "grids": grids,
            "figure": figure}


def row_ddp(scale: Scale, tmp: Path, timeout: int) -> dict[str, Any]:
    """torchrun, two processes, a few steps of ``train``; gradient checksums compared across ranks."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__,
           "--ddp-worker", str(tmp)] + (["--toy"] if scale is TOY else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).splitlines()
        tail = [ln for ln in lines if "Error" in ln] or ["(no error line)"]
        raise RuntimeError(f"torchrun exited {proc.returncode}: {tail[-1][:250]}")
    ranks = [json.loads((tmp / f"rank{r}.json").read_text()) for r in (0, 1)]
    a, b = ranks[0]["checksums"], ranks[1]["checksums"]
    if not a or len(a) != len(b):
        raise RuntimeError(f"ranks made {len(a)} and {len(b)} optimizer steps")
    diff = max(abs(x - y) / max(abs(x), abs(y), 1e-30) for sa, sb in zip(a, b) for x, y in zip(sa, sb))
    if diff > 1e-6:
        raise RuntimeError(f"gradients differ across ranks: max relative difference {diff:.3g}")
    speed = ranks[0]["steps_per_s"]
    first = ranks[0]
    return {"world_size": first["world_size"], "backend": first["backend"], "device": first["device"],
            "steps": len(a), "max_relative_grad_diff": diff, "steps_per_s": speed,
            "peak_gib": max(r["peak_gib"] for r in ranks), "mem": ranks[0]["mem"],
            "figure": f"2 ranks over {ranks[0]['backend']} on {ranks[0]['device']}: gradients agree on "
                      f"{len(a)} steps (max rel. diff {diff:.1g}); {speed:.2f} steps/s"}


def ddp_worker(out_dir: Path, scale: Scale) -> int:
    """One torchrun rank: ``train`` with a global optimizer hook recording a gradient checksum per step."""
    import torch
    import torch.distributed as dist
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    from model.data import make_synthetic_export

    rank = int(os.environ["RANK"])
    device = "auto"  # train() joins the torchrun group itself: NCCL on CUDA, gloo on CPU
    one_gpu = torch.cuda.is_available() and torch.cuda.device_count() < 2
    if one_gpu:  # NCCL refuses two ranks on one device: both ranks share cuda:0 over gloo
        dist.init_process_group("gloo")
        device = "cuda:0"
    checksums: list[list[float]] = []
    backend: list[str] = []

    def record(optimizer, args, kwargs) -> None:
        grads = [p.grad.detach().double() for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        total, squares = sum(g.sum() for g in grads), sum((g * g).sum() for g in grads)
        checksums.append(torch.stack([total, squares]).tolist())
        if not backend:
            backend.append(str(dist.get_backend()))

    n, size = scale.train_data  # each rank writes its own copy (same seed, same items): no write race
    data = make_synthetic_export(out_dir / f"data{rank}", n=min(n, 32), size=size, seed=0, val_fraction=0.1)
    handle = register_optimizer_step_pre_hook(record)
    warmup = 1
    try:
        _train_run(data, out_dir / "run", scale.ddp_overrides, warmup + scale.ddp_steps + 1, device=device)
    finally:
        handle.remove()
    speed = _steps_per_s(out_dir / "run", warmup) if rank == 0 else float("nan")
    peak, kind = _peak_memory()
    where = f"cuda:{os.environ['LOCAL_RANK']}" if torch.cuda.is_available() else "cpu"
    where = "cuda:0" if one_gpu else where
    (out_dir / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world_size": int(os.environ["WORLD_SIZE"]), "checksums": checksums,
        "backend": backend[0] if backend else "?", "device": where, "steps_per_s": speed,
        "peak_gib": peak, "mem": kind}))
    if one_gpu:
        dist.destroy_process_group()
    return 0


def row_evaluate(scale: Scale, tmp: Path) -> dict[str, Any]:
    """Images/s of WKDR (generated export) and WHDR (generated DIW csv) scoring of a checkpoint."""
    import cv2
    import numpy as np

    from model.benchmarks import DiwSample, write_diw_csv
    from model.checkpoint import NORMALIZATION, save_checkpoint
    from model.data import make_synthetic_export
    from model.registry import build_model

    n_val, n_train = scale.eval_images
    data = make_synthetic_export(tmp / "bench", n=n_val + n_train, size=scale.eval_size, seed=1,
                                 val_fraction=n_val / (n_val + n_train))
    ckpt = save_checkpoint(tmp / "model.pt", model=build_model(scale.eval_arch, **scale.eval_arch_kwargs),
                           meta={"task": "relative_depth", "arch": scale.eval_arch,
                                 "arch_kwargs": scale.eval_arch_kwargs, "normalization": NORMALIZATION,
                                 "input_size": list(scale.eval_size)})
    rng = np.random.default_rng(0)
    diw = []
    for row in csv.DictReader(open(data / "manifest.csv", newline="")):
        if row["split"] != "val":
            continue
        rd = cv2.imread(str(data / "RDs" / f"{row['id']}.png"), cv2.IMREAD_UNCHANGED)
        (ya, yb), (xa, xb) = rng.integers(0, rd.shape[0], 2), rng.integers(0, rd.shape[1], 2)
        relation = "<" if rd[ya, xa] <= rd[yb, xb] else ">"
        diw.append(DiwSample(f"{row['id']}.jpg", int(ya), int(xa), int(yb), int(xb), relation, rd.shape[1],
                             rd.shape[0]))
    write_diw_csv(tmp / "diw.csv", diw)
    # --- project calls
    from model.config import EvaluateConfig
    from model.evaluate import evaluate_checkpoint

    cfg = EvaluateConfig()
    common = dict(device=_device(), max_side=cfg.max_side, sigma=cfg.sigma, seed=cfg.seed)
    t0 = time.perf_counter()
    dense = evaluate_checkpoint("redweb", data, ckpt, images=data / "imgs", chen_val_images=n_train,
                                pairs_per_image=cfg.pairs_per_image, **common)
    t_dense = time.perf_counter() - t0
    t0 = time.perf_counter()
    whdr = evaluate_checkpoint("diw", tmp / "diw.csv", ckpt, images=data / "imgs", **common)
    t_diw = time.perf_counter() - t0
    # ---
    return {"wkdr_images_per_s": n_val / t_dense, "whdr_images_per_s": n_val / t_diw, "images": n_val,
            "chen_val_images": n_train, "size": list(scale.eval_size), "arch": scale.eval_arch,
            "wkdr": dense.get("wkdr"), "whdr": whdr.get("whdr"),
            "figure": f"WKDR {n_val / t_dense:.1f} img/s ({n_val} + {n_train} Chen-tau images), "
                      f"WHDR {n_val / t_diw:.1f} img/s, at {scale.eval_size[1]}x{scale.eval_size[0]}"}


# ----------------------------------------------------------------------------- running rows
def run_row(name: str, scale: Scale, timeout: int) -> dict[str, Any]:
    """One row in this process: its figures plus status, seconds and peak memory."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix=f"bench_gpu_{name}_") as tmp:
            if name in FLOW_ROWS:
                out = row_flow(name, scale)
            elif name == "process":
                out = row_process(scale)
            elif name == "sky":
                out = row_sky(scale, Path(tmp))
            elif name == "train":
                out = row_train(scale, Path(tmp))
            elif name == "ddp":
                out = row_ddp(scale, Path(tmp), timeout)
            elif name == "evaluate":
                out = row_evaluate(scale, Path(tmp))
            else:
                raise KeyError(f"unknown row {name!r}; rows: {', '.join(ROWS)}")
        status = "ok"
    except Exception as exc:  # noqa: BLE001 - a failing row is a result; the other rows go on
        out, status = {}, _one_line(exc)
    peak, kind = _peak_memory()
    return {"name": name, "status": status, "seconds": round(time.perf_counter() - t0, 2),
            "peak_mem_gib": round(peak, 3), "mem": kind, "figure": out.pop("figure", ""), **out}


def child_main(rows: list[str], scale: Scale, out_file: Path) -> int:
    """Run ``rows`` in turn, appending one JSON line per row to ``out_file`` as each ends."""
    for name in rows:
        result = run_row(name, scale, scale.timeouts.get(name, 300))
        with open(out_file, "a") as f:
            f.write(json.dumps(result, default=str) + "\n")
    return 0


def run_group(rows: list[str], scale: Scale, toy: bool, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """Run rows in a child process; a crash or hang costs the running row, the rest get a fresh child."""
    results: list[dict[str, Any]] = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    if toy:  # one thread: the smoke run shares a small CPU; spinning OpenMP threads only add contention
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    while rows:
        with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
            out_file = Path(tmp) / "rows.jsonl"
            cmd = [sys.executable, __file__, "--child", ",".join(rows), "--child-out", str(out_file)]
            timeout = sum(scale.timeouts.get(r, 300) for r in rows)
            log(f"running {', '.join(rows)} (limit {timeout} s)")
            t0 = time.perf_counter()
            # its own session: on a timeout the whole tree goes (torchrun's workers included)
            proc = subprocess.Popen(cmd + (["--toy"] if toy else []), env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
            try:
                _, err = proc.communicate(timeout=timeout)
                failure = f"child exited {proc.returncode}: " + (err.strip().splitlines() or [""])[-1][:200]
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                failure = f"timed out (group limit {timeout} s)"
            done = [json.loads(ln) for ln in out_file.read_text().splitlines()] if out_file.exists() else []
        results.extend(done)
        rows = rows[len(done):]
        if rows:  # the first unreported row was running when the child died
            results.append({"name": rows[0], "status": failure, "seconds": round(time.perf_counter() - t0, 2),
                            "peak_mem_gib": None, "mem": None, "figure": ""})
            rows = rows[1:]
    return results


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()} (torch {torch.__version__})"
    return f"cpu, {os.cpu_count()} cores (torch {torch.__version__})"


def format_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'row':<11} {'status':<10} {'seconds':>8} {'peak GiB':>9}  figure"]
    for r in rows:
        mark = "" if r.get("mem") == "cuda" else "*"
        mem = "" if r.get("peak_mem_gib") is None else f"{r['peak_mem_gib']:.2f}{mark}"
        status = r["status"] if r["status"] == "ok" else "FAILED"
        lines.append(f"{r['name']:<11} {status:<10} {r['seconds']:>8.1f} {mem:>9}  "
                     f"{r['figure'] if r['status'] == 'ok' else r['status']}")
    if any(r.get("mem") == "rss" for r in rows):
        lines.append("* peak RSS of the row's child process (no CUDA); shared by the flow rows")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--toy", action="store_true", help="CPU, toy sizes: the same code paths in ~1 min")
    parser.add_argument("--json", action="store_true", help="print the JSON document on stdout (no table)")
    parser.add_argument("--out", type=Path, help="also write the JSON document here (after every group)")
    parser.add_argument("--only", help=f"comma-separated rows (default: all of {', '.join(ROWS)})")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    scale = TOY if args.toy else FULL
    if args.ddp_worker:
        return ddp_worker(args.ddp_worker, scale)
    if args.child:
        return child_main(args.child.split(","), scale, args.child_out)
    import torch

    if not args.toy and not torch.cuda.is_available():
        print("bench_gpu: no CUDA device here; run it on a GPU machine, or pass --toy for the CPU smoke run",
              file=sys.stderr)
        return 2
    wanted = ROWS if not args.only else tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = sorted(set(wanted) - set(ROWS))
    if unknown:
        parser.error(f"unknown rows {unknown}; rows: {', '.join(ROWS)}")
    doc: dict[str, Any] = {"device": device_name(), "toy": args.toy, "rows": []}

    def log(text: str) -> None:
        print(f"[bench_gpu] {text}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    for group in GROUPS:
        rows = [name for name in group if name in wanted]
        if rows:
            doc["rows"].extend(run_group(rows, scale, args.toy, log))
            doc["seconds"] = round(time.perf_counter() - t0, 1)
            if args.out:
                args.out.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    if args.json:
        print(json.dumps(doc, indent=2, default=str))
    else:
        print(f"device: {doc['device']}{' (toy sizes)' if args.toy else ''}; {doc['seconds']} s in all")
        print(format_table(doc["rows"]))
    return 0 if all(r["status"] == "ok" for r in doc["rows"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
