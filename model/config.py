"""Config sections owned by the model package (training, evaluation).

Plain frozen pydantic models; the root config in ``tasks/config.py`` composes them. The model
code itself takes keyword arguments, so these are only read at entry points.
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TrainConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
