"""Dataset export in the ReDWeb layout (DESIGN.md "Files", a contract).

``export_dataset`` writes, for every selected catalog item::

    OUT/imgs/<id>.jpg     the cropped left-eye view (the processed image; bytes copied when no resize)
    OUT/RDs/<id>.png      relative depth: uint16, larger = farther, sky = 65535   (redweb16)
                          or uint8 like the original ReDWeb release                 (redweb8)
    OUT/masks/<id>.png    uint8, 255 = reliable label, 0 elsewhere
    OUT/manifest.csv      one row per item (columns: HEAD_COLUMNS + quality figures + TAIL_COLUMNS, see below)

Re-export is incremental: ``OUT/.redweb-export.json`` remembers a fingerprint of each item's
inputs and settings, so unchanged items are not rewritten, and items no longer selected are
removed. Crash safety: every file is written to a temporary name and renamed into place; new and
changed files are written first, then the manifest is replaced atomically, and only then are
dropped items' files deleted, so a manifest on disk never names a missing file.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from core.rules import SKY_VALUE, SKY_VALUE_8, split_for  # noqa: F401  (split_for: re-exported)

log = logging.getLogger(__name__)

SKY_VALUE_16 = SKY_VALUE
FORMATS = ("redweb16", "redweb8")
# Fixed manifest columns, in order (DESIGN.md); quality figures go between `height` and `reviewer`.
HEAD_COLUMNS = ("id", "split", "state", "source", "source_id", "url", "owner", "license", "stereo_format", "swapped",
                "crop_x0", "crop_y0", "crop_x1", "crop_y1", "source_frame", "source_x0", "source_y0", "source_x1",
                "source_y1", "width", "height")
TAIL_COLUMNS = ("reviewer", "decided_at")
STATE_FILE = ".redweb-export.json"
_EXPORT_CODE_VERSION = "1"  # bump when the way files are written changes, so a re-export rewrites them


class ExportError(RuntimeError):
    """An item selected for export lacks its files, or the output folder is unusable."""


@dataclass
class ExportResult:
    out_dir: Path
    total: int = 0
    written: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # id -> why (missing files)
    splits: dict[str, int] = field(default_factory=dict)
    manifest_changed: bool = False

    def summary(self) -> dict[str, Any]:
        return dict(out_dir=str(self.out_dir), total=self.total, written=len(self.written),
                    unchanged=len(self.unchanged), removed=len(self.removed), skipped=len(self.skipped),
                    splits=self.splits, manifest_changed=self.manifest_changed)


def depth_to_redweb8(depth: np.ndarray) -> np.ndarray:
    """uint16 RD (larger = farther, sky = 65535) -> uint8 like the original ReDWeb RDs.

    ReDWeb's released RDs are 8-bit single-channel PNGs, darker = closer, sky white. Non-sky values
    are mapped linearly (so ordering is kept up to quantization) onto 0..254; sky becomes 255,
    farther than anything else. A map without non-sky pixels is all 255. Shape (H, W) -> (H, W).
    """
    depth = np.asarray(depth)
    out = np.full(depth.shape, SKY_VALUE_8, np.uint8)
    ground = depth != SKY_VALUE_16
    if ground.any():
        vals = depth[ground].astype(np.float64)
        lo, hi = vals.min(), vals.max()
        scaled = np.zeros_like(vals) if hi <= lo else (vals - lo) / (hi - lo) * (SKY_VALUE_8 - 1)
        out[ground] = np.round(scaled).astype(np.uint8)
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _png_bytes(array: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", array)
    if not ok:
        raise ExportError("PNG encoding failed")
    return buf.tobytes()


def _read_gray(path: Path, dtype) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ExportError(f"cannot read {path}")
    if arr.ndim == 3:
        arr = arr[..., 0]
    return arr.astype(dtype, copy=False) if arr.dtype != dtype else arr


def _fit(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _file_sig(path: Path) -> list:
    st = path.stat()
    return [str(path), st.st_size, st.st_mtime_ns]


def _resolve(data_root: Path, rel: str | None, what: str, item_id: str) -> Path:
    if not rel:
        raise ExportError(f"{item_id}: no {what} path in the catalog")
    path = (data_root / rel).resolve()
    if not path.is_relative_to(data_root) or not path.is_file():
        raise ExportError(f"{item_id}: {what} file missing: {rel}")
    return path


def _write_item(item, data_root: Path, out_dir: Path, *, fmt: str, max_side: int | None, jpeg_quality: int,
                inputs: dict[str, Path]) -> tuple[int, int]:
    """Write imgs/RDs/masks for one item; returns the exported image's (width, height)."""
    import cv2

    image_path = inputs["image"]
    image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    if image is None:
        raise ExportError(f"{item.id}: cannot decode {image_path}")
    h0, w0 = image.shape[:2]
    depth = _read_gray(inputs["depth"], np.uint16)
    mask = _read_gray(inputs["mask"], np.uint8)
    if depth.shape != (h0, w0) or mask.shape != (h0, w0):
        raise ExportError(f"{item.id}: image {w0}x{h0}, depth {depth.shape[::-1]}, mask {mask.shape[::-1]} differ")
    w, h = _fit(w0, h0, max_side)
    if (w, h) != (w0, h0):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        # nearest keeps sky exactly 65535 and never invents depth values between neighbours
        depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    if (w, h) == (w0, h0) and image_path.suffix.lower() in (".jpg", ".jpeg"):
        img_bytes = image_path.read_bytes()  # the processed JPEG as is: no second lossy encode
    else:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
        if not ok:
            raise ExportError(f"{item.id}: JPEG encoding failed")
        img_bytes = buf.tobytes()
    rd = depth_to_redweb8(depth) if fmt == "redweb8" else depth
    mask = np.where(mask > 0, 255, 0).astype(np.uint8)
    _atomic_write(out_dir / "imgs" / f"{item.id}.jpg", img_bytes)
    _atomic_write(out_dir / "RDs" / f"{item.id}.png", _png_bytes(rd))
    _atomic_write(out_dir / "masks" / f"{item.id}.png", _png_bytes(mask))
    return w, h


