"""Re-validation against the fake Flickr (real flickrapi client), and takedown references.

Over SQLite and PostgreSQL (``catalog`` fixture). Photos change on the server between the crawl and
the re-check: deleted, made private (still visible to the key, or hidden as Flickr hides them from
strangers), re-licensed to a NoDerivs licence or to another acceptable one.
"""
from __future__ import annotations

import pytest

from tasks.catalog.catalog import item_id_for
from tasks.publish.revalidate import (WithdrawError, due_for_check, flickr_photo_id, resolve_refs, revalidate_flickr,
                              withdraw_items)
from tasks.ingest.sources import flickr
from tasks.ingest.sources.flickr import FlickrCrawlError
from tests.fakeflickr import FLICKR_LICENSES, NO_DERIVATIVES, FakeFlickr, Faults, make_photos
from tests.tasks.test_flickr import KEY, FakeClock, crawl

OK_LICENSES = sorted({i for i, _, _ in FLICKR_LICENSES} - NO_DERIVATIVES)


@pytest.fixture
def fake():
    photos = make_photos(12, seed=3, licenses=[4, 5, 9, 11])  # all allow derivatives
    with FakeFlickr(photos, api_key=KEY) as server:
        yield server


def check(catalog, fake, clock=None, **kw):
    clock = clock or FakeClock()
    opts = dict(rest_url=fake.rest_url, api_key=KEY, api_secret="s", max_calls_per_hour=1_000_000,
                backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=5.0, clock=clock, sleep=clock.sleep)
    opts.update(kw)
    return revalidate_flickr(catalog, **opts)


def test_changes_on_the_server_withdraw_exactly_those_items(catalog, fake):
    crawl(catalog, fake)
    pids = [p.id for p in fake.photos]
    assert len(catalog.ids(source="flickr")) == 12
    fake.delete_photo(pids[0])
    fake.make_private(pids[1])  # the key still sees it: visibility.ispublic = 0
    fake.make_private(pids[2], visible_to_caller=False)  # Flickr answers "Photo not found"
    fake.relicense(pids[3], 6)  # Attribution-NoDerivs: no longer usable
    fake.relicense(pids[4], 13)  # CC BY-ND 4.0
    fake.relicense(pids[5], 12 if fake.by_id[pids[5]].license != 12 else 5)  # still allows derivatives
    report = check(catalog, fake)
    by = {r: sorted(catalog.get(i).source_id for i in ids) for r, ids in report.withdrawn.items()}
    assert by == {"source_deleted": sorted([pids[0], pids[2]]), "source_private": [pids[1]],
                  "license_changed": sorted([pids[3], pids[4]])}
    assert report.checked == 12 and report.unchanged == 6
    assert [catalog.get(i).source_id for i in report.license_updated] == [pids[5]]
    moved = catalog.get(item_id_for("flickr", pids[5]))
    assert moved.state != "withdrawn" and moved.license == dict((str(i), n) for i, n, _ in FLICKR_LICENSES)[
        moved.info["flickr"]["license_id"]]
    assert moved.info["flickr"]["license_history"][0]["license_id"] != moved.info["flickr"]["license_id"]
    gone = catalog.get(item_id_for("flickr", pids[3]))
    assert gone.state == "withdrawn" and gone.withdrawn_at is not None and gone.checked_at == gone.withdrawn_at
    assert "Attribution-NoDerivs" in gone.reason_detail
    assert len(fake.rest_calls("flickr.photos.getInfo")) == 12
    # nothing deleted: every row still there
    assert len(catalog.ids(source="flickr")) == 12
    assert catalog.status().states["withdrawn"] == 5

    # a run within --older-than asks nothing; the items just checked are not due
    calls = len(fake.rest_calls())
    again = check(catalog, fake, older_than_days=1)
    assert again.checked == 0 and len(fake.rest_calls()) == calls
    # checking everything again: the withdrawn stay withdrawn and are not asked about
    third = check(catalog, fake)
    assert third.checked == 7 and third.withdrawn == {}


