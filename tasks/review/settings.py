"""The review stage's settings (``review`` section): accounts, leases, paging, sign-in throttling.

The one home of the review defaults: ``ReviewStore`` (tasks/review/store.py), ``create_app`` and
``LoginThrottle`` (review_ui) read them from a :class:`ReviewConfig` and repeat none; a caller that
changes one setting passes ``ReviewConfig(...)`` or a keyword that :meth:`ReviewConfig.with_overrides`
checks like the config file (an unknown key fails with its name).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator

from core.settings import Section


#: the reason codes a reviewer is offered, in key order 1..9 (descriptions: tasks/catalog REASONS)
REJECT_REASONS_DEFAULT = (
    "not_stereo", "anaglyph", "misaligned", "sky_leak", "wrong_view_order", "noisy_map", "bad_crop", "other",
)


class ReviewConfig(Section):
    """Review web UI (`redweb review`): accounts, leases, double review, paging."""

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    reject_reasons: tuple[str, ...] = Field(
        REJECT_REASONS_DEFAULT, min_length=1,
        description="reason codes offered on reject, in key order 1..9; 'other' asks for a comment")
    review_states: tuple[str, ...] = Field(
        ("pending_review", "auto_accepted", "auto_rejected"), min_length=1,
        description="states the review queue draws from "
                    "(a person's decision moves items to accepted/rejected)")
    lease_timeout_s: float = Field(
        900.0, gt=0, description="an unfinished item returns to the queue after this")
    double_review_share: float = Field(
        0.0, ge=0, le=1, description="share of items (chosen by id hash) that a second reviewer also decides")
    skip_cooldown_s: float = Field(
        3600.0, ge=0, description="a skipped item is not offered to the same reviewer again for this long")
    secret_key_file: Path | None = Field(
        None,
        description="file holding the cookie-signing key; "
                    "default <data_root>/review_secret.key (created 0600)")
    secret_key: SecretStr | None = Field(
        None,
        description="cookie-signing key itself (env REDWEB_REVIEW_SECRET, >= 32 characters); "
                    "wins over the file")
    session_max_age_s: int = Field(12 * 3600, gt=0)
    cookie_secure: bool = Field(False, description="set True behind HTTPS so cookies are never sent in clear")
    page_size: int = Field(60, ge=1, le=500, description="thumbnails per grid page")
    thumbnail_px: int = Field(
        160, ge=32, le=1024, description="thumbnail height (pixels) cached under <data_root>/cache/review")
    login_free_attempts: int = Field(
        5, ge=1, description="failed sign-ins per (account, client address) before that pair is locked out")
    login_free_attempts_account: int = Field(
        10, ge=1, description="failed sign-ins per account, from any address, before the account is locked out")
    login_free_attempts_address: int = Field(
        30, ge=1, description="failed sign-ins per client address, any account, before the address is locked "
                              "out; higher than the others so one person's typos do not lock out an office")
    login_lockout_s: float = Field(1.0, gt=0, description="first lockout; doubles with each further failure")
    login_lockout_max_s: float = Field(900.0, gt=0, description="longest lockout")
    trusted_proxies: tuple[str, ...] = Field(
        (), description="addresses of reverse proxies whose X-Forwarded-For names the client; from any "
                        "other peer the header is ignored (it could name any address and dodge throttling)")
    bulk_confirm_over: int = Field(
        5, ge=0, description="a grid bulk action on more items than this asks for confirmation first")

    def with_overrides(self, **changes: Any) -> ReviewConfig:
        """This config with ``changes`` (field names), validated like the config file: a wrong value
        or an unknown key raises, naming the key. No changes: this very object."""
        if not changes:
            return self
        return type(self).model_validate({**dict(self), **changes})

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
