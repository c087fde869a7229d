"""Benchmark of the process stage on real stereo with ground truth (prints tables; not a test).

Label accuracy: scikit-image's Middlebury motorcycle pair (741 x 500, GT disparity), packed
side by side CROSS-EYED (right eye first) and degraded like web stereo: the right eye shifted
vertically (3 px) and horizontally (12 px, a convergence offset), a black border (16 px) around the
packed image, resized by 0.85, JPEG quality 80. The two halves are then split as ingest would
(assuming parallel), so the stage has to find the order, flip, compensate and crop. The same pair
without damage (still cross-eyed) is run too, for reference.

Per backend: view-order decision, ordinal error of depth.png against GT depth over random pairs of
reliable non-sky pixels (DESIGN.md labels, sigma = 0.02 on the depth ratio; ``ord.err`` over all
pairs, ``err.neq`` over the pairs GT orders, ``err.eq`` over the pairs GT calls equal), coverage of reliable
pixels over the original scene area, end-point error of the disparity (after removing the unknown
offset, in processed pixels), time per pair (read + every stage + writing the five files) and per
stage, peak traced memory. ``flownet2`` with random weights only gives a time.

Speed: the same pipeline on the pair upscaled to 1 megapixel per view (``--speed-backends``, 2 threads).

Sky: precision / recall with and without the CRF on rendered scenes with known sky and on
scikit-image's rocket photo with hand-labelled sky / not-sky rectangles.

Run: ``.venv/bin/python benchmarks/bench_process.py [--backends dis,sgbm,flownet2] [--pairs 200000]``;
a backend spec may carry builder arguments: ``sgbm@edge_band=2@smooth=0`` (YAML values).
Every CPU backend (dis, sgbm, sgbm_dense, dis+sgbm) gets label figures; networks a time only.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.correspondence import build_backend, is_gpu_backend  # noqa: E402
from tasks.depth import SKY_VALUE, ordinal_labels  # noqa: E402
from tasks.process import process_pair, read_rgb, write_maps  # noqa: E402
from tasks.sky import build_sky, detect_sky  # noqa: E402

DEGRADED = dict(border=16, shift_x=12, shift_y=3, scale=0.85, jpeg_q=80)
CLEAN = dict(border=0, shift_x=0, shift_y=0, scale=1.0, jpeg_q=100)


def degrade(left: np.ndarray, right: np.ndarray, *, border: int, shift_x: int, shift_y: int, scale: float,
            jpeg_q: int) -> tuple[np.ndarray, dict]:
    """Cross-eyed side-by-side packing with web-stereo damage; returns the source and its geometry."""
    BORDER, SHIFT_X, SHIFT_Y, SCALE, JPEG_Q = border, shift_x, shift_y, scale, jpeg_q
    h, w = left.shape[:2]
    r = np.zeros_like(right)
    r[SHIFT_Y:, SHIFT_X:] = right[:h - SHIFT_Y, :w - SHIFT_X]  # shifted down and right, black fill
    packed = np.zeros((h + 2 * BORDER, 2 * w + 2 * BORDER, 3), np.uint8)
    packed[BORDER:BORDER + h, BORDER:BORDER + w] = r  # right eye first: cross-eyed
    packed[BORDER:BORDER + h, BORDER + w:BORDER + 2 * w] = left
    ph, pw = packed.shape[:2]
    out_w = int(round(pw * SCALE / 2)) * 2
    out_h = int(round(ph * SCALE))
    small = cv2.resize(packed, (out_w, out_h), interpolation=cv2.INTER_AREA)
    ok, jpg = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_Q])
    source = cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1]
    geo = {"fx": pw / out_w, "fy": ph / out_h, "left_x0": BORDER + w, "left_y0": BORDER, "w": w, "h": h,
           "half": out_w // 2}
    return source, geo


def gt_in_output(gt: np.ndarray, geo: dict, box: tuple[int, int, int, int], view_x0: int) -> np.ndarray:
    """GT disparity (original pixels) sampled at every pixel of the cropped output image (nearest)."""
    x0, y0, x1, y1 = box
    us, vs = np.meshgrid(np.arange(x0, x1), np.arange(y0, y1))
    X = (view_x0 + us + 0.5) * geo["fx"] - 0.5 - geo["left_x0"]
    Y = (vs + 0.5) * geo["fy"] - 0.5 - geo["left_y0"]
    xi, yi = np.rint(X).astype(int), np.rint(Y).astype(int)
    inside = (xi >= 0) & (xi < geo["w"]) & (yi >= 0) & (yi < geo["h"])
    out = np.full(us.shape, np.nan, np.float32)
    out[inside] = gt[yi[inside], xi[inside]]
    out[~np.isfinite(out)] = np.nan
    return out


def ordinal_errors(depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray, n: int, seed: int = 0) -> dict:
    """Disagreement of DESIGN.md ordinal labels on random pixel pairs: ``all`` (3-way labels), ``neq``
    (over pairs GT orders, i.e. |ratio - 1| > sigma: inverted or called equal), ``eq`` (over GT-equal pairs)."""
    ys, xs = np.nonzero(valid)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, xs.size, n), rng.integers(0, xs.size, n)
    keep = (ys[i] != ys[j]) | (xs[i] != xs[j])
    i, j = i[keep], j[keep]
    ours = ordinal_labels(depth[ys[i], xs[i]].astype(np.float64), depth[ys[j], xs[j]].astype(np.float64))
    truth = ordinal_labels(gt_depth[ys[i], xs[i]], gt_depth[ys[j], xs[j]])
    wrong = ours != truth
    return {"all": float(wrong.mean()), "neq": float(wrong[truth != 0].mean()), "eq": float(wrong[truth == 0].mean())}


def ordinal_error(depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray, n: int, seed: int = 0) -> float:
    return ordinal_errors(depth, gt_depth, valid, n, seed)["all"]


def make_backend(spec: str):
    """``name`` or ``name@key=value@key=value`` (YAML values) -> (spec, backend); networks on the CPU."""
    import yaml

    name, *opts = spec.split("@")
    kw = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in opts)}
    if is_gpu_backend(name):
        kw.setdefault("device", "cpu")
    return spec, build_backend(name, **kw)


def run_pair(left_path: Path, right_path: Path, backend, sky_backend, out_root: Path, item: str, **options):
    """What process_item does for one pair, minus the catalog: read, every stage, write. Timed."""
    t0 = time.perf_counter()
    left, right = read_rgb(left_path), read_rgb(right_path)
    t_read = time.perf_counter() - t0
    result = process_pair(left, right, backend, sky_backend, **options)
    t = time.perf_counter()
    write_maps(out_root, item, result)
    result.timings["read"] = t_read
    result.timings["write"] = time.perf_counter() - t
    result.timings["total"] = time.perf_counter() - t0
    return result


def bench_labels(backends: list[str], n_pairs: int, tmp: Path, range_ratios: list[float], options: dict,
                 damage: dict = DEGRADED) -> None:
    from skimage import data

    left, right, gt = data.stereo_motorcycle()
    source, geo = degrade(left, right, **damage)
    tmp = tmp / f"labels{id(damage)}"
    half = geo["half"]
    pairs = tmp / "pairs"
    pairs.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(pairs / "first.png"), source[:, :half, ::-1])  # ingest assumes parallel: first = "left"
    cv2.imwrite(str(pairs / "second.png"), source[:, half:, ::-1])
    sky_backend = build_sky("heuristic")
    print(f"\n## Labels: Middlebury motorcycle, cross-eyed side-by-side, {damage}; "
          f"source {source.shape[1]}x{source.shape[0]}, views {half}x{source.shape[0]}\n")
    nw = max(10, *(len(b) for b in backends))
    header = (f"{'backend':<{nw}} {'order':<11} {'ord.err':>8} {'err.neq':>8} {'err.eq':>7} {'coverage':>9} "
              f"{'cov.crop':>9} {'EPE px':>7} {'wall s':>7} {'cpu s':>6} {'peak MiB':>9}  per stage, wall (s)")
    print(header)
    print("-" * len(header))
    for spec in backends:
        name, backend = make_backend(spec)
        run_pair(pairs / "first.png", pairs / "second.png", backend, sky_backend, tmp / "warm", "warm", **options)
        tracemalloc.start()
        c0 = time.process_time()
        result = run_pair(pairs / "first.png", pairs / "second.png", backend, sky_backend, tmp / name, "moto", **options)
        cpu = time.process_time() - c0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stages = " ".join(f"{k}={v:.2f}" for k, v in result.timings.items() if k != "total")
        if is_gpu_backend(name.split("@")[0]):
            print(f"{name:<{nw}} {result.view_order:<11} {'(random weights: time only)':>53} "
                  f"{result.timings['total']:>7.2f} {cpu:>6.2f} {peak / 2**20:>9.0f}  {stages}")
            continue
        view_x0 = half if result.swapped_views else 0  # left eye = second half when flipped
        gtd = gt_in_output(gt, geo, result.box, view_x0)
        reliable = result.reliable & ~result.sky
        valid = reliable & np.isfinite(gtd) & (gtd > 0)
        depth = result.depth.astype(np.float64)
        gt_depth = 1.0 / np.where(valid, gtd, 1.0)
        errs = ordinal_errors(depth, gt_depth, valid & (result.depth < SKY_VALUE), n_pairs)
        # coverage over the scene: reliable pixels that show the original left view / its area at this scale
        scene_area = geo["w"] * geo["h"] / (geo["fx"] * geo["fy"])
        in_scene = np.isfinite(gt_in_output(np.ones_like(gt), geo, result.box, view_x0))
        coverage = float((reliable & in_scene).sum()) / scene_area
        # registration check of the GT mapping: the original left view sampled the same way
        ref = np.stack([gt_in_output(left[..., c].astype(np.float32), geo, result.box, view_x0) for c in range(3)], -1)
        reg_err = float(np.nanmean(np.abs(ref - result.image.astype(np.float32))))
        cov_crop = float(result.reliable.mean())
        gt_proc = gtd / geo["fx"]  # GT disparity in processed pixels
        diff = (result.disparity - gt_proc)[valid]
        epe = float(np.abs(diff - np.median(diff)).mean())
        print(f"{name:<{nw}} {result.view_order:<11} {errs['all']:>8.2%} {errs['neq']:>8.2%} {errs['eq']:>7.1%} "
              f"{coverage:>9.1%} {cov_crop:>9.1%} {epe:>7.2f} "
              f"{result.timings['total']:>7.2f} {cpu:>6.2f} {peak / 2**20:>9.0f}  {stages}")
        print(f"    GT registration check: mean |original left - output image| = {reg_err:.1f} (8-bit; JPEG + resize)")
        if range_ratios and name == "dis":
            from tasks.depth import disparity_to_depth

            cells = []
            for k in range_ratios:
                g, _ = disparity_to_depth(result.disparity, reliable, range_ratio=k)
                cells.append(f"K={k:g}: {ordinal_error(g, gt_depth, valid, n_pairs):.2%}")
            print(f"    depth_range_ratio sensitivity (dis): {', '.join(cells)}")
            print(f"    view-order votes: {result.info['view_order_votes']}; alignment: "
                  f"ty={result.info['alignment']['ty']:.2f} px, rot={result.info['alignment']['rotation_deg']:.3f} deg; "
                  f"crop box {result.box}")
            # the same labels with the raw flow (no fb check / photometric check): the masks' worth
            raw_valid = np.isfinite(gtd) & (gtd > 0)
            g, _ = disparity_to_depth(result.disparity, raw_valid, range_ratio=10)
            print(f"    without any mask (all pixels with GT, same crop): ord.err {ordinal_error(g, gt_depth, raw_valid, n_pairs):.2%}")


def bench_speed(tmp: Path, megapixels: float = 1.0, repeats: int = 3, options: dict | None = None,
                spec: str = "dis") -> None:
    from skimage import data

    left, right, _ = data.stereo_motorcycle()
    s = np.sqrt(megapixels * 1e6 / (left.shape[0] * left.shape[1]))
    size = (int(round(left.shape[1] * s)), int(round(left.shape[0] * s)))
    d = tmp / "speed"
    d.mkdir(parents=True, exist_ok=True)
    for name, view in (("left", left), ("right", right)):
        cv2.imwrite(str(d / f"{name}.png"), cv2.resize(view, size, interpolation=cv2.INTER_CUBIC)[..., ::-1])
    (_, backend), sky_backend = make_backend(spec), build_sky("heuristic")
    times, cpus = [], []
    for k in range(repeats + 1):
        c0 = time.process_time()
        r = run_pair(d / "left.png", d / "right.png", backend, sky_backend, tmp / "speed_out", f"s{k}", **(options or {}))
        if k:
            times.append(r.timings)
            cpus.append(time.process_time() - c0)
    best = min(times, key=lambda t: t["total"])
    stages = " ".join(f"{k}={v:.2f}" for k, v in best.items() if k != "total")
    print(f"\n## Speed: {spec} + heuristic sky + CRF, {size[0]}x{size[1]} per view ({size[0] * size[1] / 1e6:.2f} MP), "
          f"cv2 threads {cv2.getNumThreads()}, {os.cpu_count()} cores")
    print(f"best of {repeats}: {best['total']:.2f} s per pair (median {np.median([t['total'] for t in times]):.2f});"
          f" {stages}; CPU time {np.median(cpus):.2f} s (all threads; the machine is shared, wall times vary)")


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
    parser.add_argument("--backends", default="dis,sgbm,sgbm_dense,flownet2",
                        help="comma-separated correspondence backends (name or name@key=value@...)")
    parser.add_argument("--speed-backends", default="dis,sgbm", help="comma-separated backends for the 1-MP timing")
    parser.add_argument("--pairs", type=int, default=200_000, help="random pixel pairs for the ordinal error")
    parser.add_argument("--megapixels", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=2, help="OpenCV / torch threads (the target is for 2 cores)")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: labels,speed,sky")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="process_pair option, e.g. --option fb_beta=0.3 (YAML value)")
    args = parser.parse_args(argv)
    cv2.setNumThreads(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    import yaml

    options = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.option)}
    if options:
        print(f"process_pair options: {options}")
    with tempfile.TemporaryDirectory() as tmp:
        if "labels" not in skip:
            ratios = [4, 7, 10, 20, float("inf")]
            bench_labels(args.backends.split(","), args.pairs, Path(tmp), ratios, options, DEGRADED)
            cpu_backends = [b for b in args.backends.split(",") if not is_gpu_backend(b.split("@")[0])]
            bench_labels(cpu_backends or ["dis"], args.pairs, Path(tmp), ratios, options, CLEAN)
        if "speed" not in skip:
            for spec in args.speed_backends.split(","):
                bench_speed(Path(tmp), args.megapixels, options=options, spec=spec)
    if "sky" not in skip:
        bench_sky()
    return 0


if __name__ == "__main__":
    sys.exit(main())
