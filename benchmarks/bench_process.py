"""Benchmark of the process stage on real stereo with ground truth (prints tables; not a test).

Labels: the label audit (``tasks.audit``, the code behind ``redweb audit``) run once per backend /
option spec on the same scenes, side by side in one table, so the benchmark and the audit never
disagree. Each scene is packed the way web stereo arrives (parallel and cross-eyed side by side,
over-under, MPO, with a deterministic web degradation), then ingested, processed, triaged and
exported by the code a crawl uses, and every exported map is scored against GT (ordinal error,
sigma = 0.02, ties count; coverage; view order; triage against truth: bad = error > 10 % or
coverage < 30 %). ``--scenes DIR`` (repeatable; any layout ``redweb audit`` reads) picks the
scenes; without it, scikit-image's Middlebury motorcycle (741 x 500, GT disparity) is written to a
temporary folder in the generic layout, so the benchmark runs without ../shared.

A spec is a correspondence backend and optional process config fields, ``--set`` style:
``dis``, ``sgbm@fb_beta=0.3@crf=false``, ``dis@ingest.stereo_min_similarity=0.2`` (a field without
a section is a ``process.`` field; values are YAML). ``--set`` applies to every spec.

Speed: one pair upscaled to 1 megapixel per view through every stage (``--speed-backends``, 2 threads);
a 10-MP two-frame MPO through ingest and process in a fresh process (wall time, peak memory).

Sky: precision / recall with and without the CRF on rendered scenes with known sky and on
scikit-image's rocket photo with hand-labelled sky / not-sky rectangles.

Run: ``.venv/bin/python benchmarks/bench_process.py [--scenes ../shared/stereo] [--backends fused,dis,sgbm]
[--packings sbs,cross,ou,mpo] [--details] [--report DIR] [--skip labels,speed,mpo,sky]``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.labels.correspondence import is_gpu_backend  # noqa: E402
from tasks.labels.process import build_correspondence, downscale, process_pair, read_rgb, write_maps  # noqa: E402
from tasks.labels.sky import build_sky, detect_sky  # noqa: E402


def write_motorcycle_scene(root: Path) -> Path:
    """scikit-image's motorcycle (left, right, GT disparity) as a generic-layout scene folder."""
    import json

    from skimage import data

    left, right, disp = data.stereo_motorcycle()
    folder = root / "motorcycle"
    folder.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(folder / "left.png"), left[..., ::-1])
    cv2.imwrite(str(folder / "right.png"), right[..., ::-1])
    raw = np.where(np.isfinite(disp), np.rint(np.nan_to_num(disp, posinf=0) * 256), 0).astype(np.uint16)
    cv2.imwrite(str(folder / "disp.png"), raw)  # skimage marks unknown with inf: 0 here
    (folder / "gt.json").write_text(json.dumps({"file": "disp.png", "divide_by": 256, "invalid": 0}))
    return root


def spec_overrides(spec: str) -> list[str]:
    """``name@field=value@section.field=value`` -> config overrides (``--set`` strings)."""
    name, *opts = spec.split("@")
    out = [f"process.correspondence={name}"]
    for opt in opts:
        if "=" not in opt:
            raise SystemExit(f"bad spec {spec!r}: {opt!r} is not FIELD=VALUE")
        key, value = opt.split("=", 1)
        out.append(f"{key if '.' in key else 'process.' + key}={value}")
    return out


def audit_spec(spec: str, scenes, work: Path, *, packings: list[str], n_pairs: int, config_file: str | None,
               overrides: list[str], report_dir: Path | None, details: bool) -> dict:
    """One audit of ``scenes`` with the config of ``spec``; returns its summary (tasks.audit.tables.summarize)."""
    from flows.config import load_config
    from tasks.audit.report import write_report
    from tasks.audit.runner import run_audit
    from tasks.audit.tables import format_table, summarize

    config = load_config(config_file, data_root=work / "unused-data-root", overrides=[*overrides, *spec_overrides(spec)])
    t = time.perf_counter()
    rows, images = run_audit(scenes, work / re.sub(r"[^\w.=-]+", "_", spec), packings=packings,
                             process=config.process, ingest=config.ingest,
                             n_pairs=n_pairs, keep_images=report_dir is not None)
    wall = time.perf_counter() - t
    summary = summarize(rows)
    if details:
        print(f"\n### {spec}\n")
        print(format_table(rows, summary))
    if report_dir is not None:
        path = write_report(report_dir / re.sub(r"[^\w.=-]+", "_", spec), rows, summary, images,
                            title=f"redweb label audit: {spec}", config={"spec": spec})
        print(f"report for {spec}: {path}", file=sys.stderr)
    return {**summary, "wall": wall}


