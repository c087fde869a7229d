"""Datasets, augmentation and a synthetic dataset maker, all on one sample schema.

Sample schema (one dict per item; a DataLoader batch stacks the tensors and lists the ids):

    ``image``: float32 (3,H,W), RGB normalised with the ImageNet mean/std
               (:data:`model.networks.IMAGENET_MEAN`, :data:`~model.networks.IMAGENET_STD`)
    ``depth``: float32 (1,H,W), relative depth >= 0, **larger = farther** (only ratios/orderings
               matter; pair labels use ``g_i / g_j`` with sigma = 0.02, see :mod:`model.sampling`)
    ``mask``:  bool (1,H,W), True where the depth label is reliable
    ``id``:    str, the item id (file stem)

Supported layouts (see :func:`open_dataset`, which detects them):

* our export (DESIGN.md): ``imgs/<id>.jpg``, ``RDs/<id>.png`` (uint16, larger = farther, sky = 65535),
  ``masks/<id>.png`` (uint8, 255 = reliable), ``manifest.csv`` (``id``, ``split`` in {train, val}).
  Depth is the stored value itself.
* the original ReDWeb release: ``Imgs/<id>.jpg``, ``RDs/<id>.png`` (8-bit, larger = farther), no
  masks (every pixel is reliable), no split (a deterministic hash split, ``val_fraction``).
* HR-WSI: ``imgs/<id>.jpg``, ``gts/<id>.png`` (disparity-like, **larger = closer**),
  ``valid_masks/<id>.png``; either directly under the root or under ``root/train`` and ``root/val``.
  Depth is ``1 / max(disparity, 0.5)``: the reciprocal makes ``g_i / g_j = d_j / d_i``, so the
  ordinal labels are exactly those of the disparity ratio with the order inverted; 0.5 (half a
  quantisation step) keeps zero disparity (infinitely far) finite and farthest.

Augmentation (paper, Sec. 5.1): random crop and horizontal flip to 384x384; images whose shorter
side is smaller than the crop are first resized so that it fits. Randomness comes from a
``numpy.random.Generator`` passed in, so training can make every crop reproducible from
``(seed, epoch, index)``: index a dataset with ``(index, seed)`` to get the same augmentation again.
"""
from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from core.rules import IMAGENET_MEAN, IMAGENET_STD, SKY_VALUE  # noqa: F401  (SKY_VALUE: re-exported)
from core.rules import split_for as _hash_split  # the export's split rule, for layouts without one
from tasks.publish.export import HEAD_COLUMNS, TAIL_COLUMNS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

RawSample = dict[str, Any]  # {"rgb": uint8 HxWx3, "depth": float32 HxW, "mask": bool HxW, "id": str}
Transform = Callable[[RawSample, np.random.Generator], RawSample]


