"""Typed, frozen configuration, validated once at the entry point.

Precedence (later wins): built-in defaults < YAML file (``--config``) < environment variables
(``REDWEB_DATA_ROOT``, ``REDWEB_DATABASE_URL``, ``REDWEB_FLICKR_REST_URL``, ``FLICKR_API_KEY``,
``FLICKR_API_SECRET``, and ``REDWEB__SECTION__FIELD=value`` for any field) < CLI overrides
(``--data-root``, ``--set section.field=value``).

Every stage owns one section; stage code takes plain keyword arguments, so the functions in
``tasks/`` and ``model/`` can be called without any config object. ``save_effective_config``
writes what a run actually used next to its outputs.
"""
from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from model.config import EvaluateConfig, TrainConfig

FLICKR_REST_URL_DEFAULT = "https://api.flickr.com/services/rest/"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IngestConfig(_Section):
    """Ingestion: sources, limits on what counts as a usable image, deduplication."""

    max_pixels: int = Field(80_000_000, gt=0, description="decompression-bomb cap on width*height")
    min_side: int = Field(64, gt=0, description="smaller images are rejected as too_small (per view)")
    max_file_bytes: int = Field(200 * 2**20, gt=0)
    download_timeout_s: float = Field(30.0, gt=0)
    download_retries: int = Field(4, ge=0)
    near_duplicate_max_distance: int = Field(
        6, ge=0, le=64, description="Hamming distance of 64-bit perceptual hashes below which two images are near-duplicates"
    )
    stereo_min_similarity: float = Field(
        0.36, ge=-1, le=1,
        description="view_similarity two regions need to count as two views (stereo samples >= 0.41, mono halves <= 0.31)",
    )
    samples_max_view_side: int | None = Field(
        None, gt=0, description="build the embedded samples with views at most this many px (None: 741x500 source)"
    )
    batch_size: int = Field(16, ge=1, description="items per Prefect task in the ingest flow")
    anaglyph_min_score: float = Field(0.45, ge=-2, le=2, description="anaglyph_score above which a mono-looking image is an anaglyph")
    anaglyphs: str = Field("reject", pattern="^(reject|split)$",
                           description="reject (reason anaglyph) or split into two grey views: red = left, (green+blue)/2 = right")
    extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".mpo", ".jps", ".pns", ".tif", ".tiff", ".bmp", ".webp", ".gif")


class FlickrConfig(_Section):
    """Flickr crawl. Credentials and endpoint come from the environment (see README)."""

    rest_url: str = FLICKR_REST_URL_DEFAULT
    api_key: str = ""
    api_secret: str = ""
    tags: tuple[str, ...] = ("stereoscopic", "stereo", "3d", "sidebyside", "parallel", "crossview", "mpo")
    text: str = ""
    tag_mode: str = Field("any", pattern="^(any|all)$")
    # None = every license whose name says derivatives are allowed, read from flickr.photos.licenses.getInfo
    licenses: tuple[str, ...] | None = None
    per_page: int = Field(500, ge=1, le=500)
    max_results_per_query: int = Field(4000, ge=1, description="Flickr returns at most this many results per query")
    max_calls_per_hour: int = Field(3600, ge=1, description="never more API calls than this in any hour (token "
                                    "bucket kept in the catalog, so restarts keep counting; one crawler per key)")
    max_retries: int = Field(6, ge=0, description="retries of an API call on 429/5xx/timeouts/'service unavailable'")
    backoff_base_s: float = Field(1.0, ge=0, description="first retry waits about this long, doubling each time")
    backoff_max_s: float = Field(120.0, ge=0, description="cap on one backoff wait (also on a honoured Retry-After)")
    timeout_s: float = Field(30.0, gt=0)
    # unix seconds or a date/datetime (UTC; YAML and --set parse 2020-01-01 as a date); None = now,
    # fixed in the catalog when a crawl starts
    min_upload_date: int | datetime | date | str = "2004-01-01"
    max_upload_date: int | datetime | date | str | None = None


