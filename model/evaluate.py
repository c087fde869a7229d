"""Score depth predictions on a benchmark, always next to the same baselines.

A *predictor* turns one benchmark image into a raw ``(H, W)`` map at the image's resolution:
:class:`FolderPredictions` (files written by any model), :class:`ModelPredictions` (a checkpoint),
and the two baselines :class:`LowerIsCloser` and :class:`Constant`. ``inverse = True`` marks a
disparity-like output (larger = closer, e.g. MiDaS); everything else is larger = farther.

* DIW (:func:`evaluate_diw`): WHDR at the one labelled pair of each image; a tie is wrong.
* Dense ground truth (:func:`evaluate_dense`: NYUv2, our export, Middlebury): WKDR / WKDR= /
  WKDR≠ on ``pairs_per_image`` point pairs per image, sampled once per image with seed
  ``[seed, image number]`` and shared by every predictor; for metric ground truth also rms, rel,
  log10, delta1..3 after each available alignment:

  - ``paper``: the ReDWeb paper's normalization, the prediction standardized then given the
    training set's depth mean and std (``train_stats``; NYUv2 computes them from its 795
    training images);
  - ``scale_shift``: per-image least-squares scale and shift in depth space;
  - ``scale_shift_inverse``: the same in inverse-depth space (the MiDaS protocol).

  The ``alignment`` argument picks the one reported at the top level, and the aligned map is also
  what WKDR's ratio threshold sees for the prediction (a ratio needs a positive depth in the
  ground truth's units). Relative-only ground truth (our RDs) gets ordinal metrics only, with a
  ``scale_shift`` alignment to the RD values.

* Chen et al. 2016's WKDR (``wkdr_chen2016``, next to our ``wkdr``): on the same test pairs, the
  predicted relation comes from the **raw** output, "equal" when ``|z_A - z_B| < tau``
  (:func:`model.metrics.chen2016_relations`), with ``tau`` chosen per predictor on validation
  images to minimise ``max(WKDR=, WKDR≠)`` (:func:`model.metrics.select_chen2016_tau`). The
  validation images are the first ``chen_val_images`` of NYUv2's training split (795 images, none
  of the test set) or of our export's ``train`` rows; ``chen_tau`` fixes tau instead. Reported as
  ``wkdr_chen2016``, ``wkdr_chen2016_eq``, ``wkdr_chen2016_neq`` and ``wkdr_chen2016_tau``.

Result dicts use the metric names of DESIGN.md (``whdr, wkdr, wkdr_eq, wkdr_neq, rms, rel, log10,
delta1, delta2, delta3``, fractions) plus ``n_images``/``n_pairs`` and, for dense benchmarks, the
per-alignment errors under ``alignments``.
"""
from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from core.progress import track
from model import metrics as M
from core.rules import METRIC_NAMES
from model.benchmarks import DenseSample, DiwSample, glob_escape, read_image, read_map

log = logging.getLogger(__name__)

BENCHMARKS = ("diw", "nyu", "redweb", "middlebury")
ALIGNMENTS = ("paper", "scale_shift", "scale_shift_inverse")
PREDICTION_SUFFIXES = (".npy", ".png", ".pfm", ".tif", ".tiff")
#: Column order of the printed table and of the top-level JSON keys.
METRIC_ORDER = METRIC_NAMES
#: Chen et al. 2016's protocol: the validation images tau is chosen on, by default (0 = off).
DEFAULT_CHEN_VAL_IMAGES = 100

ImageLoader = Callable[[], np.ndarray]


