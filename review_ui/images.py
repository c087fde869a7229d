"""Images for reviewers, read only from the data root and cached under ``<data_root>/cache/review``.

``safe_path`` is the one gate between a catalog path and the file system: absolute paths, ``..``
escapes and symlinks that leave the data root are refused. Derived images (colourized depth,
validity and sky overlays as transparent PNGs, thumbnails) are made once per source file and
rebuilt when the source is newer than the cached copy (re-processing).
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import numpy as np

from tasks.contracts import SKY_VALUE  # noqa: F401  (re-exported)
from tasks.contracts import colorize_depth as _colorize_depth

ITEM_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
KINDS = ("image", "depth", "mask", "sky", "thumb")
MEDIA = {"image": "image/jpeg", "depth": "image/jpeg", "mask": "image/png", "sky": "image/png", "thumb": "image/jpeg"}
MASK_RGBA = (230, 40, 40, 255)  # unreliable pixels, shown red
SKY_RGBA = (40, 170, 255, 255)  # sky pixels, shown blue


def safe_path(data_root: Path, rel: str | None) -> Path | None:
    """``data_root / rel`` if it is an existing file inside the data root, else None."""
    if not rel or "\x00" in rel or os.path.isabs(rel):
        return None
    root = data_root.resolve()
    path = (root / rel).resolve()  # resolves symlinks too
    if not path.is_relative_to(root) or not path.is_file():
        return None
    return path


def _imread(path: Path, flags: int) -> np.ndarray:
    import cv2

    arr = cv2.imread(str(path), flags)
    if arr is None:
        raise ValueError(f"cannot decode {path}")
    return arr


def colorize_depth(depth: np.ndarray) -> np.ndarray:
    """uint16 (H, W), larger = farther, sky = 65535 -> BGR uint8 (H, W, 3): near warm, far blue, sky dark."""
    return _colorize_depth(depth)[..., ::-1]  # the shared colouriser (tasks.contracts) is RGB; OpenCV writes BGR


def _overlay(binary: np.ndarray, rgba: tuple[int, int, int, int]) -> np.ndarray:
    """Boolean (H, W) -> BGRA uint8 with ``rgba`` where True, transparent elsewhere."""
    out = np.zeros(binary.shape + (4,), np.uint8)
    r, g, b, a = rgba
    out[binary] = (b, g, r, a)
    return out


class ImageCache:
    """Builds and serves derived images for an item; thread-safe (atomic renames)."""

    def __init__(self, data_root: Path, *, thumbnail_px: int = 160) -> None:
        self.data_root = Path(data_root).resolve()
        self.cache_root = self.data_root / "cache" / "review"
        self.thumbnail_px = thumbnail_px
        self._lock = threading.Lock()

    def _cached(self, item_id: str, name: str, sources: list[Path], build) -> Path:
        out = self.cache_root / item_id[:2] / item_id / name
        newest = max(p.stat().st_mtime_ns for p in sources)
        if out.is_file() and out.stat().st_mtime_ns >= newest:
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        data = build()
        tmp = out.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, out)
        return out

    def path_for(self, item, kind: str) -> Path | None:
        """The file to send for ``kind`` of ``item`` (a catalog Item), or None if it has no such image."""
        import cv2

        def enc(ext: str, arr: np.ndarray, params=()) -> bytes:
            ok, buf = cv2.imencode(ext, arr, list(params))
            if not ok:
                raise ValueError(f"encoding {ext} failed")
            return buf.tobytes()

        image = safe_path(self.data_root, item.image_path)
        depth = safe_path(self.data_root, item.depth_path)
        if kind == "image":
            return image
        if kind == "depth":
            if depth is None:  # the process stage's own colourized preview, if that is all there is
                return safe_path(self.data_root, item.preview_path)
            return self._cached(item.id, "depth.jpg", [depth], lambda: enc(
                ".jpg", colorize_depth(_imread(depth, cv2.IMREAD_UNCHANGED)), (cv2.IMWRITE_JPEG_QUALITY, 90)))
        if kind == "mask":
            mask = safe_path(self.data_root, item.mask_path)
            if mask is None:
                return None
            return self._cached(item.id, "mask.png", [mask], lambda: enc(
                ".png", _overlay(_imread(mask, cv2.IMREAD_GRAYSCALE) == 0, MASK_RGBA)))
        if kind == "sky":
            sky = safe_path(self.data_root, item.sky_path)
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
