"""tasks.ingest.run end to end on the embedded samples, local folders and URL lists (SQLite + PostgreSQL)."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.catalog.catalog import State, item_id_for
from tasks.ingest.run import ingest, parse_source
from tasks.ingest.samples import build_samples, expected_status, load_manifest

SIDE = 128  # sample views at most 128 px: fast, still real content


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    return build_samples(tmp_path_factory.getbasetemp() / "samples-128" / "samples", max_view_side=128)


@pytest.fixture
def root(tmp_path, sample_dir) -> Path:
    root = tmp_path / "data"
    shutil.copytree(sample_dir, root / "samples")  # build_samples reuses it: same params
    return root


def _event_count(catalog) -> int:
    return sum(len(catalog.events(i)) for i in catalog.ids())


def test_samples_reach_the_manifest_outcomes(catalog, root):
    result = ingest(catalog, "samples", data_root=root, samples_max_view_side=SIDE)
    expected = expected_status(root / "samples")
    assert catalog.status().as_dict() == expected
    assert result == expected["states"]
    for entry in load_manifest(root / "samples"):
        item = catalog.get(item_id_for("samples", entry["file"]))
        assert (item.state, item.reason) == (entry["expected_state"], entry["expected_reason"]), entry["file"]
        if entry["expected_state"] == "failed":
            assert item.reason_detail  # says what went wrong
            continue
        assert item.raw_path == f"raw/{item.id}{Path(entry['file']).suffix}"
        assert (root / item.raw_path).read_bytes() == (root / "samples" / entry["file"]).read_bytes()
        assert len(item.content_sha256) == 64 and item.file_bytes > 0 and item.raw_width > 0
        if entry["expected_state"] != "split":
            continue
        # the ingest -> process contract
        assert item.stereo_format == entry["expected_format"]
        left = np.asarray(Image.open(root / item.left_path))
        right = np.asarray(Image.open(root / item.right_path))
        assert left.shape == right.shape == (item.view_height, item.view_width, 3) and left.dtype == np.uint8
        assert item.left_path == f"pairs/{item.id}/left.png" and len(item.phash) == 16
        boxes = item.info["views"]
        for box in boxes.values():
            assert box[2] - box[0] == item.view_width and box[3] - box[1] == item.view_height
            assert 0 <= box[0] < box[2] <= item.raw_width and 0 <= box[1] < box[3] <= item.raw_height
        expected_order = {"mpo": (False, "mpo"), "jps": (True, "jps")}.get(item.stereo_format, (False, "undecided"))
        assert (item.swapped, item.view_order) == expected_order
        assert "format_scores" in item.info and item.info["decode"]["format"]


def test_rerun_creates_no_rows_and_no_events(catalog, root):
    ingest(catalog, "samples", data_root=root, samples_max_view_side=SIDE)
    before = (catalog.status().as_dict(), _event_count(catalog))
    again = ingest(catalog, "samples", data_root=root, samples_max_view_side=SIDE)
    assert (catalog.status().as_dict(), _event_count(catalog)) == before
    assert again == before[0]["states"]


def test_limit_and_resume(catalog, root):
    first = ingest(catalog, "samples", data_root=root, limit=5, samples_max_view_side=SIDE)
    assert sum(first.values()) == 5 and catalog.status().total == 5
    ingest(catalog, "samples", data_root=root, samples_max_view_side=SIDE)
    assert catalog.status().as_dict() == expected_status(root / "samples")


def test_local_folder_source(catalog, tmp_path, sample_dir):
    folder = tmp_path / "photos"
    (folder / "trip" / "day1").mkdir(parents=True)
    (folder / ".hidden").mkdir()
    shutil.copy(sample_dir / "sbs_parallel.jpg", folder / "trip" / "day1" / "A.JPG")  # upper-case extension
    shutil.copy(sample_dir / "camera.mpo", folder / "cam.mpo")
    shutil.copy(sample_dir / "mono_coffee.jpg", folder / "trip" / "coffee.jpeg")
    shutil.copy(sample_dir / "pair_03.png", folder / ".hidden" / "x.png")  # hidden: skipped
    (folder / "notes.txt").write_text("not an image extension: skipped")
    (folder / "broken.png").write_bytes(b"")
    root = tmp_path / "data"
    result = ingest(catalog, f"local:{folder}", data_root=root)
    assert result == {"split": 2, "rejected": 1, "failed": 1}
    by_sid = {i.source_id: i for i in catalog.items(catalog.ids(source="local"))}
    assert sorted(by_sid) == ["broken.png", "cam.mpo", "trip/coffee.jpeg", "trip/day1/A.JPG"]
    assert by_sid["trip/day1/A.JPG"].stereo_format == "side_by_side"
    assert by_sid["trip/day1/A.JPG"].url == (folder / "trip" / "day1" / "A.JPG").resolve().as_uri()
    assert by_sid["cam.mpo"].stereo_format == "mpo"
    assert (by_sid["trip/coffee.jpeg"].reason, by_sid["broken.png"].reason) == ("mono", "empty_file")


def test_vanished_file_is_recorded_and_the_run_goes_on(catalog, tmp_path, sample_dir):
    from tasks.ingest.run import fetch_items, register_source

    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("pair_01.png", "pair_02.png"):
        shutil.copy(sample_dir / name, folder / name)
    root = tmp_path / "data"
    ids = register_source(catalog, f"local:{folder}", data_root=root)
    (folder / "pair_01.png").unlink()  # gone between listing and copying
    counts = fetch_items(catalog, ids, data_root=root, max_pixels=10**8, min_side=64, max_file_bytes=10**8,
                         timeout_s=30.0, retries=4)
    assert counts == {"failed": 1, "downloaded": 1}
    assert catalog.get(ids[0]).reason == "source_missing"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def http_root(tmp_path, sample_dir):
    served = tmp_path / "www"
    served.mkdir()
    for name in ("sbs_parallel.jpg", "over_under.jpg", "anaglyph.jpg", "truncated.jpg", "photo.jps"):
        shutil.copy(sample_dir / name, served / name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_urls_source_over_http(catalog, tmp_path, http_root):
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"# stereo photos\n\n{http_root}/sbs_parallel.jpg\n  {http_root}/over_under.jpg  \n"
        f"{http_root}/anaglyph.jpg\n{http_root}/truncated.jpg\n{http_root}/missing.jpg\n"
        f"{http_root}/photo.jps\n{http_root}/sbs_parallel.jpg\n"  # listed twice: one row
    )
    root = tmp_path / "data"
    result = ingest(catalog, f"urls:{listing}", data_root=root, retries=0, timeout_s=5)
    assert result == {"split": 3, "rejected": 1, "failed": 2}
    items = {i.source_id.rsplit("/", 1)[1]: i for i in catalog.items(catalog.ids(source="urls"))}
    assert len(items) == 6
    assert items["missing.jpg"].reason == "http_error" and "404" in items["missing.jpg"].reason_detail
    assert items["truncated.jpg"].reason == "truncated"  # complete download of a truncated file
    assert items["anaglyph.jpg"].reason == "anaglyph"
    assert items["photo.jps"].stereo_format == "jps" and items["photo.jps"].raw_path.endswith(".jps")
    assert items["sbs_parallel.jpg"].fetched_at is not None
    assert items["sbs_parallel.jpg"].url == f"{http_root}/sbs_parallel.jpg"


def test_parse_source():
    assert parse_source("samples") == ("samples", None)
    assert parse_source("flickr") == ("flickr", None)
    assert parse_source("local:/a/b") == ("local", "/a/b")
    assert parse_source("urls:list.txt") == ("urls", "list.txt")
    for bad in ("local", "urls:", "ftp:x", "samples:x"):
        with pytest.raises(ValueError):
            parse_source(bad)


def test_state_machine_is_respected(catalog, root):
    """Every ingest event is an allowed transition (the catalog checks) and ends where the manifest says."""
    ingest(catalog, "samples", data_root=root, limit=8, samples_max_view_side=SIDE)
    for item_id in catalog.ids():
        path = [e.to_state for e in catalog.events(item_id)]
        assert path[0] == State.DISCOVERED.value
        assert path[-1] == catalog.get(item_id).state


def test_flickr_source_end_to_end_with_download_faults(catalog, tmp_path):
    """`flickr` through the real flickrapi client against the fake Flickr: only derivative-friendly
    licenses, transient image faults retried, permanent ones recorded with their reasons, every
    photo downloaded once, and a second run downloads nothing."""
    from tests.fakeflickr import FakeFlickr, Faults, make_photos

    photos = make_photos(16, seed=5, licenses=[4, 5, 9, 3])  # 3 = NoDerivs: must not be crawled
    allowed = [p.id for p in photos if p.license != 3]
    faults = Faults(image_faults={allowed[0]: ["500"], allowed[1]: ["truncate"]},
                    image_permanent={allowed[2]: "404", allowed[3]: "empty", allowed[4]: "truncate"})
    with FakeFlickr(photos, api_key="k", faults=faults) as fake:
        options = dict(rest_url=fake.rest_url, api_key="k", api_secret="s", tags=["stereoscopic", "stereo", "3d"],
                       min_upload_date=0, max_upload_date=2_000_000_000, max_calls_per_hour=10**6, per_page=5,
                       backoff_base_s=0.01, backoff_max_s=0.05)
        root = tmp_path / "data"
        result = ingest(catalog, "flickr", data_root=root, retries=2, timeout_s=5, flickr=options)
        expected_ids = {p.id for p in fake.matching(tags=["stereoscopic", "stereo", "3d"], licenses={4, 5, 9})}
        items = {i.source_id: i for i in catalog.items(catalog.ids(source="flickr"))}
        assert set(items) == expected_ids
        bad = {allowed[2]: "http_error", allowed[3]: "empty_file", allowed[4]: "truncated"}
        bad = {k: v for k, v in bad.items() if k in expected_ids}
        assert result == {"split": len(expected_ids) - len(bad), "failed": len(bad)}
        for pid, reason in bad.items():
            assert (items[pid].state, items[pid].reason) == ("failed", reason)
        for pid in expected_ids - set(bad):
            assert items[pid].stereo_format == "side_by_side" and fake.served[pid] == 1
            assert items[pid].license and items[pid].page_url and items[pid].owner  # provenance kept
        downloads = sum(fake.downloads.values())
        status = catalog.status().as_dict()
        # flickr's work list is what is still discovered/downloaded: nothing, so nothing is touched
        assert ingest(catalog, "flickr", data_root=root, retries=2, timeout_s=5, flickr=options) == {}
        assert sum(fake.downloads.values()) == downloads and catalog.status().as_dict() == status


def test_anaglyph_split_mode(catalog, root):
    names = [e["file"] for e in load_manifest(root / "samples")]
    n = names.index("anaglyph.jpg") + 1
    ingest(catalog, "samples", data_root=root, limit=n, samples_max_view_side=SIDE, split_anaglyph=True)
    item = catalog.get(item_id_for("samples", "anaglyph.jpg"))
    assert (item.state, item.stereo_format, item.swapped, item.view_order) == ("split", "anaglyph", False, "undecided")
    left = np.asarray(Image.open(root / item.left_path))
    assert left.shape == (item.raw_height, item.raw_width, 3) and (left[..., 0] == left[..., 1]).all()


def test_sigkill_mid_ingest_then_resume(catalog_url, root):
    """kill -9 an ingest once it has downloaded a few items; a second run ends exactly where an
    uninterrupted one would, with every item discovered once and no extra rows."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tasks.catalog.catalog import Catalog

    repo = Path(__file__).resolve().parents[2]
    code = ("import sys; from tasks.catalog.catalog import Catalog; from tasks.ingest.run import ingest; "
            f"ingest(Catalog(sys.argv[1]), 'samples', data_root=sys.argv[2], samples_max_view_side={SIDE})")
    with Catalog(catalog_url) as catalog:  # migrated here first: two processes must not both create the schema
        proc = subprocess.Popen([sys.executable, "-c", code, catalog_url, str(root)], cwd=repo,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None:
                if len(catalog.ids(State.DOWNLOADED, State.FAILED)) >= 8:
                    break
                time.sleep(0.05)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    with Catalog(catalog_url) as catalog:
        assert catalog.status().as_dict() != expected_status(root / "samples"), "killed too late to test resuming"
        ingest(catalog, "samples", data_root=root, samples_max_view_side=SIDE)
        assert catalog.status().as_dict() == expected_status(root / "samples")
        for item_id in catalog.ids():
            assert sum(e.to_state == State.DISCOVERED.value for e in catalog.events(item_id)) == 1
