"""Run a trained network on images of any size; write 16-bit depth PNGs and colour previews.

Shapes: an image is ``(H, W, 3)`` uint8 RGB; the network takes ``(B, 3, H, W)`` normalized float
and returns ``(B, 1, H, W)`` relative depth, **larger = farther** (see :mod:`model.networks`).
Inputs are optionally downscaled so the longer side is at most ``max_side`` (a 24-MP photo would not
fit in memory), padded on the bottom/right to a multiple of the network stride by edge replication,
run in batches of equal-sized inputs, un-padded, and resized bilinearly back to the original size.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from core.progress import progress as progress_bar
from core.rules import IMAGENET_MEAN, IMAGENET_STD, colorize_depth, resolve_device  # noqa: F401

log = logging.getLogger(__name__)

DEFAULT_STRIDE = 32  # ResNet output stride of the fusion networks
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".thumb")


@dataclass(frozen=True)
class InputSpec:
    """How a checkpoint's network wants its input (read from the checkpoint's metadata)."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    stride: int = DEFAULT_STRIDE

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> "InputSpec":
        """Read ``normalization``/``mean``/``std`` and ``stride`` from checkpoint metadata, with
        ImageNet statistics and stride 32 as defaults for anything it does not say."""
        meta = dict(meta or {})
        norm = meta.get("normalization") or meta.get("normalize") or {}
        if not isinstance(norm, Mapping):
            norm = {}
        mean = norm.get("mean", meta.get("mean", IMAGENET_MEAN))
        std = norm.get("std", meta.get("std", IMAGENET_STD))
        stride = meta.get("stride") or meta.get("output_stride") or DEFAULT_STRIDE
        return cls(tuple(float(v) for v in mean), tuple(float(v) for v in std), int(stride))


def resize_map(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a ``(h, w)`` map to ``size = (H, W)`` (no-op if already that size).

    float64 input stays float64 (evaluation precision); anything else becomes float32.
    """
    import cv2

    a = np.asarray(array)
    a = a.astype(np.float64 if a.dtype == np.float64 else np.float32, copy=False)
    if a.shape == tuple(size):
        return a
    return cv2.resize(a, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)


def fit_max_side(shape: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """``(H, W)`` scaled down (never up) so that ``max(H, W) <= max_side``."""
    h, w = shape
    if not max_side or max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _to_tensor(images: Sequence[np.ndarray], spec: InputSpec):
    import torch

    batch = torch.from_numpy(np.stack(images).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    mean = torch.tensor(spec.mean, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(spec.std, dtype=torch.float32).view(1, 3, 1, 1)
    return (batch - mean) / std


def pad_to_stride(batch, stride: int):
    """Pad a ``(B, C, H, W)`` tensor bottom/right by edge replication to multiples of ``stride``."""
    import torch.nn.functional as F

    h, w = batch.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    if ph or pw:
        batch = F.pad(batch, (0, pw, 0, ph), mode="replicate")
    return batch


def predict_batch(model, images: Sequence[np.ndarray], spec: InputSpec = InputSpec(), device: str = "cpu") -> np.ndarray:
    """Equal-sized ``(H, W, 3)`` uint8 images -> ``(B, H, W)`` float32 depth (larger = farther)."""
    import torch

    if len({im.shape for im in images}) != 1:
        raise ValueError("predict_batch needs images of one size; group them first")
    h, w = images[0].shape[:2]
    x = pad_to_stride(_to_tensor(images, spec), spec.stride).to(device)
    with torch.inference_mode():
        y = model(x)
    if y.ndim == 3:
        y = y.unsqueeze(1)
    return y[:, 0, :h, :w].float().cpu().numpy()


def predict_image(
    model, image: np.ndarray, spec: InputSpec = InputSpec(), device: str = "cpu", max_side: int | None = None
) -> np.ndarray:
    """One ``(H, W, 3)`` uint8 image -> ``(H, W)`` float32 depth at the image's own resolution."""
    import cv2

    h, w = image.shape[:2]
    th, tw = fit_max_side((h, w), max_side)
    x = image if (th, tw) == (h, w) else cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)
    return resize_map(predict_batch(model, [x], spec, device)[0], (h, w))


def depth_to_uint16(depth: np.ndarray) -> np.ndarray:
    """Min-max scale a depth map to uint16 (larger = farther); a constant map becomes 0."""
    d = np.asarray(depth, dtype=np.float64)
    lo, hi = float(d.min()), float(d.max())
    if hi <= lo:
        return np.zeros(d.shape, dtype=np.uint16)
    return np.round((d - lo) / (hi - lo) * 65535.0).astype(np.uint16)


