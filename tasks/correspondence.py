"""Dense correspondence (optical flow) between the two views, behind one small interface.

A backend maps a batch of image pairs to flow fields::

    backend.flow(sources, targets) -> list of (H, W, 2) float32 arrays, pixels

so that ``sources[k][y, x] ~ targets[k][y + f[y, x, 1], x + f[y, x, 0]]``. Images are (H, W, 3)
uint8 RGB; a pair has one size, pairs in a batch may differ. Backends are looked up by name in
``CORRESPONDENCE`` (refuses duplicates, lists its names):

- ``dis``: OpenCV's DIS optical flow, no weights, the CPU default.
- ``flownet2``, ``raft``, ``raft_small``, ``sea_raft_m``, ... and ``ptlflow:<any ptlflow model>``:
  ptlflow 0.4.2 networks (the ``flow`` extra), checkpoint from a local file (``checkpoint=``; without
  one the weights are random, which only tests use), GPU when present, batched, padded to the
  network's stride and unpadded.
- ``tv_raft``: torchvision's RAFT (large), weights from a local ``.pth`` state dict.

``bidirectional_flow`` runs forward and backward in one batch and ``consistency_mask`` keeps the
pixels whose forward flow is undone by the backward flow (Sundaram et al. 2010, in the form
|f + b(x + f)| < alpha |f| + beta; alpha = 0.01, beta = 0.5 px by default).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import cv2
import numpy as np


class FlowBackend(Protocol):
    name: str
    device: str

    def flow(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        """(H, W, 3) uint8 RGB pairs -> (H, W, 2) float32 flow from source to target, in pixels."""
        ...


@dataclass
class Registry:
    """Named builders of one kind of thing. Builders take keyword-only arguments."""

    kind: str
    _builders: dict[str, Callable[..., Any]] = field(default_factory=dict)

    def register(self, name: str, builder: Callable[..., Any] | None = None):
        """Add ``builder`` under ``name`` (usable as a decorator); a second use of a name is refused."""

        def add(fn: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._builders:
                raise ValueError(f"{self.kind} backend {name!r} is already registered")
            self._builders[name] = fn
            return fn

        return add(builder) if builder is not None else add

    def names(self) -> list[str]:
        return sorted(self._builders)

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._builders[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} backend {name!r}; known: {', '.join(self.names())}") from None


CORRESPONDENCE = Registry("correspondence")


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def is_gpu_backend(name: str) -> bool:
    """Whether a backend name runs a network (and so belongs on a GPU worker)."""
    return name != "dis"


def build_backend(name: str, **kwargs: Any) -> FlowBackend:
    """Build the backend ``name``. ``ptlflow:<model>`` reaches any ptlflow model by its own name."""
    if name.startswith("ptlflow:"):
        return PtlflowBackend(model=name.split(":", 1)[1], **kwargs)
    if name in CORRESPONDENCE:
        return CORRESPONDENCE.get(name)(**kwargs)
    raise KeyError(f"unknown correspondence backend {name!r}; known: {', '.join(CORRESPONDENCE.names())}"
                   " or ptlflow:<model name>")


# ---- DIS ------------------------------------------------------------------------------------------
_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


class DisBackend:
    """OpenCV DIS (Kroeger et al. 2016) on grey images; CPU, no weights."""

    name = "dis"
    device = "cpu"

    # "fast" at full resolution (finest scale 0): sharper occlusion edges than "medium"'s default
    # half-resolution finest scale, at about the same cost (benchmarks/bench_process.py)
    def __init__(self, *, preset: str = "fast", finest_scale: int | None = 0,
                 variational_iterations: int | None = None, **_ignored: Any) -> None:
        self.preset = preset
        self.finest_scale = finest_scale
        self.variational_iterations = variational_iterations

    def _make(self) -> "cv2.DISOpticalFlow":
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        if self.finest_scale is not None:
            dis.setFinestScale(self.finest_scale)
        if self.variational_iterations is not None:
            dis.setVariationalRefinementIterations(self.variational_iterations)
        return dis

    def flow(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        dis = self._make()  # one per call: DIS objects are not thread-safe
        out = []
        for a, b in zip(sources, targets):
            ga = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
            gb = cv2.cvtColor(np.ascontiguousarray(b), cv2.COLOR_RGB2GRAY)
            out.append(dis.calc(ga, gb, None).astype(np.float32))
        return out


CORRESPONDENCE.register("dis", DisBackend)


# ---- networks -------------------------------------------------------------------------------------
def _pad_to(x, stride: int):
    """Replicate-pad a (..., H, W) tensor to multiples of ``stride``; returns (padded, (top, left, H, W))."""
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    ph, pw = (-h) % stride, (-w) % stride
    top, left = ph // 2, pw // 2
    shape = x.shape
    flat = x.reshape(-1, *shape[-3:])
    flat = F.pad(flat, (left, pw - left, top, ph - top), mode="replicate")
    return flat.reshape(*shape[:-2], h + ph, w + pw), (top, left, h, w)


def _group_by_shape(sources: Sequence[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    groups: dict[tuple[int, int], list[int]] = {}
    for k, a in enumerate(sources):
        groups.setdefault(a.shape[:2], []).append(k)
    return groups


class _TorchBackend:
    """Shared batching: groups pairs by size, pads to the stride, runs, unpads."""

    name = "torch"
    stride = 8

    def __init__(self, *, device: str = "auto", batch_size: int = 4) -> None:
        self.device = resolve_device(device)
        self.batch_size = batch_size

    def _run(self, images):  # images: (B, 2, 3, H, W) float in [0, 1], RGB
        raise NotImplementedError

    def flow(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        import torch

        out: list[np.ndarray | None] = [None] * len(sources)
        for _, idx in _group_by_shape(sources).items():
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                pairs = np.stack([np.stack([sources[k], targets[k]]) for k in chunk])  # B, 2, H, W, 3
                x = torch.from_numpy(pairs).permute(0, 1, 4, 2, 3).float().div_(255.0).to(self.device)
                x, (top, left, h, w) = _pad_to(x, self.stride)
                with torch.inference_mode():
                    f = self._run(x)  # B, 2, Hp, Wp
                f = f[..., top:top + h, left:left + w].permute(0, 2, 3, 1).float().cpu().numpy()
                for j, k in enumerate(chunk):
                    out[k] = np.ascontiguousarray(f[j], dtype=np.float32)
        return out  # type: ignore[return-value]


class PtlflowBackend(_TorchBackend):
    """Any ptlflow 0.4.2 model. ptlflow models take BGR in [0, 1] as ``{"images": (B, 2, 3, H, W)}``."""

    def __init__(self, *, model: str, checkpoint: str | None = None, device: str = "auto",
                 batch_size: int = 4, **_ignored: Any) -> None:
        super().__init__(device=device, batch_size=batch_size)
        try:
            import ptlflow
        except ImportError as exc:
            raise ImportError(f"backend {model!r} needs ptlflow: pip install 'redweb[flow]'") from exc
        if model not in ptlflow.get_model_names():
            raise KeyError(f"ptlflow has no model {model!r}")
        if checkpoint is not None and not Path(checkpoint).is_file():
            # a name that is not a file would make ptlflow download weights; we read local files only
            raise ValueError(f"checkpoint must be a local path to a weights file, got {checkpoint!r}")
        self.name = model
        self.net = ptlflow.get_model(model, ckpt_path=checkpoint).eval().to(self.device)
        self.stride = int(getattr(self.net, "output_stride", 8) or 8)

    def _run(self, images):
        import torch

        bgr = torch.flip(images, dims=[2])  # ptlflow models expect BGR (OpenCV order)
        return self.net({"images": bgr})["flows"][:, 0]


for _name in ("flownet2", "raft", "raft_small", "sea_raft_s", "sea_raft_m", "sea_raft_l", "pwcnet", "gma"):
    CORRESPONDENCE.register(_name, functools.partial(PtlflowBackend, model=_name))
del _name


class TorchvisionRaftBackend(_TorchBackend):
    """torchvision's RAFT-large; weights: a local state-dict file (``checkpoint=``) or random."""

    name = "tv_raft"

    def __init__(self, *, checkpoint: str | None = None, device: str = "auto", batch_size: int = 4,
                 num_flow_updates: int = 12, small: bool = False, **_ignored: Any) -> None:
        super().__init__(device=device, batch_size=batch_size)
        import torch
        from torchvision.models.optical_flow import raft_large, raft_small

        self.net = (raft_small if small else raft_large)(weights=None, progress=False)
        if checkpoint:
            self.net.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        self.net = self.net.eval().to(self.device)
        self.num_flow_updates = num_flow_updates

    def _run(self, images):
        a, b = images[:, 0] * 2 - 1, images[:, 1] * 2 - 1  # torchvision RAFT takes [-1, 1]
        return self.net(a, b, num_flow_updates=self.num_flow_updates)[-1]


