"""Typed, frozen configuration, validated once at the entry point.

Precedence (later wins): built-in defaults < YAML file (``--config``, else ``$REDWEB_CONFIG``) <
environment variables (``REDWEB_DATA_ROOT``, ``REDWEB_DATABASE_URL``, ``REDWEB_FLICKR_REST_URL``,
``FLICKR_API_KEY``, ``FLICKR_API_SECRET``, ``REDWEB_REVIEW_SECRET``, and ``REDWEB__SECTION__FIELD=value``
for any field) < CLI overrides (``--data-root``, ``--set section.field=value``).

Secrets (the Flickr key and secret, the review session secret, a password inside the database URL)
are ``SecretStr``: ``str(config)`` and saved configs show them redacted, and they come from the
environment or the config file only, never from overrides (which travel as flow-run parameters).

Every stage owns one section; stage code takes plain keyword arguments, so the functions in
``tasks/`` and ``model/`` can be called without any config object. ``save_effective_config``
writes what a run actually used next to its outputs.
"""
from __future__ import annotations

import json
import logging
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from model.config import EvaluateConfig, TrainConfig
from tasks.labels.correspondence import DEFAULT_BACKEND
from tasks.publish.export import export_dataset
from tasks.ingest.sources.flickr import discover as flickr_discover
from tasks.labels.triage import TriageThresholds

FLICKR_REST_URL_DEFAULT = "https://api.flickr.com/services/rest/"


def keyword_defaults(fn: Any) -> dict[str, Any]:
    """A stage function's keyword defaults: written once, in its signature; the config section reads them."""
    import inspect

    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


_FLICKR = keyword_defaults(flickr_discover)
_EXPORT = keyword_defaults(export_dataset)
_TRIAGE = TriageThresholds()


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
    api_key: SecretStr = SecretStr("")
    api_secret: SecretStr = SecretStr("")
    tags: tuple[str, ...] = ("stereoscopic", "stereo", "3d", "sidebyside", "parallel", "crossview", "mpo")
    text: str = _FLICKR["text"]
    tag_mode: str = Field(_FLICKR["tag_mode"], pattern="^(any|all)$")
    # None = every license whose name says derivatives are allowed, read from flickr.photos.licenses.getInfo
    licenses: tuple[str, ...] | None = _FLICKR["licenses"]
    per_page: int = Field(_FLICKR["per_page"], ge=1, le=500)
    max_results_per_query: int = Field(_FLICKR["max_results_per_query"], ge=1, description="Flickr returns at most this many results per query")
    max_calls_per_hour: int = Field(_FLICKR["max_calls_per_hour"], ge=1, description="never more API calls than this in any hour (token "
                                    "bucket kept in the catalog, so restarts keep counting; one crawler per key)")
    max_retries: int = Field(_FLICKR["max_retries"], ge=0, description="retries of an API call on 429/5xx/timeouts/'service unavailable'")
    backoff_base_s: float = Field(_FLICKR["backoff_base_s"], ge=0, description="first retry waits about this long, doubling each time")
    backoff_max_s: float = Field(_FLICKR["backoff_max_s"], ge=0, description="cap on one backoff wait (also on a honoured Retry-After)")
    timeout_s: float = Field(_FLICKR["timeout_s"], gt=0)
    # unix seconds or a date/datetime (UTC; YAML and --set parse 2020-01-01 as a date); None = now,
    # fixed in the catalog when a crawl starts
    min_upload_date: int | datetime | date | str = _FLICKR["min_upload_date"]
    max_upload_date: int | datetime | date | str | None = _FLICKR["max_upload_date"]


