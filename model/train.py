"""Relative-depth training (plain function; no Prefect): the engine (:mod:`model.engine`) + this task.

``train(data=..., run_dir=..., config=TrainConfig(arch="resnet50_fusion", ...))`` trains on a dataset
folder (our export, the ReDWeb release or HR-WSI; see :mod:`model.data`) with online pair sampling
and the improved ranking loss; every setting and its default is a :class:`model.config.TrainConfig`
field. It writes into ``run_dir``:

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
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from model.checkpoint import NORMALIZATION, OUTPUT_DESCRIPTION, code_version, save_checkpoint, unwrap
from model.config import TrainConfig
from model.data import CenterCrop, RandomCropFlip, check_training_data, dataset_fingerprint, open_dataset
from model.engine import (
    Env,
    LoopSettings,
    Task,
    derive_seed,
    fit,
    plain,
    resume_path,
    steps_per_epoch,
    to_device,
)
from model.losses import PAIR_LOSSES, PIXEL_LOSSES, improved_ranking_loss, pixel_l1_loss, pixel_l2_loss
from model.registry import build_model
from model.sampling import ordinal_error, sample_pairs

log = logging.getLogger(__name__)

METRIC_COLUMNS = (
    "step", "epoch", "time_s", "lr", "train_loss", "train_ordinal_error", "images_per_s",
    "val_loss", "val_ordinal_error", "val_pairs",
)  # fmt: skip
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
        batch = to_device(batch, device, channels_last)
        with torch.autocast(device.type, enabled=amp and device.type == "cuda"):
            pred = net(batch["image"])
        generator = torch.Generator().manual_seed(derive_seed(seed, _VAL_SEED_OFFSET, k))
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


# ----------------------------------------------------------------------------- train = the engine + this task


class RelativeDepthTask(Task):
    """The ranking-loss training as an engine task: per step pairs sampled from ``(seed, step, rank)``,
    the loss of ``config.loss``, the ordinal error of the step's pairs; validation on ``val_set``."""

    columns = METRIC_COLUMNS
    loss_column = "train_loss"
    headline = "val_ordinal_error"

    def __init__(self, config: TrainConfig, val_set, env: Env, *, meta: dict[str, Any],
                 effective: dict[str, Any]) -> None:
        self.config, self.val_set, self.env = config, val_set, env
        self.name = f"train {config.arch}"
        self.tb_tags = _TB_TAGS if config.tensorboard else {}
        self.meta, self.effective, self.config_name = meta, effective, "train_config.yaml"

    def loss(self, pred: torch.Tensor, batch: dict[str, Any], *, step: int, rank: int
             ) -> tuple[torch.Tensor, dict[str, int]]:
        c = self.config
        generator = torch.Generator().manual_seed(derive_seed(c.seed, step, rank, 0x9A1))
        value, wrong, unequal = compute_loss(pred, batch, loss=c.loss, n_pairs=c.n_pairs, sigma=c.sigma,
                                             drop_ratio=c.drop_ratio, edge_fraction=c.edge_fraction,
                                             generator=generator)
        return value, {"wrong": wrong, "unequal": unequal}

    def interval_metrics(self, counters: Mapping[str, int]) -> dict[str, Any]:
        unequal = counters.get("unequal", 0)
        return {"train_ordinal_error": counters.get("wrong", 0) / unequal if unequal else ""}

    def validate(self, model: nn.Module) -> dict[str, float]:
        if len(self.val_set) == 0:
            return {}
        c, env = self.config, self.env
        return validate(model, self.val_set, device=env.device, batch_size=c.batch_size, n_pairs=c.n_pairs,
                        sigma=c.sigma, loss=c.loss, drop_ratio=c.drop_ratio, seed=c.seed,
                        channels_last=env.use_channels_last, amp=env.use_amp)

    def check_resume(self, meta: dict[str, Any], path: Path) -> None:
        if meta["arch"] != self.config.arch:
            raise ValueError(f"{path} holds {meta['arch']!r}, not {self.config.arch!r}")
        fingerprint = self.meta["dataset"]["manifest_sha256"]
        if meta.get("dataset", {}).get("manifest_sha256") != fingerprint and self.env.is_main:
            log.warning("resuming on a dataset whose manifest differs from the checkpoint's")


