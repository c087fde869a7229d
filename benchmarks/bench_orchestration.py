"""Orchestration overhead of the process flow at real size, and whether the catalog stays indexed.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_orchestration.py --pairs 10000 --catalog-sizes 10000,100000

Part 1, the flow against direct calls at the same parallelism. The same pairs (crops of scikit-image's
Middlebury motorcycle pair at random positions, stored as ``split`` items) are processed twice, each
arm on its own fresh data root and catalog (one made, then copied):

- ``direct``: ``select_items``, the same batches of ``process.batch_size``, ``process_batch`` on a
  ``ThreadPoolExecutor`` with as many workers as the flow's ``ThreadPoolTaskRunner``;
- ``flow``: ``process_flow`` itself (a Prefect task per batch on that runner, a temporary Prefect server).

The correspondence backend is ``trivial`` (zero flow, instant), registered by this script in its own
process (the flow's tasks run in threads of it, so they see the registration), and CRF is off, so what is
left per pair is the stage's own cheap work and its real I/O: read both views, write the five map files,
three catalog transactions. That keeps the denominator small and the orchestration cost visible.
Overhead = (flow wall time - direct wall time) / direct wall time. Target: <= 5 % at 10,000 pairs, with
memory flat (resident memory of this process and of the Prefect server, sampled through each arm).

Part 2, the catalog at 10K and 100K items (seeded in bulk): the time of 1,000 ``transition`` calls (the
process stage's ``split -> processed``) and of the stages' queries (``select_items``, ``ids`` by state,
``status``), and SQLite's EXPLAIN QUERY PLAN of every SELECT those calls issue, captured as executed.

Measured on the shared 2-core dev machine (load average 3-7 from other work), 10,000 pairs, batches of 32:
direct 1024 s / flow 826 s wall (the load fell between the arms, so wall time says nothing here), CPU
817 s / 833 s = +2.0 % (51 ms per task), RSS flat (+3 MiB over the flow's second half). At batches of 8
(1,000 pairs, load ~2): wall +31.6 %, CPU +5.8 %: a task costs ~0.25 s of waiting on the Prefect API per
worker, during which its core idles; cheap pairs need bigger batches. Catalog: ~0.9 ms per transition at
10K and at 100K items; every query uses an index.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np

TRIVIAL = "trivial"
MIB = 2 ** 20


class ZeroFlow:
    """A correspondence backend that costs nothing: zero flow both ways (every pixel consistent, no
    disparity range, so triage rejects each pair, after all the stage's writes)."""

    name = TRIVIAL
    device = "cpu"

    def flow(self, sources: Sequence[np.ndarray], targets: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.zeros(s.shape[:2] + (2,), np.float32) for s in sources]


def register_trivial() -> None:
    """Add ``trivial`` to the correspondence registry of this process (once)."""
    from tasks.labels.correspondence import CORRESPONDENCE

    if TRIVIAL not in CORRESPONDENCE:
        CORRESPONDENCE.register(TRIVIAL, ZeroFlow)


def make_pairs(root: Path, n: int, h: int, w: int, seed: int = 0) -> str:
    """``n`` ``split`` items under ``root`` (views: ``h`` x ``w`` crops of the motorcycle pair); the URL."""
    from skimage.data import stereo_motorcycle

    from tasks.catalog.catalog import Catalog, State

    left, right, _ = stereo_motorcycle()
    rng = np.random.default_rng(seed)
    url = f"sqlite:///{root / 'catalog.db'}"
    with Catalog(url) as catalog:
        for i in range(n):
            y = int(rng.integers(0, left.shape[0] - h))
            x = int(rng.integers(0, left.shape[1] - w))
            item, _ = catalog.discover(source="bench", source_id=f"pair{i:06d}")
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


# ---- memory ------------------------------------------------------------------------------------------
class RssSampler:
    """Resident memory of this process and of its child processes (the Prefect server), every
    ``interval`` seconds on a daemon thread, so an arm's memory can be read as a curve, not one peak."""

    def __init__(self, interval: float = 0.5) -> None:
        import psutil

        self._me = psutil.Process()
        self.interval = interval
        self.samples: list[tuple[float, int, int]] = []  # (perf_counter, own rss, children's rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> tuple[float, int, int]:
        import psutil

        children = 0
        for child in self._me.children(recursive=True):
            try:
                children += child.memory_info().rss
            except psutil.Error:  # gone between listing and reading
                pass
        return time.perf_counter(), self._me.memory_info().rss, children

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(self._sample())

    def __enter__(self) -> "RssSampler":
        self.samples.append(self._sample())
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_s(self) -> tuple[float, float]:
        """CPU seconds (user + system) used so far by this process and by its live children."""
        import psutil

        own = self._me.cpu_times()
        children = 0.0
        for child in self._me.children(recursive=True):
            try:
                times = child.cpu_times()
                children += times.user + times.system
            except psutil.Error:
                pass
        return own.user + own.system, children

    def window(self, t0: float, t1: float) -> list[tuple[float, int, int]]:
        return [s for s in self.samples if t0 <= s[0] <= t1]


@dataclass
class Arm:
    name: str
    wall_s: float
    counts: dict[str, int]
    rss: list[tuple[float, int, int]] = field(default_factory=list)
    maps: int = 0
    cpu_s: tuple[float, float] = (0.0, 0.0)  # CPU seconds of this process and of the Prefect server

    def curve(self, which: int, points: int = 11) -> list[float]:
        """MiB of sample column ``which`` (1: this process, 2: children) at 0, 10, ..., 100 % of the arm."""
        if not self.rss:
            return []
        idx = np.linspace(0, len(self.rss) - 1, points).round().astype(int)
        return [self.rss[i][which] / MIB for i in idx]

    def peak(self, which: int) -> float:
        return max((s[which] for s in self.rss), default=0) / MIB


# ---- the two arms ------------------------------------------------------------------------------------
def overrides_for(root: Path, batch_size: int) -> dict[str, Any]:
    """The config both arms run with: the root's own catalog, the trivial backend, no CRF."""
    return {"database_url": f"sqlite:///{root / 'catalog.db'}", "process.batch_size": batch_size,
            "process.correspondence": TRIVIAL, "process.crf": False}


def run_direct(root: Path, overrides: dict[str, Any], workers: int) -> tuple[float, dict[str, int]]:
    """What the flow does, without Prefect: same config, same ids, same batches, same pool size."""
    from flows.options import flow_config
    from tasks.catalog.catalog import Catalog
    from tasks.labels.process import process_batch, select_items

    t0 = time.perf_counter()
    config = flow_config(None, str(root), overrides)
    url, settings, size = config.catalog_url, config.process, config.process.batch_size
    with Catalog(url) as catalog:
        todo = select_items(catalog)
    counts: dict[str, int] = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(process_batch, url, todo[i:i + size], str(root), settings=settings)
                   for i in range(0, len(todo), size)]
        for future in as_completed(futures):
            for state in future.result().values():
                counts[state] = counts.get(state, 0) + 1
    return time.perf_counter() - t0, counts


