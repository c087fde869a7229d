"""GT scene readers: the motorcycle written in each official layout reads back to the same
disparity (NaN where unknown), and unreadable folders fail with a message naming what is wrong."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tasks.audit.scenes import SceneError, detect_layout, read_pfm, read_scene_folder, read_scenes
from tests.tasks.gt_layouts import (motorcycle, write_all_layouts, write_eth3d, write_generic, write_kitti,
                                    write_legacy, write_middlebury2014, write_pfm, write_png)

WIDTH = 160


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict:
    return write_all_layouts(tmp_path_factory.mktemp("layouts"), WIDTH)


def assert_same_disparity(got: np.ndarray, expected: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    known = ~np.isnan(expected)
    np.testing.assert_allclose(got[known], expected[known], rtol=0, atol=1e-5)


@pytest.mark.parametrize("layout, reported", [("middlebury2014", "middlebury2014"), ("eth3d", "eth3d"),
                                              ("kitti2015", "kitti"), ("kitti2012", "kitti"),
                                              ("generic", "generic"), ("legacy", "middlebury_legacy")])
def test_each_layout_reads_back_the_motorcycle(layouts, layout, reported):
    folder, expected = layouts[layout]
    left, right, disp = motorcycle(WIDTH)
    scenes = read_scene_folder(folder, legacy_scale=4)
    assert len(scenes) == len(expected)
    for scene, exp in zip(scenes, expected):
        assert scene.layout == reported
        assert scene.left.dtype == np.uint8 and scene.left.shape == left.shape
        assert_same_disparity(scene.disparity, exp)
    first = scenes[0]
    np.testing.assert_array_equal(first.left, left)  # PNG is lossless: the views come back exactly
    np.testing.assert_array_equal(first.right, right)
    # whatever the encoding, the disparity is the motorcycle's (unknown where it has none)
    known = np.isfinite(disp)
    assert np.isnan(first.disparity[~known]).all()
    tol = {"legacy": 0.5 / 4, "kitti2015": 0.5 / 256, "kitti2012": 0.5 / 256, "generic": 0.5 / 64}.get(layout, 0)
    assert np.abs(first.disparity[known] - disp[known]).max() <= tol + 1e-6


def test_pfm_rows_are_bottom_up_and_inf_is_unknown(tmp_path):
    disp = np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 6.0]], np.float32)
    write_pfm(tmp_path / "d.pfm", disp)
    raw = read_pfm(tmp_path / "d.pfm")
    assert raw[0].tolist() == [1.0, 2.0, 3.0] and raw[1, 0] == 4.0 and np.isinf(raw[1, 1])
    # big-endian (positive scale) too
    (tmp_path / "b.pfm").write_bytes(b"Pf\n3 2\n1.0\n" + disp[::-1].astype(">f4").tobytes())
    np.testing.assert_array_equal(read_pfm(tmp_path / "b.pfm"), disp)


def test_kitti_names_scenes_per_frame_and_max_frames(layouts):
    folder, _ = layouts["kitti2015"]
    scenes = read_scene_folder(folder)
    assert [s.name for s in scenes] == ["kitti2015_000000_10", "kitti2015_000001_10"]
    assert len(read_scene_folder(folder, max_frames=1)) == 1


def test_folder_of_folders_reads_every_layout_and_skips_folders_without_gt(layouts, tmp_path):
    root = next(iter(layouts.values()))[0].parent
    (root / "web_photo").mkdir(exist_ok=True)  # ../shared/stereo also holds web photos without GT
    (root / "web_photo" / "photo.jpg").write_bytes(b"not looked at")
    scenes = read_scenes(root, legacy_scale=4)
    assert len(scenes) == 7  # 6 folders, KITTI 2015 with two frames
    assert {s.layout for s in scenes} == {"middlebury2014", "eth3d", "kitti", "generic", "middlebury_legacy"}
    assert len(read_scenes(root, legacy_scale=4, max_frames=1)) == 6


def test_eth3d_and_middlebury_told_apart_by_calib(layouts):
    assert read_scene_folder(layouts["eth3d"][0])[0].layout == "eth3d"
    assert read_scene_folder(layouts["middlebury2014"][0])[0].layout == "middlebury2014"


# ---- errors: each names the folder or file and says what is wrong ----------------------------------
def small():
    left, right, disp = motorcycle(64)
    return left, right, disp


def test_folder_with_no_known_layout(tmp_path):
    folder = tmp_path / "holiday"
    folder.mkdir()
    (folder / "IMG_0001.jpg").write_bytes(b"x")
    with pytest.raises(SceneError, match=r"holiday: no known scene layout.*im0\.png.*IMG_0001\.jpg"):
        read_scene_folder(folder)
    with pytest.raises(SceneError, match=r"neither a scene folder nor a folder of scene folders"):
        read_scenes(tmp_path)
    with pytest.raises(SceneError, match=r"nowhere: no such folder"):
        read_scenes(tmp_path / "nowhere")


def test_corrupt_pfm(tmp_path):
    write_middlebury2014(tmp_path / "s", *small())
    (tmp_path / "s" / "disp0GT.pfm").write_bytes(b"P6\n64 43\n255\n" + bytes(100))
    with pytest.raises(SceneError, match=r"disp0GT\.pfm: not a PFM file"):
        read_scenes(tmp_path / "s")
    (tmp_path / "s" / "disp0GT.pfm").write_bytes(b"Pf\nsixty four\n-1.0\n" + bytes(100))
    with pytest.raises(SceneError, match=r"disp0GT\.pfm: cannot decode PFM"):
        read_scenes(tmp_path / "s")


def test_truncated_pfm(tmp_path):
    write_eth3d(tmp_path / "s", *small())
    pfm = tmp_path / "s" / "disp0GT.pfm"
    pfm.write_bytes(pfm.read_bytes()[:-400])
    with pytest.raises(SceneError, match=r"disp0GT\.pfm: PFM truncated \(\d+ of \d+ values\)"):
        read_scene_folder(tmp_path / "s")


@pytest.mark.parametrize("writer, missing", [(write_middlebury2014, "im1.png"), (write_generic, "right.png"),
                                             (write_legacy, "view5.png")])
def test_missing_right_image(tmp_path, writer, missing):
    folder = tmp_path / "s"
    writer(folder, *small())
    (folder / missing).unlink()
    stem = missing.split(".")[0]
    with pytest.raises(SceneError, match=rf"s: .*no {stem}|s/{stem}\.png: missing"):
        read_scene_folder(folder, legacy_scale=4)
    with pytest.raises(SceneError, match=rf"s: .*no {stem}|s/{stem}\.png: missing"):
        read_scenes(folder, legacy_scale=4)
    # in a folder of scene folders it is an error too, not a silently skipped folder
    with pytest.raises(SceneError, match=missing.split(".")[0]):
        read_scenes(tmp_path, legacy_scale=4)


def test_missing_kitti_right_frame(tmp_path):
    write_kitti(tmp_path / "k", [small()])
    (tmp_path / "k" / "image_3" / "000000_10.png").unlink()
    with pytest.raises(SceneError, match=r"image_3/000000_10\.png: missing"):
        read_scene_folder(tmp_path / "k")


def test_kitti_disparity_must_be_16_bit(tmp_path):
    write_kitti(tmp_path / "k", [small()])
    write_png(tmp_path / "k" / "disp_occ_0" / "000000_10.png", np.full((43, 64), 7, np.uint8))
    with pytest.raises(SceneError, match=r"000000_10\.png: KITTI disparity must be a 16-bit PNG"):
        read_scene_folder(tmp_path / "k")


def test_legacy_folder_needs_the_scale(tmp_path):
    write_legacy(tmp_path / "art", *small())
    with pytest.raises(SceneError, match=r"art: a Middlebury 2001-2006 folder .*--legacy-scale"):
        read_scene_folder(tmp_path / "art")


def test_size_mismatch(tmp_path):
    left, right, disp = small()
    write_generic(tmp_path / "g", left, right[:, :-3], disp)
    with pytest.raises(SceneError, match=r"g: sizes differ: left \(43, 64\), right \(43, 61\), GT \(43, 64\)"):
        read_scene_folder(tmp_path / "g")


def test_undecodable_image_and_bad_gt_json(tmp_path):
    write_generic(tmp_path / "g", *small())
    (tmp_path / "g" / "left.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(SceneError, match=r"left\.png: cannot decode image"):
        read_scene_folder(tmp_path / "g")
    (tmp_path / "g" / "gt.json").write_text(json.dumps({"file": "disp.png"}))
    with pytest.raises(SceneError, match=r"gt\.json: missing 'divide_by'"):
        read_scene_folder(tmp_path / "g")


def test_detect_layout(layouts, tmp_path):
    assert detect_layout(Path(tmp_path)) is None
    assert detect_layout(layouts["kitti2012"][0]) == "kitti"
    assert detect_layout(layouts["legacy"][0]) == "middlebury_legacy"


def test_generic_with_a_pfm_gt_and_inf_unknown(tmp_path):
    left, right, disp = small()
    write_generic(tmp_path / "g", left, right, disp)
    write_pfm(tmp_path / "g" / "disp.pfm", disp * 2)  # stored doubled, decoded by divide_by
    (tmp_path / "g" / "gt.json").write_text(json.dumps({"file": "disp.pfm", "divide_by": 2, "invalid": "inf"}))
    assert_same_disparity(read_scene_folder(tmp_path / "g")[0].disparity, disp)


def test_legacy_im2_im6_disp2_names(tmp_path):
    left, right, disp = small()
    expected = write_legacy(tmp_path / "teddy", left, right, disp, scale=4)
    for old, new in (("view1", "im2"), ("view5", "im6"), ("disp1", "disp2")):
        (tmp_path / "teddy" / f"{old}.png").rename(tmp_path / "teddy" / f"{new}.png")
    (scene,) = read_scene_folder(tmp_path / "teddy", legacy_scale=4)
    assert scene.layout == "middlebury_legacy"
    assert_same_disparity(scene.disparity, expected)
