"""Review bookkeeping: reviewer accounts, leases, the append-only decision log, double review.

This module and ``tasks/catalog/catalog.py`` are the only code that writes the review tables; item states
still change only through ``Catalog.transition`` (a decision calls it with the reviewer as actor).

* **Accounts**: ``reviewers`` rows with scrypt password hashes (salted, constant-time check).
* **Leases**: ``review_leases`` has one row per item (primary key ``item_id``), so at most one
  reviewer holds an item; a lease ends at ``expires_at`` and the item goes back to the queue.
  Taking a lease is one conditional ``UPDATE`` or one ``INSERT`` that fails on the primary key,
  which is race-free on SQLite (serialized writers) and PostgreSQL (row locks) alike.
* **Decisions**: ``review_decisions`` is append-only (database triggers refuse UPDATE/DELETE).
  Kinds: ``first`` (moves a review-state item to accepted/rejected), ``second`` (the other opinion
  on a double-review item; no state change), ``override`` (an explicit second decision that flips
  a person's accepted/rejected), ``undo`` (a reviewer retracts their own latest decision; the item
  goes back exactly to where it was), ``skip``.
* **Double review**: an item whose id hash falls below ``double_review_share`` gets a
  ``review_double`` row at its first decision; the queue then offers it to a different reviewer,
  and ``agreement()`` reports how often the two agreed (and Cohen's kappa).
"""
from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import shutil
from pathlib import Path
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Iterable, Sequence

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from tasks.catalog.catalog import PIPELINE_VERSION, Base, Catalog, Item, State, TransitionError, utcnow
from core.rules import id_fraction  # noqa: F401  (shared rule; re-exported for callers)

DECISIONS = ("accepted", "rejected")
_UNDOABLE_KINDS = ("first", "second", "override", "flip")
DEFAULT_REVIEW_STATES = (State.PENDING_REVIEW.value, State.AUTO_ACCEPTED.value, State.AUTO_REJECTED.value)
_DECIDING_KINDS = ("first", "second", "override")


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
    kind: Mapped[str] = mapped_column(String(16))  # first | second | override | undo | skip
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


class ReviewError(ValueError):
    """A review action that cannot be done (bad input); HTTP 400."""


class ReviewConflict(ReviewError):
    """Someone else holds the item, or the item moved on; HTTP 409."""


# ---- passwords --------------------------------------------------------------------------------
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1  # 16 MiB, ~50 ms: OWASP's minimum scrypt setting


def hash_password(password: str) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex) with a random 16-byte salt."""
    if not password:
        raise ReviewError("empty password")
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(digest) // 2)
    except ValueError:
        return False
    return hmac.compare_digest(got.hex(), digest)


def _aware(dt: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything we store is UTC.
    return dt.replace(tzinfo=timezone.utc) if dt is not None and dt.tzinfo is None else dt


@dataclass(frozen=True)
class QueueFilter:
    """What part of the catalog a reviewer works on. ``states`` empty = the store's review states."""

    states: tuple[str, ...] = ()
    source: str | None = None
    batch: str | None = None
    min_score: float | None = None
    max_score: float | None = None
    sort: str = "oldest"  # oldest | score_asc | score_desc

    def where(self) -> list:
        conds = []
        if self.states:
            conds.append(Item.state.in_(list(self.states)))
        if self.source:
            conds.append(Item.source == self.source)
        if self.batch:
            conds.append(Item.batch == self.batch)
        if self.min_score is not None:
            conds.append(Item.score >= self.min_score)
        if self.max_score is not None:
            conds.append(Item.score <= self.max_score)
        return conds

    def order(self) -> list:
        # Plain column orders so the (state, score, id) / (state, created_at, id) indexes serve them.
        # Items without a score (none, per the process contract) sort where the database puts NULLs.
        if self.sort == "score_asc":
            return [Item.score.asc(), Item.id.asc()]
        if self.sort == "score_desc":
            return [Item.score.desc(), Item.id.desc()]
        return [Item.created_at, Item.id]


@dataclass(frozen=True)
class LeaseInfo:
    item_id: str
    reviewer: str
    expires_at: datetime


@dataclass
class Agreement:
    pairs: int = 0
    agreed: int = 0
    kappa: float | None = None
    open: int = 0  # double-review items still waiting for their second reviewer
    disagreements: list[dict] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.agreed / self.pairs if self.pairs else None