# --------------------------------------------------------------------------- predictors
class FolderPredictions:
    """Prediction files named by the image's file stem: ``<stem>.npy`` (float), ``.png``
    (8/16-bit), ``.pfm`` or ``.tif``, any resolution (resized bilinearly to the image size)."""

    def __init__(self, folder: str | Path, inverse: bool = False, name: str = "predictions") -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"{self.folder}: predictions folder does not exist")
        self.inverse = inverse
        self.name = name

    def path_for(self, key: str) -> Path:
        for suffix in PREDICTION_SUFFIXES:
            p = self.folder / f"{key}{suffix}"
            if p.exists():
                return p
        # Also accept an upper-case suffix (X.PNG) and the image's full name plus a suffix
        # (x.thumb.npy); nothing looser, so "a" never picks up "a_b.npy".
        hits = [p for p in self.folder.glob(f"{glob_escape(key)}.*")
                if p.suffix.lower() in PREDICTION_SUFFIXES and key in (p.stem, Path(p.stem).stem)]
        if hits:
            return sorted(hits)[0]
        raise FileNotFoundError(f"no prediction for image {key!r} in {self.folder} (expected {key}.npy or {key}.png)")

    def __call__(self, key: str, load_image: ImageLoader, size: tuple[int, int]) -> np.ndarray:
        from model.predict import resize_map

        return resize_map(read_map(self.path_for(key)), size)


class ModelPredictions:
    """A network run on each benchmark image (output resized to the image size)."""

    inverse = False  # our networks predict depth, larger = farther

    def __init__(self, model, spec=None, device: str = "cpu", max_side: int | None = None, name: str = "model") -> None:
        from model.predict import InputSpec

        self.model, self.spec = model, spec or InputSpec()
        self.device, self.max_side, self.name = device, max_side, name

    def __call__(self, key: str, load_image: ImageLoader, size: tuple[int, int]) -> np.ndarray:
        from model.predict import predict_image, resize_map

        image = load_image()
        return resize_map(predict_image(self.model, image, self.spec, self.device, self.max_side), size)


class LowerIsCloser:
    """Baseline: the lower a pixel in the image, the closer (depth = rows from the bottom + 1).

    Chen et al. report 31.37 % WHDR for it on DIW. Two points on one row tie, and here a tie is
    wrong (the rule for every predictor); the result's ``ties`` share gives the coin-flip variant
    ``whdr - ties / 2``, since the paper does not say how it settled same-row pairs.
    """

    inverse = False
    name = "lower_is_closer"

    def __call__(self, key: str, load_image: ImageLoader, size: tuple[int, int]) -> np.ndarray:
        h, w = size
        return np.repeat(np.arange(h, 0, -1, dtype=np.float64)[:, None], w, axis=1)


class Constant:
    """Baseline: the same depth everywhere (every pair a tie; after alignment: the mean depth)."""

    inverse = False
    name = "constant"

    def __call__(self, key: str, load_image: ImageLoader, size: tuple[int, int]) -> np.ndarray:
        return np.ones(size, dtype=np.float64)


def baseline_predictors() -> dict[str, Any]:
    """The baselines scored next to every model, by name."""
    return {"lower_is_closer": LowerIsCloser(), "constant": Constant()}


def depth_like(raw: np.ndarray, inverse: bool) -> np.ndarray:
    """Raw prediction -> an ordering with larger = farther. A disparity-like map is negated (not
    inverted): its shift is unknown, so 1/x would be meaningless, while -x keeps the order exactly."""
    return -np.asarray(raw, dtype=np.float64) if inverse else np.asarray(raw, dtype=np.float64)


