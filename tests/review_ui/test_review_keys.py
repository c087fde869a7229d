"""Issue 14 and the review part of issue 10 in a real headless Chromium: keys that cannot run away,
reason + comment in one flow, undo from the empty page, lease heartbeat, read-only when taken,
and the view-order flip (F) with an exact undo, on maps made by the real process stage."""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from review_ui.app import create_app
from tasks.catalog.catalog import Catalog, State
from tasks.review.store import ReviewStore
from tasks.labels.settings import ProcessConfig
from tests.review_ui.conftest import PASSWORD, serve
from tests.review_ui.maps import make_processed
from tests.review_ui.test_review_browser import (  # noqa: F401 - fixtures
    browser,
    current_id,
    page,
    press_and_wait,
    sign_in_with_keyboard,
)

pytestmark = pytest.mark.browser


def env(tmp_path: Path):
    root = tmp_path / "data"
    return f"sqlite:///{root / 'catalog.db'}", root


def flash_text(page) -> str:
    return page.inner_text("#flash")


def wait_ready(page) -> None:
    page.wait_for_function("() => document.body.dataset.ready === '1'")


def test_holding_a_accepts_exactly_one_and_waits_for_images(page, tmp_path):
    url, root = env(tmp_path)
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 4, width=320, height=240)
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
    held = []
    with serve(create_app(url, root, secret_key=b"h" * 32)) as base:
        # the depth map of the first item is held back by the network: A must be refused meanwhile
        page.route("**/img/*/depth*", lambda route: held.append(route))
        page.goto(base + "/next")
        page.wait_for_function("() => document.activeElement && document.activeElement.id === 'username'")
        page.keyboard.type("alice")
        page.keyboard.press("Tab")
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("#item-id")
        page.wait_for_function("() => document.body.dataset.ready !== '1'")
        page.keyboard.press("a")
        # the page answers in its key handler; on a loaded machine that can take a moment
        page.wait_for_function("() => document.querySelector('#flash').innerText.includes('images still loading')",
                               timeout=10_000)
        assert "images still loading" in flash_text(page)
        for route in held:
            route.continue_()
        page.unroute("**/img/*/depth*")
        wait_ready(page)
        assert current_id(page) == ids[0]
        # hold A down for 1.5 s: one keydown, then auto-repeats (Playwright sends repeat=true)
        t_end = time.monotonic() + 1.5
        while time.monotonic() < t_end:
            page.keyboard.down("a")
            page.wait_for_timeout(50)
        page.keyboard.up("a")
        wait_ready(page)
        page.wait_for_timeout(300)
        with Catalog(url) as cat:
            states = [cat.get(i).state for i in ids]
        assert states == ["accepted", "pending_review", "pending_review", "pending_review"]
        assert current_id(page) == ids[1]
        # the next item says what just happened and how to take it back
        assert page.inner_text("#last-action").startswith(f"You accepted #{ids[0]}") and \
            "U to undo" in page.inner_text("#last-action")


def test_reason_comment_enter_and_feedback_for_every_key(page, tmp_path):
    url, root = env(tmp_path)
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 2, width=320, height=240)
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
    with serve(create_app(url, root, secret_key=b"r" * 32)) as base:
        sign_in_with_keyboard(page, base, "alice")
        page.keyboard.press("q")
        assert "Q does nothing here" in flash_text(page)
        page.keyboard.press("r")
        assert page.is_visible("#reject-panel") and "press 1–8" in flash_text(page)
        page.keyboard.press("9")
        assert "no reason 9" in flash_text(page)
        page.keyboard.press("3")  # misaligned: picked, the comment box has the focus, nothing sent yet
        assert page.evaluate("document.activeElement.id") == "comment"
        assert "misaligned" in flash_text(page)
        with Catalog(url) as cat:
            assert cat.get(ids[0]).state == "pending_review"
        page.keyboard.type("right view is from another shot")
        press_and_wait(page, "Enter")
        with Catalog(url) as cat:
            item = cat.get(ids[0])
        assert (item.state, item.reason, item.reason_detail) == ("rejected", "misaligned",
                                                                "right view is from another shot")
        assert "rejected (misaligned)" in page.inner_text("#last-action")
        # the hint tells the real flow
        assert "then Enter" in page.inner_text("#reject-hint")