class ReviewStore:
    """Review operations over one catalog. All methods are safe to call from many threads/processes."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        lease_timeout_s: float = 900.0,
        double_review_share: float = 0.0,
        review_states: Sequence[str] = DEFAULT_REVIEW_STATES,
        skip_cooldown_s: float = 3600.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.catalog = catalog
        self.lease_timeout = timedelta(seconds=lease_timeout_s)
        self.double_review_share = double_review_share
        self.review_states = tuple(State(s).value for s in review_states)
        self.skip_cooldown = timedelta(seconds=skip_cooldown_s)
        self.clock = clock
        self._dummy: str | None = None

    def _dummy_hash(self) -> str:
        """A fixed hash to check unknown names against (same scrypt cost as a real account)."""
        if self._dummy is None:
            self._dummy = hash_password(secrets.token_hex(16))
        return self._dummy

    # ---- accounts -----------------------------------------------------------------------------
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
            self.revoke_sessions_of(name)

    def deactivate_reviewer(self, name: str) -> None:
        with self.catalog.session() as s:
            s.execute(update(Reviewer).where(Reviewer.name == name).values(active=False))
        self.revoke_sessions_of(name)

    def authenticate(self, name: str, password: str) -> Reviewer | None:
        """The active reviewer ``name`` if ``password`` is theirs. One scrypt check either way: an
        unknown name is checked against a fixed dummy hash, so timing does not tell names apart."""
        row = self.get_reviewer(name) if 0 < len(name) <= 128 else None
        ok = verify_password(password, row.password_hash if row is not None else self._dummy_hash())
        return row if (row is not None and ok) else None

    # ---- sessions -----------------------------------------------------------------------------
    @staticmethod
    def _session_key(nonce: str) -> str:
        return hashlib.sha256(nonce.encode()).hexdigest()

    def open_session(self, reviewer: str, *, max_age_s: float, client: str | None = None) -> str:
        """Record a new signed-in session for ``reviewer``; returns the random nonce the cookie carries."""
        nonce = secrets.token_urlsafe(24)
        now = self.clock()
        with self.catalog.session() as s:
            # rows of sessions that ended more than a day ago are of no use any more
            s.execute(delete(ReviewSession).where(ReviewSession.expires_at < now - timedelta(days=1)))
            s.add(ReviewSession(id=self._session_key(nonce), reviewer=reviewer, created_at=now,
                                expires_at=now + timedelta(seconds=max_age_s), client=(client or "")[:64] or None))
        return nonce

    def session_valid(self, nonce: str, reviewer: str) -> bool:
        with self.catalog.session() as s:
            row = s.get(ReviewSession, self._session_key(nonce))
            return (row is not None and row.reviewer == reviewer and row.revoked_at is None
                    and _aware(row.expires_at) > self.clock())

    def session_reviewer(self, nonce: str, name: str) -> Reviewer | None:
        """The active reviewer ``name`` if ``nonce`` is one of their live sessions (one transaction)."""
        with self.catalog.session() as s:
            row = s.get(ReviewSession, self._session_key(nonce))
            if row is None or row.reviewer != name or row.revoked_at is not None or \
                    _aware(row.expires_at) <= self.clock():
                return None
            return s.scalars(select(Reviewer).where(Reviewer.name == name, Reviewer.active.is_(True))).first()

    def revoke_session(self, nonce: str) -> None:
        with self.catalog.session() as s:
            s.execute(update(ReviewSession).where(ReviewSession.id == self._session_key(nonce),
                                                  ReviewSession.revoked_at.is_(None))
                      .values(revoked_at=self.clock()).execution_options(synchronize_session=False))

    def revoke_sessions_of(self, reviewer: str) -> int:
        """End every open session of ``reviewer`` (new password, account deactivated)."""
        with self.catalog.session() as s:
            return s.execute(update(ReviewSession).where(ReviewSession.reviewer == reviewer,
                                                         ReviewSession.revoked_at.is_(None))
                             .values(revoked_at=self.clock()).execution_options(synchronize_session=False)).rowcount

    def get_reviewer(self, name: str) -> Reviewer | None:
        with self.catalog.session() as s:
            return s.scalars(select(Reviewer).where(Reviewer.name == name, Reviewer.active.is_(True))).first()

    def reviewer_names(self) -> list[str]:
        with self.catalog.session() as s:
            return list(s.scalars(select(Reviewer.name).order_by(Reviewer.name)))

    # ---- leases -------------------------------------------------------------------------------
    def lease(self, item_id: str, reviewer: str) -> LeaseInfo:
        """Lease ``item_id`` to ``reviewer`` (renewing their own lease); ReviewConflict if someone else holds it."""
        now = self.clock()
        expires = now + self.lease_timeout
        with self.catalog.session() as s:
            taken = s.execute(
                update(Lease)
                .where(Lease.item_id == item_id, or_(Lease.reviewer == reviewer, Lease.expires_at < now))
                .values(reviewer=reviewer, acquired_at=now, expires_at=expires)
                .execution_options(synchronize_session=False)
            ).rowcount
        if taken != 1:
            try:
                with self.catalog.session() as s:
                    s.add(Lease(item_id=item_id, reviewer=reviewer, acquired_at=now, expires_at=expires))
            except IntegrityError as exc:  # a row exists (someone's live lease) or the item does not
                holder = self.lease_holder(item_id)
                if holder is None:
                    if self.catalog.get(item_id) is None:
                        raise KeyError(item_id) from exc
                    raise ReviewConflict(f"{item_id}: lease race, try again") from exc
                raise ReviewConflict(f"{item_id} is being reviewed by {holder.reviewer}") from exc
        return LeaseInfo(item_id, reviewer, expires)

    def lease_holder(self, item_id: str) -> LeaseInfo | None:
        """The live lease on an item, if any (expired leases count as none)."""
        with self.catalog.session() as s:
            row = s.get(Lease, item_id)
            if row is None or _aware(row.expires_at) < self.clock():
                return None
            return LeaseInfo(row.item_id, row.reviewer, _aware(row.expires_at))

    def release(self, item_id: str, reviewer: str) -> None:
        with self.catalog.session() as s:
            s.execute(delete(Lease).where(Lease.item_id == item_id, Lease.reviewer == reviewer))

    def _reviewable_for(self, item: Item, reviewer: str, s) -> bool:
        if item.state in self.review_states:
            return True
        dr = s.get(DoubleReview, item.id)
        return dr is not None and dr.second_decision_id is None and dr.first_reviewer != reviewer

    def next_item(self, reviewer: str, filt: QueueFilter = QueueFilter(), *, exclude: Iterable[str] = ()) -> str | None:
        """Lease and return the next item for ``reviewer``: their own live lease first, then open
        second reviews (double review), then the queue in ``filt`` order. None when the queue is empty."""
        exclude = set(exclude)
        now = self.clock()
        states = [s for s in (filt.states or self.review_states) if s in self.review_states] or ["-none-"]
        base_filter = QueueFilter(states=(), source=filt.source, batch=filt.batch,
                                  min_score=filt.min_score, max_score=filt.max_score, sort=filt.sort)
        live_lease = and_(Lease.item_id == Item.id, Lease.expires_at >= now)
        recent_skips = select(Decision.item_id).where(
            Decision.reviewer == reviewer, Decision.kind == "skip", Decision.at >= now - self.skip_cooldown)
        with self.catalog.session() as s:
            mine = list(s.scalars(
                select(Item.id).join(Lease, Lease.item_id == Item.id)
                .where(Lease.reviewer == reviewer, Lease.expires_at >= now, *base_filter.where())
                .order_by(Lease.acquired_at)))
            seconds = list(s.scalars(
                select(Item.id).join(DoubleReview, DoubleReview.item_id == Item.id)
                .outerjoin(Lease, live_lease)
                .where(DoubleReview.second_decision_id.is_(None), DoubleReview.first_reviewer != reviewer,
                       Lease.item_id.is_(None), *base_filter.where())
                .order_by(DoubleReview.created_at).limit(20)))
        for item_id in mine:
            if item_id not in exclude and self._still_reviewable(item_id, reviewer):
                return item_id
        for item_id in seconds:
            if item_id not in exclude and self._try_take(item_id, reviewer):
                return item_id
        # Fetch candidates in pages; on a lost race move to the next candidate.
        offset = 0
        while True:
            with self.catalog.session() as s:
                page = list(s.scalars(
                    select(Item.id).outerjoin(Lease, live_lease)
                    .where(Item.state.in_(states), Lease.item_id.is_(None), Item.id.not_in(recent_skips),
                           *base_filter.where())
                    .order_by(*filt.order()).offset(offset).limit(32)))
            if not page:
                return None
            for item_id in page:
                if item_id not in exclude and self._try_take(item_id, reviewer):
                    return item_id
            offset += len(page)

    def _still_reviewable(self, item_id: str, reviewer: str) -> bool:
        with self.catalog.session() as s:
            item = s.get(Item, item_id)
            ok = item is not None and self._reviewable_for(item, reviewer, s)
        if not ok:
            self.release(item_id, reviewer)
        return ok

    def _try_take(self, item_id: str, reviewer: str) -> bool:
        try:
            self.lease(item_id, reviewer)
        except (ReviewConflict, KeyError):
            return False
        # Re-check after leasing: the item may have been decided between our query and our lease.
        return self._still_reviewable(item_id, reviewer)

    # ---- decisions ----------------------------------------------------------------------------
    def _live_lease(self, s, item_id: str, now: datetime) -> Lease | None:
        row = s.get(Lease, item_id)
        return row if row is not None and _aware(row.expires_at) >= now else None

    def decide(
        self,
        item_id: str,
        reviewer: str,
        decision: str,
        *,
        reason: str | None = None,
        comment: str | None = None,
        override: bool = False,
        via: str = "ui",
        require_lease: bool = True,
    ) -> Decision:
        """Record ``reviewer``'s ``decision`` ("accepted" | "rejected") on ``item_id``.

        The reviewer must hold the item's lease (``require_lease``; the grid's bulk action leases
        each item itself). A person-decided item changes only with ``override=True``; the override
        is logged with the decision it supersedes.

        One transaction: the state change (and its event), the decision row, the double-review row
        and the lease release commit together or not at all.
        """
        if decision not in DECISIONS:
            raise ReviewError(f"decision must be one of {DECISIONS}")
        if decision == "rejected" and not reason:
            raise ReviewError("a reject needs a reason code")
        if decision == "accepted":
            reason = None
        comment = (comment or "").strip()[:2000] or None
        now = self.clock()
        with self.catalog.session() as s:
            holder = self._live_lease(s, item_id, now)
            if holder is not None and holder.reviewer != reviewer:
                raise ReviewConflict(f"{item_id} is being reviewed by {holder.reviewer}")
            if require_lease and holder is None and not override:
                raise ReviewConflict(f"{item_id}: your lease expired or was never taken; reload the item")
            item = s.get(Item, item_id, with_for_update=True)
            if item is None:
                raise KeyError(item_id)
            if item.state == State.WITHDRAWN.value:  # gone at the source or taken down: read only for good
                raise ReviewConflict(f"{item_id} is withdrawn ({item.reason}): read only")
            from_state, version = item.state, item.pipeline_version
            dr = s.get(DoubleReview, item_id)
            last = s.scalars(select(Decision).where(Decision.item_id == item_id,
                                                    Decision.kind.in_(_DECIDING_KINDS + ("undo",)))
                             .order_by(Decision.id.desc()).limit(1)).first()
            prev = dict(prev_reason=item.reason, prev_detail=item.reason_detail, prev_reviewer=item.reviewer,
                        prev_decided_at=item.decided_at)
            if from_state in self.review_states:
                kind, expect, to_state = "first", self.review_states, decision
            elif (dr is not None and dr.second_decision_id is None and dr.first_reviewer != reviewer
                  and not override):
                kind, expect, to_state = "second", None, from_state  # an opinion, not a state change
            elif from_state in DECISIONS:
                if not override:
                    who = item.reviewer or "the pipeline"
                    raise ReviewConflict(f"{item_id} was already {from_state} by {who}; override explicitly")
                if from_state == decision:
                    raise ReviewConflict(f"{item_id} is already {decision}")
                kind, expect, to_state = "override", [from_state], decision
            else:
                raise ReviewConflict(f"{item_id} is {from_state}: not reviewable")
            if expect is not None:
                try:
                    self.catalog.transition(item_id, decision, reason=reason, detail=comment, actor=reviewer,
                                            expect=expect, reviewer=reviewer, decided_at=now, session=s)
                except TransitionError as exc:
                    raise ReviewConflict(str(exc)) from exc
            row = Decision(at=now, item_id=item_id, reviewer=reviewer, kind=kind, decision=decision, reason=reason,
                           comment=comment, from_state=from_state, to_state=to_state,
                           pipeline_version=version or PIPELINE_VERSION, via=via,
                           supersedes_id=last.id if (kind == "override" and last is not None) else None, **prev)
            s.add(row)
            s.flush()
            if kind == "first" and self.double_review_share > 0 and \
                    id_fraction(item_id, "double") < self.double_review_share:
                s.add(DoubleReview(item_id=item_id, first_reviewer=reviewer, first_decision=decision,
                                   first_decision_id=row.id, created_at=now))
                s.flush()
            elif kind == "second":
                done = s.execute(
                    update(DoubleReview)
                    .where(DoubleReview.item_id == item_id, DoubleReview.second_decision_id.is_(None))
                    .values(second_reviewer=reviewer, second_decision=decision, second_decision_id=row.id)
                    .execution_options(synchronize_session=False)).rowcount
                if done != 1:
                    raise ReviewConflict(f"{item_id}: second review already recorded")
            s.execute(delete(Lease).where(Lease.item_id == item_id, Lease.reviewer == reviewer))
        return row

    def skip(self, item_id: str, reviewer: str) -> None:
        """Give the item back to the queue; this reviewer is not offered it again for a while.
        Only the lease holder skips (a skip is logged, so it must be about an item one holds)."""
        now = self.clock()
        with self.catalog.session() as s:
            item = s.get(Item, item_id)
            if item is None:
                raise KeyError(item_id)
            holder = self._live_lease(s, item_id, now)
            if holder is None or holder.reviewer != reviewer:
                raise ReviewConflict(f"{item_id}: you do not hold this item's lease; nothing to skip")
            s.add(Decision(at=now, item_id=item_id, reviewer=reviewer, kind="skip",
                           from_state=item.state, to_state=item.state, pipeline_version=item.pipeline_version))
            s.execute(delete(Lease).where(Lease.item_id == item_id, Lease.reviewer == reviewer))

    def last_action(self, reviewer: str) -> Decision | None:
        """``reviewer``'s latest decision or flip that can still be undone (for the "U to undo" line)."""
        undone = select(Decision.supersedes_id).where(Decision.kind == "undo", Decision.supersedes_id.is_not(None))
        with self.catalog.session() as s:
            return s.scalars(select(Decision).where(Decision.reviewer == reviewer,
                                                    Decision.kind.in_(_UNDOABLE_KINDS),
                                                    Decision.id.not_in(undone))
                             .order_by(Decision.id.desc()).limit(1)).first()

    def undo(self, reviewer: str, *, data_root: str | Path | None = None) -> str | None:
        """Retract ``reviewer``'s latest not-yet-undone decision (or view-order flip); the item returns
        to its state before it (reason, reviewer, decided_at restored; a flip also restores the map
        files and every catalog field, which needs ``data_root``) and is leased back to them.
        Returns the item id, or None if there is nothing to undo. ReviewConflict if someone decided
        the item after them. One transaction for the catalog side."""
        target = self.last_action(reviewer)
        if target is None:
            return None
        item_id = target.item_id
        now = self.clock()
        if target.kind == "flip" and data_root is None:
            raise ReviewError("undoing a flip needs the data root")
        undone = select(Decision.supersedes_id).where(Decision.kind == "undo", Decision.supersedes_id.is_not(None))
        with self.catalog.session() as s:
            # a later decision on the item that still stands (not one that was itself undone)
            later = s.scalars(select(Decision.id).where(Decision.item_id == item_id, Decision.id > target.id,
                                                        Decision.kind.in_(_UNDOABLE_KINDS),
                                                        Decision.id.not_in(undone))
                              .limit(1)).first()
            if later is not None:
                raise ReviewConflict(f"{item_id} was decided again after your decision; override it instead")
            holder = self._live_lease(s, item_id, now)
            if holder is not None and holder.reviewer != reviewer:
                raise ReviewConflict(f"{item_id} is being reviewed by {holder.reviewer}")
            try:
                if target.kind in ("first", "override"):
                    self.catalog.transition(
                        item_id, target.from_state, reason=target.prev_reason, detail=target.prev_detail,
                        actor=reviewer, expect=[target.to_state], reviewer=target.prev_reviewer,
                        decided_at=target.prev_decided_at, session=s)
                elif target.kind == "flip":
                    self._restore_flip(s, target, reviewer, Path(data_root))
            except TransitionError as exc:
                raise ReviewConflict(str(exc)) from exc
            s.add(Decision(at=now, item_id=item_id, reviewer=reviewer, kind="undo", decision=None,
                           from_state=target.to_state, to_state=target.from_state,
                           pipeline_version=target.pipeline_version, supersedes_id=target.id))
            if target.kind == "first":
                s.execute(delete(DoubleReview).where(DoubleReview.item_id == item_id,
                                                     DoubleReview.first_decision_id == target.id))
            elif target.kind == "second":
                s.execute(update(DoubleReview).where(DoubleReview.item_id == item_id,
                                                     DoubleReview.second_decision_id == target.id)
                          .values(second_reviewer=None, second_decision=None, second_decision_id=None)
                          .execution_options(synchronize_session=False))
            lease = s.get(Lease, item_id)  # none, the reviewer's own, or someone's expired one
            if lease is None:
                s.add(Lease(item_id=item_id, reviewer=reviewer, acquired_at=now, expires_at=now + self.lease_timeout))
            else:
                lease.reviewer, lease.acquired_at, lease.expires_at = reviewer, now, now + self.lease_timeout
        if target.kind == "flip":
            _drop_backup(Path(data_root), (target.data or {}).get("backup"))
        return item_id

    # ---- view-order flip ----------------------------------------------------------------------
    def flip_view_order(self, item_id: str, reviewer: str, data_root: str | Path,
                        rederive: Callable[[str], str]) -> Decision:
        """Swap the item's two views (a reviewer saw depth inverted) and re-derive its maps.

        The previous map files are kept in ``maps/<id>/.preflip/<token>/`` and the previous catalog
        fields in the flip's decision row, so ``undo`` restores the item exactly. ``rederive(item_id)``
        runs the process stage on the item (in ``processed``, views as given) and returns its new
        state. The flip is logged as a ``flip`` decision and in the events (actor = reviewer).
        """
        data_root = Path(data_root)
        now = self.clock()
        with self.catalog.session() as s:
            holder = self._live_lease(s, item_id, now)
            if holder is None or holder.reviewer != reviewer:
                raise ReviewConflict(f"{item_id}: take the item's lease first (reload it)")
            item = s.get(Item, item_id)
            if item is None:
                raise KeyError(item_id)
            if item.state not in self.review_states:
                raise ReviewConflict(f"{item_id} is {item.state}: only items awaiting review can be flipped")
            if not item.left_path or not item.right_path:
                raise ReviewError(f"{item_id} has no stored views to swap")
            prev = _snapshot(item)
        backup = _backup_maps(data_root, item_id)
        views = dict((prev["info"] or {}).get("views") or {})
        if "left" in views or "right" in views:
            views = {**views, "left": views.get("right"), "right": views.get("left")}
        info = {**(prev["info"] or {}), "view_order_source": "reviewer", "view_order_flipped_by": reviewer}
        if views:
            info["views"] = views
        swapped = not bool(prev["swapped"])
        try:
            self.catalog.transition(
                item_id, State.PROCESSED, actor=reviewer, expect=[prev["state"]], detail=None,
                left_path=prev["right_path"], right_path=prev["left_path"], swapped=swapped,
                view_order="cross_eyed" if swapped else "parallel", info=info)
        except TransitionError as exc:
            _drop_backup(data_root, backup)
            raise ReviewConflict(str(exc)) from exc
        try:
            new_state = rederive(item_id)
            if new_state not in self.review_states:
                raise ReviewError(f"the process stage left it {new_state}")
        except Exception as exc:  # noqa: BLE001 - whatever failed, the item goes back exactly as it was
            with self.catalog.session() as s:
                self._restore(s, item_id, prev, backup, data_root, reviewer, expect=None)
            _drop_backup(data_root, backup)
            raise ReviewError(f"{item_id}: re-deriving with the views swapped failed: {exc}") from exc
        with self.catalog.session() as s:
            row = Decision(at=self.clock(), item_id=item_id, reviewer=reviewer, kind="flip", decision=None,
                           comment="view order flipped", from_state=prev["state"], to_state=new_state,
                           pipeline_version=prev["pipeline_version"], via="ui",
                           data={"prev": _jsonable(prev), "backup": backup})
            s.add(row)
            s.flush()
        return row

    def _restore_flip(self, s, target: Decision, reviewer: str, data_root: Path) -> None:
        data = target.data or {}
        if not data.get("prev") or not data.get("backup"):
            raise ReviewError(f"{target.item_id}: the flip's log row has no saved state")
        self._restore(s, target.item_id, _unjsonable(data["prev"]), data["backup"], data_root, reviewer,
                      expect=[target.to_state])

    def _restore(self, s, item_id: str, prev: dict, backup: str, data_root: Path, reviewer: str,
                 expect: list[str] | None) -> None:
        """Map files from ``backup`` and every field in ``prev`` back onto the item (in session ``s``)."""
        item = s.get(Item, item_id, with_for_update=True)
        if item is None:
            raise KeyError(item_id)
        if expect is not None and item.state not in expect:
            raise TransitionError(f"{item_id} is {item.state}, expected one of {expect}")
        fields = {k: v for k, v in prev.items() if k not in ("state", "reason", "reason_detail")}
        if item.state != State.PROCESSED.value:
            self.catalog.transition(item_id, State.PROCESSED, actor=reviewer, session=s)
        self.catalog.transition(item_id, prev["state"], reason=prev["reason"], detail=prev["reason_detail"],
                                actor=reviewer, session=s, **fields)
        _restore_maps(data_root, item_id, backup)  # last: the catalog side has been checked and flushed

    # ---- reading ------------------------------------------------------------------------------
    def decisions(self, *, item_id: str | None = None, reviewer: str | None = None,
                  limit: int | None = None) -> list[Decision]:
        q = select(Decision).order_by(Decision.id)
        if item_id:
            q = q.where(Decision.item_id == item_id)
        if reviewer:
            q = q.where(Decision.reviewer == reviewer)
        if limit:
            q = q.limit(limit)
        with self.catalog.session() as s:
            return list(s.scalars(q))

    def history(self, reviewer: str, *, limit: int = 500) -> list[str]:
        """Items this reviewer decided or skipped, oldest first, each once (at its latest position)."""
        with self.catalog.session() as s:
            rows = list(s.execute(select(Decision.item_id, func.max(Decision.id)).where(
                Decision.reviewer == reviewer, Decision.kind.in_(_DECIDING_KINDS + ("skip",)))
                .group_by(Decision.item_id).order_by(func.max(Decision.id).desc()).limit(limit)))
        return [r[0] for r in reversed(rows)]

    def double_review(self, item_id: str) -> DoubleReview | None:
        with self.catalog.session() as s:
            return s.get(DoubleReview, item_id)

    def browse(self, filt: QueueFilter, *, page: int = 1, page_size: int = 60) -> tuple[list[Item], int]:
        """One page of items matching ``filt`` (all states allowed) and the total count."""
        where = filt.where()
        with self.catalog.session() as s:
            total = s.scalar(select(func.count()).select_from(Item).where(*where)) or 0
            items = list(s.scalars(select(Item).where(*where).order_by(*filt.order())
                                   .offset(max(page - 1, 0) * page_size).limit(page_size)))
        return items, int(total)

    def live_leases(self, item_ids: Iterable[str]) -> dict[str, str]:
        ids = list(item_ids)
        with self.catalog.session() as s:
            rows = s.execute(select(Lease.item_id, Lease.reviewer).where(
                Lease.item_id.in_(ids), Lease.expires_at >= self.clock()))
            return dict(rows.all())

    def sources(self) -> list[str]:
        with self.catalog.session() as s:
            return list(s.scalars(select(Item.source).distinct().order_by(Item.source)))

    def upcoming(self, filt: QueueFilter = QueueFilter(), *, exclude: Iterable[str] = (), n: int = 2) -> list[Item]:
        """The next ``n`` unleased queue items in ``filt`` order, without leasing them (to warm caches)."""
        now = self.clock()
        states = [s for s in (filt.states or self.review_states) if s in self.review_states] or ["-none-"]
        base = QueueFilter(states=(), source=filt.source, batch=filt.batch, min_score=filt.min_score,
                           max_score=filt.max_score, sort=filt.sort)
        with self.catalog.session() as s:
            return list(s.scalars(
                select(Item).outerjoin(Lease, and_(Lease.item_id == Item.id, Lease.expires_at >= now))
                .where(Item.state.in_(states), Lease.item_id.is_(None), Item.id.not_in(list(exclude) or ["-"]),
                       *base.where())
                .order_by(*filt.order()).limit(n)))

    def queue_size(self, filt: QueueFilter = QueueFilter()) -> int:
        states = [s for s in (filt.states or self.review_states) if s in self.review_states] or ["-none-"]
        base = QueueFilter(states=tuple(states), source=filt.source, batch=filt.batch,
                           min_score=filt.min_score, max_score=filt.max_score)
        with self.catalog.session() as s:
            return int(s.scalar(select(func.count()).select_from(Item).where(*base.where())) or 0)

    def progress_by_batch(self, batch: str | None = None) -> list[dict]:
        """Per ingest batch (or just ``batch``): total, still to review, accepted, rejected (by a
        person), other (ingest rejects such as duplicates or mono, failures, not yet processed, ...),
        and the reviewed share of the items that need a human decision (ingest rejects never did)."""
        person = Item.reviewer.is_not(None)
        q = select(Item.batch, Item.state, person, func.count()).group_by(Item.batch, Item.state, person)
        if batch is not None:
            q = q.where(Item.batch == batch)
        with self.catalog.session() as s:
            rows = s.execute(q).all()
        out: dict[str, dict] = {}
        for name, state, by_person, n in rows:
            d = out.setdefault(name or "-", dict(batch=name or "-", total=0, to_review=0, accepted=0,
                                                 rejected=0, other=0))
            d["total"] += n
            if state in self.review_states:
                key = "to_review"
            elif state in DECISIONS and by_person:
                key = state
            else:
                key = "other"
            d[key] += n
        for d in out.values():
            reviewable = d["to_review"] + d["accepted"] + d["rejected"]
            d["needs_review"] = reviewable
            d["done_fraction"] = (d["accepted"] + d["rejected"]) / reviewable if reviewable else None
        return sorted(out.values(), key=lambda d: d["batch"])

    def progress_by_reviewer(self, *, since: datetime | None = None) -> list[dict]:
        """Per reviewer: decisions by kind, accepts/rejects (undone ones not counted), last activity."""
        undone = select(Decision.supersedes_id).where(Decision.kind == "undo", Decision.supersedes_id.is_not(None))
        q = select(Decision.reviewer, Decision.kind, Decision.decision, func.count(), func.max(Decision.at)) \
            .where(or_(Decision.kind.in_(("undo", "skip")), Decision.id.not_in(undone)))
        if since is not None:
            q = q.where(Decision.at >= since)
        with self.catalog.session() as s:
            rows = s.execute(q.group_by(Decision.reviewer, Decision.kind, Decision.decision)).all()
        out: dict[str, dict] = {}
        for reviewer, kind, decision, n, last in rows:
            d = out.setdefault(reviewer, dict(reviewer=reviewer, decided=0, accepted=0, rejected=0, second=0,
                                              overrides=0, undos=0, skips=0, last=None))
            if kind in _DECIDING_KINDS:
                d["decided"] += n
                d[decision] += n
            d.update({"second": d["second"] + n} if kind == "second" else {})
            d.update({"overrides": d["overrides"] + n} if kind == "override" else {})
            d.update({"undos": d["undos"] + n} if kind == "undo" else {})
            d.update({"skips": d["skips"] + n} if kind == "skip" else {})
            last = _aware(last)
            d["last"] = last if d["last"] is None or (last and last > d["last"]) else d["last"]
        return sorted(out.values(), key=lambda d: d["reviewer"])

    def agreement(self, *, max_listed: int = 100) -> Agreement:
        """Agreement between the two reviewers of double-review items, with Cohen's kappa."""
        with self.catalog.session() as s:
            rows = list(s.scalars(select(DoubleReview)))
        done = [r for r in rows if r.second_decision is not None]
        ag = Agreement(pairs=len(done), agreed=sum(r.first_decision == r.second_decision for r in done),
                       open=len(rows) - len(done))
        if done:
            # kappa = (p_o - p_e) / (1 - p_e), p_e from each rater's accept share
            p_o = ag.agreed / len(done)
            a1 = sum(r.first_decision == "accepted" for r in done) / len(done)
            a2 = sum(r.second_decision == "accepted" for r in done) / len(done)
            p_e = a1 * a2 + (1 - a1) * (1 - a2)
            ag.kappa = (p_o - p_e) / (1 - p_e) if p_e < 1 else None
        ag.disagreements = [dict(item_id=r.item_id, first_reviewer=r.first_reviewer, first=r.first_decision,
                                 second_reviewer=r.second_reviewer, second=r.second_decision)
                            for r in done if r.first_decision != r.second_decision][:max_listed]
        return ag


