"""Evaluation of prediction folders against hand-counted WHDR / WKDR, baselines, and the loaders."""
from __future__ import annotations

import csv
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from model import benchmarks as B
from model import evaluate as E


# --------------------------------------------------------------------------- DIW
def _write_thumb(path: Path, height: int, width: int) -> None:
    """A JPEG named .thumb, as DIW ships its images."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, buf = cv2.imencode(".jpg", np.full((height, width, 3), 128, np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())


@pytest.fixture
def diw(tmp_path: Path) -> tuple[Path, Path, Path]:
    """Four DIW samples, their .thumb images and a prediction folder; outcomes counted by hand below."""
    images, preds = tmp_path / "DIW_test", tmp_path / "preds"
    preds.mkdir()
    # (image, 1-based y_A, x_A, y_B, x_B, relation, width, height)
    rows = [
        ("a.thumb", 2, 1, 2, 5, "<", 8, 6),
        ("sub/b.thumb", 1, 9, 3, 2, "<", 10, 5),
        ("c.thumb", 5, 3, 1, 3, "<", 6, 6),
        ("d.thumb", 1, 2, 4, 6, "<", 7, 4),
    ]
    lines = []
    for name, ya, xa, yb, xb, rel, w, h in rows:
        _write_thumb(images / name, h, w)
        lines += [name, f"{ya},{xa},{yb},{xb},{rel},{w},{h}"]
    csv_path = tmp_path / "DIW_test.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    # a: full-size .npy, depth = column -> A (x=0) closer than B (x=4): '<' right
    np.save(preds / "a.npy", np.tile(np.arange(8, dtype=np.float32), (6, 1)))
    # b: half-size .npy increasing with column; bilinear upsampling keeps the order: A (x=8) farther: wrong
    np.save(preds / "b.npy", np.tile(np.arange(5, dtype=np.float32), (3, 1)))
    # c: constant 16-bit PNG: a tie, which counts as wrong
    cv2.imwrite(str(preds / "c.png"), np.full((6, 6), 1000, np.uint16))
    # d: 16-bit PNG, depth = 1000 * row -> A (row 0) closer than B (row 3): '<' right
    cv2.imwrite(str(preds / "d.png"), (np.arange(4)[:, None] * 1000 * np.ones((1, 7))).astype(np.uint16))
    return csv_path, images, preds


def test_load_diw_csv_converts_to_zero_based(diw):
    csv_path, _, _ = diw
    samples = B.load_diw_csv(csv_path)
    assert len(samples) == 4
    s = samples[1]
    assert (s.image, s.ya, s.xa, s.yb, s.xb, s.relation, s.width, s.height) == ("sub/b.thumb", 0, 8, 2, 1, "<", 10, 5)
    assert s.key == "b"


def test_load_diw_csv_rejects_bad_rows(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x.thumb\n1,1,2,2,?,5,5\n")
    with pytest.raises(ValueError, match="expected"):
        B.load_diw_csv(bad)
    bad.write_text("x.thumb\n1,1,9,2,<,5,5\n")
    with pytest.raises(ValueError, match="outside"):
        B.load_diw_csv(bad)


def test_diw_thumb_opens_by_content(diw):
    _, images, _ = diw
    assert B.read_image(images / "sub" / "b.thumb").shape == (5, 10, 3)


def test_whdr_of_prediction_folder_hand_counted(diw):
    csv_path, images, preds = diw
    doc = E.evaluate_predictions("diw", csv_path, preds, images=images)
    # model: a right, b wrong, c tie (wrong), d right -> 2/4
    assert doc["whdr"] == pytest.approx(0.5)
    assert doc["n_pairs"] == 4
    # lower is closer: a same row (tie, wrong); b A higher -> '>' wrong; c A lower -> '<' right;
    # d A higher -> '>' wrong -> 3/4. Constant: every pair a tie -> 1.
    assert doc["baselines"]["lower_is_closer"]["whdr"] == pytest.approx(0.75)
    assert doc["baselines"]["constant"]["whdr"] == 1.0
    # ties: the model's c, the baseline's same-row a; the constant ties everything
    assert doc["ties"] == 0.25 and doc["baselines"]["lower_is_closer"]["ties"] == 0.25
    assert doc["baselines"]["constant"]["ties"] == 1.0
    # --inverse flips every strict order: a wrong, b right, c still a tie, d wrong -> 3/4
    inv = E.evaluate_predictions("diw", csv_path, preds, images=images, inverse=True)
    assert inv["whdr"] == pytest.approx(0.75)


def test_missing_prediction_is_an_error(diw):
    csv_path, images, preds = diw
    (preds / "d.png").unlink()
    with pytest.raises(FileNotFoundError, match="'d'"):
        E.evaluate_predictions("diw", csv_path, preds, images=images)


# --------------------------------------------------------------------------- dense GT (our export layout)
def _write_export(root: Path, items: dict[str, tuple[np.ndarray, np.ndarray]], train_items: int = 1) -> Path:
    for sub in ("imgs", "RDs", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rows = []
    for k, (item, (rd, mask)) in enumerate(items.items()):
        h, w = rd.shape
        cv2.imwrite(str(root / "imgs" / f"{item}.jpg"), np.full((h, w, 3), 90, np.uint8))
        cv2.imwrite(str(root / "RDs" / f"{item}.png"), rd.astype(np.uint16))
        cv2.imwrite(str(root / "masks" / f"{item}.png"), (mask * 255).astype(np.uint8))
        rows.append({"id": item, "split": "val"})
    for k in range(train_items):  # a train row the evaluation must ignore (its files do not exist)
        rows.append({"id": f"train_{k}", "split": "train"})
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture
def dense(tmp_path: Path) -> tuple[Path, Path]:
    """Three 4x4 images with exactly three reliable pixels each, so every sampled pair of an image
    has the same outcome whatever the sampler draws (outcomes counted by hand in the test)."""
    rng = np.random.default_rng(1)
    pix = [(0, 0), (1, 2), (3, 3)]
    mask = np.zeros((4, 4), bool)
    for y, x in pix:
        mask[y, x] = True

    def rd(values):
        a = rng.integers(1, 60000, size=(4, 4)).astype(np.float64)  # garbage outside the mask
        for (y, x), v in zip(pix, values):
            a[y, x] = v
        return a

    def pred(values):
        a = rng.normal(size=(4, 4))
        for (y, x), v in zip(pix, values):
            a[y, x] = v
        return a

    export = _write_export(tmp_path / "export", {
        "right": (rd([1000, 2000, 4000]), mask),  # all pairs unequal
        "reversed": (rd([1000, 2000, 4000]), mask),
        "flat": (rd([3000, 3000, 3000]), mask),  # all pairs equal
    })  # fmt: skip
    preds = tmp_path / "preds"
    preds.mkdir()
    np.save(preds / "right.npy", pred([1.0, 3.0, 7.0]))  # = 2 x RD/1000 - 1 (positive affine): aligned exactly
    np.save(preds / "reversed.npy", pred([7.0, 3.0, 1.0]))  # reversed: best scale >= 0 is 0 -> all "equal"
    np.save(preds / "flat.npy", pred([0.0, 5.0, 9.0]))  # GT constant: aligned to the constant -> all "equal"
    return export, preds


def test_wkdr_of_prediction_folder_hand_counted(dense):
    export, preds = dense
    n = 40
    doc = E.evaluate_predictions("redweb", export, preds, pairs_per_image=n)
    # right: n unequal pairs, all right; reversed: n unequal pairs, all wrong (called equal);
    # flat: n equal pairs, all right. WKDR = n / 3n; WKDR= = 0 / n; WKDR≠ = n / 2n.
    assert doc["n_images"] == 3 and doc["n_pairs"] == 3 * n
    assert doc["wkdr"] == pytest.approx(1 / 3)
    assert doc["wkdr_eq"] == 0.0
    assert doc["wkdr_neq"] == pytest.approx(0.5)
    assert "rms" not in doc  # relative RDs: ordinal metrics only
    # constant baseline: calls every pair equal -> wrong exactly on the 2n unequal pairs
    const = doc["baselines"]["constant"]
    assert (const["wkdr"], const["wkdr_eq"], const["wkdr_neq"]) == pytest.approx((2 / 3, 0.0, 1.0))
    assert "lower_is_closer" in doc["baselines"]
    # the manifest path works as well as the folder
    again = E.evaluate_predictions("redweb", export / "manifest.csv", preds, pairs_per_image=n)
    assert again["wkdr"] == doc["wkdr"]


def test_dense_pairs_are_seeded(dense):
    export, preds = dense
    a = E.evaluate_predictions("redweb", export, preds, pairs_per_image=7, seed=3)
    b = E.evaluate_predictions("redweb", export, preds, pairs_per_image=7, seed=3)
    assert a["wkdr"] == b["wkdr"] and a["baselines"] == b["baselines"]


def test_synthetic_export_scores(tmp_path):
    """A prediction equal to the ground truth scores WKDR 0 on the training helper's synthetic export."""
    from model.data import make_synthetic_export

    export = make_synthetic_export(tmp_path / "syn", n=4, size=32, seed=0)
    preds = tmp_path / "gt_as_pred"
    preds.mkdir()
    for s in B.iter_redweb_export(export):
        np.save(preds / f"{s.key}.npy", s.depth)
    doc = E.evaluate_predictions("redweb", export, preds, pairs_per_image=500)
    assert doc["n_images"] >= 1
    assert doc["wkdr"] == 0.0
    assert doc["baselines"]["constant"]["wkdr"] > 0


