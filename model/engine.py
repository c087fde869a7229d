"""The one training loop: every trainer in :mod:`model` is a :class:`Task` run by :func:`fit`.

``train`` (relative depth, ranking loss; :mod:`model.train`) and the fine-tuning tasks (metric depth
on NYUv2, segmentation on VOC; :mod:`model.finetune`) differ only in their model, data, loss and
validation; this module writes the rest once:

* the step: forward under AMP (CUDA only), the task's loss in fp32, GradScaler, optional gradient
  clipping, optimizer and schedule step, a running loss (EMA 0.9);
* the data order: every epoch's permutation and every sample's augmentation seed are functions of
  ``(seed, epoch, index)`` (:func:`epoch_batches`), so a resumed run sees exactly the batches the
  uninterrupted one would have;
* ``run_dir/checkpoints/last.pt`` every ``checkpoint_every`` steps and at the end: weights, optimizer,
  scheduler, AMP scaler, the python/numpy/torch RNG states, the step, the running loss and the last
  metrics row (format: :mod:`model.checkpoint`); a resume restores all of it;
* ``run_dir/metrics.csv`` (the task's columns; on resume the rows after the resumed step are dropped),
  TensorBoard scalars when the task names tags, a progress bar, validation every ``val_every`` steps;
* distributed data parallel under torchrun (:class:`Env`): each rank takes every N-th item of the
  epoch's permutation, rank 0 validates, logs and writes checkpoints.

Nothing here has a default that a task could need to change: :class:`LoopSettings` has no defaults,
the callers fill it from their one settings home (``TrainConfig``, the fine-tuning functions).
"""
from __future__ import annotations

import csv
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from core.progress import progress
from core.rules import resolve_device
from model.checkpoint import load_checkpoint, save_checkpoint, unwrap

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("poly", "cosine", "constant")


# ----------------------------------------------------------------------------- pure helpers


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across runs and platforms."""
    sequence = np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts])
    return int(sequence.generate_state(2, np.uint64)[0] >> 1)


def plain(value: Any) -> Any:
    """Paths -> str, tuples -> lists, recursively: YAML- and pickle-friendly config values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, os.PathLike):
        return str(value)
    return value


def steps_per_epoch(n_items: int, batch_size: int, world_size: int = 1) -> int:
    return math.ceil(math.ceil(n_items / world_size) / batch_size)


def epoch_batches(
    n_items: int, *, epoch: int, seed: int, batch_size: int, rank: int, world_size: int
) -> list[list[tuple[int, int]]]:
    """This rank's batches of ``(index, augmentation seed)`` for one epoch.

    The permutation depends on (seed, epoch) only; it is padded by wrapping so that every rank gets
    the same number of items (DDP needs equal step counts) and every batch is full.
    """
    perm = np.random.default_rng(derive_seed(seed, epoch, 0xDA7A)).permutation(n_items).tolist()
    per_rank = math.ceil(n_items / world_size)
    padded = (perm * math.ceil(per_rank * world_size / n_items))[: per_rank * world_size]
    mine = padded[rank::world_size]
    # Fill the last batch by wrapping too: a batch of one breaks BatchNorm at small inputs, and full
    # batches keep the per-step cost constant.
    mine = (mine * math.ceil(batch_size / len(mine) + 1))[: math.ceil(len(mine) / batch_size) * batch_size]
    keys = [(int(i), derive_seed(seed, epoch, int(i), 0xA06)) for i in mine]
    return [keys[k : k + batch_size] for k in range(0, len(keys), batch_size)]


def lr_lambda(schedule: str, total_steps: int):
    if schedule == "poly":  # the usual segmentation/depth schedule: (1 - t)^0.9
        return lambda step: max(0.0, 1.0 - step / max(1, total_steps)) ** 0.9
    if schedule == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(1, total_steps)))
    if schedule == "constant":
        return lambda step: 1.0
    raise ValueError(f"unknown lr_schedule {schedule!r}; known: {LR_SCHEDULES}")