class ProcessConfig(_Section):
    """Stereo to relative depth (`redweb process`): backends, masks, depth choice, triage thresholds."""

    # fused (DIS + SGBM, both OpenCV, no weights) was chosen by the label audit over 7 scenes x 4 packings
    # (README, "Choosing the backend"); dis is the fastest
    correspondence: str = Field(
        DEFAULT_BACKEND, description="fused | dis | sgbm | sgbm_dense | dis+sgbm | flownet2 | raft | sea_raft_m | "
        "ptlflow:<name> | tv_raft | fused:<any of these>")
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
        "orderings finer than ~0.02 x this become ties (tasks/labels/depth.py)")
    disparity_smooth_px: float = Field(
        5.0, ge=0, description="px: bilateral smoothing of the reliable disparities before depth (range 0.5 px of "
        "disparity; 0 = off)")
    view_order_min_votes: int = Field(10, ge=1, description="occlusion runs needed to decide the view order")
    view_order_min_margin: float = Field(0.25, ge=0, le=1, description="|parallel - cross| / votes needed")
    vertical_tolerance_px: float = Field(_TRIAGE.vertical_tolerance_px, gt=0)
    max_misaligned_fraction: float = Field(_TRIAGE.max_misaligned_fraction, ge=0, le=1, description="without "
                                           "keypoint evidence: share of matched pixels off their row above which "
                                           "a pair is misaligned")
    max_keypoint_residual_px: float = Field(_TRIAGE.max_keypoint_residual_px, gt=0, description="median vertical "
                                            "residual of keypoint matches after pre-alignment above which a pair "
                                            "is misaligned")
    min_disparity_range_px: float = Field(_TRIAGE.min_disparity_range_px, ge=0)
    min_coverage: float = Field(_TRIAGE.min_coverage, ge=0, le=1)
    min_flow_consistency: float = Field(_TRIAGE.min_flow_consistency, ge=0, le=1)
    min_crop_fraction: float = Field(_TRIAGE.min_crop_fraction, ge=0, le=1)
    auto_accept_score: float | None = Field(_TRIAGE.auto_accept_score, ge=0, le=1, description="None: nothing is auto-accepted")
    jpeg_quality: int = Field(95, ge=50, le=100)

    def triage_thresholds(self) -> TriageThresholds:
        """The thresholds ``tasks.labels.triage`` takes, from this section (whose defaults are TriageThresholds')."""
        from dataclasses import fields

        return TriageThresholds(**{f.name: getattr(self, f.name) for f in fields(TriageThresholds)})


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
    secret_key: SecretStr | None = Field(
        None, description="cookie-signing key itself (env REDWEB_REVIEW_SECRET, >= 32 characters); wins over the file")
    session_max_age_s: int = Field(12 * 3600, gt=0)
    cookie_secure: bool = Field(False, description="set True behind HTTPS so cookies are never sent in clear")
    page_size: int = Field(60, ge=1, le=500, description="thumbnails per grid page")
    thumbnail_px: int = Field(160, ge=32, le=1024, description="thumbnail height (pixels) cached under <data_root>/cache/review")
    login_free_attempts: int = Field(
        5, ge=1, description="failed sign-ins per account and per client address before a lockout starts")
    login_lockout_s: float = Field(1.0, gt=0, description="first lockout; doubles with each further failure")
    login_lockout_max_s: float = Field(900.0, gt=0, description="longest lockout")

    @field_validator("secret_key")
    @classmethod
    def _long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("review.secret_key (REDWEB_REVIEW_SECRET) must have at least 32 characters")
        return v

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

    val_fraction: float = Field(_EXPORT["val_fraction"], ge=0, le=1, description="share of items in split=val, chosen by id hash")
    states: tuple[str, ...] = Field(tuple(_EXPORT["states"]), min_length=1, description="catalog states to export")
    format: str = Field(_EXPORT["fmt"], pattern="^(redweb16|redweb8)$")
    max_side: int | None = Field(_EXPORT["max_side"], gt=0, description="resize exported image/RD/mask so the longer side is at most this")
    jpeg_quality: int = Field(_EXPORT["jpeg_quality"], ge=1, le=100, description="used only when the image must be re-encoded")


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


