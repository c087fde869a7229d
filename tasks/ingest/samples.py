"""Embedded samples: real stereo and mono images from scikit-image, packed the ways the web packs them.

Built on first use under ``<data_root>/samples/`` (nothing is downloaded: scikit-image ships the
Middlebury 2014 "motorcycle" pair with ground-truth disparity, and real photos). Every stereo
sample uses a different crop of the motorcycle scene (position, size, mirror), so no two are
near-duplicates of each other; the exact and near-duplicate samples are deliberate copies.

``manifest.json`` lists every file with the outcome ingest must reach (state, reason, stereo
format, duplicate_of); ``README.txt`` says the same in words. Ground-truth disparity of the
un-mirrored crops is kept in ``gt/<name>.disp.npy`` (float32, pixels of the stored left view,
left x minus right x, NaN where unknown) for benchmarks.
"""
from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

SAMPLES_VERSION = 3  # bump when the sample set changes: an older folder is rebuilt


@dataclass
class Sample:
    """One file of the sample set and the outcome ingest must reach."""

    file: str
    description: str
    expected_state: str  # split | rejected | failed
    expected_reason: str | None = None
    expected_format: str | None = None  # stereo_format for split items
    duplicate_of: str | None = None  # file name of the original for (near-)duplicates
    gt_disparity: str | None = None  # relative path of the left view's GT disparity
    crop: list[float] | None = None  # [fx0, fy0, fx1, fy1] of the motorcycle scene, mirrored flag separate
    mirrored: bool = False


@dataclass(frozen=True)
class _Crop:
    fx0: float
    fy0: float
    fx1: float
    fy1: float
    mirror: bool = False


# Distinct windows of the 741x500 motorcycle scene: their left views differ by >= 16 of 64 pHash bits
# (checked by tests/tasks/test_samples.py), far above the near-duplicate threshold (6).
_CROPS: dict[str, _Crop] = {
    "sbs_parallel": _Crop(0.0, 0.0, 1.0, 1.0),
    "sbs_crosseyed": _Crop(0.0, 0.0, 1.0, 1.0, mirror=True),
    "sbs_divider": _Crop(0.0, 0.0, 0.6, 0.6),
    "over_under": _Crop(0.4, 0.0, 1.0, 0.6),
    "mpo": _Crop(0.0, 0.4, 0.6, 1.0),
    "jps": _Crop(0.4, 0.4, 1.0, 1.0),
    "triptych": _Crop(0.2, 0.2, 0.8, 0.8),
    "anaglyph": _Crop(0.1, 0.0, 0.9, 0.8),
    "cmyk_sbs": _Crop(0.0, 0.0, 0.6, 0.6, mirror=True),
    "sbs16": _Crop(0.4, 0.0, 1.0, 0.6, mirror=True),
    "palette_sbs": _Crop(0.0, 0.4, 0.6, 1.0, mirror=True),
    "gray_sbs": _Crop(0.4, 0.4, 1.0, 1.0, mirror=True),
    "exif_rotated_sbs": _Crop(0.2, 0.2, 0.8, 0.8, mirror=True),
    "pair_01": _Crop(0.0, 0.0, 0.45, 0.45),
    "pair_02": _Crop(0.55, 0.0, 1.0, 0.45),
    "pair_03": _Crop(0.0, 0.55, 0.45, 1.0),
    "pair_04": _Crop(0.55, 0.55, 1.0, 1.0),
    "pair_05": _Crop(0.25, 0.1, 0.75, 0.6),
    "pair_06": _Crop(0.25, 0.4, 0.75, 0.9),
    "pair_07": _Crop(0.1, 0.1, 0.9, 0.9, mirror=True),
}


def _motorcycle() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        from skimage import data
    except ImportError as exc:  # a core dependency, but say what is missing
        raise ImportError("the embedded samples need scikit-image (pip install scikit-image)") from exc
    left, right, disp = data.stereo_motorcycle()
    return left, right, disp.astype(np.float32)


