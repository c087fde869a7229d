"""Issue 23 over HTTP and on the pictures: depth colours over measured pixels only, no 500 from
races, sign-in messages by code, forwarding headers ignored, no typed name in the log, undo units."""
from __future__ import annotations

import logging
import re
import threading

import cv2
import httpx
import numpy as np
import pytest

from review_ui.app import create_app
from review_ui.images import ImageCache, UNRELIABLE_RGB, colorize_depth, depth_colours, legend_pngs
from tasks.catalog.catalog import Catalog
from tasks.review.store import ReviewConflict, ReviewStore
from tests.review_ui.conftest import PASSWORD, serve, sign_in
from tests.review_ui.maps import make_processed


def _ramp() -> np.ndarray:
    """Every colour of the depth scale (BGR, 256 levels)."""
    return depth_colours(np.linspace(0, 1, 256, dtype=np.float32)[None, :])[0].astype(int)


def _far_from_scale(bgr: np.ndarray, margin: int = 40) -> bool:
    d = np.abs(bgr.reshape(-1, 1, 3).astype(int) - _ramp()[None]).sum(-1).min(1)
    return bool((d > margin).all())


def test_unreliable_pixels_are_neutral_and_out_of_the_scale(tmp_path):
    h, w = 40, 60
    depth = np.tile(np.linspace(5000, 30000, w).astype(np.uint16), (h, 1))
    depth[:8] = 65535  # sky
    reliable = np.ones((h, w), bool)
    reliable[20:, :15] = False  # a known unreliable block...
    depth[20:, :15] = 200  # ...holding near-zero values, as the process stage leaves them
    out = colorize_depth(depth, reliable)
    bad = out[20:, :15].reshape(-1, 3)
    assert (bad == UNRELIABLE_RGB[::-1]).all() and _far_from_scale(bad)  # neutral grey, no colour of the scale
    # the scale spans the measured pixels only: the near-zero values do not stretch it
    clean = depth.copy()
    clean[20:, :15] = 20000
    assert (colorize_depth(clean, reliable)[reliable & (depth != 65535)] ==
            out[reliable & (depth != 65535)]).all()
    nearest = out[8:20, 0].astype(int)  # the nearest measured pixels are the scale's near end (yellow)
    assert np.abs(nearest - _ramp()[0]).sum(-1).max() <= 12
    # hatched: the overlay's greys only, still neutral
    hatched = colorize_depth(depth, reliable, hatched=True)[20:, :15].reshape(-1, 3).astype(int)
    assert (hatched.max(1) - hatched.min(1) == 0).all() and len({tuple(p) for p in hatched}) >= 2
    # the legend's swatches are drawn by the same code: what the maps show
    legend = {k: cv2.imdecode(np.frombuffer(v, np.uint8), cv2.IMREAD_COLOR) for k, v in legend_pngs().items()}
    assert (legend["unreliable_plain"] == UNRELIABLE_RGB[::-1]).all()
    assert {tuple(p) for p in legend["unreliable"].reshape(-1, 3)} <= {tuple(p) for p in hatched}


def test_maps_and_thumbnails_of_an_item_draw_its_mask_grey(review_env):
    url, root = review_env
    with Catalog(url) as cat:
        (item_id,) = make_processed(cat, root, 1, width=96, height=64)  # unreliable: the left 12 columns
        item = cat.get(item_id)
    cache = ImageCache(root, thumbnail_px=64)
    depth = cv2.imread(str(cache.path_for(item, "depth")), cv2.IMREAD_COLOR)
    strip = depth[20:, :12].reshape(-1, 3)
    assert (strip == UNRELIABLE_RGB[::-1]).all()
    assert _far_from_scale(depth[20:, 20:].reshape(-1, 3), 0) is False  # the rest is in the scale
    overlay = cv2.imread(str(cache.path_for(item, "mask")), cv2.IMREAD_UNCHANGED)
    assert overlay[20:, :12, 3].any() and not overlay[:, 12:, 3].any()  # the hatch covers the strip only
    thumb = cv2.imread(str(cache.path_for(item, "thumb")), cv2.IMREAD_COLOR).astype(int)
    tw = thumb.shape[1] // 2  # photo | depth
    grey = thumb[20:, tw + 1: tw + 7].reshape(-1, 3)
    assert (grey.max(1) - grey.min(1) <= 16).all()  # neutral (JPEG noise aside)
    assert not _far_from_scale(thumb[20:, tw + 20:].reshape(-1, 3), 30)
    tmask = cv2.imread(str(cache.path_for(item, "thumbmask")), cv2.IMREAD_UNCHANGED)
    assert tmask.shape[:2] == thumb.shape[:2] and tmask[20:, tw: tw + 10, 3].any()


