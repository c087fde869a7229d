"""Ingest benchmark: stereo-format detection accuracy on the embedded samples, and throughput.

    .venv/bin/python benchmarks/bench_ingest.py [--max-view-side N] [--repeat K]

Prints (1) per-file detection (expected vs detected, the winning similarity), (2) accuracy over
the sample set plus a false-positive check on scikit-image's other real photos (each must be
`mono`), (3) time per step (decode, detect, pHash) and end-to-end `tasks.ingest.run.ingest` items/s
on a fresh SQLite catalog (no Prefect).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-view-side", type=int, default=None, help="sample view size (default: 741x500 source)")
    parser.add_argument("--repeat", type=int, default=1, help="ingest the sample set K times (fresh catalogs)")
    args = parser.parse_args(argv)

    import numpy as np
    from skimage import data

    from tasks.catalog.catalog import Catalog
    from tasks.ingest.dedup import phash64
    from tasks.ingest.imageio import decode_image, is_jps
    from tasks.ingest.run import ingest
    from tasks.ingest.samples import build_samples, load_manifest
    from tasks.ingest.stereo_formats import detect_stereo_format, extract_views

    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    t0 = time.perf_counter()
    samples = build_samples(tmp / "data" / "samples", max_view_side=args.max_view_side)
    build_s = time.perf_counter() - t0

    rows, correct, total = [], 0, 0
    t_decode = t_detect = t_hash = 0.0
    for entry in load_manifest(samples):
        expected = entry["expected_format"] or entry["expected_reason"]
        if expected not in ("side_by_side", "over_under", "mpo", "jps", "triptych", "anaglyph", "mono"):
            continue  # bad files and duplicates: not a format question
        path = samples / entry["file"]
        t = time.perf_counter()
        image = decode_image(path)
        t_decode += time.perf_counter() - t
        t = time.perf_counter()
        layout = detect_stereo_format(image.frames, is_jps=path.suffix == ".jps" or is_jps(path.read_bytes()))
        t_detect += time.perf_counter() - t
        if layout.is_stereo:
            t = time.perf_counter()
            phash64(extract_views(image.frames, layout)[0])
            t_hash += time.perf_counter() - t
        ok = layout.format == expected
        correct += ok
        total += 1
        score = layout.scores.get(layout.format, max((v for v in layout.scores.values() if isinstance(v, float)),
                                                     default=0.0))
        rows.append((entry["file"], f"{image.width}x{image.height}", expected, layout.format, score, ok))

    print(f"samples: {samples} (views <= {args.max_view_side or 'source size'}; built in {build_s:.1f} s)\n")
    print(f"{'file':<26} {'size':>10} {'expected':<13} {'detected':<13} {'score':>6}  ok")
    for name, size, exp, got, score, ok in rows:
        print(f"{name:<26} {size:>10} {exp:<13} {got:<13} {score:>6.3f}  {'yes' if ok else 'NO'}")

    # false positives on other real photos: each whole photo must be mono
    photos = {n: getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry",
                                             "hubble_deep_field", "retina", "camera", "coins", "brick", "grass",
                                             "gravel", "moon", "page", "text", "horse", "cell", "colorwheel")
              if hasattr(data, n)}
    fp = []
    for name, img in photos.items():
        rgb = img if img.ndim == 3 else np.repeat(np.asarray(img, np.uint8)[..., None], 3, axis=2)
        rgb = (rgb * 255).astype(np.uint8) if rgb.dtype == bool else rgb[..., :3].astype(np.uint8)
        layout = detect_stereo_format([rgb])
        if layout.format != "mono":
            fp.append((name, layout.format, layout.scores))
    print(f"\nformat-detection accuracy on the sample set: {correct}/{total} = {correct / max(total, 1):.1%}")
    print(f"other scikit-image photos detected as mono: {len(photos) - len(fp)}/{len(photos)}"
          + "".join(f"\n  false positive: {n} -> {f} {s}" for n, f, s in fp))
    n = max(total, 1)
    print(f"\n{'step':<22} {'ms/item':>8}")
    print(f"{'decode':<22} {1000 * t_decode / n:>8.1f}\n{'detect layout':<22} {1000 * t_detect / n:>8.1f}\n"
          f"{'phash (stereo only)':<22} {1000 * t_hash / n:>8.1f}")

    # end to end: register + copy + decode + dedup + detect + write PNG views + catalog transitions
    n_items = len(load_manifest(samples))
    times = []
    for k in range(args.repeat):
        root = tmp / f"run{k}"
        root.mkdir()
        (root / "samples").symlink_to(samples, target_is_directory=True)
        with Catalog(f"sqlite:///{root / 'catalog.db'}") as catalog:
            t = time.perf_counter()
            states = ingest(catalog, "samples", data_root=root, samples_max_view_side=args.max_view_side)
            times.append(time.perf_counter() - t)
            t = time.perf_counter()
            ingest(catalog, "samples", data_root=root, samples_max_view_side=args.max_view_side)
            rerun = time.perf_counter() - t
    best = min(times)
    print(f"\nend-to-end ingest (SQLite, one process): {n_items} items in {best:.2f} s = {n_items / best:.1f} items/s"
          f"  {states}")
    print(f"re-run (everything already done): {rerun:.2f} s = {n_items / rerun:.0f} items/s")
    anaglyph_table()
    return 0 if correct == total and not fp else 1


def anaglyph_table() -> None:
    """Does splitting an anaglyph into red | cyan views give usable maps? DIS (the process stage's
    default backend) on the channel views vs on the true grey pair, against Middlebury GT."""
    import numpy as np

    from tasks.labels.consistency import consistency_mask
    from tasks.labels.correspondence import DisBackend, bidirectional_flow
    from tasks.ingest.samples import _CROPS, _Crop, crop_pair
    from tasks.ingest.stereo_formats import anaglyph_views

    backend = DisBackend()
    print("\nanaglyph split (DIS, full-resolution crops; bad3 = |d - GT| > 3 px on left-right consistent pixels)")
    print(f"{'crop':<16} {'views':<10} {'consistent':>10} {'bad3':>6} {'corr(d, GT)':>12}")
    for name, crop in (("anaglyph", _CROPS["anaglyph"]), ("whole scene", _Crop(0, 0, 1, 1)),
                       ("pair_05", _CROPS["pair_05"]), ("pair_03", _CROPS["pair_03"])):
        lv, rv, gt = crop_pair(crop, None)
        for label, (a, b) in (("true", (lv, rv)), ("red|cyan", anaglyph_views(np.dstack([lv[..., 0], rv[..., 1],
                                                                                        rv[..., 2]])))):
            fwd, bwd = bidirectional_flow(backend, a, b)
            ok = consistency_mask(fwd, bwd) & np.isfinite(gt)
            d = -fwd[..., 0]
            corr = float(np.corrcoef(d[ok], gt[ok])[0, 1]) if ok.sum() > 10 else float("nan")
            print(f"{name:<16} {label:<10} {ok.mean():>10.2f} {(np.abs(d - gt)[ok] > 3).mean():>6.3f} {corr:>12.3f}")


if __name__ == "__main__":
    sys.exit(main())