# --------------------------------------------------------------------------- DIW
def evaluate_diw(
    samples: Sequence[DiwSample],
    predictors: Mapping[str, Any],
    images_dir: str | Path | None = None,
    progress: bool = False,
    keep_examples: int = 0,
) -> dict[str, dict[str, Any]]:
    """WHDR of each predictor on DIW samples -> ``{name: {"whdr", "ties", "n_pairs", "n_images"}}``.

    Predictions are resized to the **original** image size given in the CSV, and read at the
    labelled (0-based) points. Images are opened (by content) only for predictors that need them.
    keep_examples: keep the first N ``(image, points, prediction per predictor)`` under
    ``"_examples"`` (needs ``images_dir``; for reports, not JSON).
    """
    za = {name: np.empty(len(samples)) for name in predictors}
    zb = {name: np.empty(len(samples)) for name in predictors}
    root = Path(images_dir) if images_dir is not None else None
    examples: list[dict[str, Any]] = []
    for i, s in enumerate(track(samples, desc="diw", unit="img", enabled=progress)):

        def load(s: DiwSample = s) -> np.ndarray:
            if root is None:
                raise ValueError("this predictor needs the images: pass --images")
            return read_image(root / s.image)

        example = None
        if root is not None and len(examples) < keep_examples:
            example = {"key": s.key, "image": load(), "pred": {},
                       "points": [(s.ya, s.xa, "A"), (s.yb, s.xb, "B")], "caption": f"A {s.relation} B"}
        for name, predictor in predictors.items():
            d = depth_like(predictor(s.key, load, (s.height, s.width)), predictor.inverse)
            za[name][i], zb[name][i] = d[s.ya, s.xa], d[s.yb, s.xb]
            if example is not None:
                example["pred"][name] = d
        if example is not None:
            examples.append(example)
    relations = [s.relation for s in samples]
    results: dict[str, dict[str, Any]] = {}
    for name in predictors:
        r: dict[str, Any] = M.whdr(za[name], zb[name], relations)
        r["n_images"] = float(len(samples))
        results[name] = r
    if keep_examples:
        results["_examples"] = examples  # type: ignore[assignment]
    return results


# --------------------------------------------------------------------------- dense ground truth
def _aligned_maps(
    raw: np.ndarray,
    inverse: bool,
    sample: DenseSample,
    train_stats: tuple[float, float] | None,
    max_depth: float | None,
) -> dict[str, np.ndarray]:
    d = depth_like(raw, inverse)
    gt, mask = sample.depth, sample.mask
    # Scales are constrained to be >= 0 so that a reversed prediction is never flipped into credit.
    maps = {"scale_shift": M.align_scale_shift(d, gt, mask, nonnegative=True)}
    if sample.metric:
        if train_stats is not None:
            maps["paper"] = M.normalize_to_stats(d, *train_stats)
        # inverse-space fit: the disparity-like view of the prediction is -d (= raw if inverse)
        maps["scale_shift_inverse"] = M.align_scale_shift_inverse(-d, gt, mask, max_depth=max_depth, nonnegative=True)
    return maps


class EmptyBenchmarkError(ValueError):
    """A benchmark that yields no image: ``evaluate_benchmark`` names the folder and what it expected."""


EXPECTED_IMAGES = {
    "redweb": "manifest.csv rows with split={split} and their imgs/RDs/masks",
    "nyu": "the test split's images in the labeled .mat",
    "middlebury": "scene folders with im0.png + disp0GT.pfm, or <name>.pfm/.png disparity maps with --images",
}