def run_flow(root: Path, overrides: dict[str, Any]) -> tuple[float, dict[str, int]]:
    from flows.process import process_flow

    t0 = time.perf_counter()
    counts = process_flow(data_root=str(root), overrides=overrides)
    return time.perf_counter() - t0, counts


def count_maps(root: Path) -> int:
    return sum(1 for _ in (root / "maps").glob("*/depth.png")) if (root / "maps").is_dir() else 0


def bench_orchestration(base: Path, *, pairs: int, h: int, w: int, batch_size: int, harness: bool,
                        sampler: RssSampler) -> list[Arm]:
    """Make the pairs once, copy them to a fresh root per arm, run direct then flow; the two arms."""
    from contextlib import nullcontext

    from flows.process import process_flow

    register_trivial()
    # the flow's ThreadPoolTaskRunner keeps its size private; flows/process.py sets it to the core count
    workers = getattr(process_flow.task_runner, "_max_workers", None) or os.cpu_count() or 2
    t0 = time.perf_counter()
    made = base / "made"
    made.mkdir()
    make_pairs(made, pairs, h, w)
    roots = {arm: base / arm for arm in ("direct", "flow")}
    for root in roots.values():
        shutil.copytree(made, root)
    shutil.rmtree(made)
    print(f"made {pairs} pairs of {h}x{w} and copied them to one root per arm in "
          f"{time.perf_counter() - t0:.1f} s; {workers} workers per arm, batches of {batch_size}", flush=True)

    arms = []
    if harness:
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        from prefect.testing.utilities import prefect_test_harness
        context = prefect_test_harness(server_startup_timeout=180)
    else:  # the caller's Prefect API (a test session's temporary server)
        context = nullcontext()
    with context:
        runners: dict[str, Callable[[], tuple[float, dict[str, int]]]] = {
            "direct": lambda: run_direct(roots["direct"], overrides_for(roots["direct"], batch_size),
                                         workers),
            "flow": lambda: run_flow(roots["flow"], overrides_for(roots["flow"], batch_size)),
        }
        for name, run in runners.items():
            start, cpu = time.perf_counter(), sampler.cpu_s()
            wall, counts = run()
            used = tuple(b - a for a, b in zip(cpu, sampler.cpu_s()))
            arm = Arm(name, wall, counts, sampler.window(start, time.perf_counter()), count_maps(roots[name]),
                      used)
            print(f"[{name}] {wall:.1f} s, outcome {counts}, {arm.maps} depth maps written", flush=True)
            arms.append(arm)
    return arms


