"""Orchestration overhead of the process flow: the same pairs processed by plain function calls and by
the Prefect flow (batches as tasks), side by side in one run.

    .venv/bin/python benchmarks/bench_orchestration.py --pairs 1000 --size 240x320 --batch-size 8

Pairs are crops of scikit-image's real Middlebury motorcycle pair at random positions, stored as
`split` items in a fresh SQLite catalog per arm. Overhead = (flow wall time - direct wall time) /
flow wall time. Target: <= 10% for 1,000 pairs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def make_pairs(root: Path, n: int, h: int, w: int, seed: int = 0) -> str:
    from skimage.data import stereo_motorcycle

    from tasks.catalog.catalog import Catalog, State

    left, right, _ = stereo_motorcycle()
    rng = np.random.default_rng(seed)
    url = f"sqlite:///{root / 'catalog.db'}"
    with Catalog(url) as catalog:
        for i in range(n):
            y = int(rng.integers(0, left.shape[0] - h))
            x = int(rng.integers(0, left.shape[1] - w))
            item, _ = catalog.discover(source="bench", source_id=f"pair{i:05d}")
            d = root / "pairs" / item.id
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / "left.png"), left[y:y + h, x:x + w, ::-1])
            cv2.imwrite(str(d / "right.png"), right[y:y + h, x:x + w, ::-1])
            catalog.transition(item.id, State.DOWNLOADED, raw_path=f"raw/{item.id}.png")
            catalog.transition(item.id, State.SPLIT, stereo_format="side_by_side", swapped=False,
                               view_order="undecided", left_path=f"pairs/{item.id}/left.png",
                               right_path=f"pairs/{item.id}/right.png", view_width=w, view_height=h,
                               info={"views": {"left": [0, 0, w, h], "right": [w, 0, 2 * w, h]}})
    return url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=1000)
    ap.add_argument("--size", default="240x320", help="HxW of each view")
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    h, w = map(int, args.size.split("x"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

    from prefect.testing.utilities import prefect_test_harness

    from flows.process import process_flow
    from tasks.catalog.catalog import Catalog
    from flows.config import load_config
    from tasks.labels.process import process_batch

    settings = load_config(environ={}).process
    base = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    try:
        roots = {arm: base / arm for arm in ("direct", "flow")}
        urls = {}
        for arm, root in roots.items():
            root.mkdir()
            t0 = time.perf_counter()
            urls[arm] = make_pairs(root, args.pairs, h, w)
            print(f"[{arm}] made {args.pairs} pairs in {time.perf_counter() - t0:.1f} s")

        with Catalog(urls["direct"]) as c:
            ids = c.ids("split")
        t0 = time.perf_counter()
        for i in range(0, len(ids), args.batch_size):
            process_batch(urls["direct"], ids[i:i + args.batch_size], str(roots["direct"]), settings=settings)
        direct = time.perf_counter() - t0

        with prefect_test_harness(server_startup_timeout=180):
            t0 = time.perf_counter()
            counts = process_flow(data_root=str(roots["flow"]),
                                  overrides={"database_url": urls["flow"], "process.batch_size": args.batch_size})
            flow = time.perf_counter() - t0
        tasks = -(-args.pairs // args.batch_size)
        print(f"\nprocess stage, {args.pairs} pairs of {h}x{w}, batches of {args.batch_size} ({tasks} tasks); "
              f"flow outcome {counts}\n")
        print(f"| arm | wall s | s/pair |\n|---|---:|---:|")
        print(f"| direct calls | {direct:.1f} | {direct / args.pairs:.3f} |")
        print(f"| Prefect flow | {flow:.1f} | {flow / args.pairs:.3f} |")
        over = flow - direct
        print(f"\noverhead: {over:.1f} s = {100 * over / flow:.1f}% of the flow's time "
              f"({1000 * over / tasks:.0f} ms per task)  target <= 10%")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
