"""Shared pieces of the transfer experiments (ReDWeb Sec. 4.3): initialisation, the one training loop
both tasks use (:func:`train_finetune` -> :func:`fit`), resumable checkpoints, the shared checkpoint meta.

``redweb finetune depth`` (:mod:`model.finetune_depth`) and ``redweb finetune segment``
(:mod:`model.finetune_segment`) both take ``init``:

* a path to a ``redweb train`` checkpoint: the same architecture is rebuilt with the task's number
  of output channels; every weight but the head (``output.*``) is copied from the checkpoint, the
  head starts from its default initialisation; the backbone gets ``backbone_lr_mult`` (0.1) of the
  learning rate, as an ImageNet-pretrained one does in training;
* ``"imagenet"``: the architecture with ImageNet backbone weights from ``weights_path`` or
  torchvision's local cache (``$TORCH_HOME/hub/checkpoints``). Nothing is ever downloaded: when no
  weights are found the backbone keeps its random initialisation, standing in, and the run's
  checkpoint says ``backbone_pretrained: false`` (a warning is logged);
* ``"scratch"``: random initialisation everywhere.

Fine-tuned checkpoints are ordinary :mod:`model.checkpoint` files (``load_model`` rebuilds them);
their meta adds ``task`` (``metric_depth`` | ``segmentation``), ``head`` (module name, output
channels, what the output means) and ``init`` (what the run started from).
"""
from __future__ import annotations

import csv
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch import nn

from model.checkpoint import load_checkpoint
from core.rules import resolve_device as _resolve_device

log = logging.getLogger(__name__)

INITS = ("imagenet", "scratch")  # or a checkpoint path


@dataclass(frozen=True)
class FinetuneResult:
    """What a fine-tuning run produced: its folder, ``model.pt`` and the scored metrics document."""

    run_dir: Path
    checkpoint: Path
    metrics: dict[str, Any] = field(default_factory=dict)
HEAD_MODULE = "output"


