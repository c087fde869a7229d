"""Leases: at most one reviewer holds an item, until ``expires_at``; then it goes back to the queue.

``review_leases`` has one row per item (primary key ``item_id``). Taking a lease is one conditional
``UPDATE`` (the holder renews, or the old lease expired) or one ``INSERT`` that fails on the primary
key, which is race-free on SQLite (serialized writers) and PostgreSQL (row locks) alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tasks.catalog.catalog import Catalog
from tasks.review.errors import ReviewConflict
from tasks.review.tables import Lease, aware


@dataclass(frozen=True)
class LeaseInfo:
    item_id: str
    reviewer: str
    expires_at: datetime
    acquired_at: datetime | None = None  # when it was taken or last renewed


def live_lease(s: Session, item_id: str, now: datetime) -> Lease | None:
    """The item's lease row in session ``s`` if it has not expired at ``now``."""
    row = s.get(Lease, item_id)
    return row if row is not None and aware(row.expires_at) >= now else None


class Leases:
    """Take, renew, look up and give back leases of ``timeout`` length."""

    def __init__(self, catalog: Catalog, *, timeout: timedelta, clock: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.timeout = timeout
        self.clock = clock

    def lease(self, item_id: str, reviewer: str, *, only: bool = False) -> LeaseInfo:
        """Lease ``item_id`` to ``reviewer`` (renewing their own lease); ReviewConflict if someone
        else holds it, KeyError if there is no such item. ``only``: give back every other lease of
        ``reviewer`` once this one is theirs (an item page holds the item in front of the reviewer,
        not the ones they browsed past)."""
        now = self.clock()
        expires = now + self.timeout
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
        if only:
            self.release_all(reviewer, keep=[item_id])
        return LeaseInfo(item_id, reviewer, expires, now)

    def release_all(self, reviewer: str, *, keep: Iterable[str] = ()) -> int:
        """Give back every lease of ``reviewer`` but those on ``keep``; how many were given back."""
        keep = list(keep)
        with self.catalog.session() as s:
            q = delete(Lease).where(Lease.reviewer == reviewer)
            if keep:
                q = q.where(Lease.item_id.not_in(keep))
            return s.execute(q.execution_options(synchronize_session=False)).rowcount or 0

    def grant(self, s: Session, item_id: str, reviewer: str, now: datetime) -> None:
        """Give ``reviewer`` the item's lease inside session ``s``, whoever's (expired) row was there;
        the caller has checked that no one else holds it live (an undo leases the item back)."""
        lease = s.get(Lease, item_id)
        if lease is None:
            s.add(Lease(item_id=item_id, reviewer=reviewer, acquired_at=now, expires_at=now + self.timeout))
        else:
            lease.reviewer, lease.acquired_at, lease.expires_at = reviewer, now, now + self.timeout

    def lease_holder(self, item_id: str) -> LeaseInfo | None:
        """The live lease on an item, if any (expired leases count as none)."""
        with self.catalog.session() as s:
            row = s.get(Lease, item_id)
            if row is None or aware(row.expires_at) < self.clock():
                return None
            return LeaseInfo(row.item_id, row.reviewer, aware(row.expires_at))

    def release(self, item_id: str, reviewer: str, *, renewed_by: datetime | None = None) -> None:
        """Give back ``reviewer``'s lease on ``item_id`` (nothing happens if they do not hold it).
        ``renewed_by``: only if it was not taken or renewed after that time (a page that closes
        must not give back the lease its own reload has just taken again)."""
        with self.catalog.session() as s:
            q = delete(Lease).where(Lease.item_id == item_id, Lease.reviewer == reviewer)
            if renewed_by is not None:
                q = q.where(Lease.acquired_at <= renewed_by)
            s.execute(q.execution_options(synchronize_session=False))

    def live_leases(self, item_ids: Iterable[str]) -> dict[str, str]:
        """Item id -> holder, for the items of ``item_ids`` that are leased now (the grid marks them)."""
        ids = list(item_ids)
        with self.catalog.session() as s:
            rows = s.execute(select(Lease.item_id, Lease.reviewer).where(
                Lease.item_id.in_(ids), Lease.expires_at >= self.clock()))
            return dict(rows.all())
