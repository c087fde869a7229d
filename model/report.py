"""Markdown + HTML report of a training or evaluation run, with matplotlib figures.

What goes in, when present:

* loss curves from ``<run_dir>/metrics.csv`` as ``model.train`` writes it (``step``,
  ``train_loss``, ``val_loss``, ``train_ordinal_error``, ``val_ordinal_error``, ...; any other
  ``*loss*`` or ``val_*`` column is drawn too, non-numeric columns are ignored);
* the metrics table of the model against the baselines (Markdown/HTML table and a bar chart);
* input / prediction / ground truth side by side for a few images;
* the run's effective configuration (``train_config.yaml``, or ``config.yaml``/``.json``).

Figures are drawn with ``matplotlib.figure.Figure`` directly (no pyplot global state) and saved
under ``<out_dir>/figures/``; ``report.md`` and ``report.html`` reference them relatively, so the
folder can be moved or served as is.
"""
from __future__ import annotations

import csv
import html
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from core.rules import DEPTH_ERROR_NAMES, METRIC_NAMES

#: Metrics shown in tables, in this order; lower is better except for the deltas.
TABLE_METRICS = METRIC_NAMES
#: Metric-depth errors (the per-alignment table's columns).
DEPTH_METRICS = DEPTH_ERROR_NAMES
HIGHER_IS_BETTER = {"delta1", "delta2", "delta3"}
CONFIG_NAMES = ("train_config.yaml", "config.yaml", "config.yml", "config.json", "effective_config.yaml", "effective_config.json")


