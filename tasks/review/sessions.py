"""Signed-in sessions: one ``review_sessions`` row per browser, so signing out ends a copied cookie too.

The cookie carries a random nonce; the table stores only its sha256, so a database dump does not
hand out live sessions.
"""
from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import delete, select, update

from tasks.catalog.catalog import Catalog
from tasks.review.tables import Reviewer, ReviewSession, aware


def _session_key(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


class Sessions:
    """Open, check and revoke sessions over one catalog (safe from many threads/processes)."""

    def __init__(self, catalog: Catalog, *, clock: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.clock = clock

    def open_session(self, reviewer: str, *, max_age_s: float, client: str | None = None) -> str:
        """Record a new signed-in session for ``reviewer``; returns the nonce the cookie carries."""
        nonce = secrets.token_urlsafe(24)
        now = self.clock()
        with self.catalog.session() as s:
            # rows of sessions that ended more than a day ago are of no use any more
            s.execute(delete(ReviewSession).where(ReviewSession.expires_at < now - timedelta(days=1)))
            s.add(ReviewSession(id=_session_key(nonce), reviewer=reviewer, created_at=now,
                                expires_at=now + timedelta(seconds=max_age_s),
                                client=(client or "")[:64] or None))
        return nonce

    def _live(self, row: ReviewSession | None, reviewer: str) -> bool:
        return (row is not None and row.reviewer == reviewer and row.revoked_at is None
                and aware(row.expires_at) > self.clock())

    def session_valid(self, nonce: str, reviewer: str) -> bool:
        with self.catalog.session() as s:
            return self._live(s.get(ReviewSession, _session_key(nonce)), reviewer)

    def session_reviewer(self, nonce: str, name: str) -> Reviewer | None:
        """The active reviewer ``name`` if ``nonce`` is one of their live sessions (one transaction)."""
        with self.catalog.session() as s:
            if not self._live(s.get(ReviewSession, _session_key(nonce)), name):
                return None
            return s.scalars(select(Reviewer).where(Reviewer.name == name, Reviewer.active.is_(True))).first()

    def revoke_session(self, nonce: str) -> None:
        with self.catalog.session() as s:
            s.execute(update(ReviewSession).where(ReviewSession.id == _session_key(nonce),
                                                  ReviewSession.revoked_at.is_(None))
                      .values(revoked_at=self.clock()).execution_options(synchronize_session=False))

    def revoke_sessions_of(self, reviewer: str) -> int:
        """End every open session of ``reviewer`` (new password, account deactivated)."""
        with self.catalog.session() as s:
            ended = s.execute(update(ReviewSession).where(ReviewSession.reviewer == reviewer,
                                                          ReviewSession.revoked_at.is_(None))
                              .values(revoked_at=self.clock()).execution_options(synchronize_session=False))
            return ended.rowcount
