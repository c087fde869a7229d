"""Checkpoints that carry what they need to be used.

A checkpoint is a ``torch.save``d dict:

    ``format``:  "redweb-checkpoint-v1"
    ``meta``:    everything needed to rebuild and use the net without other files:
                 ``arch`` (registry name), ``arch_kwargs``, ``input_size`` [H, W],
                 ``normalization`` {mean, std, color, range}, ``output`` (what the net predicts),
                 ``config`` (the effective training arguments), ``dataset`` {path, layout,
                 manifest_sha256, n_train, n_val}, ``code_version``, ``step``, ``epoch``,
                 ``backbone_pretrained``, ``metrics`` (last validation), ``created_at``
    ``model``:   the network's state dict (never wrapped in DDP: no ``module.`` prefix)
    ``training``: (resumable checkpoints only) optimizer, scheduler, AMP scaler and RNG states

:func:`load_model` rebuilds the network from the checkpoint alone; evaluation and prediction use it.
"""
from __future__ import annotations

import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

from model.networks import IMAGENET_MEAN, IMAGENET_STD

CHECKPOINT_FORMAT = "redweb-checkpoint-v1"

NORMALIZATION = {
    "mean": list(IMAGENET_MEAN),
    "std": list(IMAGENET_STD),
    "color": "RGB",
    "range": "divide uint8 by 255, then subtract mean and divide by std per channel",
}
OUTPUT_DESCRIPTION = "B1HW relative depth at the input size, larger = farther; only orderings are meaningful"


def code_version() -> str:
    """``<package version>+<git describe>`` when the source is a git checkout, else the package version."""
    try:
        from importlib.metadata import version

        package = version("redweb")
    except Exception:  # PackageNotFoundError (not installed): the git description still identifies the code
        package = "unknown"
    repo = Path(__file__).resolve().parent.parent
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=repo, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return package
    return f"{package}+{described}" if described else package


def unwrap(model: nn.Module) -> nn.Module:
    """The bare network inside DistributedDataParallel / torch.compile wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(
    path: str | os.PathLike, *, model: nn.Module, meta: dict[str, Any], training: dict[str, Any] | None = None
) -> Path:
    """Write a checkpoint atomically (temp file + rename: a kill mid-write leaves the old file intact)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "meta": {**meta, "created_at": datetime.now(timezone.utc).isoformat()},
        "model": unwrap(model).state_dict(),
    }
    if training is not None:
        payload["training"] = training
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint dict (see module docstring); checks its format."""
    # weights_only=False: the payload holds plain python containers and numpy RNG state; only load
    # checkpoints you trust, as with any pickle.
    payload = torch.load(Path(path), map_location=map_location, weights_only=False)
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a {CHECKPOINT_FORMAT} checkpoint")
    return payload


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the network stored in ``path`` (in eval mode, on ``device``) and return it with its meta.

    The architecture comes from ``meta["arch"]`` / ``meta["arch_kwargs"]`` through the registry; no
    ImageNet weights are looked up (the checkpoint has all weights). Inputs must be normalised as
    ``meta["normalization"]`` says; ``meta["input_size"]`` is the training crop size.
    """
    from model.registry import build_model

    payload = load_checkpoint(path, map_location="cpu")
    meta = payload["meta"]
    kwargs = {k: v for k, v in meta.get("arch_kwargs", {}).items() if k not in ("pretrained", "weights_path")}
    model = build_model(meta["arch"], **kwargs)
    model.load_state_dict(payload["model"])
    return model.to(device).eval(), meta
