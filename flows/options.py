"""The one place per stage that turns the typed config into the plain keyword arguments of its code.

Every flow takes ``config_file=None, data_root=None, overrides=None`` (plus its own arguments, all
defaulted) and calls :func:`flow_config` once: the YAML file (else ``$REDWEB_CONFIG``), the
environment (``REDWEB_DATA_ROOT``, ``REDWEB_DATABASE_URL``, secrets, ``REDWEB__SECTION__FIELD``) and
the overrides give the config; the functions below give each stage's options from it. So a
deployment runs with no parameters on a worker whose environment names the data root and catalog,
and secrets reach flows only through the environment (overrides may not carry them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from core.layout import DataRoot
from flows.config import Overrides, RedwebConfig, load_config, redact_secrets_in_logs


def flow_config(config_file: str | None = None, data_root: str | None = None,
                overrides: Overrides = None) -> RedwebConfig:
    """The typed config of one flow run (see the module docstring for the sources); from here on no log
    handler prints its secrets."""
    config = load_config(config_file, data_root=data_root, overrides=overrides or ())
    redact_secrets_in_logs(config)
    return config


def run_dir_for(config: RedwebConfig, kind: str) -> Path:
    """``<data_root>/runs/<kind>-<UTC time>``: where one run's files go (``core.layout``)."""
    return DataRoot(config.data_root).run_dir(kind)


def export_dir_for(config: RedwebConfig) -> Path:
    """The dataset the pipeline, the export deployment and retraining share: ``exports/<pipeline.export_name>``."""
    return DataRoot(config.data_root).export(config.pipeline.export_name)


# ---- per stage -------------------------------------------------------------------------------------
def flickr_options(config: RedwebConfig) -> dict[str, Any]:
    """Keyword arguments of ``tasks.ingest.sources.flickr.discover`` from ``config.flickr`` (secrets unwrapped here,
    inside the task that needs them)."""
    f = config.flickr
    return dict(rest_url=f.rest_url, api_key=f.api_key.get_secret_value(), api_secret=f.api_secret.get_secret_value(),
                tags=list(f.tags), text=f.text, tag_mode=f.tag_mode,
                licenses=None if f.licenses is None else list(f.licenses), per_page=f.per_page,
                max_results_per_query=f.max_results_per_query, max_calls_per_hour=f.max_calls_per_hour,
                min_upload_date=f.min_upload_date, max_upload_date=f.max_upload_date, max_retries=f.max_retries,
                backoff_base_s=f.backoff_base_s, backoff_max_s=f.backoff_max_s, timeout_s=f.timeout_s)


def ingest_options(config: RedwebConfig) -> dict[str, dict[str, Any]]:
    """{"register", "fetch", "split", "decide"}: keyword arguments of the ``tasks.ingest.run`` steps."""
    kw, root = config.ingest.ingest_kwargs(), str(config.data_root)

    def pick(*names: str) -> dict[str, Any]:
        return {"data_root": root, **{n: kw[n] for n in names}}

    return {
        "register": pick("extensions", "samples_max_view_side"),
        "fetch": pick("max_pixels", "min_side", "max_file_bytes", "timeout_s", "retries"),
        "split": pick("max_pixels", "min_side", "min_similarity", "anaglyph_threshold", "split_anaglyph"),
        "decide": dict(max_distance=kw["near_duplicate_max_distance"]),
    }


def export_options(config: RedwebConfig) -> dict[str, Any]:
    """Keyword arguments of ``tasks.publish.export.export_dataset`` (states included) from ``config.export``."""
    return config.export.export_kwargs()


def evaluate_options(config: RedwebConfig) -> dict[str, Any]:
    """Protocol keyword arguments of ``model.evaluate`` from ``config.evaluate`` (device resolved)."""
    from core.rules import resolve_device

    ev = config.evaluate
    return dict(alignment=ev.alignment, sigma=ev.sigma, pairs_per_image=ev.pairs_per_image, seed=ev.seed,
                nyu_crop=ev.nyu_crop, redweb_split=ev.redweb_split, device=resolve_device(ev.device),
                max_side=ev.max_side, report_examples=ev.report_examples, chen_val_images=ev.chen_val_images,
                chen_tau=ev.chen_tau)


def predict_options(config: RedwebConfig) -> dict[str, Any]:
    """Keyword arguments of ``model.predict.predict_files`` from ``config.evaluate``."""
    from core.rules import resolve_device

    ev = config.evaluate
    return dict(device=resolve_device(ev.device), batch_size=ev.batch_size, max_side=ev.max_side)


def newest_checkpoint(config: RedwebConfig) -> Path | None:
    """The promoted model (``models/current``), else the newest ``runs/*/model.pt``; None when there is none."""
    from model.promotion import current_model

    current = current_model(DataRoot(config.data_root).models)
    if current and Path(current["checkpoint"]).is_file():
        return Path(current["checkpoint"])
    found = sorted(DataRoot(config.data_root).runs.glob("*/**/model.pt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def checkpoint_or_newest(config: RedwebConfig, checkpoint: str | None) -> str:
    """``checkpoint`` if given, else :func:`newest_checkpoint`; a clear error when there is none."""
    if checkpoint is not None:
        return checkpoint
    found = newest_checkpoint(config)
    if found is None:
        raise FileNotFoundError(f"no checkpoint given and none promoted or trained under {config.data_root}")
    return str(found)


_FINETUNE_DATA = ("nyu", "voc", "sbd")
_FINETUNE_ONLY = {"depth": ("split_file", "input_size", "augment_count", "eval_crop"), "segment": ("crop_size",)}


def finetune_options(config: RedwebConfig, task: str) -> dict[str, Any]:
    """Keyword arguments of ``finetune_depth`` (``task="depth"``) or ``finetune_segment`` from
    ``config.finetune``: the fields that are set (None = the function's default), paths as str."""
    other = _FINETUNE_ONLY["segment" if task == "depth" else "depth"]
    out = {}
    for name, value in config.finetune.model_dump().items():
        if value is None or name in _FINETUNE_DATA or name in other:
            continue
        out[name] = str(value) if isinstance(value, Path) else (list(value) if isinstance(value, tuple) else value)
    return out


def finetune_data(config: RedwebConfig, task: str) -> dict[str, str | None]:
    """The fine-tuning data as the task function's keywords: depth ``{"data"}`` (``finetune.nyu``, default
    ``<data_root>/benchmarks/nyu_depth_v2_labeled.mat``), segment ``{"voc", "sbd"}`` (default
    ``<data_root>/benchmarks/VOCdevkit`` and ``benchmark_RELEASE``; ``sbd`` None when neither set nor present)."""
    f, bench = config.finetune, DataRoot(config.data_root).benchmarks
    if task == "depth":
        return {"data": str(f.nyu or bench / "nyu_depth_v2_labeled.mat")}
    sbd = f.sbd or (bench / "benchmark_RELEASE" if (bench / "benchmark_RELEASE").is_dir() else None)
    return {"voc": str(f.voc or bench / "VOCdevkit"), "sbd": str(sbd) if sbd else None}
