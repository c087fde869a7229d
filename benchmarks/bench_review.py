"""Review queue and export at scale: latency of the queries a reviewer's every keypress runs.

Fills a catalog with N items awaiting review (rows inserted directly: this measures the review
store, not the pipeline), then times next-item leasing, deciding, grid pages (first and deep),
counters, thumbnails, and an export with its no-change re-export. Prints one table.

  .venv/bin/python benchmarks/bench_review.py [--items 20000] [--url postgresql+psycopg://...] [--export 200]

``--browser N``: instead, a reviewer's keyboard in real Chromium (Debian's /usr/bin/chromium, or
$REDWEB_CHROMIUM) over N maps, a third each accepted, rejected with a reason, and rejected with a
reason and a comment: keys per decision and seconds from the key press until the next item's maps
have loaded. ``--keys old`` uses the key sequences of the UI before issue 14 (R + digit submitted
at once; a reason with a comment took R 8, typing, Esc, R digit), to measure that code with
``PYTHONPATH=<old checkout>``.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median ms, p95 ms) of ``repeat`` calls."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def fill(catalog, n: int, maps: dict[str, str]) -> list[str]:
    from tasks.catalog.catalog import Item

    now = datetime.now(timezone.utc)
    ids = []
    with catalog.session() as s:
        for i in range(n):
            item_id = f"b{i:015d}"
            ids.append(item_id)
            s.add(Item(id=item_id, source="flickr" if i % 2 else "local", source_id=str(i), state="pending_review",
                       batch=f"batch{i % 20}", score=(i * 7919 % 10007) / 10007, quality={"valid_fraction": 0.8},
                       pipeline_version="1", created_at=now + timedelta(microseconds=i), updated_at=now, **maps))
            if i % 5000 == 4999:
                s.flush()
    return ids


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--items", type=int, default=20000)
    p.add_argument("--url", default=None, help="catalog URL (default: SQLite in a temp dir)")
    p.add_argument("--repeat", type=int, default=50)
    p.add_argument("--export", type=int, default=200, help="items to export (512x384 maps)")
    p.add_argument("--browser", type=int, default=0, metavar="N", help="time N decisions by keyboard in Chromium")
    p.add_argument("--keys", choices=("new", "old"), default="new", help="--browser: key sequences of which UI")
    p.add_argument("--think", type=float, default=0.0,
                   help="--browser: seconds the reviewer looks at each item before the keys (not timed)")
    args = p.parse_args(argv)
    if args.browser:
        return browser_bench(args.browser, args.keys, args.think)

    import cv2
    import numpy as np

    from review_ui.images import ImageCache
    from tasks.catalog.catalog import Catalog
    from core.rules import SKY_VALUE
    from tasks.publish.export import export_dataset
    from tasks.review.settings import ReviewConfig
    from tasks.review.store import QueueFilter, ReviewStore

    settings = ReviewConfig(double_review_share=0.1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_review_"))
    root = tmp / "data"
    (root / "maps" / "one").mkdir(parents=True)
    h, w = 384, 512
    yy, xx = np.mgrid[0:h, 0:w]
    cv2.imwrite(str(root / "maps/one/image.jpg"), np.dstack([xx % 256, yy % 256, (xx + yy) % 256]).astype(np.uint8))
    depth = (1000 + 30 * yy + xx).astype(np.uint16)
    depth[: h // 5] = SKY_VALUE
    cv2.imwrite(str(root / "maps/one/depth.png"), depth)
    cv2.imwrite(str(root / "maps/one/mask.png"), np.full((h, w), 255, np.uint8))
    cv2.imwrite(str(root / "maps/one/sky.png"), (depth == SKY_VALUE).astype(np.uint8) * 255)
    maps = dict(image_path="maps/one/image.jpg", depth_path="maps/one/depth.png", mask_path="maps/one/mask.png",
                sky_path="maps/one/sky.png")
    url = args.url or f"sqlite:///{root / 'catalog.db'}"
    rows: list[tuple[str, float, float]] = []
    with Catalog(url) as catalog:
        t0 = time.perf_counter()
        ids = fill(catalog, args.items, maps)
        fill_s = time.perf_counter() - t0
        store = ReviewStore(catalog, settings)
        # a reviewer's cycle: lease the next item, then decide it (a reviewer holds one item at a time)
        lease_ms, decide_ms = [], []
        for n in range(args.repeat):
            r = f"r{n % 4}"
            t0 = time.perf_counter()
            item_id = store.next_item(r)
            t1 = time.perf_counter()
            store.decide(item_id, r, "accepted" if n % 3 else "rejected", reason="noisy_map")
            t2 = time.perf_counter()
            lease_ms.append((t1 - t0) * 1000)
            decide_ms.append((t2 - t1) * 1000)
        for name, xs in (("next_item (lease)", lease_ms), ("decide", decide_ms)):
            xs.sort()
            rows.append((name, statistics.median(xs), xs[int(0.95 * (len(xs) - 1))]))
        rows.append(("next_item, score sort + filter", *timed(
            lambda: store.next_item("r9", QueueFilter(sort="score_desc", source="flickr", min_score=0.5)), args.repeat)))
        pending, per_page = QueueFilter(states=("pending_review",)), settings.page_size
        rows.append((f"grid page 1 ({per_page} items + count)",
                     *timed(lambda: store.browse(pending, page=1, page_size=per_page), args.repeat)))
        deep = max(1, args.items // per_page - 1)
        rows.append((f"grid page {deep} (deep offset)",
                     *timed(lambda: store.browse(pending, page=deep, page_size=per_page), args.repeat)))
        rows.append(("queue_size", *timed(store.queue_size, args.repeat)))
        rows.append(("progress_by_batch", *timed(store.progress_by_batch, 10)))
        rows.append(("progress_by_reviewer", *timed(store.progress_by_reviewer, 10)))
        rows.append(("agreement", *timed(store.agreement, 10)))
        # images are served only from an item's own folder (maps/<id>/): give the measured item one
        import shutil

        item_maps = root / "maps" / ids[-1]
        shutil.copytree(root / "maps" / "one", item_maps)
        catalog.update(ids[-1], **{k: v.replace("maps/one/", f"maps/{ids[-1]}/") for k, v in maps.items()})
        item = catalog.get(ids[-1])
        cache = ImageCache(root, thumbnail_px=settings.thumbnail_px)

        def cold_thumb() -> None:
            for f in (cache.cache_root).rglob("thumb*.jpg"):
                f.unlink()
            cache.path_for(item, "thumb")

        rows.append(("thumbnail 512x384, uncached", *timed(cold_thumb, 10)))
        rows.append(("thumbnail, cached", *timed(lambda: cache.path_for(item, "thumb"), args.repeat)))
        rows.append(("colourized depth, cached", *timed(lambda: cache.path_for(item, "depth"), args.repeat)))

        if args.export:
            from tasks.catalog.catalog import State

            ex_ids = ids[-args.export:]
            with catalog.session() as s:
                from sqlalchemy import update

                from tasks.catalog.catalog import Item

                s.execute(update(Item).where(Item.id.in_(ex_ids)).values(state=State.ACCEPTED.value, reviewer="bench"))
            out = tmp / "export"
            t0 = time.perf_counter()
            res = export_dataset(catalog, root, out)
            first = (time.perf_counter() - t0) * 1000
            t0 = time.perf_counter()
            res2 = export_dataset(catalog, root, out)
            again = (time.perf_counter() - t0) * 1000
            assert res.total == len(res2.unchanged)
            rows.append((f"export {res.total} items (total)", first, first))
            rows.append(("re-export, nothing changed", again, again))

    print(f"catalog: {url.split('://')[0]}, {args.items} items (filled in {fill_s:.1f} s)\n")
    print(f"{'operation':<36} {'median ms':>10} {'p95 ms':>10}")
    for name, med, p95 in rows:
        print(f"{name:<36} {med:>10.2f} {p95:>10.2f}")


def browser_bench(n: int, keys: str, think: float = 0.0) -> None:
    import os
    import socket
    import threading

    import cv2
    import numpy as np
    import uvicorn
    from playwright.sync_api import sync_playwright

    from review_ui.app import create_app
    from tasks.catalog.catalog import Catalog, State
    from core.rules import SKY_VALUE
    from tasks.review.store import ReviewStore

    tmp = Path(tempfile.mkdtemp(prefix="bench_review_keys_"))
    root = tmp / "data"
    url = f"sqlite:///{root / 'catalog.db'}"
    h, w = 499, 729  # the size of the map issue 14 measured
    yy, xx = np.mgrid[0:h, 0:w]
    with Catalog(url) as cat:
        for i in range(n):
            item, _ = cat.discover(source="local", source_id=f"b{i}.jpg")
            d = root / "maps" / item.id
            d.mkdir(parents=True)
            cv2.imwrite(str(d / "image.jpg"), np.dstack([(xx + 9 * i) % 256, yy % 256, (xx + yy) % 256]).astype(np.uint8))
            depth = (1000 + 30 * yy + xx).astype(np.uint16)
            depth[: h // 5] = SKY_VALUE
            cv2.imwrite(str(d / "depth.png"), depth)
            cv2.imwrite(str(d / "mask.png"), ((xx > 40) * 255).astype(np.uint8))
            cv2.imwrite(str(d / "sky.png"), (depth == SKY_VALUE).astype(np.uint8) * 255)
            for st in (State.DOWNLOADED, State.SPLIT, State.PROCESSED):
                cat.transition(item.id, st)
            cat.update(item.id, **{f"{k}_path": f"maps/{item.id}/{k}.{'jpg' if k == 'image' else 'png'}"
                                   for k in ("image", "depth", "mask", "sky")}, score=0.5, quality={"coverage": 0.8})
            cat.transition(item.id, State.PENDING_REVIEW)
        ReviewStore(cat).add_reviewer("bench", "bench password")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(url, root, secret_key=b"b" * 32), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    loaded = """(before) => { const e = document.getElementById('item-id');
        if (document.getElementById('queue-empty')) return true;
        if (!e || e.textContent === before) return false;
        return Array.from(document.querySelectorAll('#viewer img')).every(i => i.complete && i.naturalWidth > 0); }"""
    comment = "views from two shots"
    plans = {  # kind -> (keys before the timed one, the timed key); typed text counts as one "key" here
        "accept": ([], "a"),
        "reject + reason": (["r", "4"], "Enter") if keys == "new" else (["r"], "4"),
        "reject + reason + comment": (["r", "3", comment], "Enter") if keys == "new"
        else (["r", "8", comment, "Escape", "r"], "3"),
    }
    results: dict[str, list[float]] = {k: [] for k in plans}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=os.environ.get("REDWEB_CHROMIUM", "/usr/bin/chromium"),
                                     args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/login")
        page.fill("#username", "bench")
        page.fill("#password", "bench password")
        page.click("#signin")
        page.wait_for_function(loaded, arg="")
        for i in range(n):
            kind = list(plans)[i % 3]
            before = page.inner_text("#item-id")
            if think:
                page.wait_for_timeout(think * 1000)
            t0 = time.perf_counter()
            pre, last = plans[kind]
            for k in pre:
                page.keyboard.type(k) if len(k) > 1 and k not in ("Escape", "Enter") else page.keyboard.press(k)
            page.keyboard.press(last)
            page.wait_for_function(loaded, arg=before)
            results[kind].append(time.perf_counter() - t0)
        browser.close()
    server.should_exit = True
    with Catalog(url) as cat:
        states = cat.status().states
    print(f"review by keyboard in Chromium: {n} maps of {w}x{h}, UI key sequences '{keys}', {think:g} s looking "
          f"at each item, catalog {states}\n")
    print(f"{'decision':<28} {'keys':>5} {'median s':>9} {'p95 s':>7}  (key press until the next maps have loaded)")
    for kind, xs in results.items():
        pre, last = plans[kind]
        nkeys = len([k for k in pre if k != comment]) + 1
        xs.sort()
        print(f"{kind:<28} {nkeys:>5} {statistics.median(xs):>9.3f} {xs[int(0.95 * (len(xs) - 1))]:>7.3f}"
              + ("   (+ typing the comment)" if comment in pre else ""))


if __name__ == "__main__":
    main()
