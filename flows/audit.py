"""Audit flow: the label audit (``tasks.audit``) as one Prefect flow run.

Takes the flow interface of DESIGN.md (``config_file``, ``data_root``, ``overrides``, all optional)
plus its own arguments; everything heavy is plain code in ``tasks.audit``: ``runner`` (pack, ingest,
process, export, score), ``tables`` (summary, printed table, JSON) and ``report`` (report.html).
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from prefect import flow

log = logging.getLogger(__name__)


def _load(config: Any, config_file: str | None, data_root: str | None, overrides: Any):
    from flows.options import flow_config

    return config if config is not None else flow_config(config_file, data_root, overrides)


def run_audit_command(config: Any = None, *, config_file: str | None = None, data_root: str | None = None,
                      overrides: Any = None, scenes: Sequence[str] = (), packings: str = "sbs,cross,ou,mpo",
                      out: str | None = None, pairs: int = 100_000, legacy_scale: float | None = None,
                      max_frames: int | None = None, report: bool = True, progress: bool = True,
                      photos: Sequence[str] = ()) -> dict:
    """Read the scenes, run the audit, write audit.json (+ report.html); returns the audit JSON."""
    import tempfile

    from flows.config import config_to_dict
    from flows.options import run_dir_for
    from tasks.audit.report import write_report
    from tasks.audit.runner import audit_photos, find_photos, run_audit
    from tasks.audit.scenes import read_scenes
    from tasks.audit.tables import format_photo_table, format_table, summarize, to_json

    config = _load(config, config_file, data_root, overrides)
    found = [s for path in scenes for s in read_scenes(path, legacy_scale=legacy_scale, max_frames=max_frames)]
    if not found and not photos:
        raise ValueError("no scenes to audit")
    out_dir = Path(out) if out else run_dir_for(config, "audit")
    out_dir.mkdir(parents=True, exist_ok=True)
    say = (lambda msg: print(f"[audit] {msg}", file=sys.stderr, flush=True)) if progress else None
    if say:
        say(f"{len(found)} scenes x {len(packings.split(','))} packings -> {out_dir}")
    with tempfile.TemporaryDirectory(prefix="redweb-audit-") as tmp:
        rows, images = [], {}
        if found:
            rows, images = run_audit(
                found, Path(tmp) / "work", packings=[p for p in packings.split(",") if p],
                process=config.process, ingest=config.ingest, n_pairs=pairs,
                keep_images=report, progress=say)
        photo_rows = []
        if photos:
            files = [p for path in photos for p in find_photos(path)]
            if say:
                say(f"{len(files)} web photos without GT")
            photo_rows = audit_photos(files, Path(tmp) / "photos", process=config.process,
                                      ingest=config.ingest)
    summary = summarize(rows)
    cfg = config_to_dict(config)
    result = to_json(rows, summary, {"process": cfg["process"], "ingest": cfg["ingest"]})
    result["table"] = format_table(rows, summary)
    if photo_rows:
        from dataclasses import asdict

        result["photos"] = [asdict(r) for r in photo_rows]
        result["table"] += "\n\n" + format_photo_table(photo_rows)
    (out_dir / "audit.json").write_text(json.dumps({k: v for k, v in result.items() if k != "table"}, indent=1))
    if report and rows:
        path = write_report(out_dir, rows, summary, images, config=result["config"])
        result["report"] = str(path)
    result["out"] = str(out_dir)
    return result


@flow(name="audit", log_prints=True)
def audit_flow(config_file: str | None = None, data_root: str | None = None, overrides: dict | None = None,
               scenes: list[str] | None = None, packings: str = "sbs,cross,ou,mpo", out: str | None = None,
               pairs: int = 100_000, legacy_scale: float | None = None, max_frames: int | None = None,
               report: bool = True, photos: list[str] | None = None) -> dict:
    """The label audit of the configured process stage on ``scenes`` (folders); returns the summary."""
    result = run_audit_command(config_file=config_file, data_root=data_root, overrides=overrides,
                               scenes=scenes or [], packings=packings, out=out, pairs=pairs,
                               legacy_scale=legacy_scale, max_frames=max_frames, report=report,
                               photos=photos or [])
    print(result["table"])
    return {"summary": result["summary"], "out": result["out"]}