def _resize(img: np.ndarray, size: tuple[int, int], *, nearest: bool = False) -> np.ndarray:
    import cv2

    if (img.shape[1], img.shape[0]) == size:
        return img
    return cv2.resize(img, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def crop_pair(crop: _Crop, max_view_side: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(left, right, left GT disparity or None) for a window of the motorcycle scene.

    Both views use the same window (the pair is rectified, so disparity stays horizontal). A
    mirrored crop flips both views and swaps them, which is again a valid parallel pair (of the
    mirrored scene); its GT would be the right view's disparity, which the data set lacks."""
    left, right, disp = _motorcycle()
    h, w = left.shape[:2]
    x0, x1 = int(round(crop.fx0 * w)), int(round(crop.fx1 * w))
    y0, y1 = int(round(crop.fy0 * h)), int(round(crop.fy1 * h))
    lv, rv, dv = left[y0:y1, x0:x1], right[y0:y1, x0:x1], disp[y0:y1, x0:x1].copy()
    scale = 1.0
    if max_view_side is not None and max(lv.shape[:2]) > max_view_side:
        scale = max_view_side / max(lv.shape[:2])
    size = (max(1, int(round(lv.shape[1] * scale))), max(1, int(round(lv.shape[0] * scale))))
    lv, rv = _resize(lv, size), _resize(rv, size)
    dv = _resize(dv, size, nearest=True) * scale
    dv[~np.isfinite(dv)] = np.nan
    if crop.mirror:
        return np.ascontiguousarray(rv[:, ::-1]), np.ascontiguousarray(lv[:, ::-1]), None
    return lv, rv, dv.astype(np.float32)


def synthesize_third_view(left: np.ndarray, right: np.ndarray, disp: np.ndarray) -> np.ndarray:
    """A view one more baseline to the right: left pixels forward-warped to x - 2d (nearer pixels,
    larger d, drawn last so they win); holes (occlusions, unknown d) filled from ``right``."""
    h, w = disp.shape
    out = right.copy()
    d = np.where(np.isfinite(disp), disp, -1.0)
    order = np.argsort(d, axis=None)  # far first
    ys, xs = np.unravel_index(order, d.shape)
    valid = d[ys, xs] >= 0
    ys, xs = ys[valid], xs[valid]
    xt = np.rint(xs - 2.0 * d[ys, xs]).astype(int)
    inside = (xt >= 0) & (xt < w)
    out[ys[inside], xt[inside]] = left[ys[inside], xs[inside]]
    return out


def _jpeg(img: np.ndarray, quality: int = 92, **kw) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality, **kw)
    return buf.getvalue()


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def _with_jps_segment(jpeg: bytes) -> bytes:
    """Insert the JPS APP3 segment after SOI: "_JPSJPS_", a 4-byte descriptor (stereoscopic,
    side-by-side layout) and an empty comment block."""
    descriptor = bytes([0x01, 0x00, 0x02, 0x00])[::-1]  # media type 1 (stereo), layout 2 (side by side)
    payload = b"_JPSJPS_" + struct.pack(">H", 4) + descriptor + struct.pack(">H", 0)
    segment = b"\xff\xe3" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + segment + jpeg[2:]


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid-looking PNG header claiming ``width`` x ``height`` pixels, with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + _png_chunk(b"IEND", b""))


def _corrupt_png(img: np.ndarray) -> bytes:
    """A PNG whose compressed pixel data is garbage (header intact, CRCs recomputed)."""
    raw = _png(img)
    out, pos = [raw[:8]], 8
    rng = np.random.default_rng(7)
    while pos < len(raw):
        (length,) = struct.unpack(">I", raw[pos : pos + 4])
        kind, data = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            data = data[:2] + rng.integers(0, 256, len(data) - 2, dtype=np.uint8).tobytes()
        out.append(_png_chunk(kind, data))
        pos += 12 + length
    return b"".join(out)


def _sbs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.concatenate([a, b], axis=1)


