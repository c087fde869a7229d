"""Transfer to metric depth on NYUv2 (ReDWeb Sec. 4.3, Table 7), as a plain function.

``finetune_depth(data="nyu_depth_v2_labeled.mat", run_dir=..., init=CHECKPOINT|"imagenet"|"scratch")``:

1. **Split**: the official 795 training / 654 test images of the labeled ``.mat``
   (:func:`model.benchmarks.nyu_official_test_indices`; ``split_file`` overrides the test list with a
   ``splits.mat`` or a text file of 1-based indices; training = every other image).
2. **Offline augmentation** (:func:`augment_nyu`) of the training images to ``augment_count``
   samples (the paper: about 10K) at ``input_size``, written once to ``run_dir/augmented.h5`` and
   reused when the settings match. Sample ``k`` comes from training image ``k mod n_train``; the
   first ``n_train`` are the images themselves (only resized), the others draw, from
   ``numpy.random.default_rng([seed, k])``, the augmentations of Eigen et al. (NIPS 2014): scale
   ``s ~ U[1, 1.5]`` (image enlarged by ``s`` and randomly cropped back, depth divided by ``s``),
   rotation ``~ U[-5, 5]`` degrees (pixels rotated in from outside are invalid), horizontal flip
   with probability 0.5 and a colour factor ``~ U[0.8, 1.2]`` per channel.
3. **Training**: the network regresses depth in metres directly from its head (one output channel,
   no activation), with Tukey's biweight loss (:func:`model.losses.tukey_biweight_loss`: residuals
   scaled by their median absolute deviation per batch, cut-off 4.6851) over valid pixels
   (depth in (1e-3, 10] m).
4. **Evaluation** on the test images in Table 7's metrics (:func:`model.metrics.depth_errors`:
   rms, rel, log10, delta1..3; no alignment: the prediction is metric). The input is resized to
   ``input_size``, the prediction bilinearly back to 480x640 and clipped to [1e-3, 10] m;
   ``eval_crop="eigen"`` scores only Eigen's crop (rows 45:471, columns 41:601 of 480x640; scaled
   proportionally for other frame sizes).

Writes ``run_dir/model.pt`` (``task: metric_depth``), ``metrics.csv`` (training), ``metrics.json``
(test metrics and settings), ``finetune_config.yaml`` and ``checkpoints/last.pt`` (resumable, see
:func:`model.engine.fit`).
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from core.progress import track
from model.benchmarks import NYU_MAX_DEPTH, NYU_MIN_DEPTH, eigen_crop_mask, load_nyu_split, read_nyu_arrays
from model.finetune import FinetuneResult
from model.losses import TUKEY_C, tukey_biweight_loss

log = logging.getLogger(__name__)

DEFAULT_ARCH = "resnet50_fusion"  # for init=imagenet|scratch; a checkpoint init keeps its own

TASK = "metric_depth"
OUTPUT_DESCRIPTION = "B1HW metric depth in metres at the input size (NYUv2 units); clip to [1e-3, 10] for scoring"
TABLE7_METRICS = ("delta1", "delta2", "delta3", "rel", "log10", "rms")


def nyu_train_indices(n_images: int, test_indices: Sequence[int]) -> tuple[int, ...]:
    """1-based indices of the images not in ``test_indices`` (the official split: 1449 - 654 = 795)."""
    test = set(int(i) for i in test_indices)
    return tuple(i for i in range(1, n_images + 1) if i not in test)


def nyu_split(mat_path: str | os.PathLike, split_file: str | os.PathLike | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(train, test)`` 1-based indices for the labeled ``.mat`` (official split unless ``split_file``)."""
    import h5py

    with h5py.File(mat_path, "r") as f:
        n = int(f["depths"].shape[0])
    test = tuple(i for i in load_nyu_split(split_file) if 1 <= i <= n)
    if len(test) != len(load_nyu_split(split_file)):
        raise ValueError(f"{mat_path} has {n} images; the test split names indices beyond that "
                         "(pass --split-file with the test indices of this file)")
    train = nyu_train_indices(n, test)
    if not train:
        raise ValueError(f"{mat_path}: no training images left after the test split")
    return train, test


