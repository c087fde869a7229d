"""The pipeline run report: one HTML + Markdown page a person opens after `redweb demo` / a pipeline run.

Dataset half: catalog counts per state and reason, the triage score histogram, and a gallery of maps
(left image | relative depth | reliable + sky masks). Model half: the figures of the evaluation report
(training curves, metrics against baselines, input / prediction / ground truth) and its table.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from core.rules import METRIC_NAMES, UNMEASURED_HATCH_RGB, UNMEASURED_RGB, colorize_depth

GALLERY_STATES = ("accepted", "auto_accepted", "pending_review", "auto_rejected")


def _gallery(catalog, data_root: Path, path: Path, n: int) -> tuple[Path | None, list[dict]]:
    """Grid of the best-scored maps: image | depth (turbo, near = dark) | masks. Returns (png, rows)."""
    import cv2
    from matplotlib.figure import Figure

    items = catalog.best_scored(GALLERY_STATES, limit=n)
    rows = []
    for it in items:
        img = cv2.imread(str(data_root / it.image_path), cv2.IMREAD_COLOR)
        depth = cv2.imread(str(data_root / it.depth_path), cv2.IMREAD_UNCHANGED)
        mask = cv2.imread(str(data_root / it.mask_path), cv2.IMREAD_GRAYSCALE) if it.mask_path else None
        sky = cv2.imread(str(data_root / it.sky_path), cv2.IMREAD_GRAYSCALE) if it.sky_path else None
        if img is None or depth is None:
            continue
        rows.append(dict(id=it.id, state=it.state, score=it.score, format=it.stereo_format, view_order=it.view_order,
                         image=img[:, :, ::-1], depth=depth, mask=mask, sky=sky))
    if not rows:
        return None, []
    fig = Figure(figsize=(9, 2.6 * len(rows)))
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for r, row in enumerate(rows):
        sky = row["sky"] > 127 if row["sky"] is not None else None
        measured = row["mask"] > 127 if row["mask"] is not None else None  # (reliable or sky)
        # turbo, near = dark blue, scaled over the measured pixels only; unmeasured ones hatched grey
        shown = colorize_depth(row["depth"], valid=measured, sky=sky, near="dark", sky_rgb=(255, 255, 255),
                               invalid_rgb=UNMEASURED_RGB, invalid_hatch_rgb=UNMEASURED_HATCH_RGB)
        overlay = np.zeros(row["depth"].shape[:2] + (3,), np.uint8)
        if row["mask"] is not None:
            overlay[..., 1] = row["mask"]
        if row["sky"] is not None:
            overlay[..., 2] = row["sky"]
        for ax, (im, title, kw) in zip(axes[r], [
            (row["image"], f"{row['id']} [{row['state']}, score {row['score'] or 0:.2f}]", {}),
            (shown, f"relative depth (dark = near), {row['view_order']}", {}),
            (overlay, "reliable (green) / sky (blue)", {}),
        ]):
            ax.imshow(im, **kw)
            ax.set_title(title, fontsize=8)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path, rows


def _histogram(scores: Sequence[float], path: Path) -> Path | None:
    if not scores:
        return None
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 2.5))
    ax = fig.subplots()
    ax.hist(scores, bins=20, range=(0, 1), color="#4477aa")
    ax.set_xlabel("triage score")
    ax.set_ylabel("maps")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    return path


def summary_text(summary: Mapping[str, Any]) -> str:
    """A step summary as readable text: ``items: 31; outcome: rejected 8, split 20`` (nested dicts flattened)."""
    parts = []
    for key, value in summary.items():
        if isinstance(value, Mapping):
            value = ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
        elif isinstance(value, float):
            value = f"{value:.4g}"
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _steps_table(steps: Mapping[str, Any]) -> str:
    """Markdown table: step | seconds | summary (text, not JSON)."""
    import pandas as pd

    rows = []
    for name, info in steps.items():
        info = dict(info)
        secs = info.pop("seconds", None)
        rows.append({"step": name, "seconds": "" if secs is None else f"{secs:.1f}",
                     "summary": summary_text(info).replace("|", "/")})
    if not rows:
        return "(no steps)"
    return pd.DataFrame(rows, columns=["step", "seconds", "summary"]).to_markdown(index=False, colalign=("left", "right", "left"))


def write_pipeline_report(
    catalog_url: str,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    steps: Mapping[str, Any],
    evaluation: Mapping[str, Any] | None = None,
    model_report: str | Path | None = None,
    gallery: int = 6,
    title: str = "redweb pipeline run",
) -> Path:
    """Write ``out_dir/report.html`` and ``report.md``; returns the HTML path.

    steps: {step name: {"seconds": float, ...summary}} in run order. evaluation: the evaluation
    document (top-level metrics, ``baselines``). model_report: the evaluation report's HTML, whose
    ``figures/`` are embedded here.
    """
    from tasks.catalog.catalog import REASONS, Catalog

    data_root, out = Path(data_root), Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    with Catalog(catalog_url) as catalog:
        status = catalog.status().as_dict()
        scores = catalog.scores()
        gallery_png, rows = _gallery(catalog, data_root, figures / "maps.png", gallery)
    hist_png = _histogram(scores, figures / "scores.png")

    md: list[str] = [f"# {title}", "", "## Steps", "", _steps_table(steps)]
    md += ["", f"## Catalog ({status['total']} items)", "", "| state | items |", "|---|---:|"]
    md += [f"| {k} | {v} |" for k, v in status["states"].items()]
    if status["reasons"]:
        md += ["", "| reason | items | meaning |", "|---|---:|---|"]
        md += [f"| {k} | {v} | {REASONS.get(k, '')} |" for k, v in status["reasons"].items()]
    if hist_png:
        md += ["", "## Triage scores", "", f"![scores]({os.path.relpath(hist_png, out)})"]
    if gallery_png:
        md += ["", "## Maps", "", "Best-scored maps: left image, relative depth (dark = near, sky = farthest), "
               "reliable pixels and sky.", "", f"![maps]({os.path.relpath(gallery_png, out)})"]
    if evaluation:
        present = [n for n in METRIC_NAMES if isinstance(evaluation.get(n), (int, float))]
        md += ["", f"## Model on {evaluation.get('benchmark', 'the held-out split')}", "",
               "Fractions (lower is better except δ).", "",
               "| predictor | " + " | ".join(present) + " |", "|---|" + "---:|" * len(present)]
        rows_eval = {str(evaluation.get("model", "model")): evaluation, **dict(evaluation.get("baselines") or {})}
        for who, m in rows_eval.items():
            md.append(f"| {who} | " + " | ".join(
                f"{m[n]:.4f}" if isinstance(m.get(n), (int, float)) else "" for n in present) + " |")
    if model_report:
        rep = Path(model_report)
        md += ["", "## Model report", "", f"Full report: [{rep.name}]({os.path.relpath(rep, out)})"]
        for fig in ("curves.png", "metrics.png", "examples.png"):
            f = rep.parent / "figures" / fig
            if f.is_file():
                md += ["", f"![{fig}]({os.path.relpath(f, out)})"]
    (out / "report.md").write_text("\n".join(md) + "\n")
    (out / "report.html").write_text(_markdown_to_html("\n".join(md), title))
    return out / "report.html"


def _markdown_to_html(md: str, title: str) -> str:
    """Enough Markdown for this report (headings, tables, images, links) without another dependency."""
    import re

    out, table = [], []

    def flush() -> None:
        if table:
            rows = [r for r in table if not re.fullmatch(r"\|[-:| ]+\|", r)]
            cells = [[c.strip() for c in r.strip("|").split("|")] for r in rows]
            out.append("<table>" + "".join(
                "<tr>" + "".join(f"<{'th' if i == 0 else 'td'}>{html.escape(c)}</{'th' if i == 0 else 'td'}>" for c in row) + "</tr>"
                for i, row in enumerate(cells)) + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        line = re.sub(r"!\[([^\]]*)\]\(([^)]+)\)", r'<img alt="\1" src="\2" style="max-width:100%">', line)
        line = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', line)
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{line.lstrip('#').strip()}</h{level}>")
        elif line.strip():
            out.append(f"<p>{line}</p>")
    flush()
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:90%}")
    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>" \
           f"<style>{style}</style></head><body>{''.join(out)}</body></html>\n"
