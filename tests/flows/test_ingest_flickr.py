"""`redweb ingest --source flickr` end to end against the fake Flickr (tests/fakeflickr.py) with faults:
every retrievable photo ingested exactly once, every failure recorded with its reason, and a run
killed with SIGKILL resumes without losing or repeating anything."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.fakeflickr import FLICKR_LICENSES, NO_DERIVATIVES, FakeFlickr, Faults, make_photos

REPO = Path(__file__).resolve().parents[2]
KEY, SECRET = "e2e-key", "e2e-secret"
DERIVATIVES_OK = {i for i, _, _ in FLICKR_LICENSES} - NO_DERIVATIVES
DOWNLOAD_REASONS = {"download_failed", "http_error", "truncated", "file_too_big", "flickr_no_original"}
OVERRIDES = ["flickr.per_page=10", "flickr.backoff_base_s=0.01", "flickr.backoff_max_s=0.2", "flickr.timeout_s=5",
             "ingest.download_retries=2", "ingest.download_timeout_s=5"]


def scenario(seed: int) -> tuple[list, Faults, dict[str, str]]:
    """60 photos, every fault kind; returns (photos, faults, {photo id: expected failure reason})."""
    photos = make_photos(60, seed=seed, no_url_o_every=5)
    ok = [p for p in photos if p.license in DERIVATIVES_OK]
    with_url = [p.id for p in ok if p.has_url_o]
    no_url = [p.id for p in ok if not p.has_url_o]
    faults = Faults(rest_every={"500": 4, "429": 6, "garbled": 9}, retry_after_s=0.05, duplicate_across_pages=True,
                    getsizes_fail={no_url[0]},
                    image_faults={with_url[0]: ["truncate"], with_url[1]: ["500"], with_url[2]: ["429"]},
                    image_permanent={with_url[3]: "404", with_url[4]: "truncate"})
    failures = {no_url[0]: "flickr_no_original", with_url[3]: "http_error", with_url[4]: "truncated"}
    return photos, faults, failures


@pytest.fixture
def flickr_env(monkeypatch):
    started: list[FakeFlickr] = []

    def _start(photos, faults) -> FakeFlickr:
        fake = FakeFlickr(photos, api_key=KEY, faults=faults).start()
        started.append(fake)
        monkeypatch.setenv("REDWEB_FLICKR_REST_URL", fake.rest_url)
        monkeypatch.setenv("FLICKR_API_KEY", KEY)
        monkeypatch.setenv("FLICKR_API_SECRET", SECRET)
        return fake

    yield _start
    for fake in started:
        fake.stop()


def _cli(data_root: Path, capsys) -> dict:
    from flows.cli import main

    args = ["ingest", "--source", "flickr", "--data-root", str(data_root), "--no-progress", "--json"]
    for o in OVERRIDES:
        args += ["--set", o]
    assert main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _check_final(data_root: Path, fake: FakeFlickr, failures: dict[str, str]) -> dict:
    from tasks.catalog.catalog import Catalog

    with Catalog(f"sqlite:///{data_root / 'catalog.db'}") as catalog:
        items = catalog.items(catalog.ids(source="flickr"))
        expected = {p.id for p in fake.matching(tags=("stereoscopic", "stereo", "3d", "sidebyside", "crossview"),
                                                licenses=DERIVATIVES_OK)}
        got = [it.source_id for it in items]
        assert len(got) == len(set(got)) and set(got) == expected  # every photo once, none missing
        for it in items:  # ... and each entered the catalog exactly once
            assert sum(e.to_state == "discovered" for e in catalog.events(it.id)) == 1
        by_id = {it.source_id: it for it in items}
        for pid, reason in failures.items():
            assert (by_id[pid].state, by_id[pid].reason) == ("failed", reason), pid
        for pid in expected - set(failures):
            it = by_id[pid]
            assert it.state == "split", (pid, it.state, it.reason, it.reason_detail)
            assert (data_root / it.raw_path).is_file() and it.url == fake.image_url(pid)
            assert it.license and it.owner and it.page_url.endswith(f"/{pid}") and it.fetched_at is not None
        status = catalog.status().as_dict()
    return {"expected": expected, "status": status, "items": by_id}


@pytest.mark.slow
def test_cli_ingest_flickr_with_faults(prefect_test_server, data_root, flickr_env, capsys):
    photos, faults, failures = scenario(seed=21)
    fake = flickr_env(photos, faults)
    summary = _cli(data_root, capsys)
    final = _check_final(data_root, fake, failures)
    retrievable = final["expected"] - set(failures)
    # the flow works on every flickr item left in discovered/downloaded: all but the one that failed
    # at discovery (getSizes)
    assert summary["items"] == len(final["expected"]) - 1
    assert Counter(final["status"]["reasons"]) == Counter(failures.values())
    assert all(fake.served[pid] == 1 for pid in retrievable)  # each image downloaded once
    assert len(fake.rest_calls()) > 0 and any(fake.rest_fault(n) for n in range(1, len(fake.rest_calls()) + 1))

    # a second run: nothing new, nothing downloaded again, nothing changes
    served = dict(fake.served)
    again = _cli(data_root, capsys)
    assert dict(fake.served) == served
    assert _check_final(data_root, fake, failures)["status"] == final["status"]
    assert again["status"] == final["status"]


def _count_items(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.Error:  # not created / migrated yet
        return 0


@pytest.mark.slow
def test_cli_ingest_flickr_resumes_after_kill_9(prefect_test_server, data_root, flickr_env):
    from prefect.settings import PREFECT_API_URL

    photos, faults, failures = scenario(seed=22)
    faults.rest_every["slow"] = 1  # every API answer 0.3 s late, so the kill lands mid-crawl
    faults.slow_s = 0.3
    fake = flickr_env(photos, faults)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if PREFECT_API_URL.value():  # reuse the session's Prefect API instead of starting another
        env["PREFECT_API_URL"] = PREFECT_API_URL.value()
    cmd = [str(REPO / ".venv" / "bin" / "redweb"), "ingest", "--source", "flickr", "--data-root", str(data_root),
           "--no-progress"]
    for o in OVERRIDES:
        cmd += ["--set", o]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "flows.cli"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = data_root / "catalog.db"
    try:
        deadline = time.time() + 240
        while time.time() < deadline and _count_items(db) < 15 and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, f"ingest ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = _count_items(db)
    with sqlite3.connect(db, timeout=5) as conn:  # photos whose download was recorded before the kill
        stored = {r[0] for r in conn.execute("SELECT source_id FROM items WHERE raw_path IS NOT NULL")}
    assert killed_at >= 15

    fake.faults.rest_every.pop("slow")
    # the re-run is a fresh process too (as after a real crash)
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    final = _check_final(data_root, fake, failures)
    assert killed_at < len(final["expected"]) or stored  # the kill interrupted the crawl or the downloads
    # a download recorded before the kill is never repeated
    assert all(fake.served[pid] == 1 for pid in stored), {pid: fake.served[pid] for pid in stored}
    assert all(fake.served[pid] >= 1 for pid in final["expected"] - set(failures))
