"""Losses for relative depth: the improved ranking loss of ReDWeb and the baselines it is compared to.

Pure functions do the math; thin ``nn.Module`` wrappers exist for training code that wants modules.

Improved ranking loss (Xian et al. 2018, Eq. 2-3), for predictions z at the pixels of a pair:

    unequal pair (label l = +-1):  log(1 + exp(-l * (z_i - z_j)))     (softplus, numerically stable)
    equal pair   (label 0):        (z_i - z_j)^2

In each iteration the unequal-pair losses are sorted and the smallest floor(drop_ratio * n_unequal)
get weight 0 (they are the pairs the network already orders confidently; dropping them focuses
training on the hard pairs, and tolerates the noisy labels of web stereo). The loss is the mean
over the pairs that keep weight 1. ``drop_ratio=0`` is the plain ranking loss.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_pairs(z_i: torch.Tensor, z_j: torch.Tensor, labels: torch.Tensor) -> None:
    if z_i.dim() != 1 or z_i.shape != z_j.shape or labels.shape != z_i.shape:
        raise ValueError(
            f"z_i, z_j and labels must be 1-D of equal length, got {tuple(z_i.shape)}, {tuple(z_j.shape)}, "
            f"{tuple(labels.shape)}"
        )


def ranking_pair_losses(z_i: torch.Tensor, z_j: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-pair ranking losses (n,): softplus(-l * (z_i - z_j)) if l != 0 else (z_i - z_j)^2."""
    _check_pairs(z_i, z_j, labels)
    diff = z_i.float() - z_j.float()
    signs = labels.to(diff.dtype)
    return torch.where(labels != 0, F.softplus(-signs * diff), diff * diff)


def ranking_pair_weights(pair_losses: torch.Tensor, labels: torch.Tensor, drop_ratio: float = 0.25) -> torch.Tensor:
    """0/1 weights (n,) that drop the floor(drop_ratio * n_unequal) smallest unequal-pair losses.

    Ties are broken by pair order (stable sort), so the result is deterministic.
    """
    if not 0.0 <= drop_ratio < 1.0:
        raise ValueError(f"drop_ratio must be in [0, 1), got {drop_ratio}")
    weights = torch.ones_like(pair_losses)
    unequal = torch.nonzero(labels != 0, as_tuple=True)[0]
    n_drop = math.floor(drop_ratio * unequal.numel())
    if n_drop > 0:
        order = torch.argsort(pair_losses.detach()[unequal], stable=True)
        weights[unequal[order[:n_drop]]] = 0.0
    return weights


def improved_ranking_loss(
    z_i: torch.Tensor, z_j: torch.Tensor, labels: torch.Tensor, drop_ratio: float = 0.25
) -> torch.Tensor:
    """The improved ranking loss over pairs: a scalar tensor.

    Args:
        z_i, z_j: (n,) predicted relative depth at the two pixels of each pair (larger = farther).
        labels: (n,) in {-1, 0, +1}; +1 means pixel i is farther.
        drop_ratio: share of the unequal pairs, smallest loss first, that get weight 0.

    Returns:
        Mean loss over the pairs with weight 1 (0 with a gradient of zeros when there are none).
    """
    losses = ranking_pair_losses(z_i, z_j, labels)
    weights = ranking_pair_weights(losses, labels, drop_ratio)
    kept = weights.sum()
    if kept == 0:
        return (losses * 0.0).sum()
    return (losses * weights).sum() / kept