def colorize(depth: np.ndarray, cmap: str = "magma", mask: np.ndarray | None = None) -> np.ndarray:
    """``(H, W)`` depth -> ``(H, W, 3)`` uint8 preview, dark = close, bright = far (ReDWeb's convention).

    Scaled between the 2nd and 98th percentile (of ``mask`` pixels, if given) so a few outliers
    do not wash the picture out.
    """
    d = np.asarray(depth, dtype=np.float64)
    return colorize_depth(d, valid=mask, sky=np.zeros(d.shape, bool), colormap=cmap, near="dark",
                          invalid_rgb=(128, 128, 128))  # grey where there is no ground truth


def list_images(inputs: Iterable[str | Path]) -> list[Path]:
    """Expand files and folders (non-recursive) into a sorted list of image files."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    return out


def predict_files(
    model,
    paths: Sequence[str | Path],
    out_dir: str | Path,
    *,
    spec: InputSpec = InputSpec(),
    device: str = "cpu",
    batch_size: int = 4,
    max_side: int | None = 1024,
    previews: bool = True,
    save_npy: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Predict every image in ``paths``; write ``OUT/<stem>.png`` (uint16 depth, larger = farther,
    min-max scaled per image), ``OUT/preview/<stem>.jpg`` (colourized) and, with ``save_npy``,
    ``OUT/<stem>.npy`` (raw float32). Returns the 16-bit PNG paths in input order.

    Images are grouped by their (downscaled) size so that equal-sized inputs share a batch; the
    folder can be scored directly with ``redweb evaluate --predictions OUT``.
    """
    import cv2
    from model.benchmarks import read_image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if previews:
        (out / "preview").mkdir(exist_ok=True)
    paths = [Path(p) for p in paths]
    stems = [p.stem for p in paths]
    dupes = {s for s in stems if stems.count(s) > 1}
    if dupes:
        raise ValueError(f"images with the same file stem would overwrite each other: {sorted(dupes)[:5]}")

    # Read sizes first (headers only) to group equal-sized inputs into batches.
    from PIL import Image

    def target_size(p: Path) -> tuple[int, int]:
        with Image.open(p) as im:
            return fit_max_side((im.height, im.width), max_side)

    groups: dict[tuple[int, int], list[int]] = {}
    for i, p in enumerate(paths):
        groups.setdefault(target_size(p), []).append(i)
    batches = [idx[k : k + batch_size] for idx in groups.values() for k in range(0, len(idx), batch_size)]

    written: dict[int, Path] = {}
    bar = progress_bar(len(paths), desc="predict", unit="img", enabled=progress)
    for batch in batches:
        originals = [read_image(paths[i]) for i in batch]
        inputs = []
        for im in originals:
            th, tw = fit_max_side(im.shape[:2], max_side)
            inputs.append(im if (th, tw) == im.shape[:2] else cv2.resize(im, (tw, th), interpolation=cv2.INTER_AREA))
        preds = predict_batch(model, inputs, spec, device)
        for i, im, pred in zip(batch, originals, preds):
            depth = resize_map(pred, im.shape[:2])
            png = out / f"{paths[i].stem}.png"
            cv2.imwrite(str(png), depth_to_uint16(depth))
            if save_npy:
                np.save(out / f"{paths[i].stem}.npy", depth.astype(np.float32))
            if previews:
                cv2.imwrite(str(out / "preview" / f"{paths[i].stem}.jpg"), colorize(depth)[..., ::-1])
            written[i] = png
        bar.update(len(batch))
    bar.close()
    return [written[i] for i in range(len(paths))]


def load_checkpoint_model(checkpoint: str | Path, device: str = "cpu"):
    """``(model in eval mode, InputSpec, meta)`` from a checkpoint written by ``redweb train``."""
    from model.checkpoint import load_model

    model, meta = load_model(checkpoint, device)
    if isinstance(meta, Mapping) and meta.get("task") == "segmentation":
        # class logits are no depth: ordering them would give meaningless scores
        raise ValueError(f"{checkpoint} is a segmentation checkpoint (task: segmentation); "
                         "depth evaluation and prediction need a relative- or metric-depth checkpoint")
    model.eval()
    return model, InputSpec.from_meta(meta), meta