def evaluate_dense(
    samples: Iterable[DenseSample],
    predictors: Mapping[str, Any],
    *,
    alignment: str | None = None,
    train_stats: tuple[float, float] | None = None,
    sigma: float = M.DEFAULT_SIGMA,
    pairs_per_image: int = M.DEFAULT_PAIRS_PER_IMAGE,
    seed: int = 0,
    min_depth: float = 1e-3,
    max_depth: float | None = None,
    progress: bool = False,
    keep_examples: int = 0,
    chen_val_samples: Iterable[DenseSample] | None = None,
    chen_tau: float | None = None,
) -> dict[str, dict[str, Any]]:
    """Ordinal and metric-depth errors of each predictor on dense ground truth.

    chen_val_samples: validation images on which each predictor's ``tau`` for ``wkdr_chen2016`` is
    chosen; ``chen_tau`` fixes it instead; with neither, ``wkdr_chen2016`` is not computed.

    alignment: the alignment reported at the top level and used for WKDR (default ``paper`` when
    ``train_stats`` is given, else ``scale_shift``). max_depth: prediction clip for the errors and
    the inverse-alignment cap (default: each image's largest valid ground-truth depth).
    keep_examples: keep the first N ``(image, gt, mask, aligned prediction per predictor)`` under
    the key ``"_examples"`` of the result (for reports; not JSON).
    """
    alignment = alignment or ("paper" if train_stats is not None else "scale_shift")
    if alignment not in ALIGNMENTS:
        raise ValueError(f"alignment must be one of {ALIGNMENTS}")
    if alignment == "paper" and train_stats is None:
        raise ValueError("the paper's normalization needs the training set's depth mean and std (train_stats)")
    counts = {name: [] for name in predictors}
    chen = chen_tau is not None or chen_val_samples is not None
    chen_diff: dict[str, list[np.ndarray]] = {name: [] for name in predictors}  # raw z_A - z_B per test pair
    chen_truth: list[np.ndarray] = []
    errors: dict[str, dict[str, list[dict[str, float]]]] = {name: {} for name in predictors}
    examples: list[dict[str, Any]] = []
    n_images = 0
    any_metric = False
    for i, sample in enumerate(track(samples, desc="evaluate", unit="img", enabled=progress)):
        if not sample.mask.any():
            log.warning("%s: no valid ground-truth pixel, skipped", sample.key)
            continue
        n_images += 1
        ia, ib = M.sample_pairs(sample.mask, pairs_per_image, np.random.default_rng([seed, i]))
        gt_flat = sample.depth.ravel()
        if chen:
            chen_truth.append(M.ordinal_relation(gt_flat[ia], gt_flat[ib], sigma))
        cap = max_depth if max_depth is not None else float(sample.depth[sample.mask].max())
        example: dict[str, Any] | None = None
        if len(examples) < keep_examples:
            example = {"key": sample.key, "image": sample.load_image(), "gt": sample.depth, "mask": sample.mask, "pred": {}}
        image_cache: list[np.ndarray] = []

        def load(sample: DenseSample = sample, cache: list = image_cache) -> np.ndarray:
            if not cache:
                cache.append(sample.load_image())
            return cache[0]

        for name, predictor in predictors.items():
            raw = predictor(sample.key, load, sample.shape)
            if chen:
                z = depth_like(raw, predictor.inverse).ravel()
                chen_diff[name].append(z[ia] - z[ib])
            maps = _aligned_maps(raw, predictor.inverse, sample, train_stats, cap)
            primary = alignment if alignment in maps else "scale_shift"
            # Ratio thresholds need non-negative depth; an aligned map can dip below zero.
            ordinal = np.maximum(maps[primary], 0.0 if not sample.metric else min_depth).ravel()
            counts[name].append(M.wkdr_counts(ordinal[ia], ordinal[ib], gt_flat[ia], gt_flat[ib], sigma))
            if sample.metric:
                any_metric = True
                for align_name, aligned in maps.items():
                    errors[name].setdefault(align_name, []).append(
                        M.depth_errors(aligned, sample.depth, sample.mask, min_depth=min_depth, max_depth=cap)
                    )
            if example is not None:
                example["pred"][name] = maps[primary]
        if example is not None:
            examples.append(example)
    if n_images == 0:
        raise EmptyBenchmarkError("the benchmark has no images")

    taus: dict[str, float] = {}
    val_info: dict[str, float] = {}
    if chen:
        if chen_tau is not None:
            taus = {name: float(chen_tau) for name in predictors}
        else:
            taus, val_info = _select_chen_taus(chen_val_samples, predictors, sigma, pairs_per_image, seed)
            chen = bool(taus)
    results: dict[str, dict[str, Any]] = {}
    for name in predictors:
        r: dict[str, Any] = M.wkdr_from_counts(M.sum_counts(counts[name]))
        r["n_images"] = float(n_images)
        if chen and taus.get(name) is not None:
            diff = np.concatenate(chen_diff[name]) if chen_diff[name] else np.zeros(0)
            truth = np.concatenate(chen_truth) if chen_truth else np.zeros(0, np.int8)
            c = M.wkdr_chen2016(diff, np.zeros_like(diff), truth, taus[name])
            c.pop("n_pairs")
            r.update(c)
            r.update(val_info)
        if any_metric:
            per_alignment = {a: M.mean_metrics(v) for a, v in errors[name].items()}
            r["alignments"] = per_alignment
            r.update(per_alignment.get(alignment, {}))
        results[name] = r
    if keep_examples:
        results["_examples"] = examples  # type: ignore[assignment]
    return results


