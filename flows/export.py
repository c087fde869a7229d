"""Export flow: catalog items in the chosen states -> ReDWeb-layout dataset (tasks/export.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prefect import flow

from flows.policy import redweb_task
from tasks.export import export_dataset


def _export(catalog_url: str, data_root: str, out_dir: str, **options) -> dict:
    from tasks.catalog import Catalog

    with Catalog(catalog_url) as catalog:
        return export_dataset(catalog, data_root, out_dir, **options).summary()


@flow(name="redweb-export", log_prints=True)
def export_flow(catalog_url: str, data_root: str, out_dir: str, *, states: Sequence[str] = ("accepted",),
                fmt: str = "redweb16", val_fraction: float = 0.1, max_side: int | None = None,
                jpeg_quality: int = 95) -> dict:
    """Write ``out_dir`` (imgs/, RDs/, masks/, manifest.csv); returns the export summary."""
    summary = redweb_task(_export, kind="db", name="export-dataset")(
        catalog_url, str(Path(data_root)), str(Path(out_dir)), states=list(states), fmt=fmt,
        val_fraction=val_fraction, max_side=max_side, jpeg_quality=jpeg_quality)
    print(f"export: {summary['total']} items ({summary['written']} written, {summary['unchanged']} unchanged, "
          f"{summary['removed']} removed, {summary['skipped']} skipped) -> {summary['out_dir']}")
    return summary
