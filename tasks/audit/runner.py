"""Running: the audit end to end, through the code a crawl uses, in a throw-away data root.

The packed files (``tasks.audit.packing``) go through ``tasks.ingest.run.ingest`` on a ``local:``
folder (format detection, splitting; near-duplicate detection off, since the packings of one scene
are near-duplicates by design), ``tasks.labels.process.process_batch`` (correspondence, view order,
sky, crop, depth, triage) and ``tasks.publish.export.export_dataset`` (the RDs/masks a user trains
on); every exported map is then scored against GT (``tasks.audit.scoring``) from the export alone: its
RD, mask and manifest row, whose ``source_*`` columns place it in the packed file (so a wrong provenance
column shows up as a wrong score). One ``AuditRow`` per
(scene, packing) records the scores, the detected format, the view order, the triage state and
reason and the seconds per stage. ``audit_photos`` runs real web photos without GT the same way.
"""
from __future__ import annotations

import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from core.layout import DataRoot
from tasks.audit.packing import PACKINGS, Packed, pack_scene
from tasks.audit.scenes import Scene
from tasks.audit.scoring import is_bad, right_view_disparity, score_map
from tasks.ingest.settings import IngestConfig
from tasks.labels.settings import ProcessConfig

if TYPE_CHECKING:
    from tasks.catalog.catalog import Item

KEPT_STATES = ("pending_review", "auto_accepted", "accepted")
MAP_STATES = ("pending_review", "auto_accepted", "auto_rejected", "accepted", "rejected")
PHOTO_EXTS = (".jpg", ".jpeg", ".png", ".mpo", ".jps", ".tif", ".tiff", ".webp")


@dataclass
class AuditRow:
    """One (scene, packing): what the pipeline made of the packed file and how its map scores."""

    scene: str
    packing: str
    state: str
    reason: str | None
    kept: bool
    ordinal_error: float | None
    error_neq: float | None
    inverted: float | None
    coverage: float | None
    format: str | None
    format_ok: bool
    view_order: str | None
    view_order_source: str | None
    view_order_ok: bool | None
    score: float | None
    bad: bool | None
    seconds: dict[str, float]
    item_id: str
    degradation: dict
    ceiling: float | None = None  # coverage no method can exceed (MapScore.ceiling)


@dataclass
class PhotoRow:
    """One real web photo without GT: what the pipeline made of it (``audit_photos``)."""

    photo: str
    state: str
    reason: str | None
    kept: bool
    format: str | None
    view_order: str | None
    view_order_source: str | None
    view_order_ok: bool | None  # against the file's own convention (left view first / MPO frame 0)
    coverage: float | None  # reliable share of the exported map
    score: float | None
    seconds: float | None
    item_id: str


@dataclass
class _PipelineRun:
    """What one ingest + process + export of ``work_dir/inputs`` left behind."""

    items: dict[str, Item]  # by source id (the file's name under inputs/), as they stand after the export
    export_dir: Path
    seconds: dict[str, float]  # wall time of the whole run per stage: ingest, process, export


def _fresh_inputs(work_dir: Path) -> Path:
    """Empty ``work_dir`` and make its ``inputs/``: the folder ingest reads as a ``local:`` source."""
    if work_dir.exists():
        shutil.rmtree(work_dir)
    inputs = work_dir / "inputs"
    inputs.mkdir(parents=True)
    return inputs


def _ingest_process_export(work_dir: Path, names: Sequence[str], *, process: ProcessConfig | None,
                           ingest: IngestConfig | None,
                           say: Callable[[str], None]) -> _PipelineRun:
    """The code a crawl uses, on the files under ``work_dir/inputs`` in a throw-away data root
    ``work_dir/data``: ingest (near-duplicate detection off: the packings of one scene are
    near-duplicates by design), process the items of ``names`` that were split (in that order), export
    every item with a map (``MAP_STATES``) to ``work_dir/export``."""
    from tasks.catalog.catalog import Catalog
    from tasks.ingest.run import ingest as run_ingest
    from tasks.labels.process import process_batch
    from tasks.publish.export import export_dataset

    root = DataRoot(work_dir / "data")
    root.root.mkdir()
    url = f"sqlite:///{root.catalog_db}"
    export_dir = work_dir / "export"
    seconds: dict[str, float] = {}
    with Catalog(url) as catalog:
        t = time.perf_counter()
        # every pair is kept however alike two packings of one scene look (no near-duplicate check)
        options = {**(ingest or IngestConfig()).ingest_kwargs(), "near_duplicate_max_distance": -1}
        run_ingest(catalog, f"local:{work_dir / 'inputs'}", data_root=root.root, **options)
        seconds["ingest"] = time.perf_counter() - t
        items = {it.source_id: it for it in catalog.items(catalog.ids())}
        say(f"ingest {seconds['ingest']:.1f} s")
        ids = [items[name].id for name in names if items[name].state == "split"]
        t = time.perf_counter()
        process_batch(url, ids, root.root, settings=process)
        seconds["process"] = time.perf_counter() - t
        say(f"process {seconds['process']:.1f} s")
        t = time.perf_counter()
        export_dataset(catalog, root.root, export_dir, states=MAP_STATES)
        seconds["export"] = time.perf_counter() - t
        items = {it.source_id: it for it in catalog.items(catalog.ids())}
    return _PipelineRun(items, export_dir, seconds)


