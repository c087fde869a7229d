"""`redweb review` account management and the review/export config sections."""
from __future__ import annotations

import io

import pytest

from flows.cli import main
from tasks.catalog.catalog import Catalog
from flows.config import ConfigError, load_config
from tasks.review.store import ReviewStore


def test_add_user_from_env_and_stdin(data_root, monkeypatch, capsys):
    monkeypatch.setenv("REDWEB_REVIEW_PASSWORD", "first-password")
    assert main(["review", "--data-root", str(data_root), "--add-user", "alice"]) == 0
    monkeypatch.delenv("REDWEB_REVIEW_PASSWORD")
    monkeypatch.setattr("sys.stdin", io.StringIO("second-password\n"))
    assert main(["review", "--data-root", str(data_root), "--add-user", "bob"]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["review", "--data-root", str(data_root), "--add-user", "carol"]) == 2
    assert main(["review", "--data-root", str(data_root), "--add-user", "alice"]) == 2  # exists
    capsys.readouterr()
    assert main(["review", "--data-root", str(data_root), "--list-users"]) == 0
    assert capsys.readouterr().out.split() == ["alice", "bob"]
    with Catalog(f"sqlite:///{data_root / 'catalog.db'}") as cat:
        store = ReviewStore(cat)
        assert store.authenticate("alice", "first-password") and store.authenticate("bob", "second-password")
        assert store.authenticate("carol", "short") is None
    assert main(["review", "--data-root", str(data_root), "--remove-user", "bob"]) == 0
    with Catalog(f"sqlite:///{data_root / 'catalog.db'}") as cat:
        assert ReviewStore(cat).authenticate("bob", "second-password") is None


def test_review_and_export_config_are_typed(monkeypatch):
    cfg = load_config(environ={}, overrides=["review.double_review_share=0.2", "review.reject_reasons=[anaglyph, other]",
                                             "export.format=redweb8", "export.states=[accepted, auto_accepted]"])
    assert cfg.review.double_review_share == 0.2 and cfg.review.reject_reasons == ("anaglyph", "other")
    assert cfg.export.format == "redweb8" and cfg.export.states == ("accepted", "auto_accepted")
    assert cfg.review.reject_reasons[0] == "anaglyph" and load_config(environ={}).review.lease_timeout_s == 900
    for bad in ("review.double_review_share=1.5", "review.reject_reasons=[Not Stereo]", "review.lease_tmeout_s=3",
                "export.format=png", "review.reject_reasons=[a, a]"):
        with pytest.raises(ConfigError):
            load_config(environ={}, overrides=[bad])
