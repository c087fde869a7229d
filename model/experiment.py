"""Grids of training + evaluation runs (ReDWeb Tables 2-3, Fig. 5), as plain functions.

An experiment file (YAML; ``configs/experiments/*.yaml`` ship Table 2, Table 3 and Fig. 5)::

    name: fig5                      # the table's title and the output folder's default name
    description: ...
    data: data/exports/v1           # training set (our export, ReDWeb or HR-WSI layout)
    benchmark:                      # scored after each training run (model.evaluate)
      name: redweb                  # diw | nyu | redweb | middlebury
      annotations: null             # null = `data` (the export's val split)
      pairs_per_image: 3000
    metric: wkdr                    # headline column of the table and the plot's y axis
    base: {arch: resnet50_fusion, iterations: 40000, ...}   # redweb train options (TrainConfig)
    grid:                           # a mapping, or a list of mappings; each one's product is run,
      - {n_pairs: [1, 100, 1000, 3000, 6000], seed: [0]}    # the union (duplicates once) is the experiment
      - {n_images: [360, 900, 1800, 2700, 3600], seed: [0]}
    plot: [{x: n_pairs, log_x: true}, {x: n_images}]        # optional: one panel per entry
    toy: {base: {...}, grid: ..., benchmark: {...}}          # overrides for --toy (CPU, seconds)

Grid keys are :class:`model.config.TrainConfig` fields (``arch``, ``loss``, ``n_pairs``, ``seed``,
...) plus ``n_images`` (= ``n_train_images``: the first N of a fixed permutation, nested subsets).

Each setting trains into ``OUT/runs/<key>/`` with ``resume=True`` and writes ``result.json`` when
its evaluation is done; a re-run skips finished settings and continues killed ones from their last
checkpoint. :func:`write_table` turns the rows into ``table.csv`` / ``table.md`` (mean and std over
seeds; pandas) and, with ``plot``, ``sweep.png``; ``runs.csv`` keeps one row per run.
"""
from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.rules import DEPTH_ERROR_NAMES, METRIC_NAMES

log = logging.getLogger(__name__)

#: Columns taken from the evaluation document into the table, when present.
RESULT_METRICS = (*METRIC_NAMES[:5], "wkdr_chen2016_tau", *DEPTH_ERROR_NAMES)  # the shared names (core.rules)
GRID_ALIASES = {"n_images": "n_train_images"}


class BenchmarkSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field("redweb", pattern="^(diw|nyu|redweb|middlebury)$")
    annotations: str | None = Field(None, description="null = the experiment's data (export val split)")
    images: str | None = None
    pairs_per_image: int = Field(3000, gt=0)
    split_file: str | None = None
    alignment: str | None = None
    max_side: int | None = Field(1024, gt=0)
    chen_val_images: int = Field(0, ge=0, description="images to choose Chen et al.'s tau on (0 = off)")
    seed: int = 0


class PlotSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    x: str
    log_x: bool = False
    title: str | None = None


class ExperimentConfig(BaseModel):
    """A validated experiment file (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    data: str | None = None
    benchmark: BenchmarkSpec = BenchmarkSpec()
    metric: str = "wkdr"
    base: dict[str, Any] = Field(default_factory=dict)
    grid: list[dict[str, list[Any]]]
    plot: list[PlotSpec] = Field(default_factory=list)
    keep: str = Field("all", pattern="^(all|model|none)$", description="checkpoints kept after evaluation")
    paper: dict[str, Any] = Field(default_factory=dict, description="what the paper reports (documentation)")
    toy: dict[str, Any] = Field(default_factory=dict)

    @field_validator("grid", mode="before")
    @classmethod
    def _grid_list(cls, v: Any) -> Any:
        v = [v] if isinstance(v, Mapping) else v
        out = []
        for g in v or []:
            if not isinstance(g, Mapping) or not g:
                raise ValueError("each grid must be a non-empty mapping of option -> list of values")
            out.append({k: (list(x) if isinstance(x, (list, tuple)) else [x]) for k, x in g.items()})
        if not out:
            raise ValueError("grid is empty")
        return out

    @field_validator("plot", mode="before")
    @classmethod
    def _plot_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, Mapping) else (v or [])


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), dict) and k != "grid":
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_experiment(path: str | os.PathLike, *, toy: bool = False, data: str | None = None,
                    overrides: Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Read and validate an experiment file; ``toy`` merges its ``toy`` section in, ``data`` and
    ``overrides`` (a nested mapping, e.g. ``{"benchmark": {"name": "nyu"}}``) win over the file."""
    import yaml

    raw = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: an experiment file is a YAML mapping")
    if toy:
        raw = _deep_merge(raw, raw.get("toy") or {})
    if overrides:
        raw = _deep_merge(raw, overrides)
    if data is not None:
        raw["data"] = str(data)
    cfg = ExperimentConfig(**raw)
    validate_settings(cfg)
    return cfg