def _open_data(data: str | os.PathLike, size: tuple[int, int], config: TrainConfig, *, is_main: bool):
    """(layout, train set, val set); ``n_train_images``: a fixed seeded subset of the training items."""
    layout = check_training_data(data, layout=config.layout, val_fraction=config.val_fraction)
    train_set = open_dataset(data, "train", RandomCropFlip(size, config.flip_p), layout=layout,
                             val_fraction=config.val_fraction)
    val_set = open_dataset(data, "val", CenterCrop(size), layout=layout, val_fraction=config.val_fraction)
    n = config.n_train_images
    if n is not None:
        if n > len(train_set) and is_main:
            log.warning("n_train_images=%d but the dataset has %d training items: using all", n,
                        len(train_set))
        order = np.random.default_rng(derive_seed(0x5B5E7)).permutation(len(train_set.ids))
        train_set.ids = [train_set.ids[i] for i in sorted(order[:n])]
    return layout, train_set, val_set


def _loop_settings(c: TrainConfig, total_steps: int, progress: bool) -> LoopSettings:
    return LoopSettings(total_steps=total_steps, batch_size=c.batch_size, seed=c.seed, optimizer=c.optimizer,
                        lr=c.lr, backbone_lr_mult=c.backbone_lr_mult, momentum=c.momentum,
                        weight_decay=c.weight_decay, lr_schedule=c.lr_schedule, grad_clip=c.grad_clip,
                        num_workers=c.num_workers, log_every=c.log_every, checkpoint_every=c.checkpoint_every,
                        val_every=c.val_every, progress=progress, halt_on_nonfinite=False)


