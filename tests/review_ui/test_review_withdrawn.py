"""A withdrawn item in the review app: shown with its state, read only, never queued, never decided."""
from __future__ import annotations

from review_ui.app import create_app
from tasks.catalog.catalog import Catalog
from tasks.review.store import ReviewStore
from tests.review_ui.conftest import PASSWORD, serve, sign_in
from tests.review_ui.maps import make_processed


def test_withdrawn_items_are_read_only(review_env):
    url, root = review_env
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 3)
        store = ReviewStore(cat, double_review_share=1.0)
        store.add_reviewer("alice", PASSWORD)
        store.add_reviewer("bob", PASSWORD)
        store.lease(ids[1], "alice")
        store.decide(ids[1], "alice", "accepted")  # opens a second review for bob
        cat.withdraw(ids[0], "source_deleted", "flickr.photos.getInfo: Photo not found")
        cat.withdraw(ids[1], "takedown", "owner asked")
    with serve(create_app(url, root, secret_key=b"w" * 32)) as base:
        alice, _ = sign_in(base, "alice")
        bob, _ = sign_in(base, "bob")
        for who in (alice, bob):
            page = who.get(f"/item/{ids[0]}").text
            assert 'id="item-state">withdrawn<' in page and "Read only" in page
            assert 'id="btn-accept" class="accept" disabled' in page
        # bob's pending second review of a now-withdrawn item is not offered as a review either
        page = bob.get(f"/item/{ids[1]}").text
        assert 'id="item-state">withdrawn<' in page and "Read only" in page
        for who, item in ((alice, ids[0]), (alice, ids[1]), (bob, ids[1])):
            r = who.post("/api/decide", json={"item_id": item, "decision": "accepted", "override": True})
            assert r.status_code == 409, r.text
        r = alice.post("/api/bulk", json={"item_ids": ids[:2], "decision": "rejected", "reason": "other",
                                          "comment": "x"})
        assert set(r.json()["failed"]) == set(ids[:2]) and r.json()["done"] == []
        # the queue only ever offers the item that is still reviewable
        r = alice.get("/next")
        assert r.headers["location"].startswith(f"/item/{ids[2]}")
    with Catalog(url) as cat:
        assert [cat.get(i).state for i in ids] == ["withdrawn", "withdrawn", "pending_review"]
