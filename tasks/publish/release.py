"""Versioned, immutable dataset releases with a datasheet.

``create_release`` writes ``<data_root>/releases/<NAME>/``:

    imgs/ RDs/ masks/ manifest.csv   the export layout of DESIGN.md (tasks/publish/export.py), items in ``states``
    datasheet.json                   what is in it and how it was made (schema below)
    datasheet.md                     the same for people (tables made with pandas)
    SHA256SUMS                       ``sha256sum -c`` format, every file of the release but itself

datasheet.json: ``name``, ``sequence`` (1, 2, ... in creation order), ``created_at``, ``notes``,
``supersedes`` (the previous release), ``from_states``, ``format``, ``total``, ``splits``,
``counts`` (``source`` / ``license`` with deed URLs / ``stereo_format``: lists of rows),
``pipeline`` (code version, git commit, PIPELINE_VERSION, the items' pipeline versions and
backends), ``config`` (the effective config, secrets redacted), ``audit`` (the label audit of that
process config, or ``{"status": "no audit run"}``), ``changes`` since the previous release
(``added`` ids; ``withdrawn``: previous-release ids now withdrawn, with reason, detail and time;
``removed``: previous-release ids dropped for another reason, with their state), ``skipped``
(selected items whose files were missing) and ``files`` (``{path: {sha256, bytes}}`` of every data
file).

Releases are never rewritten: a name that exists is refused, the release is assembled in a hidden
folder and renamed into place in one step, and its files are made read-only. A later release
supersedes the earlier one; ``verify_release`` checks a release against its SHA256SUMS.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence

from core.layout import DataRoot
from tasks.publish.settings import ExportConfig, ReleaseConfig

log = logging.getLogger(__name__)

DATASHEET_JSON = "datasheet.json"
DATASHEET_MD = "datasheet.md"
SUMS = "SHA256SUMS"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# process settings that change how fast, not which labels: ignored when matching an audit's config
AUDIT_IGNORED_KEYS = frozenset({"device", "batch_size"})
SECRET_PLACEHOLDER = "***"


class ReleaseError(RuntimeError):
    """A release that cannot be made (name taken, bad name, bad states) or read."""


# ---- small helpers ----------------------------------------------------------------------------
def releases_root(data_root: str | Path) -> Path:
    return DataRoot(Path(data_root)).releases


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ReleaseError(f"release name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, "
                           "not starting with '.' or '-')")
    return name


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def redact_config(config: dict) -> dict:
    """A copy of a config dict without secrets: Flickr key and secret, database password."""
    data = json.loads(json.dumps(config, default=str))
    flickr = data.get("flickr") or {}
    for key in ("api_key", "api_secret"):
        if flickr.get(key):
            flickr[key] = SECRET_PLACEHOLDER
    url = data.get("database_url")
    if url:
        from sqlalchemy.engine import make_url

        try:
            data["database_url"] = make_url(url).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - unparseable URL: hide it entirely rather than leak it
            data["database_url"] = SECRET_PLACEHOLDER
    return data


def code_version() -> dict[str, str | None]:
    """The installed redweb version and, in a git checkout, the commit (with -dirty when modified)."""
    from importlib import metadata

    try:
        version = metadata.version("redweb")
    except metadata.PackageNotFoundError:
        version = None
    commit = None
    repo = Path(__file__).resolve().parents[1]
    if (repo / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(repo), "describe", "--always", "--dirty", "--abbrev=12"],
                                    capture_output=True, text=True, timeout=10).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"redweb": version, "git": commit}


@contextlib.contextmanager
def _lock(root: Path) -> Iterator[None]:
    """One release at a time per releases folder (sequence numbers, the name check)."""
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---- reading releases -------------------------------------------------------------------------
def load_datasheet(data_root: str | Path, name: str) -> dict:
    path = releases_root(data_root) / check_name(name) / DATASHEET_JSON
    if not path.is_file():
        known = ", ".join(r["name"] for r in list_releases(data_root)) or "none"
        raise ReleaseError(f"no release {name!r} in {releases_root(data_root)} (releases: {known})")
    return json.loads(path.read_text())


def list_releases(data_root: str | Path) -> list[dict]:
    """One row per release, oldest first: name, sequence, created_at, total, supersedes, superseded_by."""
    root = releases_root(data_root)
    rows = []
    if root.is_dir():
        for sheet in root.glob(f"*/{DATASHEET_JSON}"):
            if sheet.parent.name.startswith("."):
                continue
            d = json.loads(sheet.read_text())
            ch = d.get("changes") or {}
            rows.append(dict(name=d["name"], sequence=d["sequence"], created_at=d["created_at"], total=d["total"],
                             added=len(ch.get("added") or []), withdrawn=len(ch.get("withdrawn") or []),
                             removed=len(ch.get("removed") or []), supersedes=d.get("supersedes"),
                             notes=d.get("notes") or ""))
    rows.sort(key=lambda r: r["sequence"])
    for older, newer in zip(rows, rows[1:]):
        older["superseded_by"] = newer["name"]
    if rows:
        rows[-1]["superseded_by"] = None
    return rows


def read_manifest(path: Path):
    import pandas as pd

    return pd.read_csv(path, dtype=str, keep_default_na=False)


def verify_release(data_root: str | Path, name: str) -> list[str]:
    """Problems found checking a release against its SHA256SUMS (empty: intact)."""
    rel = releases_root(data_root) / check_name(name)
    sums = rel / SUMS
    if not sums.is_file():
        return [f"{name}: no {SUMS}"]
    problems, listed = [], set()
    for line in sums.read_text().splitlines():
        digest, rel_path = line.split("  ", 1)
        listed.add(rel_path)
        path = rel / rel_path
        if not path.is_file():
            problems.append(f"missing: {rel_path}")
        elif sha256_file(path) != digest:
            problems.append(f"changed: {rel_path}")
    for path in _files(rel):
        rp = path.relative_to(rel).as_posix()
        if rp != SUMS and rp not in listed:
            problems.append(f"not in {SUMS}: {rp}")
    return problems


# ---- audit ------------------------------------------------------------------------------------
def _comparable(cfg: dict) -> dict:
    data = json.loads(json.dumps(cfg, default=str, sort_keys=True))
    return {k: v for k, v in data.items() if k not in AUDIT_IGNORED_KEYS}


def find_audit(data_root: str | Path, process_config: dict, ingest_config: dict | None = None) -> dict:
    """The newest ``<data_root>/runs/audit-*/audit.json`` made with ``process_config`` (keys in
    AUDIT_IGNORED_KEYS aside; and with ``ingest_config`` when both it and the audit record one).

    An audit's ``config`` is ``{"process": {...}, "ingest": {...}}`` (flows/audit.py) or the process
    section itself. Returns ``{"status": "audited", "file", "summary", "scenes"}`` or
    ``{"status": "no audit run", "audits_of_other_configs": N}``."""
    root = Path(data_root)
    runs = sorted(DataRoot(root).audits(), key=lambda p: (p.parent.name, p.stat().st_mtime),
                  reverse=True)
    want = _comparable(process_config)
    others = 0
    for path in runs:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("unreadable audit %s: %s", path, exc)
            continue
        cfg = doc.get("config") if isinstance(doc, dict) else None
        if not isinstance(cfg, dict):
            continue
        process = cfg["process"] if isinstance(cfg.get("process"), dict) else cfg
        same = _comparable(process) == want
        if same and ingest_config is not None and isinstance(cfg.get("ingest"), dict):
            same = _comparable(cfg["ingest"]) == _comparable(ingest_config)
        if same:
            return {"status": "audited", "file": path.relative_to(root).as_posix(),
                    "summary": doc.get("summary") or {}, "scenes": len(doc.get("scenes") or [])}
        others += 1
    return {"status": "no audit run", "audits_of_other_configs": others}


def audit_figures(summary: dict) -> list[dict]:
    """An audit summary as (figure, value) rows: nested sections flattened (``triage.precision``),
    the per-scene ``lost`` list counted."""
    rows = []
    for key, value in summary.items():
        if key == "lost" and isinstance(value, dict):
            rows.append({"figure": "lost (pairs without a kept map)", "value": len(value)})
        elif isinstance(value, dict):
            rows += [{"figure": f"{key}.{k}", "value": v} for k, v in value.items()
                     if not isinstance(v, (dict, list))]
        elif not isinstance(value, list):
            rows.append({"figure": key, "value": value})
    return rows


# ---- creating a release -----------------------------------------------------------------------
def _counts(items_df, column: str, extra: Sequence[str] = ()) -> list[dict]:
    if items_df.empty:
        return []
    cols = [column, *extra]
    table = (items_df.groupby(cols, dropna=False).size().reset_index(name="items")
             .sort_values(["items", column], ascending=[False, True]))
    return [{k: (None if v == "" else v) if isinstance(v, str) else int(v) for k, v in row.items()}
            for row in table.to_dict("records")]


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite hands back naive UTC
    return value.astimezone(timezone.utc).isoformat()


def _changes(catalog, prev: dict | None, prev_ids: set[str], cur_ids: set[str]) -> dict:
    added = sorted(cur_ids - prev_ids)
    dropped = sorted(prev_ids - cur_ids)
    withdrawn, removed = [], []
    for item in catalog.items(dropped):
        if item.state == "withdrawn":
            withdrawn.append(dict(id=item.id, source=item.source, source_id=item.source_id, reason=item.reason,
                                  detail=item.reason_detail,
                                  withdrawn_at=_iso(item.withdrawn_at)))
        else:
            removed.append(dict(id=item.id, source=item.source, source_id=item.source_id, state=item.state,
                                reason=item.reason))
    known = {row["id"] for row in withdrawn + removed}
    removed += [dict(id=i, source=None, source_id=None, state="not in catalog", reason=None)
                for i in dropped if i not in known]
    return {"previous": prev["name"] if prev else None, "added": added, "withdrawn": withdrawn,
            "removed": sorted(removed, key=lambda r: r["id"])}


def _items_frame(catalog, ids: list[str]):
    import pandas as pd

    rows = []
    for k in range(0, len(ids), 500):
        for it in catalog.items(ids[k:k + 500]):
            proc = (it.info or {}).get("process") or {}
            rows.append(dict(id=it.id, source=it.source or "", license=it.license or "",
                             license_url=it.license_url or "", stereo_format=it.stereo_format or "",
                             pipeline_version=it.pipeline_version or "", backend=proc.get("backend") or "",
                             sky_backend=proc.get("sky_backend") or ""))
    return pd.DataFrame(rows, columns=["id", "source", "license", "license_url", "stereo_format",
                                       "pipeline_version", "backend", "sky_backend"])


def create_release(
    catalog,
    data_root: str | Path,
    name: str,
    *,
    states: Sequence[str] | None = None,
    notes: str = "",
    export: ExportConfig | None = None,
    config: dict | None = None,
    process_config: dict | None = None,
    ingest_config: dict | None = None,
    now: datetime | None = None,
) -> dict:
    """Write release ``name`` (module docstring) and return its datasheet dict.

    ``states``: default ``ReleaseConfig().states``; ``export``: how the files are written (format, split,
    size, JPEG quality; default ``ExportConfig()``, its ``states`` unused).
    ``config``: the effective config as a dict (redacted here again); ``process_config``: its
    ``process`` section (and ``ingest_config`` its ``ingest`` section), matched against label
    audits. Raises ReleaseError if ``name`` exists.
    """
    from tasks.catalog.catalog import PIPELINE_VERSION, State, utcnow
    from tasks.publish.export import export_dataset

    check_name(name)
    export = export or ExportConfig()
    fmt = export.format
    try:
        states = [State(s).value for s in (ReleaseConfig().states if states is None else states)]
    except ValueError as exc:
        raise ReleaseError(f"{exc}; states are {', '.join(s.value for s in State)}") from exc
    if not states:
        raise ReleaseError("a release needs at least one state to draw from")
    if State.WITHDRAWN.value in states:
        raise ReleaseError("withdrawn items are never released")
    data_root = Path(data_root).resolve()
    root = releases_root(data_root)
    with _lock(root):
        final = root / name
        if final.exists():
            raise ReleaseError(f"release {name!r} exists ({final}); releases are never rewritten: "
                               "choose a new name")
        existing = list_releases(data_root)
        prev = load_datasheet(data_root, existing[-1]["name"]) if existing else None
        created = (now or utcnow()).isoformat()
        work = root / f".{name}.partial-{os.getpid()}"
        if work.exists():
            shutil.rmtree(work)
        try:
            result = export_dataset(catalog, data_root, work, **{**export.export_kwargs(), "states": states})
            (work / ".redweb-export.json").unlink(missing_ok=True)  # incremental-export state: not data
            manifest = read_manifest(work / "manifest.csv")
            cur_ids = set(manifest["id"])
            prev_ids = set(read_manifest(root / prev["name"] / "manifest.csv")["id"]) if prev else set()
            items = _items_frame(catalog, sorted(cur_ids))
            files = {p.relative_to(work).as_posix(): {"sha256": sha256_file(p), "bytes": p.stat().st_size}
                     for p in _files(work)}
            sheet = {
                "name": name, "sequence": (prev["sequence"] + 1) if prev else 1, "created_at": created,
                "notes": notes or "", "supersedes": prev["name"] if prev else None, "from_states": states,
                "format": fmt, "total": int(len(manifest)), "splits": dict(sorted(result.splits.items())),
                "counts": {"source": _counts(items, "source"),
                           "license": _counts(items, "license", ["license_url"]),
                           "stereo_format": _counts(items, "stereo_format")},
                "pipeline": {"code": code_version(), "pipeline_version": PIPELINE_VERSION,
                             "items_by_pipeline_version": _counts(items, "pipeline_version"),
                             "items_by_backend": _counts(items, "backend", ["sky_backend"])},
                "config": redact_config(config or {}),
                "audit": find_audit(data_root, process_config, ingest_config) if process_config is not None
                else {"status": "no audit run", "audits_of_other_configs": 0},
                "changes": _changes(catalog, prev, prev_ids, cur_ids),
                "skipped": dict(sorted(result.skipped.items())),
                "files": files,
            }
            (work / DATASHEET_JSON).write_text(json.dumps(sheet, indent=1, sort_keys=False) + "\n")
            (work / DATASHEET_MD).write_text(datasheet_markdown(sheet))
            sums = "".join(f"{sha256_file(p)}  {p.relative_to(work).as_posix()}\n" for p in _files(work))
            (work / SUMS).write_text(sums)
            for p in _files(work):
                p.chmod(0o444)  # a release is read-only; a later one supersedes it
            os.rename(work, final)  # the commit point: the release appears complete or not at all
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    log.info("release %s: %d items in %s", name, sheet["total"], final)
    return sheet


# ---- the datasheet for people -----------------------------------------------------------------
def _table(rows: list[dict], columns: Sequence[str], headers: Sequence[str] | None = None) -> str:
    import pandas as pd

    if not rows:
        return "_none_\n"
    df = pd.DataFrame(rows, columns=list(columns)).fillna("")
    if headers:
        df.columns = list(headers)
    return df.to_markdown(index=False, disable_numparse=True) + "\n"  # ids stay text, not numbers


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def datasheet_markdown(sheet: dict, *, max_listed: int = 200) -> str:
    ch = sheet["changes"]
    code = sheet["pipeline"]["code"]
    audit = sheet["audit"]
    lines = [f"# Dataset release `{sheet['name']}`", ""]
    if sheet.get("notes"):
        lines += [sheet["notes"], ""]
    lines += [
        f"- release {sheet['sequence']}, created {sheet['created_at']}"
        + (f", supersedes `{sheet['supersedes']}`" if sheet.get("supersedes") else " (first release)"),
        f"- {sheet['total']} items from catalog states {', '.join(sheet['from_states'])}; "
        f"splits: {', '.join(f'{k} {v}' for k, v in sheet['splits'].items()) or 'none'}",
        f"- layout: imgs/ (cropped left-eye JPEG), RDs/ ({sheet['format']}: larger = farther, sky = max), masks/ "
        "(255 = reliable), manifest.csv (provenance, licence, crop, quality, review)",
        f"- pipeline version {sheet['pipeline']['pipeline_version']}, redweb {code.get('redweb') or 'unknown'}"
        + (f", git {code['git']}" if code.get("git") else ""),
        "",
        "## Sources", "", _table(sheet["counts"]["source"], ["source", "items"]),
        "## Licences", "", _table(sheet["counts"]["license"], ["license", "license_url", "items"],
                                   ["licence", "deed", "items"]),
        "Each item's licence, owner and source page are in manifest.csv; attribute the owner as the licence asks.",
        "",
        "## Stereo formats", "", _table(sheet["counts"]["stereo_format"], ["stereo_format", "items"]),
        "## How the maps were made", "",
        _table(sheet["pipeline"]["items_by_pipeline_version"], ["pipeline_version", "items"]),
        _table(sheet["pipeline"]["items_by_backend"], ["backend", "sky_backend", "items"],
               ["correspondence", "sky", "items"]),
        "Effective configuration of the release (secrets redacted; the `process` section is the one the "
        "label audit is matched against):", "", "```json",
        json.dumps(sheet["config"], indent=1, sort_keys=True), "```", "",
        "## Label audit", "",
    ]
    if audit["status"] == "audited":
        summary = [{"figure": r["figure"], "value": _shown(r["value"])} for r in audit_figures(audit["summary"])]
        n = audit["scenes"]
        lines += [f"From `{audit['file']}` ({n} scene{'' if n == 1 else 's'}), made with this process config:", "",
                  _table(summary, ["figure", "value"])]
    else:
        others = audit.get("audits_of_other_configs")
        lines += ["no audit run" + (f" for this process config ({others} audits of other configs exist)"
                                    if others else ""), ""]
    since = f"`{ch['previous']}`" if ch["previous"] else "nothing (first release)"
    lines += [f"## Changes since {since}", "",
              f"### Withdrawn ({len(ch['withdrawn'])})", "",
              "Delete these from any copy of an earlier release.", "",
              _table(ch["withdrawn"], ["id", "source", "source_id", "reason", "detail", "withdrawn_at"]),
              f"### Removed for other reasons ({len(ch['removed'])})", "",
              _table(ch["removed"], ["id", "source", "source_id", "state", "reason"]),
              f"### Added ({len(ch['added'])})", ""]
    shown = ch["added"][:max_listed]
    lines += [", ".join(f"`{i}`" for i in shown) or "_none_"]
    if len(ch["added"]) > max_listed:
        lines += [f"... and {len(ch['added']) - max_listed} more (datasheet.json lists all)"]
    lines += [""]
    if sheet.get("skipped"):
        lines += [f"## Skipped ({len(sheet['skipped'])}: selected, but files missing)", "",
                  _table([{"id": k, "why": v} for k, v in sheet["skipped"].items()], ["id", "why"])]
    manifest = sheet["files"].get("manifest.csv", {})
    lines += ["## Checksums", "",
              f"{len(sheet['files'])} data files; SHA-256 of each in datasheet.json (`files`) and in {SUMS} "
              f"(every file, `sha256sum -c {SUMS}`). manifest.csv: `{manifest.get('sha256', '?')}`.", ""]
    return "\n".join(lines)


# ---- comparing releases -----------------------------------------------------------------------
def diff_releases(data_root: str | Path, a: str, b: str, catalog=None) -> dict:
    """What changed from release ``a`` to ``b``: added / dropped ids (dropped with the catalog's
    current state and reason when ``catalog`` is given) and items whose licence changed."""
    root = releases_root(data_root)
    sa, sb = load_datasheet(data_root, a), load_datasheet(data_root, b)
    ma, mb = read_manifest(root / a / "manifest.csv"), read_manifest(root / b / "manifest.csv")
    ids_a, ids_b = set(ma["id"]), set(mb["id"])
    dropped = sorted(ids_a - ids_b)
    states = {}
    if catalog is not None:
        states = {it.id: it for it in catalog.items(dropped)}
    common = ma.merge(mb, on="id", suffixes=("_a", "_b"))
    relicensed = common[common["license_a"] != common["license_b"]]
    return {
        "a": a, "b": b, "a_total": sa["total"], "b_total": sb["total"],
        "added": sorted(ids_b - ids_a),
        "dropped": [dict(id=i, state=getattr(states.get(i), "state", None),
                         reason=getattr(states.get(i), "reason", None)) for i in dropped],
        "license_changed": [dict(id=r["id"], a=r["license_a"], b=r["license_b"])
                            for r in relicensed.to_dict("records")],
    }