def _select_chen_taus(
    samples: Iterable[DenseSample] | None, predictors: Mapping[str, Any], sigma: float, pairs_per_image: int, seed: int
) -> tuple[dict[str, float | None], dict[str, float]]:
    """Each predictor's Chen et al. threshold, chosen on pairs of the validation ``samples`` (their
    own pair stream, seeded ``[seed, 1_000_000 + image number]``). ``({}, {})`` when there is no
    validation image; a predictor without predictions for them (a folder of test predictions
    only) gets ``None`` and no ``wkdr_chen2016`` (a warning says to pass ``chen_tau``)."""
    diffs: dict[str, list[np.ndarray]] = {name: [] for name in predictors}
    missing: set[str] = set()
    truths: list[np.ndarray] = []
    n_images = 0
    stream = iter(samples or ())
    for i in itertools.count():
        try:
            sample = next(stream)
        except StopIteration:
            break
        except FileNotFoundError as exc:  # a validation image without its files: no tau, no crash
            log.warning("wkdr_chen2016 skipped: validation image unreadable: %s", exc)
            return {}, {}
        if not sample.mask.any():
            continue
        n_images += 1
        ia, ib = M.sample_pairs(sample.mask, pairs_per_image, np.random.default_rng([seed, 1_000_000 + i]))
        gt = sample.depth.ravel()
        truths.append(M.ordinal_relation(gt[ia], gt[ib], sigma))
        cache: list[np.ndarray] = []

        def load(sample: DenseSample = sample, cache: list = cache) -> np.ndarray:
            if not cache:
                cache.append(sample.load_image())
            return cache[0]

        for name, predictor in predictors.items():
            if name in missing:
                continue
            try:
                z = depth_like(predictor(sample.key, load, sample.shape), predictor.inverse).ravel()
            except FileNotFoundError as exc:
                log.warning("wkdr_chen2016 for %s skipped: %s (pass a fixed chen_tau)", name, exc)
                missing.add(name)
                continue
            diffs[name].append(z[ia] - z[ib])
    if not truths:
        log.warning("wkdr_chen2016 skipped: no validation image to choose tau on")
        return {}, {}
    truth = np.concatenate(truths)
    taus: dict[str, float | None] = {}
    for name in predictors:
        if name in missing:
            taus[name] = None
            continue
        d = np.concatenate(diffs[name])
        taus[name] = M.select_chen2016_tau(d, np.zeros_like(d), truth)
    return taus, {"wkdr_chen2016_val_images": float(n_images), "wkdr_chen2016_val_pairs": float(truth.size)}


def chen_validation_samples(benchmark: str, annotations: str | Path, images: str | Path | None, n: int,
                            split_file: str | Path | None = None, nyu_crop: str = "eigen") -> Iterable[DenseSample] | None:
    """Validation images for Chen et al.'s tau: NYUv2's first ``n`` training images (never test
    ones), or the first ``n`` ``train`` rows of our export. None where there is no such split."""
    from model import benchmarks as B

    if n <= 0:
        return None
    if benchmark == "nyu":
        import h5py

        with h5py.File(annotations, "r") as f:
            total = int(f["depths"].shape[0])
        test = set(B.load_nyu_split(split_file))
        train = [i for i in range(1, total + 1) if i not in test][:n]
        return B.iter_nyu(annotations, train, crop=nyu_crop) if train else None
    if benchmark == "redweb":
        return itertools.islice(B.iter_redweb_export(annotations, images, split="train"), n)
    return None


# --------------------------------------------------------------------------- output
def build_report(
    benchmark: str,
    results: Mapping[str, Mapping[str, Any]],
    model_name: str,
    settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON document: the model's metrics at the top level, baselines under ``baselines``."""
    model = dict(results[model_name])
    doc: dict[str, Any] = {"benchmark": benchmark, "model": model_name}
    for k in METRIC_ORDER:
        if k in model:
            doc[k] = _finite(model.pop(k))
    doc.update({k: _jsonable(v) for k, v in model.items()})
    doc["baselines"] = {
        name: {k: _jsonable(v) for k, v in r.items()} for name, r in results.items() if name not in (model_name, "_examples")
    }
    if settings:
        doc["settings"] = {k: _jsonable(v) for k, v in settings.items()}
    return doc


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and math.isnan(v) else v


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, (np.floating, np.integer)):
        v = v.item()
    return _finite(v)


