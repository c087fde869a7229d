"""Config sections owned by the model package (training, evaluation).

Plain frozen pydantic models; the root config in ``flows/config.py`` composes them. Each default is
written once: training reads every setting from :class:`TrainConfig` (``model.train.train(config=...)``);
the fine-tuning functions' signatures hold the fine-tuning defaults, which :class:`FinetuneConfig`'s
None stands for.
"""
from __future__ import annotations

from typing import Any
from pathlib import Path

from pydantic import Field, model_validator

from core.settings import Section


class TrainConfig(Section):
    """``redweb train`` settings, the one home of every training default: ``model.train.train`` reads
    them all from here (its docstring says what each does)."""

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

    @model_validator(mode="before")
    @classmethod
    def _epochs_replace_default_iterations(cls, data: Any) -> Any:
        """``epochs`` given without ``iterations``: the run is measured in epochs, not the default steps."""
        if isinstance(data, dict) and data.get("epochs") is not None and "iterations" not in data:
            return {**data, "iterations": None}
        return data

    @model_validator(mode="after")
    def _one_length(self) -> "TrainConfig":
        if (self.iterations is None) == (self.epochs is None):
            raise ValueError("give exactly one of iterations and epochs")
        return self


class EvaluateConfig(Section):
    """``redweb evaluate`` / ``redweb predict`` settings (see model/evaluate.py for the protocol)."""

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


class FinetuneConfig(Section):
    """Fine-tuning (`redweb finetune`, the `finetune-depth` / `finetune-segment` deployments). Data paths
    default to ``<data_root>/benchmarks/...``; every other field left None takes the task's default,
    written once in the task function's signature (``model.finetune_depth.finetune_depth`` /
    ``model.finetune_segment.finetune_segment``), and recorded in the run's ``finetune_config.yaml``."""

    nyu: Path | None = Field(None, description="NYUv2 labeled .mat (default <data_root>/benchmarks/nyu_depth_v2_labeled.mat)")
    split_file: Path | None = Field(None, description="depth: test indices (splits.mat or text); None: the official split")
    voc: Path | None = Field(None, description="VOC 2012 folder (default <data_root>/benchmarks/VOCdevkit)")
    sbd: Path | None = Field(
        None, description="SBD benchmark_RELEASE (default <data_root>/benchmarks/benchmark_RELEASE when it exists)")
    init: str | None = Field(None, description="a redweb train checkpoint (path), imagenet or scratch")
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    weights_path: Path | None = Field(None, description="ImageNet backbone state dict for init=imagenet")
    iterations: int | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)
    lr: float | None = Field(None, gt=0)
    optimizer: str | None = Field(None, pattern="^(sgd|adam|adamw)$")
    input_size: tuple[int, int] | None = Field(None, description="depth: training / inference size (H, W)")
    augment_count: int | None = Field(None, gt=0, description="depth: offline-augmented training samples")
    eval_crop: str | None = Field(None, pattern="^(eigen|none)$")
    crop_size: int | None = Field(None, gt=0, description="segment: training crop")
    eval_max_images: int | None = Field(None, gt=0)
    device: str | None = None
    num_workers: int | None = Field(None, ge=0)
    seed: int | None = None
    log_every: int | None = Field(None, gt=0)
    checkpoint_every: int | None = Field(None, gt=0, description="steps between checkpoints/last.pt")


class ExperimentRunConfig(Section):
    """The `experiment` deployment: which experiment file runs on which data (`redweb experiment run`)."""

    file: Path = Field(Path("configs/experiments/table2.yaml"),
                       description="experiment file; relative paths are taken from the working directory ($REDWEB_HOME)")
    data: Path | None = Field(None, description="training data (default: the file's data:, else the shared export)")
    toy: bool = Field(False, description="apply the file's toy: section (CPU, seconds)")
    device: str | None = Field(None, description="overrides the file's base.device")