class ProcessConfig(_Section):
    """Stereo to relative depth (`redweb process`): backends, masks, depth choice, triage thresholds."""

    # DIS stays the default (DESIGN.md / the brief); sgbm is measured more accurate on Middlebury (README)
    correspondence: str = Field(
        "dis", description="dis | sgbm | sgbm_dense | dis+sgbm | flownet2 | raft | sea_raft_m | ptlflow:<name> | tv_raft")
    correspondence_checkpoint: str | None = Field(None, description="local weights file for network backends")
    sky: str = Field("heuristic", description="heuristic | segformer | mmseg")
    sky_checkpoint: str | None = Field(None, description="segformer: local model directory; mmseg: checkpoint file")
    mmseg_config: str | None = Field(None, description="mmseg: model config file")
    crf: bool = Field(True, description="refine the sky probability with a dense CRF")
    crf_iterations: int = Field(5, ge=1)
    crf_max_side: int = Field(384, ge=32, description="the CRF runs at most at this side, result resized back")
    max_side: int = Field(1024, gt=0, description="views are downscaled so their longer side is at most this")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    batch_size: int = Field(8, ge=1, description="pairs per Prefect task")
    fb_alpha: float = Field(0.01, ge=0, description="consistency: |f + b(x+f)| < fb_alpha |f| + fb_beta")
    fb_beta: float = Field(0.5, gt=0, description="pixels")
    photometric_max: float | None = Field(
        20.0, gt=0, description="8-bit colour difference after warping above which a pixel is unreliable")
    discontinuity_max: float | None = Field(
        None, gt=0, description="px: drop pixels whose 5x5 flow range exceeds this (edge fattening); None = off")
    depth_range_ratio: float = Field(
        10.0, gt=1, description="assumed far/near depth ratio that fixes the unknown disparity offset (README)")
    prealign: bool = Field(True, description="align a rotated / scaled / offset / wide-baseline right view to the "
                           "left one from keypoint matches before the dense correspondence")
    depth_min_far_margin_px: float = Field(
        10.0, ge=0, description="the disparity offset stays at least this far below the far end (px): depth "
        "orderings finer than ~0.02 x this become ties (tasks/depth.py)")
    view_order_min_votes: int = Field(10, ge=1, description="occlusion runs needed to decide the view order")
    view_order_min_margin: float = Field(0.25, ge=0, le=1, description="|parallel - cross| / votes needed")
    vertical_tolerance_px: float = Field(2.0, gt=0)
    max_misaligned_fraction: float = Field(0.15, ge=0, le=1, description="without keypoint evidence: share of "
                                           "matched pixels off their row above which a pair is misaligned")
    max_keypoint_residual_px: float = Field(1.0, gt=0, description="median vertical residual of keypoint matches "
                                            "after pre-alignment above which a pair is misaligned")
    min_disparity_range_px: float = Field(2.0, ge=0)
    min_coverage: float = Field(0.4, ge=0, le=1)
    min_flow_consistency: float = Field(0.05, ge=0, le=1)
    min_crop_fraction: float = Field(0.3, ge=0, le=1)
    auto_accept_score: float | None = Field(None, ge=0, le=1, description="None: nothing is auto-accepted")
    jpeg_quality: int = Field(95, ge=50, le=100)


REJECT_REASONS_DEFAULT = (
    "not_stereo", "anaglyph", "misaligned", "sky_leak", "wrong_view_order", "noisy_map", "bad_crop", "other",
)


