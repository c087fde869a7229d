"""Config sections owned by the model package (training, evaluation).

Plain frozen pydantic models; the root config in ``tasks/config.py`` composes them. The model
code itself takes keyword arguments, so these are only read at entry points.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """``redweb train`` settings: the keyword arguments of ``model.train.train`` (see its docstring)."""

    # forbid: every field is passed to train(); a typo must fail here, not as a TypeError later.
    model_config = ConfigDict(frozen=True, extra="forbid")
    arch: str = Field("resnet50_fusion", description="registry name, see model.registry.list_models()")
    arch_kwargs: dict[str, Any] = Field(default_factory=dict, description="more builder keywords, e.g. {channels: 64}")
    pretrained: bool = Field(True, description="ImageNet backbone from weights_path or $TORCH_HOME cache; never downloads")
    weights_path: str | None = Field(None, description="local ImageNet state dict for the backbone")
    layout: str | None = Field(None, pattern="^(export|redweb|hrwsi)$", description="None = detect")
    val_fraction: float = Field(0.1, ge=0, le=1, description="val share for layouts without a stored split")
    input_size: int | tuple[int, int] = Field(384, description="training crop, S or (H, W); paper: 384")
    batch_size: int = Field(8, gt=0, description="per process")
    iterations: int | None = Field(40000, gt=0, description="training steps (exclusive with epochs)")
    epochs: int | None = Field(None, gt=0)
    optimizer: str = Field("sgd", pattern="^(sgd|adam|adamw)$")
    lr: float = Field(0.01, gt=0, description="head learning rate")
    backbone_lr_mult: float = Field(0.1, ge=0, description="backbone lr factor, only when pretrained")
    momentum: float = Field(0.9, ge=0)
    weight_decay: float = Field(1e-4, ge=0)
    lr_schedule: str = Field("poly", pattern="^(poly|cosine|constant)$")
    loss: str = Field("improved_ranking", pattern="^(improved_ranking|ranking|l1|l2)$")
    drop_ratio: float = Field(0.25, ge=0, lt=1, description="share of easiest unequal pairs dropped")
    n_pairs: int = Field(3000, gt=0, description="pairs sampled per image per step")
    sigma: float = Field(0.02, ge=0, description="ordinal equality tolerance on the depth ratio")
    edge_fraction: float = Field(0.0, ge=0, le=1, description="share of edge-guided pairs (0 = off)")
    flip_p: float = Field(0.5, ge=0, le=1)
    grad_clip: float | None = Field(None, gt=0)
    val_every: int = Field(1000, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    log_every: int = Field(10, gt=0)
    num_workers: int = Field(2, ge=0)
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    amp: bool = Field(True, description="mixed precision (CUDA only)")
    channels_last: bool = Field(True, description="channels-last memory format (CUDA only)")
    tensorboard: bool = True
    n_train_images: int | None = Field(None, gt=0, description="train on the first N of a fixed permutation (Fig. 5)")


class EvaluateConfig(BaseModel):
    """``redweb evaluate`` / ``redweb predict`` settings (see model/evaluate.py for the protocol)."""

    model_config = ConfigDict(frozen=True, extra="allow")
    sigma: float = Field(0.02, ge=0, description="ordinal equality threshold: g_i / g_j > 1 + sigma means i is farther")
    pairs_per_image: int = Field(3000, gt=0, description="WKDR point pairs sampled per dense ground-truth image")
    seed: int = Field(0, description="seed of the WKDR pair sampling (per image: [seed, image number])")
    alignment: str | None = Field(
        None, pattern="^(paper|scale_shift|scale_shift_inverse)$",
        description="alignment reported at the top level; None = paper for NYUv2, scale_shift otherwise",
    )
    nyu_crop: str = Field("eigen", pattern="^(eigen|none)$", description="NYUv2 evaluation crop")
    redweb_split: str = Field("val", description="manifest split scored by --benchmark redweb")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    max_side: int | None = Field(1024, gt=0, description="downscale inputs so the longer side is at most this")
    batch_size: int = Field(4, gt=0, description="redweb predict: images per forward pass")
    report_examples: int = Field(4, ge=0, description="images shown side by side in evaluation reports")
    chen_val_images: int = Field(100, ge=0, description="wkdr_chen2016: validation images tau is chosen on (0 = off)")
    chen_tau: float | None = Field(None, ge=0, description="wkdr_chen2016: a fixed tau instead of choosing one")
