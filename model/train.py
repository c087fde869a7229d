"""Training loop for relative-depth networks (plain function; no Prefect).

``train(data=..., run_dir=..., arch="resnet50_fusion", ...)`` trains on a dataset folder (our export,
the ReDWeb release or HR-WSI; see :mod:`model.data`) with online pair sampling and the improved
ranking loss, and writes into ``run_dir``:

    model.pt               final weights + meta (see :mod:`model.checkpoint`); what the CLI prints
    checkpoints/last.pt    resumable: also optimizer, scheduler, AMP scaler, RNG states and the step
    metrics.csv            one row per logged step (columns :data:`METRIC_COLUMNS`)
    tb/                    TensorBoard event files (same scalars)
    train_config.yaml      the effective arguments, as resolved (device, world size, steps, ...)

Exact resume: every random choice is a function of ``(seed, step)`` or ``(seed, epoch, index)``:
the data order of an epoch, each sample's crop/flip, each step's pairs. A run restarted from
``checkpoints/last.pt`` therefore continues with exactly the batches and pairs the uninterrupted run
would have used, and (same hardware, same thread count) ends with identical weights. The global
python/numpy/torch RNG states are saved and restored as well, for code that uses them.

Distributed: launched by ``torchrun --nproc_per_node=N -m model.train ...`` the same code runs
DistributedDataParallel (NCCL on GPU, gloo on CPU); each rank takes every N-th item of the epoch's
permutation, rank 0 validates, logs and writes checkpoints.
"""
from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from model.checkpoint import (
    NORMALIZATION,
    OUTPUT_DESCRIPTION,
    code_version,
    load_checkpoint,
    save_checkpoint,
    unwrap,
)
from model.data import CenterCrop, RandomCropFlip, dataset_fingerprint, detect_layout, open_dataset
from model.losses import PAIR_LOSSES, PIXEL_LOSSES, improved_ranking_loss, pixel_l1_loss, pixel_l2_loss
from model.registry import build_model
from model.sampling import ordinal_error, sample_pairs
from core.rules import resolve_device

log = logging.getLogger(__name__)