def bench_audit(specs: list[str], scene_dirs: list[str], tmp: Path, *, packings: list[str], n_pairs: int,
                config_file: str | None = None, overrides: list[str] = (), legacy_scale: float | None = None,
                max_frames: int | None = None, report_dir: Path | None = None, details: bool = False) -> None:
    import pandas as pd

    from tasks.audit.scenes import read_scenes

    dirs = scene_dirs or [str(write_motorcycle_scene(tmp / "scenes"))]
    scenes = [s for d in dirs for s in read_scenes(d, legacy_scale=legacy_scale, max_frames=max_frames)]
    names = ", ".join(s.name for s in scenes)
    print(f"\n## Labels: label audit (tasks.audit) of {len(scenes)} scene(s) x {len(packings)} packing(s) "
          f"({','.join(packings)}), {n_pairs} pairs per map\nscenes: {names}"
          + (f"\noverrides for every spec: {list(overrides)}" if overrides else ""))
    records = []
    for spec in specs:
        s = audit_spec(spec, scenes, tmp / "audit", packings=packings, n_pairs=n_pairs, config_file=config_file,
                       overrides=list(overrides), report_dir=report_dir, details=details)
        tri = s["triage"]
        gpu = is_gpu_backend(spec.split("@")[0])
        records.append({
            "spec": spec + (" (network)" if gpu else ""),
            "kept": f"{s['kept']}/{s['total']}",
            "ord.err": s["ordinal_error"], "max": s["max_ordinal_error"], "coverage": s["coverage"],
            "order err": f"{s['view_order_errors']} ({s['view_order_errors_all_maps']})",
            "undecided": s["view_order_uncertain"], "format err": s["format_errors"],
            "rej. prec": tri["precision"], "rej. recall": tri["recall"],
            "rej. bad/good": f"{tri['rejected_bad']}/{tri['rejected_good']}", "kept bad": tri["kept_bad"],
            "s/pair": s["seconds_per_pair"], "wall s": s["wall"],
        })
    df = pd.DataFrame.from_records(records)
    pct = lambda x: "—" if x is None or pd.isna(x) else f"{100 * x:.1f}%"  # noqa: E731
    for col in ("ord.err", "max", "coverage", "rej. prec", "rej. recall"):
        df[col] = df[col].map(pct)
    for col in ("s/pair", "wall s"):
        df[col] = df[col].map(lambda x: f"{x:.2f}")
    print()
    print(df.to_string(index=False))
    print("\nkept: not auto-rejected, not lost; ord.err / max / coverage: over kept maps; order err: kept maps whose "
          "exported image is not the left eye (all maps); rej. prec / recall: auto-reject against truth "
          "(bad = ord.err > 10 % or coverage < 30 %); rej. bad/good: auto-rejected maps that were bad / good; "
          "kept bad: bad maps that were kept; s/pair: ingest + process + export per pair (scoring excluded)")


def speed_setup(spec: str, config_file: str | None, overrides: list[str]):
    """The backend and the ``process`` settings a spec's config gives (same spec syntax as the audit)."""
    from flows.config import load_config

    cfg = load_config(config_file, data_root=Path(tempfile.gettempdir()), overrides=[*overrides, *spec_overrides(spec)])
    p = cfg.process
    return build_correspondence(p, device="cpu" if is_gpu_backend(p.correspondence) else None), p


def run_pair(left_path: Path, right_path: Path, backend, sky_backend, out_root: Path, item: str, settings):
    """What process_item does for one pair, minus the catalog: read, the downscale to ``process.max_side``,
    every stage, write. Timed per step, wall and CPU (``result.timings`` / ``result.cpu``; ``total`` in both)."""
    from tasks.labels.process import Stopwatch

    clock = Stopwatch()
    t0, c0 = time.perf_counter(), time.process_time()
    with clock("read"):
        left, right = read_rgb(left_path), read_rgb(right_path)
        left, right = downscale(left, settings.max_side), downscale(right, settings.max_side)
    result = process_pair(left, right, backend, sky_backend, settings=settings)
    with clock("write"):
        write_maps(out_root, item, result, jpeg_quality=settings.jpeg_quality)
    result.timings.update(clock.wall, total=time.perf_counter() - t0)
    result.cpu.update(clock.cpu, total=time.process_time() - c0)
    return result


