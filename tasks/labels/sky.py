"""Sky detection behind one interface, refined by a fully connected CRF.

A backend gives a per-pixel sky probability::

    backend.probability(image, reliable=None) -> (H, W) float32 in [0, 1]

for an (H, W, 3) uint8 RGB image; ``reliable`` (H, W) bool is the flow-consistency mask, a cue
some backends use (sky has no texture to match). Backends, looked up by name in ``SKY``:

- ``heuristic`` (default, no weights): colour (blue or bright low-saturation), brightness,
  low texture, position, regions connected to the top edge, flow inconsistency.
- ``segformer``: a transformers semantic-segmentation checkpoint from a local directory
  (SegFormer, or Mask2Former, ADE20K: sky is class 2, or the label named "sky" in the config).
- ``mmseg``: an mmsegmentation config + checkpoint (the ``mmseg`` extra; needs mmcv with ops).

``refine_with_crf`` runs a dense CRF (Kraehenbuehl & Koltun 2011, pydensecrf2) on the two-label
(not sky, sky) problem with the backend's probability as unary, as the ReDWeb paper did. It runs
at most at ``max_side`` pixels (mean-field cost grows with the pixel count) and the refined
probability is resized back.
"""
from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np

from core.rules import IMAGENET_MEAN, IMAGENET_STD
from tasks.labels.correspondence import Registry, resolve_device

ADE20K_SKY = 2