def augment_sample(
    rgb: np.ndarray, depth: np.ndarray, size: tuple[int, int], rng: np.random.Generator | None,
    *, scale_range: tuple[float, float] = (1.0, 1.5), max_rotation: float = 5.0,
    color_range: tuple[float, float] = (0.8, 1.2), flip_p: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """One augmented ``(rgb uint8 (h,w,3), depth float32 (h,w) metres, 0 = invalid)`` at ``size``.
    ``rng=None``: only the resize (the original image)."""
    import cv2

    h, w = size
    depth = np.where((depth > NYU_MIN_DEPTH) & (depth <= NYU_MAX_DEPTH), depth, 0).astype(np.float32)
    if rng is None:
        return (cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA),
                cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST))
    angle = float(rng.uniform(-max_rotation, max_rotation))
    s = float(rng.uniform(*scale_range))
    flip = bool(rng.random() < flip_p)
    color = rng.uniform(*color_range, size=3)
    if angle:
        H0, W0 = depth.shape
        m = cv2.getRotationMatrix2D((W0 / 2, H0 / 2), angle, 1.0)
        rgb = cv2.warpAffine(rgb, m, (W0, H0), flags=cv2.INTER_LINEAR, borderValue=0)
        depth = cv2.warpAffine(depth, m, (W0, H0), flags=cv2.INTER_NEAREST, borderValue=0)
    # Enlarge by s relative to the target size, crop back: objects look s times closer.
    sh, sw = max(h, int(round(h * s))), max(w, int(round(w * s)))
    rgb = cv2.resize(rgb, (sw, sh), interpolation=cv2.INTER_LINEAR)
    depth = cv2.resize(depth, (sw, sh), interpolation=cv2.INTER_NEAREST) / s
    y0, x0 = int(rng.integers(0, sh - h + 1)), int(rng.integers(0, sw - w + 1))
    rgb, depth = rgb[y0:y0 + h, x0:x0 + w], depth[y0:y0 + h, x0:x0 + w]
    if flip:
        rgb, depth = rgb[:, ::-1], depth[:, ::-1]
    rgb = np.clip(rgb.astype(np.float32) * color, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(depth, dtype=np.float32)


def augment_nyu(
    mat_path: str | os.PathLike,
    out_path: str | os.PathLike,
    *,
    indices: Sequence[int],
    count: int,
    size: tuple[int, int],
    seed: int = 0,
    progress: bool = False,
) -> Path:
    """Write ``count`` training samples (see the module docstring) to an HDF5 file:
    ``images (count,h,w,3) uint8``, ``depths (count,h,w) float32`` (metres, 0 = invalid), and the
    settings as the ``settings`` attribute. An existing file with the same settings is reused."""
    import h5py

    out = Path(out_path)
    stat = os.stat(mat_path)
    settings = json.dumps({"mat": str(Path(mat_path).resolve()), "mat_size": stat.st_size, "indices": list(map(int, indices)),
                           "count": int(count), "size": list(size), "seed": int(seed), "version": 1}, sort_keys=True)
    if out.is_file():
        try:
            with h5py.File(out, "r") as f:
                if f.attrs.get("settings") == settings and f.attrs.get("complete", False):
                    log.info("reusing the augmented training set %s", out)
                    return out
        except OSError:
            pass  # a half-written file: rebuilt below
    if count < 1:
        raise ValueError("augment_count must be >= 1")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    h, w = size
    n_train = len(indices)
    with h5py.File(mat_path, "r") as src, h5py.File(tmp, "w") as dst:
        images = dst.create_dataset("images", (count, h, w, 3), np.uint8, chunks=(1, h, w, 3))
        depths = dst.create_dataset("depths", (count, h, w), np.float32, chunks=(1, h, w))
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for k in track(range(count), desc="augment", unit="img", enabled=progress):
            index = int(indices[k % n_train])
            if index not in cache:
                if len(cache) > 64:  # images are revisited every n_train samples; keep memory bounded
                    cache.clear()
                cache[index] = read_nyu_arrays(src, index)
            rgb, depth = cache[index]
            rng = None if k < n_train else np.random.default_rng([seed, k])
            images[k], depths[k] = augment_sample(rgb, depth, size, rng)
        dst.attrs["settings"] = settings
        dst.attrs["complete"] = True
    os.replace(tmp, out)
    return out


class AugmentedDepthDataset(Dataset):
    """The file :func:`augment_nyu` wrote, in the sample schema (``depth`` in metres, ``mask`` valid)."""

    def __init__(self, path: str | os.PathLike) -> None:
        import h5py

        self.path = Path(path)
        with h5py.File(self.path, "r") as f:
            self.n = int(f["images"].shape[0])
        self._file = None  # opened per worker process

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any]:
        import h5py

        from model.data import normalize_image

        index = key[0] if isinstance(key, tuple) else key  # (index, seed): augmented offline, the seed is unused
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        rgb = np.asarray(self._file["images"][index])
        depth = np.asarray(self._file["depths"][index], dtype=np.float32)
        return {"image": normalize_image(rgb), "depth": torch.from_numpy(depth)[None],
                "mask": torch.from_numpy(depth > NYU_MIN_DEPTH)[None], "id": str(index)}

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open the file
        return {**self.__dict__, "_file": None}


