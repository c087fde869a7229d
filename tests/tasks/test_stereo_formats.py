"""tasks.ingest.stereo_formats on the embedded samples (real Middlebury views, ~128 px) and by hand."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.ingest.imageio import decode_image, is_jps
from tasks.ingest.samples import _CROPS, build_samples, crop_pair, load_manifest
from tasks.ingest.stereo_formats import (anaglyph_score, detect_stereo_format, extract_views, looks_like_stereo, split_regions,
                                  stereo_match_evidence, view_similarity)

MIN_SIM = 0.36  # IngestConfig.stereo_min_similarity default


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return build_samples(tmp_path_factory.getbasetemp() / "samples-128" / "samples", max_view_side=128)


def _layout(samples, name):
    path = samples / name
    image = decode_image(path, min_side=64)
    return image, detect_stereo_format(image.frames, is_jps=path.suffix == ".jps" or is_jps(path.read_bytes()),
                                       min_similarity=MIN_SIM)


FORMAT_CASES = [
    ("sbs_parallel.jpg", "side_by_side"), ("sbs_crosseyed.jpg", "side_by_side"), ("sbs_divider.png", "side_by_side"),
    ("over_under.jpg", "over_under"), ("camera.mpo", "mpo"), ("photo.jps", "jps"), ("triptych.jpg", "triptych"),
    ("anaglyph.jpg", "anaglyph"), ("mono_coffee.jpg", "mono"), ("mono_chelsea.jpg", "mono"),
    ("mono_panorama.jpg", "mono"), ("cmyk_sbs.jpg", "side_by_side"), ("sbs16.png", "side_by_side"),
    ("palette_sbs.png", "side_by_side"), ("gray_sbs.png", "side_by_side"), ("exif_rotated_sbs.jpg", "side_by_side"),
]


@pytest.mark.parametrize("name,expected", FORMAT_CASES)
def test_each_format_is_recognised(samples, name, expected):
    _image, layout = _layout(samples, name)
    assert layout.format == expected, layout.scores


def test_manifest_formats_cover_every_stereo_sample(samples):
    listed = {e["file"]: (e["expected_format"] or e["expected_reason"]) for e in load_manifest(samples)}
    for name, expected in FORMAT_CASES:
        assert listed[name] == expected
    for entry in load_manifest(samples):
        if entry["file"].startswith("pair_"):
            _image, layout = _layout(samples, entry["file"])
            assert layout.format == "side_by_side", (entry["file"], layout.scores)


def test_side_by_side_views_are_the_true_views(samples):
    lv, rv, _ = crop_pair(_CROPS["sbs_parallel"], 128)
    image, layout = _layout(samples, "sbs_parallel.jpg")
    h, w = lv.shape[:2]
    assert layout.views == {"left": [0, 0, w, h], "right": [w, 0, 2 * w, h]}
    assert (layout.swapped, layout.view_order) == (False, "undecided")
    left, right = extract_views(image.frames, layout)
    assert np.abs(left.astype(int) - lv).mean() < 6 and np.abs(right.astype(int) - rv).mean() < 6

    # cross-eyed looks the same: first region = "left" until the process stage reads the disparity sign
    image, layout = _layout(samples, "sbs_crosseyed.jpg")
    lv, rv, _ = crop_pair(_CROPS["sbs_crosseyed"], 128)
    left, _right = extract_views(image.frames, layout)
    assert layout.swapped is False and np.abs(left.astype(int) - rv).mean() < 6


def test_divider_and_border_are_cut_away(samples):
    lv, _rv, _ = crop_pair(_CROPS["sbs_divider"], 128)
    h, w = lv.shape[:2]
    bar, border = max(4, w // 25), max(3, w // 50)
    _image, layout = _layout(samples, "sbs_divider.png")
    assert layout.views["left"] == [border, border, border + w, border + h]
    assert layout.views["right"] == [border + w + bar, border, border + 2 * w + bar, border + h]


def test_over_under_mpo_jps_triptych_boxes(samples):
    lv, _rv, _ = crop_pair(_CROPS["over_under"], 128)
    h, w = lv.shape[:2]
    _image, layout = _layout(samples, "over_under.jpg")
    assert layout.views == {"left": [0, 0, w, h], "right": [0, h, w, 2 * h]}

    image, layout = _layout(samples, "camera.mpo")
    assert layout.frames == {"left": 0, "right": 1} and layout.view_order == "mpo" and not layout.swapped
    left, right = extract_views(image.frames, layout)
    assert left.shape == right.shape == image.frames[0].shape

    lv, _rv, _ = crop_pair(_CROPS["jps"], 128)
    h, w = lv.shape[:2]
    image, layout = _layout(samples, "photo.jps")
    assert layout.swapped and layout.view_order == "jps"
    assert layout.views == {"left": [w, 0, 2 * w, h], "right": [0, 0, w, h]}  # left eye = second half
    left, _ = extract_views(image.frames, layout)
    assert np.abs(left.astype(int) - lv).mean() < 6

    lv, _rv, _ = crop_pair(_CROPS["triptych"], 128)
    h, w = lv.shape[:2]
    _image, layout = _layout(samples, "triptych.jpg")
    assert layout.views == {"left": [0, 0, w, h], "right": [w, 0, 2 * w, h]}  # the real (left, center) pair
    assert min(layout.scores["triptych_pairs"]) >= MIN_SIM


def test_exif_rotated_boxes_are_in_upright_pixels(samples):
    lv, _rv, _ = crop_pair(_CROPS["exif_rotated_sbs"], 128)
    h, w = lv.shape[:2]
    image, layout = _layout(samples, "exif_rotated_sbs.jpg")
    assert (image.width, image.height) == (2 * w, h) and image.orientation == 6
    assert layout.views["right"] == [w, 0, 2 * w, h]


def test_similarity_and_anaglyph_scores_by_hand():
    lv, rv, _ = crop_pair(_CROPS["pair_03"], 128)
    assert view_similarity(lv, lv) > 0.99
    shifted = np.roll(lv, 6, axis=1)
    assert view_similarity(lv, shifted) > 0.95  # a pure horizontal shift is what disparity looks like
    assert view_similarity(lv, rv) >= MIN_SIM
    other, _, _ = crop_pair(_CROPS["pair_02"], 128)
    assert view_similarity(lv, other) < MIN_SIM
    assert view_similarity(np.full((50, 80, 3), 128, np.uint8), np.full((50, 80, 3), 128, np.uint8)) == 0.0
    grey = np.repeat(lv[..., :1], 3, axis=2)
    assert anaglyph_score(grey) == pytest.approx(0.0, abs=1e-6)  # identical channels: nothing disagrees
    assert anaglyph_score(np.dstack([lv[..., 0], rv[..., 1], rv[..., 2]])) > 0.45
    assert anaglyph_score(lv) < 0.3


def test_split_regions_finds_off_centre_divider():
    rng = np.random.default_rng(0)
    gray = rng.uniform(0, 255, (60, 203)).astype(np.float32)
    gray[:, 96:107] = 255.0  # an 11 px divider left of centre (101)
    assert split_regions(gray, 1, 2) == [(0, 96), (107, 203)]
    assert split_regions(rng.uniform(0, 255, (60, 200)).astype(np.float32), 1, 2) == [(0, 100), (100, 200)]


def test_anaglyph_split_gives_usable_disparity(samples):
    """Split mode: red = left, cyan = right. DIS on those grey views must find the GT disparity on
    the pixels that pass the left-right consistency check about as well as on the true grey pair."""
    from tasks.labels.consistency import consistency_mask
    from tasks.labels.correspondence import DisBackend, bidirectional_flow
    from tasks.ingest.stereo_formats import anaglyph_views

    image, _ = _layout(samples, "anaglyph.jpg")
    layout = detect_stereo_format(image.frames, min_similarity=MIN_SIM, split_anaglyph=True)
    assert layout.format == "anaglyph" and layout.is_stereo and layout.view_order == "undecided"
    left, right = extract_views(image.frames, layout)
    assert np.array_equal(left[..., 0], image.rgb[..., 0]) and np.array_equal(left[..., 1], left[..., 2])

    lv, rv, gt = crop_pair(_CROPS["anaglyph"], 320)
    backend = DisBackend()

    def bad3(a, b):
        fwd, bwd = bidirectional_flow(backend, a, b)
        ok = consistency_mask(fwd, bwd) & np.isfinite(gt)
        return float((np.abs(-fwd[..., 0] - gt)[ok] > 3).mean()), float(ok.mean())

    bad_ana, cover_ana = bad3(*anaglyph_views(np.dstack([lv[..., 0], rv[..., 1], rv[..., 2]])))
    bad_true, cover_true = bad3(lv, rv)
    assert bad_ana < max(0.12, 1.5 * bad_true) and cover_ana > 0.4, (bad_ana, cover_ana, bad_true, cover_true)


# ---- the keypoint test (stereo_match_evidence / looks_like_stereo) ---------------------------------
def _shifted_side_by_side(fraction: float, direction: str, width: int = 370) -> tuple[np.ndarray, int]:
    """The motorcycle views (disparities ~4..30 px at 370 px) with one view's content shifted by
    ``fraction`` of the width more: "converged" (disparities d - shift, as a toed-in or
    pre-converged camera) or "diverged" (d + shift); the views are cropped, not rolled, so each
    shows a real part of the scene the other does not. Returns the packed image and the view width."""
    from tests.tasks.stereo_scenes import motorcycle

    left, right, _ = motorcycle(width)
    s = int(round(fraction * left.shape[1]))
    if direction == "converged":
        left, right = left[:, s:], right[:, : right.shape[1] - s]
    else:
        left, right = left[:, : left.shape[1] - s], right[:, s:]
    return np.hstack([left, right]), left.shape[1]


@pytest.mark.parametrize("fraction,direction", [(0.20, "converged"), (0.12, "diverged")])
def test_wide_range_side_by_side_is_found_by_keypoints(fraction, direction):
    image, vw = _shifted_side_by_side(fraction, direction)
    h = image.shape[0]
    assert view_similarity(image[:, :vw], image[:, vw:]) < MIN_SIM  # one global shift cannot align it
    layout = detect_stereo_format([image], min_similarity=MIN_SIM)
    assert layout.format == "side_by_side", layout.scores
    assert layout.views == {"left": [0, 0, vw, h], "right": [vw, 0, 2 * vw, h]}
    ev = layout.scores["side_by_side_keypoints"]
    assert ev["inliers"] >= 100 and ev["inlier_share"] > 0.9 and ev["dx_spread"] > 10 and abs(ev["dy"]) < 1
    # without the keypoint test the same image is thrown away as mono
    assert detect_stereo_format([image], min_similarity=MIN_SIM, use_keypoints=False).format == "mono"


def test_diverged_side_by_side_is_not_taken_for_a_triptych():
    """It scores >= min_similarity as a triptych (pairs 0.45 / 0.37); keypoints pick the side-by-side."""
    image, _ = _shifted_side_by_side(0.15, "diverged")
    assert detect_stereo_format([image], min_similarity=MIN_SIM).format == "side_by_side"


def _smooth_texture(h: int, w: int, seed: int) -> np.ndarray:
    from tests.tasks.stereo_scenes import texture

    return texture(h, w, seed)


def test_tiled_texture_halves_are_not_stereo():
    """A seamless texture tiled twice: its halves match everywhere, all with one offset (no depth)."""
    tile = _smooth_texture(240, 200, 3)
    tiled = np.tile(tile, (1, 2, 1))
    ev = stereo_match_evidence(tiled[:, :200], tiled[:, 200:])
    assert ev["matches"] > 200 and ev["inlier_share"] > 0.95  # many matches ...
    assert ev["dx_spread"] < 1.5 and not looks_like_stereo(ev)  # ... but no spread of offsets
    # a texture seen twice with a global shift (no depth either): one offset, not stereo
    wide = _smooth_texture(240, 640, 5)
    ev = stereo_match_evidence(wide[:, :300], wide[:, 23:323])
    assert ev["inliers"] > 200 and ev["dx_spread"] < 1.5 and not looks_like_stereo(ev)
    # and real stereo passes the same test
    from tests.tasks.stereo_scenes import motorcycle

    left, right, _ = motorcycle(370)
    assert looks_like_stereo(stereo_match_evidence(left, right))


def test_periodic_texture_off_its_period_is_mono():
    """Matches a period apart form separate clusters of offsets: the spread is taken in the largest."""
    image = np.tile(_smooth_texture(240, 200, 3), (1, 3, 1))[:, :500]
    assert detect_stereo_format([image], min_similarity=MIN_SIM).format == "mono"


MONO_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "brick", "grass", "gravel", "coins",
               "page"]


@pytest.mark.parametrize("name", MONO_PHOTOS)
def test_skimage_mono_photos_stay_mono_with_the_keypoint_test(name):
    from skimage import data

    image = getattr(data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    layout = detect_stereo_format([np.ascontiguousarray(image[..., :3])], min_similarity=MIN_SIM)
    assert layout.format == "mono", layout.scores
    # the keypoint test was consulted (no layout reached min_similarity) and refused every candidate
    for fmt in ("side_by_side", "over_under"):
        assert not looks_like_stereo(layout.scores[f"{fmt}_keypoints"])