@pytest.fixture
def two(review_env):
    url, root = review_env
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 50)
        store = ReviewStore(cat)
        store.add_reviewer("alice", PASSWORD)
        store.add_reviewer("bob", PASSWORD)
    return url, root, ids


def test_fifty_simultaneous_double_opens_give_no_500(two):
    url, root, ids = two
    with serve(create_app(url, root, secret_key=b"r" * 32)) as base:
        alice, _ = sign_in(base, "alice")
        bob, _ = sign_in(base, "bob")
        statuses: list[tuple[str, int, str]] = []
        for item_id in ids:
            gate = threading.Barrier(2)

            def open_(client: httpx.Client, who: str) -> None:
                gate.wait()
                r = client.get(f"/item/{item_id}")
                statuses.append((who, r.status_code, "mode-review" if "mode-review" in r.text else
                                 "mode-locked" if "mode-locked" in r.text else r.text[:200]))

            threads = [threading.Thread(target=open_, args=(c, n)) for c, n in ((alice, "alice"), (bob, "bob"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
        assert len(statuses) == 100
        assert all(code in (200, 409) for _, code, _ in statuses), [s for s in statuses if s[1] not in (200, 409)]
        # each item went to exactly one of them (the other saw it read only)
        assert sum(mode == "mode-review" for _, _, mode in statuses) >= 50
    with Catalog(url) as cat:
        holders = ReviewStore(cat).live_leases(ids)
    assert len(holders) <= 2  # leases follow attention: each holds at most the item last opened


def test_decisions_conflicts_are_409_and_unknown_ids_404(two):
    url, root, ids = two
    with serve(create_app(url, root, secret_key=b"r" * 32)) as base:
        alice, _ = sign_in(base, "alice")
        bob, _ = sign_in(base, "bob")
        alice.get(f"/item/{ids[0]}")
        r = bob.post("/api/decide", json={"item_id": ids[0], "decision": "accepted"})
        assert r.status_code == 409 and "alice" in r.json()["error"]
        r = alice.post("/api/decide", json={"item_id": "no_such_item", "decision": "accepted"})
        assert r.status_code == 404
        assert bob.post("/api/undo", json={"decision_id": 1}).status_code == 409


def test_login_page_shows_only_its_own_messages(two):
    url, root, _ = two
    with serve(create_app(url, root, secret_key=b"r" * 32)) as base:
        c = httpx.Client(base_url=base)
        text = "Session expired: call IT at 555-0100"
        page = c.get("/login", params={"error": text})
        assert "555-0100" not in page.text and "call IT" not in page.text and 'id="login-error"' not in page.text
        assert "wrong name or password" in c.get("/login?error=failed").text
        assert "try again in 7 s" in c.get("/login?error=throttled&wait=7").text
        assert "try again in" in c.get("/login?error=throttled&wait=<b>").text  # not a number: no echo
        assert "<b>" not in c.get("/login?error=throttled&wait=<b>").text.split("<main>")[1].split("</form>")[0]


def _attempt(c: httpx.Client, name: str, password: str, **headers: str) -> httpx.Response:
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    return c.post("/login", data={"username": name, "password": password, "csrf_token": token}, headers=headers)


def test_rotating_forwarded_for_gives_no_fresh_attempts(two):
    url, root, _ = two
    app = create_app(url, root, secret_key=b"r" * 32, login_free_attempts=2, login_free_attempts_account=3,
                     login_free_attempts_address=6, login_lockout_s=60)
    with serve(app) as base:
        c = httpx.Client(base_url=base)
        for n in range(6):  # six names, each from "another" address by the header
            r = _attempt(c, f"user{n}", "guess", **{"X-Forwarded-For": f"10.0.0.{n}"})
            assert r.headers["location"].endswith("error=failed")
        # the header is ignored: the real address is locked now, for every name, the right password too
        r = _attempt(c, "alice", PASSWORD, **{"X-Forwarded-For": "10.9.9.9"})
        assert "error=throttled" in r.headers["location"] and "redweb_session" not in r.cookies
    # behind a named proxy, the header is believed: each client address counts on its own
    app = create_app(url, root, secret_key=b"r" * 32, login_free_attempts=2, login_free_attempts_address=6,
                     login_lockout_s=60, trusted_proxies=("127.0.0.1",))
    with serve(app) as base:
        c = httpx.Client(base_url=base)
        for n in range(6):
            _attempt(c, f"user{n}", "guess", **{"X-Forwarded-For": "10.0.0.1"})
        assert "error=throttled" in _attempt(c, "alice", PASSWORD, **{"X-Forwarded-For": "10.0.0.1"}).headers[
            "location"]
        r = _attempt(c, "alice", PASSWORD, **{"X-Forwarded-For": "10.0.0.2"})
        assert r.headers["location"] == "/next" and "redweb_session" in r.cookies


def test_no_typed_name_in_the_log_or_the_url(two, caplog):
    url, root, _ = two
    secret = "hunter2-typed-in-the-name-field"
    caplog.set_level(logging.INFO)
    with serve(create_app(url, root, secret_key=b"r" * 32, login_free_attempts=2)) as base:
        c = httpx.Client(base_url=base)
        for _ in range(3):
            r = _attempt(c, secret, "x")
            assert secret not in r.headers["location"] and "hunter2" not in r.headers["location"]
        page = c.get(r.headers["location"])
        assert f'value="{secret}"' in page.text  # the name comes back to the form, by a cookie
    text = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "sign-in failed for name#" in text and "locked for" in text
    assert "hunter2" not in text


def test_bulk_is_one_undoable_unit_and_overrides_are_not_offered(catalog, tmp_path):
    ids = make_processed(catalog, tmp_path, 6)
    store = ReviewStore(catalog)
    for i in ids[:4]:
        store.lease(i, "alice")
        store.decide(i, "alice", "accepted", via="grid", group="g1")
    store.lease(ids[4], "alice")
    store.decide(ids[4], "alice", "accepted")
    store.decide(ids[4], "bob", "rejected", reason="misaligned", override=True)
    assert store.last_action("alice").data == {"group": "g1"}  # the overridden one is not offered
    mine, later = store.overridden("alice")
    assert (mine.item_id, later.reviewer) == (ids[4], "bob")
    with pytest.raises(ReviewConflict, match="bob rejected it after your accept"):
        store.undo_action("alice", item_id=ids[4])
    done = store.undo_action("alice")
    assert set(done.item_ids) == set(ids[:4]) and done.describe() == "your bulk accept of 4 items"
    assert [catalog.get(i).state for i in ids[:4]] == ["pending_review"] * 4
    assert store.live_leases(ids[:4]) == {}  # a bulk undo gives the items back to the queue


def test_review_refuses_to_start_without_accounts(data_root, capsys):
    from flows.cli import main

    assert main(["review", "--data-root", str(data_root)]) == 2
    err = capsys.readouterr().err
    assert "no reviewer accounts" in err and "--add-user" in err and "--allow-no-users" in err