@torch.no_grad()
def predict_metric(model: torch.nn.Module, rgb: np.ndarray, input_size: tuple[int, int], device: torch.device) -> np.ndarray:
    """``(H,W,3)`` uint8 -> ``(H,W)`` float64 metres: resized to ``input_size``, predicted, resized back."""
    import cv2

    from model.data import normalize_image

    H, W = rgb.shape[:2]
    x = normalize_image(cv2.resize(rgb, (input_size[1], input_size[0]), interpolation=cv2.INTER_AREA))[None].to(device)
    pred = model(x)[0, 0].float().cpu().numpy()
    return cv2.resize(pred, (W, H), interpolation=cv2.INTER_LINEAR).astype(np.float64)


def evaluate_metric_depth(
    model: torch.nn.Module,
    mat_path: str | os.PathLike,
    indices: Sequence[int],
    *,
    input_size: tuple[int, int],
    device: torch.device,
    crop: str = "eigen",
    progress: bool = False,
) -> dict[str, float]:
    """Table 7's metrics (mean over images) of a metric-depth network on NYUv2 images ``indices``."""
    import h5py

    from model import metrics as M

    if crop not in ("eigen", "none"):
        raise ValueError("crop must be 'eigen' or 'none'")
    model.eval()
    per_image = []
    with h5py.File(mat_path, "r") as f:
        for index in track(indices, desc="evaluate", unit="img", enabled=progress):
            rgb, gt = read_nyu_arrays(f, int(index))
            mask = (gt > NYU_MIN_DEPTH) & (gt <= NYU_MAX_DEPTH)
            if crop == "eigen":
                mask &= eigen_crop_mask(gt.shape)
            if not mask.any():
                log.warning("NYU image %d: no valid pixel, skipped", index)
                continue
            pred = predict_metric(model, rgb, input_size, device)
            per_image.append(M.depth_errors(pred, gt, mask, min_depth=NYU_MIN_DEPTH, max_depth=NYU_MAX_DEPTH))
    if not per_image:
        raise ValueError("no test image with valid depth")
    out = M.mean_metrics(per_image)
    out["n_images"] = float(len(per_image))
    return out


