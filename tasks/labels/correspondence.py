"""Dense correspondence (optical flow) between the two views, behind one small interface.

A backend maps a batch of image pairs to flow fields::

    backend.flow(sources, targets) -> list of (H, W, 2) float32 arrays, pixels

so that ``sources[k][y, x] ~ targets[k][y + f[y, x, 1], x + f[y, x, 0]]``. Images are (H, W, 3)
uint8 RGB; a pair has one size, pairs in a batch may differ. Backends are looked up by name in
``CORRESPONDENCE`` (refuses duplicates, lists its names):

- ``dis``: OpenCV's DIS optical flow, no weights.
- ``sgbm`` (and ``sgbm_dense``): OpenCV's semi-global matching on the views after compensating
  their global vertical offset / rotation / scale, both disparity signs; no weights, CPU.
- ``dis+sgbm``: DIS flow kept where SGBM agrees with it.
- ``mccnn``: SGBM's pipeline with MC-CNN fast's learned matching cost and a numpy SGM in place of
  OpenCV's (``MccnnBackend``; tasks/labels/mccnn.py; the ``mccnn`` extra, weights from the installed
  PyPI package). ``fused`` takes it for narrow pairs with ``learned_below_px`` (off by default).
- ``fused`` (the default): DIS and SGBM averaged where they agree, SGBM where they do not, on
  pairs whose rows the flow finds rectified; DIS alone on pairs it does not (``FusedBackend``).
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
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import cv2
import numpy as np

from core.rules import resolve_device  # noqa: F401  (shared rule; tasks.labels.sky imports it from here)
from tasks.labels.consistency import consistency_mask, local_range, mark_unmatched
from tasks.labels.depth import smooth_disparity


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

    def build(self, name: str, *, common: dict[str, Any] | None = None, **options: Any) -> Any:
        """Build ``name`` with ``options`` and those ``common`` settings its builder takes.

        ``options`` are the backend's own: one it does not take raises ``TypeError`` naming it and what it
        takes. ``common`` are the settings every backend of a kind is offered (weights file, device, ...):
        ``device`` is dropped for a builder that runs where it runs (OpenCV on the CPU); any other common
        setting given (not None) to a builder that takes none is an error, never silently ignored.
        """
        return call_builder(self.get(name), f"{self.kind} backend {name!r}", common or {}, options)


def call_builder(builder: Callable[..., Any], what: str, common: dict[str, Any], options: dict[str, Any]) -> Any:
    """``builder(**options, **the common settings it takes)``, refusing what it does not take (``Registry.build``)."""
    params = inspect.signature(builder).parameters
    named = {k for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    open_ended = any(p.kind == p.VAR_KEYWORD for p in params.values())
    unknown = [k for k in options if k not in named and not open_ended]
    if unknown:
        raise TypeError(f"{what} takes no option {unknown[0]!r}; it takes: {', '.join(sorted(named)) or 'none'}")
    kwargs = dict(options)
    for key, value in common.items():
        if key in named:  # (never through a builder's **options: those are the backend's own)
            kwargs[key] = value
        elif key != "device" and value is not None:
            raise ValueError(f"{what} takes no {key} (got {value!r})")
    return builder(**kwargs)


CORRESPONDENCE = Registry("correspondence")


_CPU_BACKENDS = ("dis", "sgbm", "sgbm_dense", "dis+sgbm", "fused", "mccnn")  # the rest run networks
DEFAULT_BACKEND = "fused"  # chosen by the label audit (README, "Choosing the backend")


def is_gpu_backend(name: str) -> bool:
    """Whether a backend name runs a network (and so belongs on a GPU worker)."""
    if name.startswith("fused:"):
        return is_gpu_backend(name.split(":", 1)[1])
    return name not in _CPU_BACKENDS


def build_backend(name: str, *, checkpoint: str | None = None, device: str = "auto", **options: Any) -> FlowBackend:
    """Build the backend ``name``. ``ptlflow:<model>`` reaches any ptlflow model by its own name.

    ``checkpoint`` (a local weights file) and ``device`` are offered to every backend; the OpenCV ones run
    on the CPU and take no weights (a weights file for them is an error). ``options`` are the backend's
    own keyword arguments; an unknown one raises ``TypeError`` naming it.
    """
    common = {"checkpoint": checkpoint, "device": device}
    if name.startswith("fused:"):
        return call_builder(functools.partial(FusedBackend, flow=name.split(":", 1)[1]), f"backend {name!r}",
                            common, options)
    if name.startswith("ptlflow:"):
        return call_builder(functools.partial(PtlflowBackend, model=name.split(":", 1)[1]), f"backend {name!r}",
                            common, options)
    if name in CORRESPONDENCE:
        return CORRESPONDENCE.build(name, common=common, **options)
    raise KeyError(f"unknown correspondence backend {name!r}; known: {', '.join(CORRESPONDENCE.names())}"
                   ", ptlflow:<model name> or fused:<backend>")


# ---- DIS ------------------------------------------------------------------------------------------
_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


class DisBackend:
    """OpenCV DIS (Kroeger et al. 2016) on grey images; CPU, no weights."""

    name = "dis"
    device = "cpu"

    # "fast" at full resolution (finest scale 0): sharper occlusion edges than "medium"'s default
    # half-resolution finest scale. Not at the same cost: on a 1-MP pair both ways take 0.70 CPU-s against
    # 0.18 at finest scale 1 and 0.23 for "medium"; but inside ``fused`` finest scale 1 cost the label
    # audit 4.1 points of coverage and 0.2 points of ordinal error (74.9 -> 70.8 %, 2.9 -> 3.1 %), so it stays
    def __init__(self, *, preset: str = "fast", finest_scale: int | None = 0,
                 variational_iterations: int | None = None) -> None:
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
                 batch_size: int = 4) -> None:
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
                 num_flow_updates: int = 12, small: bool = False) -> None:
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


# ---- SGBM on globally rectified views -----------------------------------------------------------
_SGBM_MODES = {"sgbm": 0, "hh": 1, "3way": 2, "hh4": 3}  # cv2.StereoSGBM_MODE_* values


def _similarity_to_target(alignment: Any, w: int, h: int) -> np.ndarray:
    """2x3 affine from rectified target pixels (x_r, y) to the target view's pixels (tasks/labels/rectify.py)."""
    a, b, ty = alignment.a, alignment.b, alignment.ty
    cx, cy = (w - 1) / 2, (h - 1) / 2
    return np.array([[b, -a, cx - b * cx + a * cy], [a, b, cy + ty - a * cx - b * cy]], np.float64)


