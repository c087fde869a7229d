"""Every review default has one home, ``ReviewConfig``: the store and the app follow it when it changes."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from review_ui.app import create_app
from tasks.catalog.catalog import Catalog
from tasks.review.settings import ReviewConfig
from tasks.review.store import ReviewStore
from tests.review_ui.maps import make_processed

CHANGED_LEASE_S = 6.0  # not the shipped default (900 s): a store or app that kept its own copy would differ


@pytest.fixture
def changed_lease_default():
    """``ReviewConfig``'s ``lease_timeout_s`` default set to CHANGED_LEASE_S for one test."""
    field = ReviewConfig.model_fields["lease_timeout_s"]
    shipped = field.default
    field.default = CHANGED_LEASE_S
    ReviewConfig.model_rebuild(force=True)
    try:
        assert ReviewConfig().lease_timeout_s == CHANGED_LEASE_S
        yield CHANGED_LEASE_S
    finally:
        field.default = shipped
        ReviewConfig.model_rebuild(force=True)


def _app(url, root, *args, **kwargs):
    app = create_app(url, root, *args, secret_key=b"d" * 32, **kwargs)
    return app, app.state.ctx


def _close(app) -> None:
    app.state.ctx.warmer.shutdown(wait=True)
    app.state.catalog.close()


def test_store_and_app_take_the_lease_timeout_from_the_config_default(review_env, changed_lease_default):
    url, root = review_env
    now = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    with Catalog(url) as cat:
        a, b = make_processed(cat, root, 2)
        store = ReviewStore(cat, clock=lambda: now)
        assert store.lease(a, "alice").expires_at == now + timedelta(seconds=changed_lease_default)
    app, ctx = _app(url, root)
    try:
        before = datetime.now(timezone.utc)
        held = app.state.store.lease(b, "bob")
        late = held.expires_at - before - timedelta(seconds=changed_lease_default)
        assert timedelta(0) <= late < timedelta(seconds=2)
        assert ctx.heartbeat_s == pytest.approx(changed_lease_default / 3)  # the page renews the same lease
    finally:
        _close(app)


def test_app_without_settings_uses_every_config_default(review_env):
    url, root = review_env
    cfg = ReviewConfig()
    app, ctx = _app(url, root)
    try:
        assert app.state.store.review_states == cfg.review_states
        assert app.state.store.config == cfg
        assert [code for code, _ in ctx.reasons] == list(cfg.reject_reasons)
        assert (ctx.page_size, ctx.images.thumbnail_px, ctx.session_max_age_s, ctx.cookie_secure) == \
            (cfg.page_size, cfg.thumbnail_px, cfg.session_max_age_s, cfg.cookie_secure)
        assert (ctx.throttle.free, ctx.throttle.base_s, ctx.throttle.max_s) == \
            (cfg.login_free_attempts, cfg.login_lockout_s, cfg.login_lockout_max_s)
        assert ctx.double_review_share == cfg.double_review_share
    finally:
        _close(app)


def test_a_config_object_reaches_every_part(review_env):
    url, root = review_env
    cfg = ReviewConfig(page_size=7, thumbnail_px=64, login_free_attempts=2, login_lockout_s=3.0,
                       reject_reasons=("sky_leak", "other"), review_states=("pending_review",),
                       double_review_share=0.5, lease_timeout_s=30.0)
    app, ctx = _app(url, root, cfg)
    try:
        store = app.state.store
        assert (store.config, store.review_states, store.leases.timeout) == (cfg, ("pending_review",),
                                                                             timedelta(seconds=30))
        assert store.decision_log.double_review_share == 0.5
        assert (ctx.page_size, ctx.images.thumbnail_px) == (7, 64)
        assert (ctx.throttle.free, ctx.throttle.base_s) == (2, 3.0)
        assert [code for code, _ in ctx.reasons] == ["sky_leak", "other"]
    finally:
        _close(app)


def test_overrides_are_checked_like_the_config_file(catalog):
    assert ReviewStore(catalog, lease_timeout_s=60).leases.timeout == timedelta(seconds=60)
    with pytest.raises(ValidationError, match="lease_timeout"):
        ReviewStore(catalog, lease_timeout=60)  # misspelt: refused, not ignored
    with pytest.raises(ValidationError, match="page_size"):
        ReviewStore(catalog, page_size=0)
