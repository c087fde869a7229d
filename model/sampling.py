"""Online pair sampling and ordinal labels (Xian et al. 2018, Sec. 4.2).

Each training iteration draws N random point pairs per image among the reliable pixels (mask) and
labels them from the ground-truth relative depth ``g`` (contract, DESIGN.md, sigma = 0.02):

    label = +1  if g_i / g_j > 1 + sigma   (i is farther)
    label = -1  if g_j / g_i > 1 + sigma   (j is farther)
    label =  0  otherwise                  (roughly equal depth)

The ratios are evaluated as ``g_i > (1 + sigma) * g_j`` so a zero depth never divides; depths are
expected to be >= 0 (larger = farther), which every dataset in :mod:`model.data` guarantees.

Optional edge-guided sampling (Xian et al., CVPR 2020, "structure-guided ranking loss") puts a
share of the pairs across image edges; it is off by default.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from core.rules import SIGMA
from core.rules import ordinal_labels as _ordinal_labels


@dataclass(frozen=True)
class PairSample:
    """Pairs for a batch; pixel indices are flat (``y * W + x``) into each image's H*W pixels.

    Attributes:
        index_i, index_j: (B, N) int64 flat pixel indices.
        labels: (B, N) int8 in {-1, 0, +1}; +1 when pixel i is farther.
        valid: (B, N) bool; False for pairs that could not be drawn (image with < 1 reliable pixel,
            or an edge-guided pair that left the mask).
    """

    index_i: torch.Tensor
    index_j: torch.Tensor
    labels: torch.Tensor
    valid: torch.Tensor

    def gather(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Values at the valid pairs: (B,1,H,W) or (B,H*W) -> 1-D ``z_i, z_j, labels``."""
        flat = values.reshape(values.shape[0], -1)
        z_i = torch.gather(flat, 1, self.index_i)[self.valid]
        z_j = torch.gather(flat, 1, self.index_j)[self.valid]
        return z_i, z_j, self.labels[self.valid]


def ordinal_labels(g_i: torch.Tensor, g_j: torch.Tensor, sigma: float = SIGMA) -> torch.Tensor:
    """Ordinal labels of depth pairs (same shapes, depths >= 0, larger = farther) -> int8 {-1,0,1}."""
    return _ordinal_labels(g_i.float(), g_j.float(), sigma)


