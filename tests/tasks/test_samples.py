"""tasks.ingest.samples: the embedded sample set is complete, deterministic, offline, and its GT is aligned."""
from __future__ import annotations

import numpy as np
import pytest

from tasks.ingest.dedup import hamming, phash64
from tasks.ingest.samples import _CROPS, build_samples, crop_pair, expected_status, load_manifest


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return build_samples(tmp_path_factory.getbasetemp() / "samples-128" / "samples", max_view_side=128)


def test_manifest_lists_every_file_and_outcome(samples):
    entries = load_manifest(samples)
    files = {e["file"] for e in entries}
    assert len(files) == len(entries)
    for e in entries:
        assert (samples / e["file"]).is_file()
        assert e["expected_state"] in {"split", "rejected", "failed"}
        assert (e["expected_state"] == "split") == (e["expected_format"] is not None)
        assert (e["expected_state"] == "split") != (e["expected_reason"] is not None)
        if e["duplicate_of"]:
            assert e["duplicate_of"] in files
    reasons = {e["expected_reason"] for e in entries}
    assert {"anaglyph", "mono", "duplicate", "near_duplicate", "empty_file", "truncated", "not_image", "too_large",
            "too_small", "corrupt"} <= reasons
    formats = {e["expected_format"] for e in entries}
    assert {"side_by_side", "over_under", "mpo", "jps", "triptych"} <= formats
    status = expected_status(samples)
    assert status["total"] == len(entries) and sum(status["states"].values()) == len(entries)
    assert (samples / "README.txt").read_text().count("\n") > len(entries)
    assert (samples / "empty.jpg").stat().st_size == 0
    assert (samples / "bomb.png").stat().st_size < 1024
    assert (samples / "sbs_parallel_copy.jpg").read_bytes() == (samples / "sbs_parallel.jpg").read_bytes()


def test_build_is_reused_and_rebuilt_when_params_change(samples, tmp_path):
    stamp = (samples / "manifest.json").stat().st_mtime_ns
    assert build_samples(samples, max_view_side=128) == samples
    assert (samples / "manifest.json").stat().st_mtime_ns == stamp
    other = build_samples(tmp_path / "small", max_view_side=100)
    assert load_manifest(other)[0]["file"] == "sbs_parallel.jpg"


def test_distinct_stereo_pairs_are_far_apart_in_phash():
    # every stereo sample's left view must be far from every other's, or dedup would eat them
    hashes = {name: phash64(crop_pair(crop, 128)[0]) for name, crop in _CROPS.items() if name != "anaglyph"}
    names = sorted(hashes)
    closest = min(hamming(hashes[a], hashes[b]) for i, a in enumerate(names) for b in names[i + 1:])
    assert closest >= 16


def test_gt_disparity_aligns_the_views(samples):
    """Warping the right view by the stored GT disparity must reproduce the left view much better
    than no warp does: the GT belongs to this crop at this scale."""
    entry = next(e for e in load_manifest(samples) if e["file"] == "pair_04.png")
    disp = np.load(samples / entry["gt_disparity"])
    left, right, _ = crop_pair(_CROPS["pair_04"], 128)
    assert disp.shape == left.shape[:2] and np.nanmax(disp) > 3
    h, w = disp.shape
    xs = np.arange(w)[None, :] - np.nan_to_num(disp, nan=0.0)
    xi = np.clip(np.rint(xs).astype(int), 0, w - 1)
    warped = right[np.arange(h)[:, None], xi]
    valid = np.isfinite(disp) & (xs >= 0)
    err_gt = np.abs(warped.astype(int) - left)[valid].mean()
    err_none = np.abs(right.astype(int) - left)[valid].mean()
    assert err_gt < 0.5 * err_none, (err_gt, err_none)
    mirrored = [e for e in load_manifest(samples) if e["mirrored"]]
    assert mirrored and all(e["gt_disparity"] is None for e in mirrored)
