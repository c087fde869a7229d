"""Tables: the audit's rows as pandas frames, the summary over them, the printed table and the JSON.

``summarize`` judges triage against the scoring's truth (a map is bad when its ordinal error exceeds
``BAD_ERROR`` or its coverage is under ``BAD_COVERAGE``): auto-reject precision and recall.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any, Iterable, Sequence

from tasks.audit.runner import AuditRow, PhotoRow
from tasks.audit.scoring import BAD_COVERAGE, BAD_ERROR


def percent(x: Any) -> str:
    """A fraction as the tables show it (one decimal), "—" where there is none."""
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{100 * x:.1f}%"


def rows_frame(rows: Iterable[AuditRow]):
    """One pandas row per (scene, packing)."""
    import pandas as pd

    records = []
    for r in rows:
        rec = asdict(r)
        secs = rec.pop("seconds")
        rec.pop("degradation")
        # what the pipeline spent on the pair: its share of ingest and export + process_item's wall time
        # (its "total"; the stages without it when absent); the audit's own scoring is not counted
        process = secs.get("total", sum(v for k, v in secs.items() if k not in ("ingest", "export", "score")))
        rec["seconds"] = secs.get("ingest", 0.0) + secs.get("export", 0.0) + process
        for k in ("flow", "view_order", "sky"):
            rec[f"s_{k}"] = secs.get(k)
        records.append(rec)
    return pd.DataFrame.from_records(records)


def summarize(rows: Sequence[AuditRow]) -> dict[str, Any]:
    """Aggregates over all rows (fractions, not percent; None where nothing to average)."""
    df = rows_frame(rows)
    total = len(df)
    if total == 0:
        return {"total": 0, "kept": 0, "ordinal_error": None, "coverage": None, "view_order_errors": 0}
    mapped = df[df["ordinal_error"].notna() | df["coverage"].notna()]
    kept = df[df["kept"]]
    kept_mapped = kept[kept["coverage"].notna()]
    rejected = mapped[mapped["state"] == "auto_rejected"]
    kept_with_map = mapped[mapped["kept"]]
    tp = int(rejected["bad"].sum())
    fp = int((~rejected["bad"].astype(bool)).sum())
    fn = int(kept_with_map["bad"].sum())
    tn = int((~kept_with_map["bad"].astype(bool)).sum())

    def mean(s) -> float | None:
        s = s.dropna()
        return float(s.mean()) if len(s) else None

    lost = df[~df["kept"]]
    return {
        "total": total,
        "kept": int(len(kept)),
        "ordinal_error": mean(kept_mapped["ordinal_error"]),
        "coverage": mean(kept_mapped["coverage"]),
        "coverage_ceiling": mean(kept_mapped["ceiling"]) if "ceiling" in kept_mapped else None,
        "max_ordinal_error": float(kept_mapped["ordinal_error"].max())
        if kept_mapped["ordinal_error"].notna().any() else None,
        "view_order_errors": int((kept_mapped["view_order_ok"] == False).sum()),  # noqa: E712 - pandas
        "view_order_errors_all_maps": int((mapped["view_order_ok"] == False).sum()),  # noqa: E712
        "view_order_uncertain": int((df["view_order"] == "undecided").sum()),
        "format_errors": int((~df["format_ok"]).sum()),
        "lost": {f"{r.scene}/{r.packing}": f"{r.state}:{r.reason}" for r in lost.itertuples()},
        "triage": {"rejected_bad": tp, "rejected_good": fp, "kept_bad": fn, "kept_good": tn,
                   "precision": tp / (tp + fp) if tp + fp else None,
                   "recall": tp / (tp + fn) if tp + fn else None,
                   "bad_error": BAD_ERROR, "bad_coverage": BAD_COVERAGE},
        "seconds_per_pair": float(df["seconds"].mean()),
    }



def shown_frame(rows: Sequence[AuditRow]):
    """The per-row table people read (printed and in report.html): percentages, marks, no NaN."""
    import pandas as pd

    df = rows_frame(rows)
    return pd.DataFrame({
        "scene": df["scene"], "packing": df["packing"], "format": df["format"].fillna("—") +
        df["format_ok"].map({True: "", False: " ✗"}),
        "state": df["state"], "reason": df["reason"].fillna(""),
        "ord.err": df["ordinal_error"].map(percent), "err≠": df["error_neq"].map(percent),
        "inverted": df["inverted"].map(percent),
        "coverage": df["coverage"].map(percent),
        "ceiling": df["ceiling"].map(percent) if "ceiling" in df else "—",
        "order": df["view_order"].fillna("—") + df["view_order_ok"].map({True: " ✓", False: " ✗"}).fillna(""),
        "score": df["score"].map(lambda s: "—" if pd.isna(s) else f"{s:.2f}"),
        "truth": df["bad"].map({True: "bad", False: "good"}).fillna("—"),
        "s": df["seconds"].map(lambda s: f"{s:.2f}"),
    })


def confusion_frame(summary: dict[str, Any]):
    """Triage against truth: rows auto-rejected / kept, columns bad / good (counts of maps)."""
    import pandas as pd

    tri = summary["triage"]
    return pd.DataFrame({"bad": [tri["rejected_bad"], tri["kept_bad"]],
                         "good": [tri["rejected_good"], tri["kept_good"]]}, index=["auto-rejected", "kept"])


def format_table(rows: Sequence[AuditRow], summary: dict[str, Any]) -> str:
    """The printed report: per-row table, then aggregates and the triage truth table."""
    if not rows:
        return "(no scenes with GT)"

    shown = shown_frame(rows)
    tri = summary["triage"]
    confusion = confusion_frame(summary)
    lines = [shown.to_string(index=False), "",
             f"pairs kept: {summary['kept']}/{summary['total']}   mean ordinal error of kept maps: "
             f"{percent(summary['ordinal_error'])} (max {percent(summary['max_ordinal_error'])})   "
             f"mean coverage of kept maps: {percent(summary['coverage'])} "
             f"(ceiling {percent(summary.get('coverage_ceiling'))})",
             f"view-order errors among kept maps: {summary['view_order_errors']} "
             f"(all maps: {summary['view_order_errors_all_maps']}); "
             f"undecided orders: {summary['view_order_uncertain']}; "
             f"format errors: {summary['format_errors']}; "
             f"mean seconds per pair: {summary['seconds_per_pair']:.2f}",
             "", f"triage against truth (bad = error > {BAD_ERROR:.0%} or coverage < {BAD_COVERAGE:.0%}):",
             confusion.to_string(),
             f"auto-reject precision: {percent(tri['precision'])}   recall: {percent(tri['recall'])}"]
    if summary["lost"]:
        lines += ["", "not kept: " + ", ".join(f"{k} ({v})" for k, v in summary["lost"].items())]
    return "\n".join(lines)


def to_json(rows: Sequence[AuditRow], summary: dict[str, Any], config: dict | None = None) -> dict[str, Any]:
    """audit.json: every row as recorded (seconds rounded to 0.1 ms), the summary and the config measured."""
    scenes = []
    for r in rows:
        rec = asdict(r)
        rec["seconds"] = {k: round(v, 4) for k, v in rec["seconds"].items()}
        scenes.append(rec)
    return {"scenes": scenes, "summary": summary, "config": config or {}}


def format_photo_table(rows: Sequence[PhotoRow]) -> str:
    """The printed table of the web photos without GT (``audit_photos``), then a count line."""
    import pandas as pd

    if not rows:
        return ""
    df = pd.DataFrame.from_records([asdict(r) for r in rows])
    shown = pd.DataFrame({"photo": df["photo"], "format": df["format"].fillna("—"), "state": df["state"],
                          "reason": df["reason"].fillna(""),
                          "order": df["view_order"].fillna("—") + df["view_order_ok"].map(
                              {True: " ✓", False: " ✗"}).fillna(""),
                          "coverage": df["coverage"].map(percent),
                          "score": df["score"].map(lambda s: "—" if pd.isna(s) else f"{s:.2f}"),
                          "s": df["seconds"].map(lambda s: "—" if pd.isna(s) else f"{s:.2f}")})
    kept = int(df["kept"].sum())
    mapped = int(df["coverage"].notna().sum())
    wrong = int((df["view_order_ok"] == False).sum())  # noqa: E712 - pandas
    return (shown.to_string(index=False) + f"\n\nweb photos: {mapped}/{len(df)} got a map, "
            f"{kept}/{len(df)} kept, "
            f"{wrong} view-order errors (against the files' left-first convention)")
