"""The Flickr source, with the real flickrapi client, against the fake Flickr (tests/fakeflickr.py).

Runs over SQLite and PostgreSQL (``catalog`` fixture; PostgreSQL via scripts/test.sh).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from tasks.catalog.catalog import Catalog, State, item_id_for
from tasks.ingest.sources import flickr
from tests.fakeflickr import FLICKR_LICENSES, NO_DERIVATIVES, FakeFlickr, Faults, make_photos

REPO = Path(__file__).resolve().parents[2]
TAGS = ("stereoscopic", "stereo", "3d", "sidebyside", "crossview")
DERIVATIVES_OK = {i for i, _, _ in FLICKR_LICENSES} - NO_DERIVATIVES
KEY = "fake-key"
SPAN = dict(min_upload_date=1_299_000_000, max_upload_date=1_320_000_000)  # around make_photos' default dates


class FakeClock:
    """Wall-clock stand-in shared by the crawler (rate limit, backoff) and the fake server (call log)."""

    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture
def serve():
    started: list[FakeFlickr] = []

    def _serve(photos, **kw) -> FakeFlickr:
        fake = FakeFlickr(photos, api_key=KEY, **kw).start()
        started.append(fake)
        return fake

    yield _serve
    for fake in started:
        fake.stop()


def crawl(catalog: Catalog, fake: FakeFlickr, clock: FakeClock | None = None, **kw) -> tuple[int, flickr.CrawlStats]:
    clock = clock or FakeClock()
    opts = dict(rest_url=fake.rest_url, api_key=KEY, api_secret="secret", tags=TAGS, text="", tag_mode="any",
                licenses=None, per_page=100, max_results_per_query=4000, max_calls_per_hour=1_000_000,
                min_upload_date=0, max_upload_date=2_000_000_000, max_retries=6, backoff_base_s=0.5,
                backoff_max_s=30.0, timeout_s=5.0, clock=clock, sleep=clock.sleep)
    opts.update(kw)
    stats = flickr.CrawlStats()
    n = flickr.discover(catalog, stats=stats, **opts)
    return n, stats


def source_ids(catalog: Catalog) -> list[str]:
    return [it.source_id for it in catalog.items(catalog.ids(source="flickr"))]


def discovered_events(catalog: Catalog) -> Counter:
    """item id -> how many times it entered `discovered` (must be exactly once)."""
    return Counter({i: sum(e.to_state == "discovered" for e in catalog.events(i)) for i in catalog.ids()})


# ---- unit level -----------------------------------------------------------------------------------
def test_allows_derivatives_matches_flickrs_license_table():
    for lid, name, url in FLICKR_LICENSES:
        assert flickr.allows_derivatives(name, url) == (lid not in NO_DERIVATIVES), name


def test_resolve_licenses_by_name_url_or_id():
    table = [{"id": i + 100, "name": n, "url": u} for i, n, u in FLICKR_LICENSES]
    assert set(flickr.resolve_licenses(table, None)) == {str(i + 100) for i in DERIVATIVES_OK}
    got = flickr.resolve_licenses(table, ["cc by 4.0", "http://creativecommons.org/licenses/by-sa/2.0", "109"])
    assert list(got) == ["105", "109", "111"]
    assert got["111"] == {"name": "CC BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"}
    with pytest.raises(ValueError, match="unknown Flickr license"):
        flickr.resolve_licenses(table, ["Some Other License"])


def test_to_unix_and_pick_original():
    assert flickr.to_unix("2004-01-01") == 1072915200
    assert flickr.to_unix("2004-01-01T00:00:10Z") == 1072915210
    assert flickr.to_unix(1072915200.7) == 1072915200 and flickr.to_unix("1072915200") == 1072915200
    assert flickr.to_unix(None) is None
    sizes = {"sizes": {"size": [{"label": "Small", "width": 240, "height": 80, "source": "s"},
                                {"label": "Large", "width": "1024", "height": "341", "source": "l"},
                                {"label": "Medium", "width": 500, "height": 166, "source": "m"}]}}
    assert flickr.pick_original(sizes)[0] == "l"  # no Original: the largest offered
    sizes["sizes"]["size"].append({"label": "Original", "width": 800, "height": 300, "source": "o"})
    assert flickr.pick_original(sizes)[0] == "o"
    assert flickr.pick_original({"sizes": {"size": []}}) is None


def test_rate_limiter_never_exceeds_the_hourly_limit():
    clock = FakeClock()
    limiter = flickr.RateLimiter(120, clock=clock, sleep=clock.sleep)  # burst 2, then 118/h
    times = []
    for _ in range(400):
        limiter.acquire()
        times.append(clock())
    assert max(sum(1 for u in times if t <= u < t + 3600) for t in times) <= 120
    # and it is not needlessly slow: 400 calls need (400 - 2) / (118/3600) s, no more
    assert clock() - times[0] == pytest.approx((400 - 2) * 3600 / 118, rel=1e-6)


# ---- against the fake server ------------------------------------------------------------------------
def test_every_photo_discovered_once_with_faults_and_provenance(catalog, serve):
    photos = make_photos(320, seed=1, no_url_o_every=9)
    no_sizes = photos[17].id  # has no url_o (17 % 9 == 8) and getSizes fails for it
    fake = serve(photos, faults=Faults(rest_every={"500": 5, "429": 7, "garbled": 11, "105": 13, "503": 19},
                                       duplicate_across_pages=True, getsizes_fail={no_sizes}, retry_after_s=3))
    clock = FakeClock()
    n, stats = crawl(catalog, fake, clock, per_page=50)

    expected = {p.id for p in fake.matching(tags=TAGS, licenses=DERIVATIVES_OK)}
    got = source_ids(catalog)
    assert len(got) == len(set(got)) and set(got) == expected and n == len(expected) > 180
    assert set(discovered_events(catalog).values()) == {1}
    assert stats.retries > 10 and stats.known > 0  # faults were hit, duplicate photos were seen
    assert 3.0 in clock.slept  # Retry-After of the 429s honoured
    # photos without url_o were resolved with getSizes, except the one whose getSizes fails
    by_id = {it.source_id: it for it in catalog.items(catalog.ids(source="flickr"))}
    failed = [it for it in by_id.values() if it.state == State.FAILED.value]
    if no_sizes in expected:
        assert [(it.source_id, it.reason) for it in failed] == [(no_sizes, "flickr_no_original")]
        assert "Photo not found" in failed[0].reason_detail
    for it in by_id.values():
        if it.state == State.DISCOVERED.value:
            assert it.url == fake.image_url(it.source_id)
    # provenance of one photo
    p = next(p for p in photos if p.id in expected and not p.has_url_o and p.id != no_sizes)
    it = by_id[p.id]
    lic_name, lic_url = next((n, u) for i, n, u in FLICKR_LICENSES if i == p.license)
    assert (it.owner, it.title, it.license, it.license_url) == (p.ownername, p.title, lic_name, lic_url)
    assert it.page_url == f"https://www.flickr.com/photos/{p.owner}/{p.id}" and it.fetched_at is not None
    assert it.info["flickr"]["owner_nsid"] == p.owner and it.info["flickr"]["dateupload"] == str(p.dateupload)

    # a second crawl finds nothing new and spends no getSizes call on known photos
    before = len(fake.rest_calls("flickr.photos.getSizes"))
    fake.faults.rest_every.clear()
    n2, stats2 = crawl(catalog, fake, FakeClock(), max_upload_date=2_000_000_001)
    assert n2 == 0 and stats2.getsizes_calls == 0 and len(fake.rest_calls("flickr.photos.getSizes")) == before
    assert sorted(source_ids(catalog)) == sorted(got)


def test_api_timeouts_are_retried(catalog, serve):
    photos = make_photos(60, seed=2)
    fake = serve(photos, faults=Faults(rest_schedule={2: "slow", 3: "slow"}, slow_s=1.0))
    n, stats = crawl(catalog, fake, timeout_s=0.3)
    assert n == len(fake.matching(tags=TAGS, licenses=DERIVATIVES_OK)) and stats.retries == 2


def test_license_filter_comes_from_getinfo(catalog, serve):
    photos = make_photos(300, seed=4)
    fake = serve(photos, license_id_offset=1000)  # ids unlike Flickr's: nothing may be hard-coded
    n, _ = crawl(catalog, fake, licenses=["CC BY 4.0", "https://creativecommons.org/licenses/by-sa/2.0/"])
    searches = fake.rest_calls("flickr.photos.search")
    assert {c[2]["license"] for c in searches} == {"1005,1011"}
    assert set(source_ids(catalog)) == {p.id for p in fake.matching(tags=TAGS, licenses={5, 11})} and n > 0
    lic = {it.license for it in catalog.items(catalog.ids())}
    assert lic == {"Attribution-ShareAlike License", "CC BY 4.0"}


def test_default_license_filter_excludes_no_derivatives(catalog, serve):
    fake = serve(make_photos(170, seed=5), license_id_offset=7)
    crawl(catalog, fake)
    sent = next(c[2]["license"] for c in fake.rest_calls("flickr.photos.search"))
    assert sorted(int(x) - 7 for x in sent.split(",")) == sorted(DERIVATIVES_OK)
    assert all(it.license != "All Rights Reserved" and "NoDerivs" not in it.license and "ND" not in it.license
               for it in catalog.items(catalog.ids()))


def test_query_over_cap_is_split_by_upload_date(catalog, serve):
    """Scaled down (cap 200, 230 photos) to run on both backends; see the 4,600 variant below."""
    photos = make_photos(230, seed=6, licenses=[4])
    fake = serve(photos, cap=200)
    n, stats = crawl(catalog, fake, max_results_per_query=200, per_page=50, **SPAN)
    assert n == 230 and set(source_ids(catalog)) == {p.id for p in photos}
    assert stats.windows_split >= 1 and stats.windows_over_cap == 0
    # every window that was paged through (page > 1) fits under the cap
    for _, _, params in fake.rest_calls("flickr.photos.search"):
        if int(params["page"]) > 1:
            inside = fake.matching(tags=TAGS, licenses={4}, min_date=int(params["min_upload_date"]),
                                   max_date=int(params["max_upload_date"]))
            assert len(inside) <= 200


@pytest.mark.slow
def test_query_of_4600_results_fully_covered(tmp_path, serve):
    """Flickr's real numbers: 4,600 matches, 4,000 served per query, 500 per page (SQLite only)."""
    photos = make_photos(4600, seed=7, licenses=[4, 9, 11])
    fake = serve(photos)
    # 4,600 inserts: on tmpfs when there is one, since fsyncs, not the crawler, dominate the time
    shm = Path("/dev/shm")
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else tmp_path) as tmp, \
            Catalog(f"sqlite:///{tmp}/c.db") as catalog:
        n, stats = crawl(catalog, fake, per_page=500, max_results_per_query=4000, **SPAN)
        assert n == 4600 and len(set(source_ids(catalog))) == 4600 and stats.windows_split >= 1
    # without splitting, Flickr's cap would have hidden 600 of them
    assert len(fake.matching(tags=TAGS)[:4000]) == 4000