def _cv2():
    import cv2  # opencv-python is a core dependency; imported lazily to keep import time small

    return cv2


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Image file -> uint8 (H,W,3) RGB."""
    cv2 = _cv2()
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """Single-channel PNG at its stored bit depth (uint8 or uint16) -> (H,W)."""
    cv2 = _cv2()
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise OSError(f"cannot read {path}")
    if arr.ndim == 3:  # a grey map saved as RGB: channels are equal, keep one
        arr = arr[..., 0]
    return arr


def normalize_image(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H,W,3) RGB -> float32 (3,H,W) ImageNet-normalised."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def to_sample(raw: RawSample) -> dict[str, Any]:
    """Raw numpy sample -> the tensor sample schema (see module docstring)."""
    return {
        "image": normalize_image(raw["rgb"]),
        "depth": torch.from_numpy(np.ascontiguousarray(raw["depth"], dtype=np.float32))[None],
        "mask": torch.from_numpy(np.ascontiguousarray(raw["mask"], dtype=bool))[None],
        "id": raw["id"],
    }


def _resize_to_cover(raw: RawSample, size: tuple[int, int]) -> RawSample:
    """Upscale (keeping aspect) so that H >= size[0] and W >= size[1]; no-op when already large enough."""
    h, w = raw["depth"].shape
    scale = max(size[0] / h, size[1] / w)
    if scale <= 1.0:
        return raw
    cv2 = _cv2()
    new_w, new_h = max(size[1], int(np.ceil(w * scale))), max(size[0], int(np.ceil(h * scale)))
    return {
        **raw,
        "rgb": cv2.resize(raw["rgb"], (new_w, new_h), interpolation=cv2.INTER_LINEAR),
        # Nearest for labels: interpolating relative depth across an occlusion would invent depths.
        "depth": cv2.resize(raw["depth"], (new_w, new_h), interpolation=cv2.INTER_NEAREST),
        "mask": cv2.resize(raw["mask"].astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST) > 0,
    }


def _crop(raw: RawSample, y0: int, x0: int, size: tuple[int, int]) -> RawSample:
    ys, xs = slice(y0, y0 + size[0]), slice(x0, x0 + size[1])
    return {**raw, "rgb": raw["rgb"][ys, xs], "depth": raw["depth"][ys, xs], "mask": raw["mask"][ys, xs]}


class RandomCropFlip:
    """Random crop to ``size`` (H, W) and horizontal flip with probability ``flip_p``."""

    def __init__(self, size: int | tuple[int, int] = 384, flip_p: float = 0.5) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.flip_p = flip_p

    def __call__(self, raw: RawSample, rng: np.random.Generator) -> RawSample:
        raw = _resize_to_cover(raw, self.size)
        h, w = raw["depth"].shape
        y0 = int(rng.integers(0, h - self.size[0] + 1))
        x0 = int(rng.integers(0, w - self.size[1] + 1))
        raw = _crop(raw, y0, x0, self.size)
        if rng.random() < self.flip_p:
            raw = {**raw, "rgb": raw["rgb"][:, ::-1], "depth": raw["depth"][:, ::-1], "mask": raw["mask"][:, ::-1]}
        return raw


class CenterCrop:
    """Deterministic centre crop to ``size`` (H, W), resizing first if the image is smaller (validation)."""

    def __init__(self, size: int | tuple[int, int] = 384) -> None:
        self.size = (size, size) if isinstance(size, int) else tuple(size)

    def __call__(self, raw: RawSample, rng: np.random.Generator | None = None) -> RawSample:
        raw = _resize_to_cover(raw, self.size)
        h, w = raw["depth"].shape
        return _crop(raw, (h - self.size[0]) // 2, (w - self.size[1]) // 2, self.size)


def _find_image(folder: Path, stem: str) -> Path:
    for ext in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
        path = folder / f"{stem}{ext}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no image for {stem!r} in {folder}")


class RelativeDepthDataset(Dataset):
    """Base class: a list of ids, a loader per id, an optional transform.

    Index with an ``int`` (a fresh, unseeded random augmentation) or with ``(index, seed)`` (the
    augmentation drawn from ``numpy.random.default_rng(seed)``, reproducible).
    """

    layout = "base"

    def __init__(self, root: str | os.PathLike, ids: Sequence[str], transform: Transform | None = None) -> None:
        self.root = Path(root)
        self.ids = list(ids)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    def load_raw(self, index: int) -> RawSample:
        raise NotImplementedError

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        raw = self.load_raw(int(index))
        if self.transform is not None:
            raw = self.transform(raw, np.random.default_rng(seed))
        return to_sample(raw)


class ExportDataset(RelativeDepthDataset):
    """Our export layout (imgs/, RDs/ uint16, masks/, manifest.csv with ``id`` and ``split``).

    Args:
        root: the export folder.
        split: ``"train"``, ``"val"`` or None (all rows).
        transform: e.g. :class:`RandomCropFlip`.
    """

    layout = "export"

    def __init__(self, root: str | os.PathLike, split: str | None = None, transform: Transform | None = None) -> None:
        root = Path(root)
        with open(root / "manifest.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        ids = [r["id"] for r in rows if split is None or r.get("split", "train") == split]
        super().__init__(root, ids, transform)

    def load_raw(self, index: int) -> RawSample:
        item = self.ids[index]
        rgb = read_rgb(_find_image(self.root / "imgs", item))
        depth = read_gray(self.root / "RDs" / f"{item}.png").astype(np.float32)
        mask_path = self.root / "masks" / f"{item}.png"
        mask = read_gray(mask_path) > 127 if mask_path.is_file() else np.ones(depth.shape, bool)
        return {"rgb": rgb, "depth": depth, "mask": mask, "id": item}


class ReDWebDataset(RelativeDepthDataset):
    """The original ReDWeb V1 release (Imgs/, RDs/ 8-bit larger = farther); every pixel reliable.

    The release has no split: ``val_fraction`` of the ids (by hash) form ``split="val"``.
    """

    layout = "redweb"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        transform: Transform | None = None,
        val_fraction: float = 0.0,
    ) -> None:
        root = Path(root)
        ids = sorted(p.stem for p in (root / "RDs").glob("*.png"))
        if split is not None:
            ids = [i for i in ids if _hash_split(i, val_fraction) == split]
        super().__init__(root, ids, transform)

    def load_raw(self, index: int) -> RawSample:
        item = self.ids[index]
        rgb = read_rgb(_find_image(self.root / "Imgs", item))
        depth = read_gray(self.root / "RDs" / f"{item}.png").astype(np.float32)
        return {"rgb": rgb, "depth": depth, "mask": np.ones(depth.shape, bool), "id": item}


class HRWSIDataset(RelativeDepthDataset):
    """HR-WSI (imgs/, gts/ disparity-like larger = closer, valid_masks/).

    ``root`` may hold the three folders, or ``train/`` and ``val/`` sub-folders that do; with the
    latter ``split`` picks the sub-folder. Without sub-folders ``val_fraction`` splits by hash.
    """

    layout = "hrwsi"

    def __init__(
        self,
        root: str | os.PathLike,
        split: str | None = None,
        transform: Transform | None = None,
        val_fraction: float = 0.0,
    ) -> None:
        root = Path(root)
        if not (root / "gts").is_dir() and split is not None and (root / split / "gts").is_dir():
            root, split_by_hash = root / split, False
        else:
            split_by_hash = split is not None
        ids = sorted(p.stem for p in (root / "gts").glob("*.png"))
        if split_by_hash:
            ids = [i for i in ids if _hash_split(i, val_fraction) == split]
        super().__init__(root, ids, transform)

    def load_raw(self, index: int) -> RawSample:
        item = self.ids[index]
        rgb = read_rgb(_find_image(self.root / "imgs", item))
        disparity = read_gray(self.root / "gts" / f"{item}.png").astype(np.float32)
        depth = 1.0 / np.maximum(disparity, 0.5)  # larger = farther; see module docstring
        mask_path = self.root / "valid_masks" / f"{item}.png"
        mask = read_gray(mask_path) > 127 if mask_path.is_file() else np.ones(depth.shape, bool)
        return {"rgb": rgb, "depth": depth.astype(np.float32), "mask": mask, "id": item}


class MissingDataError(ValueError):
    """Training or evaluation data missing or empty; the message is one line naming the folder and what
    was expected (the CLI prints it as it is; a deployment's flow run fails with it)."""


#: what a training folder must look like, for messages
EXPECTED_LAYOUTS = "an export (manifest.csv, imgs/, RDs/, masks/), a ReDWeb folder (Imgs/, RDs/) or HR-WSI (imgs/, gts/)"


def check_training_data(root: str | os.PathLike | None, *, layout: str | None = None,
                        val_fraction: float = 0.1) -> str:
    """Fail early, in one line, unless ``root`` is a dataset with training items; returns its layout.

    Called before anything starts (a flow, a DataLoader with worker processes, a grid of runs), so an
    empty or missing folder never surfaces as a worker crash deep inside training."""
    if root is None:
        raise MissingDataError(f"no training data given (expected {EXPECTED_LAYOUTS})")
    root = Path(root)
    if not root.is_dir():
        raise MissingDataError(f"{root}: no such folder (expected {EXPECTED_LAYOUTS})")
    try:
        layout = layout or detect_layout(root)
    except ValueError as exc:
        raise MissingDataError(str(exc)) from None
    n = len(open_dataset(root, "train", None, layout=layout, val_fraction=val_fraction))
    if n == 0:
        raise MissingDataError(f"{root}: no training items (layout {layout}; an empty export? accept maps "
                               "in the review UI or export other states first)")
    return layout


def check_evaluation_inputs(benchmark: str, annotations: str | os.PathLike, images: str | os.PathLike | None,
                            *, checkpoint: str | os.PathLike | None = None,
                            predictions: str | os.PathLike | None = None, split: str = "val") -> None:
    """Fail early, in one line, when what ``redweb evaluate`` reads is missing or empty: the model (a
    checkpoint file or a predictions folder), the annotations and the images; for ``redweb``, an export
    with items in ``split``."""
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise MissingDataError(f"{checkpoint}: no such checkpoint file (expected a redweb train model.pt)")
    if predictions is not None and not Path(predictions).is_dir():
        raise MissingDataError(f"{predictions}: no such folder (expected one depth prediction per image)")
    if not Path(annotations).exists():
        raise MissingDataError(f"{annotations}: not found (expected the {benchmark} annotations: a file or folder)")
    if images is not None and not Path(images).is_dir():
        raise MissingDataError(f"{images}: no such folder (expected the {benchmark} images)")
    if benchmark == "redweb":
        try:
            n = len(open_dataset(annotations, split, None, layout="export"))
        except (OSError, ValueError) as exc:
            raise MissingDataError(f"{annotations}: not a redweb export ({exc})") from None
        if n == 0:
            raise MissingDataError(f"{annotations}: no {split} items in the export (nothing to evaluate on)")


def detect_layout(root: str | os.PathLike) -> str:
    """``"export"``, ``"redweb"`` or ``"hrwsi"`` from the folders present under ``root``."""
    root = Path(root)
    if (root / "manifest.csv").is_file() and (root / "RDs").is_dir():
        return "export"
    if (root / "Imgs").is_dir() and (root / "RDs").is_dir():
        return "redweb"
    if (root / "gts").is_dir() or (root / "train" / "gts").is_dir():
        return "hrwsi"
    raise ValueError(
        f"{root}: not a known dataset layout (expected manifest.csv+imgs/+RDs/, Imgs/+RDs/, or imgs/+gts/)"
    )


def open_dataset(
    root: str | os.PathLike,
    split: str | None = None,
    transform: Transform | None = None,
    *,
    layout: str | None = None,
    val_fraction: float = 0.1,
) -> RelativeDepthDataset:
    """Open ``root`` in its layout (detected unless given). ``val_fraction`` applies to layouts
    without a stored split (ReDWeb, HR-WSI without train/ and val/)."""
    layout = layout or detect_layout(root)
    if layout == "export":
        return ExportDataset(root, split, transform)
    if layout == "redweb":
        return ReDWebDataset(root, split, transform, val_fraction=val_fraction)
    if layout == "hrwsi":
        return HRWSIDataset(root, split, transform, val_fraction=val_fraction)
    raise ValueError(f"unknown dataset layout {layout!r}")


def dataset_fingerprint(root: str | os.PathLike) -> str:
    """sha256 of ``manifest.csv`` when there is one, else of the sorted list of files and sizes."""
    root = Path(root)
    digest = hashlib.sha256()
    manifest = root / "manifest.csv"
    if manifest.is_file():
        digest.update(manifest.read_bytes())
        return digest.hexdigest()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(root).as_posix()}\t{path.stat().st_size}\n".encode())
    return digest.hexdigest()