def print_orchestration(arms: list[Arm], pairs: int, batch_size: int, target: float) -> bool:
    """The table and the memory curves; True when the overhead is within ``target`` (a fraction)."""
    direct = arms[0].wall_s
    tasks = -(-pairs // batch_size)
    print("\n| pairs | arm | wall s | pairs/s | overhead % | CPU s (this process) | CPU s (Prefect server) "
          "| peak RSS MiB (this process) | peak RSS MiB (Prefect server) |\n"
          "|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for arm in arms:
        over = 100 * (arm.wall_s - direct) / direct
        print(f"| {pairs} | {arm.name} | {arm.wall_s:.1f} | {pairs / arm.wall_s:.1f} | {over:+.1f} "
              f"| {arm.cpu_s[0]:.1f} | {arm.cpu_s[1]:.1f} | {arm.peak(1):.0f} | {arm.peak(2):.0f} |")
    print("\nRSS MiB at 0, 10, ..., 100 % of each arm (this process / the Prefect server and other "
          "children):")
    for arm in arms:
        own, kids = arm.curve(1), arm.curve(2)
        print(f"  {arm.name:6s} own:      {' '.join(f'{v:.0f}' for v in own)}")
        print(f"  {arm.name:6s} children: {' '.join(f'{v:.0f}' for v in kids)}")
        if len(own) > 5:
            print(f"  {arm.name:6s} growth over the second half: own {own[-1] - own[5]:+.0f} MiB, "
                  f"children {kids[-1] - kids[5]:+.0f} MiB")
    flow = arms[1].wall_s
    # on a machine shared with other work, wall time drifts with the load; CPU seconds (this process and
    # the server together) are what the orchestration itself costs, whatever the neighbours do
    cpu_d, cpu_f = sum(arms[0].cpu_s), sum(arms[1].cpu_s)
    print(f"\nCPU: direct {cpu_d:.1f} s, flow {cpu_f:.1f} s (this process + Prefect server): "
          f"{cpu_f - cpu_d:+.1f} s = {100 * (cpu_f - cpu_d) / cpu_d:+.1f} % "
          f"({1000 * (cpu_f - cpu_d) / tasks:+.0f} ms CPU per task)")
    ok = (flow - direct) / direct <= target and arms[0].counts == arms[1].counts
    print(f"overhead: {flow - direct:+.1f} s = {100 * (flow - direct) / direct:+.1f} % of the direct arm's "
          f"time ({1000 * (flow - direct) / tasks:+.0f} ms per task, {tasks} tasks); "
          f"target <= {100 * target:.0f} %: "
          f"{'met' if ok else 'NOT met'}; same outcome in both arms: {arms[0].counts == arms[1].counts}")
    return ok


# ---- catalog -----------------------------------------------------------------------------------------
# the states the seeded items are spread over (a catalog mid-run: most items past processing)
SEED_STATES = (("split", 0.3), ("pending_review", 0.3), ("auto_rejected", 0.2), ("accepted", 0.1),
               ("failed", 0.1))


def seed_catalog(url: str, n: int, seed: int = 0) -> None:
    """``n`` items spread over ``SEED_STATES``, one event each, inserted in bulk (``discover`` one by one
    would take minutes at 100K; the rows are what the stages would have written)."""
    from sqlalchemy import insert

    from tasks.catalog.catalog import PIPELINE_VERSION, Catalog, Event, Item, item_id_for, utcnow

    rng = np.random.default_rng(seed)
    names = [s for s, _ in SEED_STATES]
    states = rng.choice(names, size=n, p=[p for _, p in SEED_STATES])
    with Catalog(url) as catalog:
        for lo in range(0, n, 10_000):
            items, events = [], []
            for i in range(lo, min(n, lo + 10_000)):
                item_id, state = item_id_for("bench", f"item{i:07d}"), str(states[i])
                reason = {"auto_rejected": "low_coverage", "failed": "process_error"}.get(state)
                items.append(dict(id=item_id, source="bench", source_id=f"item{i:07d}", state=state,
                                  reason=reason, score=float(rng.random()) if state != "split" else None,
                                  left_path=f"pairs/{item_id}/left.png",
                                  right_path=f"pairs/{item_id}/right.png", pipeline_version=PIPELINE_VERSION,
                                  created_at=utcnow(), updated_at=utcnow()))
                events.append(dict(item_id=item_id, actor="bench", from_state=None, to_state=state,
                                   pipeline_version=PIPELINE_VERSION, at=utcnow()))
            with catalog.session() as s:
                s.execute(insert(Item), items)
                s.execute(insert(Event), events)


@dataclass
class CatalogResult:
    items: int
    timings: dict[str, float]  # seconds
    plans: dict[str, list[tuple[str, str]]]  # call -> [(SELECT statement, plan)]


INDEXED = ("USING INDEX", "USING COVERING INDEX", "USING PRIMARY KEY", "USING INTEGER PRIMARY KEY")


def unindexed(plan: str) -> bool:
    """A full scan of a table (a SCAN line with no index): what a query on a growing catalog must not do."""
    return any(line.strip().startswith(("SCAN items", "SCAN events")) and not any(k in line for k in INDEXED)
               for line in plan.splitlines())


def explain(catalog: Any, sql: str, params: Any) -> str:
    """SQLite's EXPLAIN QUERY PLAN of one executed statement, one line per step."""
    with catalog.engine.connect() as conn:
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", tuple(params or ()))
        return "\n".join(str(row[3]) for row in rows)


def bench_catalog(base: Path, n: int, changes: int = 1000, seed: int = 0) -> CatalogResult:
    """Seed ``n`` items, time ``changes`` transitions and the stages' queries, and explain their SELECTs."""
    from sqlalchemy import event

    from tasks.catalog.catalog import Catalog, State
    from tasks.labels.process import select_items

    url = f"sqlite:///{base / f'catalog-{n}.db'}"
    seed_catalog(url, n, seed)
    timings: dict[str, float] = {}
    plans: dict[str, list[tuple[str, str]]] = {}
    with Catalog(url) as catalog:
        split = catalog.ids(State.SPLIT)
        changes = min(changes, len(split))
        chosen = [split[i] for i in np.random.default_rng(seed).choice(len(split), changes, replace=False)]
        t = time.perf_counter()
        for item_id in chosen:  # what process_item does: split -> processed, with expect
            catalog.transition(item_id, State.PROCESSED, expect=[State.SPLIT], actor="bench", score=0.5)
        # per 1,000: at a small size fewer split items than that exist
        timings["1000 transitions"] = (time.perf_counter() - t) * 1000 / changes
        calls: dict[str, Callable[[], Any]] = {
            "transition": lambda: catalog.transition(chosen[0], State.PENDING_REVIEW,
                                                     expect=[State.PROCESSED]),
            "select_items": lambda: select_items(catalog),
            "ids(pending_review)": lambda: catalog.ids(State.PENDING_REVIEW),
            "status": catalog.status,
        }
        for name, call in calls.items():
            seen: list[tuple[str, Any]] = []

            def capture(conn, cursor, statement, parameters, context, executemany, seen=seen):
                if statement.lstrip().upper().startswith("SELECT"):
                    seen.append((statement, parameters))

            event.listen(catalog.engine, "before_cursor_execute", capture)
            t = time.perf_counter()
            call()
            if name != "transition":
                timings[name] = time.perf_counter() - t
            event.remove(catalog.engine, "before_cursor_execute", capture)
            plans[name] = [(" ".join(sql.split()), explain(catalog, sql, params)) for sql, params in seen]
    return CatalogResult(n, timings, plans)


def print_catalog(results: list[CatalogResult]) -> bool:
    """Timings side by side and each SELECT's plan; True when no query scans a table without an index."""
    names = list(results[0].timings)
    print(f"\n| catalog items | {' | '.join(f'{k} ms' for k in names)} |\n|---:|{'---:|' * len(names)}")
    for r in results:
        print(f"| {r.items} | {' | '.join(f'{1000 * r.timings[k]:.1f}' for k in names)} |")
    ok = True
    r = results[-1]
    print(f"\nEXPLAIN QUERY PLAN at {r.items} items (each SELECT the call issues):")
    for name, statements in r.plans.items():
        for sql, plan in statements:
            bad = unindexed(plan)
            ok &= not bad
            print(f"  {name}: {sql[:150]}{' ...' if len(sql) > 150 else ''}")
            for line in plan.splitlines():
                print(f"      {line}")
            if bad:
                print("      ^ UNINDEXED full scan")
    print(f"every query indexed: {ok}")
    return ok


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=10_000, help="0: skip the orchestration part")
    ap.add_argument("--size", default="120x160", help="HxW of each view")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="pairs per task (default: process.batch_size)")
    ap.add_argument("--catalog-sizes", default="10000,100000",
                    help="comma-separated item counts; empty: skip")
    ap.add_argument("--target", type=float, default=0.05, help="largest acceptable overhead (fraction)")
    ap.add_argument("--no-harness", action="store_true",
                    help="use the Prefect API already configured instead of a temporary server")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary data roots (their path is printed)")
    args = ap.parse_args(argv)
    h, w = map(int, args.size.lower().split("x"))
    if args.batch_size is None:
        from tasks.labels.settings import ProcessConfig

        args.batch_size = ProcessConfig().batch_size
    sizes = [int(s) for s in args.catalog_sizes.split(",") if s.strip()]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {load_average()}",
          flush=True)

    base = Path(tempfile.mkdtemp(prefix="bench-orch-"))
    ok = True
    try:
        if args.pairs:
            with RssSampler() as sampler:
                arms = bench_orchestration(base, pairs=args.pairs, h=h, w=w, batch_size=args.batch_size,
                                           harness=not args.no_harness, sampler=sampler)
            print(f"\nprocess stage, {args.pairs} pairs of {h}x{w}, trivial correspondence, crf off, "
                  f"batches of {args.batch_size}; load average after: {load_average()}")
            ok &= print_orchestration(arms, args.pairs, args.batch_size, args.target)
        if sizes:
            results = []
            for n in sizes:
                t = time.perf_counter()
                results.append(bench_catalog(base, n))
                print(f"[catalog] {n} items seeded and measured in {time.perf_counter() - t:.1f} s",
                      flush=True)
            ok &= print_catalog(results)
        print(f"\nload average at the end: {load_average()}")
    finally:
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