# --------------------------------------------------------------------------- NYUv2
def _write_fake_nyu(path: Path, depths: np.ndarray) -> None:
    """A labeled-.mat-shaped HDF5 file: images (N,3,W,H) uint8, depths (N,W,H) (MATLAB's transposed layout)."""
    import h5py

    n, h, w = depths.shape
    images = np.zeros((n, 3, w, h), np.uint8)
    with h5py.File(path, "w") as f:
        f["images"] = images
        f["depths"] = depths.transpose(0, 2, 1).astype(np.float32)


def test_nyu_official_split_shape():
    idx = B.nyu_official_test_indices()
    assert len(idx) == 654 and len(set(idx)) == 654
    assert idx[:5] == (1, 2, 9, 14, 15) and idx[-1] == 1449
    assert min(idx) >= 1 and max(idx) <= B.NYU_NUM_IMAGES and list(idx) == sorted(idx)


def test_nyu_split_file_variants(tmp_path):
    from scipy.io import savemat

    savemat(tmp_path / "splits.mat", {"testNdxs": np.array([[2], [3]]), "trainNdxs": np.array([[1]])})
    assert B.load_nyu_split(tmp_path / "splits.mat") == (2, 3)
    (tmp_path / "test.txt").write_text("2\n3\n")
    assert B.load_nyu_split(tmp_path / "test.txt") == (2, 3)
    assert len(B.load_nyu_split(None)) == 654


