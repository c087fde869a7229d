"""Images for reviewers, read only from an item's own map folders and cached under ``<data_root>/cache/review``.

``safe_path`` is the one gate between a catalog path and the file system: a path is served only if,
after resolving every symlink, it is a PNG or JPEG file (by extension and by its first bytes) inside
``maps/<id>/`` or ``pairs/<id>/`` of the item it is asked for. So neither the catalog database, the
cookie key, configs, another item's files nor anything a symlink points to elsewhere is ever sent.
Derived images (colourized depth, validity and sky overlays as transparent PNGs, thumbnails) are
made once per source file and rebuilt when the source changes (re-processing, a reviewer's flip).

Colours (one scheme for both views, legend from the same constants): depth runs from bright
yellow (near) through green and blue to dark purple (far) (viridis); sky is pale blue; unreliable
pixels are magenta (solid on the photo, striped over the depth so the depth colour still shows).
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
from pathlib import Path

import numpy as np

from core.layout import DataRoot
from core.rules import SKY_VALUE  # noqa: F401  (re-exported)

ITEM_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
KINDS = ("image", "depth", "mask", "sky", "thumb")
MEDIA = {"image": "image/jpeg", "depth": "image/png", "mask": "image/png", "sky": "image/png", "thumb": "image/jpeg"}
UNRELIABLE_RGB = (255, 0, 200)  # magenta: in no part of the depth colour map
SKY_RGB = (150, 205, 255)  # pale blue: brighter and less saturated than any blue of the depth map
MASK_RGBA = (*UNRELIABLE_RGB, 255)
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


def _stripes(shape: tuple[int, int], period: int = 6, width: int = 2) -> np.ndarray:
    h, w = shape
    return ((np.arange(h, dtype=np.int32)[:, None] + np.arange(w, dtype=np.int32)[None, :]) % period) < width


def colorize_depth(depth: np.ndarray, reliable: np.ndarray | None = None) -> np.ndarray:
    """uint16 (H, W), larger = farther, sky = 65535 -> BGR uint8 (H, W, 3) in the scheme above.

    ``core.rules.colorize_depth`` (viridis, near = yellow, 2nd..98th percentile of non-sky values)
    plus magenta stripes on pixels outside ``reliable`` (H, W) bool that are not sky.
    """
    from core.rules import colorize_depth as colourise

    depth = depth[..., 0] if depth.ndim == 3 else depth
    sky = depth == SKY_VALUE
    out = np.ascontiguousarray(colourise(depth, sky=sky, colormap="viridis", near="warm", sky_rgb=SKY_RGB)[..., ::-1])
    if reliable is not None and reliable.shape == depth.shape:
        out[~reliable & ~sky & _stripes(depth.shape)] = UNRELIABLE_RGB[::-1]
    return out


def legend_pngs() -> dict[str, bytes]:
    """The legend's swatches as PNG bytes, drawn with the very functions that colour the maps."""
    import cv2

    ramp = depth_colours(np.tile(np.linspace(0, 1, 160, dtype=np.float32), (14, 1)))
    sky = np.zeros((14, 28, 3), np.uint8)
    sky[:] = SKY_RGB[::-1]
    unrel = depth_colours(np.full((14, 28), 0.5, np.float32))
    unrel[_stripes(unrel.shape[:2])] = UNRELIABLE_RGB[::-1]
    solid = np.zeros((14, 28, 3), np.uint8)
    solid[:] = UNRELIABLE_RGB[::-1]
    return {k: cv2.imencode(".png", v)[1].tobytes()
            for k, v in (("ramp", ramp), ("sky", sky), ("unreliable", unrel), ("unreliable_solid", solid))}


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
                  "sky": item.sky_path, "thumb": item.image_path or item.depth_path}[kind]
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
            return self._cached(item.id, "mask.png", [mask], lambda: enc(
                ".png", _overlay(_imread(mask, cv2.IMREAD_GRAYSCALE) == 0, MASK_RGBA), (cv2.IMWRITE_PNG_COMPRESSION, 1)))
        if kind == "sky":
            sky = safe_path(self.data_root, item.sky_path, item.id)
            if sky is None:
                return None
            return self._cached(item.id, "sky.png", [sky], lambda: enc(
                ".png", _overlay(_imread(sky, cv2.IMREAD_GRAYSCALE) > 127, SKY_RGBA)))
        if kind == "thumb":
            sources = [p for p in (image, depth) if p is not None]
            if not sources:
                return None

            def build() -> bytes:
                h = self.thumbnail_px
                tiles = []
                if image is not None:
                    tiles.append(_imread(image, cv2.IMREAD_COLOR))
                if depth is not None:
                    tiles.append(colorize_depth(_imread(depth, cv2.IMREAD_UNCHANGED)))
                tiles = [cv2.resize(t, (max(1, round(t.shape[1] * h / t.shape[0])), h), interpolation=cv2.INTER_AREA)
                         for t in tiles]
                return enc(".jpg", np.concatenate(tiles, axis=1), (cv2.IMWRITE_JPEG_QUALITY, 80))

            return self._cached(item.id, f"thumb{self.thumbnail_px}.jpg", sources, build)
        raise ValueError(f"unknown image kind {kind!r}")