def test_undo_from_the_empty_page(page, tmp_path):
    url, root = env(tmp_path)
    with Catalog(url) as cat:
        (item_id,) = make_processed(cat, root, 1, width=320, height=240)
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
    with serve(create_app(url, root, secret_key=b"u" * 32)) as base:
        sign_in_with_keyboard(page, base, "alice")
        press_and_wait(page, "a")
        assert page.query_selector("#queue-empty") is not None
        assert f"#{item_id}" in page.inner_text("#last-action")
        page.keyboard.press("x")
        assert "does nothing here" in flash_text(page)
        with page.expect_navigation():
            page.keyboard.press("u")
        wait_ready(page)
        assert current_id(page) == item_id
        with Catalog(url) as cat:
            assert cat.get(item_id).state == "pending_review"


def test_heartbeat_keeps_the_lease_and_a_taken_item_turns_read_only(page, tmp_path):
    url, root = env(tmp_path)
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 2, width=320, height=240)
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
    lease_s = 2.0  # the page renews every lease_s / 3 = 1 s (at least 1 s)
    with serve(create_app(url, root, secret_key=b"l" * 32, lease_timeout_s=lease_s)) as base:
        sign_in_with_keyboard(page, base, "alice")
        assert current_id(page) == ids[0]
        page.wait_for_timeout(int(3 * lease_s * 1000))  # three lease lifetimes with the page open
        with Catalog(url) as cat:
            holder = ReviewStore(cat, lease_timeout_s=lease_s).lease_holder(ids[0])
        assert holder is not None and holder.reviewer == "alice"
        press_and_wait(page, "a")  # still valid: no "lease expired"
        with Catalog(url) as cat:
            assert cat.get(ids[0]).state == "accepted"
        # now bob takes the next item from under the open page (as after a long-hidden tab)
        assert current_id(page) == ids[1]
        with Catalog(url) as cat:
            from sqlalchemy import update

            from tasks.review.store import Lease

            with cat.session() as s:
                s.execute(update(Lease).where(Lease.item_id == ids[1]).values(reviewer="bob"))
        page.wait_for_function("() => document.body.classList.contains('mode-locked')", timeout=5000)
        assert "Taken by bob" in page.inner_text("#notice")
        assert page.is_disabled("#btn-accept") and page.is_disabled("#btn-reject")
        page.keyboard.press("a")
        assert "read only" in flash_text(page)
        with Catalog(url) as cat:
            assert cat.get(ids[1]).state == "pending_review"


def _set_visibility(page, state: str) -> None:
    page.evaluate("""(state) => {
        Object.defineProperty(document, 'visibilityState', {configurable: true, get: () => state});
        document.dispatchEvent(new Event('visibilitychange')); }""", state)


def test_hidden_page_lets_its_lease_go_and_turns_read_only_when_shown_again(page, tmp_path):
    url, root = env(tmp_path)
    with Catalog(url) as cat:
        ids = make_processed(cat, root, 2, width=320, height=240)
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
    lease_s = 2.0
    with serve(create_app(url, root, secret_key=b"v" * 32, lease_timeout_s=lease_s)) as base:
        sign_in_with_keyboard(page, base, "alice")
        assert current_id(page) == ids[0]
        _set_visibility(page, "hidden")  # a background tab does not hold on to the item
        page.wait_for_timeout(int(1.5 * lease_s * 1000))
        with Catalog(url) as cat:
            store = ReviewStore(cat)
            assert store.lease_holder(ids[0]) is None
            store.lease(ids[0], "bob")  # so bob may take it
        _set_visibility(page, "visible")  # back to the tab: it checks at once and turns read-only
        page.wait_for_function("() => document.body.classList.contains('mode-locked')", timeout=3000)
        assert "Taken by bob" in page.inner_text("#notice")