def test_nyu_paper_normalization_and_alignments(tmp_path):
    # image 1: training (depth 1 and 3 m halves -> mean 2, std 1); images 2, 3: test
    h, w = 6, 8
    train = np.ones((h, w))
    train[:, w // 2 :] = 3.0
    gt = np.tile(np.linspace(1.0, 4.0, w), (h, 1))
    depths = np.stack([train, gt, 2.0 * gt])
    mat = tmp_path / "nyu.mat"
    _write_fake_nyu(mat, depths)
    split = tmp_path / "test.txt"
    split.write_text("2 3")
    assert B.nyu_depth_stats(mat, exclude=[2, 3]) == pytest.approx((2.0, 1.0))
    samples = list(B.iter_nyu(mat, [2], crop="none"))
    assert samples[0].key == "0002" and samples[0].depth == pytest.approx(gt)  # transposed back
    preds = tmp_path / "preds"
    preds.mkdir()
    np.save(preds / "0002.npy", 10 * gt + 5)  # positive affine of the truth
    np.save(preds / "0003.npy", 10 * gt + 5)
    doc = E.evaluate_predictions("nyu", mat, preds, split_file=split, nyu_crop="none", pairs_per_image=200)
    assert doc["settings"]["alignment"] == "paper"
    assert doc["settings"]["train_stats"] == pytest.approx([2.0, 1.0])
    # scale-and-shift alignment recovers an affine prediction exactly (up to the .mat's float32)
    assert doc["alignments"]["scale_shift"]["rms"] == pytest.approx(0.0, abs=1e-6)
    assert doc["alignments"]["scale_shift"]["delta1"] == 1.0
    # paper: standardized prediction mapped to mean 2, std 1, so image 2's linspace(1, 4) (mean 2.5,
    # std s) becomes 2 + (gt - 2.5) / s: a constant offset of -0.5 plus a scale error
    s = gt.std()
    expected = 2.0 + (gt - 2.5) / s
    rms2 = np.sqrt(np.mean((expected - gt) ** 2))
    rms3 = np.sqrt(np.mean((expected - 2 * gt) ** 2))
    assert doc["rms"] == pytest.approx((rms2 + rms3) / 2)
    assert doc["wkdr"] == doc["wkdr"]  # computed (not NaN)
    assert set(doc["baselines"]) == {"lower_is_closer", "constant"}
    # the constant baseline under the paper's normalization is the training mean, 2 m everywhere
    const_rms = (np.sqrt(np.mean((2.0 - gt) ** 2)) + np.sqrt(np.mean((2.0 - 2 * gt) ** 2))) / 2
    assert doc["baselines"]["constant"]["rms"] == pytest.approx(const_rms)


def test_nyu_eigen_crop_masks_the_border(tmp_path):
    mat = tmp_path / "nyu.mat"
    _write_fake_nyu(mat, np.full((1, 480, 640), 2.0))
    (s,) = B.iter_nyu(mat, [1], crop="eigen")
    y0, y1, x0, x1 = B.NYU_EIGEN_CROP
    assert s.mask.sum() == (y1 - y0) * (x1 - x0)
    assert not s.mask[0].any() and s.mask[y0, x0]


# --------------------------------------------------------------------------- Middlebury
def test_pfm_round_trip(tmp_path):
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    a[0, 0] = np.inf
    B.write_pfm(tmp_path / "x.pfm", a)
    assert np.array_equal(B.read_pfm(tmp_path / "x.pfm"), a)


def test_middlebury_motorcycle_ground_truth(tmp_path):
    """The real Middlebury 2014 Motorcycle disparity (scikit-image's copy): its own disparity as an
    inverse prediction is perfect; baselines are worse."""
    from PIL import Image
    from skimage.data import stereo_motorcycle

    left, _right, disp = stereo_motorcycle()
    scene = tmp_path / "Motorcycle"
    scene.mkdir()
    Image.fromarray(left).save(scene / "im0.png")
    B.write_pfm(scene / "disp0GT.pfm", disp)
    preds = tmp_path / "preds"
    preds.mkdir()
    # the disparity itself, as a 16-bit PNG (x 1000): an affine map of inverse depth
    cv2.imwrite(str(preds / "Motorcycle.png"), np.round(np.where(np.isfinite(disp), disp, 0) * 1000).astype(np.uint16))
    doc = E.evaluate_predictions("middlebury", scene, preds, inverse=True, pairs_per_image=2000,
                                 alignment="scale_shift_inverse")
    assert doc["n_images"] == 1
    assert doc["wkdr"] < 0.05
    assert doc["delta1"] > 0.999 and doc["rel"] < 0.001
    base = doc["baselines"]
    assert base["constant"]["wkdr"] > doc["wkdr"] + 0.3
    assert base["lower_is_closer"]["wkdr"] > doc["wkdr"]
    # reading the same file as depth-like (no --inverse) reverses every order; the non-negative
    # alignment refuses to flip it back, so it is no better than a constant
    wrong = E.evaluate_predictions("middlebury", scene, preds, pairs_per_image=2000)
    assert wrong["wkdr"] >= base["constant"]["wkdr"] - 1e-9


def test_middlebury_calibration_gives_metres(tmp_path):
    (tmp_path / "calib.txt").write_text("cam0=[1000 0 10; 0 1000 10; 0 0 1]\ndoffs=10\nbaseline=100\n")
    calib = B.read_middlebury_calib(tmp_path / "calib.txt")
    depth, valid = B.disparity_to_depth(np.array([[90.0, np.inf]]), calib)
    # Z = baseline * f / (d + doffs) = 100 mm * 1000 / 100 = 1000 mm = 1 m
    assert depth[0, 0] == pytest.approx(1.0) and valid.tolist() == [[True, False]]


# --------------------------------------------------------------------------- output
def test_json_and_table_carry_model_and_baselines(diw, tmp_path):
    import json

    csv_path, images, preds = diw
    doc = E.evaluate_predictions("diw", csv_path, preds, images=images)
    path = E.write_json(doc, tmp_path / "out" / "m.json")
    data = json.loads(path.read_text())
    assert data["whdr"] == 0.5 and data["baselines"]["lower_is_closer"]["whdr"] == 0.75
    table = E.format_table(doc)
    assert "lower_is_closer" in table and "constant" in table and "0.5000" in table


def test_nan_rates_become_null(dense, tmp_path):
    import json

    export, preds = dense
    doc = E.evaluate_predictions("redweb", export, preds, pairs_per_image=5)
    doc["baselines"]["constant"]["wkdr_eq"] = math.nan
    data = json.loads(E.write_json(doc, tmp_path / "m.json").read_text())
    assert data["baselines"]["constant"]["wkdr_eq"] is None


def test_image_without_valid_pixels_is_skipped(dense):
    export, preds = dense
    cv2.imwrite(str(export / "masks" / "flat.png"), np.zeros((4, 4), np.uint8))
    doc = E.evaluate_predictions("redweb", export, preds, pairs_per_image=10)
    assert doc["n_images"] == 2 and doc["n_pairs"] == 20


def test_an_empty_export_fails_with_one_line_naming_it(tmp_path):
    from model.evaluate import EmptyBenchmarkError, evaluate_benchmark

    export = tmp_path / "export"
    (export / "imgs").mkdir(parents=True)
    (export / "manifest.csv").write_text("id,split\n")
    with pytest.raises(EmptyBenchmarkError) as info:
        evaluate_benchmark("redweb", export, lambda image: image[..., 0].astype(float), baselines=False,
                           chen_tau=0.1)
    message = str(info.value)
    assert "\n" not in message and str(export) in message and "split=val" in message
