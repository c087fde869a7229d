from __future__ import annotations

import pytest
import yaml

from flows.config import ConfigError, load_config, save_effective_config


def test_precedence_file_env_cli(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"ingest": {"min_side": 10, "max_pixels": 1000}, "flickr": {"per_page": 100}}))
    env = {"REDWEB__INGEST__MIN_SIDE": "20", "FLICKR_API_KEY": "k", "REDWEB_DATA_ROOT": str(tmp_path / "d")}
    cfg = load_config(cfg_file, overrides=["ingest.max_pixels=5000"], environ=env)
    assert cfg.ingest.min_side == 20 and cfg.ingest.max_pixels == 5000 and cfg.flickr.per_page == 100
    assert cfg.flickr.api_key.get_secret_value() == "k" and cfg.data_root == (tmp_path / "d").resolve()
    assert cfg.catalog_url == f"sqlite:///{(tmp_path / 'd').resolve() / 'catalog.db'}"
    cli = load_config(cfg_file, data_root=tmp_path / "x", environ=env)
    assert cli.data_root == (tmp_path / "x").resolve()


@pytest.mark.parametrize("override", ["ingest.min_side=-1", "ingest.nope=1", "flickr.per_page=501", "noequals"])
def test_invalid_config_is_refused_with_a_message(override):
    with pytest.raises(ConfigError):
        load_config(overrides=[override], environ={})


def test_config_is_frozen():
    cfg = load_config(environ={})
    with pytest.raises(Exception):
        cfg.ingest.min_side = 3


def test_effective_config_saved_without_secret(tmp_path):
    env = {"FLICKR_API_SECRET": "s3cret-value", "FLICKR_API_KEY": "key-value",
           "REDWEB_REVIEW_SECRET": "r" * 40, "REDWEB_DATABASE_URL": "postgresql+psycopg://bob:pw-value@db.host:5432/cat"}
    cfg = load_config(environ=env)
    assert cfg.catalog_url == env["REDWEB_DATABASE_URL"]  # code gets the real values ...
    assert cfg.flickr.api_secret.get_secret_value() == "s3cret-value"
    assert cfg.review.secret_key.get_secret_value() == "r" * 40
    path = save_effective_config(cfg, tmp_path / "run")  # ... files, reprs and messages never do
    text = path.read_text()
    for value in ("s3cret-value", "key-value", "r" * 40, "pw-value"):
        assert value not in text and value not in repr(cfg) and value not in str(cfg)
    saved = yaml.safe_load(text)
    assert saved["flickr"]["api_key"] == "**********" and saved["flickr"]["api_secret"] == "**********"
    assert saved["database_url"] == "postgresql+psycopg://bob:***@db.host:5432/cat"
    assert cfg.catalog_url_redacted == saved["database_url"]


@pytest.mark.parametrize("override", ["flickr.api_key=k", "flickr.api_secret=s", "review.secret_key=" + "x" * 40,
                                      "database_url=postgresql://u:pw@h/db"])
def test_secrets_cannot_be_overrides(override):
    """Overrides become flow-run parameters (stored by Prefect): secrets must come from the environment."""
    with pytest.raises(ConfigError, match="environment"):
        load_config(overrides=[override], environ={})


def test_overrides_as_mapping_and_config_file_from_env(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"ingest": {"min_side": 10}}))
    env = {"REDWEB_CONFIG": str(cfg_file), "REDWEB_DATA_ROOT": str(tmp_path)}
    cfg = load_config(overrides={"ingest.max_pixels": 5000, "database_url": "sqlite:///x.db"}, environ=env)
    assert (cfg.ingest.min_side, cfg.ingest.max_pixels, cfg.catalog_url) == (10, 5000, "sqlite:///x.db")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(environ={"REDWEB_CONFIG": str(tmp_path / "missing.yaml")})
    with pytest.raises(ConfigError):
        load_config(environ={"REDWEB_REVIEW_SECRET": "short"})


def test_log_handlers_redact_secret_values():
    import io
    import logging

    from flows.config import redact_secrets_in_logs

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("redweb-test-redaction")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        cfg = load_config(environ={"FLICKR_API_KEY": "key-12345", "FLICKR_API_SECRET": "sec-67890",
                                   "REDWEB_DATABASE_URL": "postgresql+psycopg://u:pw-abcde@h/db"})
        redact_secrets_in_logs(cfg)
        log.debug("FlickrAPI for key %r secret %s url %s", "key-12345", "sec-67890", cfg.catalog_url)
    finally:
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "key-12345" not in text and "sec-67890" not in text and "pw-abcde" not in text
    assert "FlickrAPI for key '***' secret *** url postgresql+psycopg://u:***@h/db" in text


def _sections():
    from flows.config import RedwebConfig
    from pydantic import BaseModel

    return [(name, f.annotation) for name, f in RedwebConfig.model_fields.items()
            if isinstance(f.annotation, type) and issubclass(f.annotation, BaseModel)]


@pytest.mark.parametrize("section", [name for name, _ in _sections()])
def test_a_misspelt_key_fails_in_every_section_naming_it_and_the_closest_one(section):
    model = dict(_sections())[section]
    key = sorted(model.model_fields, key=len)[-1]  # the longest key: misspelt, it stays close
    typo = key[:-2] + key[-1]
    with pytest.raises(ConfigError) as err:
        load_config(overrides=[f"{section}.{typo}=1"], environ={})
    assert f"unknown key '{section}.{typo}'" in str(err.value)
    assert f"did you mean '{section}.{key}'?" in str(err.value)


def test_a_key_nothing_resembles_lists_what_the_section_takes():
    with pytest.raises(ConfigError, match=r"unknown key 'export\.zzzzzz'; the export section takes: .*max_side"):
        load_config(overrides=["export.zzzzzz=1"], environ={})


def test_the_cli_refuses_a_misspelt_key_with_one_line(capsys):
    from flows.cli import main

    assert main(["status", "--set", "evaluate.anything=5"]) != 0
    assert "unknown key 'evaluate.anything'" in capsys.readouterr().err