def _fmt_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def quality_columns(items: Iterable) -> list[str]:
    """``score`` then every quality key seen, sorted; a key that clashes with a fixed column gets a
    ``quality_`` prefix so the DESIGN.md columns keep their meaning."""
    keys = sorted({k for it in items for k in (it.quality or {})})
    fixed = set(HEAD_COLUMNS) | set(TAIL_COLUMNS) | {"score"}
    return ["score"] + [f"quality_{k}" if k in fixed else k for k in keys]


def source_columns(item) -> dict[str, Any]:
    """``source_frame`` and the ``source_*`` box (DESIGN.md manifest): where the exported image lies in the
    original file, in that frame's pixels with EXIF orientation applied (x1, y1 exclusive; fractional
    where processing resized the view). The frame cropped to the box and resized to the exported size is
    the exported image. Recorded by the process stage (``info["process"]["source"]``); items processed
    before it fall back on the rounded ``crop_source`` box. Empty when the exported pixels are not the
    file's pixels there (``exact`` false: a split anaglyph's one colour channel) or nothing is known."""
    info = item.info or {}
    proc = info.get("process") or {}
    source = proc.get("source")
    if source is None and proc.get("crop_source") is not None:
        left_view = proc.get("left_view", "left")
        source = {"frame": (info.get("view_frames") or {}).get(left_view, 0), "box": proc["crop_source"],
                  "exact": item.stereo_format != "anaglyph"}
    if not source or not source.get("exact", True) or not source.get("box"):
        return {k: None for k in ("source_frame", "source_x0", "source_y0", "source_x1", "source_y1")}
    box = [int(v) if float(v).is_integer() else float(v) for v in source["box"]]
    return dict(source_frame=int(source.get("frame", 0)), source_x0=box[0], source_y0=box[1], source_x1=box[2],
                source_y1=box[3])


def manifest_row(item, *, split: str, width: int, height: int, qcols: Sequence[str]) -> dict[str, str]:
    quality = dict(item.quality or {})
    fixed = set(HEAD_COLUMNS) | set(TAIL_COLUMNS) | {"score"}
    q = {("quality_" + k if k in fixed else k): v for k, v in quality.items()}
    q["score"] = item.score
    values = dict(id=item.id, split=split, state=item.state, source=item.source, source_id=item.source_id,
                  url=item.url, owner=item.owner, license=item.license, stereo_format=item.stereo_format,
                  swapped=item.swapped, crop_x0=item.crop_x0, crop_y0=item.crop_y0, crop_x1=item.crop_x1,
                  crop_y1=item.crop_y1, **source_columns(item), width=width, height=height,
                  reviewer=item.reviewer, decided_at=item.decided_at)
    values.update({c: q.get(c) for c in qcols})
    return {k: _fmt_value(v) for k, v in values.items()}


