"""``urls:FILE``: one URL a line; blank lines and lines starting with ``#`` are ignored.

``source_id`` and ``url`` are the URL itself; ingest downloads it with ``tasks.ingest.download.fetch_url``.
"""
from __future__ import annotations

from pathlib import Path

from tasks.catalog.catalog import Catalog

SOURCE = "urls"


def read_url_list(path: str | Path) -> list[str]:
    """URLs of ``path`` in file order, duplicates dropped (first one kept)."""
    seen: dict[str, None] = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        seen.setdefault(text.split()[0], None)  # tolerate trailing comments / whitespace-separated extras
    return list(seen)


def discover(catalog: Catalog, *, path: str | Path, limit: int | None = None, batch: str | None = None) -> list[str]:
    """Record the first ``limit`` URLs of the file as ``discovered``; returns their ids in file order."""
    ids = []
    for url in read_url_list(path)[: limit if limit is not None else None]:
        item, _created = catalog.discover(source=SOURCE, source_id=url, url=url, batch=batch)
        ids.append(item.id)
    return ids