def _pack_all(scenes: Sequence[Scene], packings: Sequence[str], inputs: Path) -> dict[str, Packed]:
    """Every scene x packing written to ``inputs/<scene>__<packing><ext>``; {file name: Packed}."""
    packed: dict[str, Packed] = {}
    for scene in scenes:
        for packing in packings:
            pk = pack_scene(scene, packing)
            name = f"{scene.name}__{packing}{pk.ext}"
            (inputs / name).write_bytes(pk.data)
            packed[name] = pk
    return packed


def _audit_row(pk: Packed, item: Item, seconds: dict[str, float]) -> AuditRow:
    """The row of one packed file as the pipeline left it, before its map (if any) is scored."""
    info = item.info or {}
    return AuditRow(scene=pk.scene, packing=pk.packing, state=item.state, reason=item.reason,
                    kept=item.state in KEPT_STATES, ordinal_error=None, error_neq=None, inverted=None,
                    coverage=None, format=item.stereo_format,
                    format_ok=item.stereo_format == pk.expected_format,
                    view_order=item.view_order, view_order_source=info.get("view_order_source"),
                    view_order_ok=None, score=item.score, bad=None, seconds=seconds, item_id=item.id,
                    degradation=asdict(pk.degradation))


def source_of(row: Mapping[str, Any]) -> tuple[int, list[float]]:
    """(frame, [x0, y0, x1, y1]) of one manifest row: where the exported image lies in the original file.
    Raises ValueError when the row has no source box (the manifest then claims no provenance)."""
    try:
        values = [float(row[k]) for k in ("source_frame", "source_x0", "source_y0", "source_x1", "source_y1")]
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"manifest row {row.get('id', '?')} has no source box") from exc
    if not all(math.isfinite(v) for v in values):  # an empty cell (pandas reads NaN)
        raise ValueError(f"manifest row {row.get('id', '?')} has no source box")
    return int(values[0]), values[1:]


def _score_row(row: AuditRow, scene: Scene, pk: Packed, item_id: str, export_dir: Path,
               manifest_row: Mapping[str, Any], *, right_disparity: np.ndarray, n_pairs: int,
               keep_images: bool) -> dict[str, np.ndarray]:
    """Score the exported map of ``item_id`` into ``row`` (in place) from the export alone: its RD, mask
    and manifest row, whose source box places it in the packed file (so the audit also checks that the
    manifest's provenance is right). Returns the report images (empty without ``keep_images``)."""
    from tasks.labels.process import read_rgb

    t = time.perf_counter()
    frame, box = source_of(manifest_row)
    rd = _read_png(export_dir / "RDs" / f"{item_id}.png")
    mask = _read_png(export_dir / "masks" / f"{item_id}.png")
    # the box's centre lies in the view it was cut from, which is all score_map's view_box is for
    s = score_map(scene, pk, rd=rd, mask=mask, crop_source=box, frame=frame, view_box=box, n_pairs=n_pairs,
                  keep_images=keep_images, right_disparity=right_disparity)
    row.ordinal_error, row.error_neq, row.inverted, row.coverage = (
        _num(s.ordinal_error), _num(s.error_neq), _num(s.inverted), s.coverage)
    row.ceiling = _num(s.ceiling)
    row.view_order_ok = s.eye == "left"
    row.bad = is_bad(row.ordinal_error, s.coverage)
    row.seconds["score"] = time.perf_counter() - t
    if not keep_images:
        return {}
    return {**s.images, "rd": rd, "mask": mask, "image": read_rgb(export_dir / "imgs" / f"{item_id}.jpg")}


