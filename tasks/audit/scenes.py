"""Real stereo scenes with ground-truth disparity, read from the layouts their datasets publish.

A ``Scene`` is two views and the GT disparity of the left view (pixels, ``x_right = x_left - d``,
NaN = unknown). ``read_scenes(path)`` takes one scene folder or a folder of scene folders and
detects each folder's layout from the files it holds:

- ``generic`` (the layout of ``../shared/stereo``): ``left.png``, ``right.png``, a GT file and
  ``gt.json`` = ``{"file", "divide_by", "invalid": 0 | "inf", "left"?, "right"?}``;
- ``middlebury2014`` / ``eth3d`` (MiddEval3, Middlebury 2014 and ETH3D two-view): ``im0.png``,
  ``im1.png``, ``disp0GT.pfm`` (or ``disp0.pfm``; PFM rows are stored bottom-up, inf = unknown),
  optional ``mask0nocc.png`` (255 = non-occluded; other values kept as known but occluded) and
  ``calib.txt`` (ETH3D's has no ``vmin``/``dyavg``: that tells the two apart, for the report only);
- ``kitti`` (KITTI 2012 / 2015 training folders, many frames): ``image_2``/``image_3`` (2015) or
  ``colored_0``/``colored_1`` or ``image_0``/``image_1`` (2012) with ``disp_occ_0``/``disp_occ``/
  ``disp_noc_0``/``disp_noc`` ``NNNNNN_10.png`` (uint16, disparity = value / 256, 0 = unknown);
- ``middlebury_legacy`` (Middlebury 2001–2006 folders: ``im2``/``im6``/``disp2`` or
  ``view1``/``view5``/``disp1``, any image extension): integer disparity scaled by a factor the
  datasets state per size (e.g. 2003 quarter size: 4; 2005 third size: 3; 2006 half size: 2) that
  the file does not carry, so the caller passes ``legacy_scale``; 0 = unknown.

Anything else raises ``SceneError`` naming the folder and what was expected, or the file that
could not be decoded.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_IMAGE_EXTS = (".png", ".ppm", ".pgm", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


class SceneError(ValueError):
    """A scene folder that cannot be read: the message names the folder or file and why."""


@dataclass
class Scene:
    name: str
    left: np.ndarray  # (H, W, 3) uint8 RGB
    right: np.ndarray  # (H, W, 3) uint8 RGB
    disparity: np.ndarray  # (H, W) float32 left-view GT disparity, px; NaN = unknown
    layout: str  # generic | middlebury2014 | eth3d | kitti | middlebury_legacy
    path: Path

    @property
    def size(self) -> tuple[int, int]:
        return self.left.shape[1], self.left.shape[0]


def read_pfm(path: str | Path) -> np.ndarray:
    """(H, W) float32 (first channel of a colour PFM), rows top-down. Non-finite values stay."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            kind = fh.readline().strip()
            if kind not in (b"Pf", b"PF"):
                raise SceneError(f"{path}: not a PFM file (header {kind[:8]!r})")
            dims = fh.readline().split()
            while not dims:  # tolerate blank lines
                dims = fh.readline().split()
            w, h = int(dims[0]), int(dims[1])
            scale = float(fh.readline().strip())
            channels = 3 if kind == b"PF" else 1
            body = fh.read()
            # a file cut mid-value is still "truncated" (below), not a numpy buffer-size error
            data = np.frombuffer(body[: len(body) // 4 * 4], dtype="<f4" if scale < 0 else ">f4")
    except (OSError, ValueError, IndexError) as exc:
        if isinstance(exc, SceneError):
            raise
        raise SceneError(f"{path}: cannot decode PFM ({exc})") from exc
    if data.size < w * h * channels:
        raise SceneError(f"{path}: PFM truncated ({data.size} of {w * h * channels} values)")
    arr = data[: w * h * channels].reshape(h, w, channels)[..., 0]
    return np.ascontiguousarray(arr[::-1]).astype(np.float32)  # PFM rows are stored bottom-up


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not path.is_file():
        raise SceneError(f"{path}: missing")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise SceneError(f"{path}: cannot decode image ({exc})") from exc


def _read_raw(path: Path) -> np.ndarray:
    """Integer image as stored (16-bit PNG stays 16-bit; palette PNG read as 8-bit grey)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.mode in ("P", "PA", "RGB", "RGBA", "LA"):
                im = im.convert("L")
            return np.asarray(im).copy()
    except (OSError, UnidentifiedImageError) as exc:
        raise SceneError(f"{path}: cannot decode image ({exc})") from exc


def _check_sizes(folder: Path, left: np.ndarray, right: np.ndarray, disp: np.ndarray) -> None:
    if left.shape != right.shape or left.shape[:2] != disp.shape:
        raise SceneError(f"{folder}: sizes differ: left {left.shape[:2]}, right {right.shape[:2]}, GT {disp.shape}")


def _find(folder: Path, stem: str) -> Path | None:
    for ext in _IMAGE_EXTS:
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def _read_generic(folder: Path) -> Scene:
    try:
        spec = json.loads((folder / "gt.json").read_text())
    except (OSError, ValueError) as exc:
        raise SceneError(f"{folder / 'gt.json'}: cannot read ({exc})") from exc
    for key in ("file", "divide_by"):
        if key not in spec:
            raise SceneError(f"{folder / 'gt.json'}: missing {key!r}")
    left = _read_rgb(folder / spec.get("left", "left.png"))
    right = _read_rgb(folder / spec.get("right", "right.png"))
    gt_path = folder / spec["file"]
    if gt_path.suffix.lower() == ".pfm":
        raw = read_pfm(gt_path).astype(np.float64)
    else:
        raw = _read_raw(gt_path).astype(np.float64)
    invalid = spec.get("invalid", 0)
    disp = raw / float(spec["divide_by"])
    bad = ~np.isfinite(raw) if str(invalid) == "inf" else (raw == float(invalid)) | ~np.isfinite(raw)
    disp[bad] = np.nan
    _check_sizes(folder, left, right, disp)
    return Scene(folder.name, left, right, disp.astype(np.float32), "generic", folder)


def _read_im0(folder: Path) -> Scene:
    gt_path = next((folder / n for n in ("disp0GT.pfm", "disp0.pfm") if (folder / n).is_file()), None)
    if gt_path is None:
        raise SceneError(f"{folder}: im0/im1 found but no disp0GT.pfm or disp0.pfm")
    left, right = _read_rgb(_find(folder, "im0")), _read_rgb(_find(folder, "im1"))
    disp = read_pfm(gt_path)
    disp[~np.isfinite(disp)] = np.nan
    calib = folder / "calib.txt"
    text = calib.read_text(errors="replace") if calib.is_file() else ""
    layout = "middlebury2014" if re.search(r"^(vmin|dyavg)\s*=", text, re.M) else "eth3d"
    _check_sizes(folder, left, right, disp)
    return Scene(folder.name, left, right, disp, layout, folder)


_KITTI_LEFT = ("image_2", "colored_0", "image_0")
_KITTI_RIGHT = ("image_3", "colored_1", "image_1")
_KITTI_DISP = ("disp_occ_0", "disp_occ", "disp_noc_0", "disp_noc")


def _kitti_dirs(folder: Path) -> tuple[Path, Path, Path] | None:
    dirs = []
    for names in (_KITTI_LEFT, _KITTI_RIGHT, _KITTI_DISP):
        found = next((folder / n for n in names if (folder / n).is_dir()), None)
        if found is None:
            return None
        dirs.append(found)
    return dirs[0], dirs[1], dirs[2]


def _read_kitti(folder: Path, *, max_frames: int | None) -> list[Scene]:
    left_dir, right_dir, disp_dir = _kitti_dirs(folder)
    frames = sorted(p for p in disp_dir.glob("*_10.png"))
    if not frames:
        raise SceneError(f"{disp_dir}: no NNNNNN_10.png disparity files")
    scenes = []
    for gt_path in frames[: max_frames or None]:
        lp, rp = left_dir / gt_path.name, right_dir / gt_path.name
        for p in (lp, rp):
            if not p.is_file():
                raise SceneError(f"{p}: missing (KITTI frame {gt_path.stem})")
        raw = _read_raw(gt_path)
        if raw.dtype != np.uint16:
            raise SceneError(f"{gt_path}: KITTI disparity must be a 16-bit PNG, got {raw.dtype}")
        disp = raw.astype(np.float32) / 256.0
        disp[raw == 0] = np.nan
        left, right = _read_rgb(lp), _read_rgb(rp)
        _check_sizes(folder, left, right, disp)
        scenes.append(Scene(f"{folder.name}_{gt_path.stem}", left, right, disp, "kitti", folder))
    return scenes


_LEGACY = (("im2", "im6", "disp2"), ("view1", "view5", "disp1"))


def _legacy_files(folder: Path) -> tuple[Path, Path, Path] | None:
    for names in _LEGACY:
        found = [_find(folder, n) for n in names]
        if all(found):
            return found[0], found[1], found[2]
    return None


def _read_legacy(folder: Path, *, scale: float | None) -> Scene:
    lp, rp, gp = _legacy_files(folder)
    if not scale:
        raise SceneError(f"{folder}: a Middlebury 2001-2006 folder ({lp.name}, {rp.name}, {gp.name}); its "
                         "disparity scale is not in the files: pass it (redweb audit --legacy-scale N, e.g. 4 for "
                         "2003 quarter size, 3 for 2005 third size, 2 for 2006 half size, 8 or 16 for Tsukuba)")
    raw = _read_raw(gp).astype(np.float32)
    disp = raw / float(scale)
    disp[raw == 0] = np.nan
    left, right = _read_rgb(lp), _read_rgb(rp)
    _check_sizes(folder, left, right, disp)
    return Scene(folder.name, left, right, disp, "middlebury_legacy", folder)


def detect_layout(folder: Path) -> str | None:
    """The layout name of a scene folder, or None when none matches."""
    if (folder / "gt.json").is_file():
        return "generic"
    if _find(folder, "im0") and _find(folder, "im1"):
        return "im0"
    if _kitti_dirs(folder):
        return "kitti"
    if _legacy_files(folder):
        return "middlebury_legacy"
    return None


def incomplete_layout(folder: Path) -> str | None:
    """Why a folder that holds part of a known layout (a GT file, one view, some KITTI folders) is
    not a scene, or None when it holds nothing of one (a folder of web photos, say)."""
    if detect_layout(folder):
        return None
    im = {n: _find(folder, n) for n in ("im0", "im1")}
    gt = next((n for n in ("disp0GT.pfm", "disp0.pfm") if (folder / n).is_file()), None)
    if any(im.values()) or gt:
        missing = [f"{n}.png" for n, p in im.items() if p is None]
        what = gt or "im0/im1"
        if not gt:
            missing.append("disp0GT.pfm")
        return f"{folder}: a Middlebury 2014 / ETH3D folder ({what}) with no {' or '.join(missing)}"
    for names in _LEGACY:
        found = [_find(folder, n) for n in names]
        if found[2] is not None:  # the GT file is there, a view is not
            missing = [n for n, p in zip(names, found) if p is None]
            return f"{folder}: a Middlebury 2001-2006 folder ({found[2].name}) with no {' or '.join(missing)} image"
    kitti = [next((n for n in names if (folder / n).is_dir()), None) for names in (_KITTI_LEFT, _KITTI_RIGHT, _KITTI_DISP)]
    if any(kitti):
        missing = [names[0] + "/" for names, n in zip((_KITTI_LEFT, _KITTI_RIGHT, _KITTI_DISP), kitti) if n is None]
        return f"{folder}: a KITTI folder with no {' or '.join(missing)} (left, right, disparity folders all needed)"
    return None


EXPECTED = ("left.png + right.png + gt.json (generic); im0.png + im1.png + disp0GT.pfm (Middlebury 2014 / "
            "ETH3D); image_2/ + image_3/ + disp_occ_0/ (KITTI); im2/im6/disp2 or view1/view5/disp1 "
            "(Middlebury 2001-2006)")


def read_scene_folder(folder: str | Path, *, legacy_scale: float | None = None,
                      max_frames: int | None = None) -> list[Scene]:
    """The scenes in one scene folder (several for KITTI)."""
    folder = Path(folder)
    layout = detect_layout(folder)
    if layout == "generic":
        return [_read_generic(folder)]
    if layout == "im0":
        return [_read_im0(folder)]
    if layout == "kitti":
        return _read_kitti(folder, max_frames=max_frames)
    if layout == "middlebury_legacy":
        return [_read_legacy(folder, scale=legacy_scale)]
    partial = incomplete_layout(folder) if folder.is_dir() else None
    if partial:
        raise SceneError(partial)
    files = sorted(p.name for p in folder.iterdir())[:12] if folder.is_dir() else []
    raise SceneError(f"{folder}: no known scene layout (expected {EXPECTED}); found {files}")


def read_scenes(path: str | Path, *, legacy_scale: float | None = None, max_frames: int | None = None,
                require_gt: bool = True) -> list[Scene]:
    """Scenes under ``path``: one scene folder, or a folder of scene folders (sorted by name).

    In a folder of folders, sub-folders with nothing of a known layout are skipped when at least one
    other is a scene (``../shared/stereo`` also holds web photos without GT); with none, SceneError.
    A sub-folder with part of a layout (a GT file without its right view, say) is a SceneError.
    """
    path = Path(path)
    if not path.exists():
        raise SceneError(f"{path}: no such folder")
    if not path.is_dir():
        raise SceneError(f"{path}: not a folder (pass a scene folder or a folder of scene folders)")
    if detect_layout(path) or incomplete_layout(path):
        return read_scene_folder(path, legacy_scale=legacy_scale, max_frames=max_frames)
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    scenes: list[Scene] = []
    for sub in subs:
        if detect_layout(sub) or incomplete_layout(sub):  # a half scene is an error, not a skipped folder
            scenes += read_scene_folder(sub, legacy_scale=legacy_scale, max_frames=max_frames)
    if not scenes and require_gt:
        found = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir())[:12]
        raise SceneError(f"{path}: neither a scene folder nor a folder of scene folders (expected {EXPECTED}); "
                         f"found {found}")
    return scenes
