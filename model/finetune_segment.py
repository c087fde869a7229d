"""Transfer to semantic segmentation on PASCAL VOC 2012 (ReDWeb Sec. 4.3), as a plain function.

``finetune_segment(voc=DIR, sbd=DIR, run_dir=..., init=CHECKPOINT|"imagenet"|"scratch")``:

* network: ``resnet101_fusion`` (the paper fine-tunes a ReDWeb-pretrained ResNet-101 network) with a
  21-class head (:mod:`model.finetune` explains the initialisations);
* training set: VOC 2012 train + SBD (*train_aug*, :func:`model.voc.train_aug_ids`); per sample a
  random scale in [0.5, 2.0], a random ``crop_size`` crop (padded with the mean colour and the void
  label where the image is smaller) and a horizontal flip (the DeepLab recipe); pixel-wise
  cross-entropy ignoring label 255; SGD with the poly schedule;
* evaluation: VOC 2012 val at full resolution (padded to the network stride), mIoU over the 21
  classes from the summed confusion matrix (:func:`model.metrics.segmentation_scores`), void
  (255) pixels ignored.

Writes ``run_dir/model.pt`` (``task: segmentation``), ``metrics.csv``, ``metrics.json``,
``finetune_config.yaml`` and ``checkpoints/last.pt`` (resumable, see :func:`model.engine.fit`).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from core.progress import track
from model.finetune import FinetuneResult
from model.voc import IGNORE_INDEX, N_CLASSES, VOC_CLASSES, SegmentationSource, train_aug_ids, voc_ids

log = logging.getLogger(__name__)

DEFAULT_ARCH = "resnet101_fusion"  # for init=imagenet|scratch; a checkpoint init keeps its own

TASK = "segmentation"
OUTPUT_DESCRIPTION = "B21HW class logits at the input size (PASCAL VOC order, see head.classes); argmax = label"


class SegmentationDataset(Dataset):
    """VOC/SBD items with the DeepLab augmentation; samples ``{"image" 3HW, "label" HW int64, "id"}``."""

    def __init__(self, source: SegmentationSource, ids: Sequence[str], crop_size: int | tuple[int, int] = 321,
                 scale_range: tuple[float, float] = (0.5, 2.0), flip_p: float = 0.5) -> None:
        self.source, self.ids = source, list(ids)
        self.crop = (crop_size, crop_size) if isinstance(crop_size, int) else tuple(crop_size)
        self.scale_range, self.flip_p = scale_range, flip_p

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        import cv2

        from model.data import normalize_image

        # (index, seed): the fine-tuning loop gives every sample of every epoch its own seed, so a
        # resumed run augments exactly as the uninterrupted one; a bare index draws from torch's RNG.
        index, seed = key if isinstance(key, tuple) else (key, int(torch.randint(0, 2**62, (1,)).item()))
        raw = self.source.load(self.ids[index])
        rng = np.random.default_rng(seed)
        rgb, label = raw["rgb"], raw["label"]
        s = float(rng.uniform(*self.scale_range))
        h, w = label.shape
        nh, nw = max(1, int(round(h * s))), max(1, int(round(w * s)))
        rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        label = cv2.resize(label, (nw, nh), interpolation=cv2.INTER_NEAREST)
        ch, cw = self.crop
        image = normalize_image(rgb)  # padding with 0 after normalisation = the mean colour
        ph, pw = max(0, ch - nh), max(0, cw - nw)
        if ph or pw:
            image = F.pad(image, (0, pw, 0, ph), value=0.0)
            label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
        H, W = label.shape
        y0, x0 = int(rng.integers(0, H - ch + 1)), int(rng.integers(0, W - cw + 1))
        image = image[:, y0:y0 + ch, x0:x0 + cw]
        label = label[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < self.flip_p:
            image, label = image.flip(-1), label[:, ::-1]
        return {"image": image.contiguous(), "label": torch.from_numpy(np.ascontiguousarray(label)).long(),
                "id": raw["id"]}


def segmentation_loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross-entropy, void (255) ignored; logits (B,C,H,W), label (B,H,W) int64."""
    if not (label != IGNORE_INDEX).any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits, label, ignore_index=IGNORE_INDEX)


@torch.no_grad()
def predict_labels(model: torch.nn.Module, rgb: np.ndarray, device: torch.device, stride: int = 32) -> np.ndarray:
    """``(H,W,3)`` uint8 -> ``(H,W)`` int64 labels: full resolution, padded to ``stride`` then cropped."""
    from model.data import normalize_image

    x = normalize_image(rgb)[None]
    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    x = F.pad(x, (0, pw, 0, ph), value=0.0).to(device)
    logits = model(x)[:, :, :h, :w]
    return logits.argmax(1)[0].cpu().numpy()


