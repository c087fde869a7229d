"""Ingest: register items from a source, then per item obtain bytes, validate, dedup, split views.

Steps (each a plain function over a batch of catalog ids, so the flow can fan batches out):

1. ``register_source``: the source lists its items; each becomes a ``discovered`` row with
   provenance (``samples``, ``local:DIR``, ``urls:FILE``, ``flickr``).
2. ``fetch_batch``: bytes to ``raw/<id><ext>`` (copy, or HTTP via ``tasks.ingest.download.fetch_url``),
   SHA-256, size, full decode (``tasks.ingest.imageio``) -> ``downloaded``; every problem -> ``failed``.
3. ``split_batch``: exact duplicate (same bytes as an earlier item) -> ``rejected``/duplicate;
   stereo layout (``tasks.ingest.stereo_formats``) -> anaglyph/mono ``rejected``; else views written to
   ``pairs/<id>/left.png,right.png`` and the left view's perceptual hash stored; the item stays
   ``downloaded`` until step 4.
4. ``decide_near_duplicates``: in catalog order (oldest first), an item whose left view is within
   ``max_distance`` bits of an *earlier* item's becomes ``rejected``/near_duplicate, the rest
   ``split``. Doing this as one sequential pass makes the outcome independent of how batches were
   scheduled in step 3 ("earlier" wins, whatever finished first).

Every step skips items already past it, so re-running an ingest creates no rows and redoes no
work; a crash in one item is recorded on that item (reason ``internal_error``) and the batch goes on.
"""
from __future__ import annotations

import logging
import os
import shutil
import traceback
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import unquote, urlparse

import numpy as np

from core.layout import DataRoot
from core.settings import keyword_defaults
from tasks.catalog.catalog import Catalog, Item, State, TransitionError
from tasks.ingest.stereo_formats import StereoLayout, detect_stereo_format, extract_views

log = logging.getLogger(__name__)
_DETECT = keyword_defaults(detect_stereo_format)

ACTOR = "ingest"
KNOWN_EXTENSIONS = (".jpg", ".jpeg", ".png", ".mpo", ".jps", ".pns", ".tif", ".tiff", ".bmp", ".webp", ".gif")


# ---- sources ---------------------------------------------------------------------------------------
def parse_source(spec: str) -> tuple[str, str | None]:
    """``"local:DIR"`` -> ("local", "DIR"); ``"samples"``/``"flickr"`` -> (name, None)."""
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind in ("samples", "flickr") and not arg:
        return kind, None
    if kind in ("local", "urls") and arg:
        return kind, arg
    raise ValueError(f"unknown source {spec!r}: use samples, flickr, local:DIR or urls:FILE")


def register_source(
    catalog: Catalog,
    spec: str,
    *,
    data_root: str | Path,
    extensions: Iterable[str] = KNOWN_EXTENSIONS,
    limit: int | None = None,
    batch: str | None = None,
    samples_max_view_side: int | None = None,
    flickr: dict[str, Any] | None = None,
) -> list[str]:
    """Record the source's items as ``discovered`` and return the ids ingest should work on.

    ``flickr``: keyword arguments for ``tasks.ingest.sources.flickr.discover`` (rest_url, api_key, tags,
    ...). For flickr the returned ids are every flickr item still ``discovered``/``downloaded``
    (new ones and those left by an interrupted run), at most ``limit``."""
    kind, arg = parse_source(spec)
    if kind == "samples":
        from tasks.ingest.samples import discover_samples

        return discover_samples(catalog, root=DataRoot(Path(data_root)).samples, limit=limit, batch=batch,
                                max_view_side=samples_max_view_side)
    if kind == "local":
        from tasks.ingest.sources import local

        return local.discover(catalog, root=arg, extensions=extensions, limit=limit, batch=batch)
    if kind == "urls":
        from tasks.ingest.sources import urls

        return urls.discover(catalog, path=arg, limit=limit, batch=batch)
    from tasks.ingest.sources import flickr as flickr_source

    flickr_source.discover(catalog, limit=limit, batch=batch, **(flickr or {}))
    return catalog.ids(State.DISCOVERED, State.DOWNLOADED, source=flickr_source.SOURCE, limit=limit)


def register_from_url(catalog_url: str, spec: str, **options: Any) -> list[str]:
    """``register_source`` on a catalog opened from its URL (for a Prefect task)."""
    with Catalog(catalog_url) as catalog:
        return register_source(catalog, spec, **options)


# ---- helpers ---------------------------------------------------------------------------------------
def _ext_of(item: Item) -> str:
    """Extension for raw/<id><ext>: from the source path or URL, when it is one we know."""
    name = item.source_id if item.source in ("samples", "local") else urlparse(item.url or "").path
    ext = Path(unquote(name)).suffix.lower()
    return ext if ext in KNOWN_EXTENSIONS else ".bin"