def speed_pair(tmp: Path, megapixels: float) -> tuple[Path, Path, tuple[int, int]]:
    """The motorcycle pair resized to ``megapixels`` per view (a real web size), as PNG files."""
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    s = np.sqrt(megapixels * 1e6 / (left.shape[0] * left.shape[1]))
    size = (int(round(left.shape[1] * s)), int(round(left.shape[0] * s)))
    d = tmp / "speed"
    d.mkdir(parents=True, exist_ok=True)
    for name, view in (("left", left), ("right", right)):
        cv2.imwrite(str(d / f"{name}.png"), cv2.resize(view, size, interpolation=cv2.INTER_CUBIC)[..., ::-1])
    return d / "left.png", d / "right.png", size


def dis_reference_cpu(left_path: Path, right_path: Path, repeats: int = 3, max_side: int | None = None) -> float:
    """CPU seconds of OpenCV DIS (medium preset) both ways on the pair: the issue's yardstick (with
    ``max_side``: on the views downscaled as ``redweb process`` does)."""
    views = [read_rgb(p) for p in (left_path, right_path)]
    if max_side is not None:
        views = [downscale(v, max_side) for v in views]
    gl, gr = (cv2.cvtColor(v, cv2.COLOR_RGB2GRAY) for v in views)
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    best = float("inf")
    for _ in range(repeats):
        c = time.process_time()
        dis.calc(gl, gr, None)
        dis.calc(gr, gl, None)
        best = min(best, time.process_time() - c)
    return best


def bench_speed(tmp: Path, specs: list[str], megapixels: float = 1.0, repeats: int = 3,
                config_file: str | None = None, overrides: list[str] = ()) -> None:
    """Per-step CPU and wall seconds of each spec on one real-size pair, side by side, with OpenCV DIS
    (medium) both ways on the same pair as the yardstick (median of ``repeats`` runs after a warm-up)."""
    import pandas as pd

    left_path, right_path, size = speed_pair(tmp, megapixels)
    reference = dis_reference_cpu(left_path, right_path)
    cpu_cols, wall, processed = {}, {}, {}
    for spec in specs:
        (backend, settings), sky_backend = speed_setup(spec, config_file, list(overrides)), build_sky("heuristic")
        runs = [run_pair(left_path, right_path, backend, sky_backend, tmp / "speed_out", f"s{k}", settings)
                for k in range(repeats + 1)][1:]
        steps = sorted({k for r in runs for k in r.cpu})
        cpu_cols[spec] = {k: float(np.median([r.cpu.get(k, 0.0) for r in runs])) for k in steps}
        wall[spec] = float(np.median([r.timings["total"] for r in runs]))
        processed[spec] = (runs[0].processed_size[0] * runs[0].processed_size[1] / 1e6, settings.max_side)
    table = pd.DataFrame(cpu_cols).fillna(0.0)
    order = [k for k in table.index if k != "total"]
    table = table.loc[sorted(order, key=lambda k: -table.loc[k].max()) + ["total"]]
    table.loc["wall s per pair"] = pd.Series(wall)
    table.loc["MP per view processed"] = pd.Series({k: mp for k, (mp, _) in processed.items()})
    table.loc["x DIS medium (CPU)"] = table.loc["total"] / reference
    print(f"\n## Speed: CPU seconds per step, {size[0]}x{size[1]} per view ({size[0] * size[1] / 1e6:.2f} MP), "
          f"heuristic sky, cv2 threads {cv2.getNumThreads()}, {os.cpu_count()} cores, median of {repeats}\n")
    print(table.to_markdown(floatfmt=".3f"))
    print(f"\nOpenCV DIS (medium) both ways on the same pair: {reference:.3f} CPU-s (the target is <= 4x that). "
          "CPU counts every thread of the process; the machine may be shared, so compare columns of one run.")
    for mp, side in sorted(set(processed.values())):
        if side < max(size):  # process.max_side downscaled the views (tasks.labels.process.downscale's rule)
            print(f"The views were processed at {mp:.2f} MP (process.max_side {side}); DIS (medium) both ways at "
                  f"that size: {dis_reference_cpu(left_path, right_path, max_side=side):.3f} CPU-s.")