def finetune_depth(
    *,
    data: str | os.PathLike,
    run_dir: str | os.PathLike,
    init: str | os.PathLike = "imagenet",
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    weights_path: str | None = None,
    split_file: str | None = None,
    augment_count: int = 10000,
    input_size: int | tuple[int, int] = (240, 320),
    batch_size: int = 8,
    iterations: int = 20000,
    optimizer: str = "sgd",
    lr: float = 0.01,
    backbone_lr_mult: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    tukey_c: float = TUKEY_C,
    eval_crop: str = "eigen",
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
    """Fine-tune on NYUv2 for metric depth and score the test split (see the module docstring).

    arch: default :data:`DEFAULT_ARCH`; with a checkpoint ``init`` it must match (or be None).
    input_size: training / inference size (H, W); the default halves the 480x640 frame.
    eval_max_images: score only the first N test images (quick checks); None = all 654.
    checkpoint_every, resume: ``run_dir/checkpoints/last.pt`` every N steps; ``resume=True``
    continues an interrupted run in ``run_dir`` at its step (:func:`model.engine.fit`).
    """
    arguments = dict(locals())  # first: only the parameters
    from model.checkpoint import save_checkpoint
    from model.finetune import finetuned_meta, train_finetune

    size = (input_size, input_size) if isinstance(input_size, int) else tuple(int(s) for s in input_size)
    run = Path(run_dir)
    if not Path(data).is_file():
        raise FileNotFoundError(f"NYUv2 labeled .mat not found: {data}")
    train_idx, test_idx = nyu_split(data, split_file)
    log.info("NYUv2 split: %d training, %d test images", len(train_idx), len(test_idx))
    aug_path = augment_nyu(data, run / "augmented.h5", indices=train_idx, count=augment_count, size=size, seed=seed,
                           progress=progress)

    def loss_fn(pred: torch.Tensor, batch: dict[str, Any]) -> torch.Tensor:
        return tukey_biweight_loss(pred, batch["depth"], batch["mask"], c=tukey_c)

    trained = train_finetune(arguments, AugmentedDepthDataset(aug_path), loss_fn, out_channels=1,
                             default_arch=DEFAULT_ARCH)
    last = trained.last
    test_eval = test_idx if eval_max_images is None else test_idx[:eval_max_images]
    scores = evaluate_metric_depth(trained.model, data, test_eval, input_size=size, device=trained.device,
                                   crop=eval_crop, progress=progress)
    meta = finetuned_meta(
        trained, task=TASK,
        head={"module": "output", "out_channels": 1, "activation": None, "units": "metres",
              "loss": f"tukey_biweight(c={tukey_c}, scale=MAD per batch)"},
        input_size=list(size), output=OUTPUT_DESCRIPTION,
        dataset={"path": str(Path(data).resolve()), "layout": "nyu_depth_v2_labeled.mat",
                 "size_bytes": os.stat(data).st_size, "n_train": len(train_idx), "n_augmented": augment_count,
                 "n_test": len(test_idx), "split": split_file or "official (built in)"},
        metrics={"train_loss": last.get("loss"), **scores})
    checkpoint = save_checkpoint(run / "model.pt", model=trained.model, meta=meta)
    doc = {"task": TASK, "benchmark": "nyu", "init": trained.init_info["init"], "arch": trained.init_info["arch"],
           **{k: scores[k] for k in TABLE7_METRICS}, "n_images": scores["n_images"],
           "settings": {"crop": eval_crop, "input_size": list(size), "augment_count": augment_count,
                        "iterations": iterations, "train_loss": last.get("loss"),
                        "resumed_from_step": trained.resumed_from}}
    (run / "metrics.json").write_text(json.dumps(doc, indent=2) + "\n")
    return FinetuneResult(run, checkpoint, doc)


def format_table7(doc: dict[str, Any]) -> str:
    """One line per metric, as Table 7 lists them (deltas higher is better, the errors lower)."""
    head = "".join(f"{m:>9}" for m in TABLE7_METRICS)
    vals = "".join(f"{doc[m]:>9.4f}" for m in TABLE7_METRICS)
    return f"{'':<12}{head}\n{doc.get('init', 'model'):<12}{vals}\n({int(doc.get('n_images', 0))} NYUv2 test images, crop {doc.get('settings', {}).get('crop')})"
