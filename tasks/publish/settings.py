"""The publishing stage's settings (``export`` and ``release`` sections).

The export defaults are the keyword defaults of ``tasks.publish.export.export_dataset`` (its signature is
their one home); this section reads them.
"""
from __future__ import annotations

from typing import Any

from pydantic import Field

from core.settings import Section, keyword_defaults
from tasks.publish.export import export_dataset

_EXPORT = keyword_defaults(export_dataset)


class ExportConfig(Section):
    """Dataset export (`redweb export`) in the ReDWeb layout of DESIGN.md."""

    val_fraction: float = Field(_EXPORT["val_fraction"], ge=0, le=1, description="share of items in split=val, chosen by id hash")
    states: tuple[str, ...] = Field(tuple(_EXPORT["states"]), min_length=1, description="catalog states to export")
    format: str = Field(_EXPORT["fmt"], pattern="^(redweb16|redweb8)$")
    max_side: int | None = Field(_EXPORT["max_side"], gt=0, description="resize exported image/RD/mask so the longer side is at most this")
    jpeg_quality: int = Field(_EXPORT["jpeg_quality"], ge=1, le=100, description="used only when the image must be re-encoded")

    def export_kwargs(self) -> dict[str, Any]:
        """This section as keyword arguments of ``tasks.publish.export.export_dataset`` (states included)."""
        return dict(states=list(self.states), fmt=self.format, val_fraction=self.val_fraction, max_side=self.max_side,
                    jpeg_quality=self.jpeg_quality)


class ReleaseConfig(Section):
    """Dataset releases, source re-validation and takedown (`redweb release | revalidate | withdraw`)."""

    states: tuple[str, ...] = Field(("accepted",), min_length=1, description="catalog states a release draws from")
    revalidate_older_than_days: float | None = Field(
        6.0, ge=0, description="revalidate re-checks items not verified for this many days (None: every item); "
        "6 so that a weekly schedule re-checks everything despite start-time jitter")
    revalidate_limit: int | None = Field(None, ge=1, description="check at most this many items per run")