def _train_name(key: str) -> str:
    return GRID_ALIASES.get(key, key)


def validate_settings(cfg: ExperimentConfig) -> None:
    """Every grid key and base option must be a training option: fail before any run starts."""
    from model.config import TrainConfig

    known = set(TrainConfig.model_fields)
    for g in cfg.grid:
        unknown = [k for k in g if _train_name(k) not in known]
        if unknown:
            raise ValueError(f"unknown grid option(s) {unknown}; known: n_images, {', '.join(sorted(known))}")
    for s in expand_grid(cfg):
        TrainConfig(**train_kwargs(cfg, s))  # raises on a bad value
    for p in cfg.plot:
        if not any(p.x in g for g in cfg.grid):
            raise ValueError(f"plot x {p.x!r} is not a grid option")


def expand_grid(cfg: ExperimentConfig) -> list[dict[str, Any]]:
    """The settings, in file order: each grid's product, duplicates (across grids) once."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for g in cfg.grid:
        keys = list(g)
        for values in itertools.product(*(g[k] for k in keys)):
            setting = dict(zip(keys, values))
            key = setting_key(setting)
            if key not in seen:
                seen.add(key)
                out.append(setting)
    return out


def setting_key(setting: Mapping[str, Any]) -> str:
    """A folder-safe, order-independent name: ``arch-resnet50_fusion__seed-0``."""
    parts = []
    for k in sorted(setting):
        v = setting[k]
        text = "all" if v is None else json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v)
        parts.append(f"{k}-{re.sub(r'[^A-Za-z0-9_.=-]+', '_', text)}")
    return "__".join(parts)


def train_kwargs(cfg: ExperimentConfig, setting: Mapping[str, Any]) -> dict[str, Any]:
    """``redweb train`` keyword arguments of one setting: TrainConfig defaults < base < setting."""
    from model.config import TrainConfig

    merged = {**cfg.base, **{_train_name(k): v for k, v in setting.items()}}
    return TrainConfig(**merged).model_dump()


def run_setting(cfg: ExperimentConfig, setting: Mapping[str, Any], out_dir: str | os.PathLike,
                progress: bool = False) -> dict[str, Any]:
    """Train and evaluate one setting (or read its finished ``result.json``); returns its table row."""
    from model.config import TrainConfig
    from model.evaluate import evaluate_checkpoint
    from model.train import train

    if cfg.data is None:
        raise ValueError("the experiment has no training data: set `data:` or pass --data")
    run_dir = Path(out_dir) / "runs" / setting_key(setting)
    result_path = run_dir / "result.json"
    if result_path.is_file():
        done = json.loads(result_path.read_text())
        if done.get("setting") == dict(setting):
            log.info("%s: finished earlier, skipped", run_dir.name)
            return done["row"]
    config = TrainConfig(**train_kwargs(cfg, setting))
    trained = train(data=cfg.data, run_dir=run_dir, config=config, resume=True, progress=progress)
    b = cfg.benchmark
    doc = evaluate_checkpoint(
        b.name, b.annotations or cfg.data, trained.checkpoint, images=b.images, device=config.device,
        max_side=b.max_side, split_file=b.split_file, alignment=b.alignment, pairs_per_image=b.pairs_per_image,
        seed=b.seed, chen_val_images=b.chen_val_images,
    )
    from model.evaluate import write_json

    write_json(doc, run_dir / "metrics.json")
    row: dict[str, Any] = {k: setting[k] for k in setting}
    row.update({m: doc[m] for m in RESULT_METRICS if m in doc and doc[m] is not None})
    row["val_ordinal_error"] = trained.metrics.get("val_ordinal_error")
    row["steps"] = trained.step
    row["run"] = run_dir.name
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"setting": dict(setting), "row": row, "benchmark": b.name}, indent=2, default=str))
    os.replace(tmp, result_path)
    _prune(run_dir, cfg.keep)
    return row


def _prune(run_dir: Path, keep: str) -> None:
    if keep in ("model", "none"):
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    if keep == "none":
        (run_dir / "model.pt").unlink(missing_ok=True)


def write_table(cfg: ExperimentConfig, rows: Sequence[Mapping[str, Any]], out_dir: str | os.PathLike) -> dict[str, Path]:
    """``runs.csv`` (one row per run), ``table.csv`` + ``table.md`` (mean ± std over seeds), and
    ``sweep.png`` when the experiment has ``plot`` panels. Returns the paths by name."""
    import pandas as pd

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = pd.DataFrame(list(rows))
    grid_keys = list(dict.fromkeys(k for g in cfg.grid for k in g))
    for k in grid_keys:
        if k not in runs:
            runs[k] = None
    runs.to_csv(out / "runs.csv", index=False)
    metrics = [m for m in (*RESULT_METRICS, "val_ordinal_error") if m in runs and runs[m].notna().any()]
    group_keys = [k for k in grid_keys if k != "seed"]
    # None (= all images) must survive groupby: use a printable stand-in.
    keyed = runs.copy()
    for k in group_keys:
        keyed[k] = keyed[k].map(_norm)
    if group_keys:
        grouped = keyed.groupby(group_keys, sort=False, dropna=False)
        table = grouped[metrics].mean()
        stds = grouped[metrics].std()
        table["n_runs"] = grouped.size()
        table = table.reset_index()
        stds = stds.reset_index()
    else:
        table = keyed[metrics].mean().to_frame().T
        stds = keyed[metrics].std().to_frame().T
        table["n_runs"] = len(keyed)
    for m in metrics:
        table[f"{m}_std"] = stds[m].values
    table.to_csv(out / "table.csv", index=False)
    shown = table[[*group_keys, *metrics, "n_runs"]].copy()
    if (table["n_runs"] > 1).any():
        for m in metrics:
            shown[m] = [f"{a:.4f} ± {s:.4f}" if s == s else f"{a:.4f}" for a, s in zip(table[m], table[f"{m}_std"])]
    title = f"# {cfg.name}\n\n{cfg.description.strip()}\n\n" if cfg.description else f"# {cfg.name}\n\n"
    note = (f"Benchmark **{cfg.benchmark.name}**; metrics are fractions (lower is better; deltas higher). "
            f"Headline metric: `{cfg.metric}`. One row per setting, mean over {int(table['n_runs'].max())} run(s).\n\n")
    (out / "table.md").write_text(title + note + shown.to_markdown(index=False, floatfmt=".4f") + "\n", encoding="utf-8")
    paths = {"runs": out / "runs.csv", "table_csv": out / "table.csv", "table_md": out / "table.md"}
    if cfg.plot and cfg.metric in runs:
        paths["plot"] = plot_sweeps(cfg, keyed, out / "sweep.png")
    return paths


def plot_sweeps(cfg: ExperimentConfig, runs, path: Path) -> Path:
    """One panel per ``plot`` entry: ``metric`` (mean ± std over seeds) against ``x``, one line per
    combination of the other options that vary in the grid(s) where ``x`` varies."""
    import numpy as np
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.2 * len(cfg.plot), 4), layout="constrained")
    for i, spec in enumerate(cfg.plot):
        ax = fig.add_subplot(1, len(cfg.plot), i + 1)
        sweeps = [g for g in cfg.grid if len(g.get(spec.x, [])) > 1] or [g for g in cfg.grid if spec.x in g]
        for g in sweeps:
            others = [k for k, v in g.items() if k not in (spec.x, "seed") and len(v) > 1]
            sel = _rows_of_grid(runs, g, [k for h in cfg.grid for k in h])
            groups = sel.groupby(others, sort=False) if others else [((), sel)]
            for label, part in groups:
                stats = part.groupby(spec.x, sort=False)[cfg.metric].agg(["mean", "std"]).reset_index()
                xs = stats[spec.x].tolist()
                numeric = all(isinstance(x, (int, float, np.integer, np.floating)) for x in xs)
                order = np.argsort(xs) if numeric else np.arange(len(xs))
                xv = np.asarray(xs, dtype=float)[order] if numeric else np.arange(len(xs))
                name = ", ".join(f"{k}={v}" for k, v in zip(others, label if isinstance(label, tuple) else (label,)))
                ax.errorbar(xv, stats["mean"].to_numpy()[order], yerr=stats["std"].fillna(0).to_numpy()[order],
                            marker="o", capsize=3, label=name or None)
                if not numeric:
                    ax.set_xticks(xv, [str(x) for x in xs])
        if spec.log_x:
            ax.set_xscale("log")
        ax.set_xlabel(spec.x)
        ax.set_ylabel(cfg.metric)
        ax.set_title(spec.title or f"{cfg.metric} vs {spec.x}")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=8)
    fig.savefig(path, dpi=110)
    return path


def _norm(v: Any) -> Any:
    """Grid values as the table shows them: None (unset, e.g. all images) -> "all"; pandas turns an
    int column with gaps into floats, so whole floats go back to int."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "all"
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _rows_of_grid(runs, grid: Mapping[str, list[Any]], all_keys: Sequence[str]):
    """The rows whose setting is in ``grid``'s product (options the grid does not set: unset)."""
    keep = None
    for k in dict.fromkeys(all_keys):
        if k in grid:
            cond = runs[k].isin([_norm(v) for v in grid[k]])
        else:
            cond = runs[k] == "all"
        keep = cond if keep is None else keep & cond
    return runs if keep is None else runs[keep]


def run_experiment(cfg: ExperimentConfig, out_dir: str | os.PathLike, progress: bool = False) -> dict[str, Path]:
    """Every setting one after another (no Prefect; :mod:`flows.experiment` runs them as subflows)."""
    from model.data import check_training_data

    check_training_data(cfg.data)  # before the first run of the grid
    rows = [run_setting(cfg, s, out_dir, progress=progress) for s in expand_grid(cfg)]
    return write_table(cfg, rows, out_dir)
