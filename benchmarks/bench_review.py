"""Review queue and export at scale: latency of the queries a reviewer's every keypress runs.

Fills a catalog with N items awaiting review (rows inserted directly: this measures the review
store, not the pipeline), then times next-item leasing, deciding, grid pages (first and deep),
counters, thumbnails, and an export with its no-change re-export. Prints one table.

  .venv/bin/python benchmarks/bench_review.py [--items 20000] [--url postgresql+psycopg://...] [--export 200]
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
    from tasks.catalog import Item

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
    args = p.parse_args(argv)

    import cv2
    import numpy as np

    from review_ui.images import ImageCache
    from tasks.catalog import Catalog
    from tasks.contracts import SKY_VALUE
    from tasks.export import export_dataset
    from tasks.review_store import QueueFilter, ReviewStore

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
        store = ReviewStore(catalog, double_review_share=0.1)
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
        rows.append(("grid page 1 (60 items + count)", *timed(lambda: store.browse(QueueFilter(states=("pending_review",)), page=1), args.repeat)))
        deep = max(1, args.items // 60 - 1)
        rows.append((f"grid page {deep} (deep offset)", *timed(lambda: store.browse(QueueFilter(states=("pending_review",)), page=deep), args.repeat)))
        rows.append(("queue_size", *timed(store.queue_size, args.repeat)))
        rows.append(("progress_by_batch", *timed(store.progress_by_batch, 10)))
        rows.append(("progress_by_reviewer", *timed(store.progress_by_reviewer, 10)))
        rows.append(("agreement", *timed(store.agreement, 10)))
        item = catalog.get(ids[-1])
        cache = ImageCache(root)

        def cold_thumb() -> None:
            for f in (cache.cache_root).rglob("thumb*.jpg"):
                f.unlink()
            cache.path_for(item, "thumb")

        rows.append(("thumbnail 512x384, uncached", *timed(cold_thumb, 10)))
        rows.append(("thumbnail, cached", *timed(lambda: cache.path_for(item, "thumb"), args.repeat)))
        rows.append(("colourized depth, cached", *timed(lambda: cache.path_for(item, "depth"), args.repeat)))

        if args.export:
            from tasks.catalog import State

            ex_ids = ids[-args.export:]
            with catalog.session() as s:
                from sqlalchemy import update

                from tasks.catalog import Item

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


if __name__ == "__main__":
    main()
