"""Evaluation benchmarks: metric speed at NYUv2 scale, and the baselines on real Middlebury ground truth.

    .venv/bin/python benchmarks/bench_evaluate.py                # both tables
    .venv/bin/python benchmarks/bench_evaluate.py --n-images 100 # quicker speed table

Table 1 times :func:`model.evaluate.evaluate_dense` on ``--n-images`` fake 480x640 NYUv2-sized
images (smooth random depth in 0.5-10 m, Eigen crop mask, 3000 WKDR pairs, all three alignments)
for one predictor (the truth plus noise) and for the two baselines.

Table 2 scores the baselines, the ground-truth disparity itself (read with ``inverse``), a blurred
copy and a noisy copy on the Middlebury 2014 Motorcycle pair that scikit-image ships (real
structured-light ground truth, 741x500, no calibration: depth = 1 / disparity).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from model import evaluate as E
from model.benchmarks import NYU_EIGEN_CROP, DenseSample, disparity_to_depth


class ArrayPredictions:
    """Predictions held in memory: ``{key: (H, W) array}``."""

    def __init__(self, maps: dict[str, np.ndarray], inverse: bool = False) -> None:
        self.maps, self.inverse = maps, inverse

    def __call__(self, key, load_image, size):
        from model.predict import resize_map

        return resize_map(self.maps[key], size)


def fake_nyu(n: int, seed: int = 0):
    """Yield n NYUv2-shaped samples with smooth depth (upsampled 15x20 noise mapped to 0.5-10 m)."""
    import cv2

    rng = np.random.default_rng(seed)
    y0, y1, x0, x1 = NYU_EIGEN_CROP
    crop = np.zeros((480, 640), bool)
    crop[y0:y1, x0:x1] = True
    for i in range(n):
        coarse = rng.uniform(0.5, 10.0, size=(15, 20))
        depth = cv2.resize(coarse, (640, 480), interpolation=cv2.INTER_CUBIC).clip(0.5, 10.0)
        yield DenseSample(f"{i + 1:04d}", depth, crop & (depth > 0), metric=True)


def speed_table(n: int) -> None:
    rng = np.random.default_rng(1)
    samples = list(fake_nyu(n))
    noisy = {s.key: s.depth * rng.lognormal(0, 0.1, size=s.depth.shape) for s in samples}
    rows = []
    for name, predictors in (("model (truth x noise)", {"model": ArrayPredictions(noisy)}),
                             ("baselines (2)", E.baseline_predictors())):
        t0 = time.perf_counter()
        res = E.evaluate_dense(iter(samples), predictors, train_stats=(2.8, 1.4))
        dt = time.perf_counter() - t0
        first = next(iter(res.values()))
        rows.append((name, len(predictors), dt, 1000 * dt / (n * len(predictors)), first["wkdr"], first.get("rms")))
    print(f"\nTable 1: evaluate_dense on {n} fake 480x640 images (3000 pairs/image, 3 alignments)")
    print(f"{'predictors':<24}{'count':>6}{'total s':>10}{'ms/img/pred':>13}{'wkdr':>9}{'rms':>9}")
    for name, k, dt, ms, wkdr, rms in rows:
        print(f"{name:<24}{k:>6}{dt:>10.2f}{ms:>13.1f}{wkdr:>9.4f}{rms:>9.4f}")


def middlebury_table() -> None:
    import cv2
    from skimage.data import stereo_motorcycle

    _left, _right, disp = stereo_motorcycle()
    depth, valid = disparity_to_depth(disp)
    sample = DenseSample("motorcycle", depth, valid, metric=True)
    d0 = np.where(np.isfinite(disp), disp, 0.0).astype(np.float64)
    fill = np.where(valid, d0, d0[valid].mean())
    rng = np.random.default_rng(0)
    predictors = {
        "gt disparity (inverse)": ArrayPredictions({"motorcycle": fill}, inverse=True),
        "gt blurred 15px (inverse)": ArrayPredictions({"motorcycle": cv2.GaussianBlur(fill, (0, 0), 15)}, inverse=True),
        "gt x lognormal(0.2) noise": ArrayPredictions({"motorcycle": np.where(valid, depth, depth[valid].mean())
                                                       * rng.lognormal(0, 0.2, size=depth.shape)}),
        **E.baseline_predictors(),
    }
    print("\nTable 2: Middlebury 2014 Motorcycle (scikit-image copy), 3000 pairs, sigma 0.02")
    cols = ("wkdr", "wkdr_eq", "wkdr_neq", "rel", "delta1")
    for alignment in ("scale_shift", "scale_shift_inverse"):
        res = E.evaluate_dense([sample], predictors, alignment=alignment)
        print(f"\nalignment = {alignment}")
        print(f"{'predictor':<28}" + "".join(f"{c:>10}" for c in cols))
        for name, r in res.items():
            print(f"{name:<28}" + "".join(f"{r[c]:>10.4f}" for c in cols))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-images", type=int, default=654, help="fake NYUv2 images for the speed table")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if not args.skip_speed:
        speed_table(args.n_images)
    middlebury_table()


if __name__ == "__main__":
    main()