def format_table(doc: Mapping[str, Any]) -> str:
    """Plain-text table: one row for the model, one per baseline; columns = metrics present."""
    rows = [(doc.get("model", "model"), doc)] + list(doc.get("baselines", {}).items())
    cols = [k for k in METRIC_ORDER + ("ties",) if any(k in r for _, r in rows)]
    width = max(len(str(name)) for name, _ in rows) + 2
    widths = {c: max(10, len(c) + 2) for c in cols}
    lines = [f"{'':<{width}}" + "".join(f"{c:>{widths[c]}}" for c in cols)]
    for name, r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            cells.append(f"{'-':>{widths[c]}}" if v is None else f"{v:>{widths[c]}.4f}")
        lines.append(f"{name:<{width}}" + "".join(cells))
    n = doc.get("n_images")
    lines.append(f"({doc.get('benchmark', '')}: {int(n) if n else '?'} images; rates and errors are fractions;"
                 " rms in ground-truth units)")
    return "\n".join(lines)


# --------------------------------------------------------------------------- one call per benchmark
def load_benchmark(
    benchmark: str,
    annotations: str | Path,
    images: str | Path | None = None,
    *,
    split_file: str | Path | None = None,
    nyu_crop: str = "eigen",
    redweb_split: str = "val",
):
    """DIW -> ``list[DiwSample]``; the dense benchmarks -> a fresh iterator of ``DenseSample``."""
    from model import benchmarks as B

    if benchmark == "diw":
        return B.load_diw_csv(annotations)
    if benchmark == "nyu":
        return B.iter_nyu(annotations, B.load_nyu_split(split_file), crop=nyu_crop)
    if benchmark == "redweb":
        return B.iter_redweb_export(annotations, images, split=redweb_split)
    if benchmark == "middlebury":
        return B.iter_middlebury(annotations, images)
    raise ValueError(f"unknown benchmark {benchmark!r}; known: {', '.join(BENCHMARKS)}")