def export_dataset(
    catalog,
    data_root: str | Path,
    out_dir: str | Path,
    *,
    states: Sequence[str] = ("accepted",),
    fmt: str = "redweb16",
    val_fraction: float = 0.1,
    max_side: int | None = None,
    jpeg_quality: int = 95,
    strict: bool = False,
) -> ExportResult:
    """Export every catalog item in ``states`` to ``out_dir`` (see module docstring).

    ``catalog``: a ``tasks.catalog.catalog.Catalog``. Items whose files are missing are skipped and listed in
    ``result.skipped`` (``strict=True`` raises instead). Returns counts of written/unchanged/removed.
    """
    from tasks.catalog.catalog import State

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    states = [State(s).value for s in states]
    if State.WITHDRAWN.value in states:  # DESIGN.md: a withdrawn item is never exported again
        raise ValueError("withdrawn items are never exported")
    data_root = Path(data_root).resolve()
    out_dir = Path(out_dir).resolve()
    if out_dir == data_root or data_root.is_relative_to(out_dir):
        raise ExportError(f"refusing to export into {out_dir}: it contains the data root")
    for sub in ("imgs", "RDs", "masks"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE
    try:
        previous: dict[str, dict] = json.loads(state_path.read_text())["items"] if state_path.is_file() else {}
    except (ValueError, KeyError):
        previous = {}  # unreadable state: everything is rewritten, nothing is lost

    ids = sorted(catalog.ids(*states))
    # fetched in chunks: one IN (...) over 10^5 ids would pass SQLite's bound-parameter limit
    items = [it for k in range(0, len(ids), 500) for it in catalog.items(ids[k:k + 500])]
    result = ExportResult(out_dir=out_dir)
    settings = [_EXPORT_CODE_VERSION, fmt, max_side, jpeg_quality]
    current: dict[str, dict] = {}
    exported = []
    for item in items:
        try:
            inputs = {k: _resolve(data_root, getattr(item, f"{k}_path"), k, item.id) for k in ("image", "depth", "mask")}
            fingerprint = hashlib.sha1(json.dumps(
                [settings] + [_file_sig(p) for p in inputs.values()]).encode()).hexdigest()
            old = previous.get(item.id)
            files_there = all((out_dir / d / f"{item.id}{e}").is_file()
                              for d, e in (("imgs", ".jpg"), ("RDs", ".png"), ("masks", ".png")))
            if old and old.get("fingerprint") == fingerprint and files_there:
                width, height = old["width"], old["height"]
                result.unchanged.append(item.id)
            else:
                width, height = _write_item(item, data_root, out_dir, fmt=fmt, max_side=max_side,
                                            jpeg_quality=jpeg_quality, inputs=inputs)
                result.written.append(item.id)
        except ExportError as exc:
            if strict:
                raise
            log.warning("export: skipping %s", exc)
            result.skipped[item.id] = str(exc)
            continue
        current[item.id] = dict(fingerprint=fingerprint, width=width, height=height)
        exported.append((item, width, height))

    qcols = quality_columns(it for it, _, _ in exported)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(HEAD_COLUMNS) + qcols + list(TAIL_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for item, width, height in exported:
        split = split_for(item.id, val_fraction)
        result.splits[split] = result.splits.get(split, 0) + 1
        writer.writerow(manifest_row(item, split=split, width=width, height=height, qcols=qcols))
    manifest = out_dir / "manifest.csv"
    text = buf.getvalue().encode()
    if not manifest.is_file() or manifest.read_bytes() != text:
        _atomic_write(manifest, text)  # the commit point: from here on the new set is the export
        result.manifest_changed = True
    _atomic_write(state_path, json.dumps({"items": current}, sort_keys=True).encode())

    keep = set(current)
    for sub, ext in (("imgs", ".jpg"), ("RDs", ".png"), ("masks", ".png")):
        for path in (out_dir / sub).iterdir():
            if path.name.startswith("."):
                if ".tmp" in path.name:
                    path.unlink()  # a temp file left by a crashed export
                continue
            if path.suffix == ext and path.stem not in keep:
                path.unlink()
                if sub == "imgs":
                    result.removed.append(path.stem)
    result.total = len(exported)
    return result