def build_samples(root: str | Path, *, max_view_side: int | None = None, force: bool = False) -> Path:
    """Write the sample set into ``root`` (created; reused when its manifest matches) and return it.

    ``max_view_side``: downscale every view so its longer side is at most this (tests use ~160;
    None keeps the motorcycle's 741x500 resolution for crops of the whole scene)."""
    import cv2
    from PIL import Image

    root = Path(root)
    manifest_path = root / "manifest.json"
    params = {"version": SAMPLES_VERSION, "max_view_side": max_view_side}
    if manifest_path.is_file() and not force:
        try:
            if json.loads(manifest_path.read_text()).get("params") == params:
                return root
        except (ValueError, OSError):
            pass  # unreadable manifest: rebuild
    if root.exists():
        shutil.rmtree(root)
    (root / "gt").mkdir(parents=True)
    samples: list[Sample] = []

    def pair(name: str):
        crop = _CROPS[name]
        lv, rv, dv = crop_pair(crop, max_view_side)
        gt = None
        if dv is not None:
            gt = f"gt/{name}.disp.npy"
            np.save(root / gt, dv)
        return lv, rv, dv, gt, crop

    def add(file: str, data: bytes, sample: Sample) -> None:
        (root / file).write_bytes(data)
        samples.append(sample)

    def stereo(file: str, data: bytes, description: str, fmt: str, gt: str | None, crop: _Crop) -> None:
        add(file, data, Sample(file, description, "split", expected_format=fmt, gt_disparity=gt,
                               crop=[crop.fx0, crop.fy0, crop.fx1, crop.fy1], mirrored=crop.mirror))

    # --- stereo formats ---------------------------------------------------------------------------
    lv, rv, dv, gt, crop = pair("sbs_parallel")
    parallel_jpeg = _jpeg(_sbs(lv, rv))
    stereo("sbs_parallel.jpg", parallel_jpeg, "parallel side-by-side (left view first), whole scene",
           "side_by_side", gt, crop)

    lv, rv, dv, gt, crop = pair("sbs_crosseyed")
    stereo("sbs_crosseyed.jpg", _jpeg(_sbs(rv, lv)), "cross-eyed side-by-side (right view first), mirrored scene",
           "side_by_side", gt, crop)

    lv, rv, dv, gt, crop = pair("sbs_divider")
    h, w = lv.shape[:2]
    bar, border = max(4, w // 25), max(3, w // 50)
    canvas = np.full((h + 2 * border, 2 * w + bar + 2 * border, 3), 0, np.uint8)  # black outer border
    canvas[border : border + h, border : border + w] = lv
    canvas[border : border + h, border + w : border + w + bar] = 255  # white divider bar
    canvas[border : border + h, border + w + bar : border + 2 * w + bar] = rv
    stereo("sbs_divider.png", _png(canvas), "side-by-side with a white divider bar and a black border",
           "side_by_side", gt, crop)

    lv, rv, dv, gt, crop = pair("over_under")
    stereo("over_under.jpg", _jpeg(np.concatenate([lv, rv], axis=0)), "over-under (left view on top)",
           "over_under", gt, crop)

    lv, rv, dv, gt, crop = pair("mpo")
    buf = io.BytesIO()
    Image.fromarray(lv).save(buf, format="MPO", save_all=True, append_images=[Image.fromarray(rv)], quality=92)
    stereo("camera.mpo", buf.getvalue(), "MPO from a 3D camera: frame 0 left, frame 1 right", "mpo", gt, crop)

    lv, rv, dv, gt, crop = pair("jps")
    stereo("photo.jps", _with_jps_segment(_jpeg(_sbs(rv, lv))), "JPS: cross-eyed side-by-side JPEG with a "
           "_JPSJPS_ APP3 segment (left eye's view second)", "jps", gt, crop)

    lv, rv, dv, gt, crop = pair("triptych")
    third = synthesize_third_view(lv, rv, dv)
    stereo("triptych.jpg", _jpeg(np.concatenate([lv, rv, third], axis=1)),
           "left-center-right triptych (third view warped with the GT disparity); keeps left+center",
           "triptych", gt, crop)

    lv, rv, _dv, _gt, crop = pair("anaglyph")
    anaglyph = np.dstack([lv[..., 0], rv[..., 1], rv[..., 2]])  # red from the left eye, cyan from the right
    add("anaglyph.jpg", _jpeg(anaglyph), Sample("anaglyph.jpg", "red/cyan anaglyph", "rejected", "anaglyph"))

    for name, image, desc in _mono_photos(max_view_side):
        add(name, _jpeg(image), Sample(name, desc, "rejected", "mono"))

    # --- pixel formats ----------------------------------------------------------------------------
    lv, rv, dv, gt, crop = pair("cmyk_sbs")
    buf = io.BytesIO()
    Image.fromarray(_sbs(lv, rv)).convert("CMYK").save(buf, format="JPEG", quality=92)
    stereo("cmyk_sbs.jpg", buf.getvalue(), "CMYK JPEG side-by-side", "side_by_side", gt, crop)

    lv, rv, dv, gt, crop = pair("sbs16")
    sixteen = _sbs(lv, rv).astype(np.uint16) * 257
    ok, enc = cv2.imencode(".png", np.ascontiguousarray(sixteen[..., ::-1]))
    assert ok
    stereo("sbs16.png", enc.tobytes(), "16-bit RGB PNG side-by-side", "side_by_side", gt, crop)

    lv, rv, dv, gt, crop = pair("palette_sbs")
    buf = io.BytesIO()
    Image.fromarray(_sbs(lv, rv)).quantize(colors=256).save(buf, format="PNG")
    stereo("palette_sbs.png", buf.getvalue(), "palette (8-bit indexed) PNG side-by-side", "side_by_side", gt, crop)

    lv, rv, dv, gt, crop = pair("gray_sbs")
    buf = io.BytesIO()
    Image.fromarray(_sbs(lv, rv)).convert("L").save(buf, format="PNG")
    stereo("gray_sbs.png", buf.getvalue(), "greyscale PNG side-by-side", "side_by_side", gt, crop)

    lv, rv, dv, gt, crop = pair("exif_rotated_sbs")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display": pixels are stored turned counter-clockwise
    stored = np.ascontiguousarray(np.rot90(_sbs(lv, rv), 1))
    stereo("exif_rotated_sbs.jpg", _jpeg(stored, exif=exif.tobytes()),
           "side-by-side stored rotated, EXIF orientation 6 turns it upright", "side_by_side", gt, crop)

    for k in range(1, 8):
        name = f"pair_{k:02d}"
        lv, rv, dv, gt, crop = pair(name)
        stereo(f"{name}.png", _png(_sbs(lv, rv)), f"side-by-side PNG, another window of the scene ({name})",
               "side_by_side", gt, crop)

    # --- duplicates -------------------------------------------------------------------------------
    add("sbs_parallel_copy.jpg", parallel_jpeg,
        Sample("sbs_parallel_copy.jpg", "byte-identical copy of sbs_parallel.jpg", "rejected", "duplicate",
               duplicate_of="sbs_parallel.jpg"))
    original = np.asarray(Image.open(io.BytesIO(parallel_jpeg)).convert("RGB"))
    oh, ow = original.shape[:2]
    smaller = _resize(original, (int(ow * 0.8) // 2 * 2, int(oh * 0.8)))
    add("sbs_parallel_reencoded.jpg", _jpeg(smaller, quality=70),
        Sample("sbs_parallel_reencoded.jpg", "sbs_parallel.jpg downscaled to 80 % and re-encoded at quality 70",
               "rejected", "near_duplicate", duplicate_of="sbs_parallel.jpg"))

    # --- bad files --------------------------------------------------------------------------------
    add("empty.jpg", b"", Sample("empty.jpg", "zero-byte file", "failed", "empty_file"))
    add("truncated.jpg", parallel_jpeg[: len(parallel_jpeg) // 2],
        Sample("truncated.jpg", "first half of sbs_parallel.jpg", "failed", "truncated"))
    add("not_an_image.jpg", b"<html><body>404 Not Found</body></html>\n" * 20,
        Sample("not_an_image.jpg", "an HTML error page saved as .jpg", "failed", "not_image"))
    add("bomb.png", decompression_bomb_png(),
        Sample("bomb.png", "decompression bomb: PNG header claims 100000x100000 pixels, file < 1 kB", "failed",
               "too_large"))
    add("corrupt.png", _corrupt_png(_sbs(*pair("pair_01")[:2])),
        Sample("corrupt.png", "PNG with valid header but garbage pixel data", "failed", "corrupt"))
    tiny = _resize(_motorcycle()[0], (40, 27))
    add("tiny.png", _png(tiny), Sample("tiny.png", "40x27 thumbnail", "failed", "too_small"))

    manifest = {"params": params, "samples": [asdict(s) for s in samples]}
    manifest_path.write_text(json.dumps(manifest, indent=1))
    (root / "README.txt").write_text(_readme(samples))
    return root


def _mono_photos(max_view_side: int | None) -> list[tuple[str, np.ndarray, str]]:
    from skimage import data

    def fit(img: np.ndarray, side: int | None) -> np.ndarray:
        if side is None or max(img.shape[:2]) <= side:
            return img
        s = side / max(img.shape[:2])
        return _resize(img, (int(img.shape[1] * s), int(img.shape[0] * s)))

    side2 = None if max_view_side is None else 2 * max_view_side
    coffee = data.coffee()
    # a 2:1 panorama of one scene: same aspect as a side-by-side file, but its halves differ
    chelsea = data.chelsea()
    panorama = np.concatenate([data.astronaut()[:256, :], data.rocket()[:256, :512]], axis=1)
    return [
        ("mono_coffee.jpg", fit(coffee, side2), "mono photo (coffee cup)"),
        ("mono_chelsea.jpg", fit(chelsea, side2), "mono photo (Chelsea the cat)"),
        ("mono_panorama.jpg", fit(panorama, side2), "mono 2:1 image of two different photos: SBS aspect, not SBS"),
    ]


def _readme(samples: list[Sample]) -> str:
    lines = [
        "redweb embedded samples",
        "=======================",
        "",
        "Built by tasks/ingest/samples.py from images that ship with scikit-image: the Middlebury 2014",
        "'motorcycle' stereo pair (left, right, ground-truth disparity) and real photos.",
        "Each stereo file uses a different window of the motorcycle scene, so none is a near-duplicate",
        "of another. gt/<name>.disp.npy: float32 disparity of the stored left view (NaN = unknown).",
        "manifest.json: the same list, machine-readable, with the outcome `redweb ingest` must reach.",
        "",
        f"{'file':<28} {'expected outcome':<32} description",
    ]
    for s in samples:
        outcome = s.expected_state + (f" ({s.expected_format})" if s.expected_format else "")
        outcome += f" [{s.expected_reason}]" if s.expected_reason else ""
        lines.append(f"{s.file:<28} {outcome:<32} {s.description}")
    return "\n".join(lines) + "\n"


def load_manifest(root: str | Path) -> list[dict]:
    """The ``samples`` list of ``root/manifest.json``."""
    return json.loads((Path(root) / "manifest.json").read_text())["samples"]


def expected_status(root: str | Path) -> dict:
    """The ``redweb status --json`` object a fresh catalog must show after ingesting the samples."""
    states: dict[str, int] = {}
    reasons: dict[str, int] = {}
    entries = load_manifest(root)
    for s in entries:
        states[s["expected_state"]] = states.get(s["expected_state"], 0) + 1
        if s["expected_reason"]:
            reasons[s["expected_reason"]] = reasons.get(s["expected_reason"], 0) + 1
    return {"total": len(entries), "states": dict(sorted(states.items())), "reasons": dict(sorted(reasons.items()))}


def discover_samples(catalog, *, root: str | Path, limit: int | None = None, batch: str | None = None,
                     max_view_side: int | None = None) -> list[str]:
    """The ``samples`` source: build the set under ``root`` if needed, record the first ``limit``
    files (manifest order) as ``discovered`` (source "samples", source_id = file name); returns
    their ids in manifest order."""
    from datetime import datetime, timezone

    root = build_samples(root, max_view_side=max_view_side)
    ids = []
    for entry in load_manifest(root)[: limit if limit is not None else None]:
        item, _created = catalog.discover(source="samples", source_id=entry["file"], title=entry["description"],
                                          license="scikit-image data (see skimage/data/README.txt)",
                                          fetched_at=datetime.now(timezone.utc), batch=batch)
        ids.append(item.id)
    return ids
