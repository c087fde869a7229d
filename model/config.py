"""Config sections owned by the model package (training, evaluation).

Plain frozen pydantic models; the root config in ``tasks/config.py`` composes them. The model
code itself takes keyword arguments, so these are only read at entry points.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


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