def make_optimizer(
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


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_path(resume: str | os.PathLike | bool | None, last_path: Path, *,
                is_main: bool = True) -> Path | None:
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


def to_device(batch: dict[str, Any], device: torch.device, channels_last: bool) -> dict[str, Any]:
    """Every tensor of a sample-schema batch on ``device``; the image channels-last when asked."""
    out = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
    if channels_last:
        out["image"] = out["image"].contiguous(memory_format=torch.channels_last)
    return out


# ----------------------------------------------------------------------------- where and how the loop runs


@dataclass
class Env:
    """Where this process trains: torchrun's world (WORLD_SIZE/RANK/LOCAL_RANK), device, CUDA-only
    features."""

    world_size: int
    rank: int
    device: torch.device
    use_amp: bool
    use_channels_last: bool
    we_initialised: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def join(cls, device: str, *, amp: bool, channels_last: bool, distributed: bool) -> "Env":
        """This process's place; with ``distributed`` and WORLD_SIZE > 1 it joins torchrun's process group
        (NCCL on GPU, gloo on CPU) unless one is initialised already."""
        import torch.distributed as dist

        world_size = int(os.environ.get("WORLD_SIZE", "1")) if distributed else 1
        rank = int(os.environ.get("RANK", "0")) if distributed else 0
        local_rank = int(os.environ.get("LOCAL_RANK", "0")) if distributed else None
        dev = torch.device(resolve_device(device, local_rank))
        env = cls(world_size=world_size, rank=rank, device=dev, use_amp=amp and dev.type == "cuda",
                  use_channels_last=channels_last and dev.type == "cuda")
        if world_size > 1 and not dist.is_initialized():
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
            env.we_initialised = True
        return env

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        """Wait for every rank; leave the process group if this process joined it."""
        self.barrier()
        if self.we_initialised:
            import torch.distributed as dist

            dist.destroy_process_group()


@dataclass(frozen=True, kw_only=True)
class LoopSettings:
    """How long and how the loop optimises and records. No defaults: each caller's settings home fills it."""

    total_steps: int
    batch_size: int
    seed: int
    optimizer: str
    lr: float
    backbone_lr_mult: float
    momentum: float
    weight_decay: float
    lr_schedule: str
    grad_clip: float | None
    num_workers: int
    log_every: int
    checkpoint_every: int
    val_every: int | None  # None: no validation during training
    progress: bool
    halt_on_nonfinite: bool  # raise FloatingPointError when the loss stops being finite


class Task:
    """What one kind of training supplies to :func:`fit`. Subclasses set the attributes and override
    :meth:`loss`; the other hooks default to "nothing to do".

    ``name``: progress-bar label. ``columns``: metrics.csv header; a row has ``step, epoch, time_s,
    lr, images_per_s``, the running loss under ``loss_column``, :meth:`interval_metrics` and the
    validation metrics, and keeps only ``columns``. ``tb_tags``: {column: TensorBoard tag}; empty =
    no TensorBoard. ``meta``: what ``last.pt``'s meta carries besides step, epoch and metrics.
    ``config_name``/``effective``: the file in the run folder that records what ran, and its content.
    """

    name: str = "train"
    columns: tuple[str, ...] = ()
    loss_column: str = "loss"
    tb_tags: Mapping[str, str] = {}
    headline: str | None = None  # validation metric written under the progress bar
    meta: dict[str, Any] = {}
    config_name: str | None = None
    effective: dict[str, Any] = {}

    def loss(self, pred: torch.Tensor, batch: dict[str, Any], *, step: int, rank: int
             ) -> tuple[torch.Tensor, dict[str, int]]:
        """The scalar loss of ``pred`` (B,C,H,W, any dtype) on ``batch`` (on the device), and counters
        that :meth:`interval_metrics` turns into columns (summed between metrics rows)."""
        raise NotImplementedError

    def interval_metrics(self, counters: Mapping[str, int]) -> dict[str, Any]:
        return {}

    def validate(self, model: nn.Module) -> dict[str, float]:
        """Validation metrics of ``model`` (rank 0 only); {} = none."""
        return {}

    def check_resume(self, meta: dict[str, Any], path: Path) -> None:
        """Refuse (raise) a ``last.pt`` that another run wrote."""


@dataclass
class Fitted:
    """What :func:`fit` leaves: the trained network (eval mode) and where the run ended."""

    model: nn.Module
    step: int
    steps_per_epoch: int
    last_row: dict[str, Any]  # the last metrics.csv row (only the task's columns)
    metrics: dict[str, float]  # the last validation (may be empty)
    resumed_from: int | None  # the step a resume continued at, None for a fresh run


@dataclass
class _State:
    """The mutable training state: what ``checkpoints/last.pt`` saves and a resume restores."""

    model: nn.Module
    opt: torch.optim.Optimizer
    scheduler: Any
    scaler: Any
    step: int = 0
    running_loss: float | None = None
    last_row: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class _Interval:
    """Counters since the last metrics row."""

    t0: float
    images: int = 0
    counters: dict[str, int] = field(default_factory=dict)


class MetricsLog:
    """metrics.csv (+ TensorBoard) writer on rank 0. On resume, rows after the resumed step are dropped."""

    def __init__(self, run_dir: Path, columns: tuple[str, ...], resume_step: int | None,
                 tb_tags: Mapping[str, str]) -> None:
        self.path, self.columns, self.tb_tags = run_dir / "metrics.csv", columns, dict(tb_tags)
        rows: list[dict[str, str]] = []
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        self.writer = None
        if self.tb_tags:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:  # tensorboard is a core dependency; say so if it is missing
                raise ImportError("TensorBoard logging needs the 'tensorboard' package "
                                  "(pip install tensorboard)") from exc
            self.writer = SummaryWriter(
                str(run_dir / "tb"), purge_step=None if resume_step is None else resume_step + 1
            )

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=self.columns).writerow({k: row.get(k, "") for k in self.columns})
        if self.writer is not None:
            for key, tag in self.tb_tags.items():
                value = row.get(key, "")
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(tag, value, row["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ----------------------------------------------------------------------------- the loop


def _batches_from(dataset, start: int, s: LoopSettings, env: Env) -> Iterator[dict[str, Any]]:
    """Batches for steps ``start, start+1, ...`` crossing epochs; each epoch's loader is rebuilt."""
    from torch.utils.data import DataLoader

    n = len(dataset)
    if n == 0:
        raise ValueError("the training set is empty")
    epoch, position = divmod(start, steps_per_epoch(n, s.batch_size, env.world_size))
    while True:
        keys = epoch_batches(n, epoch=epoch, seed=s.seed, batch_size=s.batch_size, rank=env.rank,
                             world_size=env.world_size)[position:]
        # An own generator: worker seeds then never draw from (and shift) the global torch RNG.
        generator = torch.Generator().manual_seed(derive_seed(s.seed, epoch, 0x10AD))
        yield from DataLoader(dataset, batch_sampler=keys, num_workers=s.num_workers,
                              pin_memory=env.device.type == "cuda", generator=generator)
        epoch, position = epoch + 1, 0


def _restore(state: _State, task: Task, path: Path, total_steps: int, is_main: bool) -> None:
    """Weights, optimizer, schedule, scaler, RNG streams, step and running loss from a ``last.pt``."""
    payload = load_checkpoint(path, map_location="cpu")
    if "training" not in payload:
        raise ValueError(f"{path} holds weights only; resume from RUN_DIR/checkpoints/last.pt")
    task.check_resume(payload["meta"], path)
    unwrap(state.model).load_state_dict(payload["model"])
    saved = payload["training"]
    state.opt.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    state.scaler.load_state_dict(saved["scaler"])
    set_rng_state(saved["rng"])
    state.step, state.running_loss = int(saved["step"]), saved.get("running_loss")
    state.last_row = dict(saved.get("last_row") or {})
    state.metrics = dict(payload["meta"].get("metrics") or {})
    if is_main:
        log.info("resumed from %s at step %d of %d", path, state.step, total_steps)


def _save_last(state: _State, task: Task, path: Path, spe: int) -> None:
    """``checkpoints/last.pt``: weights + meta + everything a resume needs."""
    training = {"optimizer": state.opt.state_dict(), "scheduler": state.scheduler.state_dict(),
                "scaler": state.scaler.state_dict(), "rng": rng_state(), "step": state.step,
                "running_loss": state.running_loss, "last_row": state.last_row}
    meta = {**task.meta, "step": state.step, "epoch": state.step / spe, "metrics": state.metrics}
    save_checkpoint(path, model=state.model, meta=meta, training=training)


def _step(state: _State, net: nn.Module, task: Task, batch: dict[str, Any], env: Env, s: LoopSettings
          ) -> dict[str, int]:
    """One optimisation step on ``batch`` (already on the device); returns the task's counters."""
    with torch.autocast(env.device.type, enabled=env.use_amp):
        pred = net(batch["image"])
    # losses in fp32 under AMP
    value, counters = task.loss(pred.float(), batch, step=state.step, rank=env.rank)
    state.opt.zero_grad(set_to_none=True)
    state.scaler.scale(value).backward()
    if s.grad_clip:
        state.scaler.unscale_(state.opt)
        nn.utils.clip_grad_norm_(state.model.parameters(), s.grad_clip)
    state.scaler.step(state.opt)
    state.scaler.update()
    state.scheduler.step()
    state.step += 1
    v = float(value.detach())
    if s.halt_on_nonfinite and not math.isfinite(v):
        raise FloatingPointError(f"loss became {v} at step {state.step}; lower --lr")
    state.running_loss = v if state.running_loss is None else 0.9 * state.running_loss + 0.1 * v
    return counters


def _after_step(state: _State, task: Task, env: Env, s: LoopSettings, interval: _Interval, *, t0: float,
                spe: int, metrics_log: MetricsLog | None, last_path: Path, bar: Any) -> None:
    """Validate / write a metrics row / save ``last.pt`` when due."""
    step, total = state.step, s.total_steps
    validate_now = s.val_every is not None and (step % s.val_every == 0 or step == total)
    val = task.validate(state.model) if validate_now and env.is_main else {}
    if val:
        state.metrics = val
    if step % s.log_every == 0 or step == total or validate_now:
        now = time.time()
        row = {"step": step, "epoch": round(step / spe, 4), "time_s": round(now - t0, 3),
               "lr": state.scheduler.get_last_lr()[-1], task.loss_column: state.running_loss,
               "images_per_s": interval.images / max(1e-9, now - interval.t0),
               **task.interval_metrics(interval.counters), **val}
        state.last_row = {k: row[k] for k in task.columns if k in row}
        if metrics_log is not None:
            metrics_log.write(row)
        if val and bar is not None and task.headline in val:
            bar.write(f"step {step}: {task.headline.replace('_', ' ')} {val[task.headline]:.4f}")
        interval.t0, interval.images, interval.counters = now, 0, {}
    if (step % s.checkpoint_every == 0 or step == total) and env.is_main:
        _save_last(state, task, last_path, spe)
    env.barrier()  # rank 0 validated / saved; keep ranks in step


def fit(task: Task, model: nn.Module, dataset, s: LoopSettings, env: Env, run_dir: str | os.PathLike,
        resume_from: Path | None = None) -> Fitted:
    """Train ``model`` (already on ``env.device``) on ``dataset`` for ``s.total_steps`` steps of ``task``.

    ``dataset`` yields sample-schema dicts for keys ``(index, augmentation seed)``. ``resume_from``: a
    ``last.pt`` (see :func:`resume_path`) to continue from; the continued run is step for step the
    uninterrupted one (on CPU with the same thread count, identical weights). Writes the task's
    ``config_name`` file, ``metrics.csv`` and ``checkpoints/last.pt`` into ``run_dir`` (rank 0).
    """
    if s.checkpoint_every < 1 or s.log_every < 1:
        raise ValueError("checkpoint_every and log_every must be >= 1")
    run_dir = Path(run_dir)
    last_path = run_dir / "checkpoints" / "last.pt"
    if env.use_channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = make_optimizer(model, name=s.optimizer, lr=s.lr, backbone_lr_mult=s.backbone_lr_mult,
                         momentum=s.momentum, weight_decay=s.weight_decay)
    state = _State(model=model, opt=opt,
                   scheduler=torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(s.lr_schedule, s.total_steps)),
                   scaler=torch.amp.GradScaler("cuda", enabled=env.use_amp))
    if resume_from is not None:
        _restore(state, task, resume_from, s.total_steps, env.is_main)
    resumed_from = state.step if resume_from is not None else None
    net = model
    if env.world_size > 1:
        device_ids = [env.device.index] if env.device.type == "cuda" else None
        net = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    spe = steps_per_epoch(len(dataset), s.batch_size, env.world_size)
    metrics_log = bar = None
    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if task.config_name:
            import yaml

            (run_dir / task.config_name).write_text(yaml.safe_dump(plain(task.effective), sort_keys=False))
        metrics_log = MetricsLog(run_dir, task.columns, resumed_from, task.tb_tags)
        if s.progress:
            bar = progress(s.total_steps, initial=state.step, desc=task.name, unit="step")
    net.train()
    t0 = time.time()
    interval = _Interval(t0=t0)
    try:
        stream = _batches_from(dataset, state.step, s, env)
        while state.step < s.total_steps:
            batch = to_device(next(stream), env.device, env.use_channels_last)
            counters = _step(state, net, task, batch, env, s)
            interval.images += batch["image"].shape[0] * env.world_size
            for k, v in counters.items():
                interval.counters[k] = interval.counters.get(k, 0) + v
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{state.running_loss:.4f}")
            _after_step(state, task, env, s, interval, t0=t0, spe=spe, metrics_log=metrics_log,
                        last_path=last_path, bar=bar)
    finally:
        if bar is not None:
            bar.close()
        if metrics_log is not None:
            metrics_log.close()
    model.eval()
    return Fitted(model=model, step=state.step, steps_per_epoch=spe, last_row=state.last_row,
                  metrics=state.metrics, resumed_from=resumed_from)
