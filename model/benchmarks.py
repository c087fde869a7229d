"""Loaders for the official benchmark files (users have them locally; nothing is downloaded).

Every dense loader yields :class:`DenseSample` objects one at a time (so 654 NYUv2 images never sit
in memory together) with depth **larger = farther**. The DIW loader returns :class:`DiwSample` rows.

* DIW test CSV (:func:`load_diw_csv`): two lines per sample, the image path (relative to the images
  folder) then ``y_A, x_A, y_B, x_B, relation, width, height`` with 1-based pixel coordinates in the
  original image and relation ``<`` (A closer) or ``>`` (A farther). DIW's JPEGs are named
  ``.thumb``; images are opened by content, never by extension.
* NYUv2 labeled ``.mat`` (HDF5, :func:`iter_nyu`): ``images (N,3,W,H)``, ``depths (N,W,H)`` in
  metres. The official 654-image test split ships here (:func:`nyu_official_test_indices`).
* Our export's held-out split (:func:`iter_redweb_export`): ``imgs/``, ``RDs/`` (uint16, larger =
  farther, only the order matters), ``masks/`` (255 = reliable), ``manifest.csv`` rows with
  ``split == "val"``.
* Middlebury-style disparity ground truth (:func:`iter_middlebury`): PFM (``inf`` = unknown) or PNG
  (0 = unknown) disparity, **larger disparity = closer**, converted to depth.
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

# NYUv2 official test split ("testNdxs" in the dataset's splits.mat), 1-based indices into the 1449
# images of nyu_depth_v2_labeled.mat, as inclusive ranges. Provenance: transcribed from the file
# numbers of the widely used `nyudepthv2_test_files_with_gt.txt` (BTS / AdaBins repositories), which
# their extract_official_train_test_set_from_mat.py names by 0-based position i after checking
# i + 1 against testNdxs; we add 1 back. It has 654 distinct indices, as the official split does.
# A user with the real splits.mat can pass it as --split-file to override this list.
_NYU_TEST_RANGES = (
    "1-2 9 14-18 21 28-43 46-47 56-57 59-63 76-79 84-91 117-119 125-129 131-134 137 153-155 167-169 "
    "171-176 180-202 207-212 220-222 250 264 271-273 279-285 296-302 310-312 315-317 325-335 351-352 "
    "355-364 384-390 395-397 411-414 430-435 441-448 462-466 469-477 508-513 515-526 531-533 537-539 "
    "549-551 555-571 579-583 591-594 603-607 612-613 617-621 633-638 644-645 650-651 656-658 663-664 "
    "668-673 676-681 686-690 693-694 697-699 706-713 717-718 724-728 731-734 743-744 759-787 800-804 "
    "810-814 821-823 833-846 850-852 857-862 869-871 906-908 917-919 926-928 932-935 945-947 959-962 "
    "965-967 970-977 991-995 1001-1004 1010-1012 1021-1023 1032-1034 1038-1039 1048-1049 1052-1053 "
    "1057-1058 1075-1084 1088-1096 1098-1104 1106-1109 1117-1119 1123-1131 1135-1136 1144-1158 "
    "1162-1167 1170-1171 1174-1176 1179-1184 1192-1196 1201-1212 1216-1220 1226-1230 1233-1235 "
    "1247-1250 1254-1265 1275-1280 1285-1295 1297-1299 1302-1308 1314-1315 1329-1332 1335-1340 "
    "1347-1349 1353-1356 1364-1365 1368-1369 1384-1391 1394-1401 1407-1414 1421-1424 1430-1433 1441-1449"
)
NYU_NUM_IMAGES = 1449
#: Eigen et al.'s evaluation crop of the 480x640 NYUv2 frame: rows 45:471, columns 41:601.
NYU_EIGEN_CROP = (45, 471, 41, 601)
#: NYUv2 depth range used by public evaluations (metres).
NYU_MIN_DEPTH, NYU_MAX_DEPTH = 1e-3, 10.0


# --------------------------------------------------------------------------- file readers
def read_image(path: str | Path) -> np.ndarray:
    """Read an RGB image by content (DIW's ``.thumb`` files are JPEGs): ``(H, W, 3)`` uint8."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def read_pfm(path: str | Path) -> np.ndarray:
    """Read a PFM file (Middlebury, MiDaS output): ``(H, W)`` or ``(H, W, 3)`` float32, top row first."""
    with open(path, "rb") as f:
        header = f.readline().strip()
        if header not in (b"Pf", b"PF"):
            raise ValueError(f"{path}: not a PFM file")
        dims = f.readline()
        while dims.startswith(b"#"):
            dims = f.readline()
        width, height = (int(v) for v in dims.split())
        scale = float(f.readline().strip())
        dtype = "<f4" if scale < 0 else ">f4"  # negative scale = little-endian
        channels = 3 if header == b"PF" else 1
        data = np.fromfile(f, dtype=dtype, count=width * height * channels)
    shape = (height, width, 3) if channels == 3 else (height, width)
    return np.flipud(data.reshape(shape)).astype(np.float32)  # PFM stores the bottom row first


def write_pfm(path: str | Path, array: np.ndarray) -> None:
    """Write a single-channel float PFM (little-endian); the inverse of :func:`read_pfm`."""
    a = np.asarray(array, dtype="<f4")
    with open(path, "wb") as f:
        f.write(b"Pf\n%d %d\n-1\n" % (a.shape[1], a.shape[0]))
        f.write(np.flipud(a).tobytes())


def read_map(path: str | Path) -> np.ndarray:
    """Read a single-channel map (``.npy``, ``.pfm``, 8/16-bit ``.png``/``.tif``) as ``(H, W)`` float64."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        arr = np.load(path)
    elif suffix == ".pfm":
        arr = read_pfm(path)
    else:
        import cv2

        arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ValueError(f"{path}: cannot read as an image")
        if arr.ndim == 3:
            # A colour map has no defined depth value; refuse instead of guessing a channel.
            if arr.shape[2] >= 3 and not (np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])):
                raise ValueError(f"{path}: a depth map must be single-channel (got {arr.shape[2]} channels)")
            arr = arr[..., 0]
    arr = np.squeeze(np.asarray(arr))
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D map, got shape {arr.shape}")
    return arr.astype(np.float64)


# --------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class DiwSample:
    """One DIW test pair; coordinates are 0-based (row, column) in the original image."""

    image: str  # path as written in the CSV (relative to the images folder)
    ya: int
    xa: int
    yb: int
    xb: int
    relation: str  # '<' (A closer) or '>' (A farther)
    width: int
    height: int

    @property
    def key(self) -> str:
        """Prediction file stem: the image's file name without its extension."""
        return Path(self.image.replace("\\", "/")).stem


@dataclass(frozen=True)
class DenseSample:
    """One image with dense ground truth.

    depth: ``(H, W)`` float64, larger = farther, > 0 where valid. mask: ``(H, W)`` bool.
    metric: True when depth is in real units (metres, or a consistent unit) so rms/rel/log10/delta
    mean something; False for relative-only maps (our export's RDs), which get ordinal metrics only.
    The RGB image is either ``image_path`` or an in-memory ``image_array`` (NYUv2).
    """

    key: str
    depth: np.ndarray
    mask: np.ndarray
    metric: bool
    image_path: Path | None = None
    image_array: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.depth.shape[0]), int(self.depth.shape[1])

    def load_image(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB."""
        if self.image_array is not None:
            return self.image_array
        if self.image_path is None:
            raise ValueError(f"sample {self.key}: no image")
        return read_image(self.image_path)


# --------------------------------------------------------------------------- DIW
_NUM = r"[-+]?\d+(?:\.\d*)?"


def load_diw_csv(path: str | Path) -> list[DiwSample]:
    """Parse a DIW test CSV (two lines per sample; see module docstring). Blank lines are skipped."""
    lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
    lines = [ln for ln in lines if ln]
    if len(lines) % 2:
        raise ValueError(f"{path}: odd number of non-empty lines; expected path/annotation line pairs")
    samples = []
    for i in range(0, len(lines), 2):
        image, ann = lines[i], lines[i + 1]
        fields = [f.strip() for f in ann.split(",")]
        if len(fields) != 7 or fields[4] not in ("<", ">"):
            raise ValueError(f"{path}:{i + 2}: expected 'y_A,x_A,y_B,x_B,<|>,width,height', got {ann!r}")
        if not all(re.fullmatch(_NUM, f) for f in fields[:4] + fields[5:]):
            raise ValueError(f"{path}:{i + 2}: non-numeric coordinate in {ann!r}")
        ya, xa, yb, xb = (int(round(float(v))) - 1 for v in fields[:4])  # 1-based -> 0-based
        width, height = int(float(fields[5])), int(float(fields[6]))
        for y, x in ((ya, xa), (yb, xb)):
            if not (0 <= y < height and 0 <= x < width):
                raise ValueError(f"{path}:{i + 2}: point ({y + 1},{x + 1}) outside {width}x{height}")
        samples.append(DiwSample(image.strip('"'), ya, xa, yb, xb, fields[4], width, height))
    return samples


def write_diw_csv(path: str | Path, samples: Sequence[DiwSample]) -> None:
    """Write samples in DIW's two-line format (coordinates back to 1-based)."""
    out = []
    for s in samples:
        out.append(s.image)
        out.append(f"{s.ya + 1},{s.xa + 1},{s.yb + 1},{s.xb + 1},{s.relation},{s.width},{s.height}")
    Path(path).write_text("\n".join(out) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- NYUv2
def nyu_official_test_indices() -> tuple[int, ...]:
    """The 654 official NYUv2 test indices (1-based into the labeled .mat); see provenance above."""
    out: list[int] = []
    for tok in _NYU_TEST_RANGES.split():
        lo, _, hi = tok.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return tuple(out)


def load_nyu_split(split_file: str | Path | None, name: str = "testNdxs") -> tuple[int, ...]:
    """1-based indices from ``splits.mat`` (variable ``name``) or a text file of integers;
    ``None`` -> :func:`nyu_official_test_indices`."""
    if split_file is None:
        return nyu_official_test_indices()
    path = Path(split_file)
    if path.suffix.lower() == ".mat":
        from scipy.io import loadmat

        return tuple(int(v) for v in np.asarray(loadmat(path)[name]).ravel())
    return tuple(int(v) for v in re.findall(r"\d+", path.read_text(encoding="utf-8")))


def nyu_key(index: int) -> str:
    """Prediction file stem for NYUv2 image ``index`` (1-based): ``0001`` ... ``1449``."""
    return f"{index:04d}"


def eigen_crop_mask(shape: tuple[int, int]) -> np.ndarray:
    """Bool mask of Eigen's crop (:data:`NYU_EIGEN_CROP`) for a frame of ``shape``: exact for the
    480x640 NYUv2 frame, scaled proportionally for other sizes (e.g. small test files)."""
    h, w = shape
    y0, y1, x0, x1 = NYU_EIGEN_CROP
    fh, fw = h / 480, w / 640
    mask = np.zeros((h, w), dtype=bool)
    mask[int(round(y0 * fh)):int(round(y1 * fh)), int(round(x0 * fw)):int(round(x1 * fw))] = True
    return mask


def read_nyu_arrays(f, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Image ``index`` (1-based) of an open labeled ``.mat``: (H,W,3) uint8 RGB, (H,W) float64 metres."""
    # MATLAB v7.3 stores arrays transposed: images (N, 3, W, H), depths (N, W, H).
    image = np.ascontiguousarray(np.asarray(f["images"][index - 1]).transpose(2, 1, 0))
    depth = np.ascontiguousarray(np.asarray(f["depths"][index - 1], dtype=np.float64).T)
    return image.astype(np.uint8), depth


def iter_nyu(
    mat_path: str | Path,
    indices: Sequence[int] | None = None,
    crop: str = "eigen",
) -> Iterator[DenseSample]:
    """Yield NYUv2 test images from ``nyu_depth_v2_labeled.mat`` (h5py), depth in metres.

    indices: 1-based image indices (default: the official 654). crop: ``"eigen"`` restricts the
    mask to :data:`NYU_EIGEN_CROP` (the images themselves stay 480x640 so a model sees the whole
    frame; proportionally scaled for other frame sizes), ``"none"`` uses every pixel. Valid =
    inside the crop and depth in (1e-3, 10] m.
    """
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is a core dependency
        raise ImportError("NYUv2 needs h5py: pip install h5py") from exc
    if crop not in ("eigen", "none"):
        raise ValueError("crop must be 'eigen' or 'none'")
    indices = nyu_official_test_indices() if indices is None else tuple(indices)
    with h5py.File(mat_path, "r") as f:
        n = f["depths"].shape[0]
        for index in indices:
            if not 1 <= index <= n:
                raise ValueError(f"NYU index {index} outside 1..{n}")
            image, depth = read_nyu_arrays(f, index)
            mask = (depth > NYU_MIN_DEPTH) & (depth <= NYU_MAX_DEPTH)
            if crop == "eigen":
                mask &= eigen_crop_mask(mask.shape)
            yield DenseSample(nyu_key(index), depth, mask, metric=True, image_array=image)


def nyu_depth_stats(mat_path: str | Path, exclude: Sequence[int] | None = None) -> tuple[float, float]:
    """Mean and std (metres) of NYUv2 depth over the images **not** in ``exclude`` (default: the
    official test split, i.e. the 795 training images): the statistics the ReDWeb paper maps its
    normalized predictions to. Pixels with depth outside (1e-3, 10] are ignored."""
    import h5py

    exclude_set = set(nyu_official_test_indices() if exclude is None else exclude)
    total = total_sq = count = 0.0
    with h5py.File(mat_path, "r") as f:
        depths = f["depths"]
        for i in range(1, depths.shape[0] + 1):
            if i in exclude_set:
                continue
            d = np.asarray(depths[i - 1], dtype=np.float64)
            d = d[(d > NYU_MIN_DEPTH) & (d <= NYU_MAX_DEPTH)]
            total += d.sum()
            total_sq += (d * d).sum()
            count += d.size
    if not count:
        raise ValueError(f"{mat_path}: no training depth left after excluding the test split")
    mean = total / count
    return float(mean), float(np.sqrt(max(total_sq / count - mean * mean, 0.0)))


def write_nyu_images(mat_path: str | Path, out_dir: str | Path, indices: Sequence[int] | None = None) -> list[Path]:
    """Write NYUv2 RGB images as ``OUT/0001.png`` ... so other models can be run on them and their
    predictions scored with ``redweb evaluate --benchmark nyu --predictions``."""
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for sample in iter_nyu(mat_path, indices, crop="none"):
        p = out / f"{sample.key}.png"
        Image.fromarray(sample.image_array).save(p)
        paths.append(p)
    return paths


# --------------------------------------------------------------------------- our export
def resolve_export_manifest(annotations: str | Path) -> Path:
    """``annotations`` may be the export folder itself or its ``manifest.csv``."""
    path = Path(annotations)
    manifest = path / "manifest.csv" if path.is_dir() else path
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: no manifest.csv (pass the export folder or its manifest)")
    return manifest


def iter_redweb_export(
    annotations: str | Path, images_dir: str | Path | None = None, split: str = "val"
) -> Iterator[DenseSample]:
    """Yield the ``split`` rows of a ``redweb export`` folder as relative-depth samples.

    annotations: the export folder or its ``manifest.csv``; images are looked up in ``images_dir``
    (the ``imgs`` folder or the export folder itself) and then in ``<export>/imgs``.
    Depth = the RD value (uint16, larger = farther, sky 65535; only the order carries meaning, so
    ``metric=False``); valid = mask 255 (reliable) and RD > 0.
    """
    import cv2

    manifest = resolve_export_manifest(annotations)
    root = manifest.parent
    # --images may be the imgs/ folder or the export folder itself; imgs/ is the default.
    folders = [Path(images_dir), Path(images_dir) / "imgs"] if images_dir is not None else []
    folders.append(root / "imgs")
    with open(manifest, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split", "").strip() == split]
    for row in rows:
        item = row["id"].strip()
        rd = cv2.imread(str(root / "RDs" / f"{item}.png"), cv2.IMREAD_UNCHANGED)
        if rd is None:
            raise FileNotFoundError(f"{root / 'RDs' / (item + '.png')}: missing or unreadable")
        if rd.ndim == 3:
            rd = rd[..., 0]
        mask_path = root / "masks" / f"{item}.png"
        m = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE) if mask_path.exists() else None
        mask = (m > 127) if m is not None else np.ones(rd.shape, dtype=bool)
        depth = rd.astype(np.float64)
        image_path = next((p for p in (_find_image(f, item) for f in folders if f.is_dir()) if p is not None), None)
        yield DenseSample(item, depth, mask & (depth > 0), metric=False, image_path=image_path)


def _find_image(folder: Path, stem: str) -> Path | None:
    for ext in (".jpg", ".jpeg", ".png", ".JPG", ".PNG", ".thumb"):
        p = folder / f"{stem}{ext}"
        if p.exists():
            return p
    hits = sorted(folder.glob(f"{glob_escape(stem)}.*"))
    return hits[0] if hits else None


def glob_escape(text: str) -> str:
    """Escape glob metacharacters in a file stem."""
    return re.sub(r"([*?\[])", r"[\1]", text)


# --------------------------------------------------------------------------- Middlebury
_DISP_NAMES = ("disp0GT.pfm", "disp0.pfm", "disp0.png", "disp0GT.png", "disp1.png")
_IMAGE_NAMES = ("im0.png", "view1.png", "im0.jpg")


def read_middlebury_calib(path: str | Path) -> dict[str, float]:
    """Parse a Middlebury 2014 ``calib.txt``: returns ``f`` (pixels, from cam0), ``baseline`` (mm)
    and ``doffs`` (pixels)."""
    values: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            values[k.strip()] = v.strip()
    cam0 = [float(v) for v in re.findall(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", values["cam0"])]
    return {"f": cam0[0], "baseline": float(values["baseline"]), "doffs": float(values.get("doffs", 0.0))}


def disparity_to_depth(disparity: np.ndarray, calib: dict[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Disparity (larger = closer; ``inf``/``nan``/``<= 0`` = unknown) -> ``(depth, valid)``.

    With a Middlebury calibration, depth = baseline * f / (d + doffs) in **metres**; without one,
    depth = 1 / d (arbitrary units: only scale-invariant or aligned errors mean anything).
    """
    d = np.asarray(disparity, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    depth = np.zeros_like(d)
    if calib is not None:
        depth[valid] = calib["baseline"] * calib["f"] / (d[valid] + calib["doffs"]) / 1000.0
    else:
        depth[valid] = 1.0 / d[valid]
    return depth, valid


def iter_middlebury(annotations: str | Path, images_dir: str | Path | None = None) -> Iterator[DenseSample]:
    """Yield Middlebury-style samples from either layout:

    * scene folders (Middlebury 2014/2006): ``annotations`` is one scene folder or a folder of them,
      each with ``im0.png`` (or ``view1.png``), ``disp0GT.pfm``/``disp0.pfm``/``disp0.png`` and
      optionally ``calib.txt``; the prediction key is the **scene folder name**;
    * flat: ``annotations`` holds ``<name>.pfm`` / ``<name>.png`` disparity maps and ``images_dir``
      holds ``<name>.<ext>`` images; the key is ``<name>``.

    PNG disparity is read as stored (0 = unknown); Middlebury 2006 PNGs store disparity x 3 at full
    size, a scale that cancels in aligned and ordinal metrics.
    """
    root = Path(annotations)
    scenes = [root] if _is_scene(root) else sorted(p for p in root.iterdir() if p.is_dir() and _is_scene(p))
    if scenes:
        for scene in scenes:
            disp_path = next(scene / n for n in _DISP_NAMES if (scene / n).exists())
            image_path = next((scene / n for n in _IMAGE_NAMES if (scene / n).exists()), None)
            calib = read_middlebury_calib(scene / "calib.txt") if (scene / "calib.txt").exists() else None
            depth, valid = disparity_to_depth(read_map(disp_path), calib)
            yield DenseSample(scene.name, depth, valid, metric=True, image_path=image_path)
        return
    if images_dir is None:
        raise ValueError("flat Middlebury layout needs --images (the folder of <name>.<ext> images)")
    for disp_path in sorted(p for p in root.iterdir() if p.suffix.lower() in (".pfm", ".png", ".npy")):
        depth, valid = disparity_to_depth(read_map(disp_path))
        yield DenseSample(disp_path.stem, depth, valid, metric=True, image_path=_find_image(Path(images_dir), disp_path.stem))


def _is_scene(folder: Path) -> bool:
    return folder.is_dir() and any((folder / n).exists() for n in _DISP_NAMES)
