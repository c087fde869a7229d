"""Several reviewers at once over HTTP against PostgreSQL (and SQLite): leases keep every item to one
reviewer (two for double review), no decision is lost, expired leases return to the queue."""
from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime, timezone

import pytest

from review_ui.app import create_app
from tasks.catalog.catalog import Catalog
from tasks.review.store import ReviewStore, id_fraction
from tests.review_ui.conftest import PASSWORD, serve, sign_in
from tests.review_ui.maps import make_processed

N_ITEMS, REVIEWERS, SHARE, LEASE_S = 40, 4, 0.25, 3.0


def work(base: str, name: str, log: list, errors: list) -> None:
    """A reviewer who takes the next item and decides it until the queue is empty."""
    rng = random.Random(name)
    try:
        client, _ = sign_in(base, name)
        while True:
            r = client.get("/next")
            if r.status_code == 200:  # "nothing left" page
                assert "queue-empty" in r.text
                return
            assert r.status_code == 303, r.text
            item_id = re.match(r"/item/([^?]+)", r.headers["location"]).group(1)
            decision = rng.choice(["accepted", "rejected"])
            body = {"item_id": item_id, "decision": decision}
            if decision == "rejected":
                body["reason"] = rng.choice(["anaglyph", "misaligned", "noisy_map"])
            d = client.post("/api/decide", json=body)
            log.append((name, item_id, d.status_code, d.json()))
    except Exception as exc:  # noqa: BLE001 - any failure in a worker thread must fail the test
        errors.append(repr(exc))


@pytest.mark.slow
@pytest.mark.parametrize("db", [pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def test_reviewers_in_parallel(db, request, tmp_path):
    url = request.getfixturevalue("postgres_url") if db == "postgresql" else f"sqlite:///{tmp_path / 'c.db'}"
    root = tmp_path / "data"
    with Catalog(url) as cat:
        ids = make_processed(cat, root, N_ITEMS)
        store = ReviewStore(cat)
        for i in range(REVIEWERS):
            store.add_reviewer(f"r{i}", PASSWORD)
        store.add_reviewer("ghost", PASSWORD)
    app = create_app(url, root, secret_key=b"s" * 32, lease_timeout_s=LEASE_S, double_review_share=SHARE)
    with serve(app) as base:
        ghost, _ = sign_in(base, "ghost")
        r = ghost.get("/next")  # takes a lease and walks away
        abandoned = re.match(r"/item/([^?]+)", r.headers["location"]).group(1)
        with Catalog(url) as cat:
            expires = ReviewStore(cat).lease_holder(abandoned).expires_at

        log: list = []
        errors: list = []
        threads = [threading.Thread(target=work, args=(base, f"r{i}", log, errors)) for i in range(REVIEWERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not errors, errors
        with Catalog(url) as cat:
            if cat.get(abandoned).state == "pending_review":  # workers were faster than the lease: wait it out
                time.sleep(max(0.0, (expires - datetime.now(timezone.utc)).total_seconds()) + 0.3)
                late, _ = sign_in(base, "r0")
                r = late.get("/next")
                assert r.headers["location"].startswith(f"/item/{abandoned}")  # the expired lease came back
                d = late.post("/api/decide", json={"item_id": abandoned, "decision": "accepted"})
                log.append(("r0", abandoned, d.status_code, d.json()))
            taken = [d for d in ReviewStore(cat).decisions(item_id=abandoned) if d.kind == "first"]
        assert len(taken) == 1 and taken[0].reviewer != "ghost"
        at = taken[0].at if taken[0].at.tzinfo else taken[0].at.replace(tzinfo=timezone.utc)
        assert at >= expires  # nobody could take it while the ghost's lease was live
        assert ghost.post("/api/decide", json={"item_id": abandoned, "decision": "rejected",
                                               "reason": "other", "comment": "late"}).status_code == 409

    with Catalog(url) as cat:
        store = ReviewStore(cat)
        items = {i.id: i for i in cat.items(ids)}
        decisions = [d for d in store.decisions() if d.kind in ("first", "second")]
    ok = [entry for entry in log if entry[2] == 200]
    assert all(entry[2] in (200, 409) for entry in log), [e for e in log if e[2] not in (200, 409)]
    # no decision lost: every acknowledged decision is in the log, and nothing else is
    assert sorted(e[3]["decision_id"] for e in ok) == sorted(d.id for d in decisions)
    by_id = {d.id: d for d in decisions}
    assert all((by_id[e[3]["decision_id"]].reviewer, by_id[e[3]["decision_id"]].item_id) == (e[0], e[1]) for e in ok)
    per_item = defaultdict(list)
    for d in decisions:
        per_item[d.item_id].append(d)
    double = {i for i in ids if id_fraction(i, "double") < SHARE}
    assert double, "the share should pick some of 40 items"
    for item_id in ids:
        kinds = Counter(d.kind for d in per_item[item_id])
        assert items[item_id].state in ("accepted", "rejected")
        if item_id in double:
            assert kinds == Counter(first=1, second=1), (item_id, kinds)
            first, second = sorted(per_item[item_id], key=lambda d: d.id)
            assert first.reviewer != second.reviewer
        else:
            assert kinds == Counter(first=1), (item_id, kinds)  # decided exactly once
        first = next(d for d in per_item[item_id] if d.kind == "first")
        assert (items[item_id].reviewer, items[item_id].state) == (first.reviewer, first.decision)
    with Catalog(url) as cat:
        ag = ReviewStore(cat).agreement()
    assert ag.pairs == len(double) and ag.open == 0
    assert len({e[0] for e in ok}) > 1  # the work really was shared