def train(
    *,
    data: str | os.PathLike,
    run_dir: str | os.PathLike,
    config: TrainConfig | None = None,
    resume: str | os.PathLike | bool | None = None,
    progress: bool = True,
    extra_config: dict[str, Any] | None = None,
) -> TrainResult:
    """Train on the dataset in ``data`` into ``run_dir``; see the module docstring for the outputs.

    Args:
        data: dataset folder (layout detected unless ``config.layout`` is given).
        run_dir: output folder (created).
        config: every training setting (:class:`model.config.TrainConfig`, the one home of their
            defaults; None = all defaults). Among them: ``arch`` (:func:`model.registry.list_models`)
            and ``arch_kwargs`` (stored in the checkpoint so :func:`model.checkpoint.load_model`
            rebuilds the same net); ``pretrained`` / ``weights_path`` (ImageNet backbone from a file or
            torchvision's local cache; when none is found it logs that it trains from scratch);
            ``input_size`` (crop, S or (H, W)); ``iterations`` / ``epochs`` (exactly one);
            ``optimizer``, ``lr`` (the head's), ``backbone_lr_mult`` (only when the backbone is
            pretrained), ``lr_schedule``; ``loss`` and ``drop_ratio``; ``n_pairs``, ``sigma``,
            ``edge_fraction`` (:func:`model.sampling.sample_pairs`); ``val_every``,
            ``checkpoint_every``, ``log_every`` in steps (validation and a checkpoint also at the
            end); ``device`` (AMP and channels-last only on CUDA); ``n_train_images``: the first N of
            a fixed permutation of the training ids (Fig. 5: nested subsets, independent of ``seed``).
        resume: a checkpoint path, or True / ``"auto"`` for ``run_dir/checkpoints/last.pt`` if it exists.
        progress: show a progress bar (rank 0).
        extra_config: more configuration to record in the checkpoint and train_config.yaml.

    Returns:
        :class:`TrainResult`.
    """
    c = config or TrainConfig()
    size = (c.input_size,) * 2 if isinstance(c.input_size, int) else tuple(int(s) for s in c.input_size)
    env = Env.join(c.device, amp=c.amp, channels_last=c.channels_last, distributed=True)
    run_dir = Path(run_dir)
    resume_from = resume_path(resume, run_dir / "checkpoints" / "last.pt", is_main=env.is_main)
    layout, train_set, val_set = _open_data(data, size, c, is_main=env.is_main)
    spe = steps_per_epoch(len(train_set), c.batch_size, env.world_size)
    total_steps = c.iterations if c.iterations is not None else c.epochs * spe
    torch.manual_seed(c.seed)  # initial weights depend on the seed only
    model = build_model(c.arch, pretrained=c.pretrained, weights_path=c.weights_path, **c.arch_kwargs)
    model.to(env.device)
    backbone_pretrained = bool(getattr(model, "backbone_pretrained", False))
    if not backbone_pretrained and env.is_main:
        log.warning("%s: backbone not pretrained: training from scratch", c.arch)

    effective = plain({
        "data": str(Path(data).resolve()), "run_dir": str(run_dir.resolve()), **c.model_dump(),
        "input_size": list(size), "resume": str(resume_from) if resume_from else None, "progress": progress,
        "layout": layout, "device_resolved": str(env.device), "world_size": env.world_size,
        "total_steps": total_steps, "steps_per_epoch": spe, "amp_used": env.use_amp,
        "channels_last_used": env.use_channels_last, "backbone_pretrained": backbone_pretrained,
        "extra_config": extra_config or {},
    })  # fmt: skip
    meta = {
        "task": "relative_depth", "arch": c.arch,
        # Without pretrained/weights_path: the checkpoint holds all weights, loading looks nothing up.
        "arch_kwargs": plain(c.arch_kwargs), "input_size": list(size), "normalization": NORMALIZATION,
        "output": OUTPUT_DESCRIPTION, "config": effective,
        "dataset": {"path": str(Path(data).resolve()), "layout": layout,
                    "manifest_sha256": dataset_fingerprint(data), "n_train": len(train_set),
                    "n_val": len(val_set)},
        "code_version": code_version(), "backbone_pretrained": backbone_pretrained,
    }  # fmt: skip
    task = RelativeDepthTask(c, val_set, env, meta=meta, effective=effective)
    fitted = fit(task, model, train_set, _loop_settings(c, total_steps, progress), env, run_dir, resume_from)
    final_path = run_dir / "model.pt"
    if env.is_main:
        final_meta = {**meta, "step": fitted.step, "epoch": fitted.step / spe, "metrics": fitted.metrics}
        save_checkpoint(final_path, model=fitted.model, meta=final_meta)
    env.close()
    return TrainResult(run_dir=run_dir, checkpoint=final_path, step=fitted.step, metrics=fitted.metrics,
                       last_checkpoint=run_dir / "checkpoints" / "last.pt")


# ----------------------------------------------------------------------------- entry point for torchrun


def main(argv: list[str] | None = None) -> int:
    """``python -m model.train --data DIR --run-dir DIR ...``: the plain entry point, for torchrun."""
    from model.train_args import add_train_arguments, train_kwargs_from_args

    parser = argparse.ArgumentParser(prog="python -m model.train", description=__doc__.split("\n")[0])
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    if not args.run_dir:
        parser.error("--run-dir is required")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    given = train_kwargs_from_args(args, {})  # what the command line gave; TrainConfig has the rest
    config = TrainConfig(**{k: v for k, v in given.items() if k in TrainConfig.model_fields})
    result = train(data=args.data, run_dir=args.run_dir, config=config, resume=given.get("resume"),
                   progress=given.get("progress", True))
    if int(os.environ.get("RANK", "0")) == 0:
        print(result.checkpoint)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
