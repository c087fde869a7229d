"""Small data in the official layouts of the paper's transfer benchmarks.

* :func:`make_nyu_mat`: an NYUv2 ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5) with ``images``
  ``(N, 3, W, H)`` uint8 and ``depths`` ``(N, W, H)`` float32 metres, as MATLAB stores them
  transposed; plus a split file of 1-based test indices.
* :func:`make_voc_sbd`: ``VOCdevkit/VOC2012`` (JPEGImages, palette SegmentationClass PNGs with void
  255 borders, ImageSets/Segmentation/{train,val}.txt) and ``benchmark_RELEASE/dataset`` (img/,
  cls/<id>.mat with the ``GTcls.Segmentation`` struct field, train.txt, val.txt).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def nyu_scene(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """A room-like scene: depth from 1 m (bottom) to 6 m (top), a box at 1.5-3 m, a hole of zeros."""
    ys = np.linspace(0, 1, h)[:, None].repeat(w, 1)
    depth = 6.0 - 5.0 * ys
    y0, x0 = int(rng.integers(0, h // 2)), int(rng.integers(0, w // 2))
    depth[y0:y0 + h // 3, x0:x0 + w // 3] = rng.uniform(1.5, 3.0)
    rgb = np.stack([255 - depth * 35, depth * 30, np.full_like(depth, 90)], -1) + rng.normal(0, 5, (h, w, 3))
    depth[0, :3] = 0.0  # missing Kinect depth
    return np.clip(rgb, 0, 255).astype(np.uint8), depth.astype(np.float32)


def make_nyu_mat(path: Path, n: int = 8, h: int = 24, w: int = 32, test: tuple[int, ...] = (2, 5, 8),
                 seed: int = 0) -> tuple[Path, Path]:
    import h5py

    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", (n, 3, w, h), np.uint8)
        depths = f.create_dataset("depths", (n, w, h), np.float32)
        for i in range(n):
            rgb, depth = nyu_scene(rng, h, w)
            images[i] = rgb.transpose(2, 1, 0)
            depths[i] = depth.T
    split = path.with_name("test_indices.txt")
    split.write_text("\n".join(str(i) for i in test) + "\n")
    return path, split


def _labelled_image(rng: np.random.Generator, h: int, w: int, cls: int) -> tuple[np.ndarray, np.ndarray]:
    label = np.zeros((h, w), np.uint8)
    y0, x0 = int(rng.integers(2, h // 2)), int(rng.integers(2, w // 2))
    y1, x1 = y0 + h // 3, x0 + w // 3
    label[y0:y1, x0:x1] = cls
    rgb = np.full((h, w, 3), 40, np.float64)
    colour = np.array([(cls * 53) % 256, (cls * 97) % 256, (cls * 151) % 256])
    rgb[label == cls] = colour
    rgb += rng.normal(0, 4, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), label


def _voc_palette() -> list[int]:
    palette = []
    for k in range(256):
        r = g = b = 0
        c = k
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


VOC_TRAIN = ("2007_000032", "2007_000039", "2007_000063")
VOC_VAL = ("2007_000033", "2007_000042")
SBD_TRAIN = ("2007_000039", "2007_000042", "2008_000002")  # one also in VOC train, one in VOC val
SBD_VAL = ("2008_000003",)


def make_voc_sbd(root: Path, h: int = 40, w: int = 48, seed: int = 0) -> tuple[Path, Path]:
    """Returns ``(VOCdevkit folder, benchmark_RELEASE folder)``."""
    from PIL import Image
    from scipy.io import savemat

    rng = np.random.default_rng(seed)
    voc = root / "VOCdevkit" / "VOC2012"
    sbd = root / "benchmark_RELEASE" / "dataset"
    for d in (voc / "JPEGImages", voc / "SegmentationClass", voc / "ImageSets" / "Segmentation", sbd / "img", sbd / "cls"):
        d.mkdir(parents=True, exist_ok=True)
    palette = _voc_palette()
    for k, item in enumerate(VOC_TRAIN + VOC_VAL):
        rgb, label = _labelled_image(rng, h, w, 1 + k % 20)
        Image.fromarray(rgb).save(voc / "JPEGImages" / f"{item}.jpg", quality=95)
        # VOC's void band (255) around the object boundary
        edge = np.zeros_like(label, dtype=bool)
        edge[1:] |= label[1:] != label[:-1]
        edge[:, 1:] |= label[:, 1:] != label[:, :-1]
        voc_label = np.where(edge, 255, label).astype(np.uint8)
        im = Image.fromarray(voc_label, mode="P")
        im.putpalette(palette)
        im.save(voc / "SegmentationClass" / f"{item}.png")
    for k, item in enumerate(SBD_TRAIN + SBD_VAL):
        rgb, label = _labelled_image(rng, h, w, 1 + (k + 7) % 20)
        Image.fromarray(rgb).save(sbd / "img" / f"{item}.jpg", quality=95)
        savemat(sbd / "cls" / f"{item}.mat", {"GTcls": {"Segmentation": label, "Boundaries": np.zeros((1, 1)),
                                                        "CategoriesPresent": np.unique(label[label > 0])}})
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(VOC_TRAIN) + "\n")
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(VOC_VAL) + "\n")
    (sbd / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
    (sbd / "val.txt").write_text("\n".join(SBD_VAL) + "\n")
    return root / "VOCdevkit", root / "benchmark_RELEASE"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny CPU networks run ~6x faster on one intra-op thread than on two threads of a busy 2-core
    machine (0.07 s vs 0.40 s per resnet18 forward at 32 px, measured); restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