# ---- the view-order flip (issue 10) on real stereo -------------------------------------------------
def _real_item(cat: Catalog, root: Path, name: str = "moto") -> str:
    """The Middlebury motorcycle (scikit-image) packed cross-eyed but recorded as parallel: the
    process stage keeps the given order, so its depth comes out inverted until a reviewer flips it."""
    from skimage import data

    from tasks.labels.correspondence import build_backend
    from tasks.labels.process import process_item
    from tasks.labels.sky import build_sky

    left, right, _ = data.stereo_motorcycle()
    s = 256 / left.shape[1]
    left, right = (cv2.resize(v, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for v in (left, right))
    first, second = right, left  # stored the wrong way round
    h, w = first.shape[:2]
    pairs = root / "pairs" / "tmp"
    pairs.mkdir(parents=True, exist_ok=True)
    item, _ = cat.discover(source="local", source_id=f"{name}.png", title="motorcycle, views swapped")
    final = root / "pairs" / item.id
    shutil.move(str(pairs), str(final))
    cv2.imwrite(str(final / "left.png"), first[..., ::-1])
    cv2.imwrite(str(final / "right.png"), second[..., ::-1])
    cat.transition(item.id, State.DOWNLOADED, raw_path=f"raw/{item.id}.png", raw_width=2 * w, raw_height=h)
    cat.transition(item.id, State.SPLIT, left_path=f"pairs/{item.id}/left.png",
                   right_path=f"pairs/{item.id}/right.png", view_width=w, view_height=h,
                   stereo_format="side_by_side", swapped=False, view_order="parallel",
                   info={"views": {"left": [0, 0, w, h], "right": [w, 0, 2 * w, h]}})
    state = process_item(cat, item.id, root, backend=build_backend("dis"), sky_backend=build_sky("heuristic"),
                         order="given", settings=ProcessConfig(crf=False))
    assert state in ("pending_review", "auto_rejected"), state
    if state == "auto_rejected":  # keep it in the queue either way
        cat.transition(item.id, State.PROCESSED)
        cat.transition(item.id, State.PENDING_REVIEW)
    # as if the data had decided (wrongly): order="given" records the reviewer as the source
    item = cat.get(item.id)
    cat.update(item.id, info={**item.info, "view_order_source": "data"},
               quality={**item.quality, "view_order_source": "data", "view_order_uncertain": False})
    return item.id


def _digest(folder: Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.iterdir()) if f.is_file()}


def _fields(item) -> dict:
    return {c.key: getattr(item, c.key) for c in item.__table__.columns if c.key != "updated_at"}


def _near_is_bright(page_png: bytes) -> float:
    """Mean brightness of the bottom fifth minus the top fifth of the depth pane (the motorcycle's
    near parts fill the bottom): positive when near shows bright (yellow), as the legend says."""
    img = cv2.imdecode(np.frombuffer(page_png, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    h = img.shape[0]
    return float(img[-h // 5:].mean() - img[: h // 5].mean())


@pytest.mark.slow
def test_flip_view_order_then_undo_restores_exactly(page, tmp_path):
    url, root = env(tmp_path)
    with Catalog(url) as cat:
        item_id = _real_item(cat, root)
        ReviewStore(cat).add_reviewer("alice", PASSWORD)
        before, before_files = _fields(cat.get(item_id)), _digest(root / "maps" / item_id)
    shots = Path(os.environ.get("REDWEB_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    app = create_app(url, root, secret_key=b"f" * 32, process=ProcessConfig(crf=False, correspondence="dis"))
    with serve(app) as base:
        sign_in_with_keyboard(page, base, "alice")
        assert current_id(page) == item_id
        assert "(from the data)" in page.inner_text("#view-order-flag") and \
            "F flips it" in page.inner_text("#view-order-flag")
        page.screenshot(path=str(shots / "review-side-by-side.png"))
        inverted = _near_is_bright(page.locator("#img-depth").screenshot())
        page.keyboard.press("v")
        page.wait_for_timeout(200)
        page.screenshot(path=str(shots / "review-overlay.png"))
        page.keyboard.press("v")

        with page.expect_navigation(timeout=120_000):
            page.keyboard.press("f")
        wait_ready(page)
        assert "set by a reviewer" in page.inner_text("#view-order-flag")
        assert "flipped the view order" in page.inner_text("#last-action")
        page.screenshot(path=str(shots / "review-after-flip.png"))
        fixed = _near_is_bright(page.locator("#img-depth").screenshot())
        assert fixed > 0 > inverted, (inverted, fixed)  # the flip turned the depth the right way round
        with Catalog(url) as cat:
            item = cat.get(item_id)
            decisions = ReviewStore(cat).decisions(item_id=item_id)
            events = cat.events(item_id)
        assert (item.left_path, item.right_path, item.swapped, item.view_order) == \
            (before["right_path"], before["left_path"], True, "cross_eyed")
        assert item.info["view_order_source"] == "reviewer"
        assert _digest(root / "maps" / item_id) != before_files
        assert [(d.kind, d.reviewer) for d in decisions] == [("flip", "alice")]  # logged
        assert decisions[0].data["prev"]["left_path"] == before["left_path"]
        assert any(e.actor == "alice" for e in events) and events[-1].actor == "process"

        with page.expect_navigation():
            page.keyboard.press("u")
        wait_ready(page)
        with Catalog(url) as cat:
            assert _fields(cat.get(item_id)) == before
            kinds = [d.kind for d in ReviewStore(cat).decisions(item_id=item_id)]
        assert _digest(root / "maps" / item_id) == before_files
        assert kinds == ["flip", "undo"]
        # the page shows the restored maps, not a cached copy of the flipped ones
        assert _near_is_bright(page.locator("#img-depth").screenshot()) < 0
