"""Server-rendered pages over HTTP: queue filters and sort, grid pagination, progress page."""
from __future__ import annotations

import re

from review_ui.app import create_app
from tasks.catalog.catalog import Catalog
from tasks.review.store import ReviewStore
from tests.review_ui.conftest import PASSWORD, serve, sign_in
from tests.review_ui.maps import make_processed


def test_filters_pagination_and_progress(review_env):
    url, root = review_env
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 5, batch="b1")
        flickr = make_processed(cat, root, 2, source="flickr", batch="b2", start=10)
        done = make_processed(cat, root, 1, state="auto_accepted", batch="b2", start=20)
        scores = {i.id: i.score for i in cat.items(ids + flickr + done)}
        store = ReviewStore(cat)
        store.add_reviewer("alice", PASSWORD)
        store.add_reviewer("bob", PASSWORD)
    with serve(create_app(url, root, secret_key=b"p" * 32, page_size=3)) as base:
        alice, _ = sign_in(base, "alice")
        bob, _ = sign_in(base, "bob")
        # source filter + score sort: bob gets the best-scored flickr item, and the filter rides along
        r = bob.get("/next", params={"source": "flickr", "sort": "score_desc"})
        best = max(flickr, key=scores.get)
        assert r.headers["location"] == f"/item/{best}?source=flickr&sort=score_desc"
        page = bob.get(r.headers["location"]).text
        assert "source=flickr" in re.search(r'id="page-data">([^<]+)<', page).group(1)
        # score range: nothing in [0.999, 1]
        assert "queue-empty" in alice.get("/next", params={"min_score": "0.999"}).text
        assert alice.get("/next", params={"min_score": "abc"}).status_code == 400
        # state filter: only auto_accepted
        r = alice.get("/next", params={"state": "auto_accepted"})
        assert r.headers["location"].startswith(f"/item/{done[0]}")
        assert alice.post("/api/decide", json={"item_id": done[0], "decision": "accepted"}).status_code == 200
        # grid: 7 items still in review states, 3 per page; bob's lease is shown
        g1 = alice.get("/grid").text
        assert len(re.findall(r'class="tile ', g1)) == 3 and "page 1 / 3" in g1
        g3 = alice.get("/grid", params={"page": 3}).text
        assert len(re.findall(r'class="tile ', g3)) == 1
        pages = g1 + alice.get("/grid", params={"page": 2}).text + g3
        assert pages.count("leased by bob") == 1 and sorted(re.findall(r'data-id="([^"]+)"', pages)) == sorted(ids + flickr)
        ga = alice.get("/grid", params={"state": "accepted"}).text
        assert re.findall(r'data-id="([^"]+)"', ga) == [done[0]]
        # progress per batch and per reviewer
        stats = alice.get("/stats").text
        row_b2 = re.search(r"<tr><td>b2</td>(.*?)</tr>", stats, re.S).group(1)
        assert re.findall(r"<td>([^<]*)</td>", row_b2)[:5] == ["3", "2", "1", "0", "0"]
        row_alice = re.search(r"<tr><td>alice</td>(.*?)</tr>", stats, re.S).group(1)
        assert re.findall(r"<td>([^<]*)</td>", row_alice)[:3] == ["1", "1", "0"]
