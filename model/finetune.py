"""Shared pieces of the transfer experiments (ReDWeb Sec. 4.3): initialisation, the step loop, checkpoints.

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
from tasks.contracts import resolve_device as _resolve_device

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
    return torch.device(_resolve_device(device))  # the shared rule (tasks.contracts)


def make_optimizer(model: nn.Module, *, optimizer: str, lr: float, backbone_lr_mult: float, momentum: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    from model.train import _make_optimizer

    return _make_optimizer(model, name=optimizer, lr=lr, backbone_lr_mult=backbone_lr_mult, momentum=momentum,
                           weight_decay=weight_decay)


def fit(
    model: nn.Module,
    batches: Iterator[dict[str, Any]],
    loss_fn: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor],
    *,
    iterations: int,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    run_dir: Path,
    log_every: int = 10,
    progress: bool = False,
    amp: bool = True,
    grad_clip: float | None = None,
) -> dict[str, float]:
    """Run ``iterations`` steps of ``loss_fn(model(batch["image"]), batch)`` with a poly schedule.

    ``batches`` yields sample-schema dicts (CPU tensors, moved here). Writes ``run_dir/metrics.csv``
    (step, time_s, lr, loss, images_per_s) every ``log_every`` steps. Returns the last row.
    """
    from model.train import _lr_lambda

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda("poly", iterations))
    use_amp = amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    run_dir.mkdir(parents=True, exist_ok=True)
    columns = ("step", "time_s", "lr", "loss", "images_per_s")
    metrics_path = run_dir / "metrics.csv"
    with open(metrics_path, "w", newline="") as f:
        csv.writer(f).writerow(columns)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=iterations, desc="finetune", dynamic_ncols=True)
    model.train()
    t0 = t_since = time.time()
    images_since, running, last = 0, None, {}
    try:
        for step in range(1, iterations + 1):
            batch = next(batches)
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
                    csv.writer(f).writerow([last[c] for c in columns])
                images_since, t_since = 0, now
    finally:
        if bar is not None:
            bar.close()
    model.eval()
    return last


def cycle(loader) -> Iterator[dict[str, Any]]:
    """Endless iteration over a DataLoader (a new shuffled epoch each time round)."""
    while True:
        yielded = False
        for batch in loader:
            yielded = True
            yield batch
        if not yielded:
            raise ValueError("the training set is empty")
