"""``local:DIR``: every image file under a folder (recursive), in sorted path order.

``source_id`` is the file's path relative to DIR (POSIX separators, as DESIGN.md's manifest
promises); ``url`` is the file's absolute ``file://`` URI, which ingest copies from.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from tasks.catalog.catalog import Catalog

SOURCE = "local"


def list_files(root: str | Path, *, extensions: Iterable[str]) -> list[Path]:
    """Files under ``root`` whose lower-cased suffix is in ``extensions``, sorted; hidden files and
    folders (``.git``, ``.part`` leftovers) are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"local source: {root} is not a folder")
    wanted = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions}
    out = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() and path.suffix.lower() in wanted:
            out.append(path)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def discover(catalog: Catalog, *, root: str | Path, extensions: Iterable[str], limit: int | None = None,
             batch: str | None = None) -> list[str]:
    """Record the first ``limit`` files under ``root`` (all if None) as ``discovered``; returns their
    ids in listing order (known files included, so an interrupted ingest resumes them)."""
    root = Path(root).resolve()
    ids = []
    for path in list_files(root, extensions=extensions)[: limit if limit is not None else None]:
        item, _created = catalog.discover(
            source=SOURCE, source_id=path.relative_to(root).as_posix(), url=path.as_uri(), title=path.name,
            fetched_at=datetime.now(timezone.utc), batch=batch,
        )
        ids.append(item.id)
    return ids
