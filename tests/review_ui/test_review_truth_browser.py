"""Issue 23 in a real Chromium: grey unreliable pixels in the item view and the grid, leases that
follow attention, undo of a bulk action and after an override, the quality panel in view."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest

from review_ui.app import create_app
from tasks.catalog.catalog import Catalog
from tasks.review.store import ReviewStore
from tests.review_ui.conftest import PASSWORD, serve, sign_in
from tests.review_ui.maps import make_processed
from tests.review_ui.test_review_browser import browser, current_id, page, press_and_wait  # noqa: F401
from tests.review_ui.test_review_browser import sign_in_with_keyboard

pytestmark = pytest.mark.browser
SHOTS = Path(os.environ.get("REDWEB_SCREENSHOT_DIR", "")) if os.environ.get("REDWEB_SCREENSHOT_DIR") else None


def _rgb(png: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def _env(tmp_path, n: int, **kw):
    root = tmp_path / "data"
    url = f"sqlite:///{root / 'catalog.db'}"
    with Catalog(url) as cat:
        ids = make_processed(cat, root, n, **kw)
        store = ReviewStore(cat)
        store.add_reviewer("alice", PASSWORD)
        store.add_reviewer("bob", PASSWORD)
    return url, root, ids


def _shot(page, name: str, tmp_path) -> None:
    page.screenshot(path=str((SHOTS or tmp_path) / name))


def test_unreliable_pixels_are_grey_in_the_item_view_and_the_grid(page, tmp_path):
    url, root, ids = _env(tmp_path, 3, width=320, height=240)  # unreliable: the left 40 columns
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
    with serve(create_app(url, root, secret_key=b"g" * 32)) as base:
        sign_in_with_keyboard(page, base, "alice")
        _shot(page, "item-view.png", tmp_path)
        depth = _rgb(page.locator("#stack-depth").screenshot())
        h, w = depth.shape[:2]
        strip = depth[h // 3: -4, 2: int(w / 8) - 3].reshape(-1, 3)  # the unreliable strip (not sky)
        assert ((strip.max(1) - strip.min(1)) <= 6).all()  # hatched grey: every pixel neutral
        assert len({tuple(p) for p in strip}) >= 2  # hatched, not flat, while the overlay is on
        page.keyboard.press("m")
        assert "off" in page.inner_text("#flash")
        page.wait_for_timeout(100)
        plain = _rgb(page.locator("#stack-depth").screenshot())[h // 3: -4, 2: int(w / 8) - 3].reshape(-1, 3)
        assert ((plain.max(1) - plain.min(1)) <= 6).all() and np.ptp(plain.mean(1)) <= 6  # plain grey
        assert page.is_visible("#legend-unreliable-plain") and not page.is_visible("#legend-unreliable")
        assert not page.is_visible("#img-mask")  # the photo's overlay went too
        page.keyboard.press("m")
        page.keyboard.press("v")
        assert "overlay" in page.inner_text("#flash")  # V says what it did
        page.keyboard.press("v")

        page.goto(base + "/grid")
        page.wait_for_function("() => document.body.dataset.ready === '1' && "
                               "Array.from(document.images).every(i => i.complete)")
        _shot(page, "grid.png", tmp_path)
        tile = _rgb(page.locator(".tile .thumb-stack").first.screenshot())
        th, tw = tile.shape[:2]
        img_w = round(tw / 2)  # photo | depth, both 320x240 scaled to the tile
        depth_strip = tile[th // 2: th - 10, img_w + 3: img_w + img_w // 8 - 3].reshape(-1, 3)
        assert ((depth_strip.max(1) - depth_strip.min(1)) <= 20).all()  # neutral (JPEG, scaling)
        assert np.ptp(depth_strip.mean(1)) > 40  # hatched: the overlay is on
        measured = tile[th // 2: th - 10, img_w + img_w // 4: tw - 4].reshape(-1, 3)
        assert (measured.max(1) - measured.min(1)).mean() > 60  # the measured pixels are coloured
        page.keyboard.press("m")
        assert not page.locator(".thumb-mask").first.is_visible()


def test_browsing_ten_items_leaves_nine_for_the_other(page, browser, tmp_path):  # noqa: F811
    url, root, ids = _env(tmp_path, 12)
    with serve(create_app(url, root, secret_key=b"h" * 32)) as base:
        sign_in_with_keyboard(page, base, "alice")
        seen = [current_id(page)]
        for _ in range(9):
            press_and_wait(page, "ArrowRight")
            seen.append(current_id(page))
        assert len(set(seen)) == 10  # → moves on through the queue, never back to the one just left
        with Catalog(url) as cat:
            held = ReviewStore(cat).live_leases(ids)
        assert list(held.values()) == ["alice"] and list(held) == [seen[-1]]
        bob, _ = sign_in(base, "bob")
        got = set()
        for _ in range(11):
            r = bob.get("/next", follow_redirects=False)
            if not r.headers.get("location", "").startswith("/item/"):
                break
            item_id = r.headers["location"].split("/item/")[1].split("?")[0]
            got.add(item_id)
            assert bob.post("/api/decide", json={"item_id": item_id, "decision": "accepted"}).status_code == 200
        assert set(seen[:-1]) <= got and seen[-1] not in got and len(got) == 11
        empty = bob.get("/next")
        assert "1 item is held by other reviewers" in empty.text and "comes back" in empty.text.replace("\n", " ") \
            or "held by other reviewers" in empty.text


def test_undo_after_a_bulk_accept_restores_all_of_it(page, tmp_path):
    url, root, ids = _env(tmp_path, 8)
    with serve(create_app(url, root, secret_key=b"k" * 32)) as base:
        sign_in_with_keyboard(page, base, "alice")
        page.goto(base + "/grid")
        page.wait_for_function("() => document.body.dataset.ready === '1'")
        page.keyboard.press("*")  # select the page: 8 items, leased while selected
        page.wait_for_timeout(300)
        with Catalog(url) as cat:
            assert set(ReviewStore(cat).live_leases(ids)) == set(ids)
        page.keyboard.press("Shift+A")
        assert page.is_visible("#confirm-panel") and "Accept 8 items" in page.inner_text("#confirm-text")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        page.wait_for_function("() => document.body.dataset.ready === '1'")
        with Catalog(url) as cat:
            assert {cat.get(i).state for i in ids} == {"accepted"}
        assert "bulk accepted 8 items" in page.inner_text("#last-action")
        with page.expect_navigation():
            page.keyboard.press("u")
        page.wait_for_function("() => document.body.dataset.ready === '1'")
        assert "Undid your bulk accept of 8 items" in page.inner_text("#flash")
        with Catalog(url) as cat:
            assert {cat.get(i).state for i in ids} == {"pending_review"}
            assert ReviewStore(cat).live_leases(ids) == {}


def test_undo_after_someone_elses_override_is_refused_with_a_message(page, tmp_path):
    url, root, ids = _env(tmp_path, 3)
    with serve(create_app(url, root, secret_key=b"o" * 32)) as base:
        sign_in_with_keyboard(page, base, "alice")
        first = current_id(page)
        press_and_wait(page, "a")  # accept; the next item shows "You accepted #first — U to undo"
        assert first in page.inner_text("#last-action")
        with Catalog(url) as cat:
            ReviewStore(cat).decide(first, "bob", "rejected", reason="misaligned", override=True)
        page.keyboard.press("u")
        page.wait_for_function("() => document.getElementById('flash').textContent.includes('bob')")
        assert "bob rejected it after your accept" in page.inner_text("#flash")
        with Catalog(url) as cat:
            assert cat.get(first).state == "rejected"
        page.reload()
        page.wait_for_function("() => document.body.dataset.ready === '1'")
        assert "no longer stands" in page.inner_text("#undo-blocked") and not page.is_visible("#last-action")


def test_quality_panel_in_view_and_reject_comment_survives_a_reload(page, tmp_path):
    url, root, ids = _env(tmp_path, 2, width=513, height=385)
    with serve(create_app(url, root, secret_key=b"q" * 32)) as base:
        sign_in_with_keyboard(page, base, "alice")
        box = page.locator("#quality-panel").bounding_box()
        assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900, box
        assert page.evaluate("window.scrollY") == 0
        assert "What to check" in page.inner_text("#what-to-check")
        assert "wrong view order" in page.inner_text("#flip-or-reject")
        # side by side in a row: the two maps use the window's width
        panes = [page.locator(s).bounding_box() for s in ("#stack-image", "#stack-depth")]
        assert abs(panes[0]["y"] - panes[1]["y"]) < 2 and panes[1]["x"] > panes[0]["x"] + panes[0]["width"] - 1
        _shot(page, "item-quality-panel.png", tmp_path)
        page.keyboard.press("r")
        page.keyboard.press("8")
        page.keyboard.type("two different photos, see the fence")
        page.reload()
        page.wait_for_function("() => document.body.dataset.ready === '1'")
        assert page.is_visible("#reject-panel")
        assert page.input_value("#comment") == "two different photos, see the fence"
        press_and_wait(page, "Enter")
        with Catalog(url) as cat:
            assert cat.get(ids[0]).reason_detail == "two different photos, see the fence"