def test_one_second_window_over_cap_takes_what_flickr_serves(catalog, serve):
    photos = make_photos(100, seed=8, licenses=[4], same_second=60)
    fake = serve(photos, cap=50)
    n, stats = crawl(catalog, fake, max_results_per_query=50, per_page=20, **SPAN)
    assert stats.windows_over_cap == 1 and n == 40 + 50  # the 40 spread out + the first 50 of the 60


def test_failed_page_raises_and_the_crawl_resumes(catalog, serve):
    photos = make_photos(300, seed=9)
    fake = serve(photos, faults=Faults(rest_schedule={n: "500" for n in range(4, 40)}))
    with pytest.raises(flickr.FlickrCrawlError, match="500"):
        crawl(catalog, fake, max_retries=3, per_page=50)
    first = set(source_ids(catalog))
    assert 0 < len(first) < 300  # pages 1-2 were recorded before the outage
    fake.faults.rest_schedule.clear()
    calls_before = len(fake.rest_calls("flickr.photos.search"))
    n, _ = crawl(catalog, fake, per_page=50)
    expected = {p.id for p in fake.matching(tags=TAGS, licenses=DERIVATIVES_OK)}
    assert set(source_ids(catalog)) == expected and n == len(expected) - len(first)
    pages = -(-len(expected) // 50)
    assert len(fake.rest_calls("flickr.photos.search")) - calls_before == pages - 2  # done pages not refetched
    assert set(discovered_events(catalog).values()) == {1}


def test_limit_stops_early_and_the_next_run_continues(catalog, serve):
    fake = serve(make_photos(250, seed=10))
    n1, _ = crawl(catalog, fake, limit=70, per_page=50)
    assert n1 == 70 and len(source_ids(catalog)) == 70
    n2, _ = crawl(catalog, fake, per_page=50)
    expected = {p.id for p in fake.matching(tags=TAGS, licenses=DERIVATIVES_OK)}
    assert n1 + n2 == len(expected) and set(source_ids(catalog)) == expected


def test_rate_limit_respected_across_runs(catalog, serve):
    clock = FakeClock()
    fake = serve(make_photos(300, seed=11), clock=clock)  # the server logs calls in fake time
    n1, s1 = crawl(catalog, fake, clock, max_calls_per_hour=6, per_page=20, limit=60)
    n2, s2 = crawl(catalog, fake, clock, max_calls_per_hour=6, per_page=20)  # a restart: bucket state persisted
    times = [t for t, _, _ in fake.rest_calls()]
    assert len(times) == s1.calls + s2.calls > 12
    assert max(sum(1 for u in times if t <= u < t + 3600) for t in times) <= 6
    # capacity 1 and 5 refills an hour: call k happens (k - 1) * 720 s after the first, not later
    assert times[-1] - times[0] == pytest.approx((len(times) - 1) * 720, rel=1e-6)
    assert s2.rate_waited_s > 0 and not any(0 < s < 700 for s in clock.slept)


def test_new_uploads_crawled_after_a_finished_crawl(catalog, serve):
    old = make_photos(150, seed=12, start=1_500_000_000, span_s=10_000)
    fake = serve(old)
    clock = FakeClock(1_600_000_000)
    n1, _ = crawl(catalog, fake, clock, max_upload_date=None)
    new = make_photos(50, seed=13, start=1_650_000_000, span_s=10_000, first_id=90_000_000)
    fake2 = serve(old + new)
    clock.t = 1_700_000_000
    n2, _ = crawl(catalog, fake2, clock, max_upload_date=None)
    searches = fake2.rest_calls("flickr.photos.search")
    assert {int(c[2]["min_upload_date"]) for c in searches} == {1_600_000_001}  # only the new range
    assert n2 == len(fake2.matching(tags=TAGS, licenses=DERIVATIVES_OK)) - n1 > 0


_RUNNER = """
import sys
from tasks.catalog.catalog import Catalog
from tasks.ingest.sources import flickr
with Catalog(sys.argv[1]) as cat:
    flickr.discover(cat, rest_url=sys.argv[2], api_key="fake-key", api_secret="s", tags=sys.argv[3].split(","),
                    text="", tag_mode="any", licenses=None, per_page=25, max_results_per_query=4000,
                    max_calls_per_hour=1000000, min_upload_date=0, max_upload_date=2000000000, max_retries=5,
                    backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=5)
"""


def test_sigkill_mid_crawl_then_resume_loses_nothing_and_duplicates_nothing(catalog, serve):
    photos = make_photos(400, seed=14, no_url_o_every=13)
    # every search answers 0.25 s late so that the kill lands mid-crawl
    fake = serve(photos, faults=Faults(rest_every={"slow": 1}, duplicate_across_pages=True, slow_s=0.25))
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, catalog.url, fake.rest_url, ",".join(TAGS)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(catalog.ids()) < 60 and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the crawl ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    killed_at = len(catalog.ids())
    expected = {p.id for p in fake.matching(tags=TAGS, licenses=DERIVATIVES_OK)}
    assert 60 <= killed_at < len(expected)
    searches_before = len(fake.rest_calls("flickr.photos.search"))
    fake.faults.rest_every.clear()
    n, _ = crawl(catalog, fake, per_page=25)
    got = source_ids(catalog)
    assert len(got) == len(set(got)) and set(got) == expected and n == len(expected) - killed_at
    assert set(discovered_events(catalog).values()) == {1}
    # resumed, not restarted: at most the interrupted page is fetched again
    pages = -(-len(expected) // 25)
    assert len(fake.rest_calls("flickr.photos.search")) - searches_before <= pages - searches_before + 1
    assert all(it.url for it in catalog.items(catalog.ids()))
