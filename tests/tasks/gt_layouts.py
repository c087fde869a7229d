"""scikit-image's Middlebury motorcycle (real stereo with GT) written in every scene layout that
``tasks.audit.scenes`` reads, the way each dataset publishes it (test helpers; nothing from ../shared).

``motorcycle(width)`` gives (left, right, disparity) downscaled to ``width`` px (disparity scaled
with it, NaN = unknown). Each ``write_*`` writes one folder and returns the disparity a correct
reader must give back (the stored values decoded, NaN where the format marks "unknown").
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np


@lru_cache(maxsize=4)
def _motorcycle(width: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    disp = np.where(np.isfinite(disp), disp, np.nan).astype(np.float32)  # skimage marks unknown with inf
    if width and width != left.shape[1]:
        s = width / left.shape[1]
        size = (width, int(round(left.shape[0] * s)))
        left = cv2.resize(left, size, interpolation=cv2.INTER_AREA)
        right = cv2.resize(right, size, interpolation=cv2.INTER_AREA)
        disp = cv2.resize(disp, size, interpolation=cv2.INTER_NEAREST) * np.float32(s)  # disparity is in px
    for a in (left, right, disp):
        a.setflags(write=False)
    return left, right, disp


def motorcycle(width: int | None = 200) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    left, right, disp = _motorcycle(width)
    return left.copy(), right.copy(), disp.copy()


def write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = array[..., ::-1] if array.ndim == 3 else array  # RGB -> BGR for OpenCV
    assert cv2.imwrite(str(path), np.ascontiguousarray(img)), path


def write_pfm(path: Path, disp: np.ndarray, *, unknown: float = np.inf) -> None:
    """Middlebury PFM: 'Pf', 'W H', negative scale = little-endian, rows bottom-up, inf = unknown."""
    h, w = disp.shape
    values = np.where(np.isfinite(disp), disp, unknown).astype("<f4")[::-1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"Pf\n" + f"{w} {h}\n".encode() + b"-1.0\n" + values.tobytes())


def write_middlebury2014(folder: Path, left, right, disp) -> np.ndarray:
    write_png(folder / "im0.png", left)
    write_png(folder / "im1.png", right)
    write_pfm(folder / "disp0GT.pfm", disp)
    h, w = disp.shape
    (folder / "calib.txt").write_text(
        "cam0=[3979.911 0 1244.772; 0 3979.911 1019.507; 0 0 1]\ncam1=[3979.911 0 1369.115; 0 3979.911 1019.507; 0 0 1]\n"
        f"doffs=124.343\nbaseline=193.001\nwidth={w}\nheight={h}\nndisp=280\nisint=0\n"
        f"vmin={int(np.nanmin(disp))}\nvmax={int(np.nanmax(disp)) + 1}\ndyavg=0\ndymax=0\n")
    return disp.astype(np.float32)


def write_eth3d(folder: Path, left, right, disp) -> np.ndarray:
    write_png(folder / "im0.png", left)
    write_png(folder / "im1.png", right)
    write_pfm(folder / "disp0GT.pfm", disp)
    mask = np.where(np.isfinite(disp), 255, 0).astype(np.uint8)
    mask[:, :4][np.isfinite(disp[:, :4])] = 128  # a few "occluded" pixels: known disparity, kept
    write_png(folder / "mask0nocc.png", mask)
    h, w = disp.shape
    (folder / "calib.txt").write_text(
        "cam0=[541.764 0 553.869; 0 541.764 232.396; 0 0 1]\ncam1=[541.764 0 553.869; 0 541.764 232.396; 0 0 1]\n"
        f"doffs=0\nbaseline=59.9322\nwidth={w}\nheight={h}\nndisp=64\n")
    return disp.astype(np.float32)


def _kitti_disp(disp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    raw = np.where(np.isfinite(disp), np.rint(np.nan_to_num(disp) * 256), 0).astype(np.uint16)
    expected = raw.astype(np.float32) / 256
    expected[raw == 0] = np.nan
    return raw, expected


def write_kitti(folder: Path, frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]], *,
                version: int = 2015) -> list[np.ndarray]:
    """KITTI training folder: 2015 image_2/image_3/disp_occ_0, 2012 colored_0/colored_1/disp_occ;
    frame k is NNNNNN_10.png with NNNNNN = k; disparity uint16 = d * 256, 0 = unknown."""
    names = ("image_2", "image_3", "disp_occ_0") if version == 2015 else ("colored_0", "colored_1", "disp_occ")
    out = []
    for k, (left, right, disp) in enumerate(frames):
        stem = f"{k:06d}_10.png"
        raw, expected = _kitti_disp(disp)
        write_png(folder / names[0] / stem, left)
        write_png(folder / names[1] / stem, right)
        write_png(folder / names[2] / stem, raw)
        write_png(folder / names[0] / f"{k:06d}_11.png", left)  # the next frame, as KITTI ships it: ignored
        out.append(expected)
    return out


def write_generic(folder: Path, left, right, disp, *, divide_by: float = 64.0) -> np.ndarray:
    """The layout of ../shared/stereo: left.png, right.png, a 16-bit GT PNG, gt.json."""
    write_png(folder / "left.png", left)
    write_png(folder / "right.png", right)
    raw = np.where(np.isfinite(disp), np.rint(np.nan_to_num(disp) * divide_by), 0).astype(np.uint16)
    write_png(folder / "disp.png", raw)
    (folder / "gt.json").write_text(json.dumps({"file": "disp.png", "divide_by": divide_by, "invalid": 0}))
    expected = raw.astype(np.float32) / divide_by
    expected[raw == 0] = np.nan
    return expected


def write_legacy(folder: Path, left, right, disp, *, scale: int = 4) -> np.ndarray:
    """Middlebury 2005/2006 style: view1.png, view5.png, disp1.png = 8-bit round(d * scale), 0 = unknown."""
    write_png(folder / "view1.png", left)
    write_png(folder / "view5.png", right)
    raw = np.where(np.isfinite(disp), np.rint(np.nan_to_num(disp) * scale), 0)
    assert raw.max() <= 255, "disparity too large for an 8-bit legacy map at this scale"
    raw = raw.astype(np.uint8)
    write_png(folder / "disp1.png", raw)
    expected = raw.astype(np.float32) / scale
    expected[raw == 0] = np.nan
    return expected


def write_all_layouts(root: Path, width: int = 160) -> dict[str, tuple[Path, list[np.ndarray]]]:
    """Every layout under ``root/<layout>``; returns {layout: (folder, [expected disparity per scene])}."""
    left, right, disp = motorcycle(width)
    second = (left[:, ::-1].copy(), right[:, ::-1].copy(), disp[:, ::-1].copy())  # a second, different frame (mirrored: for reading tests only)
    return {
        "middlebury2014": (root / "mb2014", [write_middlebury2014(root / "mb2014", left, right, disp)]),
        "eth3d": (root / "eth3d", [write_eth3d(root / "eth3d", left, right, disp)]),
        "kitti2015": (root / "kitti2015", write_kitti(root / "kitti2015", [(left, right, disp), second])),
        "kitti2012": (root / "kitti2012", write_kitti(root / "kitti2012", [(left, right, disp)], version=2012)),
        "generic": (root / "generic", [write_generic(root / "generic", left, right, disp)]),
        "legacy": (root / "legacy", [write_legacy(root / "legacy", left, right, disp)]),
    }
