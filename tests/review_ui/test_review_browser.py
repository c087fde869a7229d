"""The review app in a real headless Chromium (Debian's package), driven by Playwright.

Run with scripts/test.sh (installs chromium); REDWEB_CHROMIUM overrides the executable.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from review_ui.app import create_app
from tasks.catalog.catalog import Catalog
from tasks.review.store import ReviewStore
from tests.review_ui.conftest import PASSWORD, serve
from tests.review_ui.maps import make_processed

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("REDWEB_CHROMIUM", "/usr/bin/chromium")
REASONS = ["not_stereo", "anaglyph", "misaligned", "sky_leak", "wrong_view_order", "noisy_map", "bad_crop", "other"]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"no Chromium at {CHROMIUM}: run the tests with scripts/test.sh")
        pytest.skip(f"no Chromium at {CHROMIUM}: run the tests with scripts/test.sh")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM,
                               args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    p = context.new_page()
    p.set_default_timeout(15000)
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(str(exc)))
    p.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    yield p
    context.close()
    assert not [e for e in errors if "401" not in e and "409" not in e], errors  # no JS errors


def current_id(page) -> str | None:
    el = page.query_selector("#item-id")
    return el.inner_text() if el else None


def press_and_wait(page, key: str) -> None:
    """Press ``key`` on an item page and wait until the next page (another item or 'queue empty') is ready."""
    before = current_id(page)
    page.keyboard.press(key)
    page.wait_for_function(
        """(before) => { const e = document.getElementById('item-id');
              if (document.getElementById('queue-empty')) return true;
              return document.body.dataset.ready === '1' && e && e.textContent !== before; }""", arg=before)


def sign_in_with_keyboard(page, base: str, name: str) -> None:
    page.goto(base + "/next")
    assert "/login" in page.url
    # autofocus lands after load; typing before it would lose keys on a busy machine
    page.wait_for_function("() => document.activeElement && document.activeElement.id === 'username'")
    page.keyboard.type(name)  # the name field has autofocus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.body.dataset.ready === '1' || !!document.getElementById('queue-empty')")


@pytest.fixture
def app_env(tmp_path):
    root = tmp_path / "data"
    url = f"sqlite:///{root / 'catalog.db'}"
    return url, root


def test_review_flow_in_browser(page, app_env, tmp_path):
    url, root = app_env
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 6, width=320, height=240)
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
    with serve(create_app(url, root, secret_key=b"b" * 32)) as base:
        sign_in_with_keyboard(page, base, "alice")
        assert page.inner_text("#me") == "alice"
        first = current_id(page)
        assert first == ids[0]
        # every image on the page loaded from the app
        assert page.evaluate("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")

        # overlay opacity slider: drag by value, then nudge with the keyboard
        # overlays are transparent where they mark nothing (the image must show through them)
        # (depth under the photo, the unreliable overlay on both panes, sky)
        assert page.eval_on_selector_all(".stack .layer", "es => es.map(e => getComputedStyle(e).backgroundColor)") \
            == ["rgba(0, 0, 0, 0)"] * 4
        page.fill("#opacity", "80")
        assert page.eval_on_selector("#img-mask", "e => getComputedStyle(e).opacity") == "0.8"
        assert page.inner_text("#opacity-value") == "80%"
        page.keyboard.press("]")
        assert page.eval_on_selector("#img-sky", "e => getComputedStyle(e).opacity") == "0.9"
        page.keyboard.press("m")  # hide the unreliable overlay: on the photo and on the depth
        assert not page.is_visible("#img-mask") and not page.is_visible("#img-depth-mask")
        page.keyboard.press("m")
        page.keyboard.press("v")  # overlay view: depth drawn over the image
        assert "ovl" in page.get_attribute("#viewer", "class") and page.is_visible("#img-depth-layer")
        page.keyboard.press("v")
        assert page.is_visible("#img-depth") and not page.is_visible("#img-depth-layer")
        page.screenshot(path=str(tmp_path / "item.png"), full_page=True)

        # accept with the keyboard: auto-advances to the next item
        press_and_wait(page, "a")
        second = current_id(page)
        assert second == ids[1]
        # reject with a reason: R, 4 (sky leak), Enter (issue 14: a comment may come before Enter)
        page.keyboard.press("r")
        assert page.is_visible("#reject-panel")
        page.keyboard.press("4")
        press_and_wait(page, "Enter")
        with Catalog(url) as cat:
            a, b = cat.get(first), cat.get(second)
        assert (a.state, a.reviewer) == ("accepted", "alice")
        assert (b.state, b.reason, b.reviewer) == ("rejected", "sky_leak", "alice")

        # undo: back to the rejected item, which is pending again
        press_and_wait(page, "u")
        assert current_id(page) == second
        with Catalog(url) as cat:
            assert cat.get(second).state == "pending_review" and cat.get(second).reviewer is None
        # reject with 'other' + comment
        page.keyboard.press("r")
        page.keyboard.press("8")
        assert page.evaluate("document.activeElement.id") == "comment"
        page.keyboard.type("two different photos")
        press_and_wait(page, "Control+Enter")
        with Catalog(url) as cat:
            b = cat.get(second)
        assert (b.state, b.reason, b.reason_detail) == ("rejected", "other", "two different photos")

        # previous: the last decided item; A there asks for an explicit override, Enter confirms
        press_and_wait(page, "ArrowLeft")
        assert current_id(page) == second and "mode-decided" in page.get_attribute("body", "class")
        page.keyboard.press("a")
        assert page.is_visible("#override-panel")
        press_and_wait(page, "Enter")
        with Catalog(url) as cat:
            assert cat.get(second).state == "accepted"
            kinds = [d.kind for d in ReviewStore(cat).decisions(item_id=second)]
        assert kinds == ["first", "undo", "first", "override"]

        # grid: select two tiles with the keyboard and bulk-reject them
        page.goto(base + "/grid")
        page.wait_for_function("() => document.body.dataset.ready === '1'")
        tiles = page.query_selector_all(".tile")
        assert [t.get_attribute("data-id") for t in tiles] == ids[2:]  # the review states by default
        page.keyboard.press("ArrowRight")
        page.keyboard.press("x")
        page.keyboard.press("ArrowRight")
        page.keyboard.press("x")
        assert page.inner_text("#selected-count") == "2"
        page.select_option("#bulk-reason", "bad_crop")
        page.screenshot(path=str(tmp_path / "grid.png"), full_page=True)
        with page.expect_navigation():
            page.click("#bulk-reject")
        with Catalog(url) as cat:
            got = {i: (cat.get(i).state, cat.get(i).reason) for i in ids[2:4]}
            vias = {d.via for d in ReviewStore(cat).decisions() if d.item_id in ids[2:4]}
        assert got == {ids[2]: ("rejected", "bad_crop"), ids[3]: ("rejected", "bad_crop")} and vias == {"grid"}
        assert [t.get_attribute("data-id") for t in page.query_selector_all(".tile")] == ids[4:]
        page.goto(base + "/stats")
        assert "alice" in page.inner_text("#by-reviewer")


@pytest.mark.slow
def test_fifty_maps_by_keyboard_then_export(page, app_env, tmp_path, monkeypatch, prefect_test_server):
    """Issue 4 'done when': 50 maps reviewed in a browser with the keyboard alone; `redweb export`
    then contains exactly the accepted ones, with correct manifest rows."""
    url, root = app_env
    monkeypatch.delenv("REDWEB_DATABASE_URL", raising=False)
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 50)
        ReviewStore(cat).add_reviewer("annotator", PASSWORD)
    plan: dict[str, str] = {}
    with serve(create_app(url, root, secret_key=b"c" * 32)) as base:
        sign_in_with_keyboard(page, base, "annotator")
        for n in range(50):
            item_id = current_id(page)
            assert item_id is not None, f"queue ended after {n} items"
            if n % 3 == 1:  # every third map rejected, reasons 1..7 in turn
                page.keyboard.press("r")
                page.keyboard.press(str(n % 7 + 1))
                press_and_wait(page, "Enter")
                plan[item_id] = REASONS[n % 7]
            else:
                press_and_wait(page, "a")
                plan[item_id] = "accepted"
        assert page.query_selector("#queue-empty") is not None
    assert sorted(plan) == sorted(ids)
    accepted = sorted(i for i, d in plan.items() if d == "accepted")

    from flows.cli import main

    out = tmp_path / "dataset"
    assert main(["export", "--data-root", str(root), "--out", str(out)]) == 0
    with open(out / "manifest.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["id"] for r in rows) == accepted
    assert sorted(p.stem for p in (out / "imgs").iterdir()) == accepted
    assert sorted(p.stem for p in (out / "RDs").iterdir()) == accepted
    assert sorted(p.stem for p in (out / "masks").iterdir()) == accepted
    with Catalog(url) as cat:
        items = {i.id: i for i in cat.items(ids)}
    for r in rows:
        item = items[r["id"]]
        assert (r["state"], r["reviewer"], r["source"], r["source_id"]) == ("accepted", "annotator", "local", item.source_id)
        assert r["decided_at"] and r["decided_at"].startswith(str(item.decided_at.date()))
        assert (r["url"], r["owner"], r["license"]) == (item.url, item.owner, item.license)
        assert (r["crop_x0"], r["crop_x1"], r["width"], r["height"]) == ("5", "101", "96", "64")
        assert r["split"] in ("train", "val") and float(r["score"]) == pytest.approx(item.score)
    for item_id, decision in plan.items():
        if decision != "accepted":
            assert (items[item_id].state, items[item_id].reason) == ("rejected", decision)