def ranking_loss(z_i: torch.Tensor, z_j: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The plain ranking loss (Chen et al. 2016): :func:`improved_ranking_loss` without dropping."""
    return improved_ranking_loss(z_i, z_j, labels, drop_ratio=0.0)


def _standardise(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per image, shift by the median and scale by the mean absolute deviation over ``mask``.

    Relative depth has no scale or offset, so the pixel-wise L1/L2 baselines compare maps after
    this scale-and-shift normalisation (as MiDaS does); x, mask: (B,1,H,W).
    """
    out = torch.zeros_like(x)
    for b in range(x.shape[0]):
        values = x[b][mask[b]]
        if values.numel() == 0:
            continue
        median = values.median()
        scale = (values - median).abs().mean().clamp(min=1e-6)
        out[b] = (x[b] - median) / scale
    return out


def pixel_l1_loss(pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |standardised pred - standardised depth| over reliable pixels; all (B,1,H,W)."""
    mask = mask.bool()
    if not mask.any():
        return pred.sum() * 0.0
    diff = _standardise(pred.float(), mask) - _standardise(depth.float(), mask)
    return diff.abs()[mask].mean()


def pixel_l2_loss(pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the standardised maps over reliable pixels; all (B,1,H,W)."""
    mask = mask.bool()
    if not mask.any():
        return pred.sum() * 0.0
    diff = _standardise(pred.float(), mask) - _standardise(depth.float(), mask)
    return (diff * diff)[mask].mean()


#: Tukey's biweight tuning constant: 95 % asymptotic efficiency under Gaussian noise.
TUKEY_C = 4.6851
#: MAD -> standard deviation of a Gaussian (1 / Phi^-1(3/4)).
MAD_TO_SIGMA = 1.4826


def mad_scale(residuals: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Robust scale of residuals: ``1.4826 * median(|r - median(r)|)``, detached (no gradient), >= eps."""
    r = residuals.detach().float()
    return (MAD_TO_SIGMA * (r - r.median()).abs().median()).clamp(min=eps)


def tukey_biweight(u: torch.Tensor, c: float = TUKEY_C) -> torch.Tensor:
    """Tukey's rho of scaled residuals ``u``: ``c^2/6 * (1 - (1 - (u/c)^2)^3)`` for ``|u| <= c``, else
    ``c^2/6``: quadratic near 0, constant (zero gradient) beyond the cut-off ``c``."""
    inside = u.abs() <= c
    # clamp keeps the unused branch finite; where() then gives those entries a gradient of exactly 0.
    t = 1.0 - (u.clamp(-c, c) / c) ** 2
    return torch.where(inside, (c * c / 6.0) * (1.0 - t**3), torch.full_like(u, c * c / 6.0))


def tukey_biweight_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor | None = None,
    c: float = TUKEY_C,
    scale: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Tukey's biweight loss for metric-depth regression (Belagiannis et al., "Robust Optimization
    for Deep Regression", ICCV 2015), as ReDWeb fine-tunes on NYUv2 (Sec. 4.3).

    Residuals ``r = pred - target`` over ``mask`` (all (B,1,H,W); None = all pixels) are divided by
    their median absolute deviation (:func:`mad_scale`, recomputed on every call, i.e. per batch,
    and held constant for the gradient, as Belagiannis et al. do), then go through
    :func:`tukey_biweight`; the loss is the mean. Residuals beyond ``c`` scales (outliers: holes
    and sensor errors in the depth) get exactly zero gradient. ``scale`` fixes the divisor instead.
    """
    if mask is not None:
        mask = mask.bool()
        if not mask.any():
            return pred.sum() * 0.0
        r = (pred.float() - target.float())[mask]
    else:
        r = (pred.float() - target.float()).reshape(-1)
    s = mad_scale(r) if scale is None else torch.as_tensor(scale, dtype=r.dtype, device=r.device)
    return tukey_biweight(r / s, c).mean()


class TukeyBiweightLoss(nn.Module):
    """Module wrapper of :func:`tukey_biweight_loss`: ``forward(pred, depth, mask)``."""

    def __init__(self, c: float = TUKEY_C) -> None:
        super().__init__()
        self.c = c

    def forward(self, pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return tukey_biweight_loss(pred, depth, mask, self.c)


class ImprovedRankingLoss(nn.Module):
    """Module wrapper of :func:`improved_ranking_loss`; ``drop_ratio=0`` is the plain ranking loss."""

    def __init__(self, drop_ratio: float = 0.25) -> None:
        super().__init__()
        self.drop_ratio = drop_ratio

    def forward(self, z_i: torch.Tensor, z_j: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return improved_ranking_loss(z_i, z_j, labels, self.drop_ratio)


class PixelL1Loss(nn.Module):
    def forward(self, pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pixel_l1_loss(pred, depth, mask)


class PixelL2Loss(nn.Module):
    def forward(self, pred: torch.Tensor, depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return pixel_l2_loss(pred, depth, mask)


# Loss names accepted by training: pair losses take (z_i, z_j, labels), pixel losses (pred, depth, mask).
PAIR_LOSSES = ("improved_ranking", "ranking")
PIXEL_LOSSES = ("l1", "l2")