def evaluate_segmentation(model: torch.nn.Module, source: SegmentationSource, ids: Sequence[str], *,
                          device: torch.device, progress: bool = False) -> dict[str, float]:
    """mIoU etc. on ``ids`` (one summed confusion matrix over all images)."""
    from model import metrics as M

    model.eval()
    conf = np.zeros((N_CLASSES, N_CLASSES), dtype=np.int64)
    for item in track(ids, desc="evaluate", unit="img", enabled=progress):
        raw = source.load(item)
        conf += M.confusion_matrix(predict_labels(model, raw["rgb"], device), raw["label"], N_CLASSES, IGNORE_INDEX)
    scores = M.segmentation_scores(conf)
    scores["n_images"] = float(len(ids))
    return scores


def finetune_segment(
    *,
    voc: str | os.PathLike,
    run_dir: str | os.PathLike,
    sbd: str | os.PathLike | None = None,
    init: str | os.PathLike = "imagenet",
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    weights_path: str | None = None,
    crop_size: int = 321,
    batch_size: int = 10,
    iterations: int = 20000,
    optimizer: str = "sgd",
    lr: float = 0.01,
    backbone_lr_mult: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    eval_max_images: int | None = None,
    device: str = "auto",
    seed: int = 0,
    num_workers: int = 2,
    log_every: int = 10,
    checkpoint_every: int = 1000,
    resume: bool | str | None = None,
    amp: bool = True,
    progress: bool = False,
) -> FinetuneResult:
    """Fine-tune for 21-class VOC segmentation and score VOC val (see the module docstring).

    arch: default :data:`DEFAULT_ARCH`; with a checkpoint ``init`` it must match (or be None).
    eval_max_images: score only the first N val images (quick checks); None = all 1,449.
    checkpoint_every, resume: ``run_dir/checkpoints/last.pt`` every N steps; ``resume=True``
    continues an interrupted run in ``run_dir`` at its step (:func:`model.engine.fit`).
    """
    arguments = dict(locals())  # first: only the parameters
    from model.checkpoint import save_checkpoint
    from model.finetune import finetuned_meta, train_finetune

    run = Path(run_dir)
    source = SegmentationSource(voc, sbd)
    train_ids = train_aug_ids(source.voc, source.sbd)
    val_ids = voc_ids(source.voc, "val")
    if not train_ids:
        raise ValueError(f"{voc}: no training images")
    log.info("VOC segmentation: %d training (train_aug), %d val images", len(train_ids), len(val_ids))
    trained = train_finetune(arguments, SegmentationDataset(source, train_ids, crop_size=crop_size),
                             lambda pred, batch: segmentation_loss(pred, batch["label"]), out_channels=N_CLASSES,
                             default_arch=DEFAULT_ARCH)
    last = trained.last
    scored = val_ids if eval_max_images is None else val_ids[:eval_max_images]
    scores = evaluate_segmentation(trained.model, source, scored, device=trained.device, progress=progress)
    meta = finetuned_meta(
        trained, task=TASK,
        head={"module": "output", "out_channels": N_CLASSES, "activation": "logits", "classes": list(VOC_CLASSES),
              "ignore_index": IGNORE_INDEX, "loss": "cross_entropy"},
        input_size=[crop_size, crop_size], output=OUTPUT_DESCRIPTION,
        dataset={"voc": str(source.voc.resolve()), "sbd": str(source.sbd.resolve()) if source.sbd else None,
                 "layout": "voc2012+sbd", "n_train": len(train_ids), "n_val": len(val_ids)},
        metrics={"train_loss": last.get("loss"), "miou": scores["miou"], "pixel_acc": scores["pixel_acc"]})
    checkpoint = save_checkpoint(run / "model.pt", model=trained.model, meta=meta)
    doc = {"task": TASK, "benchmark": "voc2012_val", "init": trained.init_info["init"],
           "arch": trained.init_info["arch"], "miou": scores["miou"], "pixel_acc": scores["pixel_acc"],
           "mean_acc": scores["mean_acc"], "iou": {VOC_CLASSES[k]: scores[f"iou_{k}"] for k in range(N_CLASSES)},
           "n_images": scores["n_images"],
           "settings": {"crop_size": crop_size, "iterations": iterations, "n_train": len(train_ids),
                        "train_loss": last.get("loss"), "resumed_from_step": trained.resumed_from}}
    (run / "metrics.json").write_text(json.dumps(_nan_to_none(doc), indent=2) + "\n")
    return FinetuneResult(run, checkpoint, doc)


def _nan_to_none(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _nan_to_none(x) for k, x in v.items()}
    if isinstance(v, float) and v != v:
        return None
    return v


def format_segmentation(doc: dict[str, Any]) -> str:
    return (f"{doc.get('init', 'model')}: mIoU {doc['miou']:.4f}  pixel acc {doc['pixel_acc']:.4f}  "
            f"mean acc {doc['mean_acc']:.4f}  ({int(doc['n_images'])} VOC val images)")