def evaluate_benchmark(
    benchmark: str,
    annotations: str | Path,
    predictor: Any,
    *,
    images: str | Path | None = None,
    model_name: str = "model",
    split_file: str | Path | None = None,
    alignment: str | None = None,
    train_stats: tuple[float, float] | None = None,
    sigma: float = M.DEFAULT_SIGMA,
    pairs_per_image: int = M.DEFAULT_PAIRS_PER_IMAGE,
    seed: int = 0,
    nyu_crop: str = "eigen",
    redweb_split: str = "val",
    baselines: bool = True,
    progress: bool = False,
    keep_examples: int = 0,
    chen_val_images: int = DEFAULT_CHEN_VAL_IMAGES,
    chen_tau: float | None = None,
) -> dict[str, Any]:
    """Score ``predictor`` (and the baselines) on a benchmark; returns the JSON-ready document
    (see :func:`build_report`), with the in-memory examples under ``"_examples"`` if requested.

    For NYUv2 with the paper's normalization, ``train_stats`` defaults to the depth mean/std of the
    795 training images of the same ``.mat`` (:func:`model.benchmarks.nyu_depth_stats`).
    """
    from model import benchmarks as B

    predictors = {model_name: predictor}
    if baselines:
        predictors.update(baseline_predictors())
    settings: dict[str, Any] = {"annotations": str(annotations), "images": str(images) if images else None}
    samples = load_benchmark(benchmark, annotations, images, split_file=split_file, nyu_crop=nyu_crop,
                             redweb_split=redweb_split)
    if benchmark == "diw":
        results = evaluate_diw(samples, predictors, images, progress=progress, keep_examples=keep_examples)
        examples = results.pop("_examples", None)
    else:
        if benchmark == "nyu":
            if train_stats is None and alignment in (None, "paper"):
                test = B.load_nyu_split(split_file)
                train_stats = B.nyu_depth_stats(annotations, exclude=test)
                log.info("NYUv2 training-set depth: mean %.4f m, std %.4f m", *train_stats)
            settings.update(split_file=str(split_file) if split_file else "built-in official test split",
                            crop=nyu_crop)
        if benchmark == "redweb":
            settings["split"] = redweb_split
        chen_val = None if chen_tau is not None else chen_validation_samples(
            benchmark, annotations, images, chen_val_images, split_file=split_file, nyu_crop=nyu_crop)
        try:
            results = evaluate_dense(samples, predictors, alignment=alignment, train_stats=train_stats,
                                     sigma=sigma, pairs_per_image=pairs_per_image, seed=seed, progress=progress,
                                     keep_examples=keep_examples, chen_val_samples=chen_val, chen_tau=chen_tau)
        except EmptyBenchmarkError as exc:  # one line naming the folder and what it should hold
            expected = EXPECTED_IMAGES[benchmark].format(split=redweb_split)
            raise EmptyBenchmarkError(f"{annotations}: no images to evaluate (expected {expected})") from exc
        if chen_tau is not None or chen_val is not None:
            settings["wkdr_chen2016"] = ({"tau": "fixed", "value": chen_tau} if chen_tau is not None else
                                         {"tau": "selected on validation images", "val_images": chen_val_images,
                                          "val_split": "nyu training split" if benchmark == "nyu" else "export train rows"})
        examples = results.pop("_examples", None)
        settings.update(alignment=alignment or ("paper" if train_stats is not None else "scale_shift"),
                        sigma=sigma, pairs_per_image=pairs_per_image, seed=seed,
                        train_stats=list(train_stats) if train_stats is not None else None)
    settings["inverse"] = bool(getattr(predictor, "inverse", False))
    doc = build_report(benchmark, results, model_name, settings)
    if examples is not None:
        doc["_examples"] = examples
    return doc


def evaluate_predictions(
    benchmark: str,
    annotations: str | Path,
    predictions: str | Path,
    *,
    images: str | Path | None = None,
    inverse: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score a folder of prediction files (named by image stem; see :class:`FolderPredictions`).
    Keyword arguments as :func:`evaluate_benchmark`."""
    predictor = FolderPredictions(predictions, inverse=inverse)
    kwargs.setdefault("model_name", Path(predictions).name or "predictions")
    return evaluate_benchmark(benchmark, annotations, predictor, images=images, **kwargs)


def evaluate_checkpoint(
    benchmark: str,
    annotations: str | Path,
    checkpoint: str | Path,
    *,
    images: str | Path | None = None,
    device: str = "auto",
    max_side: int | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Score a ``redweb train`` checkpoint (run on every benchmark image).
    Keyword arguments as :func:`evaluate_benchmark`."""
    from model.predict import load_checkpoint_model, resolve_device

    device = resolve_device(device)  # "auto" -> cuda if available, else cpu
    model, spec, meta = load_checkpoint_model(checkpoint, device)
    predictor = ModelPredictions(model, spec, device=device, max_side=max_side)
    name = str(meta.get("arch") or meta.get("architecture") or Path(checkpoint).stem) if isinstance(meta, Mapping) else Path(checkpoint).stem
    kwargs.setdefault("model_name", name)
    doc = evaluate_benchmark(benchmark, annotations, predictor, images=images, **kwargs)
    doc.setdefault("settings", {})["checkpoint"] = str(checkpoint)
    return doc


def write_json(doc: Mapping[str, Any], path: str | Path) -> Path:
    """Write the evaluation document (without in-memory examples) as indented JSON."""
    import json

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean = {k: _jsonable(v) for k, v in doc.items() if not k.startswith("_")}
    # NaN (a rate over zero pairs) is written as null: strict JSON parsers reject NaN.
    path.write_text(json.dumps(clean, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path