class FinetuneConfig(_Section):
    """Fine-tuning (`redweb finetune`, the `finetune-depth` / `finetune-segment` deployments). Data paths
    default to ``<data_root>/benchmarks/...``; a hyper-parameter left None takes the task's default
    (``model.finetune_depth.finetune_depth`` / ``model.finetune_segment.finetune_segment``)."""

    nyu: Path | None = Field(None, description="NYUv2 labeled .mat (default <data_root>/benchmarks/nyu_depth_v2_labeled.mat)")
    split_file: Path | None = Field(None, description="depth: test indices (splits.mat or text); None: the official split")
    voc: Path | None = Field(None, description="VOC 2012 folder (default <data_root>/benchmarks/VOCdevkit)")
    sbd: Path | None = Field(
        None, description="SBD benchmark_RELEASE (default <data_root>/benchmarks/benchmark_RELEASE when it exists)")
    init: str = Field("imagenet", description="a redweb train checkpoint (path), imagenet or scratch")
    arch: str | None = None
    arch_kwargs: dict[str, Any] | None = None
    weights_path: Path | None = Field(None, description="ImageNet backbone state dict for init=imagenet")
    iterations: int | None = Field(None, gt=0)
    batch_size: int | None = Field(None, gt=0)
    lr: float | None = Field(None, gt=0)
    optimizer: str | None = Field(None, pattern="^(sgd|adam|adamw)$")
    input_size: tuple[int, int] | None = Field(None, description="depth: training / inference size (H, W)")
    augment_count: int | None = Field(None, gt=0, description="depth: offline-augmented training samples")
    eval_crop: str | None = Field(None, pattern="^(eigen|none)$")
    crop_size: int | None = Field(None, gt=0, description="segment: training crop")
    eval_max_images: int | None = Field(None, gt=0)
    device: str | None = None
    num_workers: int | None = Field(None, ge=0)
    seed: int | None = None
    log_every: int | None = Field(None, gt=0)
    checkpoint_every: int | None = Field(None, gt=0, description="steps between checkpoints/last.pt")


class ExperimentRunConfig(_Section):
    """The `experiment` deployment: which experiment file runs on which data (`redweb experiment run`)."""

    file: Path = Field(Path("configs/experiments/table2.yaml"),
                       description="experiment file; relative paths are taken from the working directory ($REDWEB_HOME)")
    data: Path | None = Field(None, description="training data (default: the file's data:, else the shared export)")
    toy: bool = Field(False, description="apply the file's toy: section (CPU, seconds)")
    device: str | None = Field(None, description="overrides the file's base.device")


class RedwebConfig(_Section):
    data_root: Path = Field(Path("data"), validate_default=True, description="made absolute at load time")
    database_url: SecretStr | None = Field(
        None, description="SQLAlchemy URL (may hold a password: a secret); default: SQLite file <data_root>/catalog.db")
    ingest: IngestConfig = IngestConfig()
    flickr: FlickrConfig = FlickrConfig()
    process: ProcessConfig = ProcessConfig()
    review: ReviewConfig = ReviewConfig()
    export: ExportConfig = ExportConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    pipeline: PipelineConfig = PipelineConfig()
    release: ReleaseConfig = ReleaseConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    experiment: ExperimentRunConfig = ExperimentRunConfig()

    @field_validator("data_root")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return Path(v).expanduser().resolve()

    @property
    def catalog_url(self) -> str:
        """The catalog's SQLAlchemy URL, password included: pass it to code, never print or save it."""
        url = self.database_url.get_secret_value() if self.database_url is not None else ""
        return url or f"sqlite:///{self.data_root / 'catalog.db'}"

    @property
    def catalog_url_redacted(self) -> str:
        """The catalog URL with any password replaced by ``***``: for logs and messages."""
        return redact_url(self.catalog_url)


#: dotted config fields that hold secrets (or may: the database URL's password).
SECRET_FIELDS = ("flickr.api_key", "flickr.api_secret", "review.secret_key", "database_url")


