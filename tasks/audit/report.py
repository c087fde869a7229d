"""The audit's HTML report: the tables, then per scene and packing image | produced depth | GT depth |
where the labels are wrong, so a person sees *where* a configuration loses the order, not only how much."""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from core.rules import SKY_VALUE, UNMEASURED_HATCH_RGB, UNMEASURED_RGB, colorize_depth
from tasks.audit.runner import AuditRow
from tasks.audit.scoring import BAD_COVERAGE, BAD_ERROR, REPORT_RADII
from tasks.audit.tables import confusion_frame, percent, shown_frame

PICTURE_WIDTH = 360  # px: pictures wider than this are shrunk before they are written
SKY_RGB = (70, 110, 200)  # the produced map's sky (blue-grey)

_CONFIG_NOTE = ("The configuration measured, as given; the audit itself always runs ingest\n"
                "with near-duplicate detection off (the packings of one scene are near-duplicates by "
                "design).")
_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:20px;color:#222} "
    "table.t{border-collapse:collapse;font-size:12px}\n"
    "table.t td,table.t th{border:1px solid #ccc;padding:2px 6px;text-align:right} "
    ".row{display:flex;gap:6px;flex-wrap:wrap}\n"
    "figure{margin:0} figure img{width:300px;display:block} figcaption{font-size:11px;color:#666}\n"
    "section{border-left:6px solid #3a3;padding:4px 10px;margin:12px 0} section.bad{border-color:#c33}\n"
    "section.none{border-color:#aaa} .legend{max-width:1100px;color:#444} "
    ".sum td{vertical-align:top;padding-right:24px}\n"
    "h3{font-size:14px;margin:4px 0} .lost{color:#a33} pre{background:#f6f6f6;padding:8px}")