def _rel(path: Path, data_root: Path) -> str:
    return path.relative_to(data_root).as_posix()


def _copy_atomic(src: Path, dest: Path) -> None:
    """Copy so that ``dest`` is either absent or complete (a kill mid-copy leaves a .part file)."""
    part = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    try:
        shutil.copyfile(src, part)
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def _merge_info(item: Item, **parts: Any) -> dict:
    info = dict(item.info or {})
    info.update(parts)
    return info


def _record_crash(catalog: Catalog, item_id: str, exc: BaseException) -> str:
    """A bug or an unexpected error in one item: record it there, never stop the batch."""
    log.exception("ingest: item %s crashed", item_id)
    detail = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"[-2000:]
    try:
        catalog.fail(item_id, "internal_error", detail, actor=ACTOR)
        return State.FAILED.value
    except (TransitionError, KeyError):
        return "error"


def _save_png(path: Path, rgb: np.ndarray) -> None:
    import cv2

    part = path.with_name(f".{path.name}.part.png")
    if not cv2.imwrite(str(part), np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f"could not write {path}")
    os.replace(part, path)


# ---- step 2: obtain bytes, validate -----------------------------------------------------------------
def fetch_item(
    catalog: Catalog,
    item_id: str,
    *,
    data_root: str | Path,
    max_pixels: int,
    min_side: int,
    max_file_bytes: int,
    timeout_s: float,
    retries: int,
) -> str:
    """``discovered`` -> ``downloaded`` | ``failed``; returns the item's state afterwards.

    Bytes come from ``<data_root>/samples/`` (samples), the file URI (local) or HTTP (urls, flickr;
    ``tasks.ingest.download.fetch_url`` with ``timeout_s``/``retries``). The file is decoded completely here,
    so a truncated or corrupt download fails now, with its reason, rather than in a later stage."""
    from tasks.ingest.dedup import sha256_file
    from tasks.ingest.imageio import ImageError, decode_image

    data_root = Path(data_root)
    item = catalog.get(item_id)
    if item is None:
        raise KeyError(item_id)
    if item.state != State.DISCOVERED.value:
        return item.state
    paths = DataRoot(data_root)
    raw_dir = paths.raw
    raw_dir.mkdir(parents=True, exist_ok=True)
    dest = raw_dir / f"{item.id}{_ext_of(item)}"
    fields: dict[str, Any] = {}
    if item.source == "samples":
        src = paths.samples / item.source_id
        if not src.is_file():
            return catalog.fail(item_id, "source_missing", str(src), actor=ACTOR).state
        _copy_atomic(src, dest)
    elif item.url and item.url.startswith("file:"):
        src = Path(unquote(urlparse(item.url).path))
        try:
            _copy_atomic(src, dest)
        except OSError as exc:
            return catalog.fail(item_id, "source_missing", f"{src}: {exc}", actor=ACTOR).state
    elif item.url:
        from tasks.ingest.download import fetch_url

        result = fetch_url(item.url, dest, timeout=timeout_s, retries=retries, max_bytes=max_file_bytes)
        if not result.ok:
            return catalog.fail(item_id, result.reason or "download_failed", result.detail, actor=ACTOR).state
        if item.fetched_at is None:
            fields["fetched_at"] = datetime.now(timezone.utc)
    else:
        return catalog.fail(item_id, "source_missing", "item has no URL", actor=ACTOR).state

    fields.update(raw_path=_rel(dest, data_root), file_bytes=dest.stat().st_size, content_sha256=sha256_file(dest))
    try:
        image = decode_image(dest, max_pixels=max_pixels, min_side=min_side, max_file_bytes=max_file_bytes)
    except ImageError as exc:
        return catalog.fail(item_id, exc.reason, exc.detail, actor=ACTOR, **fields).state
    decode = {"format": image.format, "mode": image.mode, "frames": len(image.frames),
              "orientation": image.orientation}
    return catalog.transition(item_id, State.DOWNLOADED, actor=ACTOR, expect=[State.DISCOVERED],
                              raw_width=image.width, raw_height=image.height,
                              info=_merge_info(item, decode=decode), **fields).state


