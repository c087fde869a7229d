"""Reviewer accounts: create, re-password, deactivate, and sign-in checks that do not leak names."""
from __future__ import annotations

import secrets

from sqlalchemy import select, update

from tasks.catalog.catalog import Catalog
from tasks.review.errors import ReviewError
from tasks.review.passwords import hash_password, verify_password
from tasks.review.sessions import Sessions
from tasks.review.tables import Reviewer


class Accounts:
    """The ``reviewers`` table. A new password or a deactivation ends the reviewer's sessions."""

    def __init__(self, catalog: Catalog, sessions: Sessions) -> None:
        self.catalog = catalog
        self.sessions = sessions
        self._dummy: str | None = None

    def dummy_hash(self) -> str:
        """A fixed hash to check unknown names against (same scrypt cost as a real account)."""
        if self._dummy is None:
            self._dummy = hash_password(secrets.token_hex(16))
        return self._dummy

    def add_reviewer(self, name: str, password: str, *, replace: bool = False) -> None:
        """Create an account (or, with ``replace``, set a new password and re-activate it)."""
        name = name.strip()
        if not name or len(name) > 128 or any(c.isspace() for c in name):
            raise ReviewError("reviewer names are 1-128 characters without spaces")
        hashed = hash_password(password)
        with self.catalog.session() as s:
            row = s.scalars(select(Reviewer).where(Reviewer.name == name)).first()
            if row is not None and not replace:
                raise ReviewError(f"reviewer {name!r} exists (use replace=True to set a new password)")
            if row is None:
                s.add(Reviewer(name=name, password_hash=hashed, active=True))
            else:
                row.password_hash, row.active = hashed, True
        if replace:
            self.sessions.revoke_sessions_of(name)

    def deactivate_reviewer(self, name: str) -> None:
        with self.catalog.session() as s:
            s.execute(update(Reviewer).where(Reviewer.name == name).values(active=False))
        self.sessions.revoke_sessions_of(name)

    def authenticate(self, name: str, password: str) -> Reviewer | None:
        """The active reviewer ``name`` if ``password`` is theirs. One scrypt check either way: an
        unknown name is checked against a fixed dummy hash, so timing does not tell names apart."""
        row = self.get_reviewer(name) if 0 < len(name) <= 128 else None
        ok = verify_password(password, row.password_hash if row is not None else self.dummy_hash())
        return row if (row is not None and ok) else None

    def get_reviewer(self, name: str) -> Reviewer | None:
        with self.catalog.session() as s:
            return s.scalars(select(Reviewer).where(Reviewer.name == name, Reviewer.active.is_(True))).first()

    def reviewer_names(self) -> list[str]:
        with self.catalog.session() as s:
            return list(s.scalars(select(Reviewer.name).order_by(Reviewer.name)))
