"""Dataset export: layout and manifest of DESIGN.md, redweb8, deterministic split, incremental re-export."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from tasks.catalog.catalog import Catalog
from tasks.publish.export import (
    HEAD_COLUMNS,
    STATE_FILE,
    TAIL_COLUMNS,
    ExportError,
    depth_to_redweb8,
    export_dataset,
    split_for,
)
from tests.review_ui.maps import make_processed


def read_manifest(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def decide(catalog: Catalog, item_id: str, state: str, reviewer: str = "alice", reason: str | None = None) -> None:
    from datetime import datetime, timezone

    catalog.transition(item_id, state, reason=reason, actor=reviewer, reviewer=reviewer,
                       decided_at=datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc))


@pytest.fixture
def setup(catalog, tmp_path):
    root = tmp_path / "data"
    ids = make_processed(catalog, root, 6)
    for i in ids[:3]:
        decide(catalog, i, "accepted")
    decide(catalog, ids[3], "rejected", reason="sky_leak")
    return catalog, root, ids


def test_export_writes_exactly_accepted_items_with_manifest(setup, tmp_path):
    catalog, root, ids = setup
    out = tmp_path / "export"
    result = export_dataset(catalog, root, out)
    assert sorted(result.written) == sorted(ids[:3]) and result.total == 3
    for sub, ext in (("imgs", ".jpg"), ("RDs", ".png"), ("masks", ".png")):
        assert sorted(p.name for p in (out / sub).iterdir()) == sorted(f"{i}{ext}" for i in ids[:3])
    rows = read_manifest(out)
    header = list(rows[0])
    assert header[: len(HEAD_COLUMNS)] == list(HEAD_COLUMNS) and header[-2:] == list(TAIL_COLUMNS)
    assert header[len(HEAD_COLUMNS):-2] == ["score", "lr_consistency", "sky_fraction", "valid_fraction"]
    by_id = {r["id"]: r for r in rows}
    assert sorted(by_id) == sorted(ids[:3])
    for item in catalog.items(ids[:3]):
        r = by_id[item.id]
        assert r["state"] == "accepted" and r["source"] == "local" and r["source_id"] == item.source_id
        assert (r["url"], r["owner"], r["license"]) == (item.url, item.owner, "CC BY 2.0")
        assert r["stereo_format"] == "side_by_side" and r["swapped"] == ("true" if item.swapped else "false")
        assert [int(r[k]) for k in ("crop_x0", "crop_y0", "crop_x1", "crop_y1")] == [5, 4, 101, 68]
        assert (int(r["width"]), int(r["height"])) == (96, 64)
        assert float(r["score"]) == pytest.approx(item.score) and float(r["valid_fraction"]) == 0.875
        assert r["reviewer"] == "alice" and r["decided_at"] == "2026-03-04T05:06:07+00:00"
        assert r["split"] == split_for(item.id, 0.1)
        # imgs: the processed left image, byte for byte (no second JPEG encode)
        assert (out / "imgs" / f"{item.id}.jpg").read_bytes() == (root / item.image_path).read_bytes()
        rd = cv2.imread(str(out / "RDs" / f"{item.id}.png"), cv2.IMREAD_UNCHANGED)
        src = cv2.imread(str(root / item.depth_path), cv2.IMREAD_UNCHANGED)
        assert rd.dtype == np.uint16 and rd.shape == (64, 96) and np.array_equal(rd, src)
        assert (rd[:16] == 65535).all() and rd[63, 0] < rd[20, 0]  # sky; larger = farther (top is farther)
        mask = cv2.imread(str(out / "masks" / f"{item.id}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) == {0, 255} and (mask[:, :12] == 0).all()


def test_other_states_selectable(setup, tmp_path):
    catalog, root, ids = setup
    out = tmp_path / "export"
    result = export_dataset(catalog, root, out, states=["accepted", "pending_review"])
    assert sorted(r["id"] for r in read_manifest(out)) == sorted(ids[:3] + ids[4:])
    assert {r["state"] for r in read_manifest(out)} == {"accepted", "pending_review"} and result.total == 5


def test_redweb8_matches_hand_values(setup, tmp_path):
    d = np.array([[65535, 1000], [1500, 2000]], np.uint16)
    # non-sky 1000..2000 -> 0..254 linearly; sky -> 255
    assert depth_to_redweb8(d).tolist() == [[255, 0], [127, 254]]
    assert depth_to_redweb8(np.full((2, 2), 65535, np.uint16)).tolist() == [[255, 255], [255, 255]]
    assert depth_to_redweb8(np.full((1, 2), 7, np.uint16)).tolist() == [[0, 0]]
    catalog, root, ids = setup
    out = tmp_path / "export8"
    export_dataset(catalog, root, out, fmt="redweb8")
    rd = cv2.imread(str(out / "RDs" / f"{ids[0]}.png"), cv2.IMREAD_UNCHANGED)
    assert rd.dtype == np.uint8 and rd.ndim == 2 and (rd[:16] == 255).all()
    assert rd[16:].max() == 254 and rd[16:].min() == 0


def test_split_is_deterministic_by_id():
    ids = [f"{i:016x}" for i in range(4000)]
    splits = [split_for(i, 0.1) for i in ids]
    assert splits == [split_for(i, 0.1) for i in ids]
    assert 0.08 < splits.count("val") / len(ids) < 0.12
    assert {split_for(i, 0.0) for i in ids} == {"train"} and {split_for(i, 1.0) for i in ids} == {"val"}


def test_reexport_updates_only_what_changed(setup, tmp_path):
    catalog, root, ids = setup
    out = tmp_path / "export"
    export_dataset(catalog, root, out)
    mtimes = {i: (out / "RDs" / f"{i}.png").stat().st_mtime_ns for i in ids[:3]}
    again = export_dataset(catalog, root, out)
    assert sorted(again.unchanged) == sorted(ids[:3]) and not again.written and not again.manifest_changed
    # change: ids[0]'s depth is re-processed, ids[1] is overridden to rejected, ids[4] accepted
    depth_file = root / catalog.get(ids[0]).depth_path
    depth = cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(depth_file), (depth // 2) | (depth == 65535) * 65535)
    os.utime(depth_file, ns=(1, 10**18))  # make sure the mtime differs even on coarse file systems
    decide(catalog, ids[1], "rejected", reviewer="bob", reason="noisy_map")
    decide(catalog, ids[4], "accepted", reviewer="bob")
    third = export_dataset(catalog, root, out)
    assert sorted(third.written) == sorted([ids[0], ids[4]]) and third.unchanged == [ids[2]]
    assert third.removed == [ids[1]] and third.manifest_changed
    assert not any((out / d / f"{ids[1]}{e}").exists() for d, e in (("imgs", ".jpg"), ("RDs", ".png"), ("masks", ".png")))
    assert (out / "RDs" / f"{ids[2]}.png").stat().st_mtime_ns == mtimes[ids[2]]
    assert sorted(r["id"] for r in read_manifest(out)) == sorted([ids[0], ids[2], ids[4]])
    assert np.array_equal(cv2.imread(str(out / "RDs" / f"{ids[0]}.png"), cv2.IMREAD_UNCHANGED),
                          cv2.imread(str(depth_file), cv2.IMREAD_UNCHANGED))


def test_crash_midway_leaves_a_consistent_export(setup, tmp_path, monkeypatch):
    catalog, root, ids = setup
    out = tmp_path / "export"
    export_dataset(catalog, root, out)
    before = read_manifest(out)
    decide(catalog, ids[4], "accepted")
    decide(catalog, ids[0], "rejected", reason="other")
    import tasks.publish.export as ex

    real = ex._write_item

    def crash(item, *a, **k):
        if item.id == ids[4]:
            raise KeyboardInterrupt("power cut")
        return real(item, *a, **k)

    monkeypatch.setattr(ex, "_write_item", crash)
    with pytest.raises(KeyboardInterrupt):
        export_dataset(catalog, root, out)
    rows = read_manifest(out)
    assert rows == before  # old manifest still in place ...
    for r in rows:  # ... and every file it names exists
        for d, e in (("imgs", ".jpg"), ("RDs", ".png"), ("masks", ".png")):
            assert (out / d / f"{r['id']}{e}").is_file()
    monkeypatch.setattr(ex, "_write_item", real)
    export_dataset(catalog, root, out)
    assert sorted(r["id"] for r in read_manifest(out)) == sorted([ids[1], ids[2], ids[4]])
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_missing_files_are_skipped_or_raise(setup, tmp_path):
    catalog, root, ids = setup
    (root / catalog.get(ids[2]).mask_path).unlink()
    result = export_dataset(catalog, root, tmp_path / "e1")
    assert list(result.skipped) == [ids[2]] and result.total == 2
    assert ids[2] not in {r["id"] for r in read_manifest(tmp_path / "e1")}
    with pytest.raises(ExportError):
        export_dataset(catalog, root, tmp_path / "e2", strict=True)
    catalog.update(ids[1], image_path="../../etc/passwd")  # never read outside the data root
    assert ids[1] in export_dataset(catalog, root, tmp_path / "e3").skipped


def test_max_side_resizes_all_three_consistently(setup, tmp_path):
    catalog, root, _ = setup
    out = tmp_path / "small"
    export_dataset(catalog, root, out, max_side=48)
    row = read_manifest(out)[0]
    assert (int(row["width"]), int(row["height"])) == (48, 32)
    for d, e in (("imgs", ".jpg"), ("RDs", ".png"), ("masks", ".png")):
        assert cv2.imread(str(out / d / f"{row['id']}{e}"), cv2.IMREAD_UNCHANGED).shape[:2] == (32, 48)
    rd = cv2.imread(str(out / "RDs" / f"{row['id']}.png"), cv2.IMREAD_UNCHANGED)
    assert (rd[:8] == 65535).all()  # nearest-neighbour keeps sky exact
    assert STATE_FILE in os.listdir(out)