# ---- flip helpers: snapshots of an item and of its map folder ---------------------------------
_SNAPSHOT_SKIP = ("id", "created_at", "updated_at")


def _snapshot(item: Item) -> dict:
    """Every column of ``item`` except its id and timestamps (what a flip may change)."""
    import copy

    return {c.key: copy.deepcopy(getattr(item, c.key)) for c in Item.__table__.columns if c.key not in _SNAPSHOT_SKIP}


def _jsonable(fields: dict) -> dict:
    return {k: {"__datetime__": v.isoformat()} if isinstance(v, datetime) else v for k, v in fields.items()}


def _unjsonable(fields: dict) -> dict:
    return {k: datetime.fromisoformat(v["__datetime__"]) if isinstance(v, dict) and set(v) == {"__datetime__"} else v
            for k, v in fields.items()}


def _maps_dir(data_root: Path, item_id: str) -> Path:
    return data_root / "maps" / item_id


def _backup_maps(data_root: Path, item_id: str) -> str:
    """Copy the files of maps/<id>/ (byte for byte, times kept) to maps/<id>/.preflip/<token>/."""
    src = _maps_dir(data_root, item_id)
    token = f"{utcnow().strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(4)}"
    dst = src / ".preflip" / token
    dst.mkdir(parents=True)
    if src.is_dir():
        for f in src.iterdir():
            if f.is_file() and not f.is_symlink():
                shutil.copy2(f, dst / f.name)
    return dst.relative_to(data_root).as_posix()


def _restore_maps(data_root: Path, item_id: str, backup: str) -> None:
    """Make maps/<id>/ hold exactly the backed-up files again (files made since are removed)."""
    src = (data_root / backup).resolve()
    folder = _maps_dir(data_root, item_id)
    if not src.is_relative_to((folder / ".preflip").resolve()) or not src.is_dir():
        raise ReviewError(f"{item_id}: the saved maps ({backup}) are gone")
    saved = {f.name for f in src.iterdir() if f.is_file()}
    for f in folder.iterdir():
        if f.is_file() and f.name not in saved:
            f.unlink()
    for name in saved:
        tmp = folder / f".{name}.restore"
        shutil.copy2(src / name, tmp)
        os.replace(tmp, folder / name)


def _drop_backup(data_root: Path, backup: str | None) -> None:
    if backup:
        path = (data_root / backup).resolve()
        if ".preflip" in path.parts and path.is_relative_to(data_root.resolve()):
            shutil.rmtree(path, ignore_errors=True)