def _each(catalog: Catalog, step, ids: Iterable[str], options: dict[str, Any]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for item_id in ids:
        try:
            counts[step(catalog, item_id, **options)] += 1
        except TransitionError:  # another worker moved it meanwhile: its business now
            counts["skipped"] += 1
        except Exception as exc:  # noqa: BLE001 - one bad item never stops a run
            counts[_record_crash(catalog, item_id, exc)] += 1
    return dict(counts)


def fetch_items(catalog: Catalog, ids: Iterable[str], **options: Any) -> dict[str, int]:
    """``fetch_item`` for each id (options: see there); returns counts of resulting states."""
    return _each(catalog, fetch_item, ids, options)


def fetch_batch(catalog_url: str, ids: list[str], **options: Any) -> dict[str, int]:
    """``fetch_items`` on a catalog opened from its URL (what a Prefect task or a Dask worker gets).

    The catalog is not migrated here: alembic's upgrade is not thread-safe, and ``register_source``
    (which runs first, in one thread) already brought the schema up to date."""
    with Catalog(catalog_url, upgrade=False) as catalog:
        return fetch_items(catalog, ids, **options)


# ---- step 3: exact duplicates, stereo layout, views ---------------------------------------------------
DETECTED = "detected"  # pseudo-state returned by split_item: views written, waiting for step 4


def split_item(
    catalog: Catalog,
    item_id: str,
    *,
    data_root: str | Path,
    max_pixels: int,
    min_side: int,
    min_similarity: float,
    anaglyph_threshold: float,
    split_anaglyph: bool,
) -> str:
    """``downloaded`` -> ``rejected`` (duplicate / anaglyph / mono), ``failed`` (too_small, decode
    errors) or views written + phash stored (returns DETECTED; the state stays ``downloaded``).
    ``split_anaglyph``: anaglyphs become two grey views (red | cyan) instead of being rejected."""
    from tasks.ingest.dedup import phash64, phash_hex
    from tasks.ingest.imageio import ImageError, decode_image, is_jps

    data_root = Path(data_root)
    item = catalog.get(item_id)
    if item is None:
        raise KeyError(item_id)
    if item.state != State.DOWNLOADED.value:
        return item.state
    if item.left_path:
        return DETECTED
    if item.content_sha256:
        first = catalog.find_by_sha256(item.content_sha256)
        if first is not None and first.id != item.id:  # the earliest holder of these bytes keeps them
            return catalog.transition(item_id, State.REJECTED, reason="duplicate", detail=f"same bytes as {first.id}",
                                      actor=ACTOR, expect=[State.DOWNLOADED], duplicate_of=first.id).state
    raw = data_root / item.raw_path
    try:
        image = decode_image(raw, max_pixels=max_pixels, min_side=min_side)
    except ImageError as exc:
        return catalog.fail(item_id, exc.reason, exc.detail, actor=ACTOR).state
    with open(raw, "rb") as fh:
        jps = raw.suffix.lower() == ".jps" or is_jps(fh.read(65536))
    layout = detect_stereo_format(image.frames, is_jps=jps, min_similarity=min_similarity,
                                  anaglyph_threshold=anaglyph_threshold, split_anaglyph=split_anaglyph)
    info = _merge_info(item, format_scores=layout.scores)
    if not layout.is_stereo:
        return catalog.transition(item_id, State.REJECTED, reason=layout.format, actor=ACTOR, expect=[State.DOWNLOADED],
                                  detail=f"scores {layout.scores}", stereo_format=layout.format, info=info).state
    vw, vh = layout.view_size
    if min(vw, vh) < min_side:
        return catalog.fail(item_id, "too_small", f"{layout.format} views {vw}x{vh} < {min_side} px", actor=ACTOR,
                            stereo_format=layout.format, info=info).state
    left, right = extract_views(image.frames, layout)
    pair_dir = DataRoot(data_root).pairs(item.id)
    pair_dir.mkdir(parents=True, exist_ok=True)
    _save_png(pair_dir / "left.png", left)
    _save_png(pair_dir / "right.png", right)
    info["views"] = layout.views
    if layout.format == "mpo":
        info["view_frames"] = layout.frames
    info["view_sources"] = view_sources(layout)
    catalog.update(item_id, stereo_format=layout.format, swapped=layout.swapped, view_order=layout.view_order,
                   left_path=_rel(pair_dir / "left.png", data_root), right_path=_rel(pair_dir / "right.png", data_root),
                   view_width=vw, view_height=vh, phash=phash_hex(phash64(left)), info=info)
    return DETECTED


def view_sources(layout: StereoLayout) -> dict[str, dict[str, Any]]:
    """Where each stored view file came from: {"left.png" | "right.png": {"frame", "box", "exact"}}.

    Keyed by the file in ``pairs/<id>/``, not by eye, because the process stage and a reviewer's flip
    exchange which file is the left eye; the file's own origin never changes, so the manifest's
    ``source_*`` columns (DESIGN.md) are found from whichever file ends up as the left eye. ``box`` is
    [x0, y0, x1, y1] in ``frame``'s pixels after EXIF orientation; ``exact`` is False where the stored
    pixels are not that region's pixels (a split anaglyph keeps one colour channel of it)."""
    exact = layout.format != "anaglyph"
    return {f"{eye}.png": {"frame": int(layout.frames.get(eye, 0)), "box": [int(v) for v in layout.views[eye]],
                           "exact": exact}
            for eye in ("left", "right")}


def split_items(catalog: Catalog, ids: Iterable[str], **options: Any) -> dict[str, int]:
    """``split_item`` for each id (options: see there); returns counts of outcomes."""
    return _each(catalog, split_item, ids, options)


def split_batch(catalog_url: str, ids: list[str], **options: Any) -> dict[str, int]:
    """``split_items`` on a catalog opened from its URL (not migrated: see ``fetch_batch``)."""
    with Catalog(catalog_url, upgrade=False) as catalog:
        return split_items(catalog, ids, **options)


# ---- step 4: near duplicates, final state --------------------------------------------------------------
def decide_near_duplicates(catalog: Catalog, ids: Iterable[str] | None = None, *, max_distance: int) -> dict[str, int]:
    """Move detected items (``downloaded`` with views) to ``split`` or ``rejected``/near_duplicate.

    ``ids``: the items to decide (default: every detected item). An item is a near-duplicate when
    its left view's pHash is within ``max_distance`` bits of an item that came *earlier* in the
    catalog (created_at, id) and is not itself failed or a duplicate. Cost: one vectorised Hamming
    scan of the earlier hashes per item (``tasks.ingest.dedup.OrderedHashIndex``)."""
    from tasks.ingest.dedup import OrderedHashIndex

    order = {item_id: k for k, item_id in enumerate(catalog.ids())}
    wanted = catalog.ids(State.DOWNLOADED) if ids is None else list(ids)
    candidates = [i for i in catalog.items(wanted) if i.state == State.DOWNLOADED.value and i.left_path and i.phash]
    candidates.sort(key=lambda i: order[i.id])
    index = OrderedHashIndex({k: h for k, h in catalog.phashes().items() if k in order}, order)
    counts: Counter[str] = Counter()
    for item in candidates:
        hit = index.nearest_before(order[item.id], int(item.phash, 16))
        try:
            if hit is not None and hit[1] <= max_distance:
                index.remove(item.id)  # a duplicate is never the original of a later item
                catalog.transition(item.id, State.REJECTED, reason="near_duplicate", actor=ACTOR,
                                   detail=f"left view {hit[1]} bits from {hit[0]}", expect=[State.DOWNLOADED],
                                   duplicate_of=hit[0])
                counts["near_duplicate"] += 1
            else:
                catalog.transition(item.id, State.SPLIT, actor=ACTOR, expect=[State.DOWNLOADED])
                counts[State.SPLIT.value] += 1
        except TransitionError:
            counts["skipped"] += 1
    return dict(counts)


def decide_batch(catalog_url: str, ids: list[str] | None, *, max_distance: int) -> dict[str, int]:
    """``decide_near_duplicates`` on a catalog opened from its URL (not migrated: see ``fetch_batch``)."""
    with Catalog(catalog_url, upgrade=False) as catalog:
        return decide_near_duplicates(catalog, ids, max_distance=max_distance)


def ingest(
    catalog: Catalog,
    spec: str = "samples",
    *,
    data_root: str | Path,
    limit: int | None = None,
    batch: str | None = None,
    extensions: Iterable[str] = KNOWN_EXTENSIONS,
    max_pixels: int = 80_000_000,
    min_side: int = 64,
    max_file_bytes: int = 200 * 2**20,
    timeout_s: float = 30.0,
    retries: int = 4,
    min_similarity: float = _DETECT["min_similarity"],
    anaglyph_threshold: float = _DETECT["anaglyph_threshold"],
    split_anaglyph: bool = _DETECT["split_anaglyph"],
    near_duplicate_max_distance: int = 6,
    samples_max_view_side: int | None = None,
    flickr: dict[str, Any] | None = None,
) -> dict[str, int]:
    """The whole ingest in one process, without Prefect (tests, notebooks, benchmarks): register,
    fetch, split, decide. Returns {state: count} over the source's items. The Prefect flow
    (flows/ingest.py) runs the same steps in concurrent batches. These keyword defaults are the one
    home of the ``ingest`` config section's (tasks/ingest/settings.py reads them); the detector's own
    thresholds come from ``detect_stereo_format``'s signature."""
    ids = register_source(catalog, spec, data_root=data_root, extensions=extensions, limit=limit, batch=batch,
                          samples_max_view_side=samples_max_view_side, flickr=flickr)
    fetch_items(catalog, ids, data_root=data_root, max_pixels=max_pixels, min_side=min_side,
                max_file_bytes=max_file_bytes, timeout_s=timeout_s, retries=retries)
    split_items(catalog, ids, data_root=data_root, max_pixels=max_pixels, min_side=min_side,
                min_similarity=min_similarity, anaglyph_threshold=anaglyph_threshold, split_anaglyph=split_anaglyph)
    decide_near_duplicates(catalog, ids, max_distance=near_duplicate_max_distance)
    return dict(Counter(item.state for item in catalog.items(ids)))