def test_older_than_uses_the_crawl_time_and_limit_takes_the_oldest(catalog, fake):
    crawl(catalog, fake)
    assert due_for_check(catalog, source="flickr", older_than_days=1) == []  # just crawled: verified
    assert len(due_for_check(catalog, source="flickr", older_than_days=0)) == 12
    first = check(catalog, fake, limit=5)
    assert first.checked == 5
    rest = due_for_check(catalog, source="flickr", older_than_days=0)
    # the five just checked go to the back of the queue
    assert len(rest) == 12 and set(rest[-5:]) == {i for i in catalog.ids(source="flickr")} - set(rest[:7])


def test_retries_and_rate_limit_are_the_crawls(catalog, fake):
    crawl(catalog, fake)
    n = len(fake.rest_calls())
    fake.faults.rest_schedule = {n + 2: "500", n + 3: "429", n + 5: "garbled"}
    fake.faults.retry_after_s = 0.01
    clock = FakeClock()
    report = check(catalog, fake, clock=clock, max_calls_per_hour=120)  # bucket of 2, then 1 call / 30.5 s
    assert report.checked == 12 and report.retries == 3 and report.withdrawn == {}
    assert report.calls == 1 + 12 + 3  # licenses.getInfo + one getInfo each + the retried ones
    assert report.rate_waited_s > 0  # the hourly budget made it wait (shared state in crawl_cursors)
    assert catalog.get_cursor(flickr.RATE_KEY).data["limit"] == 120


def test_a_bad_key_stops_the_run_and_withdraws_nothing(catalog, fake):
    crawl(catalog, fake)
    fake.delete_photo(fake.photos[0].id)
    with pytest.raises(FlickrCrawlError, match="Invalid API Key"):
        check(catalog, fake, api_key="wrong")
    assert "withdrawn" not in catalog.status().states


def test_flickr_urls_are_understood():
    assert flickr_photo_id("https://www.flickr.com/photos/12345@N01/50000007/in/photostream/") == "50000007"
    assert flickr_photo_id("https://live.staticflickr.com/65535/50000007_abc123def_o.jpg") == "50000007"
    assert flickr_photo_id("https://flic.kr/p/2") == "1"
    assert flickr_photo_id("https://flic.kr/p/21") == str(58 + 0)
    assert flickr_photo_id("https://example.org/x.jpg") is None


def test_withdraw_by_id_url_source_id_and_owner(catalog, fake):
    crawl(catalog, fake)
    items = catalog.items(catalog.ids(source="flickr"))
    a, b, c, d = items[:4]
    owner = items[5].owner_id
    assert owner and owner == fake.by_id[items[5].source_id].owner
    owned = {i.id for i in items if i.owner_id == owner}
    ids = resolve_refs(catalog, [a.id, b.page_url, c.url, d.source_id], owner=owner)
    assert ids[:4] == [a.id, b.id, c.id, d.id] and set(ids[4:]) == owned - {a.id, b.id, c.id, d.id}
    # all or nothing: one unknown reference and nothing is resolved
    with pytest.raises(WithdrawError, match="no item"):
        resolve_refs(catalog, [a.id, "https://www.flickr.com/photos/x/999"])
    with pytest.raises(WithdrawError, match="reason"):
        withdraw_items(catalog, ids, detail=" ")
    dry = withdraw_items(catalog, ids, detail="owner mail 2026-12-01", dry_run=True)
    assert dry.withdrawn == ids and "withdrawn" not in catalog.status().states
    report = withdraw_items(catalog, ids, detail="owner mail 2026-12-01", actor="withdraw:alice")
    assert report.withdrawn == ids and report.already == []
    for i in ids:
        it = catalog.get(i)
        assert (it.state, it.reason, it.reason_detail) == ("withdrawn", "takedown", "owner mail 2026-12-01")
        assert catalog.events(i)[-1].actor == "withdraw:alice"
    again = withdraw_items(catalog, [a.id], detail="twice")
    assert again.already == [a.id] and catalog.get(a.id).reason_detail == "owner mail 2026-12-01"
