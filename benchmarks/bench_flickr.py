"""Flickr crawl throughput against the local fake (tests/fakeflickr.py), printed as a table.

    .venv/bin/python benchmarks/bench_flickr.py [--photos 5000] [--per-page 500]

Scenarios (each on a fresh SQLite catalog in a temp folder):
* ``clean``: no faults, no rate limit (what the client + catalog can do),
* ``faults``: 500s / 429s / garbled JSON / duplicates across pages, photos without url_o (getSizes);
  backoff sleeps are cut to 10 ms so the figure shows the client, not the backoff policy,
* ``limited``: Flickr's 3,600 calls/h with a simulated clock: how long the same crawl would take
  for real under the limit, and the most calls seen in any 3,600 s window.
Columns: pages/s and photos/s are wall-clock rates; ``calls`` counts REST calls the server received
(retries included); ``max/h`` is the largest number of calls in any one-hour window of the clock
the client used.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.catalog.catalog import Catalog  # noqa: E402
from tasks.ingest.sources import flickr  # noqa: E402
from tests.fakeflickr import FakeFlickr, Faults, make_photos  # noqa: E402


class SimClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def max_per_hour(times: list[float]) -> int:
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] <= t - 3600:
            j += 1
        best = max(best, i - j + 1)
    return best


def run(name: str, photos, faults: Faults | None, *, per_page: int, calls_per_hour: int, simulate: bool,
        catalog_url: str | None, workdir: Path) -> dict:
    clock = SimClock() if simulate else None
    fake = FakeFlickr(photos, api_key="k", faults=faults, clock=clock or time.time).start()
    url = catalog_url or f"sqlite:///{workdir / f'{name}.db'}"
    stats = flickr.CrawlStats()
    try:
        with Catalog(url) as cat:
            t0 = time.perf_counter()
            kw = dict(clock=clock, sleep=clock.sleep) if clock else dict(sleep=lambda s: time.sleep(min(s, 0.01)))
            new = flickr.discover(cat, rest_url=fake.rest_url, api_key="k", api_secret="s",
                                  tags=["stereo", "3d", "stereoscopic", "sidebyside", "crossview"], licenses=None,
                                  per_page=per_page, max_results_per_query=4000, max_calls_per_hour=calls_per_hour,
                                  min_upload_date=0, max_upload_date=2_000_000_000, max_retries=8,
                                  backoff_base_s=0.5, backoff_max_s=30, timeout_s=10, stats=stats, **kw)
            wall = time.perf_counter() - t0
    finally:
        fake.stop()
    times = [c[0] for c in fake.rest_calls()]
    return dict(scenario=name, new=new, pages=stats.pages, calls=len(times), retries=stats.retries,
                getsizes=stats.getsizes_calls, splits=stats.windows_split, wall_s=wall,
                pages_s=stats.pages / wall, photos_s=new / wall, limit=calls_per_hour, max_h=max_per_hour(times),
                sim_h=(clock() - 1_700_000_000.0) / 3600 if clock else float("nan"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=5000)
    ap.add_argument("--per-page", type=int, default=500)
    args = ap.parse_args(argv)
    # licenses 4 (CC BY) and 9 (CC0) only: every photo passes the default filter, so > 4,000 forces splits
    photos = make_photos(args.photos, seed=1, licenses=[4, 9])
    photos_no_o = make_photos(args.photos, seed=1, licenses=[4, 9], no_url_o_every=50)
    faults = Faults(rest_every={"500": 7, "429": 11, "garbled": 13}, duplicate_across_pages=True, retry_after_s=0.01)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rows.append(run("clean", photos, None, per_page=args.per_page, calls_per_hour=10**9, simulate=False,
                        catalog_url=None, workdir=work))
        rows.append(run("faults", photos_no_o, faults, per_page=args.per_page, calls_per_hour=10**9,
                        simulate=False, catalog_url=None, workdir=work))
        rows.append(run("limited", photos_no_o, None, per_page=args.per_page, calls_per_hour=3600, simulate=True,
                        catalog_url=None, workdir=work))
    cols = [("scenario", "{:<8}"), ("new", "{:>6}"), ("pages", "{:>5}"), ("calls", "{:>5}"), ("retries", "{:>7}"),
            ("getsizes", "{:>8}"), ("splits", "{:>6}"), ("wall_s", "{:>7.1f}"), ("pages_s", "{:>7.2f}"),
            ("photos_s", "{:>8.0f}"), ("limit", "{:>10}"), ("max_h", "{:>5}"), ("sim_h", "{:>5.2f}")]
    print(" ".join(f"{name:>{len(fmt.format(rows[0][name]))}}" for name, fmt in cols))
    for r in rows:
        print(" ".join(fmt.format(r[name]) for name, fmt in cols))
    print(f"\n{args.photos} photos on the fake, {args.per_page} per page; limit = max_calls_per_hour, "
          "max_h = most calls in any hour of the client's clock, sim_h = simulated hours under the limit")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