def _flow_from_disparity(d: np.ndarray, valid: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Flow a -> b (H, W, 2) float32 from a's rectified disparity: (x - d, y) through ``affine`` (rectified
    b pixels -> b's); invalid pixels get a flow outside the image (``mark_unmatched``)."""
    h, w = d.shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    xr = xs - d
    tx = affine[0, 0] * xr + affine[0, 1] * ys + affine[0, 2]
    ty = affine[1, 0] * xr + affine[1, 1] * ys + affine[1, 2]
    return mark_unmatched(np.stack([tx - xs, ty - ys], axis=-1).astype(np.float32), ~valid)


class SgbmBackend:
    """OpenCV StereoSGBM (Hirschmüller 2008) after compensating the global misalignment; CPU, no weights.

    Per pair (source a, target b): a coarse DIS flow both ways (``coarse_preset`` at finest scale
    ``coarse_scale``, cheap; shared with the reverse pair of the batch) gives the consistent
    pixels, from which ``tasks.labels.rectify.fit_alignment`` estimates b's vertical offset / rotation /
    scale and the disparity range (0.5th..99.5th percentile, widened by ``margin`` px + 10%). b is
    warped to that rectified frame, both views are padded horizontally so that SGBM's invalid edge
    columns fall in the padding, and SGBM searches the range, which may hold both signs (web
    stereo has an unknown convergence offset: ``minDisparity`` is simply negative then).

    SGBM's uniqueness test, speckle filter and left-right check (``lr_max_diff``) mark pixels
    invalid; a bilateral filter (``smooth`` px, ``smooth_range`` px of disparity) averages the
    1/16-px values within a surface (SGBM's parabola fit locks them towards integers), and
    ``edge_band`` drops pixels whose valid ``edge_window`` neighbourhood spans a larger jump: next
    to a nearer object, and where the background shows through it (wheels, frames), background
    pixels take the object's disparity consistently in both directions, so the forward-backward
    check cannot catch them. The disparity d becomes a flow in b's unrectified pixels, (x - d, y)
    through the similarity; invalid pixels get a flow that points outside the image, so
    ``consistency_mask`` rejects them whatever the other direction says.

    Defaults (block 3, P2 = 16 block², smooth 4, edge band 3 px in 3 x 3) were chosen on the
    degraded Middlebury pair of benchmarks/bench_process.py; ``sgbm_dense`` is the same without the
    edge band (more coverage, more inverted pairs).
    """

    name = "sgbm"
    device = "cpu"

    def __init__(self, *, block_size: int = 3, p1: int | None = None, p2: int | None = None,
                 uniqueness: int = 10, lr_max_diff: int = 1, speckle_window: int = 100,
                 speckle_range: int = 2,
                 mode: str = "3way", colour: bool = False, margin: float = 8.0, smooth: float = 4.0,
                 smooth_range: float = 1.0, edge_band: float | None = 3.0, edge_window: int = 3,
                 coarse_preset: str = "ultrafast", coarse_scale: int = 2) -> None:
        self.block_size, self.uniqueness, self.lr_max_diff = block_size, uniqueness, lr_max_diff
        self.speckle_window, self.speckle_range, self.mode = speckle_window, speckle_range, _SGBM_MODES[mode]
        self.colour, self.margin = colour, margin
        self.smooth, self.smooth_range = smooth, smooth_range
        self.edge_band, self.edge_window = edge_band, edge_window
        cn = 3 if colour else 1
        # OpenCV's suggested P1 = 8 cn block²; P2 at 16 (not 32) cn block²: fewer background pixels
        # dragged to a nearer surface, at a little coverage (benchmarks/bench_process.py)
        self.p1 = p1 if p1 is not None else 8 * cn * block_size ** 2
        self.p2 = p2 if p2 is not None else 16 * cn * block_size ** 2
        self.coarse = DisBackend(preset=coarse_preset, finest_scale=coarse_scale)

    def _coarse(self, a: np.ndarray, b: np.ndarray,
                flows: tuple[np.ndarray, np.ndarray]) -> tuple[Any, float, float]:
        """Alignment of b to a and the rectified disparity range (lo, hi), px, from the coarse
        (a -> b, b -> a) flows."""
        from tasks.labels.rectify import fit_alignment, rectified_disparity

        fwd, bwd = flows
        ok = consistency_mask(fwd, bwd, alpha=0.02, beta=1.0)
        if ok.mean() < 0.05:  # nothing agrees: search around the median, no compensation
            ok = np.ones(ok.shape, bool)
        alignment = fit_alignment(fwd, ok)
        disp, _ = rectified_disparity(fwd, alignment)
        lo, hi = (float(v) for v in np.percentile(disp[ok], [0.5, 99.5]))
        return alignment, lo, hi

    def match(self, a: np.ndarray, b: np.ndarray, coarse_flows: tuple[np.ndarray, np.ndarray] | None = None,
              geometry: tuple[Any, float, float] | None = None
              ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
        """(H, W, 3) uint8 RGB a, b -> (flow a -> b (H, W, 2) float32, valid (H, W) bool, the coarse
        flows (a -> b, b -> a)); ``coarse_flows`` reuses those of the reverse pair, swapped.
        ``geometry`` = (alignment, lo, hi) skips the coarse flow: the caller knows b's alignment
        and the rectified disparity range already (``FusedBackend``)."""
        h, w = a.shape[:2]
        if geometry is not None:
            alignment, lo, hi = geometry
        else:
            if coarse_flows is None:
                coarse_flows = tuple(self.coarse.flow([a, b], [b, a]))
            alignment, lo, hi = self._coarse(a, b, coarse_flows)
        dmin, ndisp = self._search_range(lo, hi, w)
        ia, ib, affine = self._rectified(a, b, alignment)
        d, valid = self._refine(*self._disparity(ia, ib, dmin, ndisp))
        return _flow_from_disparity(d, valid, affine), valid, coarse_flows

    disparity_step = 16  # SGBM searches a multiple of 16 disparities

    def _search_range(self, lo: float, hi: float, w: int) -> tuple[int, int]:
        """(dmin, number of disparities) that cover the rectified range lo .. hi px with a margin."""
        lo, hi = max(lo, -0.5 * w), min(hi, 0.5 * w)  # a wild coarse flow must not blow up the search
        m = self.margin + 0.1 * max(hi - lo, 0.0)
        dmin = int(np.floor(lo - m))
        step = self.disparity_step
        return dmin, max(step, int(np.ceil((hi + m - dmin) / step)) * step)

    def _rectified(self, a: np.ndarray, b: np.ndarray, alignment: Any
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(a, b warped onto a's rows, the 2x3 affine from rectified b pixels to b's); grey unless
        ``colour``."""
        h, w = a.shape[:2]
        affine = _similarity_to_target(alignment, w, h)
        b_rect = cv2.warpAffine(b, affine, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                borderMode=cv2.BORDER_REPLICATE)
        if self.colour:
            return a, b_rect, affine
        return cv2.cvtColor(a, cv2.COLOR_RGB2GRAY), cv2.cvtColor(b_rect, cv2.COLOR_RGB2GRAY), affine

    def _disparity(self, ia: np.ndarray, ib: np.ndarray, dmin: int, ndisp: int
                   ) -> tuple[np.ndarray, np.ndarray]:
        """Rectified views -> (disparity of ia (H, W) float32 px, x_b = x_a - d; valid (H, W) bool)."""
        w = ia.shape[1]
        dmax = dmin + ndisp - 1
        # SGBM leaves the first dmax and the last -dmin columns invalid: pad them away
        half = self.block_size // 2 + 1
        pl, pr = max(dmax, 0) + half, max(-dmin, 0) + half
        ia = cv2.copyMakeBorder(ia, 0, 0, pl, pr, cv2.BORDER_REPLICATE)
        ib = cv2.copyMakeBorder(ib, 0, 0, pl, pr, cv2.BORDER_REPLICATE)
        sgbm = cv2.StereoSGBM_create(minDisparity=dmin, numDisparities=ndisp, blockSize=self.block_size,
                                     P1=self.p1, P2=self.p2, disp12MaxDiff=self.lr_max_diff,
                                     uniquenessRatio=self.uniqueness, speckleWindowSize=self.speckle_window,
                                     speckleRange=self.speckle_range, preFilterCap=63, mode=self.mode)
        raw = sgbm.compute(ia, ib)[:, pl:pl + w]  # int16, 16 x disparity; (dmin - 1) * 16 = invalid
        return raw.astype(np.float32) / 16.0, raw > (dmin - 1) * 16

    def _refine(self, d: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The bilateral smoothing and the edge band of the class docstring."""
        if self.smooth > 0:
            d = smooth_disparity(d, valid, sigma_px=self.smooth, range_px=self.smooth_range)
        if self.edge_band is not None:
            k = np.ones((self.edge_window, self.edge_window), np.uint8)
            top = cv2.dilate(np.where(valid, d, -1e4).astype(np.float32), k)
            bottom = cv2.erode(np.where(valid, d, 1e4).astype(np.float32), k)
            valid = valid & ((top - bottom) < self.edge_band)
        return d, valid

    def matches(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(flow, valid) per pair; a pair that is the reverse of an earlier one in the batch (the
        pipeline asks for left -> right and right -> left together) reuses its coarse flows."""
        done: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        out = []
        for a, b in zip(sources, targets):
            reverse = done.get((id(b), id(a)))
            flow, valid, coarse = self.match(np.ascontiguousarray(a), np.ascontiguousarray(b),
                                             None if reverse is None else (reverse[1], reverse[0]))
            done[(id(a), id(b))] = coarse
            out.append((flow, valid))
        return out

    def flow(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [f for f, _ in self.matches(sources, targets)]


CORRESPONDENCE.register("sgbm", SgbmBackend)
CORRESPONDENCE.register("sgbm_dense", functools.partial(SgbmBackend, edge_band=None))


class MccnnBackend(SgbmBackend):
    """MC-CNN fast's learned matching cost + semi-global aggregation in SGBM's place (tasks/labels/mccnn.py).

    Everything around the matcher is SGBM's: the global similarity compensated from a coarse flow (or
    given), the search range, the bilateral smoothing and the edge band, the flow from the disparity.
    The disparity comes from :func:`tasks.labels.mccnn.match_rectified`: the 64-d features of both grey
    views (weights from the installed ``mccnn`` package, onnxruntime on ``threads`` threads), ``1 - cos``
    over the range, 4-path SGM (``p1``, ``p2`` in those units), the uniqueness test (``uniqueness`` %),
    parabola sub-pixel, the left-right check (``lr_max_diff`` px) and the speckle filter.
    :meth:`match_both` gives both directions from one cost volume (half the features and aggregation
    of two calls), which :meth:`matches` and ``FusedBackend`` use for a pair and its reverse.

    ``p1`` = 1, ``p2`` = 8 were chosen on the clean ETH3D terrace and Middlebury Tsukuba frames (bad-1
    px over GT-valid pixels: terrace 9.9 % with SGBM, 7.2 % at p1 0.1 / p2 0.8, 4.0 % at 1 / 8, 3.7 %
    at 2 / 16; Tsukuba 3.9 % with SGBM, 5.4 % at 1 / 8: its weights were trained on Middlebury
    2005-2006, which is why the audit and not this table chose where the cost is used).
    """

    name = "mccnn"
    device = "cpu"
    disparity_step = 1

    def __init__(self, *, p1: float = 1.0, p2: float = 8.0, uniqueness: float = 5.0, lr_max_diff: float = 1.0,
                 speckle_window: int = 100, speckle_range: float = 2.0, margin: float = 8.0,
                 smooth: float = 4.0, smooth_range: float = 1.0, edge_band: float | None = 3.0,
                 edge_window: int = 3, coarse_preset: str = "ultrafast", coarse_scale: int = 2,
                 threads: int = 1) -> None:
        from tasks.labels.mccnn import load_network

        super().__init__(margin=margin, smooth=smooth, smooth_range=smooth_range, edge_band=edge_band,
                         edge_window=edge_window, coarse_preset=coarse_preset, coarse_scale=coarse_scale)
        self.p1, self.p2 = p1, p2  # (in 1 - cos units, not SGBM's)
        self.checks = dict(uniqueness=uniqueness, lr_max_diff=lr_max_diff, speckle_window=speckle_window,
                           speckle_range=speckle_range)
        self.network = load_network(threads)  # a missing extra fails here, before any pair is touched

    def _both(self, ia: np.ndarray, ib: np.ndarray, dmin: int, ndisp: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        from tasks.labels.mccnn import match_rectified

        return match_rectified(self.network, ia, ib, dmin, ndisp, p1=self.p1, p2=self.p2, **self.checks)

    def _disparity(self, ia: np.ndarray, ib: np.ndarray, dmin: int, ndisp: int
                   ) -> tuple[np.ndarray, np.ndarray]:
        return self._both(ia, ib, dmin, ndisp)[:2]

    def match_both(self, a: np.ndarray, b: np.ndarray, geometry: tuple[Any, float, float]
                   ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
        """((flow a -> b, valid), (flow b -> a, valid)) from one cost volume on a and b rectified onto
        a's rows by ``geometry`` = (b's alignment, lo, hi). b's disparity lives on the rectified grid:
        each pixel p of b looks it up at A^-1 p (bilinear; valid only where all four neighbours are)."""
        h, w = a.shape[:2]
        alignment, lo, hi = geometry
        dmin, ndisp = self._search_range(lo, hi, w)
        ia, ib, affine = self._rectified(np.ascontiguousarray(a), np.ascontiguousarray(b), alignment)
        d_a, valid_a, d_b, valid_b = self._both(ia, ib, dmin, ndisp)
        d_a, valid_a = self._refine(d_a, valid_a)
        d_b, valid_b = self._refine(d_b, valid_b)
        inverse = cv2.invertAffineTransform(affine)  # b's pixels -> rectified b pixels
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        qx = (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]).astype(np.float32)
        qy = (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]).astype(np.float32)
        d = cv2.remap(np.where(valid_b, d_b, 0).astype(np.float32), qx, qy, cv2.INTER_LINEAR,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        ok = cv2.remap(valid_b.astype(np.float32), qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=0) > 0.999
        back = mark_unmatched(np.stack([qx + d - xs, qy - ys], axis=-1).astype(np.float32), ~ok)
        return (_flow_from_disparity(d_a, valid_a, affine), valid_a), (back, ok)

    def matches(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]
                ) -> list[tuple[np.ndarray, np.ndarray]]:
        """(flow, valid) per pair; a pair whose reverse is in the batch gets both from one cost volume."""
        out: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(sources)
        for k, (a, b) in enumerate(zip(sources, targets)):
            if out[k] is not None:
                continue
            j = next((j for j in range(k + 1, len(sources)) if out[j] is None and sources[j] is b
                      and targets[j] is a), None)
            if j is None:
                flow, valid, _ = self.match(np.ascontiguousarray(a), np.ascontiguousarray(b))
                out[k] = (flow, valid)
                continue
            coarse = (self.coarse.flow([a, b], [b, a]))
            out[k], out[j] = self.match_both(a, b, self._coarse(a, b, (coarse[0], coarse[1])))
        return out  # type: ignore[return-value]


CORRESPONDENCE.register("mccnn", MccnnBackend)


class DisSgbmBackend:
    """DIS flow kept only where SGBM (on the rectified views) agrees with its horizontal component.

    DIS gives smooth sub-pixel flow but drags smooth motion across object edges and thin
    structures (wheels, spokes) in a way the forward-backward check misses; SGBM is exact to
    about a pixel with sharp edges. Where SGBM is valid and the two horizontal flows differ by
    less than ``tolerance`` px the DIS flow is kept; elsewhere the pixel gets ``disagree``:
    ``"out"`` (a flow outside the image, never consistent) or ``"sgbm"`` (SGBM's flow, when valid).
    Keyword arguments other than these and DIS's go to ``SgbmBackend``.
    """

    name = "dis+sgbm"
    device = "cpu"

    def __init__(self, *, tolerance: float = 1.0, disagree: str = "out", preset: str = "fast",
                 finest_scale: int | None = 0, variational_iterations: int | None = None,
                 **sgbm: Any) -> None:
        if disagree not in ("out", "sgbm"):
            raise ValueError(f"disagree must be 'out' or 'sgbm', got {disagree!r}")
        self.tolerance, self.disagree = tolerance, disagree
        self.dis = DisBackend(preset=preset, finest_scale=finest_scale,
                              variational_iterations=variational_iterations)
        self.sgbm = SgbmBackend(**sgbm)

    def flow(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        dis_flows = self.dis.flow(sources, targets)
        out = []
        for a, f, (s, valid) in zip(sources, dis_flows, self.sgbm.matches(sources, targets)):
            agree = valid & (np.abs(f[..., 0] - s[..., 0]) < self.tolerance)
            fused = f.copy()
            if self.disagree == "sgbm":
                fused[valid & ~agree] = s[valid & ~agree]
            out.append(mark_unmatched(fused, ~valid if self.disagree == "sgbm" else ~agree))
        return out


CORRESPONDENCE.register("dis+sgbm", DisSgbmBackend)


class FusedBackend:
    """Two independent matchers combined per pixel, where the pair's geometry allows it.

    A dense flow (``flow``, DIS by default; any backend name, a network included) runs both ways
    first. Its consistent pixels tell whether the rows are rectified: SGBM searches along rows only,
    so when more than ``max_off_row`` of them lie over ``off_row_px`` px off their row after the
    global similarity (scanned stereo cards, hand-held pairs: 14-64 % on the real photos of
    ../shared/stereo, at most 4 % on the rectified scenes) the flow is returned alone. Otherwise
    SGBM runs on the views rectified by that similarity (its alignment and search range come from
    the flow, not from a coarse one), and per pixel:

    - SGBM valid and within ``tolerance`` px of the flow horizontally: the mean of the two (their
      sub-pixel errors are largely independent: DIS's are smooth blotches from its patch
      densification and variational smoothing, SGBM's are parabola-fit steps, so the mean is the
      better estimate);
    - SGBM valid, the flow off by more, and the flow itself forward-backward inconsistent there:
      SGBM (a search over the whole range does not get lost at thin structures and large
      disparities the way a coarse-to-fine flow does);
    - SGBM valid, the flow off by more but consistent: two matchers that each passed their own
      check disagree, one of them is wrong and nothing tells which (picking the better local
      photometric match was measured: no gain), so no correspondence (``conflict="out"``;
      ``"sgbm"`` keeps SGBM's: 3 points more coverage, 0.2 points more ordinal error on the audit);
    - SGBM invalid (its uniqueness, left-right, speckle and edge-band tests) where the flow is
      consistent and smooth (its 5 x 5 range under ``fill_smooth_px``, away from depth edges): the
      flow (textureless walls, where SGBM's uniqueness test fails and the flow interpolates well:
      ETH3D terrace +5 points of coverage at the same ordinal error); elsewhere no correspondence.

    A pair on which SGBM fails (blur, sensor noise, heavy JPEG defeat its uniqueness and speckle
    tests) would lose most of its labels to the rules above: when the fused flows keep fewer than
    ``min_kept`` (70 %) of the forward-backward consistent pixels the flow alone has, the pair gets the
    flow alone (``last_mode`` "flow_fallback"). On the label audit's 28 pairs the fused flows keep
    86-115 % of them; on its stress packing, 27-78 % (README, "Choosing the backend").

    ``flow`` may name any backend, a network included (``fused:raft``); ``checkpoint`` and
    ``device`` go to it.

    ``learned_below_px``: a pair whose rectified disparity range (from the flow's geometry) spans less
    than this gets MC-CNN's learned cost (``MccnnBackend``, ``learned_options``) in SGBM's place, both
    directions from one cost volume; ``last_mode`` then ends in ``+mccnn``. None (the default): never.
    On the label audit it made the narrow scenes' labels worse, not better (README, "Learned matching
    cost"), so it stays off.

    Measured with the label audit over 7 scenes x 4 packings (README, "Choosing the backend").
    ``last_mode`` says what the latest call did ("fused", "flow" or "flow_fallback", "+mccnn" where the
    learned cost was used), for the quality record.
    """

    name = "fused"
    device = "cpu"

    def __init__(self, *, flow: str = "dis", tolerance: float = 1.0, weight: float = 0.5,
                 max_off_row: float = 0.10, off_row_px: float = 1.0, conflict: str = "out",
                 fill_smooth_px: float | None = 0.5, min_kept: float = 0.7, checkpoint: str | None = None,
                 device: str = "auto", flow_options: dict | None = None,
                 learned_below_px: float | None = None, learned_options: dict | None = None,
                 **sgbm: Any) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must lie in [0, 1], got {weight}")
        if conflict not in ("out", "sgbm"):
            raise ValueError(f"conflict must be 'out' or 'sgbm', got {conflict!r}")
        if flow == "fused" or flow.startswith("fused:"):
            raise ValueError("the flow of a fused backend cannot itself be fused")
        self.conflict, self.fill_smooth_px, self.min_kept = conflict, fill_smooth_px, min_kept
        self.flow_backend = build_backend(flow, checkpoint=checkpoint, device=device, **(flow_options or {}))
        self.device = getattr(self.flow_backend, "device", "cpu")
        self.tolerance, self.weight = tolerance, weight
        self.max_off_row, self.off_row_px = max_off_row, off_row_px
        self.sgbm = SgbmBackend(**sgbm)
        self.learned_below_px = learned_below_px
        # built here, so that a missing extra is a configuration error before any pair is touched
        self.learned = MccnnBackend(**(learned_options or {})) if learned_below_px is not None else None
        self.last_mode = ""

    def geometry(self, fwd: np.ndarray, bwd: np.ndarray) -> tuple[Any, float, float, np.ndarray] | None:
        """From the flows a -> b, b -> a: (b's alignment, rectified disparity range lo, hi (0.5th and
        99.5th percentiles), the consistent pixels), or None when the rows are not rectified: over
        ``max_off_row`` of the consistent pixels lie more than ``off_row_px`` px off their row (or
        fewer than 100 pixels are consistent)."""
        from tasks.labels.rectify import fit_alignment, rectified_disparity

        ok = consistency_mask(fwd, bwd)
        if ok.sum() < 100:
            return None
        alignment = fit_alignment(fwd, ok)
        disparity, vres = rectified_disparity(fwd, alignment)
        if float((np.abs(vres[ok]) > self.off_row_px).mean()) > self.max_off_row:
            return None
        lo, hi = (float(v) for v in np.percentile(disparity[ok], [0.5, 99.5]))
        return alignment, lo, hi, ok

    def flow(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        flows = [np.nan_to_num(f, nan=0.0, posinf=0.0, neginf=0.0) for f in self.flow_backend.flow(sources, targets)]
        # the reverse of each pair in the batch (the pipeline asks for left -> right and right -> left
        # together); a pair without one gets its reverse flow computed here
        partner: dict[int, int] = {}
        for k, (a, b) in enumerate(zip(sources, targets)):
            for j in range(len(sources)):
                if j != k and j not in partner and sources[j] is b and targets[j] is a:
                    partner[k], partner[j] = j, k
                    break
        out: list[np.ndarray | None] = [None] * len(flows)
        modes = []
        for k, (a, b) in enumerate(zip(sources, targets)):
            if out[k] is not None:
                continue
            j = partner.get(k)
            back = flows[j] if j is not None else np.nan_to_num(self.flow_backend.flow([b], [a])[0])
            # one decision per pair: both directions fused, or both the flow alone
            geo_ab, geo_ba = self.geometry(flows[k], back), self.geometry(back, flows[k])
            if geo_ab is None or geo_ba is None:
                out[k] = flows[k]
                if j is not None:
                    out[j] = flows[j]
                modes.append("flow")
                continue
            learned = self.routes_to_learned(geo_ab)
            if learned:  # both directions from one learned cost volume
                match_ab, match_ba = self.learned.match_both(a, b, geo_ab[:3])
            else:
                match_ab = self.sgbm.match(np.ascontiguousarray(a), np.ascontiguousarray(b),
                                           geometry=geo_ab[:3])
            out[k] = self._fuse(flows[k], match_ab[:2], geo_ab[3])
            cost = "+mccnn" if learned else ""  # the matching cost, in the pair's record
            if j is not None:
                if not learned:
                    match_ba = self.sgbm.match(np.ascontiguousarray(b), np.ascontiguousarray(a),
                                               geometry=geo_ba[:3])
                out[j] = self._fuse(flows[j], match_ba[:2], geo_ba[3])
                # SGBM failing on the pair (blur, noise, heavy JPEG: its uniqueness and speckle tests
                # reject most pixels) must not cost it the flow's labels: the flow alone when the fused
                # flows keep under ``min_kept`` of the flow's own consistent pixels (geometry's)
                if consistency_mask(out[k], out[j]).mean() < self.min_kept * geo_ab[3].mean():
                    out[k], out[j] = flows[k], flows[j]
                    modes.append("flow_fallback" + cost)
                    continue
            modes.append("fused" + cost)
        self.last_mode = modes[0] if len(set(modes)) == 1 else ",".join(modes)
        return out  # type: ignore[return-value]

    def routes_to_learned(self, geometry: tuple[Any, float, float, np.ndarray]) -> bool:
        """Whether a pair with this ``geometry`` (a -> b's) gets the learned cost: its rectified disparities
        (0.5th to 99.5th percentile of the flow's consistent pixels) span under ``learned_below_px`` px."""
        if self.learned is None or self.learned_below_px is None:
            return False
        _, lo, hi, _ = geometry
        return hi - lo < self.learned_below_px

    def _fuse(self, f: np.ndarray, match: tuple[np.ndarray, np.ndarray], flow_ok: np.ndarray) -> np.ndarray:
        """The per-pixel rule of the class docstring for the flow ``f`` of a -> b and the rectified
        matcher's (flow, valid) ``match`` (SGBM's or the learned cost's); ``flow_ok``: f's consistent
        pixels."""
        s, valid = match
        agree = valid & (np.abs(f[..., 0] - s[..., 0]) < self.tolerance)
        # SGBM where valid (and its "outside the image" flow where not); the mean where the two agree
        # (whole-array arithmetic and np.where: a third of the time of boolean indexing, same values)
        mean = np.float32(self.weight) * f + np.float32(1.0 - self.weight) * s
        fused = np.where(agree[..., None], mean, s)
        if self.fill_smooth_px is not None:
            # SGBM has no answer (textureless walls fail its uniqueness test) but the flow is
            # self-consistent and smooth there, away from any depth edge: the flow
            fill = ~valid & flow_ok & (local_range(f[..., 0]) < self.fill_smooth_px)
            fused = np.where(fill[..., None], f, fused)
        if self.conflict == "out":
            mark_unmatched(fused, valid & ~agree & flow_ok)
        return fused.astype(np.float32, copy=False)


CORRESPONDENCE.register("fused", FusedBackend)
