"""The data root's layout: every path under it, and the one timestamp format of run folders.

DESIGN.md "Where things live": ``catalog.db``, ``raw/``, ``pairs/``, ``maps/``, ``exports/``, ``runs/``,
``samples/``, ``benchmarks/``, ``models/``, ``cache/``. The catalog stores paths relative to the root;
code builds absolute ones here and nowhere else.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

#: run folders are named ``<kind>-<stamp>``: UTC, sortable, microseconds so two runs never collide.
RUN_STAMP_FORMAT = "%Y%m%dT%H%M%S%fZ"


def run_stamp(now: datetime | None = None) -> str:
    """The timestamp of a run folder's name (UTC, ``20261204T170102123456Z``)."""
    return (now or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(RUN_STAMP_FORMAT)


@dataclass(frozen=True)
class DataRoot:
    """Paths under one data root. ``DataRoot(path).maps_rel(id)`` is what the catalog stores."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def catalog_db(self) -> Path:
        return self.root / "catalog.db"

    @property
    def raw(self) -> Path:
        return self.root / "raw"

    @property
    def samples(self) -> Path:
        return self.root / "samples"

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def benchmarks(self) -> Path:
        return self.root / "benchmarks"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def releases(self) -> Path:
        """``releases/<name>/``: published, never rewritten datasets (tasks/publish/release.py)."""
        return self.root / "releases"

    #: the folders whose ``<folder>/<id>/`` hold one item's files (the review UI serves only these)
    ITEM_FOLDERS = ("maps", "pairs")

    def pairs(self, item_id: str) -> Path:
        """``pairs/<id>/``: the two views as split (left.png, right.png)."""
        return self.root / self.pairs_rel(item_id)

    @staticmethod
    def pairs_rel(item_id: str) -> Path:
        return Path(DataRoot.ITEM_FOLDERS[1]) / item_id

    def maps(self, item_id: str) -> Path:
        """``maps/<id>/``: image.jpg, depth.png, mask.png, sky.png, preview.jpg of one processed item."""
        return self.root / self.maps_rel(item_id)

    @staticmethod
    def maps_rel(item_id: str) -> Path:
        return Path(DataRoot.ITEM_FOLDERS[0]) / item_id

    def export(self, name: str) -> Path:
        return self.exports / name

    def run_dir(self, kind: str, stamp: str | None = None) -> Path:
        """``runs/<kind>-<stamp>/`` (not created): one folder per run, named by :func:`run_stamp`."""
        return self.runs / f"{kind}-{stamp or run_stamp()}"

    def experiment(self, name: str) -> Path:
        """``runs/experiment-<name>/``: one folder per experiment file, no stamp (a rerun resumes it)."""
        return self.runs / f"experiment-{name}"

    def audits(self) -> list[Path]:
        """Every ``runs/audit-*/audit.json`` there is."""
        return list(self.runs.glob("audit-*/audit.json"))

    @property
    def review_cache(self) -> Path:
        """Derived images of the review UI (thumbnails, colour maps)."""
        return self.cache / "review"

    @property
    def review_secret_key(self) -> Path:
        """The review UI's cookie-signing key (created 0600) unless ``review.secret_key(_file)`` says otherwise."""
        return self.root / "review_secret.key"
