"""Images for reviewers, read only from an item's own map folders and cached under ``<data_root>/cache/review``.

``safe_path`` is the one gate between a catalog path and the file system: a path is served only if,
after resolving every symlink, it is a PNG or JPEG file (by extension and by its first bytes) inside
``maps/<id>/`` or ``pairs/<id>/`` of the item it is asked for. So neither the catalog database, the
cookie key, configs, another item's files nor anything a symlink points to elsewhere is ever sent.
Derived images (colourized depth, validity and sky overlays as transparent PNGs, thumbnails) are
made once per source file and rebuilt when the source changes (re-processing, a reviewer's flip).

Colours (one scheme for every view, legend drawn by the same functions): depth runs from bright
yellow (near) through green and blue to dark purple (far) (viridis), scaled over the *measured*
pixels only (reliable and not sky); sky is pale blue; unreliable pixels are neutral grey, never a
colour of the scale (their stored values are near zero and would read as "nearest"). The unreliable
overlay (``M``) is one hatch of dark and light grey, drawn over the photo, the depth map and the
grid thumbnails alike; with it off, the depth map still shows those pixels plain grey.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

import numpy as np

from core.layout import DataRoot
from core.rules import SKY_VALUE, UNMEASURED_RGB  # noqa: F401  (SKY_VALUE: re-exported)

ITEM_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
KINDS = ("image", "depth", "mask", "sky", "thumb", "thumbmask")
MEDIA = {"image": "image/jpeg", "depth": "image/png", "mask": "image/png", "sky": "image/png",
         "thumb": "image/jpeg", "thumbmask": "image/png"}
UNRELIABLE_RGB = UNMEASURED_RGB  # neutral grey: in no part of the depth colour map (viridis has no grey)
HATCH_DARK_RGB = (64, 64, 64)  # the overlay's stripes: dark and light grey, so they show on any photo
HATCH_LIGHT_RGB = (200, 200, 200)
SKY_RGB = (150, 205, 255)  # pale blue: brighter and less saturated than any blue of the depth map
SKY_RGBA = (*SKY_RGB, 255)
MAP_FOLDERS = DataRoot.ITEM_FOLDERS  # an item's files live in <folder>/<id>/
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def safe_path(data_root: Path, rel: str | None, item_id: str | None = None) -> Path | None:
    """``data_root / rel`` if, symlinks resolved, it is a PNG/JPEG file in ``maps/<item_id>/`` or
    ``pairs/<item_id>/`` (any item's folder when ``item_id`` is None), else None."""
    if not rel or "\x00" in rel or os.path.isabs(rel):
        return None
    root = data_root.resolve()
    path = (root / rel).resolve()  # resolves symlinks too
    if not path.is_relative_to(root) or path.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    parts = path.relative_to(root).parts
    if len(parts) < 3 or parts[0] not in MAP_FOLDERS or (item_id is not None and parts[1] != item_id):
        return None
    if ".preflip" in parts or not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return None
    return path if head.startswith(_MAGIC) else None


def _imread(path: Path, flags: int) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), flags)
    if arr is None:
        raise ValueError(f"cannot decode {path}")
    return arr


def depth_colours(t: np.ndarray) -> np.ndarray:
    """t (H, W) in [0, 1] (0 = near, 1 = far) -> BGR uint8 (H, W, 3): near yellow ... far dark purple
    (``core.rules.colour_levels`` with viridis, the colouring every map of the project uses)."""
    from core.rules import colour_levels

    return colour_levels(1.0 - np.clip(t, 0, 1), "viridis")[..., ::-1]


def colorize_depth(depth: np.ndarray, reliable: np.ndarray | None = None, *, hatched: bool = False) -> np.ndarray:
    """uint16 (H, W), larger = farther, sky = 65535 -> BGR uint8 (H, W, 3) in the scheme above.

    ``core.rules.colorize_depth`` (viridis, near = yellow, 2nd..98th percentile) over the pixels of
    ``reliable`` (H, W) bool that are not sky; the others (not sky) plain grey, or with ``hatched``
    the unreliable overlay's grey hatch baked in (pictures without a separate overlay layer).
    """
    from core.rules import colorize_depth as colourise

    depth = depth[..., 0] if depth.ndim == 3 else depth
    sky = depth == SKY_VALUE
    valid = reliable if reliable is not None and reliable.shape == depth.shape else None
    out = np.ascontiguousarray(colourise(depth, valid=valid, sky=sky, colormap="viridis", near="warm",
                                         sky_rgb=SKY_RGB, invalid_rgb=UNRELIABLE_RGB)[..., ::-1])
    if hatched and valid is not None:
        out = paint_unreliable(out, ~valid & ~sky)
    return out


