"""Datasets in the three layouts, augmentation, the synthetic export."""
from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import torch

from model.data import (
    CenterCrop,
    ExportDataset,
    HRWSIDataset,
    RandomCropFlip,
    ReDWebDataset,
    dataset_fingerprint,
    detect_layout,
    make_synthetic_export,
    open_dataset,
)
from model.networks import IMAGENET_MEAN, IMAGENET_STD
from model.sampling import ordinal_labels


def _check_schema(sample, h, w):
    assert sample["image"].shape == (3, h, w) and sample["image"].dtype == torch.float32
    assert sample["depth"].shape == (1, h, w) and sample["depth"].dtype == torch.float32
    assert sample["mask"].shape == (1, h, w) and sample["mask"].dtype == torch.bool
    assert isinstance(sample["id"], str)


def test_synthetic_export_layout_and_split(tmp_path):
    root = make_synthetic_export(tmp_path / "exp", n=8, size=(40, 56), seed=3)
    assert detect_layout(root) == "export"
    rows = list(csv.DictReader(open(root / "manifest.csv")))
    assert len(rows) == 8 and {r["split"] for r in rows} == {"train", "val"}
    assert {"id", "split", "crop_x0", "width", "height", "license"} <= set(rows[0])
    rd = cv2.imread(str(root / "RDs" / f"{rows[0]['id']}.png"), cv2.IMREAD_UNCHANGED)
    assert rd.dtype == np.uint16 and rd.shape == (40, 56)
    assert (rd == 65535).any()  # sky is stored as 65535
    assert len(ExportDataset(root, "train")) + len(ExportDataset(root, "val")) == 8
    # Reproducible from the seed.
    again = make_synthetic_export(tmp_path / "exp2", n=8, size=(40, 56), seed=3)
    assert dataset_fingerprint(root) == dataset_fingerprint(again)
    assert (cv2.imread(str(again / "RDs" / f"{rows[0]['id']}.png"), cv2.IMREAD_UNCHANGED) == rd).all()


def test_export_sample_schema_and_values(tmp_path):
    root = make_synthetic_export(tmp_path, n=2, size=32)
    ds = ExportDataset(root)
    sample = ds[0]
    _check_schema(sample, 32, 32)
    item = sample["id"]
    rd = cv2.imread(str(root / "RDs" / f"{item}.png"), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(root / "masks" / f"{item}.png"), cv2.IMREAD_UNCHANGED)
    assert torch.equal(sample["depth"][0], torch.from_numpy(rd.astype(np.float32)))
    assert torch.equal(sample["mask"][0], torch.from_numpy(mask == 255))
    rgb = cv2.cvtColor(cv2.imread(str(root / "imgs" / f"{item}.jpg")), cv2.COLOR_BGR2RGB)
    expected = (rgb[5, 7] / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    assert np.allclose(sample["image"][:, 5, 7].numpy(), expected, atol=1e-5)


def test_random_crop_flip_is_reproducible_and_consistent(tmp_path):
    root = make_synthetic_export(tmp_path, n=2, size=(48, 64))
    ds = ExportDataset(root, transform=RandomCropFlip(32))
    a, b = ds[(0, 11)], ds[(0, 11)]
    _check_schema(a, 32, 32)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["depth"], b["depth"])
    # Image, depth and mask are cropped/flipped together: find the crop in the full depth map.
    full = ExportDataset(root)[0]
    found = False
    for flip in (False, True):
        d = full["depth"][0].flip(-1) if flip else full["depth"][0]
        m = full["mask"][0].flip(-1) if flip else full["mask"][0]
        for y in range(48 - 32 + 1):
            for x in range(64 - 32 + 1):
                if torch.equal(d[y:y + 32, x:x + 32], a["depth"][0]):
                    found = found or torch.equal(m[y:y + 32, x:x + 32], a["mask"][0])
    assert found
    # Different seeds give different crops somewhere among a few draws.
    assert any(not torch.equal(ds[(0, s)]["depth"], a["depth"]) for s in range(5))


def test_small_images_are_resized_before_cropping(tmp_path):
    root = make_synthetic_export(tmp_path, n=2, size=(20, 30))
    sample = ExportDataset(root, transform=RandomCropFlip(24))[(0, 0)]
    _check_schema(sample, 24, 24)
    center = ExportDataset(root, transform=CenterCrop((24, 28)))[0]
    _check_schema(center, 24, 28)


def _write_png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), array)


def test_redweb_release_layout(tmp_path):
    for k in range(5):
        _write_png(tmp_path / "Imgs" / f"img{k}.jpg", np.full((16, 20, 3), 100, np.uint8))
        _write_png(tmp_path / "RDs" / f"img{k}.png", np.tile(np.arange(20, dtype=np.uint8) * 10, (16, 1)))
    assert detect_layout(tmp_path) == "redweb"
    ds = open_dataset(tmp_path)
    assert isinstance(ds, ReDWebDataset) and len(ds) == 5
    sample = ds[0]
    _check_schema(sample, 16, 20)
    assert sample["mask"].all()  # no masks in the release: every pixel is reliable
    assert sample["depth"][0, 0, 19] == 190.0
    train, val = ReDWebDataset(tmp_path, "train", val_fraction=0.5), ReDWebDataset(tmp_path, "val", val_fraction=0.5)
    assert sorted(train.ids + val.ids) == ds.ids


def test_hrwsi_inverts_disparity_order(tmp_path):
    disparity = np.tile(np.array([0, 10, 20, 200], np.uint8), (4, 1))  # larger = closer
    valid = np.full((4, 4), 255, np.uint8)
    valid[0, 0] = 0
    for split in ("train", "val"):
        _write_png(tmp_path / split / "imgs" / "a.jpg", np.zeros((4, 4, 3), np.uint8))
        _write_png(tmp_path / split / "gts" / "a.png", disparity)
        _write_png(tmp_path / split / "valid_masks" / "a.png", valid)
    assert detect_layout(tmp_path) == "hrwsi"
    ds = open_dataset(tmp_path, "val")
    assert isinstance(ds, HRWSIDataset) and ds.root == tmp_path / "val"
    s = ds[0]
    assert not s["mask"][0, 0, 0] and s["mask"][0, 1, 0]
    d = s["depth"][0, 0]
    # Zero disparity is farthest; then ordering is reversed: column 1 (disp 10) farther than column 3.
    assert d[0] > d[1] > d[2] > d[3] > 0
    # Labels equal the disparity ratio's with the roles swapped: 20 vs 10 -> j (disp 10) farther.
    assert ordinal_labels(d[2:3], d[1:2]).item() == -1
    assert ordinal_labels(torch.tensor([1 / 10.1]), torch.tensor([1 / 10.0])).item() == 0  # 1% apart: equal


def test_unknown_layout_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not a known dataset layout"):
        detect_layout(tmp_path)
