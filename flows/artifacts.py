"""Artifacts every run shows in the Prefect UI: catalog counts, quality histograms, report links."""
from __future__ import annotations

from pathlib import Path

from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact


def _key(text: str) -> str:
    # artifact keys: lowercase letters, numbers and dashes
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def publish_catalog_counts(catalog_url: str, *, stage: str) -> dict:
    """Counts per state and per reason code, as two table artifacts. Returns the status dict."""
    from tasks.catalog.catalog import REASONS, Catalog

    with Catalog(catalog_url) as catalog:
        status = catalog.status().as_dict()
    create_table_artifact(
        key=_key(f"{stage}-states"),
        table=[{"state": s, "count": n} for s, n in status["states"].items()],
        description=f"{stage}: catalog items per state (total {status['total']})",
    )
    if status["reasons"]:
        create_table_artifact(
            key=_key(f"{stage}-reasons"),
            table=[{"reason": r, "count": n, "meaning": REASONS.get(r, "")} for r, n in status["reasons"].items()],
            description=f"{stage}: items per reason code",
        )
    return status


def publish_quality_histogram(catalog_url: str, *, stage: str, bins: int = 10) -> None:
    """Histogram of triage scores (and the share per final state) as a markdown artifact."""
    from tasks.catalog.catalog import Catalog

    with Catalog(catalog_url) as catalog:
        scores = catalog.scores()
    if not scores:
        return
    counts = [0] * bins
    for v in scores:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    peak = max(counts)
    lines = ["| score | count | |", "|---|---:|---|"]
    for i, n in enumerate(counts):
        bar = "█" * round(30 * n / peak) if peak else ""
        lines.append(f"| {i / bins:.1f}–{(i + 1) / bins:.1f} | {n} | {bar} |")
    create_markdown_artifact(key=_key(f"{stage}-quality"), markdown="\n".join(lines),
                             description=f"{stage}: triage score histogram over {len(scores)} maps")


def publish_report_link(report: str | Path, *, stage: str) -> None:
    path = Path(report).resolve()
    create_link_artifact(key=_key(f"{stage}-report"), link=path.as_uri(), link_text=f"{stage} report",
                         description=f"report of this {stage} run: {path}")