def _depth_colour(depth: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Inverse depth in turbo (near = red) scaled over the known pixels only, unknown ones hatched grey:
    one look for produced and GT maps, and the same as the review UI's previews."""
    return colorize_depth(np.asarray(depth, np.float64), valid=valid, sky=np.zeros(valid.shape, bool),
                          inverse=True, percentiles=(1, 99), invalid_rgb=UNMEASURED_RGB,
                          invalid_hatch_rgb=UNMEASURED_HATCH_RGB)


def _error_colour(disagree: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Where labels are wrong: green (all neighbour pairs right) .. red (all wrong) over the dimmed image;
    no colour where nothing was compared."""
    grey = (image.mean(axis=2, keepdims=True) * 0.35).repeat(3, axis=2)
    known = np.isfinite(disagree)
    e = np.clip(np.nan_to_num(disagree), 0, 1)
    colour = np.stack([255 * np.clip(2 * e, 0, 1), 255 * np.clip(2 * (1 - e), 0, 1), np.zeros_like(e)],
                      axis=-1)
    out = grey.copy()
    out[known] = 0.3 * grey[known] + 0.7 * colour[known]
    return out.astype(np.uint8)


def _write_picture(pic: np.ndarray, path: Path) -> None:
    """(H, W, 3) RGB as a JPEG at most ``PICTURE_WIDTH`` wide."""
    import cv2

    small = pic
    if pic.shape[1] > PICTURE_WIDTH:
        f = PICTURE_WIDTH / pic.shape[1]
        size = (PICTURE_WIDTH, max(1, int(round(pic.shape[0] * f))))
        small = cv2.resize(pic, size, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 85])


def _pictures(r: AuditRow, ims: dict[str, np.ndarray], img_dir: Path) -> list[str]:
    """Write image | depth | gt | wrong of one map to ``img_dir``; their <figure> cells."""
    rd, mask = ims["rd"].astype(np.float64), ims["mask"] > 127
    sky = ims["rd"] == SKY_VALUE
    produced = _depth_colour(rd, mask & ~sky)
    produced[sky] = SKY_RGB
    gt = ims["gt_depth"]
    gtc = _depth_colour(np.nan_to_num(gt, nan=1.0), np.isfinite(gt))
    err = _error_colour(ims["disagreement"], ims["image"])
    cells = []
    for tag, pic in (("image", ims["image"]), ("depth", produced), ("gt", gtc), ("wrong", err)):
        name = f"{r.scene}__{r.packing}_{tag}.jpg"
        _write_picture(pic, img_dir / name)
        cells.append(f'<figure><img src="img/{html.escape(name)}" loading="lazy">'
                     f'<figcaption>{tag}</figcaption></figure>')
    return cells


def _map_section(r: AuditRow, ims: dict[str, np.ndarray] | None, img_dir: Path) -> str:
    """One row's <section>: its figures in the heading, its pictures (or why it has no map) below."""
    if ims:
        cells = _pictures(r, ims, img_dir)
    else:
        cells = [f"<p class=lost>no map: {html.escape(r.state)} ({html.escape(str(r.reason))})</p>"]
    order = "—" if r.view_order_ok is None else ("right" if r.view_order_ok else "WRONG")
    head = (f"{html.escape(r.scene)} · {r.packing} — {html.escape(r.state)}"
            f"{' (' + html.escape(r.reason) + ')' if r.reason else ''} · "
            f"ordinal error {percent(r.ordinal_error)} "
            f"(err≠ {percent(r.error_neq)}) · "
            f"coverage {percent(r.coverage)} · view order {order} · format {html.escape(str(r.format))}")
    cls = "none" if r.bad is None else ("bad" if r.bad else "good")
    return f'<section class="{cls}"><h3>{head}</h3><div class=row>{"".join(cells)}</div></section>'


def _legend() -> str:
    """What the table's columns and the pictures' colours mean."""
    r0, r1 = REPORT_RADII
    return ("Columns: ord.err = share of random pixel pairs whose ordinal label (σ = 2 % on the depth "
            "ratio) differs from GT, ties counting as wrong (pairs a stepped GT's precision cannot decide "
            "are left out); err≠ = the same over the pairs GT orders; inverted = pairs GT orders one way "
            "and the map the other; coverage = share of the view's GT pixels with a reliable label; "
            "ceiling = share of them the other packed view shows at all (inside its crop, not occluded): "
            "no correspondence can label more; order ✓/✗ = whether the exported image really is the left "
            f"eye; truth = bad when ord.err > {BAD_ERROR:.0%} or coverage < {BAD_COVERAGE:.0%}. Pictures: "
            "depth and gt in turbo colours of inverse depth (red = near, blue = far; each scaled to its "
            "own 1-99 % range), grey = no reliable label / no GT, blue-grey = sky; wrong = per pixel, the "
            f"share of its neighbour pairs ({r0} and {r1} px, 8 directions) that GT orders and the map "
            "inverts or calls equal: green = right, yellow = half, red = wrong, dim = not compared. "
            "Left bar: red = bad map, green = good, grey = no map.")


def _headline(summary: dict[str, Any]) -> str:
    """The summary's figures in one paragraph (HTML)."""
    tri = summary["triage"]
    return (f"<p>kept <b>{summary['kept']}/{summary['total']}</b> · mean ordinal error of kept maps "
            f"<b>{percent(summary['ordinal_error'])}</b>\n"
            f"(max {percent(summary['max_ordinal_error'])}) · "
            f"mean coverage <b>{percent(summary['coverage'])}</b>\n"
            f"(ceiling {percent(summary.get('coverage_ceiling'))}) ·\n"
            f"view-order errors among kept maps <b>{summary['view_order_errors']}</b> · "
            f"format errors {summary['format_errors']} ·\n"
            f"auto-reject precision {percent(tri['precision'])}, recall {percent(tri['recall'])}</p>")


def write_report(out_dir: str | Path, rows: Sequence[AuditRow], summary: dict[str, Any],
                 images: dict[str, dict], *, title: str = "redweb label audit",
                 config: dict | None = None) -> Path:
    """``out_dir/report.html`` with the tables and, per scene and packing, image | produced depth |
    GT depth | where the labels are wrong. Pictures go to ``out_dir/img/``."""
    out_dir = Path(out_dir)
    img_dir = out_dir / "img"
    img_dir.mkdir(parents=True, exist_ok=True)
    blocks = [_map_section(r, images.get(r.item_id), img_dir) for r in rows]
    table = shown_frame(rows).to_html(index=False, classes="t")
    confusion = confusion_frame(summary).to_html(classes="t")
    lost = "".join(f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in summary["lost"].items())
    config_json = html.escape(json.dumps(config or {}, indent=1, default=str))
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
{_headline(summary)}
<table class=sum><tr><td><b>triage against truth</b>{confusion}</td>
<td><b>not kept</b><ul>{lost or "<li>none</li>"}</ul></td></tr></table>
<p class=legend>{html.escape(_legend())}</p>
{table}
<h2>Maps</h2>
{''.join(blocks)}
<h2>Configuration</h2><p class=legend>{_CONFIG_NOTE}</p><pre>{config_json}</pre>
</body></html>"""
    path = out_dir / "report.html"
    path.write_text(doc)
    return path