def _draw_among(weights: torch.Tensor, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw ``n`` flat indices per row uniformly among pixels with weight > 0.

    weights: (B, P) bool/0-1. Returns (B, n) int64 indices and (B,) bool "row had any pixel".
    Uses an inverse-CDF lookup (searchsorted), O(P + n log P), instead of multinomial over P.
    """
    cdf = weights.to(torch.int64).cumsum(1)  # (B, P)
    counts = cdf[:, -1]
    # Random numbers from a CPU generator so that results do not depend on the device.
    u = torch.rand(weights.shape[0], n, generator=generator).to(weights.device)
    rank = (u * counts.unsqueeze(1).clamp(min=1)).long().clamp(max=(counts - 1).clamp(min=0).unsqueeze(1))
    idx = torch.searchsorted(cdf, rank + 1)  # first position whose cumulative count reaches rank+1
    return idx.clamp(max=weights.shape[1] - 1), counts > 0


def _edge_pairs(
    depth: torch.Tensor,
    mask: torch.Tensor,
    image: torch.Tensor,
    n: int,
    generator: torch.Generator | None,
    edge_quantile: float,
    max_offset: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs straddling image edges: anchors on strong gradients, points on both sides along it."""
    b, _, h, w = depth.shape
    gray = image.float().mean(1, keepdim=True)
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=image.device) / 8
    gx = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kx.view(1, 1, 3, 3))
    gy = F.conv2d(F.pad(gray, (1, 1, 1, 1), mode="replicate"), kx.t().reshape(1, 1, 3, 3))
    mag = torch.sqrt(gx**2 + gy**2).reshape(b, -1)
    m = mask.reshape(b, -1)
    masked_mag = torch.where(m, mag, torch.zeros_like(mag))
    threshold = torch.quantile(masked_mag, edge_quantile, dim=1, keepdim=True)
    edges = m & (mag >= threshold) & (mag > 0)
    anchor, has_edges = _draw_among(edges, n, generator)
    ay, ax = (anchor // w).float(), (anchor % w).float()
    dx = gx.reshape(b, -1).gather(1, anchor)
    dy = gy.reshape(b, -1).gather(1, anchor)
    norm = torch.sqrt(dx**2 + dy**2).clamp(min=1e-12)
    offset = torch.randint(2, max(3, max_offset + 1), (b, n), generator=generator).to(depth.device).float()
    ux, uy = dx / norm * offset, dy / norm * offset
    xi, yi = (ax - ux).round().long().clamp(0, w - 1), (ay - uy).round().long().clamp(0, h - 1)
    xj, yj = (ax + ux).round().long().clamp(0, w - 1), (ay + uy).round().long().clamp(0, h - 1)
    index_i, index_j = yi * w + xi, yj * w + xj
    valid = has_edges.unsqueeze(1) & m.gather(1, index_i) & m.gather(1, index_j) & (index_i != index_j)
    return index_i, index_j, valid


def sample_pairs(
    depth: torch.Tensor,
    mask: torch.Tensor,
    n_pairs: int = 3000,
    *,
    sigma: float = SIGMA,
    generator: torch.Generator | None = None,
    image: torch.Tensor | None = None,
    edge_fraction: float = 0.0,
    edge_quantile: float = 0.9,
    edge_max_offset: int = 8,
) -> PairSample:
    """Draw ``n_pairs`` random pairs per image among reliable pixels and label them.

    Args:
        depth: (B,1,H,W) float ground-truth relative depth, >= 0, larger = farther.
        mask: (B,1,H,W) bool, True where the label is reliable.
        n_pairs: pairs per image (the paper uses 3000).
        sigma: equality tolerance on the depth ratio.
        generator: CPU ``torch.Generator`` for reproducible draws (training seeds it per step).
        image: (B,3,H,W) image; needed only when ``edge_fraction > 0``.
        edge_fraction: share of the pairs drawn across image edges (0 = plain random sampling).
        edge_quantile: gradient-magnitude quantile (over reliable pixels) above which a pixel is an edge.
        edge_max_offset: edge pairs lie 2..edge_max_offset pixels on either side of the edge.

    Returns:
        :class:`PairSample` with (B, n_pairs) tensors.
    """
    if depth.dim() != 4 or depth.shape[1] != 1 or mask.shape != depth.shape:
        raise ValueError(f"depth and mask must both be (B,1,H,W), got {tuple(depth.shape)} and {tuple(mask.shape)}")
    if not 0.0 <= edge_fraction <= 1.0:
        raise ValueError("edge_fraction must be in [0, 1]")
    b = depth.shape[0]
    mask_flat = mask.reshape(b, -1).bool()
    n_edge = int(round(n_pairs * edge_fraction))
    n_random = n_pairs - n_edge
    idx, has_pixels = _draw_among(mask_flat, 2 * n_random, generator)
    index_i, index_j = idx[:, :n_random], idx[:, n_random:]
    valid = has_pixels.unsqueeze(1).expand(b, n_random)
    if n_edge:
        if image is None:
            raise ValueError("edge-guided sampling needs the image")
        ei, ej, ev = _edge_pairs(depth, mask.bool(), image, n_edge, generator, edge_quantile, edge_max_offset)
        index_i, index_j = torch.cat([index_i, ei], 1), torch.cat([index_j, ej], 1)
        valid = torch.cat([valid, ev], 1)
    flat = depth.reshape(b, -1)
    labels = ordinal_labels(flat.gather(1, index_i), flat.gather(1, index_j), sigma)
    return PairSample(index_i=index_i, index_j=index_j, labels=labels, valid=valid.contiguous())


def ordinal_error(pred: torch.Tensor, pairs: PairSample) -> tuple[int, int]:
    """Misordered unequal pairs: (number wrong, number of unequal pairs).

    A pair with label +1 is wrong unless ``pred_i > pred_j`` (ties count as wrong), so a constant
    prediction scores 100% and a random one about 50%.
    """
    z_i, z_j, labels = pairs.gather(pred.detach().float())
    unequal = labels != 0
    wrong = torch.sign(z_i - z_j)[unequal] != labels[unequal].float()
    return int(wrong.sum()), int(unequal.sum())
