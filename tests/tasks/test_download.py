"""fetch_url against the fake Flickr image host: retries, reason codes, atomic files."""
from __future__ import annotations

import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tasks.ingest.download import backoff_delay, fetch_url, parse_retry_after, remove_stale_parts
from tests.fakeflickr import FakeFlickr, Faults, make_photos, stereo_jpeg

REPO = Path(__file__).resolve().parents[2]
PHOTOS = make_photos(12, seed=3)
IDS = [p.id for p in PHOTOS]


@pytest.fixture
def serve():
    """Start a fake with the given Faults; stopped after the test."""
    started: list[FakeFlickr] = []

    def _serve(faults: Faults | None = None) -> FakeFlickr:
        fake = FakeFlickr(PHOTOS, faults=faults).start()
        started.append(fake)
        return fake

    yield _serve
    for fake in started:
        fake.stop()


class Sleeps(list):
    """Records requested sleeps instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _fetch(fake: FakeFlickr, pid: str, dest: Path, **kw):
    opts = dict(timeout=5.0, retries=3, backoff_base=0.5, backoff_max=8.0, sleep=Sleeps(), rng=random.Random(0))
    opts.update(kw)
    return fetch_url(fake.image_url(pid), dest, **opts), opts["sleep"]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_ok_download_is_complete_and_hashed(serve, tmp_path):
    fake = serve()
    res, sleeps = _fetch(fake, IDS[0], tmp_path / "raw" / "a.jpg")
    body = stereo_jpeg(int(IDS[0]))
    assert res.ok and res.reason is None and res.attempts == 1 and res.status == 200 and sleeps == []
    assert res.path == tmp_path / "raw" / "a.jpg" and res.path.read_bytes() == body
    assert res.bytes == len(body) and res.sha256 == hashlib.sha256(body).hexdigest()
    assert res.content_type == "image/jpeg"
    assert _leftovers(tmp_path / "raw") == ["a.jpg"]  # no .part file left


def test_truncated_body_is_retried(serve, tmp_path):
    fake = serve(Faults(image_faults={IDS[1]: ["truncate", "truncate"]}))
    res, sleeps = _fetch(fake, IDS[1], tmp_path / "b.jpg")
    assert res.ok and res.attempts == 3 and len(sleeps) == 2
    assert res.path.read_bytes() == stereo_jpeg(int(IDS[1]))
    assert fake.downloads[IDS[1]] == 3


def test_permanently_truncated_fails_with_reason_and_no_file(serve, tmp_path):
    fake = serve(Faults(image_permanent={IDS[2]: "truncate"}))
    res, sleeps = _fetch(fake, IDS[2], tmp_path / "c.jpg", retries=2)
    assert not res.ok and res.reason == "truncated" and res.attempts == 3 and res.path is None
    assert "Content-Length" in res.detail or "bytes" in res.detail
    assert _leftovers(tmp_path) == []  # neither c.jpg nor a .part


def test_5xx_retried_with_exponential_backoff(serve, tmp_path):
    fake = serve(Faults(image_faults={IDS[3]: ["500", "500", "500"]}))
    res, sleeps = _fetch(fake, IDS[3], tmp_path / "d.jpg", retries=3, backoff_base=0.5, backoff_max=8.0)
    assert res.ok and res.attempts == 4
    # attempt k waits base * 2**(k-1) times a jitter in [0.5, 1]
    for k, s in enumerate(sleeps, start=1):
        assert 0.5 * 0.5 * 2 ** (k - 1) <= s <= 0.5 * 2 ** (k - 1)


def test_5xx_exhausted_is_http_error(serve, tmp_path):
    fake = serve(Faults(image_permanent={IDS[3]: "500"}))
    res, _ = _fetch(fake, IDS[3], tmp_path / "d.jpg", retries=2)
    assert not res.ok and res.reason == "http_error" and res.status == 500 and res.attempts == 3


def test_429_honours_retry_after(serve, tmp_path):
    fake = serve(Faults(image_faults={IDS[4]: ["429"]}, retry_after_s=7))
    res, sleeps = _fetch(fake, IDS[4], tmp_path / "e.jpg", backoff_base=0.01, backoff_max=30)
    assert res.ok and res.attempts == 2 and sleeps == [pytest.approx(7.0)]
    # ... but only up to backoff_max
    fake2 = serve(Faults(image_faults={IDS[4]: ["429"]}, retry_after_s=100))
    res, sleeps = _fetch(fake2, IDS[4], tmp_path / "e2.jpg", backoff_base=0.01, backoff_max=30)
    assert res.ok and sleeps == [pytest.approx(30.0)]


def test_404_is_not_retried(serve, tmp_path):
    fake = serve(Faults(image_permanent={IDS[5]: "404"}))
    res, sleeps = _fetch(fake, IDS[5], tmp_path / "f.jpg")
    assert not res.ok and res.reason == "http_error" and res.status == 404 and res.attempts == 1 and sleeps == []
    assert "404" in res.detail


def test_timeout_retried_then_download_failed(serve, tmp_path):
    fake = serve(Faults(image_faults={IDS[6]: ["slow"]}, image_permanent={IDS[7]: "slow"}, slow_s=1.0))
    res, _ = _fetch(fake, IDS[6], tmp_path / "g.jpg", timeout=0.3)
    assert res.ok and res.attempts == 2
    res, _ = _fetch(fake, IDS[7], tmp_path / "h.jpg", timeout=0.3, retries=1)
    assert not res.ok and res.reason == "download_failed" and res.attempts == 2 and "timeout" in res.detail.lower()
    assert not (tmp_path / "h.jpg").exists()


def test_file_too_big_is_not_retried(serve, tmp_path):
    fake = serve()
    res, sleeps = _fetch(fake, IDS[8], tmp_path / "i.jpg", max_bytes=100)
    assert not res.ok and res.reason == "file_too_big" and res.attempts == 1 and sleeps == []
    assert _leftovers(tmp_path) == []


def test_empty_body_is_a_valid_download(serve, tmp_path):
    """A 200 with zero bytes is stored: ingest decides it is an empty_file, not the downloader."""
    fake = serve(Faults(image_permanent={IDS[9]: "empty"}))
    res, _ = _fetch(fake, IDS[9], tmp_path / "j.jpg")
    assert res.ok and res.bytes == 0 and res.path.stat().st_size == 0


def test_connection_refused_is_download_failed(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    res = fetch_url(f"http://127.0.0.1:{port}/x.jpg", tmp_path / "x.jpg", timeout=1, retries=2, sleep=sleeps)
    assert not res.ok and res.reason == "download_failed" and res.attempts == 3 and len(sleeps) == 2
    assert res.status is None


def test_existing_file_replaced_only_by_a_complete_one(serve, tmp_path):
    fake = serve(Faults(image_permanent={IDS[2]: "truncate"}))
    dest = tmp_path / "k.jpg"
    dest.write_bytes(b"old complete file")
    res, _ = _fetch(fake, IDS[2], dest, retries=1)
    assert not res.ok and dest.read_bytes() == b"old complete file"


def test_kill_9_mid_download_leaves_no_partial_file_under_the_final_name(serve, tmp_path):
    fake = serve(Faults(image_permanent={IDS[10]: "trickle"}, slow_s=30))
    dest = tmp_path / "raw" / "l.jpg"
    code = ("import sys; from pathlib import Path; from tasks.ingest.download import fetch_url; "
            "fetch_url(sys.argv[1], Path(sys.argv[2]), timeout=60, retries=0)")
    proc = subprocess.Popen([sys.executable, "-c", code, fake.image_url(IDS[10]), str(dest)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.time() + 20
        parts: list[Path] = []
        while time.time() < deadline and not parts:  # wait until half the body is on disk
            parts = [p for p in dest.parent.glob(".*.part") if p.stat().st_size > 0] if dest.parent.exists() else []
            time.sleep(0.05)
        assert parts, "the download never started"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not dest.exists()
    assert remove_stale_parts(dest.parent, older_than_s=0) == 1 and _leftovers(dest.parent) == []
    fake.faults.image_permanent.clear()
    res, _ = _fetch(fake, IDS[10], dest)
    assert res.ok and dest.read_bytes() == stereo_jpeg(int(IDS[10]))


def test_parse_retry_after_and_backoff_bounds():
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == pytest.approx(90.0)
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now=now.timestamp()) == 0.0
    rng = random.Random(1)
    delays = [backoff_delay(k, base=1.0, maximum=10.0, rng=rng) for k in range(1, 8)]
    assert all(0.5 * min(10.0, 2 ** (k - 1)) <= d <= min(10.0, 2 ** (k - 1)) for k, d in enumerate(delays, 1))