def read_metrics_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Columns of a training ``metrics.csv`` as float arrays (empty cells -> NaN); non-numeric
    columns are dropped. Returns ``{}`` if the file is missing or empty."""
    path = Path(path)
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    out: dict[str, np.ndarray] = {}
    for col in rows[0].keys():
        values = []
        for r in rows:
            cell = (r.get(col) or "").strip()
            try:
                values.append(float(cell) if cell else math.nan)
            except ValueError:
                break
        else:
            out[col] = np.asarray(values, dtype=np.float64)
    return out


#: metrics.csv columns that are bookkeeping, not curves worth drawing.
_NOT_CURVES = {"step", "epoch", "time_s", "lr", "images_per_s", "val_pairs"}


def plot_curves(history: Mapping[str, np.ndarray], path: str | Path) -> Path | None:
    """Losses (left) and ordinal errors / other validation metrics (right) against ``step``.

    Matches ``model.train``'s metrics.csv (``train_loss, val_loss, train_ordinal_error,
    val_ordinal_error``, ...) and any other ``*loss*`` / ``val_*`` columns. None if nothing to draw.
    """
    from matplotlib.figure import Figure

    if "step" not in history:
        return None
    step = history["step"]
    cols = [c for c in history if c not in _NOT_CURVES and np.isfinite(history[c]).any()]
    loss_cols = [c for c in cols if "loss" in c]
    other_cols = [c for c in cols if c not in loss_cols and (c.startswith("val") or "error" in c)]
    panels = [(title, group) for title, group in (("loss", loss_cols), ("ordinal error / validation", other_cols)) if group]
    if not panels:
        return None
    fig = Figure(figsize=(6 * len(panels), 4), layout="constrained")
    for k, (title, group) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for c in group:
            ok = np.isfinite(history[c])
            ax.plot(step[ok], history[c][ok], marker="." if ok.sum() < 30 else None, label=c)
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        vals = np.concatenate([history[c][np.isfinite(history[c])] for c in group])
        if title == "loss" and vals.size and (vals > 0).all() and vals.max() / vals.min() > 20:
            ax.set_yscale("log")  # losses often fall by orders of magnitude
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_metrics(rows: Mapping[str, Mapping[str, Any]], path: str | Path) -> Path | None:
    """Grouped bars: one group per metric, one bar per predictor (model first, then baselines)."""
    from matplotlib.figure import Figure

    names = list(rows)
    metrics = [m for m in TABLE_METRICS if any(_num(rows[n].get(m)) is not None for n in names)]
    if not metrics:
        return None
    fig = Figure(figsize=(max(5.0, 1.1 * len(metrics) * max(1, len(names)) * 0.5 + 2), 3.8), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(names)
    x = np.arange(len(metrics))
    for k, n in enumerate(names):
        vals = [(_num(rows[n].get(m)) or 0.0) for m in metrics]
        ax.bar(x + (k - (len(names) - 1) / 2) * width, vals, width, label=n)
    ax.set_xticks(x, [m + (" ↑" if m in HIGHER_IS_BETTER else " ↓") for m in metrics])
    ax.set_ylabel("value (fractions; rms in ground-truth units)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return Path(path)


def plot_examples(examples: Sequence[Mapping[str, Any]], path: str | Path, max_rows: int = 6) -> Path | None:
    """Rows of input | prediction(s) | ground truth. Each example: ``key``, ``image`` (H,W,3 uint8),
    ``pred`` (H,W array, or {name: array}), optional ``gt`` (H,W, larger = farther), ``mask``,
    ``points`` ([(y, x, label)], marked on every panel) and ``caption``."""
    from matplotlib.figure import Figure

    from model.predict import colorize

    examples = list(examples)[:max_rows]
    if not examples:
        return None
    pred_names = _pred_names(examples[0])
    has_gt = any(e.get("gt") is not None for e in examples)
    cols = 1 + len(pred_names) + int(has_gt)
    fig = Figure(figsize=(3.2 * cols, 2.6 * len(examples)), layout="constrained")
    for r, e in enumerate(examples):
        preds = e["pred"] if isinstance(e["pred"], Mapping) else {"prediction": e["pred"]}
        mask = e.get("mask")
        panels: list[tuple[str, np.ndarray]] = [(f"{e.get('key', r)}: input", np.asarray(e["image"]))]
        panels += [(n, colorize(preds[n])) for n in pred_names if n in preds]
        if has_gt:
            gt = e.get("gt")
            panels.append(("ground truth", colorize(gt, mask=mask) if gt is not None else np.zeros((2, 2, 3), np.uint8)))
        for c, (title, img) in enumerate(panels):
            ax = fig.add_subplot(len(examples), cols, r * cols + c + 1)
            ax.imshow(img)
            # DIW-style examples carry their labelled points: mark them on every panel
            for y, x, label in e.get("points", ()):
                ax.plot([x], [y], marker="o", markersize=6, markerfacecolor="none", markeredgecolor="cyan")
                ax.annotate(label, (x, y), xytext=(4, -4), textcoords="offset points", color="cyan", fontsize=8)
            if c == 0 and e.get("caption"):
                title = f"{title} ({e['caption']})"
            ax.set_title(str(title), fontsize=8)
            ax.axis("off")
    fig.savefig(path, dpi=100)
    return Path(path)


def _pred_names(example: Mapping[str, Any]) -> list[str]:
    pred = example["pred"]
    return list(pred) if isinstance(pred, Mapping) else ["prediction"]


def _num(v: Any) -> float | None:
    if isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool):
        f = float(v)
        return None if math.isnan(f) else f
    return None


def metrics_rows(metrics: Mapping[str, Any] | None, baselines: Mapping[str, Mapping[str, Any]] | None,
                 model_name: str = "model") -> dict[str, Mapping[str, Any]]:
    """``{predictor name: metrics}`` with the model first."""
    rows: dict[str, Mapping[str, Any]] = {}
    if metrics:
        name = metrics.get("model")
        rows[name if isinstance(name, str) and name else model_name] = metrics
    for name, m in (baselines or {}).items():
        rows[name] = m
    return rows


def _table(rows: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], list[list[str]]]:
    cols = [m for m in TABLE_METRICS if any(_num(r.get(m)) is not None for r in rows.values())]
    body = []
    for name, r in rows.items():
        body.append([name] + [f"{_num(r.get(c)):.4f}" if _num(r.get(c)) is not None else "–" for c in cols])
    return cols, body


def write_report(
    run_dir: str | Path,
    *,
    metrics: Mapping[str, Any] | None = None,
    baselines: Mapping[str, Mapping[str, Any]] | None = None,
    examples: Sequence[Mapping[str, Any]] | None = None,
    out_dir: str | Path | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` and ``report.html`` (+ ``figures/*.png``) and return the HTML path.

    run_dir: the run's folder; its ``metrics.csv`` (training history) and config file are used if
    present. metrics: the model's metrics (an evaluation document from
    :func:`model.evaluate.evaluate_benchmark` works as is; its ``baselines`` are used when
    ``baselines`` is not given). examples: see :func:`plot_examples`. out_dir: default ``run_dir``.
    """
    run = Path(run_dir)
    out = Path(out_dir) if out_dir is not None else run
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    if baselines is None and metrics is not None and isinstance(metrics.get("baselines"), Mapping):
        baselines = metrics["baselines"]
    title = title or f"Run report: {run.name}"

    history = read_metrics_csv(run / "metrics.csv")
    curves = plot_curves(history, figures / "curves.png") if history else None
    rows = metrics_rows(metrics, baselines)
    bars = plot_metrics(rows, figures / "metrics.png") if rows else None
    grid = plot_examples(examples, figures / "examples.png") if examples else None
    config_file = next((run / n for n in CONFIG_NAMES if (run / n).is_file()), None)

    md: list[str] = [f"# {title}", "", f"_generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}"
                     f" from `{run}`_", ""]
    doc_html: list[str] = [f"<h1>{html.escape(title)}</h1>",
                           f"<p><em>generated {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from "
                           f"<code>{html.escape(str(run))}</code></em></p>"]
    if metrics and metrics.get("benchmark"):
        n = metrics.get("n_images")
        line = f"Benchmark **{metrics['benchmark']}**" + (f", {int(n)} images" if _num(n) else "")
        md += [line + ".", ""]
        doc_html.append(f"<p>Benchmark <b>{html.escape(str(metrics['benchmark']))}</b>"
                        + (f", {int(n)} images" if _num(n) else "") + ".</p>")
    for note in notes:
        md += [note, ""]
        doc_html.append(f"<p>{html.escape(note)}</p>")

    if rows:
        cols, body = _table(rows)
        if cols:
            md += ["## Metrics", "", "Rates and errors are fractions (lower is better; deltas: higher is better).", "",
                   "| | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
            md += ["| " + " | ".join(r) + " |" for r in body]
            md.append("")
            doc_html += ["<h2>Metrics</h2>", "<p>Rates and errors are fractions (lower is better; deltas: higher is"
                         " better).</p>", "<table><tr><th></th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols)
                         + "</tr>"]
            doc_html += ["<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in r) + "</tr>" for r in body]
            doc_html.append("</table>")
        align = metrics.get("alignments") if metrics else None
        if isinstance(align, Mapping) and align:
            md += ["### Metric-depth errors per alignment (model)", "",
                   "| alignment | " + " | ".join(DEPTH_METRICS) + " |", "|---|" + "---:|" * 6]
            doc_html += ["<h3>Metric-depth errors per alignment (model)</h3>", "<table><tr><th>alignment</th>"
                         + "".join(f"<th>{m}</th>" for m in DEPTH_METRICS) + "</tr>"]
            for a, errs in align.items():
                cells = [f"{_num(errs.get(m)):.4f}" if _num(errs.get(m)) is not None else "–" for m in DEPTH_METRICS]
                md.append(f"| {a} | " + " | ".join(cells) + " |")
                doc_html.append(f"<tr><td>{html.escape(a)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            md.append("")
            doc_html.append("</table>")
    chen = [(n, r) for n, r in rows.items() if _num(r.get("wkdr_chen2016_tau")) is not None]
    if chen:
        md += ["### WKDR, Chen et al. 2016 protocol", "",
               "`wkdr_chen2016`: \"equal\" when |z_A − z_B| < τ on the raw output, τ chosen on validation images to "
               "minimise max(WKDR=, WKDR≠); `wkdr` above uses the ratio rule after alignment.", "",
               "| | wkdr_chen2016 | WKDR= | WKDR≠ | τ |", "|---|---:|---:|---:|---:|"]
        doc_html += ["<h3>WKDR, Chen et al. 2016 protocol</h3>", "<table><tr><th></th><th>wkdr_chen2016</th>"
                     "<th>WKDR=</th><th>WKDR≠</th><th>τ</th></tr>"]
        for n, r in chen:
            cells = [f"{_num(r.get(k)):.4f}" if _num(r.get(k)) is not None else "–"
                     for k in ("wkdr_chen2016", "wkdr_chen2016_eq", "wkdr_chen2016_neq")]
            cells.append(f"{_num(r.get('wkdr_chen2016_tau')):.6g}")
            md.append(f"| {n} | " + " | ".join(cells) + " |")
            doc_html.append(f"<tr><td>{html.escape(str(n))}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        md.append("")
        doc_html.append("</table>")
    for heading, fig in (("Metrics against the baselines", bars), ("Training curves", curves),
                         ("Examples: input, prediction, ground truth", grid)):
        if fig is not None:
            rel = fig.relative_to(out).as_posix()
            md += [f"## {heading}", "", f"![{heading}]({rel})", ""]
            doc_html += [f"<h2>{html.escape(heading)}</h2>", f'<img src="{html.escape(rel)}" alt="{html.escape(heading)}">']
    if history:
        last = {k: v[np.isfinite(v)][-1] for k, v in history.items() if np.isfinite(v).any()}
        md += ["## Last logged values", "", "| column | value |", "|---|---:|"]
        md += [f"| {k} | {v:.6g} |" for k, v in last.items()]
        md.append("")
        doc_html += ["<h2>Last logged values</h2>", "<table>"]
        doc_html += [f"<tr><td>{html.escape(k)}</td><td>{v:.6g}</td></tr>" for k, v in last.items()]
        doc_html.append("</table>")
    if config_file is not None:
        text = config_file.read_text(encoding="utf-8", errors="replace")
        md += [f"## Configuration (`{config_file.name}`)", "", "```", text.rstrip(), "```", ""]
        doc_html += [f"<h2>Configuration ({html.escape(config_file.name)})</h2>", f"<pre>{html.escape(text)}</pre>"]
    settings = metrics.get("settings") if metrics else None
    if isinstance(settings, Mapping) and settings:
        md += ["## Settings", "", "| setting | value |", "|---|---|"]
        md += [f"| {k} | `{v}` |" for k, v in settings.items()]
        md.append("")
        doc_html += ["<h2>Settings</h2>", "<table>"]
        doc_html += [f"<tr><td>{html.escape(str(k))}</td><td><code>{html.escape(str(v))}</code></td></tr>"
                     for k, v in settings.items()]
        doc_html.append("</table>")

    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
            "td:first-child,th:first-child{text-align:left}img{max-width:100%}pre{background:#f6f6f6;padding:1em;"
            "overflow:auto}</style></head><body>" + "\n".join(doc_html) + "</body></html>\n")
    html_path = out / "report.html"
    html_path.write_text(page, encoding="utf-8")
    return html_path