class SkyBackend(Protocol):
    name: str

    def probability(self, image: np.ndarray, reliable: np.ndarray | None = None) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (H, W) float32 sky probability."""
        ...


SKY = Registry("sky")


def build_sky(name: str, *, checkpoint: str | None = None, mmseg_config: str | None = None, device: str = "auto",
              **options: Any) -> SkyBackend:
    """Build the sky backend ``name`` (``Registry.build``: a setting it does not take is refused)."""
    return SKY.build(name, common={"checkpoint": checkpoint, "mmseg_config": mmseg_config, "device": device},
                     **options)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class HeuristicSky:
    """Hand-made sky probability; no weights. Thresholds in 8-bit units, reasons in comments."""

    name = "heuristic"

    def __init__(self, *, texture_scale: float = 6.0, top_connected_weight: float = 0.15,
                 reliable_weight: float = 0.5) -> None:
        self.texture_scale = texture_scale
        self.top_connected_weight = top_connected_weight
        self.reliable_weight = reliable_weight

    def probability(self, image: np.ndarray, reliable: np.ndarray | None = None) -> np.ndarray:
        h, w = image.shape[:2]
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)
        hue, sat, val = hsv[..., 0] * (360 / 256), hsv[..., 1] / 255, hsv[..., 2] / 255
        # clear sky: hue 180-250 degrees, not dark; overcast / haze: bright and nearly grey
        blue = _sigmoid((1 - np.abs(hue - 215) / 40) * 6) * _sigmoid((val - 0.2) * 12) * _sigmoid((sat - 0.12) * 20)
        grey = _sigmoid((val - 0.7) * 15) * _sigmoid((0.25 - sat) * 20)
        colour = np.maximum(blue, grey)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        grad = np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3))
        k = max(3, (min(h, w) // 64) | 1)
        texture = cv2.blur(grad, (k, k))  # sky is smooth: low local gradient energy
        smooth = np.exp(-texture / (self.texture_scale * 4))
        # position prior: sky is at the top of a photo; fades out towards the bottom
        rows = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        position = np.broadcast_to(_sigmoid((0.75 - rows) * 8), (h, w))
        prob = colour * smooth * position
        # keep regions connected to the top edge at full strength, damp the others (lakes, walls)
        n, labels = cv2.connectedComponents((prob > 0.35).astype(np.uint8), connectivity=4)
        top = np.unique(labels[0][labels[0] > 0])
        connected = np.isin(labels, top)
        prob = np.where(connected, prob, prob * self.top_connected_weight)
        if reliable is not None:
            # a pixel whose correspondence was consistent had texture to match: less likely sky
            prob = np.where(reliable, prob * self.reliable_weight, prob)
        return np.clip(prob, 0.0, 1.0).astype(np.float32)


SKY.register("heuristic", HeuristicSky)


class TransformersSky:
    """transformers semantic-segmentation model from a local directory (SegFormer, Mask2Former, ...)."""

    name = "segformer"

    def __init__(self, *, checkpoint: str, device: str = "auto", input_side: int = 512,
                 sky_class: int | None = None) -> None:
        try:
            import torch  # noqa: F401
            from transformers import AutoConfig
        except ImportError as exc:
            raise ImportError("the segformer sky backend needs transformers: pip install 'redweb[segformer]'") from exc
        if not checkpoint:
            raise ValueError("the segformer sky backend needs a local checkpoint directory (process.sky_checkpoint)")
        config = AutoConfig.from_pretrained(checkpoint, local_files_only=True)
        self.universal = config.model_type in {"mask2former", "maskformer", "oneformer"}
        if self.universal:
            from transformers import AutoModelForUniversalSegmentation as Auto
        else:
            from transformers import AutoModelForSemanticSegmentation as Auto
        self.device = resolve_device(device)
        self.model = Auto.from_pretrained(checkpoint, local_files_only=True).eval().to(self.device)
        labels = {str(v).lower(): int(k) for k, v in (getattr(config, "id2label", None) or {}).items()}
        self.sky_class = sky_class if sky_class is not None else labels.get("sky", ADE20K_SKY)
        self.input_side = input_side

    def probability(self, image: np.ndarray, reliable: np.ndarray | None = None) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        h, w = image.shape[:2]
        scale = self.input_side / max(h, w)
        th, tw = (max(32, int(round(v * scale / 32)) * 32) for v in (h, w))
        x = torch.from_numpy(cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA)).float().div(255)
        mean = torch.tensor(IMAGENET_MEAN)
        std = torch.tensor(IMAGENET_STD)
        x = ((x - mean) / std).permute(2, 0, 1)[None].to(self.device)
        with torch.inference_mode():
            out = self.model(pixel_values=x)
            if self.universal:  # per-query class scores x per-query masks -> per-class maps
                cls = out.class_queries_logits.softmax(-1)[..., :-1]
                masks = out.masks_queries_logits.sigmoid()
                sem = torch.einsum("bqc,bqhw->bchw", cls, masks)
                sem = sem / sem.sum(1, keepdim=True).clamp_min(1e-6)
            else:
                sem = out.logits.softmax(1)
            sem = F.interpolate(sem, size=(h, w), mode="bilinear", align_corners=False)
        return sem[0, self.sky_class].float().cpu().numpy()


SKY.register("segformer", TransformersSky)


class MmsegSky:
    """mmsegmentation model (config file + checkpoint); needs the ``mmseg`` extra (mmcv with ops)."""

    name = "mmseg"

    def __init__(self, *, config: str, checkpoint: str, device: str = "auto", sky_class: int = ADE20K_SKY) -> None:
        try:
            from mmseg.apis import init_model
        except ImportError as exc:
            raise ImportError("the mmseg sky backend needs mmsegmentation and mmcv with compiled ops: "
                              "pip install 'redweb[mmseg]'") from exc
        self.model = init_model(config, checkpoint, device=resolve_device(device))
        self.sky_class = sky_class

    def probability(self, image: np.ndarray, reliable: np.ndarray | None = None) -> np.ndarray:
        from mmseg.apis import inference_model

        result = inference_model(self.model, np.ascontiguousarray(image[..., ::-1]))  # mmseg reads BGR
        logits = result.seg_logits.data  # C, H, W
        return logits.softmax(0)[self.sky_class].float().cpu().numpy()


def _build_mmseg(*, checkpoint: str | None = None, mmseg_config: str | None = None, device: str = "auto",
                 sky_class: int = ADE20K_SKY) -> MmsegSky:
    if not (checkpoint and mmseg_config):
        raise ValueError("the mmseg sky backend needs process.mmseg_config and process.sky_checkpoint")
    return MmsegSky(config=mmseg_config, checkpoint=checkpoint, device=device, sky_class=sky_class)


SKY.register("mmseg", _build_mmseg)


def refine_with_crf(image: np.ndarray, prob: np.ndarray, *, iterations: int = 5, max_side: int = 384,
                    gaussian_sxy: float = 3.0, gaussian_compat: float = 3.0, bilateral_sxy: float = 50.0,
                    bilateral_srgb: float = 13.0, bilateral_compat: float = 8.0) -> np.ndarray:
    """Dense-CRF refined sky probability, (H, W) float32. Kernel widths are in full-image pixels."""
    try:
        import pydensecrf.densecrf as dcrf
        from pydensecrf.utils import unary_from_softmax
    except ImportError as exc:
        raise ImportError("the CRF needs pydensecrf2 (a core dependency): pip install pydensecrf2") from exc
    h, w = prob.shape
    scale = min(1.0, max_side / max(h, w))
    sh, sw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    img = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else image
    p = cv2.resize(prob, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1 else prob
    p = np.clip(p, 1e-4, 1 - 1e-4).astype(np.float32)
    crf = dcrf.DenseCRF2D(sw, sh, 2)
    crf.setUnaryEnergy(np.ascontiguousarray(unary_from_softmax(np.stack([1 - p, p]))))
    crf.addPairwiseGaussian(sxy=max(1.0, gaussian_sxy * scale), compat=gaussian_compat)
    crf.addPairwiseBilateral(sxy=max(1.0, bilateral_sxy * scale), srgb=bilateral_srgb,
                             rgbim=np.ascontiguousarray(img, dtype=np.uint8), compat=bilateral_compat)
    q = np.asarray(crf.inference(iterations), np.float32).reshape(2, sh, sw)[1]
    return cv2.resize(q, (w, h), interpolation=cv2.INTER_LINEAR) if scale < 1 else q


def detect_sky(backend: SkyBackend, image: np.ndarray, reliable: np.ndarray | None = None, *, crf: bool = True,
               crf_iterations: int = 5, crf_max_side: int = 384, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Sky probability (after the CRF when ``crf``) and the binary sky mask, both (H, W)."""
    prob = backend.probability(image, reliable)
    if crf:
        prob = refine_with_crf(image, prob, iterations=crf_iterations, max_side=crf_max_side)
    return prob, prob > threshold