def unreliable_overlay(bad: np.ndarray) -> np.ndarray:
    """Bool (H, W) -> BGRA uint8: the unreliable overlay, a hatch of dark and light grey stripes over
    ``bad``, transparent between the stripes and elsewhere (over the depth map's plain grey it reads
    as hatched grey; over a photo the photo shows between the stripes)."""
    from core.rules import hatch

    out = np.zeros(bad.shape + (4,), np.uint8)
    dark = hatch(bad.shape)
    light = np.roll(dark, 3, axis=1)  # the same stripes, half a period over
    out[bad & dark] = (*HATCH_DARK_RGB[::-1], 255)
    out[bad & light & ~dark] = (*HATCH_LIGHT_RGB[::-1], 255)
    return out


def paint_unreliable(bgr: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """``bgr`` (H, W, 3) with the unreliable overlay of ``bad`` drawn on it (a copy)."""
    over = unreliable_overlay(bad)
    out = bgr.copy()
    opaque = over[..., 3] > 0
    out[opaque] = over[..., :3][opaque]
    return out


def legend_pngs() -> dict[str, bytes]:
    """The legend's swatches as PNG bytes, drawn with the very functions that colour the maps:
    ``ramp`` (near .. far), ``sky``, ``unreliable`` (plain grey with the overlay on, as the depth
    pane shows it) and ``unreliable_plain`` (overlay off)."""
    import cv2

    ramp = depth_colours(np.tile(np.linspace(0, 1, 160, dtype=np.float32), (14, 1)))
    sky = np.zeros((14, 28, 3), np.uint8)
    sky[:] = SKY_RGB[::-1]
    swatch_depth = np.full((14, 28), 1000, np.uint16)  # a map whose every pixel is unreliable
    plain = colorize_depth(swatch_depth, np.zeros((14, 28), bool))
    hatched = colorize_depth(swatch_depth, np.zeros((14, 28), bool), hatched=True)
    return {k: cv2.imencode(".png", v)[1].tobytes()
            for k, v in (("ramp", ramp), ("sky", sky), ("unreliable", hatched), ("unreliable_plain", plain))}


def _overlay(binary: np.ndarray, rgba: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean (H, W) -> BGRA uint8 with ``rgba`` where True, transparent elsewhere."""
    out = np.zeros(binary.shape + (4,), np.uint8)
    r, g, b, a = rgba
    out[binary] = (b, g, r, a)
    return out


class ImageCache:
    """Builds and serves derived images for an item; thread-safe (atomic renames)."""

    def __init__(self, data_root: Path, *, thumbnail_px: int) -> None:
        self.data_root = Path(data_root).resolve()
        self.cache_root = DataRoot(self.data_root).review_cache
        self.thumbnail_px = thumbnail_px
        self._lock = threading.Lock()

    def _cached(self, item_id: str, name: str, sources: list[Path], build) -> Path:
        # the copy is keyed by its sources' (mtime, size): a source replaced by an older file (an
        # undone flip restores files with their old times) still makes a new copy
        sig = hashlib.sha1(repr([(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sources]).encode()).hexdigest()[:10]
        stem, ext = os.path.splitext(name)
        folder = self.cache_root / item_id[:2] / item_id
        out = folder / f"{stem}.{sig}{ext}"
        if out.is_file():
            return out
        folder.mkdir(parents=True, exist_ok=True)
        data = build()
        for old in folder.glob(f"{stem}.*{ext}"):  # earlier versions of this image
            old.unlink(missing_ok=True)
        tmp = folder / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, out)
        return out

    def invalidate(self, item_id: str) -> None:
        """Forget the derived images of one item (after its maps were re-derived or restored)."""
        import shutil

        if ITEM_ID.match(item_id):
            shutil.rmtree(self.cache_root / item_id[:2] / item_id, ignore_errors=True)

    def has(self, item, kind: str) -> bool:
        """Whether ``item`` has an image of ``kind``, without building it (the page renders faster;
        the browser's parallel image requests build what is missing)."""
        source = {"image": item.image_path, "depth": item.depth_path or item.preview_path, "mask": item.mask_path,
                  "sky": item.sky_path, "thumb": item.image_path or item.depth_path,
                  "thumbmask": item.mask_path}[kind]
        return safe_path(self.data_root, source, item.id) is not None

    def path_for(self, item, kind: str) -> Path | None:
        """The file to send for ``kind`` of ``item`` (a catalog Item), or None if it has no such image."""
        import cv2

        def enc(ext: str, arr: np.ndarray, params=()) -> bytes:
            ok, buf = cv2.imencode(ext, arr, list(params))
            if not ok:
                raise ValueError(f"encoding {ext} failed")
            return buf.tobytes()

        image = safe_path(self.data_root, item.image_path, item.id)
        depth = safe_path(self.data_root, item.depth_path, item.id)
        mask = safe_path(self.data_root, item.mask_path, item.id)
        if kind == "image":
            return image
        if kind == "depth":
            if depth is None:  # the process stage's own colourized preview, if that is all there is
                return safe_path(self.data_root, item.preview_path, item.id)

            def build_depth() -> bytes:
                d = _imread(depth, cv2.IMREAD_UNCHANGED)
                reliable = _imread(mask, cv2.IMREAD_GRAYSCALE) > 0 if mask is not None else None
                return enc(".png", colorize_depth(d, reliable), (cv2.IMWRITE_PNG_COMPRESSION, 1))

            return self._cached(item.id, "depth.png", [p for p in (depth, mask) if p is not None], build_depth)
        if kind == "mask":
            if mask is None:
                return None
            def build_mask() -> bytes:
                bad = _imread(mask, cv2.IMREAD_GRAYSCALE) == 0
                if depth is not None:  # sky is drawn as sky, not as unreliable
                    d = _imread(depth, cv2.IMREAD_UNCHANGED)
                    if d.shape[:2] == bad.shape:
                        bad &= (d[..., 0] if d.ndim == 3 else d) != SKY_VALUE
                return enc(".png", unreliable_overlay(bad), (cv2.IMWRITE_PNG_COMPRESSION, 1))

            return self._cached(item.id, "overlay.png", [p for p in (mask, depth) if p is not None], build_mask)
        if kind == "sky":
            sky = safe_path(self.data_root, item.sky_path, item.id)
            if sky is None:
                return None
            return self._cached(item.id, "sky.png", [sky], lambda: enc(
                ".png", _overlay(_imread(sky, cv2.IMREAD_GRAYSCALE) > 127, SKY_RGBA)))
        if kind in ("thumb", "thumbmask"):
            sources = [p for p in (image, depth, mask) if p is not None]
            if image is None and depth is None:
                return None
            if kind == "thumbmask" and mask is None:
                return None

            def tiles() -> tuple[list[np.ndarray], list[np.ndarray]]:
                """(pictures, unreliable masks) of the thumbnail's halves, at thumbnail height."""
                h = self.thumbnail_px
                pics, bads = [], []
                d = _imread(depth, cv2.IMREAD_UNCHANGED) if depth is not None else None
                d = d[..., 0] if d is not None and d.ndim == 3 else d
                rel = _imread(mask, cv2.IMREAD_GRAYSCALE) > 0 if mask is not None else None
                bad = (~rel & (d != SKY_VALUE)) if rel is not None and d is not None and d.shape == rel.shape \
                    else (~rel if rel is not None else None)
                if image is not None:
                    pics.append(_imread(image, cv2.IMREAD_COLOR))
                if d is not None:
                    pics.append(colorize_depth(d, rel))
                size = [(max(1, round(t.shape[1] * h / t.shape[0])), h) for t in pics]
                pics = [cv2.resize(t, sz, interpolation=cv2.INTER_AREA) for t, sz in zip(pics, size)]
                if bad is not None:
                    bads = [cv2.resize(bad.astype(np.uint8), sz, interpolation=cv2.INTER_NEAREST) > 0
                            for sz in size]
                return pics, bads

            def build_thumb() -> bytes:
                pics, _ = tiles()
                return enc(".jpg", np.concatenate(pics, axis=1), (cv2.IMWRITE_JPEG_QUALITY, 85))

            def build_thumbmask() -> bytes:
                _, bads = tiles()
                return enc(".png", unreliable_overlay(np.concatenate(bads, axis=1)))

            if kind == "thumb":
                return self._cached(item.id, f"thumb{self.thumbnail_px}.jpg", sources, build_thumb)
            return self._cached(item.id, f"thumbmask{self.thumbnail_px}.png", sources, build_thumbmask)
        raise ValueError(f"unknown image kind {kind!r}")
