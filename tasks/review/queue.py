"""The review queue: which items a reviewer works on next, and pages of the catalog for the grid.

``next_item`` offers, in order: the reviewer's own live lease (a reload does not take a second
item), then open second reviews (double review, never to the first reviewer), then the queue in the
filter's order, skipping live leases and items this reviewer skipped within the cool-down.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable, Iterable, Sequence

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from tasks.catalog.catalog import Catalog, Item
from tasks.review.errors import ReviewConflict
from tasks.review.leases import Leases
from tasks.review.tables import Decision, DoubleReview, Lease, aware

_CANDIDATES_PER_PAGE = 32  # queue rows fetched at a time; a lost lease race moves on to the next one


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

    def after(self, item: Item) -> list:
        """Conditions for the items that come after ``item`` in this filter's order (keyset), so
        "next" moves on past the item on screen instead of offering the one just left again.
        Empty when ``item`` has no place in the order (no score under a score sort)."""
        if self.sort in ("score_asc", "score_desc"):
            if item.score is None:
                return []
            if self.sort == "score_asc":
                return [or_(Item.score > item.score, and_(Item.score == item.score, Item.id > item.id))]
            return [or_(Item.score < item.score, and_(Item.score == item.score, Item.id < item.id))]
        if item.created_at is None:
            return []
        return [or_(Item.created_at > item.created_at,
                    and_(Item.created_at == item.created_at, Item.id > item.id))]

    def order(self) -> list:
        # Plain column orders so the (state, score, id) / (state, created_at, id) indexes serve them.
        # Items without a score (none, per the process contract) sort where the database puts NULLs.
        if self.sort == "score_asc":
            return [Item.score.asc(), Item.id.asc()]
        if self.sort == "score_desc":
            return [Item.score.desc(), Item.id.desc()]
        return [Item.created_at, Item.id]


class Queue:
    """Queue reads and the next-item lease over one catalog, for items in ``review_states``."""

    def __init__(self, catalog: Catalog, leases: Leases, *, review_states: Sequence[str],
                 skip_cooldown: timedelta, clock: Callable[[], datetime]) -> None:
        self.catalog = catalog
        self.leases = leases
        self.review_states = tuple(review_states)
        self.skip_cooldown = skip_cooldown
        self.clock = clock

    def _states(self, filt: QueueFilter) -> list[str]:
        """The filter's states that are review states (all of them when it names none)."""
        return [s for s in (filt.states or self.review_states) if s in self.review_states] or ["-none-"]

    def reviewable_for(self, item: Item, reviewer: str, s: Session) -> bool:
        """Whether ``reviewer`` may decide ``item``: it awaits review, or awaits their second opinion."""
        if item.state in self.review_states:
            return True
        dr = s.get(DoubleReview, item.id)
        return dr is not None and dr.second_decision_id is None and dr.first_reviewer != reviewer

    def next_item(self, reviewer: str, filt: QueueFilter = QueueFilter(), *,
                  exclude: Iterable[str] = (), after: str | None = None) -> str | None:
        """Lease and return the next item for ``reviewer``: their own live lease first, then open
        second reviews (double review), then the queue in ``filt`` order, starting after the item
        ``after`` (the one on screen) and wrapping round. None when the queue is empty."""
        exclude = set(exclude) | ({after} if after else set())
        base = replace(filt, states=())
        mine, seconds = self._held_and_second(reviewer, base)
        for item_id in mine:
            if item_id not in exclude and self._still_reviewable(item_id, reviewer):
                return item_id
        for item_id in seconds:
            if item_id not in exclude and self._try_take(item_id, reviewer):
                return item_id
        if after:
            with self.catalog.session() as s:
                here = s.get(Item, after)
                beyond = filt.after(here) if here is not None else []
            if beyond:
                found = self._take_from_queue(reviewer, filt, base, exclude, extra=beyond)
                if found is not None:
                    return found
        return self._take_from_queue(reviewer, filt, base, exclude)

    def _held_and_second(self, reviewer: str, base: QueueFilter) -> tuple[list[str], list[str]]:
        """The items ``reviewer`` holds live leases on, and up to 20 unleased open second reviews."""
        now = self.clock()
        with self.catalog.session() as s:
            mine = list(s.scalars(
                select(Item.id).join(Lease, Lease.item_id == Item.id)
                .where(Lease.reviewer == reviewer, Lease.expires_at >= now, *base.where())
                .order_by(Lease.acquired_at)))
            seconds = list(s.scalars(
                select(Item.id).join(DoubleReview, DoubleReview.item_id == Item.id)
                .outerjoin(Lease, and_(Lease.item_id == Item.id, Lease.expires_at >= now))
                .where(DoubleReview.second_decision_id.is_(None), DoubleReview.first_reviewer != reviewer,
                       Lease.item_id.is_(None), *base.where())
                .order_by(DoubleReview.created_at).limit(20)))
        return mine, seconds

    def _take_from_queue(self, reviewer: str, filt: QueueFilter, base: QueueFilter,
                         exclude: set[str], extra: Sequence = ()) -> str | None:
        """Lease the first free queue item in ``filt`` order (meeting ``extra`` conditions too),
        fetching candidates a page at a time."""
        now = self.clock()
        recent_skips = select(Decision.item_id).where(
            Decision.reviewer == reviewer, Decision.kind == "skip", Decision.at >= now - self.skip_cooldown)
        query = (select(Item.id).outerjoin(Lease, and_(Lease.item_id == Item.id, Lease.expires_at >= now))
                 .where(Item.state.in_(self._states(filt)), Lease.item_id.is_(None),
                        Item.id.not_in(recent_skips), *base.where(), *extra)
                 .order_by(*filt.order()))
        offset = 0
        while True:
            with self.catalog.session() as s:
                page = list(s.scalars(query.offset(offset).limit(_CANDIDATES_PER_PAGE)))
            if not page:
                return None
            for item_id in page:
                if item_id not in exclude and self._try_take(item_id, reviewer):
                    return item_id
            offset += len(page)

    def _still_reviewable(self, item_id: str, reviewer: str) -> bool:
        with self.catalog.session() as s:
            item = s.get(Item, item_id)
            ok = item is not None and self.reviewable_for(item, reviewer, s)
        if not ok:
            self.leases.release(item_id, reviewer)
        return ok

    def _try_take(self, item_id: str, reviewer: str) -> bool:
        try:
            self.leases.lease(item_id, reviewer)
        except (ReviewConflict, KeyError):
            return False
        # Re-check after leasing: the item may have been decided between our query and our lease.
        return self._still_reviewable(item_id, reviewer)

    # ---- reads ----------------------------------------------------------------------------------
    def upcoming(self, filt: QueueFilter = QueueFilter(), *, exclude: Iterable[str] = (),
                 n: int = 2) -> list[Item]:
        """The next ``n`` unleased queue items in ``filt`` order, without leasing them (to warm caches)."""
        now = self.clock()
        base = replace(filt, states=())
        with self.catalog.session() as s:
            return list(s.scalars(
                select(Item).outerjoin(Lease, and_(Lease.item_id == Item.id, Lease.expires_at >= now))
                .where(Item.state.in_(self._states(filt)), Lease.item_id.is_(None),
                       Item.id.not_in(list(exclude) or ["-"]), *base.where())
                .order_by(*filt.order()).limit(n)))

    def held_by_others(self, reviewer: str, filt: QueueFilter = QueueFilter()) -> tuple[int, datetime | None]:
        """(how many queue items in ``filt`` other reviewers hold now, when the first lease runs out):
        what "nothing left" owes the reviewer, so held items are not mistaken for finished ones.
        A lease is renewed while its holder's page is open, so the time is the earliest it can end."""
        now = self.clock()
        base = replace(filt, states=tuple(self._states(filt)))
        with self.catalog.session() as s:
            n, first = s.execute(
                select(func.count(), func.min(Lease.expires_at)).select_from(Item)
                .join(Lease, Lease.item_id == Item.id)
                .where(Lease.expires_at >= now, Lease.reviewer != reviewer, *base.where())).one()
        return int(n or 0), aware(first)

    def queue_size(self, filt: QueueFilter = QueueFilter()) -> int:
        """How many items in ``filt`` await review (leased ones included)."""
        base = replace(filt, states=tuple(self._states(filt)))
        with self.catalog.session() as s:
            return int(s.scalar(select(func.count()).select_from(Item).where(*base.where())) or 0)

    def browse(self, filt: QueueFilter, *, page: int = 1, page_size: int) -> tuple[list[Item], int]:
        """One page of items matching ``filt`` (all states allowed) and the total count."""
        where = filt.where()
        with self.catalog.session() as s:
            total = s.scalar(select(func.count()).select_from(Item).where(*where)) or 0
            items = list(s.scalars(select(Item).where(*where).order_by(*filt.order())
                                   .offset(max(page - 1, 0) * page_size).limit(page_size)))
        return items, int(total)

    def sources(self) -> list[str]:
        """Every source name in the catalog (the filter form's choices)."""
        with self.catalog.session() as s:
            return list(s.scalars(select(Item.source).distinct().order_by(Item.source)))
