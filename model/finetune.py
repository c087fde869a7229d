"""Shared pieces of the transfer experiments (ReDWeb Sec. 4.3): initialisation, the engine task both
use (:class:`FinetuneTask`, run by :func:`model.engine.fit` through :func:`train_finetune`), the shared
checkpoint meta.

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

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from model.checkpoint import load_checkpoint
from model.engine import Env, LoopSettings, Task, fit, plain, resume_path

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


# Arguments that do not change what a run computes: a resume may change them (more workers, another
# log interval, scoring fewer images), every other argument must match the interrupted run's.
RESUME_FREE = frozenset({"run_dir", "device", "num_workers", "log_every", "checkpoint_every", "progress", "resume",
                         "eval_max_images", "eval_crop", "amp"})
METRIC_COLUMNS = ("step", "time_s", "lr", "loss", "images_per_s")


class FinetuneTask(Task):
    """A fine-tuning run as an engine task: the caller's loss, no validation during training (the task
    scores its test split afterwards), and a resume refused when the settings differ."""

    name = "finetune"
    columns = METRIC_COLUMNS
    config_name = "finetune_config.yaml"

    def __init__(self, loss_fn: Callable[[torch.Tensor, dict[str, Any]], torch.Tensor],
                 arguments: dict[str, Any], init_info: dict[str, Any]) -> None:
        self.loss_fn, self.arguments = loss_fn, arguments
        self.meta = {"config": arguments}
        self.effective = {**arguments, "init_resolved": init_info}

    def loss(self, pred: torch.Tensor, batch: dict[str, Any], *, step: int, rank: int
             ) -> tuple[torch.Tensor, dict[str, int]]:
        return self.loss_fn(pred, batch), {}

    def check_resume(self, meta: dict[str, Any], path: Path) -> None:
        saved = meta.get("config", {})
        differ = sorted(k for k in set(self.arguments) | set(saved)
                        if k not in RESUME_FREE and self.arguments.get(k) != saved.get(k))
        if differ:
            raise ValueError(f"{path} was written by a run with other settings ({', '.join(differ)} differ); "
                             "resume with the same settings or choose another --run-dir")


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

    ``arguments``: the task function's parameters as given (its ``locals()`` at entry, so its
    signature stays the one home of the defaults): ``run_dir``, ``init``, ``arch``, ``arch_kwargs``,
    ``weights_path``, ``device``, ``seed``, ``iterations``, ``batch_size``, ``optimizer``, ``lr``,
    ``backbone_lr_mult``, ``momentum``, ``weight_decay``, ``num_workers``, ``log_every``,
    ``checkpoint_every``, ``resume``, ``progress``, ``amp``. ``dataset`` yields sample-schema dicts
    for keys ``(index, augmentation_seed)``; ``loss_fn(pred, batch)`` is the task's loss. Builds the
    network from ``init`` (``arch`` defaults to ``default_arch`` unless ``init`` is a checkpoint) and
    trains it with the engine (:func:`model.engine.fit`: poly schedule, ``finetune_config.yaml``,
    ``metrics.csv``, resumable ``checkpoints/last.pt``; ``resume=True`` continues from it, a
    ``last.pt`` written with other settings, but for :data:`RESUME_FREE`, is refused). Returns the
    network in eval mode.
    """
    a = plain(arguments)
    run = Path(a["run_dir"])
    env = Env.join(a["device"], amp=a["amp"], channels_last=False, distributed=False)
    torch.manual_seed(a["seed"])
    is_ckpt = str(a["init"]) not in INITS
    arch = (a["arch"] if is_ckpt else (a["arch"] or default_arch)) or ""
    model, init_info = build_init_model(a["init"], arch=arch, out_channels=out_channels, arch_kwargs=a["arch_kwargs"],
                                        weights_path=a["weights_path"])
    model.to(env.device)
    settings = LoopSettings(total_steps=a["iterations"], batch_size=a["batch_size"], seed=a["seed"],
                            optimizer=a["optimizer"], lr=a["lr"], backbone_lr_mult=a["backbone_lr_mult"],
                            momentum=a["momentum"], weight_decay=a["weight_decay"], lr_schedule="poly",
                            grad_clip=None, num_workers=a["num_workers"], log_every=a["log_every"],
                            checkpoint_every=a["checkpoint_every"], val_every=None, progress=a["progress"],
                            halt_on_nonfinite=True)
    resume_from = resume_path(a["resume"], run / "checkpoints" / "last.pt")
    fitted = fit(FinetuneTask(loss_fn, a, init_info), model, dataset, settings, env, run, resume_from)
    return Trained(fitted.model, init_info, env.device, a, fitted.last_row, fitted.resumed_from)


def finetuned_meta(trained: Trained, *, task: str, **task_meta: Any) -> dict[str, Any]:
    """The checkpoint meta both tasks share (arch, normalisation, init, config, code version, step)
    plus the task's own keys (``head``, ``input_size``, ``output``, ``dataset``, ``metrics``)."""
    from model.checkpoint import NORMALIZATION, code_version

    info = trained.init_info
    return {"task": task, "arch": info["arch"], "arch_kwargs": plain(info["arch_kwargs"]),
            "normalization": NORMALIZATION, "init": info, "config": trained.arguments, "code_version": code_version(),
            "backbone_pretrained": bool(info["backbone_pretrained"]), "step": trained.arguments["iterations"],
            **task_meta}