def run_audit(scenes: Sequence[Scene], work_dir: str | Path, *, packings: Sequence[str] = PACKINGS,
              process: ProcessConfig | None = None, ingest: IngestConfig | None = None,
              n_pairs: int = 100_000, keep_images: bool = True,
              progress: Callable[[str], None] | None = None) -> tuple[list[AuditRow], dict[str, dict]]:
    """Pack, ingest, process, export and score every scene x packing in a throw-away data root under
    ``work_dir``. Returns the rows and, with ``keep_images``, the report images per item id."""
    import pandas as pd

    work_dir = Path(work_dir)
    say = progress or (lambda msg: None)
    t = time.perf_counter()
    packed = _pack_all(scenes, packings, _fresh_inputs(work_dir))
    say(f"packed {len(packed)} pairs in {time.perf_counter() - t:.1f} s")
    run = _ingest_process_export(work_dir, list(packed), process=process, ingest=ingest,
                                 say=say)
    manifest_csv = run.export_dir / "manifest.csv"
    manifest = pd.read_csv(manifest_csv, dtype={"id": str}).set_index("id") \
        if manifest_csv.is_file() else pd.DataFrame()
    rows: list[AuditRow] = []
    images: dict[str, dict] = {}
    right_gt: dict[str, np.ndarray] = {}  # per scene: computed once, shared by its packings
    by_name = {s.name: s for s in scenes}
    n = max(len(packed), 1)
    for name, pk in packed.items():
        scene, item = by_name[pk.scene], run.items[name]
        proc = (item.info or {}).get("process") or {}
        # the run's ingest and export shared out per pair; process_item's own stage timings
        seconds = {"ingest": run.seconds["ingest"] / n, "export": run.seconds["export"] / n,
                   **{k: float(v) for k, v in (proc.get("timings") or {}).items()}}
        row = _audit_row(pk, item, seconds)
        if item.id in manifest.index:
            if pk.scene not in right_gt:
                right_gt[pk.scene] = right_view_disparity(scene.disparity)
            ims = _score_row(row, scene, pk, item.id, run.export_dir, manifest.loc[item.id].to_dict(),
                             right_disparity=right_gt[pk.scene], n_pairs=n_pairs, keep_images=keep_images)
            if keep_images:
                images[item.id] = ims
        rows.append(row)
    return rows, images


def find_photos(path: str | Path) -> list[Path]:
    """Stereo photo files under ``path`` (a file, or a folder searched recursively), skipping the
    extracted views ``left.*`` / ``right.*`` that sit next to some originals."""
    path = Path(path)
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_EXTS
                  and p.stem.lower() not in ("left", "right", "disp_gt", "mask_nonocc")
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def audit_photos(photos: Sequence[Path], work_dir: str | Path, *, process: ProcessConfig | None = None,
                 ingest: IngestConfig | None = None) -> list[PhotoRow]:
    """Ingest + process + export real photos whose view order is known by convention (the file stores
    the left eye first: parallel side-by-side, MPO frame 0; ``*.jps`` right-first, which ingest undoes),
    and report state, format, order and coverage. No GT, so no ordinal error."""
    work_dir = Path(work_dir)
    inputs = _fresh_inputs(work_dir)
    names = {}
    for k, src in enumerate(photos):
        name = f"{k:03d}_{src.parent.name}_{src.name}"
        shutil.copyfile(src, inputs / name)
        names[name] = src
    run = _ingest_process_export(work_dir, list(names), process=process, ingest=ingest,
                                 say=lambda msg: None)
    rows = []
    for name, src in names.items():
        it = run.items[name]
        info = it.info or {}
        proc = info.get("process") or {}
        has_map = it.image_path is not None and it.state in MAP_STATES
        coverage = None
        if has_map:
            mask = _read_png(run.export_dir / "masks" / f"{it.id}.png")
            coverage = float((mask > 127).mean())
        left_first = proc.get("left_view", "right" if it.swapped else "left") == "left"
        rows.append(PhotoRow(photo=f"{src.parent.name}/{src.name}", state=it.state, reason=it.reason,
                             kept=it.state in KEPT_STATES, format=it.stereo_format, view_order=it.view_order,
                             view_order_source=info.get("view_order_source"),
                             view_order_ok=left_first if has_map else None,
                             coverage=coverage, score=it.score,
                             seconds=(proc.get("timings") or {}).get("total"), item_id=it.id))
    return rows


def _num(x: float | None) -> float | None:
    """A figure for JSON: None where it is missing or not finite."""
    return None if x is None or not math.isfinite(x) else float(x)


def _read_png(path: Path) -> np.ndarray:
    """An exported PNG as stored (uint16 RDs, uint8 masks), unchanged."""
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise FileNotFoundError(f"cannot read {path}")
    return arr
