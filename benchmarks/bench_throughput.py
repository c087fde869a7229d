"""Throughput of ``redweb process`` on real-size real stereo: this checkout against another commit, in one run.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_throughput.py --photos ../shared/stereo --pairs 200 \
        --against aae223d

What a user feels is pairs per hour of ``redweb process`` with every core busy, so that is what this times,
the way a user runs it: the real CLI in a fresh process per arm (``python -m flows.cli process``; the
default configuration, the process flow's thread pool of one worker per core, pairs run concurrently,
a temporary Prefect server started and stopped inside the timed command, as in a user's first run).

The pairs. The real web stereo photos under ``--photos`` (any ``*.mpo`` / ``*.jpg`` / ``*.jps`` file; in
../shared/stereo: two MPOs from a 3D camera, a parallel side-by-side photo and two scanned stereo cards)
are ingested once with this checkout's ingest, which splits them into views. Each of ``--pairs`` pairs is
a crop of one of those pairs (round robin over the photos), cut at the same place from both views at a
random position and a random scale (the crop is ``--megapixels`` per view, 1 by default, taken from
0.5-0.85 of the view's shorter side, so that no two crops are
near-duplicates of each other), written as one parallel side-by-side JPEG at quality 85-95: the
common web case. So the pairs are real stereo (real disparities, real JPEG, real noise), of real size, and
no two are alike.

Each arm (``this`` checkout and ``--against`` COMMIT, a ``git worktree`` checked out in a temporary folder
and run with the same interpreter) gets its own fresh data root and catalog: ``redweb ingest`` of the
crops (not timed; near-duplicate distance 0, identical perceptual hashes only: crops of one photo share
much of their content),
then ``redweb process`` timed: wall seconds, CPU seconds (user + system of the command and every process
it started, from ``getrusage``), peak resident memory of the process that runs the pairs (its ``VmHWM``,
sampled while it runs; the worker threads share it) and the states the pairs ended in. Arms run one after
the other, in the order of ``--order``; run on a quiet machine (the load average is printed) or repeat
with the order reversed.

Prints one table, the arms side by side: pairs, wall s, pairs per hour, CPU s per pair, peak RSS, kept /
rejected / failed, and the ratio of each figure to the ``--against`` arm.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PHOTO_SUFFIXES = (".mpo", ".jpg", ".jpeg", ".jps")


def source_pairs(photos: Path, work: Path) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, left RGB, right RGB) of every stereo photo under ``photos``, split by this checkout's ingest."""
    from tasks.catalog.catalog import Catalog
    from tasks.ingest.run import ingest

    files = sorted(p for p in photos.rglob("*") if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file())
    if not files:
        raise SystemExit(f"no stereo photos ({', '.join(PHOTO_SUFFIXES)}) under {photos}")
    staging = work / "photos"
    for k, f in enumerate(files):  # one flat folder: the photos of ../shared/stereo share file names
        (staging / f"{k:02d}_{f.parent.name}").mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, staging / f"{k:02d}_{f.parent.name}" / f.name)
    root = work / "sources"
    with Catalog(f"sqlite:///{root}/catalog.db") as catalog:
        ingest(catalog, f"local:{staging}", data_root=root, near_duplicate_max_distance=0)
        out = []
        for item in catalog.items(catalog.ids()):
            if item.state != "split":
                continue
            left = cv2.imread(str(root / item.left_path))[..., ::-1]
            right = cv2.imread(str(root / item.right_path))[..., ::-1]
            out.append((Path(item.url or "").parent.name or item.id, left, right))
    if not out:
        raise SystemExit(f"none of the {len(files)} photos under {photos} split into a stereo pair")
    return out


def make_crops(sources, n: int, megapixels: float, folder: Path, seed: int = 0) -> list[Path]:
    """``n`` side-by-side JPEGs, each a crop of one source pair at the same place in both views (module docstring)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        name, left, right = sources[k % len(sources)]
        h = min(left.shape[0], right.shape[0])
        w = min(left.shape[1], right.shape[1])
        side = int(min(h, w) * rng.uniform(0.5, 0.85))  # the crop's shorter side in source pixels
        aspect = 1.5 if w >= h else 1 / 1.5
        ch, cw = (side, min(w, int(side * aspect))) if w >= h else (min(h, int(side / aspect)), side)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        scale = np.sqrt(megapixels * 1e6 / (ch * cw))
        size = (int(round(cw * scale)), int(round(ch * scale)))
        views = [cv2.resize(np.ascontiguousarray(v[y:y + ch, x:x + cw]), size,
                            interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC) for v in (left, right)]
        path = folder / f"{k:04d}_{name}.jpg"
        quality = int(rng.integers(85, 96))
        cv2.imwrite(str(path), np.hstack(views)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        paths.append(path)
    return paths


class PeakMemory:
    """Samples a process's VmHWM (its peak resident set) every ``interval`` s while it runs."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval, self.peak_kib = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_kib / 2 ** 10