class ReviewConfig(_Section):
    """Review web UI (`redweb review`): accounts, leases, double review, paging."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    reject_reasons: tuple[str, ...] = Field(
        REJECT_REASONS_DEFAULT, min_length=1,
        description="reason codes offered on reject, in key order 1..9; 'other' asks for a comment")
    review_states: tuple[str, ...] = Field(
        ("pending_review", "auto_accepted", "auto_rejected"), min_length=1,
        description="states the review queue draws from (a person's decision moves items to accepted/rejected)")
    lease_timeout_s: float = Field(900.0, gt=0, description="an unfinished item returns to the queue after this")
    double_review_share: float = Field(
        0.0, ge=0, le=1, description="share of items (chosen by id hash) that a second reviewer also decides")
    skip_cooldown_s: float = Field(3600.0, ge=0, description="a skipped item is not offered to the same reviewer again for this long")
    secret_key_file: Path | None = Field(
        None, description="file holding the cookie-signing key; default <data_root>/review_secret.key (created 0600)")
    session_max_age_s: int = Field(12 * 3600, gt=0)
    cookie_secure: bool = Field(False, description="set True behind HTTPS so cookies are never sent in clear")
    page_size: int = Field(60, ge=1, le=500, description="thumbnails per grid page")
    thumbnail_px: int = Field(160, ge=32, le=1024, description="thumbnail height (pixels) cached under <data_root>/cache/review")
    login_free_attempts: int = Field(
        5, ge=1, description="failed sign-ins per account and per client address before a lockout starts")
    login_lockout_s: float = Field(1.0, gt=0, description="first lockout; doubles with each further failure")
    login_lockout_max_s: float = Field(900.0, gt=0, description="longest lockout")

    @field_validator("reject_reasons")
    @classmethod
    def _codes(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        import re

        bad = [r for r in v if not re.fullmatch(r"[a-z][a-z0-9_]*", r)]
        if bad:
            raise ValueError(f"reject reasons must be lowercase snake_case codes: {bad}")
        if len(set(v)) != len(v):
            raise ValueError("reject reasons must be unique")
        return v


class ExportConfig(_Section):
    """Dataset export (`redweb export`) in the ReDWeb layout of DESIGN.md."""

    val_fraction: float = Field(0.1, ge=0, le=1, description="share of items in split=val, chosen by id hash")
    states: tuple[str, ...] = Field(("accepted",), min_length=1, description="catalog states to export")
    format: str = Field("redweb16", pattern="^(redweb16|redweb8)$")
    max_side: int | None = Field(None, gt=0, description="resize exported image/RD/mask so the longer side is at most this")
    jpeg_quality: int = Field(95, ge=1, le=100, description="used only when the image must be re-encoded")


class PipelineConfig(_Section):
    """The end-to-end DAG (`redweb demo`, flows/pipeline.py), scale-out and retraining."""

    dask_address: str | None = Field(None, description="tcp://HOST:PORT of a Dask scheduler for per-pair work")
    workers: int = Field(0, ge=0, description="start a LocalCluster of this many worker processes (0 = no Dask)")
    export_name: str = Field("current", description="export folder under <data_root>/exports/")
    export_states: tuple[str, ...] = Field(
        ("accepted",), min_length=1, description="states the pipeline exports (demo: + auto_accepted)")
    promote_metric: str = Field("wkdr", description="held-out metric deciding promotion (lower is better)")
    promote_min_improvement: float = Field(0.0, ge=0, description="absolute improvement needed to promote")
    retrain_min_new_accepted: int = Field(
        200, ge=1, description="retrain-on-accepted starts once this many maps were accepted since the last retrain")
    benchmark: str = Field("redweb", description="benchmark the pipeline evaluates on (the export's val split)")


class ReleaseConfig(_Section):
    """Dataset releases, source re-validation and takedown (`redweb release | revalidate | withdraw`)."""

    states: tuple[str, ...] = Field(("accepted",), min_length=1, description="catalog states a release draws from")
    revalidate_older_than_days: float | None = Field(
        6.0, ge=0, description="revalidate re-checks items not verified for this many days (None: every item); "
        "6 so that a weekly schedule re-checks everything despite start-time jitter")
    revalidate_limit: int | None = Field(None, ge=1, description="check at most this many items per run")


class RedwebConfig(_Section):
    data_root: Path = Field(Path("data"), validate_default=True, description="made absolute at load time")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default: SQLite file <data_root>/catalog.db")
    ingest: IngestConfig = IngestConfig()
    flickr: FlickrConfig = FlickrConfig()
    process: ProcessConfig = ProcessConfig()
    review: ReviewConfig = ReviewConfig()
    export: ExportConfig = ExportConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    pipeline: PipelineConfig = PipelineConfig()
    release: ReleaseConfig = ReleaseConfig()

    @field_validator("data_root")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return Path(v).expanduser().resolve()

    @property
    def catalog_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_root / 'catalog.db'}"


class ConfigError(ValueError):
    """Raised with a readable message when configuration does not validate."""


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted!r}: {key!r} is not a section")
    node[keys[-1]] = value


def _parse_value(text: str) -> Any:
    """`--set a.b=3` -> 3; YAML rules, so lists (`[a, b]`), booleans and null work too."""
    return yaml.safe_load(text) if text != "" else ""


def _env_layer(environ: Mapping[str, str]) -> dict:
    tree: dict = {}
    direct = {
        "REDWEB_DATA_ROOT": "data_root",
        "REDWEB_DATABASE_URL": "database_url",
        "REDWEB_FLICKR_REST_URL": "flickr.rest_url",
        "FLICKR_API_KEY": "flickr.api_key",
        "FLICKR_API_SECRET": "flickr.api_secret",
    }
    for var, dotted in direct.items():
        if environ.get(var):
            _set_dotted(tree, dotted, environ[var])
    for var, text in environ.items():
        if var.startswith("REDWEB__"):
            _set_dotted(tree, ".".join(var[len("REDWEB__"):].lower().split("__")), _parse_value(text))
    return tree


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for key, value in top.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_config(
    config_file: str | Path | None = None,
    *,
    data_root: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    environ: Mapping[str, str] | None = None,
) -> RedwebConfig:
    """Build the effective config. ``overrides`` are ``section.field=value`` strings."""
    tree: dict = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        tree = _merge(tree, loaded)
    tree = _merge(tree, _env_layer(os.environ if environ is None else environ))
    if data_root is not None:
        tree["data_root"] = str(data_root)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects section.field=value, got {item!r}")
        key, text = item.split("=", 1)
        _set_dotted(tree, key.strip(), _parse_value(text.strip()))
    try:
        return RedwebConfig.model_validate(tree)
    except Exception as exc:  # pydantic.ValidationError: re-raise with one readable message
        raise ConfigError(f"invalid configuration:\n{exc}") from exc


def config_to_dict(config: RedwebConfig, *, redact: bool = True) -> dict:
    data = json.loads(config.model_dump_json())
    if redact and data["flickr"].get("api_secret"):
        data["flickr"]["api_secret"] = "***"
    return data


def save_effective_config(config: RedwebConfig, run_dir: str | Path) -> Path:
    """Write the config a run used (secrets redacted) as ``run_dir/config.yaml``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
