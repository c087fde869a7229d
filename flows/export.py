"""Export flow: catalog items in the chosen states -> ReDWeb-layout dataset (tasks/publish/export.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from prefect import flow

from flows.options import export_dir_for, export_options, flow_config
from flows.policy import redweb_task
from flows.config import Overrides
from tasks.publish.export import export_dataset


def _export(catalog_url: str, data_root: str, out_dir: str, **options) -> dict:
    from tasks.catalog.catalog import Catalog

    with Catalog(catalog_url) as catalog:
        return export_dataset(catalog, data_root, out_dir, **options).summary()


@flow(name="redweb-export", log_prints=True)
def export_flow(config_file: str | None = None, data_root: str | None = None, overrides: Overrides = None,
                out_dir: str | None = None, states: Sequence[str] | None = None) -> dict:
    """Write ``out_dir`` (imgs/, RDs/, masks/, manifest.csv); returns the export summary.

    ``out_dir`` defaults to ``<data_root>/exports/<pipeline.export_name>``; ``states`` to ``export.states``;
    format, split and sizes come from the ``export`` config section.
    """
    config = flow_config(config_file, data_root, overrides)
    options = export_options(config)
    if states is not None:
        options["states"] = list(states)
    out = Path(out_dir) if out_dir else export_dir_for(config)
    summary = redweb_task(_export, kind="db", name="export-dataset")(
        config.catalog_url, str(config.data_root), str(out), **options)
    print(f"export: {summary['total']} items ({summary['written']} written, {summary['unchanged']} unchanged, "
          f"{summary['removed']} removed, {summary['skipped']} skipped) -> {summary['out_dir']}")
    return summary
