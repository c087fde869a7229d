"""The review tables (ORM mappings of migrations 0002 and 0003; the migrations create them).

* ``reviewers``: accounts with scrypt password hashes (tasks/review/passwords.py).
* ``review_sessions``: one row per signed-in browser; signing out revokes it.
* ``review_leases``: one row per item (primary key ``item_id``), so at most one reviewer holds an item.
* ``review_decisions``: append-only (database triggers refuse UPDATE/DELETE). Kinds: ``first``
  (moves a review-state item to accepted/rejected), ``second`` (the other opinion on a double-review
  item; no state change), ``override`` (an explicit second decision that flips a person's
  accepted/rejected), ``undo`` (a reviewer retracts their own latest decision), ``skip``, ``flip``.
* ``review_double``: the two opinions on a double-review item.

Changing a column here means a new migration under tasks/catalog/migrations: old catalogs must open.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Integer, Select, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from tasks.catalog.catalog import Base, utcnow

DECISIONS = ("accepted", "rejected")
#: kinds that give an opinion on an item (count as "decided" in the statistics)
DECIDING_KINDS = ("first", "second", "override")
#: kinds a reviewer can take back with ``undo``
UNDOABLE_KINDS = ("first", "second", "override", "flip")


class Reviewer(Base):
    __tablename__ = "reviewers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Lease(Base):
    __tablename__ = "review_leases"

    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(128), index=True)
    acquired_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class Decision(Base):
    """One row per reviewer action; never updated or deleted (triggers enforce it)."""

    __tablename__ = "review_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16))  # first | second | override | undo | skip | flip
    decision: Mapped[str | None] = mapped_column(String(16))  # accepted | rejected
    reason: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str | None] = mapped_column(Text)
    from_state: Mapped[str | None] = mapped_column(String(24))
    to_state: Mapped[str | None] = mapped_column(String(24))
    pipeline_version: Mapped[str | None] = mapped_column(String(32))  # of the item's maps
    via: Mapped[str | None] = mapped_column(String(16))  # ui | grid | api
    supersedes_id: Mapped[int | None] = mapped_column(Integer)  # override/undo: the decision it replaces
    prev_reason: Mapped[str | None] = mapped_column(String(64))
    prev_detail: Mapped[str | None] = mapped_column(Text)
    prev_reviewer: Mapped[str | None] = mapped_column(String(128))
    prev_decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    data: Mapped[dict | None] = mapped_column(JSON)  # flip: the fields and map files it replaced


class ReviewSession(Base):
    """A signed-in browser; signing out revokes the row, so a copied cookie stops working at once."""

    __tablename__ = "review_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's nonce
    reviewer: Mapped[str] = mapped_column(String(128), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    client: Mapped[str | None] = mapped_column(String(64))


class DoubleReview(Base):
    __tablename__ = "review_double"

    item_id: Mapped[str] = mapped_column(ForeignKey("items.id"), primary_key=True)
    first_reviewer: Mapped[str] = mapped_column(String(128))
    first_decision: Mapped[str] = mapped_column(String(16))
    first_decision_id: Mapped[int] = mapped_column(Integer)
    second_reviewer: Mapped[str | None] = mapped_column(String(128))
    second_decision: Mapped[str | None] = mapped_column(String(16))
    second_decision_id: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def undone_ids() -> Select:
    """The ids of decisions that an ``undo`` row took back (they no longer stand)."""
    return select(Decision.supersedes_id).where(Decision.kind == "undo", Decision.supersedes_id.is_not(None))


def aware(dt: datetime | None) -> datetime | None:
    """``dt`` as UTC-aware: SQLite hands back naive datetimes, and everything stored is UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt
