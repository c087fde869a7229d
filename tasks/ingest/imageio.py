"""Decode and validate downloaded image files into RGB uint8 arrays.

Every way a web file can be unusable maps to one reason code of ``tasks.catalog.catalog.REASONS``
(``ImageError.reason``), so ingest can record it and move on:

- ``empty_file``: zero bytes; ``file_too_big``: above the byte cap;
- ``not_image``: no decoder recognises the content (HTML error page, text, ...);
- ``too_large``: width*height above the decompression-bomb cap, checked from the header *before*
  pixels are decoded (a 40 kB PNG can claim 10^10 pixels);
- ``truncated``: the file ends before the pixel data does;
- ``corrupt``: the decoder fails on the pixel data;
- ``too_small``: shorter side below ``min_side``;
- ``unsupported_mode``: a pixel format we cannot turn into RGB.

Pixel formats are normalised to RGB uint8: CMYK, 16-bit (grey or colour), palette, grey, LA/RGBA
(alpha composited on white), and the EXIF orientation tag is applied so that what we store is
what a browser shows. MPO files (3D cameras) keep every frame.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class ImageError(Exception):
    """A file that cannot become an RGB image; ``reason`` is a catalog reason code."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class DecodedImage:
    """An image after decoding, orientation and mode conversion.

    ``frames``: list of HxWx3 uint8 RGB arrays (one for ordinary files, every picture for MPO);
    ``format``: Pillow's format name (JPEG, PNG, MPO, ...); ``mode``: the file's pixel mode before
    conversion; ``orientation``: the EXIF orientation tag that was applied (1 = none).
    """

    frames: list[np.ndarray]
    format: str
    mode: str
    orientation: int = 1
    info: dict = field(default_factory=dict)

    @property
    def rgb(self) -> np.ndarray:
        """The first (or only) frame, HxWx3 uint8."""
        return self.frames[0]

    @property
    def width(self) -> int:
        return int(self.frames[0].shape[1])

    @property
    def height(self) -> int:
        return int(self.frames[0].shape[0])


def _to_rgb(im) -> np.ndarray:
    """Any Pillow image mode -> HxWx3 uint8 RGB."""
    from PIL import Image

    mode = im.mode
    if mode == "RGB":
        return np.asarray(im, dtype=np.uint8).copy()
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im).astype(np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0  # 0..65535 -> 0..255
        elif mode == "I":
            # 16-bit PNG greys arrive as mode I with 0..65535; genuine 32-bit data: scale by range
            hi = arr.max() if arr.size else 0.0
            arr = arr / 257.0 if 255 < hi <= 65535 else (arr if hi <= 255 else arr * 255.0 / hi)
        else:  # float images: stretch to the observed range
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
            arr = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        g = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8).copy()
    if mode in ("L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        # Pillow's CMYK->RGB ignores ICC profiles; good enough for matching two views of one file
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    raise ImageError("unsupported_mode", f"pixel mode {mode}")


def _frame_rgb(im, orientation: int) -> np.ndarray:
    from PIL import Image, ImageOps

    # exif_transpose per frame: MPO frames carry their own EXIF block
    frame = ImageOps.exif_transpose(im) if orientation != 1 else im
    return _to_rgb(frame if isinstance(frame, Image.Image) else im)


def read_image_header(data: bytes) -> tuple[str, int, int]:
    """(format, width, height) from the header only; raises ImageError like ``decode_image``."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ImageError("empty_file", "zero bytes")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                return str(im.format), int(im.size[0]), int(im.size[1])
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not_image", "no decoder recognises the content") from exc


def decode_image(
    source: str | Path | bytes,
    *,
    max_pixels: int = 80_000_000,
    min_side: int = 1,
    max_file_bytes: int | None = None,
    all_frames: bool = True,
) -> DecodedImage:
    """Decode ``source`` (path or bytes) into RGB uint8 frames, or raise ImageError.

    ``max_pixels``: cap on width*height checked from the header before decoding (Pillow's own
    cap, 2 x Image.MAX_IMAGE_PIXELS, also applies and maps to the same reason);
    ``min_side``: images whose shorter side (after orientation) is smaller fail as too_small;
    ``all_frames``: decode every MPO frame (otherwise only the first).
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            size = path.stat().st_size
            if max_file_bytes is not None and size > max_file_bytes:
                raise ImageError("file_too_big", f"{size} bytes > {max_file_bytes}")
            data = path.read_bytes()
        except FileNotFoundError as exc:
            raise ImageError("source_missing", str(path)) from exc
    else:
        data = bytes(source)
    if not data:
        raise ImageError("empty_file", "zero bytes")
    if max_file_bytes is not None and len(data) > max_file_bytes:
        raise ImageError("file_too_big", f"{len(data)} bytes > {max_file_bytes}")

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageError("too_large", str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageError("not_image", "no decoder recognises the content") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # a recognised header that is itself broken
        raise ImageError("corrupt", f"{type(exc).__name__}: {exc}") from exc

    with im:
        w, h = im.size
        if w <= 0 or h <= 0:
            raise ImageError("corrupt", f"size {w}x{h}")
        if w * h > max_pixels:
            raise ImageError("too_large", f"{w}x{h} = {w * h} pixels > cap {max_pixels}")
        fmt, mode = str(im.format), str(im.mode)
        orientation = 1
        n_frames = int(getattr(im, "n_frames", 1)) if (all_frames and fmt == "MPO") else 1
        frames: list[np.ndarray] = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for index in range(n_frames):
                    if index:
                        im.seek(index)
                    im.load()  # before getexif: PNG's getexif() loads pixels itself and we'd lose the error
                    if index == 0:
                        orientation = _orientation_of(im)
                    frames.append(_frame_rgb(im, orientation if index == 0 else _orientation_of(im)))
        except (OSError, SyntaxError, ValueError, EOFError, IndexError, MemoryError) as exc:
            # a damaged second MPO frame keeps the first: the stereo stage then sees one view
            if not frames:
                text = str(exc)
                if isinstance(exc, OSError) and ("truncated" in text or "premature end" in text.lower()):
                    raise ImageError("truncated", text) from exc
                raise ImageError("corrupt", f"{type(exc).__name__}: {text}") from exc

    if fmt == "MPO" and len(frames) > 1:
        # every view of an MPO must have one size; drop frames that do not match (e.g. previews)
        frames = [f for f in frames if f.shape == frames[0].shape]
    out = DecodedImage(frames=frames, format=fmt, mode=mode, orientation=orientation)
    if min(out.width, out.height) < min_side:
        raise ImageError("too_small", f"{out.width}x{out.height} < {min_side} px")
    return out


def _orientation_of(im) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # noqa: BLE001 - see decode_image
        return 1


def is_jps(data: bytes) -> bool:
    """True when a JPEG carries the JPS stereo APP3 segment (identifier ``_JPSJPS_``)."""
    # APP3 (FFE3) segments come right after SOI/APP0/APP1; scanning the first 64 kB is enough
    head = data[:65536]
    i = head.find(b"\xff\xe3")
    while i != -1:
        if head[i + 4 : i + 12] == b"_JPSJPS_":
            return True
        i = head.find(b"\xff\xe3", i + 2)
    return False