_MPO_CHILD = """
import json, resource, sys, time
sys.path.insert(0, sys.argv[4])
import cv2
from pathlib import Path
from tasks.catalog.catalog import Catalog
from tasks.ingest.run import ingest
from tasks.labels.process import process_batch
from tasks.labels.settings import ProcessConfig
cv2.setNumThreads(2)
path, root, spec = sys.argv[1:4]
url = f"sqlite:///{root}/catalog.db"
t = time.perf_counter()
with Catalog(url) as catalog:
    ingest(catalog, f"local:{Path(path).parent}", data_root=root, near_duplicate_max_distance=-1)
    ids = [it.id for it in catalog.items(catalog.ids()) if it.state == "split"]
t_ingest = time.perf_counter() - t
t = time.perf_counter()
states = process_batch(url, ids, root, settings=ProcessConfig(correspondence=spec))
def peak_mib():
    # VmHWM starts afresh at exec; ru_maxrss keeps the forked parent's high-water mark (on Linux), so
    # a big benchmark process made the child's figure look ~450 MiB larger than it was
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2 ** 10
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10
print(json.dumps([t_ingest, time.perf_counter() - t, list(states.values()), peak_mib()]))
"""


def bench_mpo(tmp: Path, megapixels: float = 10.0, spec: str = "fused") -> None:
    """A two-frame MPO of ``megapixels`` per frame (the motorcycle pair, upscaled), as a 3D camera
    writes it, through ingest and process in a fresh process: wall time and peak memory."""
    from PIL import Image
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    s = np.sqrt(megapixels * 1e6 / (left.shape[0] * left.shape[1]))
    size = (int(round(left.shape[1] * s)), int(round(left.shape[0] * s)))
    d = tmp / "mpo" / "in"
    d.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(cv2.resize(v, size, interpolation=cv2.INTER_CUBIC)) for v in (left, right)]
    path = d / "camera.mpo"
    frames[0].save(path, format="MPO", save_all=True, append_images=frames[1:], quality=92)
    # a fresh interpreter, so that its peak RSS is the MPO's alone
    (tmp / "mpo" / "root").mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-c", _MPO_CHILD, str(path), str(tmp / "mpo" / "root"), spec,
                           str(Path(__file__).resolve().parents[1])], capture_output=True, text=True, check=True)
    t_ingest, t_process, states, peak_mib = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\n## 10-MP MPO: {spec}, {size[0]}x{size[1]} per frame ({size[0] * size[1] / 1e6:.1f} MP, "
          f"{path.stat().st_size / 2 ** 20:.1f} MiB file), 2 cores")
    print(f"ingest {t_ingest:.2f} s + process {t_process:.2f} s; states {states}; peak memory {peak_mib:.0f} MiB")


