"""PASCAL VOC 2012 segmentation and the Berkeley extended annotations (SBD), in their official layouts.

* VOC 2012 (``VOCtrainval_11-May-2012.tar``): ``VOCdevkit/VOC2012/JPEGImages/<id>.jpg``,
  ``SegmentationClass/<id>.png`` (palette PNG: the pixel values are class indices 0..20, 255 =
  void/border), ``ImageSets/Segmentation/{train,val}.txt``. ``--voc`` may name ``VOC2012``, the
  ``VOCdevkit`` above it, or the folder holding ``VOCdevkit``.
* SBD (``benchmark.tgz``): ``benchmark_RELEASE/dataset/img/<id>.jpg``, ``cls/<id>.mat`` (MATLAB
  struct ``GTcls`` with field ``Segmentation``: class indices 0..20), ``train.txt``, ``val.txt``.
  ``--sbd`` may name ``benchmark_RELEASE``, its ``dataset`` folder, or the folder holding it.

The training list is the usual *train_aug* (:func:`train_aug_ids`): VOC train + SBD train + SBD val,
minus every VOC val image (10,582 images with the real data). An image's label comes from VOC's
``SegmentationClass`` when VOC has one (the finer annotation, with its void borders), else from SBD.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
N_CLASSES = len(VOC_CLASSES)
IGNORE_INDEX = 255


def find_voc_root(path: str | os.PathLike) -> Path:
    """The ``VOC2012`` folder (with ``JPEGImages`` and ``ImageSets/Segmentation``) at or under ``path``."""
    p = Path(path)
    for candidate in (p, p / "VOC2012", p / "VOCdevkit" / "VOC2012"):
        if (candidate / "JPEGImages").is_dir() and (candidate / "ImageSets" / "Segmentation").is_dir():
            return candidate
    raise FileNotFoundError(f"{p}: no VOC 2012 tree (expected VOCdevkit/VOC2012/JPEGImages and ImageSets/Segmentation)")


def find_sbd_root(path: str | os.PathLike) -> Path:
    """SBD's ``dataset`` folder (with ``cls/``, ``img/``, ``train.txt``) at or under ``path``."""
    p = Path(path)
    for candidate in (p, p / "dataset", p / "benchmark_RELEASE" / "dataset"):
        if (candidate / "cls").is_dir() and (candidate / "train.txt").is_file():
            return candidate
    raise FileNotFoundError(f"{p}: no SBD tree (expected benchmark_RELEASE/dataset/cls/ and train.txt)")


def read_id_list(path: Path) -> list[str]:
    return [line.strip().split()[0] for line in path.read_text().splitlines() if line.strip()]


def voc_ids(voc_root: Path, split: str) -> list[str]:
    return read_id_list(voc_root / "ImageSets" / "Segmentation" / f"{split}.txt")


def train_aug_ids(voc_root: Path, sbd_root: Path | None) -> list[str]:
    """VOC train (+ SBD train + SBD val) minus VOC val, sorted."""
    ids = set(voc_ids(voc_root, "train"))
    if sbd_root is not None:
        for name in ("train.txt", "val.txt"):
            if (sbd_root / name).is_file():
                ids |= set(read_id_list(sbd_root / name))
    return sorted(ids - set(voc_ids(voc_root, "val")))


def read_voc_label(path: Path) -> np.ndarray:
    """A VOC ``SegmentationClass`` PNG -> ``(H,W)`` uint8 class indices (255 = void)."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise ValueError(f"{path}: a VOC label must be a palette (P) or grey (L) PNG, got mode {im.mode}")
        return np.asarray(im, dtype=np.uint8).copy()


def read_sbd_label(path: Path) -> np.ndarray:
    """An SBD ``cls/<id>.mat`` -> ``(H,W)`` uint8 class indices."""
    from scipy.io import loadmat

    mat = loadmat(path, squeeze_me=True, struct_as_record=False)
    if "GTcls" not in mat:
        raise ValueError(f"{path}: no GTcls struct (not an SBD cls file)")
    return np.asarray(mat["GTcls"].Segmentation, dtype=np.uint8)


class SegmentationSource:
    """Where each image and label of the VOC (+ SBD) trees is."""

    def __init__(self, voc: str | os.PathLike, sbd: str | os.PathLike | None = None) -> None:
        self.voc = find_voc_root(voc)
        self.sbd = find_sbd_root(sbd) if sbd is not None else None

    def image_path(self, item: str) -> Path:
        p = self.voc / "JPEGImages" / f"{item}.jpg"
        if p.is_file():
            return p
        if self.sbd is not None and (self.sbd / "img" / f"{item}.jpg").is_file():
            return self.sbd / "img" / f"{item}.jpg"
        raise FileNotFoundError(f"no image for {item} in VOC JPEGImages or SBD img/")

    def label(self, item: str) -> np.ndarray:
        p = self.voc / "SegmentationClass" / f"{item}.png"
        if p.is_file():
            return read_voc_label(p)
        if self.sbd is not None and (self.sbd / "cls" / f"{item}.mat").is_file():
            return read_sbd_label(self.sbd / "cls" / f"{item}.mat")
        raise FileNotFoundError(f"no label for {item} in VOC SegmentationClass or SBD cls/")

    def load(self, item: str) -> dict[str, Any]:
        from model.data import read_rgb

        rgb = read_rgb(self.image_path(item))
        label = self.label(item)
        if label.shape != rgb.shape[:2]:
            raise ValueError(f"{item}: label {label.shape} and image {rgb.shape[:2]} differ in size")
        return {"rgb": rgb, "label": label, "id": item}
