"""Typed, frozen configuration, validated once at the entry point.

Precedence (later wins): built-in defaults < YAML file (``--config``, else ``$REDWEB_CONFIG``) <
environment variables (``REDWEB_DATA_ROOT``, ``REDWEB_DATABASE_URL``, ``REDWEB_FLICKR_REST_URL``,
``FLICKR_API_KEY``, ``FLICKR_API_SECRET``, ``REDWEB_REVIEW_SECRET``, and ``REDWEB__SECTION__FIELD=value``
for any field) < CLI overrides (``--data-root``, ``--set section.field=value``).

Secrets (the Flickr key and secret, the review session secret, a password inside the database URL)
are ``SecretStr``: ``str(config)`` and saved configs show them redacted, and they come from the
environment or the config file only, never from overrides (which travel as flow-run parameters).

Every stage owns one section, defined next to its code (``tasks/<stage>/settings.py``, ``model/config.py``;
the pipeline's here); this module only composes them. Every section refuses unknown keys, and the error
names the key and the closest valid one. ``save_effective_config``
writes what a run actually used next to its outputs.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Mapping

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator

from core.layout import DataRoot
from core.settings import Section, describe_validation_error
from model.config import EvaluateConfig, ExperimentRunConfig, FinetuneConfig, TrainConfig
from tasks.ingest.settings import FlickrConfig, IngestConfig
from tasks.labels.settings import ProcessConfig
from tasks.publish.settings import ExportConfig, ReleaseConfig
from tasks.review.settings import ReviewConfig


class PipelineConfig(Section):
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


class RedwebConfig(Section):
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
        return url or f"sqlite:///{DataRoot(self.data_root).catalog_db}"

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
    except ValidationError as exc:  # one readable line per problem, naming the key (and the closest valid one)
        raise ConfigError("invalid configuration:\n" + describe_validation_error(exc, RedwebConfig)) from None


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