def redact_url(url: str) -> str:
    """``scheme://user:password@host/db`` -> ``scheme://user:***@host/db``; other URLs unchanged."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url if "@" not in url else "***"
    return parsed.render_as_string(hide_password=True) if parsed.password else url


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
        "REDWEB_REVIEW_SECRET": "review.secret_key",
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


Overrides = Mapping[str, Any] | list[str] | tuple[str, ...] | None


def override_items(overrides: Overrides) -> list[tuple[str, Any]]:
    """``["a.b=3", ...]`` (CLI ``--set``) or ``{"a.b": 3, ...}`` (flow parameter) -> ``[("a.b", 3), ...]``."""
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        return [(str(k).strip(), v) for k, v in overrides.items()]
    items = []
    for item in overrides:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"--set expects section.field=value, got {item!r}")
        key, text = item.split("=", 1)
        items.append((key.strip(), _parse_value(text.strip())))
    return items


def _refuse_secret_override(key: str, value: Any) -> None:
    """Overrides travel as flow-run parameters and into Prefect's database: no secrets there."""
    if key == "database_url":
        if value and redact_url(str(value)) != str(value):
            raise ConfigError("database_url with a password cannot be an override (it would be saved as a "
                              "flow-run parameter): set REDWEB_DATABASE_URL in the environment instead")
    elif key in SECRET_FIELDS and value:
        env = {"flickr.api_key": "FLICKR_API_KEY", "flickr.api_secret": "FLICKR_API_SECRET",
               "review.secret_key": "REDWEB_REVIEW_SECRET"}[key]
        raise ConfigError(f"{key} is a secret and cannot be an override (it would be saved as a flow-run "
                          f"parameter): set {env} in the environment instead")


def load_config(
    config_file: str | Path | None = None,
    *,
    data_root: str | Path | None = None,
    overrides: Overrides = (),
    environ: Mapping[str, str] | None = None,
) -> RedwebConfig:
    """Build the effective config.

    ``config_file``: YAML file; None reads ``$REDWEB_CONFIG`` (unset: none). ``overrides``:
    ``section.field=value`` strings or a ``{dotted field: value}`` mapping; they may not carry secrets.
    """
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get("REDWEB_CONFIG") or None
    tree: dict = {}
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        tree = _merge(tree, loaded)
    tree = _merge(tree, _env_layer(environ))
    if data_root is not None:
        tree["data_root"] = str(data_root)
    for key, value in override_items(overrides):
        _refuse_secret_override(key, value)
        _set_dotted(tree, key, value)
    try:
        return RedwebConfig.model_validate(tree)
    except Exception as exc:  # pydantic.ValidationError: re-raise with one readable message
        raise ConfigError(f"invalid configuration:\n{exc}") from exc


def config_to_dict(config: RedwebConfig) -> dict:
    """The config as plain JSON values, every secret redacted (``**********``; the database URL keeps all
    but its password)."""
    data = json.loads(config.model_dump_json())  # SecretStr fields dump as "**********"
    if config.database_url is not None:
        data["database_url"] = redact_url(config.database_url.get_secret_value())
    return data


def secret_values(config: RedwebConfig) -> list[str]:
    """The secret strings this config holds (Flickr key and secret, review key, the database password)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    values = [config.flickr.api_key.get_secret_value(), config.flickr.api_secret.get_secret_value()]
    if config.review.secret_key is not None:
        values.append(config.review.secret_key.get_secret_value())
    if config.database_url is not None:
        try:
            values.append(make_url(config.database_url.get_secret_value()).password or "")
        except ArgumentError:
            pass
    return [v for v in values if v and len(v) >= 4]  # (a 1-3 character "secret" would redact everything)


class RedactSecrets(logging.Filter):
    """A handler filter that replaces secret values in log messages by ``***`` (third-party libraries
    log them at DEBUG: flickrapi's repr names its key)."""

    def __init__(self, values: list[str]) -> None:
        super().__init__()
        self.values = list(values)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        if any(v in message for v in self.values):
            for v in self.values:
                message = message.replace(v, "***")
            record.msg, record.args = message, None
        return True


def redact_secrets_in_logs(config: RedwebConfig) -> None:
    """Put :class:`RedactSecrets` on every logging handler there is now (root, Prefect's console and API
    handlers). Called by the CLI after it sets up logging and by every flow when it builds its config."""
    values = secret_values(config)
    if not values:
        return
    loggers = [logging.getLogger()] + [v for v in logging.Logger.manager.loggerDict.values()
                                       if isinstance(v, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            mine = [f for f in handler.filters if isinstance(f, RedactSecrets)]
            if mine:
                mine[0].values = sorted(set(mine[0].values) | set(values))
            else:
                handler.addFilter(RedactSecrets(values))


def save_effective_config(config: RedwebConfig, run_dir: str | Path) -> Path:
    """Write the config a run used (secrets redacted) as ``run_dir/config.yaml``."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "config.yaml"
    path.write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
    return path