def _sky_scene(h: int, w: int, seed: int, overcast: bool) -> tuple[np.ndarray, np.ndarray]:
    """Rendered landscape: graded sky with soft clouds above an irregular skyline of textured ground,
    a blue textured object and a bright wall that are not sky."""
    rng = np.random.default_rng(seed)
    ys = np.arange(h)[:, None]
    horizon = (0.45 * h + np.cumsum(rng.normal(0, 1.5, w))).clip(0.2 * h, 0.7 * h)
    horizon = np.convolve(horizon, np.ones(9) / 9, mode="same")
    sky = ys < horizon[None, :]
    img = np.zeros((h, w, 3), np.float32)
    t = ys / h
    base = np.array([200, 200, 205]) if overcast else np.array([90, 150, 235])
    img[:] = base * (1 - 0.3 * t)[..., None]  # darker towards the horizon
    clouds = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 12)
    clouds = (clouds - clouds.min()) / (np.ptp(clouds) + 1e-6)
    img += (clouds[..., None] * 60 * (0.3 if overcast else 1.0))
    ground = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.0)
    g = np.stack([60 + 90 * ground, 80 + 80 * ground, 40 + 50 * ground], -1)
    img = np.where(sky[..., None], img, g)
    # a blue car (textured) and a flat bright wall, both below the skyline
    y0 = int(0.75 * h)
    car = np.zeros((h, w), bool)
    car[y0:y0 + h // 8, w // 10:w // 10 + w // 5] = True
    img[car] = np.stack([40 + 30 * ground, 70 + 30 * ground, 170 + 60 * ground], -1)[car]
    wall = np.zeros((h, w), bool)
    wall[int(0.8 * h):int(0.95 * h), int(0.6 * w):int(0.85 * w)] = True
    img[wall] = (225, 225, 222)
    return np.clip(img, 0, 255).astype(np.uint8), sky


def bench_sky() -> None:
    from skimage import data

    print("\n## Sky: precision / recall (heuristic backend), without and with the dense CRF\n")
    backend = build_sky("heuristic")
    scenes = [(_sky_scene(240, 320, s, overcast=bool(s % 2)), f"rendered #{s}" + (" overcast" if s % 2 else " clear"))
              for s in range(6)]
    rocket = data.rocket()
    labels = np.full(rocket.shape[:2], -1, np.int8)  # -1 unlabelled, 1 sky, 0 not sky (rectangles by eye)
    for x0, y0, x1, y1 in [(100, 20, 180, 120), (350, 30, 430, 110), (480, 150, 540, 300), (220, 200, 290, 300)]:
        labels[y0:y1, x0:x1] = 1
    for x0, y0, x1, y1 in [(310, 160, 330, 380), (270, 408, 380, 427)]:
        labels[y0:y1, x0:x1] = 0
    scenes.append(((rocket, labels), "skimage rocket (labelled boxes)"))
    print(f"{'image':<34} {'P raw':>7} {'R raw':>7} {'P crf':>7} {'R crf':>7} {'t crf s':>8}")
    tot = {False: [0, 0, 0], True: [0, 0, 0]}
    for (img, truth), name in scenes:
        cells = []
        for crf in (False, True):
            t = time.perf_counter()
            _, pred = detect_sky(backend, img, crf=crf)
            dt = time.perf_counter() - t
            if truth.dtype == np.int8:
                known = truth >= 0
                pred_k, tr = pred[known], truth[known] == 1
            else:
                pred_k, tr = pred.ravel(), truth.ravel()
            tp, fp, fn = int((pred_k & tr).sum()), int((pred_k & ~tr).sum()), int((~pred_k & tr).sum())
            for k, v in zip(range(3), (tp, fp, fn)):
                tot[crf][k] += v
            cells += [tp / max(tp + fp, 1), tp / max(tp + fn, 1)]
        print(f"{name:<34} {cells[0]:>7.1%} {cells[1]:>7.1%} {cells[2]:>7.1%} {cells[3]:>7.1%} {dt:>8.3f}")
    p = [tot[c][0] / max(tot[c][0] + tot[c][1], 1) for c in (False, True)]
    r = [tot[c][0] / max(tot[c][0] + tot[c][2], 1) for c in (False, True)]
    print(f"{'all (pixel-weighted)':<34} {p[0]:>7.1%} {r[0]:>7.1%} {p[1]:>7.1%} {r[1]:>7.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", action="append", default=[], metavar="DIR",
                        help="scene folder or folder of scene folders, as for redweb audit (repeatable; "
                             "default: the skimage motorcycle)")
    parser.add_argument("--backends", default="fused,dis,sgbm",
                        help="comma-separated specs: backend[@field=value...] (process config fields, YAML values)")
    parser.add_argument("--packings", default="sbs,cross,ou,mpo", help="comma-separated subset of sbs,cross,ou,mpo")
    parser.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.FIELD=VALUE",
                        help="config override for every spec, as redweb --set (repeatable)")
    parser.add_argument("--config", metavar="FILE", help="YAML config file every spec starts from")
    parser.add_argument("--legacy-scale", type=float, help="disparity scale of Middlebury 2001-2006 folders")
    parser.add_argument("--max-frames", type=int, help="at most this many frames per KITTI folder")
    parser.add_argument("--details", action="store_true", help="also print each spec's per-pair audit table")
    parser.add_argument("--report", metavar="DIR", help="write each spec's HTML audit report under DIR/<spec>/")
    parser.add_argument("--speed-backends", default="fused,dis", help="comma-separated specs for the 1-MP timing")
    parser.add_argument("--pairs", type=int, default=100_000, help="random pixel pairs per map for the ordinal error")
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2, help="OpenCV / torch threads (the target is for 2 cores)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: labels,speed,mpo,sky")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    import torch

    from flows.config import ConfigError
    from tasks.audit.scenes import SceneError

    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if "labels" not in skip:
                bench_audit([b for b in args.backends.split(",") if b], args.scenes, Path(tmp),
                            packings=[p for p in args.packings.split(",") if p], n_pairs=args.pairs,
                            config_file=args.config, overrides=args.overrides, legacy_scale=args.legacy_scale,
                            max_frames=args.max_frames, report_dir=Path(args.report) if args.report else None,
                            details=args.details)
            if "speed" not in skip:
                bench_speed(Path(tmp), [s for s in args.speed_backends.split(",") if s], args.megapixels,
                            config_file=args.config, overrides=args.overrides)
            if "mpo" not in skip:
                bench_mpo(Path(tmp), 10.0, spec=args.speed_backends.split(",")[0])
    except (ConfigError, SceneError) as exc:
        print(f"bench_process: {exc}", file=sys.stderr)
        return 2
    if "sky" not in skip:
        bench_sky()
    return 0


if __name__ == "__main__":
    sys.exit(main())