def synthetic_scene(
    rng: np.random.Generator, height: int, width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One learnable scene: (rgb uint8 HxWx3, depth uint16 HxW larger = farther, mask uint8 0/255).

    A ground plane receding towards the horizon (depth grows upwards, brightness encodes it), sky
    above the horizon (65535, blue), and 2-4 coloured boxes standing on the ground, each closer than
    the ground behind it. A blob of unreliable pixels (mask 0) has random depth, to check masks matter.
    """
    ys = np.arange(height, dtype=np.float32)[:, None].repeat(width, 1)
    horizon = int(rng.integers(height // 6, height // 3))
    # Ground: depth from 60000 at the horizon to 2000 at the bottom row.
    t = np.clip((ys - horizon) / max(1, height - 1 - horizon), 0, 1)
    depth = 60000.0 - 58000.0 * t
    shade = 60 + 160 * t  # nearer ground is brighter
    tint = rng.uniform(0.6, 1.0, 3)
    rgb = np.stack([shade * tint[0], shade * tint[1], shade * 0.5 * tint[2]], -1)
    rgb[:horizon] = (110, 160, 235)
    depth[:horizon] = SKY_VALUE
    for _ in range(int(rng.integers(2, 5))):
        bw = int(rng.integers(width // 8, width // 3))
        bh = int(rng.integers(height // 8, height // 2))
        x0 = int(rng.integers(0, width - bw))
        bottom = int(rng.integers(horizon + bh // 2 + 1, height))
        top = max(horizon - bh // 3, bottom - bh)
        # The box stands at the ground depth of its bottom row, a little closer.
        box_depth = depth[min(bottom, height - 1), 0] * 0.8
        # Painter's order: only overwrite where the box is closer than what is there.
        region = (slice(top, bottom), slice(x0, x0 + bw))
        closer = depth[region] > box_depth
        depth[region] = np.where(closer, box_depth, depth[region])
        color = rng.uniform(40, 255, 3)
        rgb[region] = np.where(closer[..., None], color, rgb[region])
    rgb = np.clip(rgb + rng.normal(0, 4, rgb.shape), 0, 255).astype(np.uint8)
    mask = np.full((height, width), 255, np.uint8)
    cy, cx, r = int(rng.integers(0, height)), int(rng.integers(0, width)), max(2, min(height, width) // 10)
    blob = (ys - cy) ** 2 + (np.arange(width)[None, :] - cx) ** 2 < r * r
    mask[blob] = 0
    depth[blob] = rng.uniform(1000, 65000, int(blob.sum()))
    return rgb, np.round(depth).astype(np.uint16), mask


def make_synthetic_export(
    out_dir: str | os.PathLike,
    n: int = 8,
    size: int | tuple[int, int] = 96,
    seed: int = 0,
    val_fraction: float = 0.25,
) -> Path:
    """Write ``n`` synthetic items in our export layout (imgs/, RDs/, masks/, manifest.csv).

    Args:
        out_dir: destination folder (created).
        n: number of items.
        size: image size, an int (square) or (H, W).
        seed: makes the dataset reproducible.
        val_fraction: share of items (the last ones, at least 1 when n >= 2) with ``split=val``.

    Returns:
        ``out_dir`` as a Path.
    """
    cv2 = _cv2()
    out = Path(out_dir)
    for sub in ("imgs", "RDs", "masks"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    height, width = (size, size) if isinstance(size, int) else size
    if min(height, width) < 16:
        raise ValueError(f"synthetic images need sides >= 16 pixels, got {height}x{width}")
    rng = np.random.default_rng(seed)
    n_val = min(n - 1, max(1, round(n * val_fraction))) if n >= 2 and val_fraction > 0 else 0
    rows = []
    for k in range(n):
        item = f"synthetic_{seed}_{k:04d}"
        rgb, depth, mask = synthetic_scene(rng, height, width)
        cv2.imwrite(str(out / "imgs" / f"{item}.jpg"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(out / "RDs" / f"{item}.png"), depth)
        cv2.imwrite(str(out / "masks" / f"{item}.png"), mask)
        rows.append({
            "id": item, "split": "val" if k >= n - n_val else "train", "state": "accepted",
            "source": "synthetic", "source_id": str(k), "url": "", "owner": "", "license": "CC0",
            "stereo_format": "synthetic", "swapped": "false", "crop_x0": 0, "crop_y0": 0,
            "crop_x1": width, "crop_y1": height, "source_frame": 0, "source_x0": 0, "source_y0": 0,
            "source_x1": width, "source_y1": height, "width": width, "height": height, "reviewer": "",
            "decided_at": "",
        })  # fmt: skip
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[*HEAD_COLUMNS, *TAIL_COLUMNS])  # the export's columns
        writer.writeheader()
        writer.writerows(rows)
    return out