METRIC_COLUMNS = (
    "step", "epoch", "time_s", "lr", "train_loss", "train_ordinal_error", "images_per_s",
    "val_loss", "val_ordinal_error", "val_pairs",
)  # fmt: skip
OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("poly", "cosine", "constant")
_TB_TAGS = {
    "train_loss": "train/loss",
    "train_ordinal_error": "train/ordinal_error",
    "lr": "train/lr",
    "images_per_s": "train/images_per_s",
    "val_loss": "val/loss",
    "val_ordinal_error": "val/ordinal_error",
}
_VAL_SEED_OFFSET = 1_000_003  # validation pairs are drawn from a fixed stream, the same at every validation


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train` produced."""

    run_dir: Path
    checkpoint: Path  # run_dir/model.pt: final weights + meta
    last_checkpoint: Path  # run_dir/checkpoints/last.pt: resumable
    step: int
    metrics: dict[str, float] = field(default_factory=dict)  # last validation (may be empty)


# ----------------------------------------------------------------------------- small helpers


def _derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across runs and platforms."""
    return int(np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0] >> 1)


def _plain(value: Any) -> Any:
    """Paths -> str, tuples -> lists, recursively: YAML- and pickle-friendly config values."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def _resolve_device(device: str, local_rank: int) -> torch.device:
    return torch.device(resolve_device(device, local_rank))


def _epoch_batches(
    n_items: int, *, epoch: int, seed: int, batch_size: int, rank: int, world_size: int
) -> list[list[tuple[int, int]]]:
    """This rank's batches of ``(index, augmentation seed)`` for one epoch.

    The permutation depends on (seed, epoch) only; it is padded by wrapping so that every rank gets
    the same number of items (DDP needs equal step counts) and every batch is full.
    """
    perm = np.random.default_rng(_derive_seed(seed, epoch, 0xDA7A)).permutation(n_items).tolist()
    per_rank = math.ceil(n_items / world_size)
    padded = (perm * math.ceil(per_rank * world_size / n_items))[: per_rank * world_size]
    mine = padded[rank::world_size]
    # Fill the last batch by wrapping too: a batch of one breaks BatchNorm at small inputs, and full
    # batches keep the per-step cost constant.
    mine = (mine * math.ceil(batch_size / len(mine) + 1))[: math.ceil(len(mine) / batch_size) * batch_size]
    keys = [(int(i), _derive_seed(seed, epoch, int(i), 0xA06)) for i in mine]
    return [keys[k : k + batch_size] for k in range(0, len(keys), batch_size)]


def steps_per_epoch(n_items: int, batch_size: int, world_size: int = 1) -> int:
    return math.ceil(math.ceil(n_items / world_size) / batch_size)


def _lr_lambda(schedule: str, total_steps: int):
    if schedule == "poly":  # the usual segmentation/depth schedule: (1 - t)^0.9
        return lambda step: max(0.0, 1.0 - step / max(1, total_steps)) ** 0.9
    if schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    if schedule == "constant":
        return lambda step: 1.0
    raise ValueError(f"unknown lr_schedule {schedule!r}; known: {LR_SCHEDULES}")


def _make_optimizer(
    model: nn.Module, *, name: str, lr: float, backbone_lr_mult: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    """Two parameter groups: the backbone gets ``lr * backbone_lr_mult`` only when it is pretrained."""
    net = unwrap(model)
    if hasattr(net, "backbone_parameters") and getattr(net, "backbone_pretrained", False):
        groups = [
            {"params": net.backbone_parameters(), "lr": lr * backbone_lr_mult, "name": "backbone"},
            {"params": net.head_parameters(), "lr": lr, "name": "head"},
        ]
    else:
        groups = [{"params": list(net.parameters()), "lr": lr, "name": "all"}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; known: {OPTIMIZERS}")


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def compute_loss(
    pred: torch.Tensor,
    batch: dict[str, Any],
    *,
    loss: str = "improved_ranking",
    n_pairs: int = 3000,
    sigma: float = 0.02,
    drop_ratio: float = 0.25,
    edge_fraction: float = 0.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, int, int]:
    """Sample pairs for the batch and compute the loss.

    Args:
        pred: (B,1,H,W) network output; batch: the sample schema with (B,...) tensors on pred's device.
    Returns:
        (scalar loss, misordered unequal pairs, unequal pairs) on this batch's sampled pairs.
    """
    pred = pred.float()  # losses in fp32 under AMP
    depth, mask = batch["depth"], batch["mask"]
    pairs = sample_pairs(
        depth, mask, n_pairs, sigma=sigma, generator=generator, image=batch["image"], edge_fraction=edge_fraction
    )
    wrong, unequal = ordinal_error(pred, pairs)
    if loss in PAIR_LOSSES:
        z_i, z_j, labels = pairs.gather(pred)
        value = improved_ranking_loss(z_i, z_j, labels, drop_ratio if loss == "improved_ranking" else 0.0)
    elif loss == "l1":
        value = pixel_l1_loss(pred, depth, mask)
    elif loss == "l2":
        value = pixel_l2_loss(pred, depth, mask)
    else:
        raise ValueError(f"unknown loss {loss!r}; known: {PAIR_LOSSES + PIXEL_LOSSES}")
    return value, wrong, unequal


def _to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    out = dict(batch)
    image = batch["image"].to(device, non_blocking=True)
    out["image"] = image.contiguous(memory_format=torch.channels_last) if channels_last else image
    out["depth"] = batch["depth"].to(device, non_blocking=True)
    out["mask"] = batch["mask"].to(device, non_blocking=True)
    return out


class _MetricsLog:
    """metrics.csv (+ TensorBoard) writer on rank 0. On resume, rows after the resumed step are dropped."""

    def __init__(self, run_dir: Path, resume_step: int | None, tensorboard: bool) -> None:
        self.path = run_dir / "metrics.csv"
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # tensorboard is a core dependency; say so if it is missing
                raise ImportError("TensorBoard logging needs the 'tensorboard' package (pip install tensorboard)") from exc
            self.writer = SummaryWriter(
                str(run_dir / "tb"), purge_step=None if resume_step is None else resume_step + 1
            )

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=METRIC_COLUMNS).writerow({k: row.get(k, "") for k in METRIC_COLUMNS})
        if self.writer is not None:
            for key, tag in _TB_TAGS.items():
                value = row.get(key, "")
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(tag, value, row["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@torch.no_grad()
def validate(
    model: nn.Module,
    dataset,
    *,
    device: torch.device,
    batch_size: int,
    n_pairs: int,
    sigma: float,
    loss: str,
    drop_ratio: float,
    seed: int,
    channels_last: bool = False,
    amp: bool = False,
    num_workers: int = 0,
) -> dict[str, float]:
    """Ordinal error (misordered unequal pairs / unequal pairs) and loss on fixed sampled pairs.

    ``dataset`` should use a deterministic transform (e.g. :class:`~model.data.CenterCrop`); the
    pairs come from a generator seeded by ``seed`` and the batch index, so every validation of a run
    scores the same pairs.
    """
    from torch.utils.data import DataLoader

    net = unwrap(model)
    was_training = net.training
    net.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    wrong = unequal = 0
    loss_sum, batches = 0.0, 0
    for k, batch in enumerate(loader):
        batch = _to_device(batch, device, channels_last)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            pred = net(batch["image"])
        generator = torch.Generator().manual_seed(_derive_seed(seed, _VAL_SEED_OFFSET, k))
        value, w, u = compute_loss(
            pred, batch, loss=loss, n_pairs=n_pairs, sigma=sigma, drop_ratio=drop_ratio, generator=generator
        )
        wrong, unequal = wrong + w, unequal + u
        loss_sum, batches = loss_sum + float(value), batches + 1
    net.train(was_training)
    return {
        "val_ordinal_error": wrong / unequal if unequal else float("nan"),
        "val_loss": loss_sum / max(1, batches),
        "val_pairs": float(unequal),
    }


# ----------------------------------------------------------------------------- the loop, in parts
# train() = _setup_distributed -> _open_data -> _build_training -> _resume -> _wrap_ddp, then per step
# _train_step and _validate_and_checkpoint; the final weights go to run_dir/model.pt.


@dataclass
class _Env:
    """Where this process trains: torchrun's world (WORLD_SIZE/RANK/LOCAL_RANK), device, CUDA-only features."""

    world_size: int
    rank: int
    device: torch.device
    use_amp: bool
    use_channels_last: bool
    we_initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class _Loop:
    """The mutable training state: what ``checkpoints/last.pt`` saves and a resume restores."""

    model: nn.Module
    opt: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    ddp_model: nn.Module | None = None
    step: int = 0
    running_loss: float | None = None


@dataclass
class _Interval:
    """Counters since the last metrics row."""

    t0: float
    images: int = 0
    wrong: int = 0
    unequal: int = 0


@dataclass(frozen=True)
class _Data:
    layout: str
    train_set: Any
    val_set: Any
    steps_per_epoch: int
    total_steps: int
    fingerprint: str | None


def _setup_distributed(device: str, *, amp: bool, channels_last: bool) -> _Env:
    """Join the torchrun process group when WORLD_SIZE > 1 (and none is initialised yet)."""
    import torch.distributed as dist

    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    dev = _resolve_device(device, local_rank)
    env = _Env(world_size=world_size, rank=rank, device=dev, use_amp=amp and dev.type == "cuda",
               use_channels_last=channels_last and dev.type == "cuda")
    if world_size > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        env.we_initialised = True
    return env


def _resume_path(resume: str | os.PathLike | bool | None, last_path: Path, *, is_main: bool) -> Path | None:
    """The checkpoint to resume from: ``True``/``"auto"`` = ``last_path`` if it exists; a path must exist."""
    if resume is True or resume == "auto":
        if not last_path.is_file():
            if is_main:
                log.info("no checkpoint in %s to resume from: starting a new run", last_path.parent)
            return None
        return last_path
    if resume:
        path = Path(resume)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint to resume not found: {path}")
        return path
    return None


def _open_data(data, size: tuple[int, int], *, layout: str | None, val_fraction: float, flip_p: float,
               batch_size: int, world_size: int, iterations: int | None, epochs: int | None,
               n_train_images: int | None = None, is_main: bool = True) -> _Data:
    """Train and val datasets (``n_train_images``: a fixed seeded subset of the training items), step counts."""
    layout = layout or detect_layout(data)
    train_set = open_dataset(data, "train", RandomCropFlip(size, flip_p), layout=layout, val_fraction=val_fraction)
    val_set = open_dataset(data, "val", CenterCrop(size), layout=layout, val_fraction=val_fraction)
    if len(train_set) == 0:
        raise ValueError(f"{data}: no training items (layout {layout})")
    if n_train_images is not None:
        if n_train_images < 1:
            raise ValueError("n_train_images must be >= 1")
        if n_train_images > len(train_set) and is_main:
            log.warning("n_train_images=%d but the dataset has %d training items: using all", n_train_images,
                        len(train_set))
        order = np.random.default_rng(_derive_seed(0x5B5E7)).permutation(len(train_set.ids))
        train_set.ids = [train_set.ids[i] for i in sorted(order[:n_train_images])]
    spe = steps_per_epoch(len(train_set), batch_size, world_size)
    total_steps = iterations if iterations is not None else epochs * spe
    return _Data(layout, train_set, val_set, spe, total_steps, dataset_fingerprint(data))


def _build_training(env: _Env, *, arch: str, arch_kwargs: dict[str, Any], pretrained: bool,
                    weights_path: str | None, optimizer: str, lr: float, backbone_lr_mult: float, momentum: float,
                    weight_decay: float, lr_schedule: str, total_steps: int, seed: int) -> _Loop:
    """Model (initial weights from ``seed`` only), optimizer with parameter groups, schedule, AMP scaler."""
    torch.manual_seed(seed)  # initial weights depend on the seed only
    model = build_model(arch, pretrained=pretrained, weights_path=weights_path, **arch_kwargs).to(env.device)
    if env.use_channels_last:
        model = model.to(memory_format=torch.channels_last)
    if not getattr(model, "backbone_pretrained", False) and env.is_main:
        log.warning("%s: backbone not pretrained: training from scratch", arch)
    opt = _make_optimizer(
        model, name=optimizer, lr=lr, backbone_lr_mult=backbone_lr_mult, momentum=momentum, weight_decay=weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(lr_schedule, total_steps))
    scaler = torch.amp.GradScaler("cuda", enabled=env.use_amp)
    return _Loop(model=model, opt=opt, scheduler=scheduler, scaler=scaler)


def _resume(loop: _Loop, path: Path, *, arch: str, fingerprint: str | None, is_main: bool) -> None:
    """Restore weights, optimizer, schedule, scaler, RNG streams and the step from a ``last.pt``."""
    payload = load_checkpoint(path, map_location="cpu")
    meta = payload["meta"]
    if "training" not in payload:
        raise ValueError(f"{path} holds weights only; resume from RUN_DIR/checkpoints/last.pt")
    if meta["arch"] != arch:
        raise ValueError(f"{path} holds {meta['arch']!r}, not {arch!r}")
    if meta.get("dataset", {}).get("manifest_sha256") != fingerprint and is_main:
        log.warning("resuming on a dataset whose manifest differs from the checkpoint's")
    unwrap(loop.model).load_state_dict(payload["model"])
    state = payload["training"]
    loop.opt.load_state_dict(state["optimizer"])
    loop.scheduler.load_state_dict(state["scheduler"])
    loop.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"])
    loop.step, loop.running_loss = int(state["step"]), state.get("running_loss")
    if is_main:
        log.info("resumed from %s at step %d", path, loop.step)


def _wrap_ddp(loop: _Loop, env: _Env) -> None:
    loop.ddp_model = loop.model
    if env.world_size > 1:
        loop.ddp_model = nn.parallel.DistributedDataParallel(
            loop.model, device_ids=[env.device.index] if env.device.type == "cuda" else None)


def _save_last(loop: _Loop, last_path: Path, meta: dict[str, Any]) -> None:
    """``checkpoints/last.pt``: weights + meta + everything a resume needs."""
    training = {
        "optimizer": loop.opt.state_dict(),
        "scheduler": loop.scheduler.state_dict(),
        "scaler": loop.scaler.state_dict(),
        "rng": _rng_state(),
        "step": loop.step,
        "running_loss": loop.running_loss,
    }
    save_checkpoint(last_path, model=loop.model, meta=meta, training=training)


def _train_step(loop: _Loop, batch: dict[str, Any], env: _Env, *, seed: int, loss: str, n_pairs: int, sigma: float,
                drop_ratio: float, edge_fraction: float, grad_clip: float | None) -> tuple[int, int]:
    """One optimisation step on ``batch`` (already on the device); returns (misordered, unequal) pairs."""
    generator = torch.Generator().manual_seed(_derive_seed(seed, loop.step, env.rank, 0x9A1))
    with torch.autocast(env.device.type, enabled=env.use_amp):
        pred = loop.ddp_model(batch["image"])
    value, wrong, unequal = compute_loss(
        pred, batch, loss=loss, n_pairs=n_pairs, sigma=sigma, drop_ratio=drop_ratio,
        edge_fraction=edge_fraction, generator=generator,
    )  # fmt: skip
    loop.opt.zero_grad(set_to_none=True)
    loop.scaler.scale(value).backward()
    if grad_clip:
        loop.scaler.unscale_(loop.opt)
        nn.utils.clip_grad_norm_(loop.model.parameters(), grad_clip)
    loop.scaler.step(loop.opt)
    loop.scaler.update()
    loop.scheduler.step()
    loop.step += 1
    loss_value = float(value.detach())
    loop.running_loss = loss_value if loop.running_loss is None else 0.9 * loop.running_loss + 0.1 * loss_value
    return wrong, unequal


def _validate_and_checkpoint(loop: _Loop, env: _Env, interval: _Interval, *, total_steps: int, spe: int,
                             t0: float, val_every: int, log_every: int, checkpoint_every: int,
                             run_validation: Callable[[], dict[str, float]], metrics_log: "_MetricsLog | None",
                             last_path: Path, base_meta: dict[str, Any], last_metrics: dict[str, float],
                             bar: Any) -> dict[str, float]:
    """After a step: validate / log a metrics row / save ``last.pt`` when due. Returns the latest val metrics."""
    step = loop.step
    validate_now = step % val_every == 0 or step == total_steps
    log_now = step % log_every == 0 or validate_now
    val_metrics = run_validation() if validate_now else {}
    if val_metrics:
        last_metrics = val_metrics
    if log_now and env.is_main and metrics_log is not None:
        now = time.time()
        row = {
            "step": step,
            "epoch": round(step / spe, 4),
            "time_s": round(now - t0, 3),
            "lr": loop.scheduler.get_last_lr()[-1],
            "train_loss": loop.running_loss,
            "train_ordinal_error": interval.wrong / interval.unequal if interval.unequal else "",
            "images_per_s": interval.images / max(1e-9, now - interval.t0),
            **val_metrics,
        }
        metrics_log.write(row)
        if val_metrics and bar is not None:
            bar.write(f"step {step}: val ordinal error {val_metrics['val_ordinal_error']:.4f}")
        interval.t0, interval.images, interval.wrong, interval.unequal = now, 0, 0, 0
    if (step % checkpoint_every == 0 or step == total_steps) and env.is_main:
        _save_last(loop, last_path, {**base_meta, "step": step, "epoch": step / spe, "metrics": last_metrics})
    if env.world_size > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0 validated / saved; keep ranks in step
    return last_metrics


def train(
    *,
    data: str | os.PathLike,
    run_dir: str | os.PathLike,
    arch: str = "resnet50_fusion",
    arch_kwargs: dict[str, Any] | None = None,
    pretrained: bool = True,
    weights_path: str | None = None,
    layout: str | None = None,
    val_fraction: float = 0.1,
    input_size: int | tuple[int, int] = 384,
    batch_size: int = 8,
    iterations: int | None = None,
    epochs: int | None = None,
    optimizer: str = "sgd",
    lr: float = 0.01,
    backbone_lr_mult: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    lr_schedule: str = "poly",
    loss: str = "improved_ranking",
    drop_ratio: float = 0.25,
    n_pairs: int = 3000,
    sigma: float = 0.02,
    edge_fraction: float = 0.0,
    flip_p: float = 0.5,
    grad_clip: float | None = None,
    val_every: int = 1000,
    checkpoint_every: int = 500,
    log_every: int = 10,
    num_workers: int = 2,
    seed: int = 0,
    device: str = "auto",
    amp: bool = True,
    channels_last: bool = True,
    tensorboard: bool = True,
    progress: bool = True,
    resume: str | os.PathLike | bool | None = None,
    extra_config: dict[str, Any] | None = None,
    n_train_images: int | None = None,
) -> TrainResult:
    """Train ``arch`` on the dataset in ``data``; see the module docstring for the outputs.

    Args:
        data: dataset folder (layout detected unless ``layout`` is given).
        run_dir: output folder (created).
        arch: registry name (:func:`model.registry.list_models`).
        arch_kwargs: more builder keywords (e.g. ``{"channels": 64}`` for a narrower decoder);
            stored in the checkpoint so :func:`model.checkpoint.load_model` rebuilds the same net.
        pretrained / weights_path: ImageNet backbone weights from a file or torchvision's local cache;
            when none are found it logs that it trains from scratch.
        input_size: training crop (H, W) or square side; the paper uses 384.
        iterations / epochs: length of training; give exactly one.
        optimizer: ``sgd`` (default) | ``adam`` | ``adamw``; ``lr`` is the head's learning rate.
        backbone_lr_mult: backbone lr factor, applied only when the backbone is pretrained (0.1).
        lr_schedule: ``poly`` | ``cosine`` | ``constant``.
        loss: ``improved_ranking`` | ``ranking`` | ``l1`` | ``l2``; ``drop_ratio`` for the first.
        n_pairs, sigma, edge_fraction: pair sampling per image (see :func:`model.sampling.sample_pairs`).
        val_every, checkpoint_every, log_every: in steps; validation and a checkpoint also at the end.
        device: ``auto`` (CUDA if available) or a torch device string; AMP and channels-last are
            used only on CUDA.
        resume: a checkpoint path, or True for ``run_dir/checkpoints/last.pt`` if it exists.
        extra_config: more configuration to record in the checkpoint and train_config.yaml.
        n_train_images: train on this many training items only (Fig. 5's sweep over the number of
            images): the first N of a fixed permutation of the ids, so smaller subsets are nested in
            larger ones and do not depend on ``seed``. None = all.

    Returns:
        :class:`TrainResult`.
    """
    import torch.distributed as dist
    import yaml
    from torch.utils.data import DataLoader

    if (iterations is None) == (epochs is None):
        raise ValueError("give exactly one of iterations and epochs")
    if loss not in PAIR_LOSSES + PIXEL_LOSSES:
        raise ValueError(f"unknown loss {loss!r}; known: {PAIR_LOSSES + PIXEL_LOSSES}")
    size = (input_size, input_size) if isinstance(input_size, int) else tuple(int(s) for s in input_size)
    arguments = {k: v for k, v in locals().items() if k not in ("dist", "yaml", "DataLoader", "size")}

    env = _setup_distributed(device, amp=amp, channels_last=channels_last)
    dev, rank, world_size = env.device, env.rank, env.world_size
    run_dir = Path(run_dir)
    last_path = run_dir / "checkpoints" / "last.pt"
    resume_path = _resume_path(resume, last_path, is_main=env.is_main)
    d = _open_data(data, size, layout=layout, val_fraction=val_fraction, flip_p=flip_p, batch_size=batch_size,
                   world_size=world_size, iterations=iterations, epochs=epochs,
                   n_train_images=n_train_images, is_main=env.is_main)
    train_set, val_set, spe, total_steps = d.train_set, d.val_set, d.steps_per_epoch, d.total_steps
    arch_kwargs = dict(arch_kwargs or {})
    loop = _build_training(env, arch=arch, arch_kwargs=arch_kwargs, pretrained=pretrained, weights_path=weights_path,
                           optimizer=optimizer, lr=lr, backbone_lr_mult=backbone_lr_mult, momentum=momentum,
                           weight_decay=weight_decay, lr_schedule=lr_schedule, total_steps=total_steps, seed=seed)
    backbone_pretrained = bool(getattr(loop.model, "backbone_pretrained", False))
    if resume_path is not None:
        _resume(loop, resume_path, arch=arch, fingerprint=d.fingerprint, is_main=env.is_main)
    _wrap_ddp(loop, env)

    effective = _plain({
        **arguments,
        "data": str(Path(data).resolve()),
        "run_dir": str(run_dir.resolve()),
        "resume": str(resume_path) if resume_path else None,
        "input_size": list(size),
        "layout": d.layout,
        "device_resolved": str(dev),
        "world_size": world_size,
        "total_steps": total_steps,
        "steps_per_epoch": spe,
        "amp_used": env.use_amp,
        "channels_last_used": env.use_channels_last,
        "backbone_pretrained": backbone_pretrained,
        "extra_config": extra_config or {},
    })
    base_meta = {
        "task": "relative_depth",
        "arch": arch,
        # Without pretrained/weights_path: the checkpoint holds all weights, loading looks nothing up.
        "arch_kwargs": _plain(arch_kwargs),
        "input_size": list(size),
        "normalization": NORMALIZATION,
        "output": OUTPUT_DESCRIPTION,
        "config": effective,
        "dataset": {
            "path": str(Path(data).resolve()),
            "layout": d.layout,
            "manifest_sha256": d.fingerprint,
            "n_train": len(train_set),
            "n_val": len(val_set),
        },
        "code_version": code_version(),
        "backbone_pretrained": backbone_pretrained,
    }
    metrics_log = None
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "train_config.yaml").write_text(yaml.safe_dump(effective, sort_keys=False))
        metrics_log = _MetricsLog(run_dir, loop.step if resume_path is not None else None, tensorboard)

    def run_validation() -> dict[str, float]:
        if not env.is_main or len(val_set) == 0:
            return {}
        return validate(
            loop.model, val_set, device=dev, batch_size=batch_size, n_pairs=n_pairs, sigma=sigma, loss=loss,
            drop_ratio=drop_ratio, seed=seed, channels_last=env.use_channels_last, amp=env.use_amp,
        )  # fmt: skip

    def batches_from(start: int) -> Iterator[dict[str, Any]]:
        """Batches for steps start, start+1, ... crossing epochs; each epoch's loader is rebuilt."""
        epoch, position = divmod(start, spe)
        while True:
            keys = _epoch_batches(
                len(train_set), epoch=epoch, seed=seed, batch_size=batch_size, rank=rank, world_size=world_size
            )[position:]
            loader = DataLoader(
                train_set, batch_sampler=keys, num_workers=num_workers, pin_memory=dev.type == "cuda",
                persistent_workers=False,
            )  # fmt: skip
            yield from loader
            epoch, position = epoch + 1, 0

    last_metrics: dict[str, float] = {}
    bar = None
    if env.is_main and progress:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=loop.step, desc=f"train {arch}", dynamic_ncols=True)
    loop.ddp_model.train()
    t0 = time.time()
    interval = _Interval(t0=t0)
    try:
        stream = batches_from(loop.step)
        while loop.step < total_steps:
            batch = _to_device(next(stream), dev, env.use_channels_last)
            wrong, unequal = _train_step(loop, batch, env, seed=seed, loss=loss, n_pairs=n_pairs, sigma=sigma,
                                         drop_ratio=drop_ratio, edge_fraction=edge_fraction, grad_clip=grad_clip)
            interval.images += batch["image"].shape[0] * world_size
            interval.wrong, interval.unequal = interval.wrong + wrong, interval.unequal + unequal
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loop.running_loss:.4f}")
            last_metrics = _validate_and_checkpoint(
                loop, env, interval, total_steps=total_steps, spe=spe, t0=t0, val_every=val_every,
                log_every=log_every, checkpoint_every=checkpoint_every, run_validation=run_validation,
                metrics_log=metrics_log, last_path=last_path, base_meta=base_meta, last_metrics=last_metrics, bar=bar)
    finally:
        if bar is not None:
            bar.close()
        if metrics_log is not None:
            metrics_log.close()

    step = loop.step
    final_path = run_dir / "model.pt"
    if env.is_main:
        meta = {**base_meta, "step": step, "epoch": step / spe, "metrics": last_metrics}
        save_checkpoint(final_path, model=loop.model, meta=meta)
    if world_size > 1:
        dist.barrier()
        if env.we_initialised:
            dist.destroy_process_group()
    return TrainResult(run_dir=run_dir, checkpoint=final_path, last_checkpoint=last_path, step=step, metrics=last_metrics)


# ----------------------------------------------------------------------------- entry point for torchrun


def main(argv: list[str] | None = None) -> int:
    """``python -m model.train --data DIR --run-dir DIR ...``: the plain entry point, for torchrun."""
    from model.config import TrainConfig
    from model.train_args import add_train_arguments, train_kwargs_from_args

    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n")[0])
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    if not args.run_dir:
        parser.error("--run-dir is required")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    kwargs = train_kwargs_from_args(args, TrainConfig().model_dump())
    result = train(run_dir=args.run_dir, **kwargs)
    if int(os.environ.get("RANK", "0")) == 0:
        print(result.checkpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
