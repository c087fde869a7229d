from __future__ import annotations

import pytest
import yaml

from tasks.config import ConfigError, load_config, save_effective_config


def test_precedence_file_env_cli(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump({"ingest": {"min_side": 10, "max_pixels": 1000}, "flickr": {"per_page": 100}}))
    env = {"REDWEB__INGEST__MIN_SIDE": "20", "FLICKR_API_KEY": "k", "REDWEB_DATA_ROOT": str(tmp_path / "d")}
    cfg = load_config(cfg_file, overrides=["ingest.max_pixels=5000"], environ=env)
    assert cfg.ingest.min_side == 20 and cfg.ingest.max_pixels == 5000 and cfg.flickr.per_page == 100
    assert cfg.flickr.api_key == "k" and cfg.data_root == (tmp_path / "d").resolve()
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
    cfg = load_config(environ={"FLICKR_API_SECRET": "s3cret", "FLICKR_API_KEY": "key"})
    path = save_effective_config(cfg, tmp_path / "run")
    saved = yaml.safe_load(path.read_text())
    assert saved["flickr"]["api_key"] == "key" and saved["flickr"]["api_secret"] == "***"