def build_init_model(
    init: str | os.PathLike,
    *,
    arch: str,
    out_channels: int,
    arch_kwargs: dict[str, Any] | None = None,
    weights_path: str | os.PathLike | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """The network to fine-tune and a description of where its weights came from.

    Returns ``(model, info)``; ``info`` has ``init`` (``imagenet`` | ``scratch`` | ``checkpoint``),
    ``arch``, ``arch_kwargs`` (as to be stored: with ``out_channels``), ``backbone_pretrained`` and,
    for a checkpoint, its path and the source meta's ``arch``/``step``/``task``.
    """
    from model.registry import build_model

    kwargs = dict(arch_kwargs or {})
    kwargs.pop("out_channels", None)
    init_s = str(init)
    if init_s in INITS:
        pretrained = init_s == "imagenet"
        model = build_model(arch, pretrained=pretrained, weights_path=weights_path if pretrained else None,
                            out_channels=out_channels, **kwargs)
        loaded = bool(getattr(model, "backbone_pretrained", False))
        if pretrained and not loaded:
            log.warning("init=imagenet but no ImageNet weights were found: random weights stand in "
                        "(pass --weights-path FILE.pth or fill $TORCH_HOME/hub/checkpoints)")
        info = {"init": init_s, "arch": arch, "arch_kwargs": {**kwargs, "out_channels": out_channels},
                "backbone_pretrained": loaded, "weights_path": str(weights_path) if weights_path and pretrained else None}
        return model, info

    path = Path(init_s)
    if not path.is_file():
        raise FileNotFoundError(f"--init: {init_s!r} is neither imagenet, scratch nor a checkpoint file")
    payload = load_checkpoint(path)
    meta = payload["meta"]
    source_arch = meta["arch"]
    if arch and arch != source_arch:
        raise ValueError(f"{path} holds {source_arch!r}; fine-tuning builds the same architecture (got --arch {arch!r})")
    source_kwargs = {k: v for k, v in meta.get("arch_kwargs", {}).items() if k not in ("pretrained", "weights_path")}
    source_kwargs.update(kwargs)
    source_kwargs.pop("out_channels", None)
    model = build_model(source_arch, out_channels=out_channels, **source_kwargs)
    state = {k: v for k, v in payload["model"].items() if not k.startswith(HEAD_MODULE + ".")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith(HEAD_MODULE + ".")]
    if missing or unexpected:
        raise ValueError(f"{path} does not match {source_arch}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    # The transferred backbone is pretrained: it gets the smaller learning rate.
    model.backbone_pretrained = True  # type: ignore[assignment]
    info = {"init": "checkpoint", "checkpoint": str(path.resolve()), "arch": source_arch,
            "arch_kwargs": {**source_kwargs, "out_channels": out_channels}, "backbone_pretrained": True,
            "source": {"arch": source_arch, "step": meta.get("step"), "task": meta.get("task", "relative_depth"),
                       "code_version": meta.get("code_version")}}
    log.info("initialised %s from %s (head %s.* re-initialised for %d outputs)", source_arch, path, HEAD_MODULE,
             out_channels)
    return model, info


def resolve_device(device: str) -> torch.device:
    return torch.device(_resolve_device(device))  # the shared rule (core.rules)


def make_optimizer(model: nn.Module, *, optimizer: str, lr: float, backbone_lr_mult: float, momentum: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    from model.train import _make_optimizer

    return _make_optimizer(model, name=optimizer, lr=lr, backbone_lr_mult=backbone_lr_mult, momentum=momentum,
                           weight_decay=weight_decay)


# Arguments that do not change what a run computes: a resume may change them (more workers, another
# log interval, scoring fewer images), every other argument must match the interrupted run's.
RESUME_FREE = frozenset({"run_dir", "device", "num_workers", "log_every", "checkpoint_every", "progress", "resume",
                         "eval_max_images", "eval_crop", "amp"})
METRIC_COLUMNS = ("step", "time_s", "lr", "loss", "images_per_s")


@dataclass
class Trained:
    """A fine-tuned network and how it came to be (what :func:`train_finetune` returns)."""

    model: nn.Module
    init_info: dict[str, Any]
    device: torch.device
    arguments: dict[str, Any]
    last: dict[str, Any]  # the last metrics row (step, lr, loss, ...)
    resumed_from: int | None  # the step a resume continued at, None for a fresh run


def train_finetune(
    arguments: dict[str, Any],
    dataset,
    loss_fn: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor],
    *,
    out_channels: int,
    default_arch: str,
) -> Trained:
    """The training part both fine-tuning tasks share, driven by the caller's keyword ``arguments``.

    ``arguments``: the task function's parameters as given (its ``locals()`` at entry): ``run_dir``,
    ``init``, ``arch``, ``arch_kwargs``, ``weights_path``, ``device``, ``seed``, ``iterations``,
    ``batch_size``, ``optimizer``, ``lr``, ``backbone_lr_mult``, ``momentum``, ``weight_decay``,
    ``num_workers``, ``log_every``, ``checkpoint_every``, ``resume``, ``progress``, ``amp``.
    ``dataset`` yields sample-schema dicts for keys ``(index, augmentation_seed)``;
    ``loss_fn(pred, batch)`` is the task's loss. Builds the network from ``init`` (``arch`` defaults
    to ``default_arch`` unless ``init`` is a checkpoint), writes ``finetune_config.yaml``, trains
    (:func:`fit`, resumable) and returns the network in eval mode.
    """
    import yaml

    from model.train import _plain

    a = _plain(arguments)
    run = Path(a["run_dir"])
    run.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(a["device"])
    torch.manual_seed(a["seed"])
    is_ckpt = str(a["init"]) not in INITS
    arch = (a["arch"] if is_ckpt else (a["arch"] or default_arch)) or ""
    model, init_info = build_init_model(a["init"], arch=arch, out_channels=out_channels, arch_kwargs=a["arch_kwargs"],
                                        weights_path=a["weights_path"])
    model.to(dev)
    (run / "finetune_config.yaml").write_text(yaml.safe_dump({**a, "init_resolved": init_info}, sort_keys=False))
    opt = make_optimizer(model, optimizer=a["optimizer"], lr=a["lr"], backbone_lr_mult=a["backbone_lr_mult"],
                         momentum=a["momentum"], weight_decay=a["weight_decay"])
    last, resumed = fit(model, dataset, loss_fn, iterations=a["iterations"], batch_size=a["batch_size"], optimizer=opt,
                        device=dev, run_dir=run, seed=a["seed"], num_workers=a["num_workers"],
                        log_every=a["log_every"], checkpoint_every=a["checkpoint_every"], resume=a["resume"],
                        config=a, progress=a["progress"], amp=a["amp"])
    return Trained(model, init_info, dev, a, last, resumed)


def finetuned_meta(trained: Trained, *, task: str, **task_meta: Any) -> dict[str, Any]:
    """The checkpoint meta both tasks share (arch, normalisation, init, config, code version, step)
    plus the task's own keys (``head``, ``input_size``, ``output``, ``dataset``, ``metrics``)."""
    from model.checkpoint import NORMALIZATION, code_version
    from model.train import _plain

    info = trained.init_info
    return {"task": task, "arch": info["arch"], "arch_kwargs": _plain(info["arch_kwargs"]),
            "normalization": NORMALIZATION, "init": info, "config": trained.arguments, "code_version": code_version(),
            "backbone_pretrained": bool(info["backbone_pretrained"]), "step": trained.arguments["iterations"],
            **task_meta}


def _batches_from(dataset, start: int, *, batch_size: int, seed: int, num_workers: int,
                  pin_memory: bool) -> Iterator[dict[str, Any]]:
    """Batches for steps ``start, start+1, ...``: the order of an epoch and every sample's
    augmentation seed depend on ``(seed, epoch, index)`` only (:func:`model.train._epoch_batches`), so
    a resumed run gets exactly the batches the uninterrupted run would have had."""
    from torch.utils.data import DataLoader

    from model.train import _derive_seed, _epoch_batches, steps_per_epoch

    n = len(dataset)
    if n == 0:
        raise ValueError("the training set is empty")
    spe = steps_per_epoch(n, batch_size)
    epoch, position = divmod(start, spe)
    while True:
        keys = _epoch_batches(n, epoch=epoch, seed=seed, batch_size=batch_size, rank=0, world_size=1)[position:]
        # An own generator: worker seeds then never draw from (and shift) the global torch RNG.
        generator = torch.Generator().manual_seed(_derive_seed(seed, epoch, 0x10AD))
        yield from DataLoader(dataset, batch_sampler=keys, num_workers=num_workers, pin_memory=pin_memory,
                              generator=generator)
        epoch, position = epoch + 1, 0


def _metrics_rows(path: Path, resume_step: int | None) -> list[dict[str, str]]:
    """The rows of an interrupted run's metrics.csv up to the step it resumes at."""
    if resume_step is None or not path.is_file():
        return []
    with open(path, newline="") as f:
        return [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]


def _check_resumable(config: dict[str, Any] | None, saved: dict[str, Any], path: Path) -> None:
    if config is None:
        return
    differ = sorted(k for k in set(config) | set(saved)
                    if k not in RESUME_FREE and config.get(k) != saved.get(k))
    if differ:
        raise ValueError(f"{path} was written by a run with other settings ({', '.join(differ)} differ); "
                         "resume with the same settings or choose another --run-dir")


def fit(
    model: nn.Module,
    dataset,
    loss_fn: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor],
    *,
    iterations: int,
    batch_size: int,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    run_dir: Path,
    seed: int = 0,
    num_workers: int = 0,
    log_every: int = 10,
    checkpoint_every: int = 1000,
    resume: bool | str | os.PathLike | None = None,
    config: dict[str, Any] | None = None,
    progress: bool = False,
    amp: bool = True,
    grad_clip: float | None = None,
) -> tuple[dict[str, Any], int | None]:
    """Run ``iterations`` steps of ``loss_fn(model(batch["image"]), batch)`` with a poly schedule.

    Writes ``run_dir/metrics.csv`` (step, time_s, lr, loss, images_per_s) every ``log_every`` steps
    and ``run_dir/checkpoints/last.pt`` (weights, optimizer, schedule, AMP scaler, RNG states, step,
    running loss, ``config``) every ``checkpoint_every`` steps and at the end. ``resume``: True /
    ``"auto"`` continues from ``run_dir/checkpoints/last.pt`` when it exists (else starts afresh), a
    path continues from that file; the continued run is step for step the uninterrupted one (same
    batches, augmentations and RNG streams; on CPU with the same thread count, identical weights).
    A ``last.pt`` whose ``config`` differs from ``config`` (but for :data:`RESUME_FREE`) is refused.
    Returns ``(last metrics row, step resumed at or None)``; the model is left in eval mode.
    """
    from model.checkpoint import save_checkpoint
    from model.train import _lr_lambda, _resume_path, _rng_state, _set_rng_state

    if checkpoint_every < 1 or log_every < 1:
        raise ValueError("checkpoint_every and log_every must be >= 1")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda("poly", iterations))
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    run_dir.mkdir(parents=True, exist_ok=True)
    last_path = run_dir / "checkpoints" / "last.pt"
    resume_path = _resume_path(resume, last_path, is_main=True)
    step, running, last = 0, None, {}
    if resume_path is not None:
        payload = load_checkpoint(resume_path)
        if "training" not in payload:
            raise ValueError(f"{resume_path} holds weights only; resume from RUN_DIR/checkpoints/last.pt")
        _check_resumable(config, payload["meta"].get("config", {}), resume_path)
        model.load_state_dict(payload["model"])
        state = payload["training"]
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"])
        step, running, last = int(state["step"]), state["running_loss"], dict(state.get("last_row") or {})
        log.info("resumed from %s at step %d of %d", resume_path, step, iterations)
    resumed_from = step if resume_path is not None else None
    metrics_path = run_dir / "metrics.csv"
    kept = _metrics_rows(metrics_path, resumed_from)
    with open(metrics_path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        writer.writeheader()
        writer.writerows(kept)

    def save_last() -> None:
        training = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(), "rng": _rng_state(), "step": step, "running_loss": running,
                    "last_row": last}
        save_checkpoint(last_path, model=model, meta={"step": step, "config": config or {}}, training=training)

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iterations, initial=step, desc="finetune", dynamic_ncols=True)
    model.train()
    t0 = t_since = time.time()
    images_since = 0
    stream = _batches_from(dataset, step, batch_size=batch_size, seed=seed, num_workers=num_workers,
                           pin_memory=device.type == "cuda")
    try:
        while step < iterations:
            batch = next(stream)
            batch = {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            with torch.autocast(device.type, enabled=use_amp):
                pred = model(batch["image"])
            value = loss_fn(pred.float(), batch)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(value).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            step += 1
            v = float(value.detach())
            if not torch.isfinite(value.detach()):
                raise FloatingPointError(f"loss became {v} at step {step}; lower --lr")
            running = v if running is None else 0.9 * running + 0.1 * v
            images_since += int(batch["image"].shape[0])
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{running:.4f}")
            if step % log_every == 0 or step == iterations:
                now = time.time()
                last = {"step": step, "time_s": round(now - t0, 3), "lr": scheduler.get_last_lr()[-1],
                        "loss": running, "images_per_s": images_since / max(1e-9, now - t_since)}
                with open(metrics_path, "a", newline="") as f:
                    csv.DictWriter(f, fieldnames=METRIC_COLUMNS).writerow(last)
                images_since, t_since = 0, now
            if step % checkpoint_every == 0 or step == iterations:
                save_last()
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return last, resumed_from