CORRESPONDENCE.register("tv_raft", TorchvisionRaftBackend)


# ---- both directions and their agreement ---------------------------------------------------------
def bidirectional_flow(backend: FlowBackend, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forward (left -> right) and backward (right -> left) flow, computed as one batch of two."""
    fwd, bwd = backend.flow([left, right], [right, left])
    return fwd, bwd


def warp_by_flow(field_: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sample ``field_`` (H, W, C) at x + flow(x), bilinearly; returns (sampled, inside mask)."""
    h, w = flow.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    mx, my = gx + flow[..., 0], gy + flow[..., 1]
    sampled = cv2.remap(field_.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)
    return sampled.reshape(field_.shape), inside


def consistency_mask(fwd: np.ndarray, bwd: np.ndarray, *, alpha: float = 0.01, beta: float = 0.5) -> np.ndarray:
    """(H, W) bool: True where |f(x) + b(x + f(x))| < alpha |f(x)| + beta and x + f(x) lies in the image.

    Occluded pixels and the strip at the image edge that the other view does not see fail this
    test, since the backward flow at their target belongs to another surface (or to nothing).
    """
    b_at, inside = warp_by_flow(bwd, fwd)
    err = np.linalg.norm(fwd + b_at, axis=-1)
    ok = err < alpha * np.linalg.norm(fwd, axis=-1) + beta
    return ok & inside & np.isfinite(fwd).all(axis=-1)