def redweb(code: Path, root: Path, *args: str, log: Path, timed: bool = False) -> dict:
    """``python -m flows.cli ARGS --data-root ROOT`` run from checkout ``code``; wall, CPU (this command and
    its children), peak RSS of the command's own process."""
    env = {**os.environ, "PYTHONPATH": str(code), "REDWEB_DATA_ROOT": str(root)}
    env.pop("PREFECT_API_URL", None)  # a temporary local server per arm, as on a user's first run
    before = os.times()
    t0 = time.perf_counter()
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "flows.cli", *args, "--data-root", str(root)], cwd=code,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
        memory = PeakMemory(proc.pid) if timed else None
        rc = proc.wait()
    wall = time.perf_counter() - t0
    after = os.times()
    peak = memory.stop() if memory else 0.0
    if rc != 0:
        raise SystemExit(f"{' '.join(args)} in {code} failed (rc {rc}); see {log}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall": wall, "cpu": cpu, "peak_mib": peak}


def states(root: Path) -> dict[str, int]:
    """Item counts per state in an arm's catalog (plain SQL, so it reads either commit's schema)."""
    import sqlite3

    with sqlite3.connect(root / "catalog.db") as db:
        return dict(db.execute("SELECT state, COUNT(*) FROM items GROUP BY state").fetchall())


def checkout(commit: str, work: Path) -> Path:
    """A detached ``git worktree`` of ``commit`` under ``work`` (removed at the end by ``main``)."""
    path = work / f"at-{commit.replace('/', '_').replace('^', '_')}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), commit], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return path


def run_arm(name: str, code: Path, crops: Path, work: Path) -> dict:
    root = work / f"root-{name}"
    log = work / f"{name}.log"
    off = ["--set", "ingest.near_duplicate_max_distance=0"]
    redweb(code, root, "ingest", "--source", f"local:{crops}", "--no-progress", *off, log=log)
    split = states(root).get("split", 0)
    timing = redweb(code, root, "process", "--no-progress", *off, log=log, timed=True)
    counts = states(root)
    return {"arm": name, "pairs": split, **timing, "states": counts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=Path, required=True, help="folder with real stereo photos (MPO, side-by-side JPEG)")
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--megapixels", type=float, default=1.0, help="per view")
    ap.add_argument("--against", default="aae223d", help="the commit to compare with (default: the issue's)")
    ap.add_argument("--order", default="against,this", help="which arm runs first")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, data roots)")
    args = ap.parse_args()

    import warnings

    import pandas as pd

    warnings.filterwarnings("ignore", message="Image appears to be a malformed MPO file")  # PIL, on the 3D camera's MPOs

    work = Path(tempfile.mkdtemp(prefix="redweb-throughput-"))
    arms = {"this": ROOT}
    try:
        print(f"making {args.pairs} pairs from {args.photos} ...", flush=True)
        sources = source_pairs(args.photos, work)
        make_crops(sources, args.pairs, args.megapixels, work / "crops")
        arms["against"] = checkout(args.against, work)
        results = []
        for name in args.order.split(","):
            load = os.getloadavg()[0]
            print(f"arm {name} ({arms[name]}), load average {load:.2f} ...", flush=True)
            results.append({**run_arm(name, arms[name], work / "crops", work), "load": load})
    finally:
        if "against" in arms:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(arms["against"])],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    rows = {}
    for r in results:
        s = r["states"]
        failed = s.get("failed", 0)
        label = "this checkout" if r["arm"] == "this" else f"{args.against}"
        rows[label] = {
            "pairs": r["pairs"], "wall s": r["wall"], "pairs / hour": 3600 * r["pairs"] / r["wall"],
            "CPU s / pair": r["cpu"] / max(r["pairs"], 1), "peak RSS MiB": r["peak_mib"],
            "kept": sum(s.get(k, 0) for k in ("processed", "pending_review", "auto_accepted")),
            "auto-rejected": s.get("auto_rejected", 0), "failed": failed, "load avg at start": r["load"]}
    table = pd.DataFrame(rows)
    if "this checkout" in table and args.against in table:
        base, this = table[args.against], table["this checkout"]
        table["this / " + args.against] = [t / b if b else float("nan") for t, b in zip(this, base)]
    print(f"\n## redweb process on {args.pairs} real side-by-side JPEG pairs, {args.megapixels:g} MP per view, "
          f"{os.cpu_count()} cores, default configuration\n")
    print(table.to_markdown(floatfmt=".2f"))
    print("\nwall and pairs / hour include the command's start-up and its temporary Prefect server; CPU counts the "
          "command and every process it started; peak RSS is the process that runs the pairs (threads share it).")


if __name__ == "__main__":
    main()
